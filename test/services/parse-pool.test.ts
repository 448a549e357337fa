/** Dumps and manifests checked on a parse worker answer as they do in place. */
import assert from 'node:assert/strict';
import { test, after } from 'node:test';
import { createParsePool } from '../../src/services/parse-pool.ts';
import { DEFAULT_LIMITS } from '../../src/services/limits.ts';
import { fixture } from '../helpers.ts';
import { generateCluster, renderIptablesSave } from '../support/kube-gen.ts';

const worker = createParsePool({ threads: 1 });
const inPlace = createParsePool({ threads: 0 });
after(async () => {
  await worker.close();
});

test('a dump and manifests, good and bad, checked on a worker and in place give the same answers', async () => {
  const good = Buffer.from(fixture('k3s-blog', 'clusterip.iptables-S.txt'));
  const bad = Buffer.from('*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -p tcp -j\nCOMMIT\n');
  for (const [bytes, format] of [[good, 'auto'], [bad, 'auto'], [good, 'iptables-save']] as const) {
    assert.deepEqual(await worker.check(Buffer.from(bytes), format), await inPlace.check(Buffer.from(bytes), format));
  }
  const failed = await worker.check(Buffer.from(bad), 'auto');
  assert.equal(failed.ok, false);
  assert.equal(!failed.ok && failed.location?.line, 3);
  const manifests = Buffer.from('{"apiVersion": "v1", "kind": "List", "items": []}');
  const deep = Buffer.from(`${'['.repeat(5000)}${']'.repeat(5000)}`);
  for (const m of [manifests, deep, Buffer.from('{"kind": "List", "items": [}')]) {
    assert.deepEqual(await worker.checkManifests(m, DEFAULT_LIMITS), await inPlace.checkManifests(m, DEFAULT_LIMITS));
  }
  const refused = await worker.checkManifests(deep, DEFAULT_LIMITS);
  assert.equal(refused.ok, false);
  assert.equal(!refused.ok && refused.code, 'VALIDATION');
});

test('a dump is hashed and cut into chunks on a worker as in place', async () => {
  const bytes = Buffer.from(fixture('k3s-blog', 'clusterip.iptables-S.txt').repeat(400));
  const [a, b] = [await worker.plan(Buffer.from(bytes)), await inPlace.plan(Buffer.from(bytes))];
  assert.deepEqual(a, b);
  assert.ok(a.ends.length > 1);
  assert.equal(a.sha256.toString('hex'), (await import('node:crypto')).createHash('sha256').update(bytes).digest('hex'));
});

test('a dump of megabytes goes to the workers in shared memory, once for its plan and its check, and reads as in place', async () => {
  const cluster = generateCluster({ seed: 5, services: 400 });
  const big = Buffer.from(renderIptablesSave({ ...cluster, nodeName: cluster.nodes[0] }));
  assert.ok(big.length > 1024 * 1024, `${big.length} bytes`);
  const planned = await worker.plan(big);
  const checked = await worker.check(big, 'auto');
  assert.equal(checked.ok, true);
  assert.deepEqual(checked, await inPlace.check(Buffer.from(big), 'auto'));
  assert.deepEqual(planned, await inPlace.plan(Buffer.from(big)));
});
