/** Every dump pasted from a real cluster parses, or fails with a located error; none crashes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { completeKubeProxy, EngineError, groupByCase, parseDump, printRuleset, trace } from '../../src/engine/index.ts';
import { clipLine } from '../../src/engine/errors.ts';
import { fixture, FIXTURES } from '../helpers.ts';

const files = readdirSync(join(FIXTURES, 'realworld')).filter((f) => f.endsWith('.txt'));

test('the real-world corpus is all there', () => {
  assert.equal(files.length, 60);
});

for (const file of files) {
  test(`real-world dump ${file}`, () => {
    const text = fixture('realworld', file);
    let rs;
    try {
      rs = parseDump(text);
    } catch (e) {
      assert.ok(e instanceof EngineError, `${file}: ${String(e)}`);
      assert.ok(e.code === 'DUMP_SYNTAX' || e.code === 'DUMP_FORMAT_UNSUPPORTED', e.code);
      assert.ok(e.location && e.location.line >= 1 && e.location.column >= 1, 'located');
      assert.equal(e.location.text, clipLine(text.split('\n')[e.location.line - 1].replace(/\r$/, ''), e.location.column).text);
      if (!/\.(iptables-save|iptables-S|iptables-L)\.txt$/.test(file)) assert.equal(e.code, 'DUMP_FORMAT_UNSUPPORTED', `${file}: ${e.message}`);
      return;
    }
    assert.ok(/\.(iptables-save|iptables-S|iptables-L)\.txt$/.test(file), `${file} should not parse as iptables`);
    // Reprinting and re-parsing keeps every rule.
    const again = parseDump(printRuleset(rs));
    const count = (r: typeof rs) => [...r.tables.values()].reduce((n, t) => n + [...t.chains.values()].reduce((m, c) => m + c.rules.length, 0), 0);
    assert.equal(count(again), count(rs));
    const completed = completeKubeProxy(rs);
    const family = rs.family;
    const r = trace(completed, {
      node: { addresses: [family === 'ipv4' ? '192.168.0.2' : 'fd00::2'] },
      packet: family === 'ipv4'
        ? { source: '10.244.1.1', destination: '10.96.0.1', port: 443, protocol: 'tcp' }
        : { source: 'fd00:10::1', destination: 'fd00:20::1', port: 443, protocol: 'tcp' },
    });
    // Within each case of an unknown interface (outcomes without conditions belong to every case),
    // the probabilities add up to 1.
    for (const group of groupByCase(r.outcomes, (o) => o.conditions)) {
      const total = group.reduce((s, o) => s + o.probability, 0);
      assert.ok(Math.abs(total - 1) < 1e-9, `${group[0].conditions?.join('; ')}: ${total}`);
    }
  });
}

test('the dumps issue 14 found refused are read, each saying what was assumed', () => {
  const expected: Record<string, RegExp> = {
    'aws-vpc-cni-34-1.iptables-save.txt': /TABLE_INFERRED line 1: no '\*table' line above this one: the lines from here were read as the nat table/,
    'hetzner-1210-1.iptables-save.txt': /TABLE_INFERRED line 1: .* read as the nat table/,
    'k8s-114537-1.iptables-save.txt': /TABLE_INFERRED line 1: .* read as the nat table/,
    'ovn-k8s-4394-1.iptables-save.txt': /TABLE_INFERRED line 1: .* read as the filter table/,
    'k8s-36652-1.iptables-save.txt': /INPUT_REPAIRED line 1: removed the system-log prefix \(such as 'Nov 14 11:06:11 HOSTNAME kube-proxy\[12085\]:'\)/,
    'k8s-61944-1.iptables-save.txt': /INPUT_REPAIRED line 19: the rule looks wrapped by a terminal: removed 105 blanks/,
    'k8s-61005-1.iptables-save.txt': /INPUT_REPAIRED line 30: the last rule looks cut short \(-j needs a target\)/,
    'k8s-29759-1.iptables-S.txt': /INPUT_REPAIRED line 10: the last rule looks cut short \(unexpected '-' after target DNAT\)/,
  };
  for (const [file, said] of Object.entries(expected)) {
    const rs = parseDump(fixture('realworld', file));
    const notes = rs.diagnostics.map((d) => `${d.code} line ${d.line}: ${d.message}`);
    assert.ok(notes.some((n) => said.test(n)), `${file}:\n${notes.join('\n')}`);
  }
  assert.equal(parseDump(fixture('realworld', 'k8s-61944-1.iptables-save.txt')).tables.get('nat')!.chains.get('POSTROUTING')!.rules[0].text,
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING');
  // Every iptables-save and iptables -S dump of the corpus now reads.
  for (const file of files.filter((f) => /\.(iptables-save|iptables-S)\.txt$/.test(f))) assert.doesNotThrow(() => parseDump(fixture('realworld', file)), file);
});

test('the `iptables -L -n -v` listings of the corpus are read; the others are refused, located, naming the command that shows enough', () => {
  const listings = files.filter((f) => f.endsWith('.iptables-L.txt'));
  const read: string[] = [];
  for (const file of listings) {
    const text = fixture('realworld', file);
    try {
      const rs = parseDump(text);
      assert.ok(rs.diagnostics.some((d) => d.code === 'LISTING_READ'), file);
      read.push(file);
    } catch (e) {
      assert.ok(e instanceof EngineError && e.code === 'DUMP_SYNTAX', `${file}: ${String(e)}`);
      assert.match(e.message, /iptables -L -n -v|iptables-save|from a `Chain` line/, file);
      assert.ok(e.location && e.location.line >= 1, file);
    }
  }
  assert.deepEqual(read, [
    'calico-5978-1.iptables-L.txt', 'flannel-1703-1.iptables-L.txt', 'k3s-7096-1.iptables-L.txt', 'kubespray-10572-1.iptables-L.txt',
    'qifangsu-demo-1.iptables-L.txt', 'xiazemin-dockerdesktop-1.iptables-L.txt', 'xiazemin-dockerdesktop-2.iptables-L.txt',
  ]);
  // calico-5978-1 lists only PREROUTING and OUTPUT as built-in chains: the raw table.
  assert.deepEqual([...parseDump(fixture('realworld', 'calico-5978-1.iptables-L.txt')).tables.keys()], ['raw']);
});
