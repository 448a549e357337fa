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
      if (!/\.(iptables-save|iptables-S)\.txt$/.test(file)) assert.equal(e.code, 'DUMP_FORMAT_UNSUPPORTED', `${file}: ${e.message}`);
      return;
    }
    assert.ok(/\.(iptables-save|iptables-S)\.txt$/.test(file), `${file} should not parse as iptables`);
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
