import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BaseChainRegistration, HookSlot } from '../../../src/engine/nftables/hooks.ts';
import { hookSchedule } from '../../../src/engine/nftables/hooks.ts';

let order = 0;
function chain(family: string, name: string, type: string, hook: string, priority: number): BaseChainRegistration<string> {
  return { family, type, hook, priority, order: order++, chain: `${family} ${name}` };
}

function names(slots: HookSlot<string>[]): string[] {
  return slots.map((s) => (s.kind === 'chain' ? s.chain : `nat[${s.chains.join(', ')}]`));
}

test('kube-proxy’s chains with iptables-nft’s tables on prerouting: filter −110 before every nat chain', () => {
  order = 0;
  const chains = [
    chain('ip', 'nat/PREROUTING', 'nat', 'prerouting', -100),
    chain('ip', 'mangle/PREROUTING', 'filter', 'prerouting', -150),
    chain('ip', 'kube-proxy/filter-prerouting-pre-dnat', 'filter', 'prerouting', -110),
    chain('ip', 'kube-proxy/nat-prerouting', 'nat', 'prerouting', -100),
    chain('inet', 'calico/raw-pre', 'filter', 'prerouting', -300),
    chain('ip', 'odd/nat-early', 'nat', 'prerouting', -150),
    chain('ip6', 'v6only/pre', 'filter', 'prerouting', -500),
    chain('ip', 'kube-proxy/nat-output', 'nat', 'output', -100),
  ];
  assert.deepEqual(names(hookSchedule(chains, 'prerouting', 'ipv4')), [
    'inet calico/raw-pre',
    'ip mangle/PREROUTING',
    'ip kube-proxy/filter-prerouting-pre-dnat',
    // The NAT core sits at −100; inside it the −150 chain first, then the two at −100, later first.
    'nat[ip odd/nat-early, ip kube-proxy/nat-prerouting, ip nat/PREROUTING]',
  ]);
  assert.deepEqual(names(hookSchedule(chains, 'prerouting', 'ipv6')), ['ip6 v6only/pre', 'inet calico/raw-pre']);
});

test('equal priorities: the chain registered later runs first, the NAT core placed by its first nat chain', () => {
  order = 0;
  const chains = [
    chain('ip', 'a', 'filter', 'output', 0),
    chain('ip', 'b', 'filter', 'output', 0),
    chain('ip', 'natfirst', 'nat', 'output', -100),
    chain('ip', 'c', 'filter', 'output', -100),
    chain('inet', 'd', 'filter', 'output', 0),
  ];
  assert.deepEqual(names(hookSchedule(chains, 'output', 'ipv4')), ['ip c', 'nat[ip natfirst]', 'inet d', 'ip b', 'ip a']);
});

test('postrouting and input NAT run at +100; nat chains on forward never run', () => {
  order = 0;
  const chains = [
    chain('ip', 'snat', 'nat', 'postrouting', 100),
    chain('ip', 'late', 'filter', 'postrouting', 200),
    chain('ip', 'mid', 'filter', 'postrouting', 50),
    chain('ip', 'in-nat', 'nat', 'input', -50),
    chain('ip', 'in-filter', 'filter', 'input', 0),
    chain('ip', 'fwd-nat', 'nat', 'forward', 0),
    chain('bridge', 'br', 'filter', 'forward', 0),
  ];
  assert.deepEqual(names(hookSchedule(chains, 'postrouting', 'ipv4')), ['ip mid', 'nat[ip snat]', 'ip late']);
  assert.deepEqual(names(hookSchedule(chains, 'input', 'ipv4')), ['ip in-filter', 'nat[ip in-nat]']);
  assert.deepEqual(names(hookSchedule(chains, 'forward', 'ipv4')), []);
});
