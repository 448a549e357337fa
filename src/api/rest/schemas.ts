/**
 * The REST API's contracts, declared once with TypeBox: each schema is the JSON Schema fastify
 * validates with (and @fastify/swagger writes into openapi/openapi.json), and `Static<typeof …>`
 * is the type the route handlers get. Shared schemas have an `$id`, so they land under
 * `components.schemas` and routes refer to them with `ref(schema)`.
 *
 * GraphQL answers the same shapes: test/api/contract-drift.test.ts compares every field of the
 * trace, audit and diff schemas below with the SDL in src/api/graphql/schema, so a field added
 * here fails that test until the SDL has it too.
 */
import Type from 'typebox';
import type { Static } from 'typebox';
import { PROTOCOLS } from '../../engine/index.ts';
import type { Entry, FormatOption } from '../../engine/index.ts';
import { counts, list, nullable, oneOf, ref, stringMap, stringOneOf } from './schema-kit.ts';

/** The port range every port a request names is checked against (REST schemas, GraphQL arguments). */
export const PORT_RANGE = { minimum: 0, maximum: 65535 } as const;

/** A port number of a request. */
export function port(options: { readonly description?: string } = {}) {
  return Type.Integer({ ...PORT_RANGE, ...options });
}

/** Where a packet enters. */
export const ENTRIES: readonly Entry[] = ['PREROUTING', 'OUTPUT'];
/** How a dump is read: `auto` tells the format from the text. */
export const FORMATS: readonly FormatOption[] = ['auto', 'iptables-save', 'iptables-S', 'nftables'];
const TABLES = ['raw', 'mangle', 'nat', 'filter', 'security'] as const;
const HOOKS = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'] as const;

export const problemSchema = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.Optional(Type.String()),
  code: Type.String(),
  instance: Type.Optional(Type.String()),
  line: Type.Optional(Type.Integer()),
  column: Type.Optional(Type.Integer()),
  text: Type.Optional(Type.String()),
  excerpt: Type.Optional(Type.String()),
  node: Type.Optional(Type.String()),
  part: Type.Optional(Type.String()),
  errors: Type.Optional(list(Type.Unsafe<Record<string, unknown>>({ type: 'object', additionalProperties: true }))),
}, {
  $id: 'Problem',
  description: 'RFC 9457 problem details; `code` is stable, `line`/`column`/`text` locate bad input.',
  additionalProperties: true,
});

/** What kube-proxy's two modes do differently on purpose (engine/diff/known-differences.ts). */
const KNOWN_DIFFERENCE_CODE = oneOf([
  'NODEPORT_LOCALHOST', 'CLUSTER_IP_OTHER_PORT', 'SERVICE_CIDR_UNALLOCATED', 'NODEPORT_ADDRESSES', 'FORWARD_ACCEPT', 'CONNTRACK_INVALID', 'DROP_POINT', 'FIREWALL_WITHOUT_ENDPOINTS',
]);

/** The protocols as answers name them (requests take them in any case): the engine's list. */
const PROTOCOL = oneOf(PROTOCOLS);

/** A protocol as a request may write it: the engine's readProtocol checks it against PROTOCOLS. */
export function protocolInput(options: { readonly description?: string; readonly default?: string } = {}) {
  const names = `${PROTOCOLS.slice(0, -1).join(', ')} or ${PROTOCOLS.at(-1)}, in any case`;
  return Type.String({ ...options, description: options.description ? `${names} (${options.description})` : names });
}

export const traceStepSchema = Type.Object({
  hook: oneOf(HOOKS),
  table: Type.String(),
  chain: Type.String(),
  index: Type.Integer({ description: '1-based position in the chain, as in the dump; 0 for the policy' }),
  line: Type.Optional(Type.Integer({ description: 'line in the uploaded dump; 0 for assumed rules' })),
  rule: Type.String(),
  action: Type.String(),
  assumed: Type.Optional(Type.String({ description: 'why this rule, absent from the dump, was assumed' })),
  handle: Type.Optional(Type.Integer({ description: "nftables: the rule's handle, when the dump listed handles (`nft -a`)" })),
}, {
  $id: 'TraceStep',
  description: 'A rule whose matches all succeeded (or a built-in chain policy, index 0), in traversal order. For nftables, table is `family name` (e.g. `ip kube-proxy`) and action includes the verdict-map element taken.',
});

export const traceOutcomeSchema = Type.Object({
  probability: Type.Number(),
  exactProbability: Type.Optional(Type.String({ description: 'the exact fraction, e.g. "1/4"' })),
  verdict: oneOf(['DNAT', 'ACCEPT', 'DROP', 'REJECT']),
  destination: Type.Object({ ip: Type.String(), port: Type.Integer() }),
  masquerade: Type.Boolean(),
  snat: Type.Optional(Type.Object({
    ip: Type.Optional(nullable(Type.String())),
    port: Type.Optional(nullable(Type.Integer())),
  })),
  delivery: Type.Unsafe<'local' | 'forward' | 'output' | null>({
    type: 'string', nullable: true, enum: ['local', 'forward', 'output', null], description: 'null when dropped before routing',
  }),
  outInterface: Type.Optional(Type.String({ description: "the interface the packet leaves through, when packet.outInterface or the node's routes say it" })),
  conditions: Type.Optional(list(Type.String(), {
    description: 'when the answer depends on an interface the request does not name: the case this outcome holds in (e.g. "if the packet to 8.8.8.8 leaves through docker0"); probability is then given this case',
  })),
  rejectWith: Type.Optional(Type.String()),
  mark: Type.Optional(Type.String()),
  path: list(ref(traceStepSchema)),
  notes: Type.Optional(list(Type.String())),
  service: Type.Optional(Type.Object({
    namespace: Type.Optional(Type.String()),
    name: Type.Optional(Type.String()),
    port: Type.Optional(Type.Object({
      name: Type.Optional(Type.String()),
      port: Type.Optional(nullable(Type.Integer())),
      protocol: Type.Optional(Type.String()),
    })),
    frontend: Type.Optional(Type.String()),
    via: Type.Optional(Type.String()),
  }, { description: 'the Service and port the packet went through (from rule comments, chain-name hashes or the manifests)' })),
  endpoint: Type.Optional(Type.Object({
    ip: Type.Optional(Type.String()),
    port: Type.Optional(Type.Integer()),
    node: Type.Optional(Type.String()),
    listed: Type.Optional(Type.Boolean()),
    pod: Type.Optional(Type.Object({
      name: Type.Optional(Type.String()),
      namespace: Type.Optional(Type.String()),
      node: Type.Optional(nullable(Type.String())),
      ready: Type.Optional(nullable(Type.Boolean())),
      serving: Type.Optional(nullable(Type.Boolean())),
      terminating: Type.Optional(Type.Boolean()),
    })),
  })),
  masqueradeReason: Type.Optional(Type.String({ description: 'why the client address is replaced, in Kubernetes terms' })),
}, { $id: 'TraceOutcome' });

export const traceWarningSchema = Type.Object({
  code: Type.String(),
  message: Type.String(),
  node: Type.Optional(Type.String({ description: 'the node it is about, in a trace of a stored snapshot' })),
  rule: Type.Optional(Type.Object({
    table: Type.Optional(Type.String()),
    chain: Type.Optional(Type.String()),
    index: Type.Optional(Type.Integer()),
    line: Type.Optional(Type.Integer()),
    text: Type.Optional(Type.String()),
  })),
}, { $id: 'TraceWarning' });

const traceEntry = oneOf(ENTRIES);
const tracedPacket = Type.Object({
  source: Type.Optional(Type.String()),
  destination: Type.Optional(Type.String()),
  port: Type.Optional(Type.Integer()),
  protocol: Type.Optional(PROTOCOL),
  sourcePort: Type.Optional(nullable(Type.Integer())),
});

export const traceResultSchema = Type.Object({
  node: Type.Optional(Type.Object({
    name: Type.Optional(Type.String()),
    addresses: Type.Optional(list(Type.String())),
  })),
  entry: Type.Optional(traceEntry),
  packet: Type.Optional(tracedPacket),
  outcomes: list(ref(traceOutcomeSchema)),
  warnings: list(ref(traceWarningSchema)),
  assumptions: Type.Optional(list(Type.String())),
  backend: Type.Optional(oneOf(['nftables'], { description: 'nftables when the rules were an nftables ruleset; absent for iptables' })),
}, { $id: 'TraceResult' });

export const packetSchema = Type.Object({
  source: Type.Optional(Type.String({ description: 'source IP; default 203.0.113.10, or 2001:db8::10 for an IPv6 destination (outside any cluster)' })),
  destination: Type.String({ description: 'destination: ip, ip:port or [ipv6]:port' }),
  port: Type.Optional(port({ description: 'destination port, unless the destination names it' })),
  sourcePort: Type.Optional(port()),
  protocol: Type.Optional(protocolInput({ description: 'TCP as Kubernetes writes it', default: 'tcp' })),
  entry: Type.Optional(oneOf(ENTRIES, {
    description: "where the packet enters; default OUTPUT when the source is one of the node's addresses, else PREROUTING",
  })),
  inInterface: Type.Optional(Type.String()),
  outInterface: Type.Optional(Type.String()),
}, { $id: 'Packet', description: 'The first packet of a new connection.', additionalProperties: false });

export const nodeSchema = Type.Object({
  name: Type.Optional(Type.String()),
  addresses: list(Type.String(), { minItems: 1 }),
}, { $id: 'NodeInput', additionalProperties: false });

export const traceRequestSchema = Type.Object({
  rules: Type.String({ description: 'the dump text: iptables-save or iptables -S output, an `iptables -L -n -v` listing of one table, or an nftables ruleset' }),
  format: Type.Optional(oneOf(FORMATS, { default: 'auto' })),
  table: Type.Optional(oneOf(TABLES, { description: 'for iptables -S input: the table it lists (inferred when absent)' })),
  node: ref(nodeSchema),
  packet: ref(packetSchema),
  manifests: Type.Optional(Type.String({ description: 'optional kubectl get … -o json|yaml output, to name pods and Services' })),
  routes: Type.Optional(Type.String({
    description: "optional: the node's `ip route` and/or `ip -6 route` output; names the interface a packet leaves through, so -o tests are decided rather than split into cases",
  })),
}, { $id: 'TraceRequest', additionalProperties: false });

export const snapshotUploadSchema = Type.Object({
  labels: Type.Optional(stringMap({ description: 'e.g. {"ci.job": "1234", "git.sha": "…"}' })),
  nodes: list(Type.Object({
    name: Type.String(),
    addresses: Type.Optional(list(Type.String())),
    rules: Type.Union([Type.String(), list(Type.String(), { minItems: 1, maxItems: 2 })], {
      description: 'iptables-save or iptables -S output, an `iptables -L -n -v` listing of one table, or an nftables ruleset; or a dual-stack node\'s two dumps as a list (iptables-save and ip6tables-save output, in either order: each is placed by its family)',
    }),
    rules6: Type.Optional(Type.String({ description: "a dual-stack node's IPv6 dump (ip6tables-save output) next to `rules` (its iptables-save output)" })),
    format: Type.Optional(oneOf(FORMATS)),
    table: Type.Optional(oneOf(TABLES)),
    routes: Type.Optional(Type.String({
      description: "optional: the node's `ip route` and/or `ip -6 route` output; traces of the snapshot take the interface a packet leaves through from it",
    })),
  }, { additionalProperties: false }), { minItems: 1 }),
  manifests: Type.Optional(Type.String({ description: 'kubectl get … -o json|yaml output' })),
}, { $id: 'SnapshotUpload', additionalProperties: false });

const sizedContent = Type.Object({ sha256: Type.Optional(Type.String()), bytes: Type.Optional(Type.Integer()) });

const dumpProperties = {
  format: Type.String(),
  sha256: Type.String(),
  bytes: Type.Integer(),
  rules: Type.Integer(),
  tables: list(Type.Object({
    name: Type.Optional(Type.String()),
    chains: Type.Optional(Type.Integer()),
    rules: Type.Optional(Type.Integer()),
  })),
  diagnostics: list(Type.Object({
    severity: Type.Optional(Type.String()),
    code: Type.Optional(Type.String()),
    message: Type.Optional(Type.String()),
    line: Type.Optional(Type.Integer()),
    column: Type.Optional(Type.Integer()),
    text: Type.Optional(Type.String()),
  })),
};

export const nodeDumpSchema = Type.Object(dumpProperties, {
  $id: 'NodeDump',
  description: "a node's second dump, beside its first: a dual-stack node's IPv6 dump (ip6tables-save output)",
});

export const stagedDumpSchema = Type.Object({
  upload: Type.String({ format: 'uuid' }),
  node: Type.String(),
  ipv6: ref(nodeDumpSchema),
  parsed: Type.Boolean({ description: 'false when the same dump was stored before and so was not parsed again' }),
}, { $id: 'StagedDump' });

export const nodeSummarySchema = Type.Object({
  name: Type.String(),
  addresses: list(Type.String()),
  format: dumpProperties.format,
  sha256: dumpProperties.sha256,
  bytes: Type.Optional(dumpProperties.bytes),
  rules: Type.Optional(dumpProperties.rules),
  tables: Type.Optional(dumpProperties.tables),
  diagnostics: Type.Optional(dumpProperties.diagnostics),
  ipv6: Type.Optional(Type.Unsafe<Static<typeof nodeDumpSchema> | null>({
    type: 'object',
    nullable: true,
    properties: dumpProperties,
    description: "a dual-stack node's IPv6 dump (ip6tables-save output) when it was uploaded; null otherwise. Traces of IPv6 packets go through it",
  })),
  routes: Type.Optional(Type.Unsafe<Static<typeof sizedContent> | null>({
    ...sizedContent,
    nullable: true,
    description: "the node's routes (ip route output) when they were uploaded; null otherwise",
  })),
}, { $id: 'NodeSummary' });

const snapshotProperties = {
  id: Type.String({ format: 'uuid' }),
  cluster: Type.String(),
  version: Type.Integer(),
  labels: Type.Optional(stringMap()),
  createdAt: Type.String({ format: 'date-time' }),
  contentHash: Type.Optional(Type.String()),
  manifests: Type.Optional(nullable(sizedContent)),
};

export const snapshotSummarySchema = Type.Object(snapshotProperties, { $id: 'SnapshotSummary' });

export const snapshotSchema = Type.Object({
  ...snapshotProperties,
  nodes: list(ref(nodeSummarySchema)),
  reuploads: Type.Optional(list(Type.Object({ labels: stringMap(), createdAt: Type.String({ format: 'date-time' }) }), {
    description: 'Uploads of this same content (while it was the latest) with their labels, newest first; at most 20',
  })),
}, { $id: 'Snapshot' });

export const createSnapshotResultSchema = Type.Object({
  created: Type.Boolean({ description: "false when the content equals the cluster's latest snapshot, which is returned" }),
  snapshot: ref(snapshotSchema),
  labels: Type.Object({
    stored: oneOf(['snapshot', 'reupload', 'none']),
    detail: Type.String(),
  }, {
    description: "What happened to the labels sent: `snapshot` (the new snapshot's labels), `reupload` (the content equals the latest snapshot, which keeps its labels; these were recorded under its `reuploads`) or `none`",
  }),
}, { $id: 'CreateSnapshotResult' });

export const uploadSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  cluster: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  expiresAt: Type.String({ format: 'date-time', description: 'an upload not committed by then is deleted' }),
  nodes: list(ref(nodeSummarySchema)),
  manifests: nullable(sizedContent),
}, { $id: 'Upload' });

export const stagedNodeSchema = Type.Object({
  upload: Type.String({ format: 'uuid' }),
  node: ref(nodeSummarySchema),
  parsed: Type.Boolean({ description: 'false when the same dump was stored before and so was not parsed again' }),
}, { $id: 'StagedNode' });

export const snapshotPageSchema = Type.Object({
  items: list(ref(snapshotSummarySchema)),
  nextCursor: nullable(Type.String()),
}, { $id: 'SnapshotPage' });

export const clusterSchema = Type.Object({
  name: Type.Optional(Type.String()),
  createdAt: Type.Optional(Type.String({ format: 'date-time' })),
  snapshots: Type.Optional(Type.Integer()),
  latest: Type.Optional(nullable(Type.Object({
    id: Type.Optional(Type.String()),
    version: Type.Optional(Type.Integer()),
    createdAt: Type.Optional(Type.String({ format: 'date-time' })),
  }))),
}, { $id: 'Cluster' });

export const snapshotTraceSchema = Type.Object({
  snapshot: Type.String(),
  results: list(Type.Object({
    node: Type.String(),
    family: oneOf(['ipv4', 'ipv6'], { description: "the packet's address family: the node's dump of that family was traced" }),
    frontend: Type.Optional(Type.Object({
      kind: Type.Optional(Type.String()),
      destination: Type.Optional(Type.String()),
      port: Type.Optional(Type.Integer()),
      // Typed string as the service's NodeTrace declares it.
      protocol: Type.Optional(stringOneOf(PROTOCOLS)),
      servicePort: Type.Optional(Type.Object({
        name: Type.Optional(Type.String()),
        port: Type.Optional(Type.Integer()),
        protocol: Type.Optional(Type.String()),
      })),
    }, { description: 'for a trace by Service: the frontend traced' })),
    entry: Type.Optional(traceEntry),
    packet: Type.Optional(tracedPacket),
    outcomes: list(ref(traceOutcomeSchema), {
      description: "every way the packet can go; none when the node has no dump of the packet's family (warning NO_DUMP_FOR_FAMILY)",
    }),
    warnings: list(ref(traceWarningSchema)),
    assumptions: Type.Optional(list(Type.String())),
  })),
}, { $id: 'SnapshotTrace' });

export const auditReportSchema = Type.Object({
  snapshot: Type.Optional(Type.String()),
  findings: list(Type.Object({
    check: Type.String(),
    severity: oneOf(['error', 'warning', 'info']),
    node: Type.Optional(Type.String()),
    service: Type.Optional(Type.String({ description: 'ns/name' })),
    port: Type.Optional(Type.String()),
    message: Type.String(),
    rules: list(Type.Object({
      table: Type.Optional(Type.String()),
      chain: Type.Optional(Type.String()),
      index: Type.Optional(Type.Integer()),
      rule: Type.Optional(Type.String()),
    })),
  })),
}, { $id: 'AuditReport' });

const BACKEND = oneOf(['iptables', 'nftables', 'mixed', 'none']);
const CHANGE = oneOf(['added', 'removed', 'changed']);

export const diffPageSchema = Type.Object({
  from: Type.Optional(Type.String()),
  to: Type.Optional(Type.String()),
  summary: Type.Object({
    frontends: Type.Optional(Type.Object(counts(['added', 'removed', 'changed', 'unchanged', 'known']), {
      description: 'known: frontends whose outcomes differ as the two backends (iptables, nftables) differ on purpose; not counted as changed',
    })),
    endpoints: Type.Optional(Type.Object(counts(['added', 'removed']))),
    verdictChanges: Type.Optional(Type.Integer()),
    masqueradeChanges: Type.Optional(Type.Integer()),
    probabilityChanges: Type.Optional(Type.Integer()),
    rules: Type.Optional(Type.Object(counts([
      'chainsAdded', 'chainsRemoved', 'rulesAdded', 'rulesRemoved', 'rulesMoved', 'renamed', 'setsAdded', 'setsRemoved', 'elementsAdded', 'elementsRemoved',
    ]))),
    manifests: Type.Optional(Type.Object({
      ...counts(['added', 'removed', 'changed']),
      compared: Type.Optional(Type.Boolean()),
      reason: Type.Optional(Type.String()),
    }, { description: 'compared only when both snapshots have manifests; otherwise reason says which lacks them and nothing is listed' })),
    nodes: Type.Optional(Type.Object(counts(['added', 'removed', 'compared']), {
      description: 'nodes only in to (added), only in from (removed), in both (compared); listed in unpairedNodes',
    })),
  }),
  clusters: Type.Optional(Type.Object({
    from: Type.Optional(Type.String()),
    to: Type.Optional(Type.String()),
    same: Type.Optional(Type.Boolean()),
  }, { description: 'the clusters of the two snapshots; a diff across clusters is allowed, and marked' })),
  unpairedNodes: Type.Optional(Type.Object({
    a: Type.Optional(list(Type.String())),
    b: Type.Optional(list(Type.String())),
  })),
  backends: Type.Optional(Type.Object({
    from: Type.Optional(BACKEND),
    to: Type.Optional(BACKEND),
    across: Type.Optional(list(Type.String(), { description: 'node pairs whose rules are of different backends' })),
  }, { description: 'the rule backends of the nodes compared; pairs of nodes of different backends are compared by where traffic goes, not rule by rule' })),
  knownDifferences: Type.Optional(list(Type.Object({
    node: Type.Optional(Type.String()),
    code: Type.Optional(KNOWN_DIFFERENCE_CODE),
    reason: Type.Optional(Type.String()),
    frontends: Type.Optional(Type.Integer({ description: 'frontends and probes whose differing outcomes it explains; 0 when only the rules show it' })),
    seen: Type.Optional(oneOf(['trace', 'rules'])),
  }), { description: 'what kube-proxy\'s iptables and nftables modes do differently on purpose, per node (not paged)' })),
  frontends: list(Type.Object({
    node: Type.Optional(Type.String()),
    service: Type.Optional(Type.String({ description: 'ns/name' })),
    frontend: Type.Optional(Type.Object({
      ip: Type.Optional(Type.String()),
      port: Type.Optional(Type.Integer()),
      protocol: Type.Optional(Type.String()),
      kind: Type.Optional(Type.String()),
    })),
    change: Type.Optional(CHANGE),
    before: Type.Optional(list(ref(traceOutcomeSchema))),
    after: Type.Optional(list(ref(traceOutcomeSchema))),
    changes: Type.Optional(list(Type.String())),
    known: Type.Optional(Type.Object({
      code: Type.Optional(KNOWN_DIFFERENCE_CODE),
      reason: Type.Optional(Type.String()),
    }, { description: 'across backends: the difference is a known one between iptables and nftables mode' })),
    probe: Type.Optional(oneOf(['localhost-nodeport', 'cluster-ip-other-port', 'service-cidr-unallocated'], {
      description: 'across backends: a packet sent to show a known difference, not a frontend both modes list',
    })),
  })),
  rules: list(Type.Object({
    node: Type.Optional(Type.String()),
    table: Type.Optional(Type.String()),
    change: Type.Optional(oneOf([
      'chain-added', 'chain-removed', 'rule-added', 'rule-removed', 'rule-moved', 'chain-renamed', 'set-added', 'set-removed', 'element-added', 'element-removed',
    ])),
    chain: Type.Optional(Type.String({ description: 'the chain; for nftables set and element changes, the set or map as `@name`' })),
    rule: Type.Optional(Type.String()),
    from: Type.Optional(Type.Union([Type.String(), Type.Integer()])),
    to: Type.Optional(Type.Union([Type.String(), Type.Integer()])),
  })),
  manifests: list(Type.Object({
    kind: Type.Optional(Type.String()),
    name: Type.Optional(Type.String()),
    change: Type.Optional(CHANGE),
    fields: Type.Optional(list(Type.Object({
      path: Type.Optional(Type.String()),
      before: Type.Optional(Type.Unknown()),
      after: Type.Optional(Type.Unknown()),
    }))),
  })),
  totals: Type.Optional(Type.Object(counts(['frontends', 'rules', 'manifests']))),
  nextCursor: nullable(Type.String()),
}, { $id: 'DiffPage' });

export const healthSchema = Type.Object({
  status: Type.Optional(Type.String()),
  database: Type.Optional(Type.String()),
}, { $id: 'Health' });

export const sharedSchemas = [
  problemSchema,
  traceStepSchema,
  traceOutcomeSchema,
  traceWarningSchema,
  traceResultSchema,
  packetSchema,
  nodeSchema,
  traceRequestSchema,
  snapshotUploadSchema,
  nodeSummarySchema,
  snapshotSummarySchema,
  snapshotSchema,
  createSnapshotResultSchema,
  uploadSchema,
  stagedNodeSchema,
  nodeDumpSchema,
  stagedDumpSchema,
  snapshotPageSchema,
  clusterSchema,
  snapshotTraceSchema,
  auditReportSchema,
  diffPageSchema,
  healthSchema,
] as const;

/** A problem+json answer, as every route's error responses refer to it. */
export const problem = ref(problemSchema);
