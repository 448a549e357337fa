/** Uploads built to hurt the server, through REST and GraphQL, against a real PostgreSQL (issue 12). */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestApp } from './helpers.ts';
import type { TestApp } from './helpers.ts';
import { fixture } from '../helpers.ts';

let t: TestApp;
before(async () => {
  t = await createTestApp({ bodyLimit: 32 * 1024 * 1024 });
});
after(async () => {
  await t?.close();
});

const rules = fixture('k3s-blog', 'clusterip.iptables-S.txt');
const nodes = [{ name: 'node-a', addresses: ['10.32.11.62'], rules }];

async function snapshots(): Promise<number> {
  const { rows } = await t.db.pool.query('SELECT count(*)::int AS n FROM snapshot');
  return rows[0].n;
}

test('REST: manifests nested 12,000 levels are a 400, nothing is stored, the server answers on', async () => {
  const before = await snapshots();
  const res = await t.app.inject({ method: 'POST', url: '/v1/clusters/deep/snapshots', payload: { nodes, manifests: `${'- '.repeat(12_000)}x\n` } });
  assert.equal(res.statusCode, 400);
  assert.equal(res.json().code, 'VALIDATION');
  assert.match(res.json().detail, /nested more than 100 levels/);
  const json = await t.app.inject({ method: 'POST', url: '/v1/clusters/deep/snapshots', payload: { nodes, manifests: `{"items": ${'['.repeat(100_000)}${']'.repeat(100_000)}}` } });
  assert.equal(json.statusCode, 400);
  assert.equal(json.json().code, 'VALIDATION');
  assert.equal(await snapshots(), before);
  const health = await t.app.inject({ method: 'GET', url: '/health' });
  assert.equal(health.statusCode, 200);
});

test('REST: a 10 MB dump line that does not parse is answered in a few hundred bytes', async () => {
  // Not the last rule: a last rule cut short in its last word is left out, not refused.
  const bad = `${rules}-A KUBE-SERVICES -m comment --comment "${'x'.repeat(10 * 1024 * 1024)}\n-A KUBE-SERVICES -j RETURN\n`;
  const res = await t.app.inject({ method: 'POST', url: '/v1/clusters/long/snapshots', payload: { nodes: [{ ...nodes[0], rules: bad }] } });
  assert.equal(res.statusCode, 400);
  assert.equal(res.json().code, 'DUMP_SYNTAX');
  assert.ok(res.body.length < 3000, `${res.body.length} bytes`);
});

test('GraphQL: createSnapshot with deep manifests is refused with a VALIDATION code and a bounded excerpt', async () => {
  const res = await t.app.inject({
    method: 'POST', url: '/graphql',
    payload: {
      query: 'mutation($input: SnapshotInput!) { createSnapshot(cluster: "deep", input: $input) { created } }',
      variables: { input: { nodes, manifests: `kind: List\nitems:\n- ${'- '.repeat(12_000)}x\n` } },
    },
  });
  const body = res.json();
  assert.equal(body.errors[0].extensions.code, 'VALIDATION');
  assert.equal(body.errors[0].extensions.line, 3);
  assert.ok(body.errors[0].extensions.text.length <= 200);
  assert.ok(res.body.length < 3000, `${res.body.length} bytes`);
});
