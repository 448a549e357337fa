import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Prisma } from '../../src/generated/prisma/client.ts';
import { openDatabase, type Database } from '../../src/store/database.ts';
import { createTestDatabase, type TestDatabase, shippedMigrations } from './helpers.ts';

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

function isP2002(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002';
}

describe('openDatabase with DATABASE_URL', () => {
  let testDb: TestDatabase;
  let db: Database;

  before(async () => {
    testDb = await createTestDatabase();
    db = await openDatabase({ databaseUrl: testDb.url, dataDir: '/nonexistent/not-used' });
  });

  after(async () => {
    await db?.close();
    await testDb?.drop();
  });

  test('applies pending migrations before returning, and none the next time', async () => {
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
    await assert.rejects(db.prisma.cluster.delete({ where: { name: 'prod-eu' } }), (error: unknown) => {
      assert.ok(error instanceof Prisma.PrismaClientKnownRequestError, String(error));
      assert.equal(error.code, 'P2003'); // foreign key constraint
      return true;
    });
  });
});
