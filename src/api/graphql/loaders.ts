/**
 * Loaders against N+1: however many snapshots a query lists, their nodes come from one
 * `snapshotService.nodesOf(ids)` call.
 *
 * mercurius runs its loaders only for requests that arrive over HTTP (`reply.graphql()`); a query
 * run in-process with `app.graphql()` has no reply to keep the per-request batch on. For those,
 * `directNodes` keeps an equivalent batch per context object, fed by the same `loadNodes`.
 */
import type { MercuriusContext, MercuriusLoaders } from 'mercurius';
import type { NodeSummary, SnapshotService, SnapshotView } from '../../services/snapshot-types.ts';

/**
 * Where a resolver that already holds a snapshot's nodes (`get`, `create`) leaves them. A symbol,
 * so mercurius's loader cache key (a stable stringify of the parent) stays small.
 */
export const KNOWN_NODES = Symbol('svcpath.knownNodes');

export type SnapshotParent = SnapshotView & { readonly [KNOWN_NODES]?: readonly NodeSummary[] };

/** Nodes for each parent, in order: those the parent carries, the rest from one nodesOf call. */
export async function loadNodes(
  service: SnapshotService,
  parents: readonly SnapshotParent[],
): Promise<Array<readonly NodeSummary[]>> {
  const missing = [...new Set(parents.filter((p) => !p[KNOWN_NODES]).map((p) => p.id))];
  const found = missing.length > 0 ? await service.nodesOf(missing) : new Map<string, readonly NodeSummary[]>();
  return parents.map((p) => p[KNOWN_NODES] ?? found.get(p.id) ?? []);
}

export function createLoaders(service: SnapshotService): MercuriusLoaders {
  return {
    Snapshot: {
      nodes: async (queries: Array<{ obj: SnapshotParent }>) => loadNodes(service, queries.map((q) => q.obj)),
    },
  };
}

/**
 * Collects the keys asked for while one query's fields resolve and answers them with one call.
 * The flush waits for `setImmediate`, after every pending promise job, so fields that resolve a
 * few awaits apart still share a batch.
 */
function batcher<K, V>(load: (keys: readonly K[]) => Promise<ReadonlyArray<V>>): (key: K) => Promise<V> {
  type Waiting = { key: K; resolve: (v: V) => void; reject: (e: unknown) => void };
  let pending: Waiting[] | null = null;
  const flush = (batch: Waiting[]) => {
    pending = null;
    load(batch.map((b) => b.key)).then(
      (values) => batch.forEach((b, i) => b.resolve(values[i])),
      (e: unknown) => batch.forEach((b) => b.reject(e)),
    );
  };
  return (key) =>
    new Promise<V>((resolve, reject) => {
      if (pending === null) {
        const batch: Waiting[] = [];
        pending = batch;
        setImmediate(flush, batch);
      }
      pending.push({ key, resolve, reject });
    });
}

/** Per-context node batches for `app.graphql()` calls; contexts are per call, so batches are too. */
export function directNodes(service: SnapshotService): (context: MercuriusContext, parent: SnapshotParent) => Promise<readonly NodeSummary[]> {
  const byContext = new WeakMap<object, (parent: SnapshotParent) => Promise<readonly NodeSummary[]>>();
  return (context, parent) => {
    let load = byContext.get(context);
    if (!load) {
      load = batcher((parents: readonly SnapshotParent[]) => loadNodes(service, parents));
      byContext.set(context, load);
    }
    return load(parent);
  };
}
