/**
 * Opens the service's database: the one named by DATABASE_URL, or else the
 * embedded server in the data directory. Pending migrations are applied before
 * the handle is returned, so callers always see the current schema.
 */
import { fileURLToPath } from 'node:url';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import type { Config } from '../config.ts';
import { PrismaClient } from '../generated/prisma/client.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres, type EmbeddedState } from './embedded.ts';
import { applyMigrations } from './migrate.ts';

export const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));

export interface Database {
  readonly prisma: PrismaClient;
  /** The pool Prisma's adapter uses; also for COPY and other raw work. */
  readonly pool: pg.Pool;
  readonly connectionString: string;
  /** Whether the server is the embedded one started by this call. */
  readonly embedded: boolean;
  /** The migrations applied while opening (empty when none were pending). */
  readonly appliedMigrations: readonly string[];
  /** The embedded server, when there is one: where its files are, what it runs as, its state. */
  readonly server: EmbeddedPostgres | undefined;
  /** Whether the database answers now (within a few seconds), and the embedded server's state. */
  health(): Promise<DatabaseHealth>;
  /** Resolves when health() says ok; otherwise throws a DatabaseDownError carrying it (for /health). */
  ping(): Promise<void>;
  /** Disconnects, ends the pool and stops the embedded server; safe to call more than once. */
  close(): Promise<void>;
}

export interface DatabaseHealth {
  readonly database: 'ok' | 'down';
  /** Absent with DATABASE_URL. */
  readonly embedded?: EmbeddedState;
  /** Why the database is down. */
  readonly reason?: string;
}

const HEALTH_TIMEOUT_MS = 3000;

export class DatabaseDownError extends Error {
  constructor(readonly details: DatabaseHealth) {
    super(details.reason ?? 'the database is down');
    this.name = 'DatabaseDownError';
  }
}

export interface OpenDatabaseOptions {
  readonly migrationsDir?: string;
  /** Connections in the pool (node-postgres' default is 10). */
  readonly poolSize?: number;
  /** Told about migrations, lost connections and the embedded server's restarts. */
  readonly log?: (message: string) => void;
  /** Told when the embedded server dies, comes back, or cannot be brought back (`failed`). */
  readonly onEmbeddedStateChange?: (state: EmbeddedState, cause?: Error) => void;
  /** Waits before each restart of the embedded server (tests shorten or lengthen them). */
  readonly restartDelaysMs?: readonly number[];
}

export async function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'dataDir'>,
  options: OpenDatabaseOptions = {},
): Promise<Database> {
  const log = options.log ?? (() => {});
  let server: EmbeddedPostgres | undefined;
  let connectionString: string;
  if (config.databaseUrl) {
    connectionString = config.databaseUrl;
  } else {
    server = await startEmbeddedPostgres({
      dataDir: config.dataDir,
      restartDelaysMs: options.restartDelaysMs,
      onStateChange: (state, cause) => {
        log(`embedded PostgreSQL ${state}${cause ? `: ${cause.message}` : ''}`);
        options.onEmbeddedStateChange?.(state, cause);
      },
    });
    connectionString = server.connectionString;
  }

  const pool = new pg.Pool({ connectionString, max: options.poolSize ?? 10 });
  // A connection the server drops (restart, crash, admin kill) emits `error`. node-postgres' pool
  // listens only while the client is idle; a checked-out client between two queries (an upload
  // compressing its next node) has no listener, and an unhandled `error` event ends the process.
  // Its next query fails, and the caller's error handling answers 503; the pool then drops it.
  pool.on('error', (error) => log(`idle database connection lost: ${error.message}`));
  pool.on('connect', (client) => {
    client.on('error', (error) => log(`database connection lost: ${error.message}`));
  });

  let appliedMigrations: string[];
  try {
    appliedMigrations = await applyMigrations(pool, options.migrationsDir ?? DEFAULT_MIGRATIONS_DIR, { log });
  } catch (error) {
    await pool.end().catch(() => {});
    await server?.stop().catch(() => {});
    throw error;
  }

  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  let closing: Promise<void> | undefined;
  const close = async () => {
    await prisma.$disconnect().catch(() => {});
    await pool.end().catch(() => {});
    await server?.stop();
  };

  const health = async (): Promise<DatabaseHealth> => {
    const embedded = server?.state();
    if (embedded !== undefined && embedded !== 'running') return { database: 'down', embedded, reason: `the embedded PostgreSQL is ${embedded}` };
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        pool.query('SELECT 1'),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${HEALTH_TIMEOUT_MS / 1000} s`)), HEALTH_TIMEOUT_MS);
        }),
      ]);
      return { database: 'ok', ...(server ? { embedded: server.state() } : {}) };
    } catch (error) {
      return { database: 'down', ...(server ? { embedded: server.state() } : {}), reason: (error as Error).message };
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    prisma,
    pool,
    connectionString,
    embedded: server !== undefined,
    appliedMigrations,
    server,
    health,
    ping: async () => {
      const report = await health();
      if (report.database !== 'ok') throw new DatabaseDownError(report);
    },
    close: () => (closing ??= close()),
  };
}
