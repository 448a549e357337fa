/**
 * An in-memory SnapshotService for the GraphQL-layer tests: snapshots in an array, traces through
 * the real engine, and a record of every call so tests can count them.
 */
import { createHash } from 'node:crypto';
import { AppError } from '../../../src/app-error.ts';
import { createTraceService } from '../../../src/services/trace-service.ts';
import { formatOf, tableCounts } from '../../../src/engine/index.ts';
import type {
  ClusterView, CreateResult, NodeSummary, NodeTrace, NodeUpload, Page, SnapshotService, SnapshotUpload,
  SnapshotView, SnapshotWithNodes, StoredTraceQuery,
} from '../../../src/services/snapshot-types.ts';

interface Stored {
  readonly snapshot: SnapshotWithNodes;
  readonly uploads: readonly NodeUpload[];
}

export interface Calls {
  create: Array<{ cluster: string; upload: SnapshotUpload }>;
  listSnapshots: Array<{ cluster: string; limit: number; cursor: string | null }>;
  get: string[];
  nodesOf: string[][];
  trace: Array<{ id: string; query: StoredTraceQuery }>;
  delete: string[];
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** Not the real service's format on purpose: the GraphQL layer must treat cursors as opaque. */
const cursorFor = (version: number) => `before-v${version}`;

export function fakeSnapshots(): { service: SnapshotService; calls: Calls } {
  const tracer = createTraceService();
  const stored: Stored[] = [];
  const calls: Calls = { create: [], listSnapshots: [], get: [], nodesOf: [], trace: [], delete: [] };
  let clock = Date.parse('2025-01-01T00:00:00Z');

  const find = (id: string): Stored => {
    const s = stored.find((x) => x.snapshot.id === id);
    if (!s) throw new AppError('NOT_FOUND', `snapshot ${id} not found`);
    return s;
  };
  const view = ({ nodes: _nodes, ...v }: SnapshotWithNodes): SnapshotView => v;

  /** The fake keeps one dump per node: the first of a list. */
  const rulesOf = (n: NodeUpload): string | Buffer => (Array.isArray(n.rules) ? n.rules[0] : n.rules as string | Buffer);

  function summary(n: NodeUpload): NodeSummary {
    const text = rulesOf(n).toString();
    const rs = tracer.ruleset(text, n.format, n.table);
    const tables = tableCounts(rs);
    return {
      name: n.name, addresses: [...n.addresses], format: formatOf(rs), sha256: sha256(rulesOf(n)), bytes: Buffer.byteLength(text),
      rules: tables.reduce((k, t) => k + t.rules, 0), tables, diagnostics: rs.diagnostics,
      routes: n.routes !== undefined ? { sha256: sha256(n.routes), bytes: Buffer.byteLength(n.routes) } : null,
      ipv6: null,
    };
  }

  const service: SnapshotService = {
    async create(cluster, upload): Promise<CreateResult> {
      calls.create.push({ cluster, upload });
      const nodes = upload.nodes.map(summary);
      const contentHash = sha256(JSON.stringify([nodes.map((n) => [n.name, n.addresses, n.sha256]), upload.manifests ?? null]));
      const same = stored.find((s) => s.snapshot.cluster === cluster && s.snapshot.contentHash === contentHash);
      if (same) return { snapshot: same.snapshot, created: false, labels: { stored: 'reupload', detail: 'same content' } };
      const version = stored.filter((s) => s.snapshot.cluster === cluster).length + 1;
      clock += 60_000;
      const snapshot: SnapshotWithNodes = {
        id: `snap-${stored.length + 1}`,
        cluster,
        version,
        labels: { ...upload.labels },
        createdAt: new Date(clock).toISOString(),
        contentHash,
        manifests: upload.manifests === undefined ? null : { sha256: sha256(upload.manifests), bytes: Buffer.byteLength(upload.manifests) },
        nodes,
      };
      stored.push({ snapshot, uploads: upload.nodes });
      return { snapshot, created: true, labels: { stored: 'snapshot', detail: 'new snapshot' } };
    },

    // Uploads in steps are REST only: GraphQL never calls these.
    beginUpload: notGraphql, getUpload: notGraphql, putNode: notGraphql, setNodeAddresses: notGraphql, putNodeRoutes: notGraphql,
    putManifests: notGraphql, commitUpload: notGraphql, abortUpload: notGraphql,

    async listClusters(): Promise<ClusterView[]> {
      const names = [...new Set(stored.map((s) => s.snapshot.cluster))].sort();
      return names.map((name) => {
        const mine = stored.filter((s) => s.snapshot.cluster === name).map((s) => s.snapshot);
        const latest = mine[mine.length - 1];
        return {
          name, createdAt: mine[0].createdAt, snapshots: mine.length,
          latest: { id: latest.id, version: latest.version, createdAt: latest.createdAt },
        };
      });
    },

    async listSnapshots(cluster, { limit, cursor }): Promise<Page<SnapshotView>> {
      calls.listSnapshots.push({ cluster, limit, cursor: cursor ?? null });
      const before = cursor ? Number(/^before-v(\d+)$/.exec(cursor)?.[1] ?? NaN) : Infinity;
      if (Number.isNaN(before)) throw new AppError('VALIDATION', `invalid cursor '${cursor}'`);
      const newestFirst = stored
        .map((s) => s.snapshot)
        .filter((s) => s.cluster === cluster && s.version < before)
        .sort((a, b) => b.version - a.version);
      const items = newestFirst.slice(0, limit).map(view);
      return { items, cursors: items.map((s) => cursorFor(s.version)), nextCursor: newestFirst.length > limit ? cursorFor(items[items.length - 1].version) : null };
    },

    async get(id) {
      calls.get.push(id);
      return find(id).snapshot;
    },

    async nodesOf(ids) {
      calls.nodesOf.push([...ids]);
      return new Map(stored.filter((s) => ids.includes(s.snapshot.id)).map((s) => [s.snapshot.id, s.snapshot.nodes]));
    },

    async rawRules(id, node) {
      const n = find(id).uploads.find((u) => u.name === node);
      if (!n) throw new AppError('NOT_FOUND', `node ${node} not found`);
      return Buffer.from(rulesOf(n));
    },

    async rawRules6(id, node) {
      find(id);
      throw new AppError('NOT_FOUND', `node ${node} has no IPv6 dump (the fake keeps one dump per node)`);
    },

    async putNodeRules6() {
      throw new AppError('VALIDATION', 'the fake service has no uploads in steps');
    },

    async delete(id) {
      calls.delete.push(id);
      const i = stored.findIndex((s) => s.snapshot.id === id);
      if (i < 0) throw new AppError('NOT_FOUND', `snapshot ${id} not found`);
      stored.splice(i, 1);
    },

    async diff(q) {
      find(q.from);
      find(q.to);
      throw new AppError('VALIDATION', 'the fake service does not diff');
    },

    async diffJson(q) {
      find(q.from);
      find(q.to);
      throw new AppError('VALIDATION', 'the fake service does not diff');
    },

    async audit(id) {
      find(id);
      throw new AppError('VALIDATION', `snapshot ${id} has no manifests: the audit compares rules with them`);
    },

    async trace(id, query) {
      calls.trace.push({ id, query });
      const s = find(id);
      const nodes = s.uploads.filter((n) => query.node === undefined || n.name === query.node);
      if (nodes.length === 0) throw new AppError('NOT_FOUND', `node ${query.node} not found in snapshot ${id}`);
      const results = nodes.map((n): NodeTrace => {
        const r = tracer.trace({
          rules: rulesOf(n).toString(),
          format: n.format,
          table: n.table,
          node: { name: n.name, addresses: n.addresses },
          ...(n.routes !== undefined ? { routes: n.routes } : {}),
          packet: {
            source: query.source ?? '203.0.113.10',
            destination: query.destination ?? '',
            port: Number(query.port),
            protocol: query.protocol ?? 'tcp',
            ...(query.entry ? { entry: query.entry } : {}),
            ...(query.sourcePort !== undefined ? { sourcePort: query.sourcePort } : {}),
            ...(query.inInterface ? { inInterface: query.inInterface } : {}),
          },
        });
        return { node: n.name, family: r.packet.destination.includes(':') ? 'ipv6' : 'ipv4', entry: r.entry, packet: r.packet, outcomes: r.outcomes, warnings: r.warnings, assumptions: r.assumptions };
      });
      return { snapshot: id, results };
    },
  };
  return { service, calls };
}

async function notGraphql(): Promise<never> {
  throw new Error('uploads in steps are not part of the GraphQL API');
}
