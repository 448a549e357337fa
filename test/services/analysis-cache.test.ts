/** The analysis worker's cache of parsed dumps: each dump parsed once across audits and diffs, the answers unchanged. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestApp } from '../api/helpers.ts';
import type { TestApp } from '../api/helpers.ts';
import { auditStored, diffStored } from '../../src/services/analysis.ts';
import { createRulesetCache } from '../../src/services/ruleset-cache.ts';
import type { RulesetCache } from '../../src/services/ruleset-cache.ts';
import { generateCluster, renderIptablesSave, renderManifests } from '../support/kube-gen.ts';
import type { GenCluster } from '../support/kube-gen.ts';

let t: TestApp;
after(async () => t?.close());

function upload(c: GenCluster) {
  return {
    nodes: c.nodes.slice(0, 3).map((name, i) => ({
      name, addresses: [`10.9.0.${i + 1}`], rules: renderIptablesSave({ ...c, nodeName: name, nodeIPs: [`10.9.0.${i + 1}`] }),
    })),
    manifests: renderManifests(c),
  };
}

/** A cache that counts the dumps it had to load. */
function counting(cache: RulesetCache): { cache: RulesetCache; loads: () => number } {
  let loads = 0;
  return {
    cache: {
      get: (key, load) => cache.get(key, () => { loads++; return load(); }),
      settle: () => cache.settle(),
      get bytes() { return cache.bytes; },
      get entries() { return cache.entries; },
      get budget() { return cache.budget; },
    },
    loads: () => loads,
  };
}

test('an audit of v1 then the diff v1 → v2 parse v1 once, and answer as without the cache', async () => {
  t = await createTestApp();
  const a = generateCluster({ seed: 7, services: 80 });
  const b = structuredClone(a);
  const changed = b.services.find((s) => s.clusterIP !== 'None' && s.endpoints.length >= 2)!;
  changed.endpoints.pop();
  const ids: string[] = [];
  for (const c of [a, b]) {
    const res = await t.app.inject({ method: 'POST', url: '/v1/clusters/c/snapshots', payload: upload(c) });
    assert.equal(res.statusCode, 201, res.body);
    ids.push(res.json().snapshot.id);
  }
  const [v1, v2] = ids;
  const spy = counting(createRulesetCache({ budgetBytes: 256 * 1024 * 1024 }));
  const audit = await auditStored(t.db.pool, { snapshot: v1 }, spy.cache);
  assert.equal(spy.loads(), 3, 'each node of v1 loaded once');
  const diff = await diffStored(t.db.pool, { from: v1, to: v2 }, spy.cache);
  assert.equal(spy.loads(), 6, 'v1 from the cache, the three nodes of v2 loaded');
  await auditStored(t.db.pool, { snapshot: v2 }, spy.cache);
  assert.equal(spy.loads(), 6, 'v2 from the cache');

  assert.deepEqual(audit, await auditStored(t.db.pool, { snapshot: v1 }));
  const plain = await diffStored(t.db.pool, { from: v1, to: v2 });
  assert.deepEqual(diff, plain);
  assert.ok('summary' in diff && diff.summary.frontends.changed > 0, 'the diff saw the change');

  // A budget smaller than one dump keeps only the newest: nothing is held past it but that one.
  const tiny = counting(createRulesetCache({ budgetBytes: 1024 }));
  await auditStored(t.db.pool, { snapshot: v1 }, tiny.cache);
  assert.equal(tiny.cache.entries, 1);
  await auditStored(t.db.pool, { snapshot: v1 }, tiny.cache);
  // The first node's load evicted the third, which the first audit left: every node is loaded again.
  assert.equal(tiny.loads(), 6, 'evicted dumps are loaded again');
});
