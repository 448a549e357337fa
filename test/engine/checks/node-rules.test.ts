/** The checks read kube-proxy's chains from the parsed rules: jumps, their odds and affinity, referrers and DNAT endpoints. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDump } from '../../../src/engine/index.ts';
import { NodeRules } from '../../../src/engine/checks/node-rules.ts';
import { SCALE } from '../../../src/engine/trace/probability.ts';

const SVC = 'KUBE-SVC-AAAAAAAAAAAAAAAA';
const SEP1 = 'KUBE-SEP-BBBBBBBBBBBBBBBB';
const SEP2 = 'KUBE-SEP-CCCCCCCCCCCCCCCC';
const SEP3 = 'KUBE-SEP-DDDDDDDDDDDDDDDD';

const dump = `*nat
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
:${SVC} - [0:0]
:${SEP1} - [0:0]
:${SEP2} - [0:0]
:${SEP3} - [0:0]
-A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment "ns/web:http cluster IP" -m tcp --dport 80 -j ${SVC}
-A ${SVC} ! -s 10.244.0.0/16 -d 10.96.0.20/32 -p tcp -m comment --comment "ns/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A ${SVC} -m comment --comment "ns/web:http -> 10.244.1.5:8080" -m recent --rcheck --seconds 10800 --reap --name ${SEP1} --mask 255.255.255.255 --rsource -j ${SEP1}
-A ${SVC} -m comment --comment "ns/web:http -> 10.244.1.5:8080" -m statistic --mode random --probability 0.33333333349 -j ${SEP1}
-A ${SVC} -m comment --comment "ns/web:http -> 10.244.2.6:8080" -m statistic --mode random --probability 0.50000000000 -j ${SEP2}
-A ${SVC} -m comment --comment "ns/web:http -> 10.244.3.7:8080" -j ${SEP3}
-A ${SEP1} -s 10.244.1.5/32 -m comment --comment "ns/web:http" -j KUBE-MARK-MASQ
-A ${SEP1} -p tcp -m comment --comment "ns/web:http" -m tcp -j DNAT --to-destination 10.244.1.5:8080
-A ${SEP2} -p tcp -m comment --comment "ns/web:http" -m tcp -j DNAT --to-destination 10.244.2.6-10.244.2.9:8080
-A ${SEP3} -p tcp -m comment --comment "ns/web:http" -m tcp -j DNAT --to-destination 10.244.3.7:0x1f90
COMMIT
`;

const ruleset = parseDump(dump);
const rules = new NodeRules({ name: 'n1', addresses: ['192.168.0.11'], ruleset }, ruleset);

test('a Service chain\'s jumps: the masquerade jump is conditional, the split reads its odds, affinity its recent list', () => {
  const jumps = rules.jumps(SVC);
  assert.deepEqual(jumps.map((j) => [j.target, j.kind, j.k, j.affinity, j.conditional, j.bySource]), [
    ['KUBE-MARK-MASQ', null, SCALE, null, true, false],
    [SEP1, 'SEP', SCALE, { name: SEP1, seconds: 10800 }, false, false],
    [SEP1, 'SEP', 715827883, null, false, false],
    [SEP2, 'SEP', 1073741824, null, false, false],
    [SEP3, 'SEP', SCALE, null, false, false],
  ]);
});

test('endpoints: the DNAT of each KUBE-SEP chain, a range none', () => {
  assert.deepEqual(rules.endpointJumps(SVC, false).map(({ dnat }) => dnat && { ip: dnat.ip, port: dnat.port, key: dnat.key }), [
    { ip: '10.244.1.5', port: 8080, key: '10.244.1.5:8080' },
    null,
    { ip: '10.244.3.7', port: 8080, key: '10.244.3.7:8080' },
  ]);
  assert.equal(rules.dnat(SEP1)!.rule.index, 2);
});

test('referrers: the rules that jump to a chain, by the targets the parser read', () => {
  assert.deepEqual(rules.referrers(SEP1).map((r) => `${r.chain}#${r.index}`), [`${SVC}#2`, `${SVC}#3`]);
  assert.deepEqual(rules.referrers('KUBE-MARK-MASQ').map((r) => `${r.chain}#${r.index}`), [`${SVC}#1`, `${SEP1}#1`]);
  assert.deepEqual(rules.referrers(SVC).map((r) => r.chain), ['KUBE-SERVICES']);
});

test('named rules: the fixed chains\' rules by the Service port their comment names', () => {
  assert.deepEqual(rules.named('ns/web:http').map((n) => n.rule.index), [1]);
  assert.deepEqual(rules.namedKeys(), ['ns/web:http']);
});

test('a chain of the same text on another node is read once; whether its targets exist is each node\'s own answer', () => {
  // The same Service and endpoint chains, a line earlier in the dump, and without SEP3's chain.
  const other = dump.replace(`:${SEP3} - [0:0]\n`, '').replace(`-A ${SEP3} -p tcp -m comment --comment "ns/web:http" -m tcp -j DNAT --to-destination 10.244.3.7:0x1f90\n`, '');
  const otherSet = parseDump(other);
  const otherRules = new NodeRules({ name: 'n2', addresses: ['192.168.0.12'], ruleset: otherSet }, otherSet);
  const here = rules.jumps(SVC);
  const there = otherRules.jumps(SVC);
  assert.deepEqual(here.map((j) => j.target), ['KUBE-MARK-MASQ', SEP1, SEP1, SEP2, SEP3]);
  assert.deepEqual(there.map((j) => j.target), ['KUBE-MARK-MASQ', SEP1, SEP1, SEP2]);
  // One reading, shared: the same jump objects, quoting the same rule text and position.
  for (const [i, j] of there.entries()) assert.equal(j, here[i]);
  assert.equal(otherRules.dnat(SEP1), rules.dnat(SEP1));
  assert.equal(otherRules.dnat(SEP3), null);
  assert.equal(rules.dnat(SEP3)?.key, '10.244.3.7:8080');
});
