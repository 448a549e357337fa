/** Retention and `svcpath prune`/`svcpath token` against a real PostgreSQL. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../../src/cli/main.ts';
import { createRetention } from '../../src/services/retention.ts';
import { createRetentionStore } from '../../src/store/retention-store.ts';
import { createTestApp } from '../api/helpers.ts';
import type { TestApp } from '../api/helpers.ts';

const k3s = (await import('../../examples/k3s/snapshot.json', { with: { type: 'json' } })).default as {
  nodes: Array<{ name: string; addresses: string[]; rules: string }>;
};

let t: TestApp;
before(async () => {
  t = await createTestApp();
});
after(async () => {
  await t?.close();
});

/** Versions 1..n of `cluster`, each a different state; returns their ids, oldest first. */
async function versions(cluster: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await t.service.create(cluster, { nodes: [{ ...k3s.nodes[0], name: `${cluster}-n${i}` }] });
    ids.push(r.snapshot.id);
  }
  return ids;
}

const left = async (cluster: string) =>
  (await t.db.pool.query('SELECT s.version FROM snapshot s JOIN cluster c ON c.id = s.cluster_id WHERE c.name = $1 ORDER BY version', [cluster])).rows.map((r) => r.version);

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s) }, out, err };
}

test('keep=N keeps the newest N of each cluster; days=D drops older ones but never the latest', async () => {
  await versions('ret-a', 5);
  await versions('ret-b', 1);
  const deleted: string[] = [];
  const retention = createRetention({
    policy: { keep: 2, days: null }, store: createRetentionStore(t.db),
    deleteSnapshot: async (id) => {
      deleted.push(id);
      await t.service.delete(id);
    },
  });
  assert.deepEqual((await retention.plan()).map((c) => `${c.cluster} v${c.version}`), ['ret-a v1', 'ret-a v2', 'ret-a v3']);
  assert.equal((await retention.apply()).length, 3);
  assert.deepEqual(await left('ret-a'), [4, 5]);
  assert.deepEqual(await left('ret-b'), [1]);
  assert.equal(deleted.length, 3);

  // Everything of ret-c is 40 days old, its latest too: only the latest stays.
  await versions('ret-c', 3);
  await t.db.pool.query(`UPDATE snapshot SET created_at = now() - interval '40 days' WHERE cluster_id = (SELECT id FROM cluster WHERE name = 'ret-c')`);
  const byAge = createRetention({ policy: { keep: null, days: 30 }, store: createRetentionStore(t.db), deleteSnapshot: (id) => t.service.delete(id) });
  assert.deepEqual((await byAge.apply()).map((c) => `${c.cluster} v${c.version}`), ['ret-c v1', 'ret-c v2']);
  assert.deepEqual(await left('ret-c'), [3]);
  assert.deepEqual(await left('ret-a'), [4, 5], 'young snapshots stay');
});

test('deleting through the snapshot service frees the storage only the deleted versions used', async () => {
  const chunks = async () => (await t.db.pool.query('SELECT count(*)::int AS n FROM chunk')).rows[0].n as number;
  await versions('ret-d', 3);
  const before = await chunks();
  const retention = createRetention({ policy: { keep: 1, days: null }, store: createRetentionStore(t.db), deleteSnapshot: (id) => t.service.delete(id) });
  await retention.apply();
  await t.service.sweep();
  assert.deepEqual(await left('ret-d'), [3]);
  // The three versions share their dump (only the node name differs), so nothing is freed: the latest still uses it.
  assert.equal(await chunks(), before);
});

test('svcpath prune --dry-run lists what would go and deletes nothing; prune deletes it', async () => {
  await versions('ret-e', 4);
  const saved = { url: process.env.DATABASE_URL, retention: process.env.SVCPATH_RETENTION };
  process.env.DATABASE_URL = t.db.connectionString;
  process.env.SVCPATH_RETENTION = 'keep=2';
  try {
    const dry = io();
    assert.equal(await main(['prune', '--dry-run'], dry.io), 0);
    assert.match(dry.out.join(''), /^ret-e {2}v1 {2}[0-9a-f-]{36} .*\nret-e {2}v2 /m);
    assert.match(dry.err.join(''), /would delete 2 snapshots; keeping the newest 2 per cluster/);
    assert.deepEqual(await left('ret-e'), [1, 2, 3, 4]);

    const wet = io();
    assert.equal(await main(['prune', '--keep', '3', '--json'], wet.io), 0);
    const answer = JSON.parse(wet.out.join(''));
    assert.deepEqual(answer.snapshots.map((s: { cluster: string; version: number }) => `${s.cluster} v${s.version}`), ['ret-e v1']);
    assert.deepEqual(await left('ret-e'), [2, 3, 4]);

    delete process.env.SVCPATH_RETENTION;
    const none = io();
    assert.equal(await main(['prune'], none.io), 2);
    assert.match(none.err.join(''), /no retention policy/);
  } finally {
    process.env.DATABASE_URL = saved.url;
    if (saved.retention === undefined) delete process.env.SVCPATH_RETENTION;
    else process.env.SVCPATH_RETENTION = saved.retention;
    if (saved.url === undefined) delete process.env.DATABASE_URL;
  }
});

test('svcpath token create prints the secret once; list shows no secret; revoke removes it', async () => {
  const saved = process.env.DATABASE_URL;
  process.env.DATABASE_URL = t.db.connectionString;
  try {
    const created = io();
    assert.equal(await main(['token', 'create', '--name', 'ci-prod', '--scope', 'write', '--cluster', 'prod-*'], created.io), 0);
    const secret = created.out.join('').trim();
    assert.match(secret, /^svcp_[A-Za-z0-9_-]{43}$/);
    assert.match(created.err.join(''), /shown once/);
    const listed = io();
    assert.equal(await main(['token', 'list'], listed.io), 0);
    assert.match(listed.out.join(''), /ci-prod {2}svcp_.{4}… {2}scopes write {2}clusters prod-\*/);
    assert.ok(!listed.out.join('').includes(secret.slice(9)));
    const revoked = io();
    assert.equal(await main(['token', 'revoke', 'ci-prod'], revoked.io), 0);
    assert.match(revoked.out.join(''), /revoked token 'ci-prod'/);
    const again = io();
    assert.equal(await main(['token', 'revoke', 'ci-prod'], again.io), 1);
    assert.match(again.err.join(''), /token ci-prod not found/);
    const usage = io();
    assert.equal(await main(['token', 'create', '--name', 'x'], usage.io), 2);
  } finally {
    if (saved === undefined) delete process.env.DATABASE_URL;
    else process.env.DATABASE_URL = saved;
  }
});
