/** What the diff reads of a rule comes from the parsed rule: its keys, comment and DNAT destination. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDump } from '../../../src/engine/index.ts';
import type { Chain } from '../../../src/engine/netfilter/ast.ts';
import { chainTargets, dnatKey, FactsCache, readFacts } from '../../../src/engine/diff/rule-facts.ts';

function chainOf(rules: string[], name = 'KUBE-SERVICES'): Chain {
  const rs = parseDump(`*nat\n:${name} - [0:0]\n:KUBE-SVC-A - [0:0]\n${rules.map((r) => `-A ${name} ${r}`).join('\n')}\nCOMMIT\n`);
  return rs.tables.get('nat')!.chains.get(name)!;
}

test('a rule keyed by one host and one port, with its protocol, comment and target', () => {
  const c = chainOf(['-d 10.96.0.10/32 -p TCP -m comment --comment "ns/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-A']);
  assert.deepEqual(readFacts(c.rules[0]), {
    target: 'KUBE-SVC-A', dst: '10.96.0.10', dport: 80, protocol: 'tcp', comment: 'ns/web:http cluster IP', dstTypeLocal: false, dnat: null,
  });
});

test('rules that are not keyed: a network, a negation, a port range, no destination', () => {
  const c = chainOf([
    '-d 10.96.0.0/12 -p tcp -m tcp --dport 80 -j ACCEPT',
    '! -d 10.96.0.10/32 -p tcp -m tcp ! --dport 80 -j ACCEPT',
    '-d 10.96.0.10/32 -p tcp -m tcp --dport 80:90 -j ACCEPT',
    '-m addrtype --dst-type LOCAL -j KUBE-SVC-A',
    '! -p udp -j ACCEPT',
  ]);
  const [net, negated, range, local, notUdp] = c.rules.map(readFacts);
  assert.equal(net.dst, null);
  assert.equal(net.dport, 80);
  assert.equal(negated.dst, null);
  assert.equal(negated.dport, null);
  assert.equal(range.dport, null);
  assert.equal(local.dstTypeLocal, true);
  assert.equal(local.dst, null);
  assert.equal(notUdp.protocol, null);
});

test('DNAT destinations: one address and port is a key, anything else is not', () => {
  const v4 = chainOf([
    '-p tcp -m tcp -j DNAT --to-destination 10.244.1.5:8080',
    '-p tcp -m tcp -j DNAT --to-destination 10.244.1.5:0x50',
    '-p tcp -m tcp -j DNAT --to-destination 10.244.1.5-10.244.1.9:80',
    '-p tcp -m tcp -j DNAT --to-destination 10.244.1.5',
    '-p tcp -m tcp -j DNAT --to-destination 10.244.1.5:80 --to-destination 10.244.1.6:80',
    '-p tcp -m tcp -j REDIRECT --to-ports 80',
  ], 'KUBE-SEP-A');
  assert.deepEqual(v4.rules.map(dnatKey), ['10.244.1.5|8080', '10.244.1.5|80', null, null, null, null]);
  assert.equal(readFacts(v4.rules[0]).dnat, '10.244.1.5|8080');
  const v6 = parseDump('*nat\n:KUBE-SEP-B - [0:0]\n-A KUBE-SEP-B -p tcp -m tcp -j DNAT --to-destination [fd00:0::5]:8080\nCOMMIT\n');
  assert.equal(dnatKey(v6.tables.get('nat')!.chains.get('KUBE-SEP-B')!.rules[0]), 'fd00::5|8080');
  assert.deepEqual(chainTargets(v4).map((t) => t.dnat), ['10.244.1.5|8080', '10.244.1.5|80', null, null, null, null]);
});

test('facts are read once per distinct text', () => {
  const a = chainOf(['-d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j ACCEPT', '-d 10.96.0.11/32 -p tcp -m tcp --dport 80 -j ACCEPT']);
  const b = chainOf(['-d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j ACCEPT']);
  const facts = new FactsCache();
  const first = facts.get(a, 0);
  assert.equal(facts.get(b, 0), first);
  assert.equal(facts.get(a, 1).dst, '10.96.0.11');
  assert.equal(facts.size, 2);
});
