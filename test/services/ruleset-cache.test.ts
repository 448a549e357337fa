import assert from 'node:assert/strict';
import { test } from 'node:test';
import { traceRules as trace } from '../../src/engine/index.ts';
import { BYTES_PER_COMPILED_RULE, BYTES_PER_DUMP_BYTE, createRulesetCache } from '../../src/services/ruleset-cache.ts';
import { generateCluster, renderIptablesSave } from '../support/kube-gen.ts';

const cluster = generateCluster({ seed: 4, services: 40 });
const dumps = cluster.nodes.slice(0, 4).map((n) => Buffer.from(renderIptablesSave({ ...cluster, nodeName: n })));
const key = (i: number) => ({ sha256: `sha-${i}`, format: 'iptables-save' });

test('parsed dumps are kept within a budget of bytes, the least recently used going first', async () => {
  const one = Math.ceil(dumps[0].length * BYTES_PER_DUMP_BYTE);
  const cache = createRulesetCache({ budgetBytes: Math.floor(one * 2.5) });
  let loads = 0;
  const get = (i: number) => cache.get(key(i), async () => {
    loads++;
    return dumps[i];
  });
  const [a, again] = await Promise.all([get(0), get(0)]);
  assert.equal(a, again);
  assert.equal(loads, 1, 'one parse for requests that overlap');
  await get(1);
  await get(0);
  await get(2);
  assert.equal(cache.entries, 2);
  assert.ok(cache.bytes <= cache.budget);
  await get(0);
  assert.equal(loads, 3, 'dump 0 was used recently and stayed');
  await get(1);
  assert.equal(loads, 4, 'dump 1 was the least recently used and went');
});

test('rules a trace compiles count towards the budget', async () => {
  const cache = createRulesetCache({ budgetBytes: 1 << 30 });
  const rs = await cache.get(key(0), async () => dumps[0]);
  const before = cache.bytes;
  const svc = cluster.services.find((s) => s.clusterIP !== 'None' && s.endpoints.length > 0)!;
  trace(rs, { node: { addresses: ['192.168.0.10'] }, packet: { source: '10.244.0.5', destination: svc.clusterIP, port: svc.ports[0].port, protocol: 'tcp' } });
  cache.settle();
  assert.ok(cache.bytes - before >= 3 * BYTES_PER_COMPILED_RULE, `${cache.bytes - before} bytes more`);
  // A budget the compiled rules exceed evicts all but the newest entry.
  const small = createRulesetCache({ budgetBytes: Math.ceil(dumps[0].length * BYTES_PER_DUMP_BYTE * 1.5) });
  const first = await small.get(key(0), async () => dumps[0]);
  trace(first, { node: { addresses: ['192.168.0.10'] }, packet: { source: '10.244.0.5', destination: svc.clusterIP, port: svc.ports[0].port, protocol: 'tcp' } });
  await small.get(key(1), async () => dumps[1]);
  small.settle();
  assert.equal(small.entries, 1);
});
