/** Audits and diffs on the analysis worker, as the server runs them: the same answers, and no crash when memory runs out. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestApp } from './helpers.ts';
import type { TestApp } from './helpers.ts';
import { generateCluster, renderIptablesSave, renderManifests } from '../support/kube-gen.ts';
import type { GenCluster } from '../support/kube-gen.ts';
import { ANALYSIS_MEANINGS_BYTES, auditStored, diffStored } from '../../src/services/analysis.ts';
import { ByteCache, chunkCache } from '../../src/services/byte-cache.ts';
import type { Meaning } from '../../src/services/kube-meaning.ts';

const apps: TestApp[] = [];
after(async () => {
  for (const a of apps) await a.close();
});

function upload(c: GenCluster, nodes: number) {
  return {
    nodes: c.nodes.slice(0, nodes).map((name, i) => ({
      name, addresses: [`10.9.0.${i + 1}`], rules: renderIptablesSave({ ...c, nodeName: name, nodeIPs: [`10.9.0.${i + 1}`] }),
    })),
    manifests: renderManifests(c),
  };
}

async function post(t: TestApp, cluster: string, body: unknown): Promise<string> {
  const res = await t.app.inject({ method: 'POST', url: `/v1/clusters/${cluster}/snapshots`, payload: body as object });
  assert.equal(res.statusCode, 201, res.body);
  return res.json().snapshot.id;
}

test('audit and diff on the worker answer as they do in place', async () => {
  const worker = await createTestApp({ analysisHeapMb: 512 });
  const inPlace = await createTestApp();
  apps.push(worker, inPlace);
  const a = generateCluster({ seed: 5, services: 120 });
  const b = structuredClone(a);
  const plain = b.services.filter((s) => s.clusterIP !== 'None' && s.endpoints.length >= 2 && s.internalTrafficPolicy === 'Cluster'
    && s.externalTrafficPolicy === 'Cluster' && s.endpoints.every((e) => e.ready && !e.terminating));
  plain[0].endpoints.pop();
  b.services = b.services.filter((s) => s !== plain[1]);
  const answers = [];
  for (const t of [worker, inPlace]) {
    // v1 with one node lagging (its rules from the older state) to give the audit something to say.
    const lagging = upload(b, 3);
    lagging.nodes[1] = upload(a, 3).nodes[1];
    const v1 = await post(t, 'c', lagging);
    const v2 = await post(t, 'c', upload(b, 3));
    const audit = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${v1}/audit` });
    assert.equal(audit.statusCode, 200, audit.body);
    const diff = await t.app.inject({ method: 'GET', url: `/v1/diff?from=${v1}&to=${v2}&limit=1000` });
    assert.equal(diff.statusCode, 200, diff.body);
    const one = await t.app.inject({ method: 'GET', url: `/v1/diff?from=${v1}&to=${v2}&node=${a.nodes[1]}&limit=1000` });
    assert.equal(one.statusCode, 200, one.body);
    const missing = await t.app.inject({ method: 'GET', url: `/v1/diff?from=${v1}&to=${v2}&node=nope` });
    assert.equal(missing.statusCode, 404);
    answers.push({ audit: audit.json().findings, diff: { ...diff.json(), from: '', to: '' }, one: { ...one.json(), from: '', to: '' } });
  }
  assert.ok(answers[0].audit.some((f: { check: string }) => f.check === 'node-disagreement'));
  assert.ok(answers[0].diff.totals.frontends > 0);
  assert.deepEqual(answers[0], answers[1]);
});

test('an audit that needs more memory than its worker has is a 503, and the server goes on', async () => {
  const t = await createTestApp({ analysisHeapMb: 128 });
  apps.push(t);
  const big = generateCluster({ seed: 9, services: 1500 });
  const id = await post(t, 'big', upload(big, 2));
  const res = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${id}/audit` });
  assert.equal(res.statusCode, 503, res.body.slice(0, 300));
  assert.equal(res.json().code, 'UNAVAILABLE');
  assert.match(res.json().detail, /SVCPATH_ANALYSIS_HEAP_MB/);
  assert.equal((await t.app.inject({ method: 'GET', url: '/health' })).statusCode, 200);
  // The worker was replaced: a small audit still works.
  const small = await post(t, 'small', upload(generateCluster({ seed: 3, services: 30 }), 2));
  assert.equal((await t.app.inject({ method: 'GET', url: `/v1/snapshots/${small}/audit` })).statusCode, 200);
});

test('a worker reads each snapshot\'s manifests once across tasks: an audit of v1 then a diff v1 → v2 read two, not three', async () => {
  const t = await createTestApp();
  apps.push(t);
  const a = generateCluster({ seed: 6, services: 40 });
  const b = structuredClone(a);
  b.services.pop();
  const v1 = await post(t, 'meanings', upload(a, 2));
  const v2 = await post(t, 'meanings', upload(b, 2));
  let reads = 0;
  class Counting<V> extends ByteCache<V> {
    override set(key: string, value: V, bytes: number): void {
      reads++;
      super.set(key, value, bytes);
    }
  }
  const caches = { chunks: chunkCache(4 * 1024 * 1024), meanings: new Counting<Promise<Meaning>>({ budgetBytes: ANALYSIS_MEANINGS_BYTES }) };
  const audit = await auditStored(t.db.pool, { snapshot: v1 }, caches);
  assert.equal(reads, 1);
  const diff = await diffStored(t.db.pool, { from: v1, to: v2 }, caches);
  assert.equal(reads, 2);
  // The answers are those of a worker that keeps nothing.
  assert.deepEqual(audit, await auditStored(t.db.pool, { snapshot: v1 }));
  assert.deepEqual(diff, await diffStored(t.db.pool, { from: v1, to: v2 }));
  assert.equal(caches.meanings.size, 2);
});
