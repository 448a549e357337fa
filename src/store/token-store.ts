/**
 * API tokens as rows of `api_token`, found by the sha256 of their secret (the secret itself is
 * never stored), and the reads the access checks need: which cluster a snapshot or an upload
 * belongs to.
 */
import type { Pool } from 'pg';
import type { Database } from './database.ts';
import { isUuid } from './snapshot-store.ts';

export interface StoredToken {
  readonly id: string;
  readonly name: string;
  readonly hint: string;
  readonly scopes: readonly string[];
  readonly clusters: readonly string[];
  readonly createdAt: Date;
  readonly lastUsedAt: Date | null;
}

export interface NewToken {
  readonly name: string;
  readonly secretSha256: Buffer;
  readonly hint: string;
  readonly scopes: readonly string[];
  readonly clusters: readonly string[];
}

export interface TokenStore {
  /** Null when a token of that name exists. */
  create(token: NewToken): Promise<StoredToken | null>;
  /** Oldest first. */
  list(): Promise<StoredToken[]>;
  /** The token whose secret has this sha256, with that sha256 as stored (for a constant-time compare). */
  bySecret(sha: Buffer): Promise<(StoredToken & { readonly secretSha256: Buffer }) | null>;
  /** By id or by name; null when there is none. */
  delete(idOrName: string): Promise<StoredToken | null>;
  /** Whether any token exists. */
  any(): Promise<boolean>;
  touch(id: string): Promise<void>;
}

interface TokenRow {
  id: string; name: string; hint: string; scopes: string[]; clusters: string[]; created_at: Date; last_used_at: Date | null;
}

const COLUMNS = 'id, name, hint, scopes, clusters, created_at, last_used_at';

function toToken(r: TokenRow): StoredToken {
  return {
    id: r.id, name: r.name, hint: r.hint, scopes: r.scopes, clusters: r.clusters, createdAt: r.created_at, lastUsedAt: r.last_used_at,
  };
}

export function createTokenStore(db: Pick<Database, 'pool'>): TokenStore {
  const pool: Pool = db.pool;
  return {
    async create(t) {
      const { rows } = await pool.query<TokenRow>(
        `INSERT INTO api_token (name, secret_sha256, hint, scopes, clusters) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO NOTHING RETURNING ${COLUMNS}`,
        [t.name, t.secretSha256, t.hint, t.scopes, t.clusters],
      );
      return rows[0] ? toToken(rows[0]) : null;
    },

    async list() {
      const { rows } = await pool.query<TokenRow>(`SELECT ${COLUMNS} FROM api_token ORDER BY created_at, name`);
      return rows.map(toToken);
    },

    async bySecret(sha) {
      const { rows } = await pool.query<TokenRow & { secret_sha256: Buffer }>(
        `SELECT ${COLUMNS}, secret_sha256 FROM api_token WHERE secret_sha256 = $1`, [sha],
      );
      return rows[0] ? { ...toToken(rows[0]), secretSha256: rows[0].secret_sha256 } : null;
    },

    async delete(idOrName) {
      const { rows } = await pool.query<TokenRow>(
        `DELETE FROM api_token WHERE ${isUuid(idOrName) ? 'id = $1::uuid' : 'name = $1'} RETURNING ${COLUMNS}`, [idOrName],
      );
      return rows[0] ? toToken(rows[0]) : null;
    },

    async any() {
      const { rows } = await pool.query<{ any: boolean }>('SELECT EXISTS (SELECT 1 FROM api_token) AS any');
      return rows[0].any;
    },

    async touch(id) {
      await pool.query('UPDATE api_token SET last_used_at = now() WHERE id = $1', [id]);
    },
  };
}

export interface ClusterLookup {
  /** The cluster of each snapshot that exists (missing ids are left out). */
  ofSnapshots(ids: readonly string[]): Promise<Map<string, string>>;
  /** The cluster an upload in steps was begun for, or null when there is no such upload. */
  ofUpload(id: string): Promise<string | null>;
}

export function createClusterLookup(db: Pick<Database, 'pool'>): ClusterLookup {
  const pool: Pool = db.pool;
  return {
    async ofSnapshots(ids) {
      const valid = [...new Set(ids.filter(isUuid))];
      if (valid.length === 0) return new Map();
      const { rows } = await pool.query<{ id: string; name: string }>(
        'SELECT s.id, c.name FROM snapshot s JOIN cluster c ON c.id = s.cluster_id WHERE s.id = ANY($1::uuid[])', [valid],
      );
      return new Map(rows.map((r) => [r.id, r.name]));
    },

    async ofUpload(id) {
      if (!isUuid(id)) return null;
      const { rows } = await pool.query<{ cluster: string }>('SELECT cluster FROM upload WHERE id = $1', [id]);
      return rows[0]?.cluster ?? null;
    },
  };
}
