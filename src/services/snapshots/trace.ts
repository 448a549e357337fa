/**
 * Traces through a stored snapshot: a packet (or every frontend of a Service port) on each node,
 * through the node's dump of the packet's family, parsed once and kept in the shared ruleset
 * cache; outcomes named in Kubernetes terms from the snapshot's manifests, read once and kept.
 */
import type { AnyRuleset, Family, Protocol, RouteTable } from '../../engine/index.ts';
import { defaultSource, EngineError, familyOf, isNftables, parseRoutes, readDestination, readProtocol, resolveServiceFrontends } from '../../engine/index.ts';
import { AppError } from '../../app-error.ts';
import type { SnapshotStore, StoredNode, StoredSnapshot } from '../../store/snapshot-store.ts';
import type { ByteCache } from '../byte-cache.ts';
import { computeOnce } from '../byte-cache.ts';
import { rereadFormat } from '../dump-summary.ts';
import type { SummaryJson } from '../dump-summary.ts';
import { annotate, BYTES_PER_MANIFEST_BYTE, readMeaning } from '../kube-meaning.ts';
import type { Meaning } from '../kube-meaning.ts';
import type { RulesetCache } from '../ruleset-cache.ts';
import type { NodeTrace, SnapshotTrace, StoredTraceQuery } from '../snapshot-types.ts';
import type { TraceService } from '../trace-service.ts';
import type { SnapshotLookup } from './lookup.ts';
import { FAMILY_NAME, familyOfDump } from './views.ts';

/** What routes cost once parsed, per byte of `ip route` output (measured: about 8.5). */
export const BYTES_PER_ROUTE_BYTE = 9;

/** A packet read from what the caller wrote: its errors are the caller's (400). */
function packetInput<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof EngineError) throw new AppError('BAD_PACKET', e.message);
    throw e;
  }
}

interface Target {
  readonly destination: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly frontend?: NodeTrace['frontend'];
  readonly onlyNode?: string;
}

export function createSnapshotTrace(deps: {
  readonly store: SnapshotStore;
  readonly lookup: SnapshotLookup;
  readonly traceService: TraceService;
  readonly rulesets: RulesetCache;
  /** Manifests read, by their sha256. */
  readonly manifests: ByteCache<Promise<Meaning | null>>;
  /** Parsed routes, by their sha256. */
  readonly routes: ByteCache<Promise<RouteTable | undefined>>;
}): (id: string, q: StoredTraceQuery) => Promise<SnapshotTrace> {
  const { store, lookup, traceService, rulesets } = deps;

  function meaningOf(s: StoredSnapshot): Promise<Meaning | null> {
    if (!s.manifestsSha256) return Promise.resolve(null);
    return computeOnce(deps.manifests, s.manifestsSha256, async () => {
      const text = await store.manifests(s.id);
      return text === null ? null : readMeaning(text);
    }, () => (s.manifestsBytes ?? 0) * BYTES_PER_MANIFEST_BYTE);
  }

  function routesOf(snapshotId: string, n: StoredNode): Promise<RouteTable | undefined> {
    if (!n.routes) return Promise.resolve(undefined);
    return computeOnce(deps.routes, n.routes.sha256, async () => {
      const raw = await store.rawRoutes(snapshotId, n.name);
      return raw ? parseRoutes(raw.toString('utf8')) : undefined;
    }, () => n.routes!.bytes * BYTES_PER_ROUTE_BYTE);
  }

  /** A node's dump of one family (its first dump, or its IPv6 dump), parsed. */
  function rulesetOf(snapshotId: string, n: StoredNode, which: 'rules' | 'rules6' = 'rules'): Promise<AnyRuleset> {
    const dump = which === 'rules6' ? n.ipv6! : n;
    const table = (dump.summary as SummaryJson).table;
    return rulesets.get({ sha256: dump.sha256, format: rereadFormat(dump.format, dump.summary), table }, async () => {
      const raw = which === 'rules6' ? await store.rawRules6(snapshotId, n.name) : await store.rawRules(snapshotId, n.name);
      if (!raw) throw new AppError('NOT_FOUND', `node ${n.name} not found in snapshot ${snapshotId}`);
      return raw;
    });
  }

  /**
   * Which of a node's dumps a packet of `family` goes through: its IPv6 dump when it has one and
   * the packet is IPv6, else its first dump when that is of the family (or an nftables ruleset,
   * which holds both); null when the node has no dump of the family.
   */
  async function dumpFor(snapshotId: string, n: StoredNode, family: Family): Promise<AnyRuleset | null> {
    if (family === 'ipv6' && n.ipv6) return rulesetOf(snapshotId, n, 'rules6');
    let own = familyOfDump(n.summary);
    // Summaries kept before families were recorded: the parsed dump says.
    if (own === undefined) {
      const rs = await rulesetOf(snapshotId, n);
      own = isNftables(rs) ? null : rs.family;
    }
    return own === null || own === family ? rulesetOf(snapshotId, n) : null;
  }

  /** A Service instead of an address: every frontend of the Service port (cluster IPs, NodePorts on each node, load-balancer and external IPs), each traced on every node. */
  function targetsOf(id: string, q: StoredTraceQuery, protocol: Protocol, meaning: Meaning | null, nodes: readonly StoredNode[]): Target[] {
    if (q.service !== undefined) {
      if (!meaning) throw new AppError('VALIDATION', `snapshot ${id} has no manifests: a trace by Service needs them (or give destination and port)`);
      let frontends;
      try {
        frontends = resolveServiceFrontends(meaning.model, q.service, q.servicePort ?? q.port ?? '', nodes.map((n) => ({ name: n.name, addresses: n.addresses })));
      } catch (e) {
        if (e instanceof EngineError) throw new AppError('NOT_FOUND', e.message);
        throw e;
      }
      return frontends.map((f) => ({
        ...f.packet,
        frontend: { kind: f.frontend, destination: f.packet.destination, port: f.packet.port, protocol: f.packet.protocol, servicePort: f.servicePort },
        ...(f.node ? { onlyNode: f.node } : {}),
      }));
    }
    if (q.destination === undefined || typeof q.port === 'string') {
      throw new AppError('VALIDATION', 'give destination (ip:port, or ip and port), or service and port');
    }
    const { destination, port } = packetInput(() => readDestination(q.destination!, q.port as number | undefined));
    return [{ destination, port, protocol }];
  }

  return async function trace(id, q) {
    const protocol = packetInput(() => readProtocol(q.protocol));
    if (q.entry !== undefined && q.entry !== 'PREROUTING' && q.entry !== 'OUTPUT') {
      throw new AppError('VALIDATION', "entry must be 'PREROUTING' or 'OUTPUT'");
    }
    const { snapshot: s, nodes } = await lookup.withStoredNodes(id);
    const meaning = await meaningOf(s);
    const selected = q.node === undefined ? nodes : nodes.filter((n) => n.name === q.node);
    if (q.node !== undefined && selected.length === 0) throw new AppError('NOT_FOUND', `node ${q.node} not found in snapshot ${id}`);
    const results: NodeTrace[] = [];
    for (const target of targetsOf(id, q, protocol, meaning, nodes)) {
      // The dump is picked by the destination's family, and so is the default source.
      const family: Family = familyOf(target.destination) ?? 'ipv4';
      const source = q.source ?? defaultSource(target.destination);
      const on = selected.filter((n) => target.onlyNode === undefined || target.onlyNode === n.name);
      const dumps = await Promise.all(on.map((n) => dumpFor(s.id, n, family)));
      // A packet to an address of a family no node asked about has a dump of: the question
      // cannot be answered. A Service's frontends of that family are said per node instead, so
      // that its frontends of the other family are still answered.
      if (dumps.every((d) => d === null) && q.service === undefined) {
        const who = on.length === 1 ? `node ${on[0].name} has no` : `no node of snapshot ${s.id} has an`;
        const fix = family === 'ipv6' ? "upload the node's ip6tables-save output as rules6" : "upload the node's iptables-save output as rules";
        throw new AppError('VALIDATION', `${who} ${FAMILY_NAME[family]} dump, so ${target.destination} cannot be traced: ${fix}`, { family });
      }
      for (const [i, n] of on.entries()) {
        const rs = dumps[i];
        const packet = { source, destination: target.destination, port: target.port, protocol: target.protocol, sourcePort: q.sourcePort ?? null };
        const frontend = target.frontend ? { frontend: target.frontend } : {};
        if (!rs) {
          results.push({
            node: n.name, family, entry: q.entry ?? 'PREROUTING', packet, outcomes: [], assumptions: [],
            warnings: [{
              code: 'NO_DUMP_FOR_FAMILY', node: n.name,
              message: `node ${n.name} has no ${FAMILY_NAME[family]} dump, so ${target.destination} was not traced on it${family === 'ipv6' ? ' (upload its ip6tables-save output as rules6)' : ''}`,
            }],
            ...frontend,
          });
          continue;
        }
        const routes = await routesOf(s.id, n);
        const raw = traceService.traceRuleset(rs, { name: n.name, addresses: n.addresses }, {
          source,
          destination: target.destination,
          port: target.port,
          protocol: target.protocol,
          ...(q.entry ? { entry: q.entry } : {}),
          ...(q.sourcePort !== undefined ? { sourcePort: q.sourcePort } : {}),
          ...(q.inInterface ? { inInterface: q.inInterface } : {}),
        }, routes);
        const r = annotate(raw, meaning, n.addresses);
        const warnings = (n.addresses.length === 0
          ? [{ code: 'NODE_ADDRESSES_UNKNOWN', message: `node ${n.name} was uploaded without addresses: only 127.0.0.0/8 counts as LOCAL, so NodePorts on its addresses are not recognised` }, ...r.warnings]
          : r.warnings).map((w) => ({ ...w, node: n.name }));
        results.push({ node: n.name, family, entry: r.entry, packet: r.packet, outcomes: r.outcomes, warnings, assumptions: r.assumptions, ...frontend });
      }
    }
    // The traces compiled rules: count them, and keep the cache within its budget.
    rulesets.settle();
    return { snapshot: s.id, results };
  };
}
