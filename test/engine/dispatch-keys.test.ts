/**
 * The parser keeps, per rule, its target and the keys long chains are indexed by (single-host
 * `-d`, single `--dport`). The tracer and the diff trust them instead of reading every rule
 * again, so they must say exactly what the materialised rule says.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseDump } from '../../src/engine/index.ts';
import type { Ruleset } from '../../src/engine/index.ts';
import { DumpChain } from '../../src/engine/netfilter/rule.ts';
import { dispatchKeys } from '../../src/engine/netfilter/dispatch.ts';
import { generateCluster, renderIptablesSave } from '../support/kube-gen.ts';

function check(rs: Ruleset, where: string): number {
  let rules = 0;
  for (const table of rs.tables.values()) {
    for (const chain of table.chains.values()) {
      assert.ok(chain instanceof DumpChain);
      const keys = Array.from({ length: chain.ruleCount }, (_, k) => ({ target: chain.targetAt(k), ...chain.dispatchAt(k) }));
      chain.rules.forEach((rule, i) => {
        const expected = dispatchKeys(rule);
        const label = `${where}: ${table.name}/${chain.name} #${i + 1} ${rule.text}`;
        assert.deepEqual(keys[i], { target: rule.target?.name ?? null, ...expected }, label);
        rules++;
      });
    }
  }
  return rules;
}

test('the keys the parser keeps agree with the rules: edge cases', () => {
  const rs = parseDump([
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':S - [0:0]',
    '-A S -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.1.0.1:8080',
    '-A S -d 10.0.0.2 -p udp --dport 53 -j S',
    '-A S ! -d 10.0.0.3/32 -p tcp -m tcp ! --dport 80 -j RETURN',
    '-A S -d 10.0.0.0/24 -p tcp -m tcp --dport 80:90 -j RETURN',
    '-A S -p tcp -m tcp --dport ! 443 -j RETURN',
    '-A S -p tcp -m multiport --dports 80,443 -j RETURN',
    '-A S -p sctp -m sctp --destination-port 9 -j RETURN',
    '-A S -p tcp -m tcp --sport 80 -j RETURN',
    '-A S -m comment --comment "-d 10.9.9.9/32 --dport 7 -j X" -j RETURN',
    '-A S -p tcp -m tcp --dport 1 -m tcp --dport 2',
    '-I S 2 -d 10.0.0.4/32 -p tcp -m tcp --dport 81 -g S',
    '-A PREROUTING -j S',
    'COMMIT',
    '',
  ].join('\n'));
  const s = rs.tables.get('nat')!.chains.get('S') as DumpChain;
  const keys = Array.from({ length: s.ruleCount }, (_, k) => s.dispatchAt(k));
  assert.deepEqual(keys.map((x) => x.port), [80, 81, 53, null, null, null, null, 9, null, null, 2]);
  assert.deepEqual(keys.map((x) => x.dst), ['10.0.0.1', '10.0.0.4', '10.0.0.2', null, null, null, null, null, null, null, null]);
  assert.equal(check(rs, 'edge cases'), 12);
  const v6 = parseDump('*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -d fd00::1/128 -p tcp -m tcp --dport 80 -j DROP\n-A INPUT -d fd00::/64 -j DROP\nCOMMIT\n');
  assert.equal(check(v6, 'ipv6'), 2);
});

test('the keys the parser keeps agree with the rules: kube-proxy dumps and a generated node', () => {
  let rules = 0;
  const root = join(import.meta.dirname, '..', 'fixtures', 'kube-proxy');
  for (const name of readdirSync(root)) {
    const dir = join(root, name);
    if (!statSync(dir).isDirectory()) continue;
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.txt') || f.endsWith('.iptables-save'))) {
      const text = readFileSync(join(dir, file), 'utf8');
      let rs: Ruleset;
      try {
        rs = parseDump(text);
      } catch {
        continue;
      }
      rules += check(rs, `${name}/${file}`);
    }
  }
  rules += check(parseDump(renderIptablesSave(generateCluster({ seed: 3, services: 60 }))), 'generated');
  assert.ok(rules > 1000, `${rules} rules compared`);
});
