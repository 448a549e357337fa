/**
 * Throwaway databases for the store tests: one `svcpath_test_<random>` database per
 * test file on the PostgreSQL at 127.0.0.1:5432 (or SVCPATH_TEST_ADMIN_URL), dropped
 * at the end. Where no such server answers, an embedded one in a temporary
 * directory stands in for it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before } from 'node:test';
import { DEFAULT_MIGRATIONS_DIR, openDatabase } from '../../src/store/database.ts';
import type { Database } from '../../src/store/database.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/store/embedded.ts';

const DEFAULT_ADMIN_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  /** A further empty database on the same server, dropped with this one. */
  another(): Promise<string>;
  drop(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

async function reachable(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

export async function createTestDatabase(): Promise<TestDatabase> {
  let adminUrl = process.env.SVCPATH_TEST_ADMIN_URL ?? DEFAULT_ADMIN_URL;
  let fallback: { server: EmbeddedPostgres; dir: string } | undefined;
  if (!(await reachable(adminUrl))) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'svcpath-test-pg-'));
    const server = await startEmbeddedPostgres({ dataDir: dir, database: 'postgres' });
    fallback = { server, dir };
    adminUrl = server.connectionString;
  }

  const names: string[] = [];
  const create = async () => {
    const name = `svcpath_test_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`);
    } finally {
      await admin.end();
    }
    names.push(name);
    return name;
  };

  const name = await create();
  return {
    url: withDatabase(adminUrl, name),
    name,
    another: async () => withDatabase(adminUrl, await create()),
    drop: async () => {
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      try {
        // WITH (FORCE) ends sessions a failed test may have left open (PostgreSQL 13+).
        for (const db of names) await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(db)} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
      if (fallback) {
        await fallback.server.stop();
        await rm(fallback.dir, { recursive: true, force: true });
      }
    },
  };
}

/** Every migration the repository ships, in the order they apply. */
export function shippedMigrations(): string[] {
  return readdirSync(DEFAULT_MIGRATIONS_DIR).filter((d) => /^\d{14}_/.test(d)).sort();
}

/** Running, and not a zombie waiting for an init process that may never reap it. */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/** Polls `condition` until it holds or `timeoutMs` have passed; says whether it held. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return condition();
}

/**
 * A throwaway database opened (migrated) before the tests of the enclosing suite or file and
 * dropped after them: `opened()` gives both once `before` has run.
 */
export function openedTestDatabase(): () => { readonly testDb: TestDatabase; readonly db: Database } {
  let testDb: TestDatabase | undefined;
  let db: Database | undefined;
  before(async () => {
    testDb = await createTestDatabase();
    db = await openDatabase({ databaseUrl: testDb.url, dataDir: '/nonexistent/not-used' });
  });
  after(async () => {
    await db?.close();
    await testDb?.drop();
  });
  return () => {
    if (!testDb || !db) throw new Error('the test database is opened in before(): ask for it in a test');
    return { testDb, db };
  };
}
