/**
 * Finding a snapshot by id or by reference (`cluster@latest`, `cluster@12`, `cluster@<time>`), and
 * what traces need to know about it, kept for a while: snapshots never change, so only a delete
 * (here, or on another instance within the time to live) makes an entry stale.
 */
import { clipMessage } from '../../engine/errors.ts';
import { AppError } from '../../app-error.ts';
import type { SnapshotStore, StoredNode, StoredSnapshot } from '../../store/snapshot-store.ts';
import { isUuid } from '../../store/snapshot-store.ts';
import type { ByteCache } from '../byte-cache.ts';
import { computeOnce, estimateBytes } from '../byte-cache.ts';
import type { SnapshotWithNodes } from '../snapshot-types.ts';
import { nodeView, snapshotView } from './views.ts';

export interface SnapshotMetadata {
  readonly snapshot: StoredSnapshot;
  readonly nodes: readonly StoredNode[];
}

export interface SnapshotLookup {
  /** The snapshot an id or reference names; AppError NOT_FOUND when none. */
  mustGet(ref: string): Promise<StoredSnapshot>;
  /** The id a snapshot id or reference stands for now (a reference such as cluster@latest moves on). */
  resolveId(ref: string): Promise<string>;
  /** The snapshot and its stored nodes, from the cache when recent. */
  withStoredNodes(ref: string): Promise<SnapshotMetadata>;
  /** The snapshot as answered, with its nodes and re-uploads. */
  withNodes(s: StoredSnapshot): Promise<SnapshotWithNodes>;
  /** Drops what is kept about a snapshot (it was deleted). */
  forget(id: string): void;
}

export function createSnapshotLookup(deps: {
  readonly store: SnapshotStore;
  /** Metadata kept by id; give it a time to live (another instance may delete a snapshot). */
  readonly metadata: ByteCache<Promise<SnapshotMetadata>>;
}): SnapshotLookup {
  const { store, metadata } = deps;

  async function byReference(ref: string): Promise<StoredSnapshot | null> {
    const at = ref.lastIndexOf('@');
    if (at <= 0) return null;
    const cluster = ref.slice(0, at);
    const which = ref.slice(at + 1);
    if (which === 'latest') return store.findSnapshot(cluster, 'latest');
    if (/^\d{1,9}$/.test(which)) return store.findSnapshot(cluster, { version: Number(which) });
    const time = /^\d{4}-\d{2}-\d{2}/.test(which) ? new Date(which) : null;
    if (!time || Number.isNaN(time.getTime())) {
      throw new AppError('VALIDATION', `snapshot reference '${clipMessage(ref, 120)}': after '@' give latest, a version number, or an ISO 8601 time such as 2026-12-01T10:00:00Z`);
    }
    return store.findSnapshot(cluster, { at: time });
  }

  async function mustGet(ref: string): Promise<StoredSnapshot> {
    const s = isUuid(ref) ? await store.snapshot(ref) : await byReference(ref);
    if (!s) throw new AppError('NOT_FOUND', `snapshot ${ref} not found`);
    return s;
  }

  async function resolveId(ref: string): Promise<string> {
    return isUuid(ref) ? ref : (await mustGet(ref)).id;
  }

  return {
    mustGet,
    resolveId,
    async withStoredNodes(ref) {
      const id = await resolveId(ref);
      return computeOnce(metadata, id, async () => {
        const snapshot = await mustGet(id);
        const nodes = (await store.nodesOf([id])).get(id) ?? [];
        return { snapshot, nodes };
      }, estimateBytes);
    },
    async withNodes(s) {
      const [nodes, reuploads] = await Promise.all([store.nodesOf([s.id]), store.reuploads(s.id, 20)]);
      return {
        ...snapshotView(s),
        nodes: (nodes.get(s.id) ?? []).map(nodeView),
        reuploads: reuploads.map((r) => ({ labels: r.labels, createdAt: r.createdAt.toISOString() })),
      };
    },
    forget(id) {
      metadata.delete(id);
    },
  };
}
