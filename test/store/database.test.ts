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
        manifestsRaw: manifests,
        manifestsSha256: sha256(manifests),
        manifestsParsed: { services: 1 },
      },
    });
    assert.equal(snapshot.version, 1);
    assert.deepEqual(snapshot.labels, { env: 'prod', source: 'test' });
    assert.equal(snapshot.manifestsRaw, manifests);

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
    // Same content uploaded again under a new version.
    await assert.rejects(
      db.prisma.snapshot.create({ data: { clusterId: cluster.id, version: 2, contentHash: sha256('upload-1') } }),
      isP2002,
    );
    // Another cluster may hold the same version and content.
    const other = await db.prisma.cluster.create({ data: { name: 'prod-us' } });
    await db.prisma.snapshot.create({ data: { clusterId: other.id, version: 1, contentHash: sha256('upload-1') } });
  });

  test('nodes keep their rule dump byte for byte; rules bulk-load with unnest and cascade away', async () => {
    const cluster = await db.prisma.cluster.create({ data: { name: 'bytes' } });
    const snapshot = await db.prisma.snapshot.create({
      data: { clusterId: cluster.id, version: 1, contentHash: sha256('bytes') },
    });
    // Not valid UTF-8, with NUL and CR bytes: must come back unchanged.
    const raw = Uint8Array.from([0x2a, 0x6e, 0x61, 0x74, 0x0d, 0x0a, 0x00, 0xff, 0xfe, 0x80, 0x0a]);
    const node = await db.prisma.snapshotNode.create({
      data: {
        snapshotId: snapshot.id,
        name: 'node-a',
        addresses: ['10.0.0.1', 'fd00::1'],
        format: 'iptables-save',
        rawRules: raw,
        sha256: sha256(raw),
        summary: { rules: 2, warnings: [] },
      },
    });
    const stored = await db.prisma.snapshotNode.findUniqueOrThrow({ where: { id: node.id } });
    assert.deepEqual(Buffer.from(stored.rawRules), Buffer.from(raw));
    assert.deepEqual(stored.addresses, ['10.0.0.1', 'fd00::1']);

    const chains = [
      { table: 'nat', chain: 'PREROUTING', policy: 'ACCEPT', declared: 2, lines: [3], rules: '-A PREROUTING -j KUBE-SERVICES' },
      { table: 'nat', chain: 'KUBE-SERVICES', policy: null, declared: 0, lines: [4, 5], rules: '-A KUBE-SERVICES -j KUBE-NODEPORTS\n-A KUBE-SERVICES -j RETURN' },
    ];
    for (const c of chains) {
      await db.pool.query(
        `INSERT INTO snapshot_chain (node_id, table_name, chain, policy, declared_line, rule_count, lines, rules)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [node.id, c.table, c.chain, c.policy, c.declared, c.lines.length, c.lines, c.rules],
      );
    }
    const loaded = await db.prisma.snapshotChain.findMany({
      where: { nodeId: node.id },
      orderBy: [{ tableName: 'asc' }, { chain: 'asc' }],
    });
    assert.deepEqual(
      loaded.map((r) => [r.chain, r.ruleCount, r.lines, r.rules.split('\n').length]),
      [['KUBE-SERVICES', 2, [4, 5], 2], ['PREROUTING', 1, [3], 1]],
    );
    assert.equal(typeof loaded[0]?.id, 'bigint');

    await db.prisma.snapshot.delete({ where: { id: snapshot.id } });
    assert.equal(await db.prisma.snapshotNode.count({ where: { id: node.id } }), 0);
    assert.equal(await db.prisma.snapshotChain.count({ where: { nodeId: node.id } }), 0);
  });

  test('a cluster with snapshots cannot be deleted (snapshots are append-only)', async () => {
    await assert.rejects(db.prisma.cluster.delete({ where: { name: 'prod-eu' } }), (error: unknown) => {
      assert.ok(error instanceof Prisma.PrismaClientKnownRequestError, String(error));
      assert.equal(error.code, 'P2003'); // foreign key constraint
      return true;
    });
  });
});
