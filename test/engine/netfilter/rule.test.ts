/**
 * Rules read from dumps share one parse of each text: the nodes of a cluster have almost every
 * rule in common, and whatever reads a rule's options reads the same parsed body.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDump } from '../../../src/engine/index.ts';
import type { Rule, Ruleset } from '../../../src/engine/netfilter/ast.ts';
import { sharedBodyCount } from '../../../src/engine/netfilter/rule.ts';

const dump = (nodeIP: string) => `*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" -m udp --dport 53 -j ACCEPT
-A KUBE-SERVICES -d ${nodeIP}/32 -p tcp -m tcp --dport 30080 -j DROP
COMMIT
`;

const rules = (rs: Ruleset): Rule[] => [...rs.tables.get('nat')!.chains.get('KUBE-SERVICES')!.rules];

test('two dumps with a rule of the same text share its parsed options; rules that differ do not', () => {
  const a = rules(parseDump(dump('192.168.0.11')));
  const b = rules(parseDump(dump('192.168.0.12')));
  const before = sharedBodyCount();
  assert.equal(a[0].matches, b[0].matches, 'the same text: one parse');
  assert.equal(a[0].destination, b[0].destination);
  assert.notEqual(a[1].destination, b[1].destination, 'another node address: another parse');
  assert.equal(a[1].destination!.value.address, '192.168.0.11');
  assert.equal(b[1].destination!.value.address, '192.168.0.12');
  assert.equal(sharedBodyCount() - before, 3, 'three distinct texts read');
  // Reading a rule again reads nothing new.
  assert.equal(rules(parseDump(dump('192.168.0.11')))[1].target!.name, 'DROP');
  assert.equal(sharedBodyCount() - before, 3);
});

test('the same text in a dump of the other family is read apart', () => {
  const v4 = rules(parseDump(dump('192.168.0.11')))[0];
  // The family is read from the addresses of the dump.
  const v6 = parseDump('*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 53 -j ACCEPT\n-A INPUT -d fd00::1/128 -j ACCEPT\nCOMMIT\n');
  const v4same = parseDump('*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 53 -j ACCEPT\nCOMMIT\n');
  const r6 = v6.tables.get('filter')!.chains.get('INPUT')!.rules[0];
  const r4 = v4same.tables.get('filter')!.chains.get('INPUT')!.rules[0];
  assert.equal(v6.family, 'ipv6');
  assert.notEqual(r6.matches, r4.matches, 'one parse per family');
  assert.deepEqual(r6.matches, r4.matches, 'which read alike here');
  assert.equal(v4.protocol!.value, 'udp');
});
