/** A dump uploaded as 'auto' is read again with its own format when 'auto' changed nothing in it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkDump, rereadFormat } from '../../src/services/dump-summary.ts';

const CLEAN = '*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n';

function reread(text: string, format: 'auto' | 'iptables-save' = 'auto'): string {
  const r = checkDump({ text, format }, text.length);
  assert.ok(r.ok, JSON.stringify(r));
  return rereadFormat(r.format, r.summary);
}

test('a clean iptables-save dump is read again as iptables-save', () => {
  assert.equal(reread(CLEAN), 'iptables-save');
  assert.equal(reread(CLEAN, 'iptables-save'), 'iptables-save');
});

test('a dump that needed what only auto does is read again as auto', () => {
  // A system-log prefix on every line, a byte order mark, rules without a table header.
  const prefixed = CLEAN.split('\n').map((l) => (l ? `Nov 14 11:06:11 node-1 kube-proxy[12085]: ${l}` : l)).join('\n');
  assert.equal(reread(prefixed), 'auto');
  assert.equal(reread(`\ufeff${CLEAN}`), 'auto');
  assert.equal(reread('-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j ACCEPT\n'), 'auto');
  // iptables -S output and nftables keep the format detected (no repair pass to skip).
  assert.equal(reread('-P PREROUTING ACCEPT\n-N KUBE-SERVICES\n-A PREROUTING -j KUBE-SERVICES\n'), 'auto');
});

test('summaries kept before `exact` existed are read as their upload asked', () => {
  assert.equal(rereadFormat('iptables-save', { requested: 'auto' }), 'auto');
  assert.equal(rereadFormat('iptables-save', { requested: 'iptables-save' }), 'iptables-save');
  assert.equal(rereadFormat('iptables-save', null), 'iptables-save');
});
