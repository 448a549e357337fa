import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createServer, type AddressInfo } from 'node:net';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { isDatabaseUnavailable } from '../../src/app-error.ts';
import { Prisma, PrismaClient } from '../../src/generated/prisma/client.ts';
import { openDatabase, type Database } from '../../src/store/database.ts';
import { createTestDatabase, openedTestDatabase, type TestDatabase, shippedMigrations } from './helpers.ts';

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

function isP2002(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002';
}

describe('openDatabase with DATABASE_URL', () => {
  const opened = openedTestDatabase();

  test('applies pending migrations before returning, and none the next time', async () => {
    const { db, testDb } = opened();
    assert.equal(db.embedded, false);
    assert.equal(db.connectionString, testDb.url);
    assert.deepEqual(db.appliedMigrations, shippedMigrations());

    const again = await openDatabase({ databaseUrl: testDb.url, dataDir: '/nonexistent/not-used' });
    try {
      assert.deepEqual(again.appliedMigrations, []);
    } finally {
      await again.close();
      await again.close(); // idempotent
    }
  });

  test('creates a cluster and a snapshot through Prisma', async () => {
    const { db } = opened();
    const cluster = await db.prisma.cluster.create({ data: { name: 'prod-eu' } });
    assert.match(cluster.id, /^[0-9a-f-]{36}$/);
    assert.ok(cluster.createdAt instanceof Date);

    const manifests = 'apiVersion: v1\nkind: Service\n';
    const snapshot = await db.prisma.snapshot.create({
      data: {
        clusterId: cluster.id,
        version: 1,
        labels: { env: 'prod', source: 'test' },
        contentHash: sha256('upload-1'),
        manifestsSha256: sha256(manifests),
      },
    });
    assert.equal(snapshot.version, 1);
    assert.deepEqual(snapshot.labels, { env: 'prod', source: 'test' });
    assert.equal(snapshot.manifestsSha256, sha256(manifests));

    const latest = await db.prisma.snapshot.findFirst({
      where: { cluster: { name: 'prod-eu' } },
      orderBy: { version: 'desc' },
      include: { cluster: true },
    });
    assert.equal(latest?.id, snapshot.id);
    assert.equal(latest?.cluster.name, 'prod-eu');
  });

  test('unique violations surface as P2002', async () => {
    const { db } = opened();
    await assert.rejects(db.prisma.cluster.create({ data: { name: 'prod-eu' } }), isP2002);

    const cluster = await db.prisma.cluster.findUniqueOrThrow({ where: { name: 'prod-eu' } });
    // Same version of the same cluster.
    await assert.rejects(
      db.prisma.snapshot.create({ data: { clusterId: cluster.id, version: 1, contentHash: sha256('upload-2') } }),
      (error: unknown) => {
        assert.ok(isP2002(error), String(error));
        return true;
      },
    );
    // Same content under a new version is allowed: a cluster may go back to an earlier state.
    await db.prisma.snapshot.create({ data: { clusterId: cluster.id, version: 2, contentHash: sha256('upload-1') } });
    // Another cluster may hold the same version and content.
    const other = await db.prisma.cluster.create({ data: { name: 'prod-us' } });
    await db.prisma.snapshot.create({ data: { clusterId: other.id, version: 1, contentHash: sha256('upload-1') } });
  });

  test('a cluster with snapshots cannot be deleted (snapshots are append-only)', async () => {
    const { db } = opened();
    await assert.rejects(db.prisma.cluster.delete({ where: { name: 'prod-eu' } }), (error: unknown) => {
      assert.ok(error instanceof Prisma.PrismaClientKnownRequestError, String(error));
      assert.equal(error.code, 'P2003'); // foreign key constraint
      return true;
    });
  });
});

describe('a database that goes away', () => {
  let testDb: TestDatabase;
  let db: Database;
  const logged: string[] = [];

  before(async () => {
    testDb = await createTestDatabase();
    db = await openDatabase({ databaseUrl: testDb.url, dataDir: '/nonexistent/not-used' }, { log: (m) => logged.push(m) });
  });

  after(async () => {
    await db?.close();
    await testDb?.drop();
  });

  /** Ends every session on the test database but ours, as an administrator or a server crash would. */
  async function terminateSessions(): Promise<number> {
    const admin = new pg.Client({ connectionString: testDb.url });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ n: string }>(
        'SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
      );
      return Number(rows[0]?.n ?? 0);
    } finally {
      await admin.end();
    }
  }

  test('a checked-out connection that the server ends does not end the process; the pool recovers', async () => {
    const client = await db.pool.connect();
    // Between two queries, as an upload is while it compresses its next node: no query to fail, so
    // node-postgres emits `error` on the client, and without a listener that would be uncaught.
    assert.ok((await terminateSessions()) >= 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.ok(logged.some((m) => /database connection lost: terminating connection due to administrator command/.test(m)), logged.join('\n'));
    await assert.rejects(client.query('SELECT 1'), (error: unknown) => isDatabaseUnavailable(error));
    client.release(true);
    // Idle pooled connections were ended too; the next queries open new ones.
    assert.equal((await db.pool.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one, 1);
    assert.equal(await db.prisma.cluster.count(), 0);
    assert.deepEqual(await db.health(), { database: 'ok' });
  });

  test('errors of a lost or unreachable server are recognised, from node-postgres and from Prisma', async () => {
    // A query under way when its session is ended: 57P01 from node-postgres ...
    const slow = assert.rejects(db.pool.query('SELECT pg_sleep(5)'), (error: unknown) => {
      assert.equal((error as { code?: string }).code, '57P01');
      return isDatabaseUnavailable(error);
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await terminateSessions();
    await slow;
    // ... and from Prisma, which keeps it under meta.driverAdapterError.
    const slowPrisma = assert.rejects(db.prisma.$queryRaw`SELECT pg_sleep(5)`, (error: unknown) => isDatabaseUnavailable(error));
    await new Promise((resolve) => setTimeout(resolve, 200));
    await terminateSessions();
    await slowPrisma;

    // Nothing listening: ECONNREFUSED from node-postgres, P1001 from Prisma.
    const closed = await openClosedPort();
    const pool = new pg.Pool({ connectionString: `postgresql://postgres@127.0.0.1:${closed}/x` });
    const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
    try {
      await assert.rejects(pool.query('SELECT 1'), (error: unknown) => {
        assert.equal((error as { code?: string }).code, 'ECONNREFUSED');
        return isDatabaseUnavailable(error);
      });
      await assert.rejects(prisma.cluster.count(), (error: unknown) => {
        assert.equal((error as { code?: string }).code, 'P1001');
        return isDatabaseUnavailable(error);
      });
    } finally {
      await pool.end();
    }

    // What is not an outage stays what it is.
    await assert.rejects(db.prisma.cluster.delete({ where: { name: 'absent' } }), (error: unknown) => !isDatabaseUnavailable(error));
    await assert.rejects(db.pool.query('SELECT * FROM no_such_table'), (error: unknown) => !isDatabaseUnavailable(error));
    assert.equal(isDatabaseUnavailable(new Error('boom')), false);
    assert.equal(isDatabaseUnavailable(new Error('x', { cause: new Error('Connection terminated unexpectedly') })), true);
  });
});

/** A port nothing listens on (bound for a moment, then released). */
async function openClosedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
