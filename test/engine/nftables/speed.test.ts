/**
 * A 10,000-Service kube-proxy nftables ruleset reads whole in both text forms. Its speed against
 * `nft -c -f` (issue 13's target: a tenth of nft's time) is the bench's to measure, not a test's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNftables, printNftRuleset } from '../../../src/engine/index.ts';
import { kubeProxyCommands } from './generate.ts';

/**
 * The fastest of five timed runs after one untimed one, in ms: the machine's other work (kernel
 * tests in parallel) only ever adds time, and the reader's own time is the least of them.
 */
function parseMs(text: string): number {
  parseNftables(text);
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    parseNftables(text);
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

test('10,000 Services: both text forms read, every rule kept', (t) => {
  const commands = kubeProxyCommands(10_000);
  const rs = parseNftables(commands);
  const chains = rs.tables.get('ip kube-proxy')!.chains;
  // 3 fixed chains, and per Service one service chain and two endpoint chains.
  assert.equal(chains.size, 3 + 3 * 10_000);
  const ruleCount = [...chains.values()].reduce((n, c) => n + c.rules.length, 0);
  // 4 fixed rules, and per Service two in its chain and two in each endpoint chain.
  assert.equal(ruleCount, 4 + 6 * 10_000);
  assert.deepEqual(rs.diagnostics, []);
  const list = printNftRuleset(rs);
  const commandsMs = parseMs(commands);
  const listMs = parseMs(list);
  t.diagnostic(`10,000 Services: ${commands.split('\n').length} command lines (${(commands.length / 1e6).toFixed(1)} MB) read in ${commandsMs.toFixed(0)} ms; as nft list text ${listMs.toFixed(0)} ms`);
});
