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
