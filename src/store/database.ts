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
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded.ts';
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
  /** Disconnects, ends the pool and stops the embedded server; safe to call more than once. */
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  readonly migrationsDir?: string;
  /** Connections in the pool (node-postgres' default is 10). */
  readonly poolSize?: number;
  /** Told about migrations and about errors on idle pooled connections. */
  readonly log?: (message: string) => void;
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
    server = await startEmbeddedPostgres({ dataDir: config.dataDir });
    connectionString = server.connectionString;
  }

  const pool = new pg.Pool({ connectionString, max: options.poolSize ?? 10 });
  // An idle connection dropped by the server (restart, admin kill) must not crash the process.
  pool.on('error', (error) => log(`idle database connection failed: ${error.message}`));

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

  return {
    prisma,
    pool,
    connectionString,
    embedded: server !== undefined,
    appliedMigrations,
    close: () => (closing ??= close()),
  };
}
