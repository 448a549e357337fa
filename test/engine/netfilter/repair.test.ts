/** Dumps as people paste them (issue 14): repaired with a located warning, or refused where unreadable. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDump } from '../../../src/engine/index.ts';
import type { EngineError, Ruleset } from '../../../src/engine/index.ts';
import { traceText } from '../../helpers.ts';

const rules = (rs: Ruleset, table = 'nat') => [...rs.tables.get(table)!.chains.values()].flatMap((c) => c.rules.map((r) => `${r.line}: ${r.text}`));
const repairs = (rs: Ruleset) => rs.diagnostics.filter((d) => d.code === 'INPUT_REPAIRED' || d.code === 'TABLE_INFERRED').map((d) => `${d.code} ${d.line}:${d.column} ${d.message}`);

const SEP = '-A KUBE-SEP-A -p tcp -m tcp -j DNAT --to-destination 10.1.1.1:80';
const SVC = '-A KUBE-SVC-A -m comment --comment "default/web:http" -j KUBE-SEP-A';

test('iptables-save lines without a table header are read in the table their chains belong to', () => {
  const rs = parseDump([':KUBE-SVC-A - [0:0]', ':KUBE-SEP-A - [0:0]', SVC, SEP, '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP', 'COMMIT', '*filter', ':INPUT ACCEPT [0:0]', '-A INPUT -j ACCEPT', 'COMMIT', ''].join('\n'));
  assert.deepEqual(rules(rs), [`3: ${SVC}`, `4: ${SEP}`]);
  assert.deepEqual(rules(rs, 'filter'), ['5: -A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP', '9: -A INPUT -j ACCEPT']);
  const said = repairs(rs);
  assert.equal(said.length, 2);
  assert.match(said[0], /^TABLE_INFERRED 1:1 no '\*table' line above this one: the lines from here were read as the nat table/);
  assert.match(said[1], /KUBE-FORWARD in filter/);
  // Only where the format is left to svcpath: asked for iptables-save, the header is required.
  assert.throws(() => parseDump(`${SVC}\nCOMMIT\n`, { format: 'iptables-save' }), /rule outside a table/);
});

test('a system-log prefix on every line is removed and said so', () => {
  const rs = parseDump([`Nov 14 11:06:11 node-1 kube-proxy[12085]: ${SVC}`, `Nov 14 11:06:11 node-1 kube-proxy[12085]: ${SEP}`, ''].join('\n'));
  assert.deepEqual(rules(rs), [`1: ${SVC}`, `2: ${SEP}`]);
  assert.match(repairs(rs)[0], /^INPUT_REPAIRED 1:1 removed the system-log prefix \(such as 'Nov 14 11:06:11 node-1 kube-proxy\[12085\]:'\) from 2 lines$/);
  // A lone log line among rules is not a prefix to remove: that line is refused where it stands.
  assert.throws(() => parseDump(['*nat', SVC, `Nov 14 11:06:11 node-1 kube-proxy[12085]: ${SEP}`, SEP, SEP, 'COMMIT', ''].join('\n')), (e: EngineError) => e.location?.line === 3);
});

test('a rule wrapped by a terminal, onto the next line or padded within one, is joined', () => {
  const padded = parseDump(['*nat', `-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTI${' '.repeat(60)}NG`, 'COMMIT', ''].join('\n'));
  assert.deepEqual(rules(padded), ['2: -A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING']);
  assert.match(repairs(padded)[0], /^INPUT_REPAIRED 2:\d+ the rule looks wrapped by a terminal: removed 60 blanks/);
  const twoLines = parseDump(['*nat', '-A KUBE-SEP-A -p tcp -m tcp -j DNAT --to-destinat', 'ion 10.1.1.1:80', '-A KUBE-SEP-A -p tcp -m tcp', '--dport 81 -j DNAT --to-destination 10.1.1.2:80', 'COMMIT', ''].join('\n'));
  assert.deepEqual(rules(twoLines), [`2: ${SEP}`, '4: -A KUBE-SEP-A -p tcp -m tcp --dport 81 -j DNAT --to-destination 10.1.1.2:80']);
  assert.deepEqual(repairs(twoLines).map((r) => r.split(' (')[0]), [
    'INPUT_REPAIRED 3:1 this line does not start a rule, so it was read as the end of the rule on line 2',
    'INPUT_REPAIRED 5:1 this line does not start a rule, so it was read as the end of the rule on line 4',
  ]);
  // Spaces inside a quoted comment are the comment's.
  const quoted = parseDump(['*nat', `-A KUBE-SEP-A -m comment --comment "a${' '.repeat(10)}b" -j ACCEPT`, 'COMMIT', ''].join('\n'));
  assert.deepEqual(repairs(quoted), []);
});

test('a last rule cut short is left out with a warning; one cut short before the end is refused', () => {
  const rs = parseDump(['*nat', SVC, SEP, '-A KUBE-SEP-B -s 10.1.1.2/32 -j', ''].join('\n'));
  assert.deepEqual(rules(rs), [`2: ${SVC}`, `3: ${SEP}`]);
  assert.match(repairs(rs)[0], /^INPUT_REPAIRED 4:\d+ the last rule looks cut short \(-j needs a target\): it was left out/);
  assert.throws(() => parseDump(['*nat', SVC, '-A KUBE-SEP-B -s 10.1.1.2/32 -j', SEP, ''].join('\n')), (e: EngineError) => e.location?.line === 3 && /-j needs a target/.test(e.message));
  // A wrong value in the last rule is not a cut: refused.
  assert.throws(() => parseDump(['*nat', SVC, '-A KUBE-SEP-B -p tcp -m tcp --dport 99999 -j ACCEPT', ''].join('\n')), (e: EngineError) => e.location?.line === 3);
});

test('a UTF-8 byte order mark is dropped', () => {
  const rs = parseDump(`\uFEFF*nat\n${SEP}\nCOMMIT\n`);
  assert.deepEqual(rules(rs), [`2: ${SEP}`]);
  assert.deepEqual(repairs(rs), ['INPUT_REPAIRED 1:1 removed a UTF-8 byte order mark before the first line']);
});

test('the trace answer carries what was repaired', () => {
  const r = traceText([`Nov 14 11:06:11 node-1 kube-proxy[1]: ${SVC}`, `Nov 14 11:06:11 node-1 kube-proxy[1]: ${SEP}`, ''].join('\n'), { destination: '10.1.1.1', port: 80 });
  assert.ok(r.warnings.some((w) => w.code === 'INPUT_REPAIRED' && /^line 1, column 1: removed the system-log prefix/.test(w.message)));
});
