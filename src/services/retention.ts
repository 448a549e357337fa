/**
 * Retention (SVCPATH_RETENTION): old snapshots deleted in the background through the snapshot
 * service's delete, as `DELETE /v1/snapshots/{id}` does (which then sweeps the storage only they
 * used). A cluster's latest snapshot is never deleted, whatever the policy says.
 */
import { AppError } from '../app-error.ts';
import type { RetentionPolicy } from '../config.ts';
import type { RetentionCandidate, RetentionStore } from '../store/retention-store.ts';

export interface RetentionDeps {
  readonly policy: RetentionPolicy;
  readonly store: RetentionStore;
  /** The snapshot service's delete. */
  readonly deleteSnapshot: (id: string) => Promise<void>;
  /** Told what went, and about failures. */
  readonly log?: (message: string) => void;
}

export interface Retention {
  /** What the policy lets go now. */
  plan(): Promise<RetentionCandidate[]>;
  /** Deletes what the policy lets go; returns what was deleted. One run at a time. */
  apply(): Promise<RetentionCandidate[]>;
  /** Applies the policy now and every `intervalMs` on an unref'd timer; returns a stop function. */
  start(intervalMs: number): () => void;
}

export function describePolicy(p: RetentionPolicy): string {
  return [p.keep !== null ? `the newest ${p.keep} per cluster` : '', p.days !== null ? `none older than ${p.days} days` : '']
    .filter(Boolean).join(' and ') + " (a cluster's latest always)";
}

export function createRetention(deps: RetentionDeps): Retention {
  let running: Promise<RetentionCandidate[]> | null = null;

  async function run(): Promise<RetentionCandidate[]> {
    const deleted: RetentionCandidate[] = [];
    for (const c of await deps.store.candidates(deps.policy)) {
      // The plan was made a moment ago: a delete since then may have made this one the latest.
      if (!(await deps.store.superseded(c.id))) continue;
      try {
        await deps.deleteSnapshot(c.id);
        deleted.push(c);
      } catch (e) {
        if (e instanceof AppError && e.code === 'NOT_FOUND') continue; // deleted meanwhile
        throw e;
      }
    }
    return deleted;
  }

  const retention: Retention = {
    plan: () => deps.store.candidates(deps.policy),
    apply() {
      running ??= run().finally(() => {
        running = null;
      });
      return running;
    },
    start(intervalMs) {
      const tick = () => {
        retention.apply().then(
          (deleted) => {
            if (deleted.length > 0) deps.log?.(`retention deleted ${deleted.length} snapshot${deleted.length === 1 ? '' : 's'}: ${deleted.map((c) => `${c.cluster} v${c.version}`).join(', ')}`);
          },
          (e: unknown) => deps.log?.(`retention failed: ${(e as Error).message}`),
        );
      };
      const timer = setInterval(tick, intervalMs);
      timer.unref();
      tick();
      return () => clearInterval(timer);
    },
  };
  return retention;
}
