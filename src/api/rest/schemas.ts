/**
 * Shared JSON schemas of the REST API. Each has an `$id`, so @fastify/swagger lists it under
 * `components.schemas` and routes refer to it with `{ $ref: 'Name#' }`.
 */

export const problemSchema = {
  $id: 'Problem',
  type: 'object',
  description: 'RFC 9457 problem details; `code` is stable, `line`/`column`/`text` locate bad input.',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    code: { type: 'string' },
    instance: { type: 'string' },
    line: { type: 'integer' },
    column: { type: 'integer' },
    text: { type: 'string' },
    excerpt: { type: 'string' },
    node: { type: 'string' },
    part: { type: 'string' },
    errors: { type: 'array', items: { type: 'object', additionalProperties: true } },
  },
  required: ['type', 'title', 'status', 'code'],
  additionalProperties: true,
} as const;

/** What kube-proxy's two modes do differently on purpose (engine/diff/known-differences.ts). */
const KNOWN_DIFFERENCE_CODE = {
  type: 'string',
  enum: ['NODEPORT_LOCALHOST', 'CLUSTER_IP_OTHER_PORT', 'SERVICE_CIDR_UNALLOCATED', 'NODEPORT_ADDRESSES', 'FORWARD_ACCEPT', 'CONNTRACK_INVALID', 'DROP_POINT', 'FIREWALL_WITHOUT_ENDPOINTS'],
} as const;

/** The protocols as answers name them (requests take them in any case). */
const PROTOCOL = { type: 'string', enum: ['tcp', 'udp', 'sctp', 'icmp'] } as const;

export const traceStepSchema = {
  $id: 'TraceStep',
  type: 'object',
  description: 'A rule whose matches all succeeded (or a built-in chain policy, index 0), in traversal order. For nftables, table is `family name` (e.g. `ip kube-proxy`) and action includes the verdict-map element taken.',
  properties: {
    hook: { type: 'string', enum: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'] },
    table: { type: 'string' },
    chain: { type: 'string' },
    index: { type: 'integer', description: '1-based position in the chain, as in the dump; 0 for the policy' },
    line: { type: 'integer', description: 'line in the uploaded dump; 0 for assumed rules' },
    rule: { type: 'string' },
    action: { type: 'string' },
    assumed: { type: 'string', description: 'why this rule, absent from the dump, was assumed' },
    handle: { type: 'integer', description: "nftables: the rule's handle, when the dump listed handles (`nft -a`)" },
  },
  required: ['hook', 'table', 'chain', 'index', 'rule', 'action'],
} as const;

export const traceOutcomeSchema = {
  $id: 'TraceOutcome',
  type: 'object',
  properties: {
    probability: { type: 'number' },
    exactProbability: { type: 'string', description: 'the exact fraction, e.g. "1/4"' },
    verdict: { type: 'string', enum: ['DNAT', 'ACCEPT', 'DROP', 'REJECT'] },
    destination: {
      type: 'object',
      properties: { ip: { type: 'string' }, port: { type: 'integer' } },
      required: ['ip', 'port'],
    },
    masquerade: { type: 'boolean' },
    snat: {
      type: 'object',
      properties: { ip: { type: 'string', nullable: true }, port: { type: 'integer', nullable: true } },
    },
    delivery: { type: 'string', nullable: true, enum: ['local', 'forward', 'output', null], description: 'null when dropped before routing' },
    outInterface: { type: 'string', description: "the interface the packet leaves through, when packet.outInterface or the node's routes say it" },
    conditions: {
      type: 'array',
      items: { type: 'string' },
      description: 'when the answer depends on an interface the request does not name: the case this outcome holds in (e.g. "if the packet to 8.8.8.8 leaves through docker0"); probability is then given this case',
    },
    rejectWith: { type: 'string' },
    mark: { type: 'string' },
    path: { type: 'array', items: { $ref: 'TraceStep#' } },
    notes: { type: 'array', items: { type: 'string' } },
    service: {
      type: 'object',
      description: 'the Service and port the packet went through (from rule comments, chain-name hashes or the manifests)',
      properties: {
        namespace: { type: 'string' },
        name: { type: 'string' },
        port: { type: 'object', properties: { name: { type: 'string' }, port: { type: 'integer', nullable: true }, protocol: { type: 'string' } } },
        frontend: { type: 'string' },
        via: { type: 'string' },
      },
    },
    endpoint: {
      type: 'object',
      properties: {
        ip: { type: 'string' },
        port: { type: 'integer' },
        node: { type: 'string' },
        listed: { type: 'boolean' },
        pod: {
          type: 'object',
          properties: {
            name: { type: 'string' }, namespace: { type: 'string' }, node: { type: 'string', nullable: true },
            ready: { type: 'boolean', nullable: true }, serving: { type: 'boolean', nullable: true }, terminating: { type: 'boolean' },
          },
        },
      },
    },
    masqueradeReason: { type: 'string', description: 'why the client address is replaced, in Kubernetes terms' },
  },
  required: ['probability', 'verdict', 'destination', 'masquerade', 'delivery', 'path'],
} as const;

export const traceWarningSchema = {
  $id: 'TraceWarning',
  type: 'object',
  properties: {
    code: { type: 'string' },
    message: { type: 'string' },
    node: { type: 'string', description: 'the node it is about, in a trace of a stored snapshot' },
    rule: {
      type: 'object',
      properties: {
        table: { type: 'string' },
        chain: { type: 'string' },
        index: { type: 'integer' },
        line: { type: 'integer' },
        text: { type: 'string' },
      },
    },
  },
  required: ['code', 'message'],
} as const;

export const traceResultSchema = {
  $id: 'TraceResult',
  type: 'object',
  properties: {
    node: {
      type: 'object',
      properties: { name: { type: 'string' }, addresses: { type: 'array', items: { type: 'string' } } },
    },
    entry: { type: 'string', enum: ['PREROUTING', 'OUTPUT'] },
    packet: {
      type: 'object',
      properties: {
        source: { type: 'string' },
        destination: { type: 'string' },
        port: { type: 'integer' },
        protocol: PROTOCOL,
        sourcePort: { type: 'integer', nullable: true },
      },
    },
    outcomes: { type: 'array', items: { $ref: 'TraceOutcome#' } },
    warnings: { type: 'array', items: { $ref: 'TraceWarning#' } },
    assumptions: { type: 'array', items: { type: 'string' } },
    backend: { type: 'string', enum: ['nftables'], description: 'nftables when the rules were an nftables ruleset; absent for iptables' },
  },
  required: ['outcomes', 'warnings'],
} as const;

export const packetSchema = {
  $id: 'Packet',
  type: 'object',
  description: 'The first packet of a new connection.',
  properties: {
    source: { type: 'string', description: "source IP; default 203.0.113.10, or 2001:db8::10 for an IPv6 destination (outside any cluster)" },
    destination: { type: 'string', description: 'destination: ip, ip:port or [ipv6]:port' },
    port: { type: 'integer', minimum: 0, maximum: 65535, description: 'destination port, unless the destination names it' },
    sourcePort: { type: 'integer', minimum: 0, maximum: 65535 },
    protocol: { type: 'string', description: 'tcp, udp, sctp or icmp, in any case (TCP as Kubernetes writes it)', default: 'tcp' },
    entry: {
      type: 'string',
      enum: ['PREROUTING', 'OUTPUT'],
      description: "where the packet enters; default OUTPUT when the source is one of the node's addresses, else PREROUTING",
    },
    inInterface: { type: 'string' },
    outInterface: { type: 'string' },
  },
  required: ['destination'],
  additionalProperties: false,
} as const;

export const nodeSchema = {
  $id: 'NodeInput',
  type: 'object',
  properties: {
    name: { type: 'string' },
    addresses: { type: 'array', items: { type: 'string' }, minItems: 1 },
  },
  required: ['addresses'],
  additionalProperties: false,
} as const;

export const traceRequestSchema = {
  $id: 'TraceRequest',
  type: 'object',
  properties: {
    rules: { type: 'string', description: 'the dump text: iptables-save or iptables -S output, an `iptables -L -n -v` listing of one table, or an nftables ruleset' },
    format: { type: 'string', enum: ['auto', 'iptables-save', 'iptables-S', 'nftables'], default: 'auto' },
    table: {
      type: 'string',
      enum: ['raw', 'mangle', 'nat', 'filter', 'security'],
      description: 'for iptables -S input: the table it lists (inferred when absent)',
    },
    node: { $ref: 'NodeInput#' },
    packet: { $ref: 'Packet#' },
    manifests: { type: 'string', description: 'optional kubectl get … -o json|yaml output, to name pods and Services' },
    routes: {
      type: 'string',
      description: "optional: the node's `ip route` and/or `ip -6 route` output; names the interface a packet leaves through, so -o tests are decided rather than split into cases",
    },
  },
  required: ['rules', 'node', 'packet'],
  additionalProperties: false,
} as const;

const labelsSchema = { type: 'object', additionalProperties: { type: 'string' } } as const;

export const snapshotUploadSchema = {
  $id: 'SnapshotUpload',
  type: 'object',
  properties: {
    labels: { ...labelsSchema, description: 'e.g. {"ci.job": "1234", "git.sha": "…"}' },
    nodes: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          addresses: { type: 'array', items: { type: 'string' } },
          rules: {
            description: 'iptables-save or iptables -S output, an `iptables -L -n -v` listing of one table, or an nftables ruleset; or a dual-stack node\'s two dumps as a list (iptables-save and ip6tables-save output, in either order: each is placed by its family)',
            anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 2 }],
          },
          rules6: { type: 'string', description: "a dual-stack node's IPv6 dump (ip6tables-save output) next to `rules` (its iptables-save output)" },
          format: { type: 'string', enum: ['auto', 'iptables-save', 'iptables-S', 'nftables'] },
          table: { type: 'string', enum: ['raw', 'mangle', 'nat', 'filter', 'security'] },
          routes: {
            type: 'string',
            description: "optional: the node's `ip route` and/or `ip -6 route` output; traces of the snapshot take the interface a packet leaves through from it",
          },
        },
        required: ['name', 'rules'],
        additionalProperties: false,
      },
    },
    manifests: { type: 'string', description: 'kubectl get … -o json|yaml output' },
  },
  required: ['nodes'],
  additionalProperties: false,
} as const;

const dumpProperties = {
  format: { type: 'string' },
  sha256: { type: 'string' },
  bytes: { type: 'integer' },
  rules: { type: 'integer' },
  tables: {
    type: 'array',
    items: { type: 'object', properties: { name: { type: 'string' }, chains: { type: 'integer' }, rules: { type: 'integer' } } },
  },
  diagnostics: {
    type: 'array',
    items: {
      type: 'object',
      properties: {
        severity: { type: 'string' }, code: { type: 'string' }, message: { type: 'string' },
        line: { type: 'integer' }, column: { type: 'integer' }, text: { type: 'string' },
      },
    },
  },
} as const;

export const nodeDumpSchema = {
  $id: 'NodeDump',
  type: 'object',
  description: "a node's second dump, beside its first: a dual-stack node's IPv6 dump (ip6tables-save output)",
  properties: dumpProperties,
  required: ['format', 'sha256', 'bytes', 'rules', 'tables', 'diagnostics'],
} as const;

export const stagedDumpSchema = {
  $id: 'StagedDump',
  type: 'object',
  properties: {
    upload: { type: 'string', format: 'uuid' },
    node: { type: 'string' },
    ipv6: { $ref: 'NodeDump#' },
    parsed: { type: 'boolean', description: 'false when the same dump was stored before and so was not parsed again' },
  },
  required: ['upload', 'node', 'ipv6', 'parsed'],
} as const;

export const nodeSummarySchema = {
  $id: 'NodeSummary',
  type: 'object',
  properties: {
    name: { type: 'string' },
    addresses: { type: 'array', items: { type: 'string' } },
    ...dumpProperties,
    ipv6: {
      type: 'object',
      nullable: true,
      properties: dumpProperties,
      description: "a dual-stack node's IPv6 dump (ip6tables-save output) when it was uploaded; null otherwise. Traces of IPv6 packets go through it",
    },
    routes: {
      type: 'object',
      nullable: true,
      description: "the node's routes (ip route output) when they were uploaded; null otherwise",
      properties: { sha256: { type: 'string' }, bytes: { type: 'integer' } },
    },
  },
  required: ['name', 'addresses', 'format', 'sha256'],
} as const;

const snapshotProperties = {
  id: { type: 'string', format: 'uuid' },
  cluster: { type: 'string' },
  version: { type: 'integer' },
  labels: labelsSchema,
  createdAt: { type: 'string', format: 'date-time' },
  contentHash: { type: 'string' },
  manifests: {
    type: 'object',
    nullable: true,
    properties: { sha256: { type: 'string' }, bytes: { type: 'integer' } },
  },
} as const;

export const snapshotSummarySchema = {
  $id: 'SnapshotSummary',
  type: 'object',
  properties: snapshotProperties,
  required: ['id', 'cluster', 'version', 'createdAt'],
} as const;

export const snapshotSchema = {
  $id: 'Snapshot',
  type: 'object',
  properties: {
    ...snapshotProperties,
    nodes: { type: 'array', items: { $ref: 'NodeSummary#' } },
    reuploads: {
      type: 'array',
      description: 'Uploads of this same content (while it was the latest) with their labels, newest first; at most 20',
      items: { type: 'object', properties: { labels: labelsSchema, createdAt: { type: 'string', format: 'date-time' } }, required: ['labels', 'createdAt'] },
    },
  },
  required: ['id', 'cluster', 'version', 'createdAt', 'nodes'],
} as const;

export const createSnapshotResultSchema = {
  $id: 'CreateSnapshotResult',
  type: 'object',
  properties: {
    created: { type: 'boolean', description: "false when the content equals the cluster's latest snapshot, which is returned" },
    snapshot: { $ref: 'Snapshot#' },
    labels: {
      type: 'object',
      description: "What happened to the labels sent: `snapshot` (the new snapshot's labels), `reupload` (the content equals the latest snapshot, which keeps its labels; these were recorded under its `reuploads`) or `none`",
      properties: { stored: { type: 'string', enum: ['snapshot', 'reupload', 'none'] }, detail: { type: 'string' } },
      required: ['stored', 'detail'],
    },
  },
  required: ['created', 'snapshot', 'labels'],
} as const;

export const uploadSchema = {
  $id: 'Upload',
  type: 'object',
  properties: {
    id: { type: 'string', format: 'uuid' },
    cluster: { type: 'string' },
    createdAt: { type: 'string', format: 'date-time' },
    expiresAt: { type: 'string', format: 'date-time', description: 'an upload not committed by then is deleted' },
    nodes: { type: 'array', items: { $ref: 'NodeSummary#' } },
    manifests: {
      type: 'object', nullable: true,
      properties: { sha256: { type: 'string' }, bytes: { type: 'integer' } },
    },
  },
  required: ['id', 'cluster', 'createdAt', 'expiresAt', 'nodes', 'manifests'],
} as const;

export const stagedNodeSchema = {
  $id: 'StagedNode',
  type: 'object',
  properties: {
    upload: { type: 'string', format: 'uuid' },
    node: { $ref: 'NodeSummary#' },
    parsed: { type: 'boolean', description: 'false when the same dump was stored before and so was not parsed again' },
  },
  required: ['upload', 'node', 'parsed'],
} as const;

export const snapshotPageSchema = {
  $id: 'SnapshotPage',
  type: 'object',
  properties: {
    items: { type: 'array', items: { $ref: 'SnapshotSummary#' } },
    nextCursor: { type: 'string', nullable: true },
  },
  required: ['items', 'nextCursor'],
} as const;

export const clusterSchema = {
  $id: 'Cluster',
  type: 'object',
  properties: {
    name: { type: 'string' },
    createdAt: { type: 'string', format: 'date-time' },
    snapshots: { type: 'integer' },
    latest: {
      type: 'object',
      nullable: true,
      properties: { id: { type: 'string' }, version: { type: 'integer' }, createdAt: { type: 'string', format: 'date-time' } },
    },
  },
} as const;

export const snapshotTraceSchema = {
  $id: 'SnapshotTrace',
  type: 'object',
  properties: {
    snapshot: { type: 'string' },
    results: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          node: { type: 'string' },
          family: { type: 'string', enum: ['ipv4', 'ipv6'], description: "the packet's address family: the node's dump of that family was traced" },
          frontend: {
            type: 'object',
            description: 'for a trace by Service: the frontend traced',
            properties: {
              kind: { type: 'string' }, destination: { type: 'string' }, port: { type: 'integer' }, protocol: PROTOCOL,
              servicePort: { type: 'object', properties: { name: { type: 'string' }, port: { type: 'integer' }, protocol: { type: 'string' } } },
            },
          },
          entry: traceResultSchema.properties.entry,
          packet: traceResultSchema.properties.packet,
          outcomes: {
            type: 'array', items: { $ref: 'TraceOutcome#' },
            description: "every way the packet can go; none when the node has no dump of the packet's family (warning NO_DUMP_FOR_FAMILY)",
          },
          warnings: { type: 'array', items: { $ref: 'TraceWarning#' } },
          assumptions: { type: 'array', items: { type: 'string' } },
        },
        required: ['node', 'family', 'outcomes', 'warnings'],
      },
    },
  },
  required: ['snapshot', 'results'],
} as const;

export const auditReportSchema = {
  $id: 'AuditReport',
  type: 'object',
  properties: {
    snapshot: { type: 'string' },
    findings: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          check: { type: 'string' },
          severity: { type: 'string', enum: ['error', 'warning', 'info'] },
          node: { type: 'string' },
          service: { type: 'string', description: 'ns/name' },
          port: { type: 'string' },
          message: { type: 'string' },
          rules: {
            type: 'array',
            items: {
              type: 'object',
              properties: { table: { type: 'string' }, chain: { type: 'string' }, index: { type: 'integer' }, rule: { type: 'string' } },
            },
          },
        },
        required: ['check', 'severity', 'message', 'rules'],
      },
    },
  },
  required: ['findings'],
} as const;

const counts = (...names: string[]) => ({ type: 'object', properties: Object.fromEntries(names.map((n) => [n, { type: 'integer' }])) });

export const diffPageSchema = {
  $id: 'DiffPage',
  type: 'object',
  properties: {
    from: { type: 'string' },
    to: { type: 'string' },
    summary: {
      type: 'object',
      properties: {
        frontends: {
          ...counts('added', 'removed', 'changed', 'unchanged', 'known'),
          description: 'known: frontends whose outcomes differ as the two backends (iptables, nftables) differ on purpose; not counted as changed',
        },
        endpoints: counts('added', 'removed'),
        verdictChanges: { type: 'integer' },
        masqueradeChanges: { type: 'integer' },
        probabilityChanges: { type: 'integer' },
        rules: counts('chainsAdded', 'chainsRemoved', 'rulesAdded', 'rulesRemoved', 'rulesMoved', 'renamed', 'setsAdded', 'setsRemoved', 'elementsAdded', 'elementsRemoved'),
        manifests: {
          type: 'object',
          description: 'compared only when both snapshots have manifests; otherwise reason says which lacks them and nothing is listed',
          properties: { ...counts('added', 'removed', 'changed').properties, compared: { type: 'boolean' }, reason: { type: 'string' } },
        },
        nodes: { ...counts('added', 'removed', 'compared'), description: 'nodes only in to (added), only in from (removed), in both (compared); listed in unpairedNodes' },
      },
    },
    clusters: {
      type: 'object',
      description: 'the clusters of the two snapshots; a diff across clusters is allowed, and marked',
      properties: { from: { type: 'string' }, to: { type: 'string' }, same: { type: 'boolean' } },
    },
    unpairedNodes: {
      type: 'object',
      properties: { a: { type: 'array', items: { type: 'string' } }, b: { type: 'array', items: { type: 'string' } } },
    },
    backends: {
      type: 'object',
      description: 'the rule backends of the nodes compared; pairs of nodes of different backends are compared by where traffic goes, not rule by rule',
      properties: {
        from: { type: 'string', enum: ['iptables', 'nftables', 'mixed', 'none'] },
        to: { type: 'string', enum: ['iptables', 'nftables', 'mixed', 'none'] },
        across: { type: 'array', items: { type: 'string' }, description: 'node pairs whose rules are of different backends' },
      },
    },
    knownDifferences: {
      type: 'array',
      description: 'what kube-proxy\'s iptables and nftables modes do differently on purpose, per node (not paged)',
      items: {
        type: 'object',
        properties: {
          node: { type: 'string' },
          code: KNOWN_DIFFERENCE_CODE,
          reason: { type: 'string' },
          frontends: { type: 'integer', description: 'frontends and probes whose differing outcomes it explains; 0 when only the rules show it' },
          seen: { type: 'string', enum: ['trace', 'rules'] },
        },
      },
    },
    frontends: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          node: { type: 'string' },
          service: { type: 'string', description: 'ns/name' },
          frontend: {
            type: 'object',
            properties: { ip: { type: 'string' }, port: { type: 'integer' }, protocol: { type: 'string' }, kind: { type: 'string' } },
          },
          change: { type: 'string', enum: ['added', 'removed', 'changed'] },
          before: { type: 'array', items: { $ref: 'TraceOutcome#' } },
          after: { type: 'array', items: { $ref: 'TraceOutcome#' } },
          changes: { type: 'array', items: { type: 'string' } },
          known: {
            type: 'object',
            description: 'across backends: the difference is a known one between iptables and nftables mode',
            properties: { code: KNOWN_DIFFERENCE_CODE, reason: { type: 'string' } },
          },
          probe: {
            type: 'string',
            enum: ['localhost-nodeport', 'cluster-ip-other-port', 'service-cidr-unallocated'],
            description: 'across backends: a packet sent to show a known difference, not a frontend both modes list',
          },
        },
      },
    },
    rules: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          node: { type: 'string' },
          table: { type: 'string' },
          change: {
            type: 'string',
            enum: ['chain-added', 'chain-removed', 'rule-added', 'rule-removed', 'rule-moved', 'chain-renamed', 'set-added', 'set-removed', 'element-added', 'element-removed'],
          },
          chain: { type: 'string', description: 'the chain; for nftables set and element changes, the set or map as `@name`' },
          rule: { type: 'string' },
          from: { anyOf: [{ type: 'string' }, { type: 'integer' }] },
          to: { anyOf: [{ type: 'string' }, { type: 'integer' }] },
        },
      },
    },
    manifests: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          kind: { type: 'string' },
          name: { type: 'string' },
          change: { type: 'string', enum: ['added', 'removed', 'changed'] },
          fields: {
            type: 'array',
            items: { type: 'object', properties: { path: { type: 'string' }, before: {}, after: {} } },
          },
        },
      },
    },
    totals: counts('frontends', 'rules', 'manifests'),
    nextCursor: { type: 'string', nullable: true },
  },
  required: ['summary', 'frontends', 'rules', 'manifests', 'nextCursor'],
} as const;

export const healthSchema = {
  $id: 'Health',
  type: 'object',
  properties: { status: { type: 'string' }, database: { type: 'string' } },
} as const;

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
