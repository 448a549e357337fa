/**
 * Applies the SQL migrations under prisma/migrations the way `prisma migrate deploy`
 * does, without Prisma's schema-engine binary (which cannot be downloaded here).
 *
 * The history is written to `_prisma_migrations` exactly as Prisma writes it
 * (same table, same checksum, same columns set at the same moments), so that
 * `prisma migrate deploy` or `migrate status` on a machine that has the binary
 * sees an up-to-date database.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';

/** The advisory lock key Prisma's schema engine takes around migrations. */
export const PRISMA_MIGRATE_LOCK_KEY = 72707369;

export const MIGRATIONS_TABLE = '_prisma_migrations';

/** Prisma's own definition of the history table (schema-engine, sql-migration-connector). */
const CREATE_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "${MIGRATIONS_TABLE}" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

/**
 * P3009: the history holds a failed migration, so the schema is in an unknown
 * state. P3018: a migration failed while being applied now.
 * (The codes are Prisma's, so the messages can be looked up in its docs.)
 */
export type MigrationErrorCode = 'P3009' | 'P3018';

export class MigrationError extends Error {
  readonly code: MigrationErrorCode;
  readonly migrationName: string;

  constructor(code: MigrationErrorCode, migrationName: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'MigrationError';
    this.code = code;
    this.migrationName = migrationName;
  }
}

export interface LocalMigration {
  /** The folder name, e.g. `20261128000000_init`; also the history's `migration_name`. */
  readonly name: string;
  readonly sql: string;
  /** Lowercase hex sha256 of migration.sql's bytes, as Prisma computes it. */
  readonly checksum: string;
}

export interface ApplyMigrationsOptions {
  /** Told about each step and about anomalies that do not stop the run. */
  readonly log?: (message: string) => void;
}

interface HistoryRow {
  id: string;
  checksum: string;
  migration_name: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
  logs: string | null;
}

/** Reads `<dir>/<name>/migration.sql` for every migration folder, in name order (Prisma's order). */
export async function readMigrations(migrationsDir: string): Promise<LocalMigration[]> {
  const entries = await readdir(migrationsDir, { withFileTypes: true });
  const names = entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const migrations: LocalMigration[] = [];
  for (const name of names) {
    const file = path.join(migrationsDir, name, 'migration.sql');
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (error) {
      throw new Error(`migration folder ${name} has no readable migration.sql (${file})`, { cause: error });
    }
    migrations.push({
      name,
      sql: bytes.toString('utf8'),
      checksum: createHash('sha256').update(bytes).digest('hex'),
    });
  }
  return migrations;
}

/**
 * Applies every migration in `migrationsDir` not yet recorded as applied, in name
 * order, and returns the names it applied (empty when the database is up to date).
 *
 * Concurrent callers are serialised by Prisma's advisory lock. Each file runs as one
 * simple-protocol query, which PostgreSQL executes as a single implicit transaction,
 * so a failing migration leaves no partial schema behind, only its history row with
 * the error in `logs`; later runs then refuse to start (P3009) until that row is
 * resolved, as Prisma does.
 */
export async function applyMigrations(
  database: pg.Pool | string,
  migrationsDir: string,
  options: ApplyMigrationsOptions = {},
): Promise<string[]> {
  const log = options.log ?? (() => {});
  const local = await readMigrations(migrationsDir);

  let client: pg.ClientBase;
  let release: (error?: Error) => Promise<void>;
  if (typeof database === 'string') {
    const own = new pg.Client({ connectionString: database });
    await own.connect();
    client = own;
    release = () => own.end();
  } else {
    const pooled = await database.connect();
    client = pooled;
    release = async (error) => pooled.release(error);
  }

  let broken: Error | undefined;
  try {
    await client.query('SELECT pg_advisory_lock($1)', [PRISMA_MIGRATE_LOCK_KEY]);
    try {
      return await applyLocked(client, local, log);
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [PRISMA_MIGRATE_LOCK_KEY]).catch((error: Error) => {
        // A connection that cannot unlock must not go back to the pool holding the lock.
        broken = error;
      });
    }
  } finally {
    await release(broken);
  }
}

async function applyLocked(
  client: pg.ClientBase,
  local: readonly LocalMigration[],
  log: (message: string) => void,
): Promise<string[]> {
  await client.query(CREATE_MIGRATIONS_TABLE);
  const { rows } = await client.query<HistoryRow>(
    `SELECT id, checksum, migration_name, finished_at, rolled_back_at, logs
       FROM "${MIGRATIONS_TABLE}" ORDER BY started_at ASC`,
  );

  const failed = rows.find((row) => row.finished_at === null && row.rolled_back_at === null);
  if (failed) {
    throw new MigrationError(
      'P3009',
      failed.migration_name,
      `migration ${failed.migration_name} failed earlier and is recorded as unfinished in ${MIGRATIONS_TABLE}; ` +
        'repair the database, then mark it resolved (delete the row, or set rolled_back_at to re-run it). ' +
        `Its logs:\n${failed.logs ?? '(none)'}`,
    );
  }

  // A migration counts as applied when it finished and was not rolled back since.
  const applied = new Map<string, HistoryRow>();
  for (const row of rows) {
    if (row.finished_at !== null && row.rolled_back_at === null) applied.set(row.migration_name, row);
  }

  const localNames = new Set(local.map((migration) => migration.name));
  for (const name of applied.keys()) {
    if (!localNames.has(name)) log(`migration ${name} is recorded as applied but missing from the migrations folder`);
  }

  const done: string[] = [];
  for (const migration of local) {
    const row = applied.get(migration.name);
    if (row) {
      if (row.checksum !== migration.checksum) {
        log(`migration ${migration.name} was modified after it was applied (checksum differs); not re-applying it`);
      }
      continue;
    }
    await applyOne(client, migration, log);
    done.push(migration.name);
  }
  return done;
}

async function applyOne(client: pg.ClientBase, migration: LocalMigration, log: (message: string) => void): Promise<void> {
  const id = randomUUID();
  await client.query(
    `INSERT INTO "${MIGRATIONS_TABLE}" (id, checksum, started_at, migration_name, applied_steps_count)
     VALUES ($1, $2, now(), $3, 0)`,
    [id, migration.checksum, migration.name],
  );
  log(`applying migration ${migration.name}`);
  try {
    // No parameters: node-postgres sends this with the simple query protocol,
    // which accepts many statements in one string.
    await client.query(migration.sql);
  } catch (error) {
    const logs = describeFailure(migration.name, error);
    await client.query(`UPDATE "${MIGRATIONS_TABLE}" SET logs = $2 WHERE id = $1`, [id, logs]);
    throw new MigrationError('P3018', migration.name, logs, { cause: error });
  }
  await client.query(
    `UPDATE "${MIGRATIONS_TABLE}" SET finished_at = now(), applied_steps_count = applied_steps_count + 1 WHERE id = $1`,
    [id],
  );
}

/** The text Prisma would put in `logs`: which migration, the SQLSTATE, the server's message. */
function describeFailure(name: string, error: unknown): string {
  const lines = [`Migration name: ${name}`];
  if (error instanceof pg.DatabaseError) {
    if (error.code) lines.push('', `Database error code: ${error.code}`);
    lines.push('', 'Database error:', `ERROR: ${error.message}`);
    if (error.detail) lines.push(`DETAIL: ${error.detail}`);
    if (error.hint) lines.push(`HINT: ${error.hint}`);
    if (error.position) lines.push('', `Position: ${error.position}`);
  } else {
    lines.push('', String(error instanceof Error ? error.message : error));
  }
  return lines.join('\n');
}
