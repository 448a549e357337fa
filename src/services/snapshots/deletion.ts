/**
 * Deleting snapshots, and the storage sweep that frees what no snapshot or upload refers to any
 * more (after each delete, and now and then: the server calls `sweep`).
 */
import { AppError } from '../../app-error.ts';
import type { SnapshotStore } from '../../store/snapshot-store.ts';
import type { SnapshotLookup } from './lookup.ts';

export interface Deletion {
  delete: (id: string) => Promise<void>;
  /** One sweep at a time; a request for another while one runs is served by one more after it. */
  sweep: () => Promise<void>;
}

export function createDeletion(deps: {
  readonly store: SnapshotStore;
  readonly lookup: SnapshotLookup;
  /** Drops what is kept about a deleted snapshot beyond its metadata (its audit). */
  readonly forget: (id: string) => void;
  /** Told about background work that failed (the sweep). */
  readonly log?: (message: string) => void;
}): Deletion {
  const { store, lookup } = deps;
  let sweeping: Promise<void> | null = null;
  let again = false;

  function sweep(): Promise<void> {
    if (sweeping) {
      again = true;
      return sweeping;
    }
    sweeping = (async () => {
      do {
        again = false;
        try {
          await store.sweep();
        } catch (e) {
          deps.log?.(`storage sweep failed: ${(e as Error).message}`);
        }
      } while (again);
      sweeping = null;
    })();
    return sweeping;
  }

  return {
    async delete(id) {
      lookup.forget(id);
      deps.forget(id);
      if (!(await store.delete(id))) throw new AppError('NOT_FOUND', `snapshot ${id} not found`);
      void sweep();
    },
    sweep,
  };
}
