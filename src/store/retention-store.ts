/** The reads retention needs: which snapshots a policy lets go (the deletes go through the snapshot service). */
import type { Pool } from 'pg';
import type { Database } from './database.ts';
import { isUuid } from './snapshot-store.ts';

export interface RetentionCandidate {
  readonly id: string;
  readonly cluster: string;
  readonly version: number;
  readonly createdAt: Date;
}

export interface RetentionStore {
  /**
   * Snapshots past their cluster's `keep` newest, or created more than `days` days ago, oldest
   * first per cluster; never a cluster's latest.
   */
  candidates(limits: { keep: number | null; days: number | null }): Promise<RetentionCandidate[]>;
  /** Whether a newer snapshot of the same cluster exists (so this one is not the latest). */
  superseded(id: string): Promise<boolean>;
}

export function createRetentionStore(db: Pick<Database, 'pool'>): RetentionStore {
  const pool: Pool = db.pool;
  return {
    async candidates({ keep, days }) {
      if (keep === null && days === null) return [];
      const { rows } = await pool.query<{ id: string; cluster: string; version: number; created_at: Date }>(
        `SELECT id, cluster, version, created_at FROM (
           SELECT s.id, c.name AS cluster, s.version, s.created_at,
                  row_number() OVER (PARTITION BY s.cluster_id ORDER BY s.version DESC) AS rank
           FROM snapshot s JOIN cluster c ON c.id = s.cluster_id
         ) r
         WHERE rank > 1
           AND (($1::int IS NOT NULL AND rank > $1::int)
             OR ($2::int IS NOT NULL AND created_at < now() - make_interval(days => $2::int)))
         ORDER BY cluster, version`,
        [keep, days],
      );
      return rows.map((r) => ({ id: r.id, cluster: r.cluster, version: r.version, createdAt: r.created_at }));
    },

    async superseded(id) {
      if (!isUuid(id)) return false;
      const { rows } = await pool.query<{ newer: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM snapshot n JOIN snapshot s ON s.cluster_id = n.cluster_id AND n.version > s.version WHERE s.id = $1) AS newer`,
        [id],
      );
      return rows[0].newer;
    },
  };
}
