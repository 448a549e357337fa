/**
 * Resolvers for schema/*.graphql. Each calls the snapshot service and reshapes its answer; input
 * the SDL cannot constrain (entry, format, port ranges) is checked by the same code REST uses
 * (../trace-query.ts, the lists of rest/schemas.ts) and refused as an AppError VALIDATION, which
 * errors.ts turns into `extensions.code`. `Snapshot.nodes` is not here: it is a loader (loaders.ts).
 */
import type { IResolvers } from 'mercurius';
import { GraphQLScalarType, Kind } from 'graphql';
import { AppError } from '../../app-error.ts';
import type {
  ClusterView, NodeTrace, NodeUpload, SnapshotService, SnapshotUpload, SnapshotView, SnapshotWithNodes,
} from '../../services/snapshot-types.ts';
import { FORMATS } from '../rest/schemas.ts';
import { checkOneOf, storedTraceQuery } from '../trace-query.ts';
import type { TraceArguments } from '../trace-query.ts';
import { KNOWN_NODES } from './loaders.ts';
import type { SnapshotParent } from './loaders.ts';

const MAX_PAGE = 100;

interface SnapshotsArgs {
  readonly cluster: string;
  readonly first?: number | null;
  readonly after?: string | null;
}

interface NodeInput {
  readonly name: string;
  readonly addresses: readonly string[];
  readonly rules: string;
  readonly rules6?: string | null;
  readonly format?: string | null;
  readonly table?: string | null;
  readonly routes?: string | null;
}

interface SnapshotInput {
  readonly labels?: ReadonlyArray<{ readonly key: string; readonly value: string }> | null;
  readonly nodes: readonly NodeInput[];
  readonly manifests?: string | null;
}

function isNotFound(e: unknown): boolean {
  return e instanceof AppError && e.code === 'NOT_FOUND';
}

interface SnapshotArgs {
  readonly id?: string | null;
  readonly cluster?: string | null;
  readonly version?: number | null;
  readonly at?: string | null;
}

/** The id or reference (`cluster@latest`, `cluster@12`, `cluster@TIME`) that the arguments of `snapshot` name. */
function snapshotReference(args: SnapshotArgs): string {
  const given = [args.id, args.cluster].filter((x) => x != null).length;
  if (given !== 1) throw new AppError('VALIDATION', 'snapshot: give id, or cluster (with version or at, or neither for its latest)');
  if (args.version != null && args.at != null) throw new AppError('VALIDATION', 'snapshot: give version or at, not both');
  if (args.id != null) {
    if (args.version != null || args.at != null) throw new AppError('VALIDATION', 'snapshot: version and at go with cluster, not id');
    return args.id;
  }
  return `${args.cluster}@${args.version ?? args.at ?? 'latest'}`;
}

/** The snapshot, or null when there is none. */
async function snapshotBy(service: SnapshotService, ref: string): Promise<SnapshotParent | null> {
  try {
    return withKnownNodes(await service.get(ref));
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
}

/** A snapshot whose nodes are already in hand, so the nodes loader need not fetch them. */
function withKnownNodes(s: SnapshotWithNodes): SnapshotParent {
  const { nodes, ...view } = s;
  return { ...view, [KNOWN_NODES]: nodes };
}

/** Cursors are the service's: `pageInfo.endCursor` is the page's next cursor, and each edge's is its snapshot's own cursor. */
async function snapshotConnection(service: SnapshotService, args: SnapshotsArgs) {
  const first = args.first ?? 20;
  if (first < 1 || first > MAX_PAGE) throw new AppError('VALIDATION', `first must be from 1 to ${MAX_PAGE} (got ${first})`);
  const page = await service.listSnapshots(args.cluster, { limit: first, cursor: args.after ?? null });
  return {
    edges: page.items.map((node: SnapshotView, i) => ({ node, cursor: page.cursors[i] })),
    pageInfo: { hasNextPage: page.nextCursor !== null, endCursor: page.nextCursor },
  };
}

function upload(input: SnapshotInput): SnapshotUpload {
  const labels: Record<string, string> = {};
  for (const { key, value } of input.labels ?? []) {
    if (Object.hasOwn(labels, key)) throw new AppError('VALIDATION', `label ${key} appears twice`);
    labels[key] = value;
  }
  const nodes = input.nodes.map((n): NodeUpload => ({
    name: n.name,
    addresses: n.addresses,
    rules: n.rules,
    ...(n.rules6 != null ? { rules6: n.rules6 } : {}),
    ...(n.format != null ? { format: checkOneOf(n.format, FORMATS, `node ${n.name}: format`) } : {}),
    ...(n.table != null ? { table: n.table } : {}),
    ...(n.routes != null ? { routes: n.routes } : {}),
  }));
  return {
    ...(input.labels != null ? { labels } : {}),
    nodes,
    ...(input.manifests != null ? { manifests: input.manifests } : {}),
  };
}

/** Int or String: `port: 80`, or a Service port's name `port: "http"`. */
const PortOrName = new GraphQLScalarType({
  name: 'PortOrName',
  description: 'A port number, or a Service port name',
  serialize: (v) => v,
  parseValue: (v) => {
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    if (typeof v === 'string' && v.length > 0) return /^\d+$/.test(v) ? Number(v) : v;
    throw new TypeError('PortOrName must be an integer or a non-empty string');
  },
  parseLiteral: (ast) => {
    if (ast.kind === Kind.INT) return Number(ast.value);
    if (ast.kind === Kind.STRING && ast.value.length > 0) return /^\d+$/.test(ast.value) ? Number(ast.value) : ast.value;
    throw new TypeError('PortOrName must be an integer or a non-empty string');
  },
});

export function createResolvers(service: SnapshotService): IResolvers {
  return {
    PortOrName,
    Query: {
      diff: (_: unknown, args: { from: string; to: string; node?: string | null; first?: number | null; after?: string | null }) =>
        service.diff({
          from: args.from, to: args.to, limit: args.first ?? 100,
          ...(args.node != null ? { node: args.node } : {}),
          ...(args.after != null ? { cursor: args.after } : {}),
        }),
      clusters: () => service.listClusters(),
      snapshots: (_: unknown, args: SnapshotsArgs) => snapshotConnection(service, args),
      cluster: async (_: unknown, { name }: { name: string }) => (await service.listClusters()).find((c) => c.name === name) ?? null,
      snapshot: (_: unknown, args: SnapshotArgs) => snapshotBy(service, snapshotReference(args)),
    },
    Mutation: {
      createSnapshot: async (_: unknown, args: { cluster: string; input: SnapshotInput }) => {
        const { snapshot, created } = await service.create(args.cluster, upload(args.input));
        return { snapshot: withKnownNodes(snapshot), created };
      },
      deleteSnapshot: async (_: unknown, { id }: { id: string }) => {
        try {
          await service.delete(id);
          return true;
        } catch (e) {
          if (isNotFound(e)) return false;
          throw e;
        }
      },
    },
    Cluster: {
      snapshotCount: (c: ClusterView) => c.snapshots,
      latest: (c: ClusterView) => (c.latest ? snapshotBy(service, c.latest.id) : null),
      snapshot: (c: ClusterView, args: Omit<SnapshotArgs, 'id' | 'cluster'>) => snapshotBy(service, snapshotReference({ ...args, cluster: c.name })),
    },
    Snapshot: {
      labels: (s: SnapshotView) =>
        Object.entries(s.labels)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([key, value]) => ({ key, value })),
      trace: async (s: SnapshotView, args: TraceArguments) => (await service.trace(s.id, storedTraceQuery(args))).results,
      traces: (s: SnapshotView, args: TraceArguments) => service.trace(s.id, storedTraceQuery(args)),
      audit: (s: SnapshotView) => service.audit(s.id),
    },
    RuleChange: {
      from: (r: { from?: string | number }) => (r.from === undefined ? null : String(r.from)),
      to: (r: { to?: string | number }) => (r.to === undefined ? null : String(r.to)),
    },
    FieldChange: {
      before: (f: { before: unknown }) => (f.before === undefined ? null : JSON.stringify(f.before)),
      after: (f: { after: unknown }) => (f.after === undefined ? null : JSON.stringify(f.after)),
    },
    NodeTrace: {
      warningDetails: (t: NodeTrace) => t.warnings,
    },
  };
}
