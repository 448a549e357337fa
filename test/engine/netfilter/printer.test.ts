import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDump, printRuleset } from '../../../src/engine/index.ts';
import { fixture, FIXTURES } from '../../helpers.ts';

const ruleLines = (text: string) =>
  text.split('\n').map((l) => l.trim().replace(/^\[\d+:\d+\]\s+/, '')).filter((l) => l.startsWith('-A '));

test('print(parse(x)) gives back real iptables-save output rule for rule', () => {
  const real = [
    'bossjones-kubeadm-1', 'bossjones-kubeadm-2', 'praqma-gke-1', 'cilium-lab-1', 'k8s-58599-1',
    'k8s-66454-1', 'sealer-1527-1', 'sealos-594-1', 'k8s-123837-1',
  ];
  for (const name of real) {
    const text = fixture('realworld', `${name}.iptables-save.txt`);
    assert.deepEqual(ruleLines(printRuleset(parseDump(text))), ruleLines(text), name);
  }
});

test("kube-proxy's restore payload prints in iptables-save's canonical form", () => {
  const text = [
    '*nat',
    ':KUBE-SVC-X - [0:0]',
    ':KUBE-MARK-MASQ - [0:0]',
    '-A KUBE-SVC-X -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
    '-A KUBE-SVC-X -m comment --comment ns1/svc1:p80 -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-A',
    '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
    '-A KUBE-MARK-MASQ -m mark --mark 0x00004000/0x00004000 -j MARK --xor-mark 0x4000',
    '-A KUBE-MARK-MASQ -j REJECT',
    'COMMIT',
  ].join('\n');
  assert.deepEqual(ruleLines(printRuleset(parseDump(text))), [
    '-A KUBE-SVC-X ! -s 10.0.0.0/8 -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ',
    '-A KUBE-SVC-X -m comment --comment "ns1/svc1:p80" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-A',
    '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000',
    '-A KUBE-MARK-MASQ -m mark --mark 0x4000/0x4000 -j MARK --set-xmark 0x4000/0x0',
    '-A KUBE-MARK-MASQ -j REJECT --reject-with icmp-port-unreachable',
  ]);
});

test('printing is a fixed point on the whole kube-proxy corpus, and keeps every rule', () => {
  const index = JSON.parse(fixture('kube-proxy', 'index.json')) as { cases: { folder: string }[] };
  for (const c of index.cases) {
    const text = readFileSync(join(FIXTURES, 'kube-proxy', c.folder, 'iptables-save.txt'), 'utf8');
    const once = printRuleset(parseDump(text));
    assert.equal(printRuleset(parseDump(once)), once, c.folder);
    assert.equal(ruleLines(once).length, ruleLines(text).length, c.folder);
  }
});
