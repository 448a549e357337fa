/**
 * Reading what is stored: clusters, a cluster's snapshots (newest first, a page at a time), one
 * snapshot with its nodes, and many snapshots' nodes at once (for GraphQL's loaders).
 */
import { AppError } from '../../app-error.ts';
import type { SnapshotStore } from '../../store/snapshot-store.ts';
import { decodeCursor, encodeCursor } from '../cursor.ts';
import type { SnapshotService } from '../snapshot-types.ts';
import type { SnapshotLookup } from './lookup.ts';
import { nodeView, snapshotView } from './views.ts';

export const MAX_SNAPSHOT_PAGE = 500;

export type ListingOperations = Pick<SnapshotService, 'listClusters' | 'listSnapshots' | 'get' | 'nodesOf'>;

export function createListing(deps: { readonly store: SnapshotStore; readonly lookup: SnapshotLookup }): ListingOperations {
  const { store, lookup } = deps;
  return {
    async listClusters() {
      return (await store.clusters()).map((c) => ({
        name: c.name,
        createdAt: c.createdAt.toISOString(),
        snapshots: c.snapshots,
        latest: c.latest ? { id: c.latest.id, version: c.latest.version, createdAt: c.latest.createdAt.toISOString() } : null,
      }));
    },

    async listSnapshots(cluster, { limit, cursor }) {
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_SNAPSHOT_PAGE) throw new AppError('VALIDATION', `limit must be from 1 to ${MAX_SNAPSHOT_PAGE}`);
      // The position is a version: the page continues with the versions below it, so a cursor
      // stays right while newer snapshots are made (versions are never reused).
      const before = cursor ? decodeCursor('snapshots', cursor) : null;
      if (!(await store.clusterExists(cluster))) throw new AppError('NOT_FOUND', `cluster ${cluster} not found`);
      const rows = await store.snapshots(cluster, limit + 1, before);
      const items = rows.slice(0, limit).map(snapshotView);
      const cursors = items.map((s) => encodeCursor('snapshots', s.version));
      return { items, cursors, nextCursor: rows.length > limit ? cursors[cursors.length - 1] : null };
    },

    async get(id) {
      return lookup.withNodes(await lookup.mustGet(id));
    },

    async nodesOf(ids) {
      const stored = await store.nodesOf(ids);
      return new Map([...stored].map(([id, nodes]) => [id, nodes.map(nodeView)]));
    },
  };
}
