import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { DEFAULT_MIGRATIONS_DIR } from '../../src/store/database.ts';
import { applyMigrations, MigrationError, readMigrations } from '../../src/store/migrate.ts';
import { createTestDatabase, type TestDatabase, shippedMigrations } from './helpers.ts';

const INIT = '20261128000000_init';
const ALL = shippedMigrations();

interface HistoryRow {
  id: string;
  checksum: string;
  finished_at: Date | null;
  migration_name: string;
  logs: string | null;
  rolled_back_at: Date | null;
  started_at: Date;
  applied_steps_count: number;
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

const history = (url: string) =>
  query<HistoryRow>(url, 'SELECT * FROM _prisma_migrations ORDER BY started_at, migration_name');

async function fileSha256(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

/** A copy of the real migrations plus extra folders, for failure scenarios. */
async function migrationsWith(extra: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'svcpath-migrations-'));
  await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
  for (const [name, sql] of Object.entries(extra)) {
    await mkdir(path.join(dir, name));
    await writeFile(path.join(dir, name, 'migration.sql'), sql);
  }
  return dir;
}

describe('applyMigrations', () => {
  let db: TestDatabase;
  const tempDirs: string[] = [];

  before(async () => {
    db = await createTestDatabase();
  });

  after(async () => {
    for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
    await db?.drop();
  });

  test('applies the init migration once, then nothing', async () => {
    const started = performance.now();
    assert.deepEqual(await applyMigrations(db.url, DEFAULT_MIGRATIONS_DIR), ALL);
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 10_000, `applying the init migration took ${Math.round(elapsed)} ms`);

    assert.deepEqual(await applyMigrations(db.url, DEFAULT_MIGRATIONS_DIR), []);

    const tables = await query<{ tablename: string }>(
      db.url,
      "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    );
    assert.deepEqual(
      tables.map((t) => t.tablename),
      ['_prisma_migrations', 'api_token', 'blob', 'blob_parse', 'chunk', 'cluster', 'snapshot', 'snapshot_node', 'snapshot_reupload', 'upload', 'upload_node'],
    );
  });

  test('records the history exactly as Prisma does', async () => {
    const rows = await history(db.url);
    assert.equal(rows.length, ALL.length);
    const [row] = rows;
    assert.ok(row);
    assert.equal(row.migration_name, INIT);
    assert.equal(row.checksum, await fileSha256(path.join(DEFAULT_MIGRATIONS_DIR, INIT, 'migration.sql')));
    assert.match(row.checksum, /^[0-9a-f]{64}$/);
    assert.match(row.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.ok(row.finished_at instanceof Date);
    assert.ok(row.finished_at >= row.started_at);
    assert.equal(row.applied_steps_count, 1);
    assert.equal(row.logs, null);
    assert.equal(row.rolled_back_at, null);

    const columns = await query<{ column_name: string; data_type: string; is_nullable: string }>(
      db.url,
      `SELECT column_name, data_type, is_nullable FROM information_schema.columns
        WHERE table_name = '_prisma_migrations' ORDER BY ordinal_position`,
    );
    assert.deepEqual(
      columns.map((c) => `${c.column_name} ${c.data_type} ${c.is_nullable}`),
      [
        'id character varying NO',
        'checksum character varying NO',
        'finished_at timestamp with time zone YES',
        'migration_name character varying NO',
        'logs text YES',
        'rolled_back_at timestamp with time zone YES',
        'started_at timestamp with time zone NO',
        'applied_steps_count integer NO',
      ],
    );
  });

  test('computes checksums over the file bytes', async () => {
    const [init] = await readMigrations(DEFAULT_MIGRATIONS_DIR);
    assert.ok(init);
    assert.equal(init.name, INIT);
    assert.equal(init.checksum, await fileSha256(path.join(DEFAULT_MIGRATIONS_DIR, INIT, 'migration.sql')));
  });

  test('a failed migration leaves a row with logs, rolls back its statements, and blocks later runs', async () => {
    const broken = '20990101000000_broken';
    const dir = await migrationsWith({
      [broken]: 'CREATE TABLE "half_done" ("id" INTEGER);\nSELECT * FROM "no_such_table";\n',
    });
    tempDirs.push(dir);

    await assert.rejects(applyMigrations(db.url, dir), (error: unknown) => {
      assert.ok(error instanceof MigrationError);
      assert.equal(error.code, 'P3018');
      assert.equal(error.migrationName, broken);
      assert.match(error.message, /no_such_table/);
      return true;
    });

    const row = (await history(db.url)).find((r) => r.migration_name === broken);
    assert.ok(row, 'the failed migration has a history row');
    assert.equal(row.finished_at, null);
    assert.equal(row.rolled_back_at, null);
    assert.equal(row.applied_steps_count, 0);
    assert.ok(row.logs);
    assert.match(row.logs, /42P01/);
    assert.match(row.logs, /no_such_table/);

    // The file ran as one implicit transaction: its first statement did not survive.
    const halfDone = await query(db.url, "SELECT 1 FROM pg_tables WHERE tablename = 'half_done'");
    assert.equal(halfDone.length, 0);

    // Like Prisma's P3009, nothing runs until the failure is resolved, not even a fixed file.
    await writeFile(path.join(dir, broken, 'migration.sql'), 'CREATE TABLE "half_done" ("id" INTEGER);\n');
    await assert.rejects(applyMigrations(db.url, dir), (error: unknown) => {
      assert.ok(error instanceof MigrationError);
      assert.equal(error.code, 'P3009');
      assert.equal(error.migrationName, broken);
      return true;
    });

    // `prisma migrate resolve --rolled-back` marks the row; the fixed file then applies.
    await query(db.url, 'UPDATE _prisma_migrations SET rolled_back_at = now() WHERE migration_name = $1', [broken]);
    assert.deepEqual(await applyMigrations(db.url, dir), [broken]);
    const rows = (await history(db.url)).filter((r) => r.migration_name === broken);
    assert.equal(rows.length, 2);
    assert.equal(rows.filter((r) => r.finished_at !== null && r.rolled_back_at === null).length, 1);
  });

  test('warns about a migration edited after it was applied, and does not re-run it', async () => {
    const dir = await migrationsWith({});
    tempDirs.push(dir);
    const file = path.join(dir, INIT, 'migration.sql');
    await writeFile(file, `${await readFile(file, 'utf8')}\n-- edited\n`);
    const logs: string[] = [];
    const url = await db.another();
    assert.deepEqual(await applyMigrations(url, DEFAULT_MIGRATIONS_DIR), ALL);
    assert.deepEqual(await applyMigrations(url, dir, { log: (m) => logs.push(m) }), []);
    assert.ok(logs.some((m) => m.includes(INIT) && m.includes('modified')), logs.join('\n'));
  });

  test('concurrent runs on one database apply each migration once (advisory lock)', async () => {
    const url = await db.another();
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    try {
      const results = await Promise.all([
        applyMigrations(pool, DEFAULT_MIGRATIONS_DIR),
        applyMigrations(pool, DEFAULT_MIGRATIONS_DIR),
        applyMigrations(url, DEFAULT_MIGRATIONS_DIR),
      ]);
      assert.deepEqual(results.flat().sort(), ALL);
      assert.equal((await history(url)).length, ALL.length);
      // The lock was released: the pool's connections are usable and not holding it.
      const locks = await pool.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory'");
      assert.equal(locks.rows[0].n, 0);
    } finally {
      await pool.end();
    }
  });

  test('dumps and manifests stored before content-addressed storage come back byte for byte after it', async () => {
    // The history up to the last migration that stored raw dumps in snapshot_node.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'svcpath-migrations-'));
    tempDirs.push(dir);
    await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
    for (const name of ALL.filter((m) => m > '20261128191000_chains')) await rm(path.join(dir, name), { recursive: true });
    const url = await db.another();
    await applyMigrations(url, dir);
    const dump = '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d 10.96.0.1/32 -p tcp -j DNAT --to-destination 10.244.0.5:443\nCOMMIT\n';
    const manifests = '{"apiVersion": "v1", "kind": "List", "items": []}';
    const sha = (s: string) => createHash('sha256').update(s).digest('hex');
    const [{ id: clusterId }] = await query<{ id: string }>(url, "INSERT INTO cluster (name) VALUES ('old') RETURNING id");
    const [{ id: snapshotId }] = await query<{ id: string }>(
      url,
      `INSERT INTO snapshot (cluster_id, version, content_hash, manifests_raw, manifests_sha256) VALUES ($1, 1, 'h', $2, $3) RETURNING id`,
      [clusterId, manifests, sha(manifests)],
    );
    const { gzipSync } = await import('node:zlib');
    for (const [name, encoding, raw] of [['a', 'gzip', gzipSync(dump)], ['b', 'identity', Buffer.from(dump)]] as const) {
      await query(url, `INSERT INTO snapshot_node (snapshot_id, name, addresses, format, raw_rules, raw_encoding, sha256, summary)
        VALUES ($1, $2, '{}', 'iptables-save', $3, $4, $5, $6)`, [snapshotId, name, raw, encoding, sha(dump), JSON.stringify({ bytes: dump.length })]);
    }
    assert.deepEqual(await applyMigrations(url, DEFAULT_MIGRATIONS_DIR), ALL.filter((m) => m > '20261128191000_chains'));
    const { openDatabase } = await import('../../src/store/database.ts');
    const { createSnapshotStore } = await import('../../src/store/snapshot-store.ts');
    const opened = await openDatabase({ databaseUrl: url, dataDir: '' });
    try {
      const store = createSnapshotStore(opened);
      assert.equal((await store.rawRules(snapshotId, 'a'))?.toString('utf8'), dump);
      assert.equal((await store.rawRules(snapshotId, 'b'))?.toString('utf8'), dump);
      assert.equal(await store.manifests(snapshotId), manifests);
      // Both nodes had the same dump: one blob.
      assert.equal((await opened.pool.query('SELECT count(*)::int AS n FROM blob WHERE bytes = $1', [dump.length])).rows[0].n, 1);
    } finally {
      await opened.close();
    }
  });
});
