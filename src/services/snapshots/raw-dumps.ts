/**
 * The dumps of a snapshot's node as they were uploaded, byte for byte.
 */
import { AppError } from '../../app-error.ts';
import type { SnapshotStore } from '../../store/snapshot-store.ts';
import type { SnapshotService } from '../snapshot-types.ts';
import type { SnapshotLookup } from './lookup.ts';

export type RawDumpOperations = Pick<SnapshotService, 'rawRules' | 'rawRules6'>;

export function createRawDumps(deps: { readonly store: SnapshotStore; readonly lookup: SnapshotLookup }): RawDumpOperations {
  const { store, lookup } = deps;
  return {
    async rawRules(id, node) {
      // `id` may be a reference (prod@12): the store reads by the id it names.
      const raw = await store.rawRules((await lookup.mustGet(id)).id, node);
      if (!raw) throw new AppError('NOT_FOUND', `node ${node} not found in snapshot ${id}`);
      return raw;
    },

    async rawRules6(id, node) {
      const { snapshot, nodes } = await lookup.withStoredNodes(id);
      const n = nodes.find((m) => m.name === node);
      if (!n) throw new AppError('NOT_FOUND', `node ${node} not found in snapshot ${id}`);
      const raw = n.ipv6 ? await store.rawRules6(snapshot.id, node) : null;
      if (!raw) throw new AppError('NOT_FOUND', `node ${node} of snapshot ${id} has no IPv6 dump (rules6); its only dump is at …/nodes/${node}/rules`);
      return raw;
    },
  };
}
