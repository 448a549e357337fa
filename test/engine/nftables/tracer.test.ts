/**
 * The nftables tracer as packet tables over kube-proxy's own expected rulesets. The expected
 * answers were worked out by reading the rules (see test/fixtures/nftables-trace/PROVENANCE.md):
 * node 192.168.0.2, pod CIDR 10.0.0.0/8, masquerade mark 0x4000.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseNftables } from '../../../src/engine/nftables/index.ts';
import { traceNftables } from '../../../src/engine/nftables/tracer.ts';
import type { PacketSpec } from '../../../src/engine/trace/packet.ts';
import type { TraceResult } from '../../../src/engine/trace/tracer.ts';

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/nftables-trace/${name}/input.nft`, import.meta.url), 'utf8');
const overall = parseNftables(fixture('overall'));
const node = { addresses: ['192.168.0.2'] };

interface Row {
  readonly name: string;
  readonly packet: PacketSpec;
  /** ip:port → share, for DNAT outcomes; or the one verdict. */
  readonly to: Readonly<Record<string, string>> | 'REJECT' | 'DROP' | 'ACCEPT';
  readonly masquerade?: boolean;
  readonly delivery?: string;
}

const POD = '10.0.0.2';
const OUTSIDE = '203.0.113.200';
const tcp = (source: string, destination: string, port: number): PacketSpec => ({ source, destination, port, protocol: 'tcp' });

const ROWS: readonly Row[] = [
  { name: 'ClusterIP from a pod: DNAT, client kept', packet: tcp(POD, '172.30.0.41', 80), to: { '10.180.0.1:80': '1' }, masquerade: false, delivery: 'forward' },
  { name: 'ClusterIP from outside the pod CIDR: masqueraded', packet: tcp('192.168.1.5', '172.30.0.41', 80), to: { '10.180.0.1:80': '1' }, masquerade: true },
  { name: 'hairpin: the endpoint to its own Service', packet: tcp('10.180.0.1', '172.30.0.41', 80), to: { '10.180.0.1:80': '1' }, masquerade: true },
  { name: 'two endpoints: a half each', packet: tcp(POD, '172.30.0.44', 80), to: { '10.180.0.4:80': '1/2', '10.180.0.5:80': '1/2' }, masquerade: false },
  { name: 'external IP of svc4 (eTP Cluster): both endpoints, masqueraded', packet: tcp(OUTSIDE, '192.168.99.33', 80), to: { '10.180.0.4:80': '1/2', '10.180.0.5:80': '1/2' }, masquerade: true },
  { name: 'Service without endpoints: rejected in filter-forward', packet: tcp(POD, '172.30.0.46', 80), to: 'REJECT' },
  { name: 'ClusterIP on a port it does not serve: rejected', packet: tcp(POD, '172.30.0.41', 81), to: 'REJECT' },
  { name: 'unallocated address in the service CIDR: dropped', packet: tcp(POD, '172.30.0.99', 80), to: 'DROP' },
  { name: 'NodePort 3003 from outside: masqueraded to svc3', packet: tcp(OUTSIDE, '192.168.0.2', 3003), to: { '10.180.0.3:80': '1' }, masquerade: true, delivery: 'forward' },
  { name: 'LB IP inside the source ranges: through the firewall to svc5', packet: tcp('203.0.113.5', '5.6.7.8', 80), to: { '10.180.0.3:80': '1' }, masquerade: true },
  { name: 'LB IP outside the source ranges: dropped by the firewall chain', packet: tcp(OUTSIDE, '5.6.7.8', 80), to: 'DROP' },
  { name: 'eTP Local external IP without local endpoints, from outside: dropped', packet: tcp(OUTSIDE, '192.168.99.22', 80), to: 'DROP' },
  { name: 'eTP Local external IP from a pod: short-circuited to the Service', packet: tcp(POD, '192.168.99.22', 80), to: { '10.180.0.2:80': '1' }, masquerade: false },
  { name: 'eTP Local NodePort without local endpoints: dropped in filter-input', packet: tcp(OUTSIDE, '192.168.0.2', 3001), to: 'DROP', delivery: 'local' },
  { name: 'from the node itself to a ClusterIP: OUTPUT, masqueraded', packet: tcp('192.168.0.2', '172.30.0.41', 80), to: { '10.180.0.1:80': '1' }, masquerade: true, delivery: 'output' },
  { name: 'not a Service at all: accepted untouched', packet: tcp(POD, '10.0.5.5', 443), to: 'ACCEPT', masquerade: false },
];

function shares(r: TraceResult): Record<string, string> {
  const out: Record<string, string> = {};
  for (const o of r.outcomes) {
    assert.equal(o.verdict, 'DNAT');
    out[`${o.destination.ip}:${o.destination.port}`] = o.exactProbability;
  }
  return out;
}

for (const row of ROWS) {
  test(`overall: ${row.name}`, () => {
    const r = traceNftables(overall, { node, packet: row.packet });
    if (typeof row.to === 'string') {
      assert.deepEqual(r.outcomes.map((o) => o.verdict), [row.to]);
    } else {
      assert.deepEqual(shares(r), row.to);
    }
    if (row.masquerade !== undefined) for (const o of r.outcomes) assert.equal(o.masquerade, row.masquerade, 'masquerade');
    if (row.delivery !== undefined) for (const o of r.outcomes) assert.equal(o.delivery, row.delivery, 'delivery');
    assert.deepEqual(r.warnings.filter((w) => w.code === 'NOT_MODELLED'), []);
  });
}

test('overall: a ClusterIP path names tables as `family name`, positions as listed, and the verdict-map element taken', () => {
  const r = traceNftables(overall, { node, packet: tcp(POD, '172.30.0.41', 80) });
  assert.equal(r.backend, 'nftables');
  const steps = r.outcomes[0].path.map((s) => `${s.hook} ${s.table} ${s.chain}#${s.index}: ${s.action}`);
  assert.deepEqual(steps, [
    'PREROUTING ip kube-proxy filter-prerouting-pre-dnat#1: jump firewall-check',
    'PREROUTING ip kube-proxy filter-prerouting-pre-dnat#0: policy accept',
    'PREROUTING ip kube-proxy nat-prerouting#1: jump services',
    'PREROUTING ip kube-proxy services#1: vmap: 172.30.0.41 . tcp . 80 → goto service-ULMVA6XW-ns1/svc1/tcp/p80',
    'PREROUTING ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80#2: vmap: 0 → goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80',
    'PREROUTING ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80#2: dnat to 10.180.0.1:80',
    'FORWARD ip kube-proxy filter-forward#1: jump service-endpoints-check',
    'FORWARD ip kube-proxy filter-forward#2: jump cluster-ips-check',
    'FORWARD ip kube-proxy filter-forward#0: policy accept',
    'POSTROUTING ip kube-proxy nat-postrouting#1: jump masquerading',
    'POSTROUTING ip kube-proxy masquerading#1: return',
    'POSTROUTING ip kube-proxy nat-postrouting#0: policy accept',
  ]);
  assert.equal(r.outcomes[0].path[3].rule, 'ip daddr . meta l4proto . th dport vmap @service-ips');
  assert.equal(r.outcomes[0].exactProbability, '1');
});

test('overall: a client of a session-affinity Service is told it sticks for the set’s timeout', () => {
  const r = traceNftables(overall, { node, packet: tcp('203.0.113.5', '5.6.7.8', 80) });
  assert.ok(r.outcomes[0].notes.some((n) => /same endpoint for 10800 seconds/.test(n)), r.outcomes[0].notes.join('\n'));
  assert.ok(r.outcomes[0].path.some((s) => s.action === 'update @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { 203.0.113.5 }'));
});

test('sync-repeated-initial: both ClusterIPs reach their one endpoint', () => {
  const rs = parseNftables(fixture('sync-repeated-initial'));
  const a = traceNftables(rs, { node, packet: tcp(POD, '172.30.0.41', 80) });
  const b = traceNftables(rs, { node, packet: tcp(POD, '172.30.0.42', 8080) });
  assert.deepEqual(shares(a), { '10.0.1.1:80': '1' });
  assert.deepEqual(shares(b), { '10.0.2.1:8080': '1' });
  assert.deepEqual(traceNftables(rs, { node, packet: tcp(POD, '172.30.0.42', 80) }).outcomes.map((o) => o.verdict), ['REJECT']);
});

// numgen-three: the kernel's own listing (handles included) of a kube-proxy-shaped table beside an
// `inet guard` table whose prerouting chain (priority mangle, −150) runs before every nat chain.
const three = parseNftables(fixture('numgen-three'));
const threeNode = { addresses: ['10.0.0.10'] };
const fromPod = (destination: string, port: number, protocol: 'tcp' | 'udp' = 'tcp'): PacketSpec => ({
  source: '10.244.0.9', destination, port, protocol, inInterface: 'eth0',
});

test('numgen-three: three endpoints get the kernel’s exact shares, not 1/3 each, and the split is called uneven', () => {
  const r = traceNftables(three, { node: threeNode, packet: fromPod('10.96.0.30', 80) });
  assert.deepEqual(shares(r), {
    '10.244.1.1:8080': '715827883/2147483648',
    '10.244.1.2:8080': '1431655765/4294967296',
    '10.244.2.1:8080': '1431655765/4294967296',
  });
  assert.ok(r.warnings.some((w) => w.code === 'UNEVEN_SPLIT'));
  // The handles `nft -a` printed are on the steps; positions are the listing's.
  const svc = r.outcomes[0].path.find((s) => s.chain === 'services')!;
  assert.deepEqual({ index: svc.index, handle: svc.handle }, { index: 1, handle: 23 });
  const forward = r.outcomes.map((o) => o.path.filter((s) => s.hook === 'FORWARD').map((s) => `${s.table} ${s.chain}#${s.index}/${s.handle}`));
  assert.deepEqual(forward, [['inet guard forward#3/9'], ['inet guard forward#3/9'], ['inet guard forward#4/11']]);
});

test('numgen-three: seven endpoints, each share its count of 2^32; a mark set in one table is matched in another', () => {
  const r = traceNftables(three, { node: threeNode, packet: fromPod('10.96.0.70', 53, 'udp') });
  const counts = [613566757, 613566757, 613566756, 613566757, 613566756, 613566757, 613566756];
  assert.deepEqual(r.outcomes.map((o) => o.destination.ip), ['0', '1', '2', '3', '4', '5', '6'].map((k) => `10.244.3.${k}`));
  r.outcomes.forEach((o, k) => {
    assert.equal(BigInt(o.exactProbability.split('/')[0]) * 2n ** 32n / BigInt(o.exactProbability.split('/')[1] ?? '1'), BigInt(counts[k]));
    assert.equal(o.mark, '0x1');
    // guard's prerouting chain (−150) ran before kube-proxy's nat chain (−100).
    assert.equal(o.path[0].table, 'inet guard');
    assert.ok(o.path.some((s) => s.chain === 'forward' && s.index === 2 && s.action === 'accept'));
  });
  const total = r.outcomes.reduce((n, o) => n + o.probability, 0);
  assert.ok(Math.abs(total - 1) < 1e-15);
});

test('numgen-three: a drop in an early base chain ends the packet before NAT', () => {
  const r = traceNftables(three, { node: threeNode, packet: { ...fromPod('10.96.0.30', 80), source: '203.0.113.8' } });
  assert.deepEqual(r.outcomes.map((o) => o.verdict), ['DROP']);
  assert.deepEqual(r.outcomes[0].path.map((s) => `${s.table} ${s.chain}#${s.index}`), ['inet guard early#1']);
});

test('numgen-three: accept ends only its own base chain; the nat chain still sees the packet', () => {
  const r = traceNftables(three, { node: threeNode, packet: { ...fromPod('10.96.0.30', 80), inInterface: 'docker0' } });
  assert.equal(r.outcomes.length, 3);
  for (const o of r.outcomes) {
    assert.equal(o.verdict, 'DNAT');
    assert.deepEqual(o.path.slice(0, 2).map((s) => `${s.table} ${s.chain}#${s.index}: ${s.action}`), [
      'inet guard early#2: accept',
      'ip kube-proxy nat-prerouting#1: jump services',
    ]);
  }
});

test('numgen-three: forwarded traffic nothing accepts meets the forward chain’s drop policy', () => {
  const r = traceNftables(three, { node: threeNode, packet: fromPod('10.99.0.1', 22) });
  assert.deepEqual(r.outcomes.map((o) => o.verdict), ['DROP']);
  const last = r.outcomes[0].path.at(-1)!;
  assert.deepEqual({ chain: last.chain, index: last.index, action: last.action }, { chain: 'forward', index: 0, action: 'policy drop' });
});

test('numgen-three: an IPv6 packet is seen by the inet table only, and `ip saddr` never matches it', () => {
  const r = traceNftables(three, { node: { addresses: ['fd00::10'] }, packet: { source: 'fd00::9', destination: 'fd00::99', port: 80, protocol: 'tcp', inInterface: 'eth0' } });
  assert.deepEqual(r.outcomes.map((o) => o.verdict), ['DROP']);
  assert.ok(r.outcomes[0].path.every((s) => s.table === 'inet guard'));
});

test('every run of a random split takes the rules before the draw as the first run did: steps, notes, marks and NAT', () => {
  const rs = parseNftables(`table ip t {
	chain pre {
		type filter hook prerouting priority -150; policy accept;
		limit rate 10/second log prefix "seen " meta mark set 0x7
		ip saddr 10.9.0.0/16 ct mark set 0x2
	}
	chain nat-pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 10.96.0.9 jump svc
	}
	chain svc {
		meta mark 0x7 meta mark set meta mark | 0x4000
		numgen random mod 4 vmap { 0 : goto ep0, 1 : goto ep1, 2 : goto ep2, 3 : goto ep3 }
	}
	chain ep0 { dnat to 10.244.0.10:80 }
	chain ep1 { dnat to 10.244.0.11:80 }
	chain ep2 { dnat to 10.244.0.12:80 }
	chain ep3 { meta mark set 0x1 dnat to 10.244.0.13:80 }
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark & 0x4000 == 0x4000 masquerade
	}
}
`);
  const r = traceNftables(rs, { node, packet: tcp('10.9.1.1', '10.96.0.9', 80) });
  assert.deepEqual(r.outcomes.map((o) => [o.destination.ip, o.exactProbability, o.mark, o.masquerade]), [
    ['10.244.0.10', '1/4', '0x4007', true],
    ['10.244.0.11', '1/4', '0x4007', true],
    ['10.244.0.12', '1/4', '0x4007', true],
    ['10.244.0.13', '1/4', '0x1', false],
  ]);
  const beforeDraw = (o: TraceResult['outcomes'][number]) => o.path.slice(0, o.path.findIndex((s) => s.rule.startsWith('numgen')));
  const first = beforeDraw(r.outcomes[0]);
  assert.deepEqual(first.map((s) => `${s.chain}#${s.index}: ${s.action}`), [
    'pre#1: log prefix "seen ", mark set 0x7',
    'pre#2: ct mark set 0x2',
    'pre#0: policy accept',
    'nat-pre#1: jump svc',
    'svc#1: mark set 0x4007',
  ]);
  for (const o of r.outcomes) {
    assert.deepEqual(beforeDraw(o), first);
    assert.ok(o.notes.some((n) => n.startsWith('limit rate 10/second')));
  }
});
