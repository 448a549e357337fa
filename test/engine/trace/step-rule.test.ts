/**
 * Path steps carry the parsed rule they stand for (ruleOf), unseen by JSON; the memo moves it with
 * the answer; descriptions and completions read rules, not text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { completeKubeProxy, describeTrace, parseDump, printRule, trace } from '../../../src/engine/index.ts';
import type { Rule, Ruleset, TraceResult, TraceStep } from '../../../src/engine/index.ts';
import { TraceMemo } from '../../../src/engine/trace/memo.ts';
import { ruleOf } from '../../../src/engine/trace/step-rule.ts';

const SVC = 'KUBE-SVC-AAAAAAAAAAAAAAAA';
const SEP1 = 'KUBE-SEP-BBBBBBBBBBBBBBBB';
const SEP2 = 'KUBE-SEP-CCCCCCCCCCCCCCCC';

/** A kube-proxy nat table with one Service of two endpoints; `before` goes first in KUBE-SERVICES. */
function dump(before: readonly string[] = []): string {
  return [
    '*nat',
    ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]',
    ':KUBE-SERVICES - [0:0]', ':KUBE-MARK-MASQ - [0:0]', `:${SVC} - [0:0]`, `:${SEP1} - [0:0]`, `:${SEP2} - [0:0]`,
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
    ...before,
    `-A KUBE-SERVICES -d 10.96.0.5/32 -p tcp -m comment --comment "ns1/web:http cluster IP" -m tcp --dport 80 -j ${SVC}`,
    `-A ${SVC} -m comment --comment "ns1/web:http -> 10.0.0.1:80" -m statistic --mode random --probability 0.50000000000 -j ${SEP1}`,
    `-A ${SVC} -m comment --comment "ns1/web:http -> 10.0.0.2:80" -j ${SEP2}`,
    `-A ${SEP1} -s 10.0.0.1/32 -m comment --comment "ns1/web:http" -j KUBE-MARK-MASQ`,
    `-A ${SEP1} -p tcp -m comment --comment "ns1/web:http" -m tcp -j DNAT --to-destination 10.0.0.1:80`,
    `-A ${SEP2} -s 10.0.0.2/32 -m comment --comment "ns1/web:http" -j KUBE-MARK-MASQ`,
    `-A ${SEP2} -p tcp -m comment --comment "ns1/web:http" -m tcp -j DNAT --to-destination 10.0.0.2:80`,
    'COMMIT',
    '',
  ].join('\n');
}

const request = (name: string) => ({
  node: { name, addresses: ['192.168.0.2'] },
  packet: { source: '198.18.0.1', destination: '10.96.0.5', port: 80, protocol: 'tcp' as const },
});

/** The rule of `rs` at a step's table, chain and position. */
function ruleAtStep(rs: Ruleset, s: { table: string; chain: string; index: number }): Rule {
  const rule = rs.tables.get(s.table)?.chains.get(s.chain)?.rules[s.index - 1];
  assert.ok(rule, `${s.table} ${s.chain} has a rule ${s.index}`);
  return rule;
}

/** Every step's rule is the rule of `rs` the step names: same place, line and text. */
function assertStepsStandOn(rs: Ruleset, r: TraceResult): number {
  let checked = 0;
  for (const o of r.outcomes) {
    for (const s of o.path) {
      const rule = ruleOf(s);
      if (s.index === 0) {
        assert.equal(rule, undefined, 'a policy step stands on no rule');
        continue;
      }
      assert.ok(rule, `${s.chain} ${s.index} carries its rule`);
      const want = ruleAtStep(rs, s);
      assert.deepEqual([rule.table, rule.chain, rule.index, rule.line, rule.text], [want.table, want.chain, want.index, want.line, want.text]);
      assert.equal(rule.text, s.rule);
      checked++;
    }
  }
  return checked;
}

test('each step of a trace carries the parsed rule it stands for, and the JSON answer does not show it', () => {
  const rs = parseDump(dump());
  const r = trace(rs, request('a'));
  assert.equal(r.outcomes.length, 2);
  assert.ok(assertStepsStandOn(rs, r) >= 8);
  const dnat = r.outcomes[0].path.find((s) => s.action === 'dnat')!;
  assert.deepEqual(ruleOf(dnat)?.target?.options[0].args, ['10.0.0.1:80']);
  for (const s of r.outcomes[0].path) {
    assert.deepEqual(Object.keys(s), Object.keys(JSON.parse(JSON.stringify(s)) as TraceStep), 'the rule is no field of the answer');
  }
  // A rule reference in a warning carries its rule too.
  const warned = trace(parseDump(dump(['-A KUBE-SERVICES -d 10.96.0.5/32 -p tcp -m set --match-set X dst -j DROP'])), request('a'));
  const w = warned.warnings.find((x) => x.code === 'NOT_MODELLED');
  assert.equal(w?.rule && ruleOf(w.rule)?.matches[0].module, 'set');
});

test('descriptions read the comments from the rules the steps carry, not from their text', () => {
  const r = trace(parseDump(dump()), request('a'));
  const named = describeTrace(r, null, null).outcomes[0].service;
  assert.deepEqual(named && [named.namespace, named.name, named.port.name, named.frontend, named.via], ['ns1', 'web', 'http', 'ClusterIP', 'comment']);
  // A copy made through JSON has the texts but not the rules: nothing reads the texts again.
  const copy = JSON.parse(JSON.stringify(r)) as TraceResult;
  assert.equal(describeTrace(copy, null, null).outcomes[0].service, undefined);
});

test('an answer the memo moves to another node carries that node\'s rules at their new positions', () => {
  const a = parseDump(dump());
  // Node b has two more rules at the top of KUBE-SERVICES, for other destinations: the packet meets
  // the same rules, two positions and two lines further down.
  const b = parseDump(dump([
    '-A KUBE-SERVICES -d 10.96.0.7/32 -p tcp -m comment --comment "ns2/other:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-ZZZZZZZZZZZZZZZZ',
    '-A KUBE-SERVICES -d 10.96.0.8/32 -p tcp -m comment --comment "ns3/other:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-ZZZZZZZZZZZZZZZZ',
  ]));
  const memo = new TraceMemo();
  const onA = memo.trace(a, request('a'));
  const onB = memo.trace(b, request('b'));
  assert.equal(memo.hits, 1, 'node b was answered from node a\'s trace');
  const direct = trace(b, request('b'));
  assert.deepEqual(JSON.parse(JSON.stringify(onB)), JSON.parse(JSON.stringify(direct)));
  const moved = (r: TraceResult) => r.outcomes[0].path.find((s) => s.chain === 'KUBE-SERVICES')!;
  assert.deepEqual([moved(onA).index, moved(onB).index], [1, 3], 'the step moved');
  assertStepsStandOn(b, onB);
  // Every step carries the rule a trace made on node b carries, those that kept their place too.
  const parts = (r: Rule | undefined) => r && [r.table, r.chain, r.index, r.line, r.text, r.target?.name];
  onB.outcomes.forEach((o, i) => o.path.forEach((s, k) => assert.deepEqual(parts(ruleOf(s)), parts(ruleOf(direct.outcomes[i].path[k])), `${s.chain} ${s.index}`)));
  assert.equal(describeTrace(onB, null, null).outcomes[1].service?.name, 'web');
});

test('completions are rules: their text is what printRule prints, their parts are the parsed parts', () => {
  const fragment = [
    `-A KUBE-SERVICES -d 10.96.0.5/32 -p tcp -m comment --comment "ns1/web:http cluster IP" -m tcp --dport 80 -j ${SVC}`,
    `-A ${SVC} ! -s 10.244.0.0/16 -d 10.96.0.5/32 -p tcp -m comment --comment "ns1/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
    `-A ${SVC} -m comment --comment "ns1/web:http -> 10.0.0.1:80" -m recent --name ${SEP1} --mask 255.255.255.255 --rsource --rcheck --seconds 10800 --reap -j ${SEP1}`,
    `-A ${SVC} -m comment --comment "ns1/web:http -> 10.0.0.1:80" -j ${SEP1}`,
  ].join('\n');
  const rs = completeKubeProxy(parseDump(fragment));
  const added = [...rs.tables.get('nat')!.chains.values()].flatMap((c) => c.rules.filter((r) => r.synthesized));
  for (const r of added) assert.equal(r.text, printRule(r, rs.family));
  const texts = added.map((r) => r.text);
  assert.ok(texts.includes('-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000'), texts.join('\n'));
  assert.ok(texts.includes('-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN'), texts.join('\n'));
  assert.ok(texts.includes(`-A ${SEP1} -s 10.0.0.1/32 -m comment --comment "ns1/web:http" -j KUBE-MARK-MASQ`), texts.join('\n'));
  const dnat = `-A ${SEP1} -p tcp -m comment --comment "ns1/web:http" -m recent --set --name ${SEP1} --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.0.0.1:80`;
  assert.ok(texts.includes(dnat), texts.join('\n'));
  const r = trace(rs, request('a'));
  const step = r.outcomes[0].path.find((s) => s.action === 'dnat')!;
  assert.equal(step.rule, dnat);
  assert.equal(ruleOf(step)?.matches.find((m) => m.module === 'recent')?.options.find((o) => o.name === 'name')?.args[0], SEP1);
  assert.match(r.outcomes[0].notes.join('\n'), /same endpoint for 10800 seconds \(recent list KUBE-SEP-BBBBBBBBBBBBBBBB\)/);
  // The mark a shown KUBE-MARK-MASQ sets is the one the completed KUBE-POSTROUTING tests.
  const marked = completeKubeProxy(parseDump(`${fragment}\n-A KUBE-MARK-MASQ -j MARK --or-mark 0x8000`));
  const postrouting = marked.tables.get('nat')!.chains.get('KUBE-POSTROUTING')!.rules.map((x) => x.text);
  assert.deepEqual(postrouting.slice(0, 2), ['-A KUBE-POSTROUTING -m mark ! --mark 0x8000/0x8000 -j RETURN', '-A KUBE-POSTROUTING -j MARK --set-xmark 0x0/0x8000']);
  // An IPv6 endpoint: a /128 source and a bracketed DNAT address.
  const six = completeKubeProxy(parseDump([
    '-A KUBE-SERVICES -d fd00::5/128 -p udp -m comment --comment "ns/dns:dns cluster IP" -m udp --dport 53 -j KUBE-SVC-CCCCCCCCCCCCCCCC',
    '-A KUBE-SVC-CCCCCCCCCCCCCCCC -m comment --comment "ns/dns:dns -> [fd00::a]:53" -j KUBE-SEP-DDDDDDDDDDDDDDDD',
  ].join('\n')));
  assert.deepEqual(six.tables.get('nat')!.chains.get('KUBE-SEP-DDDDDDDDDDDDDDDD')!.rules.map((x) => x.text), [
    '-A KUBE-SEP-DDDDDDDDDDDDDDDD -s fd00::a/128 -m comment --comment "ns/dns:dns" -j KUBE-MARK-MASQ',
    '-A KUBE-SEP-DDDDDDDDDDDDDDDD -p udp -m comment --comment "ns/dns:dns" -m udp -j DNAT --to-destination [fd00::a]:53',
  ]);
});
