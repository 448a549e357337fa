/**
 * Snapshots: strict parsing of uploads, content-addressed deduplication, storage, and traces
 * through stored dumps (parsed once, then kept in a small cache keyed by the dump's hash).
 */
import { createHash } from 'node:crypto';
import type { DiffResult, FormatOption, Protocol, Ruleset } from '../engine/index.ts';
import {
  EngineError, chainText, completeKubeProxy, diffSnapshots, parseDump, resolveServiceFrontends, ruleCount, ruleLines, runAudit,
} from '../engine/index.ts';
import { AppError } from '../app-error.ts';
import type { ChainRow, SnapshotStore, StoredNode, StoredSnapshot } from '../store/snapshot-store.ts';
import type { TraceService } from './trace-service.ts';
import { annotate, readMeaning, summariseMeaning } from './kube-meaning.ts';
import type { Meaning } from './kube-meaning.ts';
import type {
  AuditReport, ClusterView, CreateResult, NodeSummary, NodeTrace, NodeUpload, Page, SnapshotService, SnapshotUpload,
  SnapshotView, SnapshotWithNodes, StoredTraceQuery,
} from './snapshot-types.ts';

const CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$/;
const DEFAULT_SOURCE = '203.0.113.10';
const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp', 'sctp', 'icmp'];

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function decodeOffset(cursor: string): number {
  const m = /^o(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) throw new AppError('VALIDATION', `invalid cursor '${cursor}'`);
  return Number(m[1]);
}

function encodeCursor(version: number): string {
  return Buffer.from(`v${version}`).toString('base64url');
}

function decodeCursor(cursor: string): number {
  const m = /^v(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) throw new AppError('VALIDATION', `invalid cursor '${cursor}'`);
  return Number(m[1]);
}

function view(s: StoredSnapshot): SnapshotView {
  return {
    id: s.id,
    cluster: s.cluster,
    version: s.version,
    labels: s.labels,
    createdAt: s.createdAt.toISOString(),
    contentHash: s.contentHash,
    manifests: s.manifestsSha256 ? { sha256: s.manifestsSha256, bytes: s.manifestsBytes ?? 0 } : null,
  };
}

interface SummaryJson {
  bytes: number;
  rules: number;
  tables: NodeSummary['tables'];
  diagnostics: NodeSummary['diagnostics'];
  table?: string;
}

function nodeView(n: StoredNode): NodeSummary {
  const s = n.summary as SummaryJson;
  return {
    name: n.name, addresses: n.addresses, format: n.format, sha256: n.sha256,
    bytes: s.bytes, rules: s.rules, tables: s.tables, diagnostics: s.diagnostics,
  };
}

function summarise(rs: Ruleset, bytes: number): SummaryJson {
  const tables = [...rs.tables.values()].map((t) => {
    let rules = 0;
    for (const c of t.chains.values()) rules += ruleCount(c);
    return { name: t.name, chains: t.chains.size, rules };
  });
  return { bytes, rules: tables.reduce((n, t) => n + t.rules, 0), tables, diagnostics: rs.diagnostics.slice(0, 200) };
}

function* chainRows(rs: Ruleset): Iterable<ChainRow> {
  for (const t of rs.tables.values()) {
    for (const c of t.chains.values()) {
      yield { table: t.name, chain: c.name, policy: c.policy, declaredLine: c.line, lines: ruleLines(c), rules: chainText(c) };
    }
  }
}

export interface SnapshotServiceDeps {
  readonly store: SnapshotStore;
  readonly traceService: TraceService;
  /** Parsed dumps kept for traces (each 10,000-Service node costs about 100 MB). */
  readonly cacheSize?: number;
  /** How long a snapshot's metadata is reused by traces (default 60 s). */
  readonly metadataTtlMs?: number;
}

export function createSnapshotService(deps: SnapshotServiceDeps): SnapshotService & { ping(): Promise<void> } {
  const { store, traceService } = deps;
  const cacheSize = deps.cacheSize ?? 16;
  /** Parsed dumps by content, completed (completeKubeProxy) the first time a trace needs them. */
  const rulesets = new Map<string, () => Ruleset>();
  const remember = (key: string, rs: () => Ruleset) => {
    rulesets.delete(key);
    rulesets.set(key, rs);
    while (rulesets.size > cacheSize) rulesets.delete(rulesets.keys().next().value!);
  };
  const completedLater = (parsed: Ruleset): (() => Ruleset) => {
    let completed: Ruleset | null = null;
    return () => (completed ??= completeKubeProxy(parsed));
  };
  const rulesetKey = (sha: string, format: string, table?: string) => `${sha}|${format}|${table ?? ''}`;
  const meanings = new Map<string, Meaning>();
  const audits = new Map<string, AuditReport>();
  /** Diffs computed or being computed: requests for the same pair share one computation. */
  const diffs = new Map<string, Promise<DiffResult>>();
  async function meaningOf(s: StoredSnapshot): Promise<Meaning | null> {
    if (!s.manifestsSha256) return null;
    let m = meanings.get(s.manifestsSha256);
    if (!m) {
      const text = await store.manifests(s.id);
      if (text === null) return null;
      m = readMeaning(text);
      meanings.set(s.manifestsSha256, m);
      while (meanings.size > cacheSize) meanings.delete(meanings.keys().next().value!);
    }
    return m;
  }
  // Snapshots never change, so what a trace needs to know about one is kept for a while: only a
  // delete (here, or on another instance within the time to live) makes an entry stale.
  const metaTtlMs = deps.metadataTtlMs ?? 60_000;
  const metadata = new Map<string, { at: number; snapshot: StoredSnapshot; nodes: StoredNode[] }>();
  async function snapshotWithStoredNodes(id: string): Promise<{ snapshot: StoredSnapshot; nodes: StoredNode[] }> {
    const hit = metadata.get(id);
    if (hit && performance.now() - hit.at < metaTtlMs) return hit;
    const snapshot = await mustGet(id);
    const nodes = (await store.nodesOf([id])).get(id) ?? [];
    metadata.set(id, { at: performance.now(), snapshot, nodes });
    if (metadata.size > 1000) metadata.delete(metadata.keys().next().value!);
    return { snapshot, nodes };
  }

  /** The node's dump as bytes (the name checked first). */
  function rawOf(n: NodeUpload): Buffer {
    if (typeof n.name !== 'string' || !NODE_NAME.test(n.name)) {
      throw new AppError('VALIDATION', `node name '${String(n.name)}' is not valid (letters, digits, '.', '_', ':', '-')`);
    }
    return typeof n.rules === 'string' ? Buffer.from(n.rules, 'utf8') : n.rules;
  }

  function parseNode(n: NodeUpload): Ruleset {
    const text = typeof n.rules === 'string' ? n.rules : n.rules.toString('utf8');
    try {
      return parseDump(text, { format: n.format ?? 'auto', table: n.table });
    } catch (e) {
      if (e instanceof EngineError) throw AppError.fromEngine(e, { node: n.name }, `node ${n.name}: `);
      throw e;
    }
  }

  async function withNodes(s: StoredSnapshot): Promise<SnapshotWithNodes> {
    const nodes = (await store.nodesOf([s.id])).get(s.id) ?? [];
    return { ...view(s), nodes: nodes.map(nodeView) };
  }

  async function mustGet(id: string): Promise<StoredSnapshot> {
    const s = await store.snapshot(id);
    if (!s) throw new AppError('NOT_FOUND', `snapshot ${id} not found`);
    return s;
  }

  async function rulesetOf(snapshotId: string, n: StoredNode): Promise<Ruleset> {
    const table = (n.summary as SummaryJson).table;
    const key = rulesetKey(n.sha256, n.format, table);
    const hit = rulesets.get(key);
    if (hit) {
      remember(key, hit);
      return hit();
    }
    const raw = await store.rawRules(snapshotId, n.name);
    if (!raw) throw new AppError('NOT_FOUND', `node ${n.name} not found in snapshot ${snapshotId}`);
    const rs = completeKubeProxy(parseDump(raw.toString('utf8'), { format: n.format as FormatOption, table }));
    remember(key, () => rs);
    return rs;
  }

  return {
    async create(cluster, upload: SnapshotUpload): Promise<CreateResult> {
      if (!CLUSTER_NAME.test(cluster)) throw new AppError('VALIDATION', `cluster name '${cluster}' is not valid (letters, digits, '.', '_', '-')`);
      if (!Array.isArray(upload.nodes) || upload.nodes.length === 0) throw new AppError('VALIDATION', 'a snapshot needs at least one node');
      const names = new Set<string>();
      for (const n of upload.nodes) {
        if (names.has(n.name)) throw new AppError('VALIDATION', `node ${n.name} appears twice`);
        names.add(n.name);
      }
      const entries = Object.entries(upload.labels ?? {});
      for (const [k, v] of entries) {
        if (typeof v !== 'string') throw new AppError('VALIDATION', `label ${k} must be a string`);
      }
      // fromEntries defines own properties: a '__proto__' label stays a label.
      const labels: Record<string, string> = Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      // Everything is checked before anything is stored: a bad node or manifest stores nothing.
      const parsed = upload.nodes.map((n) => {
        const raw = rawOf(n);
        // The store compresses the dump on another thread while this one parses it.
        const packed = store.pack(raw);
        packed.catch(() => {}); // awaited by insert; a parse error below means nobody will
        return { n, raw, packed, rs: parseNode(n) };
      });
      const meaning = upload.manifests !== undefined ? readMeaning(upload.manifests) : null;
      const nodes = parsed.map(({ n, raw, rs, packed }) => {
        const sha = sha256(raw);
        const summary = { ...summarise(rs, raw.length), ...(n.table ? { table: n.table } : {}) };
        remember(rulesetKey(sha, rs.format, n.table), completedLater(rs));
        return {
          name: n.name,
          addresses: [...n.addresses],
          format: rs.format,
          sha256: sha,
          summary,
          packed,
          chains: () => chainRows(rs),
        };
      });
      const manifestsSha = upload.manifests !== undefined ? sha256(upload.manifests) : null;
      if (meaning && manifestsSha) meanings.set(manifestsSha, meaning);
      const contentHash = sha256(JSON.stringify({
        nodes: [...nodes].sort((a, b) => (a.name < b.name ? -1 : 1)).map((n) => [n.name, [...n.addresses].sort(), n.format, n.summary.table ?? null, n.sha256]),
        manifests: manifestsSha,
      }));
      const { id, created } = await store.insert(cluster, {
        labels, contentHash, manifestsRaw: upload.manifests ?? null, manifestsSha256: manifestsSha,
        manifestsParsed: meaning ? summariseMeaning(meaning) : null, nodes,
      });
      return { snapshot: await withNodes(await mustGet(id)), created };
    },

    async listClusters(): Promise<ClusterView[]> {
      return (await store.clusters()).map((c) => ({
        name: c.name,
        createdAt: c.createdAt.toISOString(),
        snapshots: c.snapshots,
        latest: c.latest ? { id: c.latest.id, version: c.latest.version, createdAt: c.latest.createdAt.toISOString() } : null,
      }));
    },

    async listSnapshots(cluster, { limit, cursor }): Promise<Page<SnapshotView>> {
      if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new AppError('VALIDATION', 'limit must be from 1 to 500');
      if (!(await store.clusterExists(cluster))) throw new AppError('NOT_FOUND', `cluster ${cluster} not found`);
      const before = cursor ? decodeCursor(cursor) : null;
      const rows = await store.snapshots(cluster, limit + 1, before);
      const items = rows.slice(0, limit).map(view);
      return { items, nextCursor: rows.length > limit ? encodeCursor(items[items.length - 1].version) : null };
    },

    async get(id) {
      return withNodes(await mustGet(id));
    },

    async nodesOf(ids) {
      const stored = await store.nodesOf(ids);
      return new Map([...stored].map(([id, nodes]) => [id, nodes.map(nodeView)]));
    },

    async rawRules(id, node) {
      await mustGet(id);
      const raw = await store.rawRules(id, node);
      if (!raw) throw new AppError('NOT_FOUND', `node ${node} not found in snapshot ${id}`);
      return raw;
    },

    async delete(id) {
      metadata.delete(id);
      audits.delete(id);
      if (!(await store.delete(id))) throw new AppError('NOT_FOUND', `snapshot ${id} not found`);
    },

    async trace(id, q: StoredTraceQuery) {
      const protocol = q.protocol ?? 'tcp';
      if (!PROTOCOLS.includes(protocol)) throw new AppError('VALIDATION', `protocol must be one of ${PROTOCOLS.join(', ')}`);
      if (q.entry !== undefined && q.entry !== 'PREROUTING' && q.entry !== 'OUTPUT') {
        throw new AppError('VALIDATION', "entry must be 'PREROUTING' or 'OUTPUT'");
      }
      const { snapshot: s, nodes } = await snapshotWithStoredNodes(id);
      const meaning = await meaningOf(s);
      const selected = q.node === undefined ? nodes : nodes.filter((n) => n.name === q.node);
      if (q.node !== undefined && selected.length === 0) throw new AppError('NOT_FOUND', `node ${q.node} not found in snapshot ${id}`);
      // A Service instead of an address: every frontend of the Service port (cluster IPs,
      // NodePorts on each node, load-balancer and external IPs), each traced on every node.
      let targets: { destination: string; port: number; protocol: Protocol; frontend?: NodeTrace['frontend']; onlyNode?: string }[];
      if (q.service !== undefined) {
        if (!meaning) throw new AppError('VALIDATION', `snapshot ${id} has no manifests: a trace by Service needs them (or give destination and port)`);
        let frontends;
        try {
          frontends = resolveServiceFrontends(meaning.model, q.service, q.servicePort ?? q.port ?? '', nodes.map((n) => ({ name: n.name, addresses: n.addresses })));
        } catch (e) {
          if (e instanceof EngineError) throw new AppError('NOT_FOUND', e.message);
          throw e;
        }
        targets = frontends.map((f) => ({
          ...f.packet,
          frontend: { kind: f.frontend, destination: f.packet.destination, port: f.packet.port, protocol: f.packet.protocol, servicePort: f.servicePort },
          ...(f.node ? { onlyNode: f.node } : {}),
        }));
      } else {
        if (q.destination === undefined || q.port === undefined || typeof q.port !== 'number') {
          throw new AppError('VALIDATION', 'give destination and port, or service and port');
        }
        targets = [{ destination: q.destination, port: q.port, protocol }];
      }
      const results: NodeTrace[] = [];
      for (const target of targets) {
        for (const n of selected) {
          if (target.onlyNode !== undefined && target.onlyNode !== n.name) continue;
          const rs = await rulesetOf(s.id, n);
          const raw = traceService.traceRuleset(rs, { name: n.name, addresses: n.addresses }, {
            source: q.source ?? DEFAULT_SOURCE,
            destination: target.destination,
            port: target.port,
            protocol: target.protocol,
            ...(q.entry ? { entry: q.entry } : {}),
            ...(q.sourcePort !== undefined ? { sourcePort: q.sourcePort } : {}),
            ...(q.inInterface ? { inInterface: q.inInterface } : {}),
          });
          const r = annotate(raw, meaning, n.addresses);
          const warnings = n.addresses.length === 0
            ? [{ code: 'NODE_ADDRESSES_UNKNOWN', message: `node ${n.name} was uploaded without addresses: only 127.0.0.0/8 counts as LOCAL, so NodePorts on its addresses are not recognised` }, ...r.warnings]
            : r.warnings;
          results.push({
            node: n.name, entry: r.entry, packet: r.packet, outcomes: r.outcomes, warnings, assumptions: r.assumptions,
            ...(target.frontend ? { frontend: target.frontend } : {}),
          });
        }
      }
      return { snapshot: s.id, results };
    },

    async audit(id) {
      const hit = audits.get(id);
      if (hit) return hit;
      const { snapshot: s, nodes } = await snapshotWithStoredNodes(id);
      const meaning = await meaningOf(s);
      if (!meaning) throw new AppError('VALIDATION', `snapshot ${id} has no manifests: the audit compares rules with them`);
      const auditNodes = [];
      for (const n of nodes) auditNodes.push({ name: n.name, addresses: n.addresses, ruleset: await rulesetOf(s.id, n) });
      // Snapshots never change: the report is computed once.
      const report = { snapshot: s.id, findings: runAudit({ nodes: auditNodes, model: meaning.model, index: meaning.index }) };
      audits.set(id, report);
      while (audits.size > 64) audits.delete(audits.keys().next().value!);
      return report;
    },

    async diff(q) {
      if (!Number.isInteger(q.limit) || q.limit < 1 || q.limit > 1000) throw new AppError('VALIDATION', 'limit must be from 1 to 1000');
      const key = `${q.from}|${q.to}|${q.node ?? ''}`;
      let pending = diffs.get(key);
      if (!pending) {
        const side = async (id: string) => {
          const { snapshot: s, nodes } = await snapshotWithStoredNodes(id);
          const meaning = await meaningOf(s);
          const sideNodes = [];
          for (const n of nodes) {
            if (q.node !== undefined && n.name !== q.node) continue;
            sideNodes.push({ name: n.name, addresses: n.addresses, ruleset: await rulesetOf(s.id, n) });
          }
          return { nodes: sideNodes, model: meaning?.model ?? null, index: meaning?.index ?? null };
        };
        const compute = async (): Promise<DiffResult> => {
          const [a, b] = [await side(q.from), await side(q.to)];
          if (q.node !== undefined && (a.nodes.length === 0 || b.nodes.length === 0)) {
            throw new AppError('NOT_FOUND', `node ${q.node} is not in both snapshots`);
          }
          try {
            return diffSnapshots(a, b, q.node !== undefined ? { node: q.node } : {});
          } catch (e) {
            if (e instanceof EngineError) throw new AppError('NOT_FOUND', e.message);
            throw e;
          }
        };
        // Snapshots never change: a diff is computed once and kept (a failure is not).
        pending = compute();
        diffs.set(key, pending);
        pending.catch(() => {
          if (diffs.get(key) === pending) diffs.delete(key);
        });
        while (diffs.size > 32) diffs.delete(diffs.keys().next().value!);
      }
      const result = await pending;
      const offset = q.cursor ? decodeOffset(q.cursor) : 0;
      const end = offset + q.limit;
      const more = end < result.frontends.length || end < result.rules.length || end < result.manifests.length;
      return {
        from: q.from,
        to: q.to,
        summary: result.summary,
        unpairedNodes: result.unpairedNodes,
        frontends: result.frontends.slice(offset, end),
        rules: result.rules.slice(offset, end),
        manifests: result.manifests.slice(offset, end),
        totals: { frontends: result.frontends.length, rules: result.rules.length, manifests: result.manifests.length },
        nextCursor: more ? Buffer.from(`o${end}`).toString('base64url') : null,
      };
    },

    async ping() {
      await store.ping();
    },
  };
}
