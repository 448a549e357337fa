/**
 * kube-proxy's nftables mode in the Linux kernel: a generated cluster is rendered as kube-proxy's
 * nftables proxier writes it (test/support/kube-gen-nft.ts), loaded into a private network namespace,
 * and probed with first packets of new connections. The kernel's answer (the rules it took, read
 * with `nft monitor trace`; where conntrack says the connection goes; whether its source was
 * rewritten) must be what the Service objects call for: the endpoints kube-proxy may choose for
 * that frontend, source and traffic policy, masquerade exactly when kube-proxy's rules call for it,
 * drop or reject where it has no (local) endpoints, and load balancing in the shares `numgen random
 * mod N` gives (its exact fractions, checked with a chi-square bound at p = 0.0001).
 *
 * The expectations come from the cluster model (which endpoints kube-proxy uses, `planServicePort`),
 * never from the rendered rules, so a wrong rule fails. Every probe is also traced by svcpath
 * (parseNftables + traceNftables on the same text): the kernel's rules must be exactly one traced
 * outcome's path, with its verdict, destination and masquerade.
 *
 * Where namespaces cannot be created, the tests are skipped loudly with the reason.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BlockList } from 'node:net';
import { generateCluster, planServicePort } from '../support/kube-gen.ts';
import type { EndpointInfo, GenCluster, GenService, ServicePortPlan } from '../support/kube-gen.ts';
import { renderNftables } from '../support/kube-gen-nft.ts';
import { kernelSupport } from '../support/kernel.ts';
import { NftKernelNode } from '../support/kernel-nft.ts';
import { parseNftables, traceNftables } from '../../src/engine/index.ts';
import type { TraceResult } from '../../src/engine/index.ts';
import type { NftProbe, NftProbeResult } from '../support/kernel-nft.ts';

let support: Awaited<ReturnType<typeof kernelSupport>>;
let node: NftKernelNode | null = null;

const NODE_IP = '192.168.0.10';
/** A pod of another node, backing no Service here (checked below). */
const POD_IP = '10.244.254.250';
/** Outside the cluster CIDR and outside every loadBalancerSourceRanges value the generator uses. */
const CLIENT_IP = '198.18.0.7';

const cluster: GenCluster = generateCluster({
  seed: 2024,
  services: 160,
  maxEndpoints: 6,
  nodes: 4,
  nodePortShare: 0.2,
  loadBalancerShare: 0.2,
  externalIPShare: 0.15,
  localPolicyShare: 0.5,
  affinityShare: 0.15,
  noEndpointShare: 0.1,
  sourceRangeShare: 0.5,
  udpShare: 0.15,
});

const ruleset = parseNftables(renderNftables(cluster));

before(async () => {
  support = await kernelSupport();
  if (!support.ok) {
    process.stderr.write(`\nKERNEL TESTS SKIPPED: ${support.reason}\n\n`);
    return;
  }
  node = await NftKernelNode.create({ nodeAddresses: [NODE_IP], name: 'nft-diff' });
  await node.load(renderNftables(cluster));
});

after(async () => {
  await node?.close();
});

function skipUnlessKernel(t: { skip: (reason: string) => void }): boolean {
  if (support.ok) return false;
  t.skip(`KERNEL TESTS SKIPPED: ${support.reason}`);
  return true;
}

function inCidr(cidr: string, ip: string): boolean {
  const [net, len] = cidr.trim().split('/');
  const list = new BlockList();
  list.addSubnet(net, Number(len ?? 32), 'ipv4');
  return list.check(ip, 'ipv4');
}

type Frontend = 'clusterIP' | 'externalIP' | 'loadBalancer' | 'nodePort';
type SourceKind = 'pod' | 'client' | 'node';

interface Source {
  ip: string;
  kind: SourceKind;
}

interface Expectation {
  verdict: 'dnat' | 'drop' | 'reject';
  /** `ip:port` of the endpoints the connection may go to (dnat). */
  endpoints: EndpointInfo[];
  /** Marked for masquerade (the mark only rewrites the source when the packet leaves the node). */
  marked: boolean;
  why: string;
}

/**
 * What kube-proxy's rules must do with a first packet from `source` to one frontend of a Service
 * port, from the Service's spec alone: loadBalancerSourceRanges first, then the internal or
 * external traffic policy (pods and the node itself reach external frontends through the
 * Cluster policy; an external client with externalTrafficPolicy Local gets this node's endpoints
 * or is dropped), reject when the Service has no usable endpoint at all.
 */
function expect(plan: ServicePortPlan, frontend: Frontend, source: Source): Expectation {
  const svc = plan.svc;
  const none = (verdict: 'drop' | 'reject', why: string): Expectation => ({ verdict, endpoints: [], marked: false, why });
  if (frontend === 'loadBalancer' && svc.loadBalancerSourceRanges.length > 0) {
    const allowFromNode = svc.loadBalancerSourceRanges.some((r) => inCidr(r, NODE_IP));
    const allowed = svc.loadBalancerSourceRanges.some((r) => inCidr(r, source.ip)) || (allowFromNode && plan.lbVIPs.includes(source.ip));
    if (!allowed) return none('drop', 'source outside loadBalancerSourceRanges');
  }
  const fromPod = inCidr(cluster.clusterCIDR, source.ip);
  if (frontend === 'clusterIP') {
    if (!plan.hasInternalEndpoints) return none(plan.hasEndpoints ? 'drop' : 'reject', plan.hasEndpoints ? 'internalTrafficPolicy Local, no local endpoint' : 'no endpoints');
    const endpoints = plan.internalPolicyLocal ? plan.cat.local : plan.cat.cluster;
    return { verdict: 'dnat', endpoints, marked: !fromPod, why: `ClusterIP${plan.internalPolicyLocal ? ' (iTP Local)' : ''}` };
  }
  if (!plan.hasEndpoints) return none('reject', 'no endpoints');
  if (!plan.externalPolicyLocal) return { verdict: 'dnat', endpoints: plan.cat.cluster, marked: true, why: 'external, eTP Cluster' };
  if (fromPod) return { verdict: 'dnat', endpoints: plan.cat.cluster, marked: false, why: 'external, eTP Local, pod short-circuit' };
  if (source.kind === 'node') return { verdict: 'dnat', endpoints: plan.cat.cluster, marked: true, why: 'external, eTP Local, node short-circuit' };
  if (!plan.hasExternalEndpoints) return none('drop', 'external, eTP Local, no local endpoint');
  return { verdict: 'dnat', endpoints: plan.cat.local, marked: false, why: 'external, eTP Local, local endpoints' };
}

interface Case {
  plan: ServicePortPlan;
  frontend: Frontend;
  destination: string;
  port: number;
  source: Source;
  expectation: Expectation;
}

function probeOf(c: Case, extra: Partial<NftProbe> = {}): NftProbe {
  return {
    source: c.source.ip,
    destination: c.destination,
    port: c.port,
    protocol: c.plan.proto as 'tcp' | 'udp',
    entry: c.source.kind === 'node' ? 'OUTPUT' : 'PREROUTING',
    ...extra,
  };
}

/** An address inside the first loadBalancerSourceRanges value: allowed through the firewall. */
function allowedSource(svc: GenService): Source {
  const [net] = svc.loadBalancerSourceRanges[0].trim().split('/');
  const parts = net.split('.').map(Number);
  parts[3] += 7;
  const ip = parts.join('.');
  return { ip, kind: inCidr(cluster.clusterCIDR, ip) ? 'pod' : 'client' };
}

/** Every frontend of every TCP/UDP Service port, from each kind of source that can reach it. */
function allCases(): Case[] {
  const cases: Case[] = [];
  const pod: Source = { ip: POD_IP, kind: 'pod' };
  const client: Source = { ip: CLIENT_IP, kind: 'client' };
  const self: Source = { ip: NODE_IP, kind: 'node' };
  for (const svc of cluster.services) {
    if (svc.clusterIP === 'None') continue;
    svc.ports.forEach((p, i) => {
      if (p.protocol === 'SCTP') return;
      const plan = planServicePort(svc, i, cluster.nodeName, () => '');
      const add = (frontend: Frontend, destination: string, port: number, sources: Source[]) => {
        for (const source of sources) cases.push({ plan, frontend, destination, port, source, expectation: expect(plan, frontend, source) });
      };
      add('clusterIP', svc.clusterIP, p.port, [pod, client, self]);
      for (const ip of svc.externalIPs) add('externalIP', ip, p.port, [pod, client]);
      for (const ip of plan.lbVIPs) {
        const sources = [pod, client, self];
        if (svc.loadBalancerSourceRanges.length > 0) sources.push(allowedSource(svc));
        add('loadBalancer', ip, p.port, sources);
      }
      if (plan.nodePort !== 0) add('nodePort', NODE_IP, plan.nodePort, [pod, client, self]);
    });
  }
  return cases;
}

/** A short name for the kind of case, to cover each kind a few times rather than every frontend. */
function kindOf(c: Case): string {
  const svc = c.plan.svc;
  const fw = c.frontend === 'loadBalancer' && svc.loadBalancerSourceRanges.length > 0 ? ' ranges' : '';
  return `${c.frontend}${fw} from ${c.source.kind}: ${c.expectation.verdict} (${c.expectation.why}${c.expectation.marked ? ', marked' : ''})`;
}

/** The endpoint named by the `goto endpoint-…__ip/port` verdict the path took last, as `ip:port`. */
function endpointOfPath(r: NftProbeResult): string | undefined {
  for (let i = r.path.length - 1; i >= 0; i--) {
    const m = /goto endpoint-[A-Z2-7]{8}-\S+__([0-9.]+)\/(\d+)$/.exec(r.path[i].verdict);
    if (m) return `${m[1]}:${m[2]}`;
  }
  return undefined;
}

function describe(c: Case, r: NftProbeResult): string {
  return `${kindOf(c)}\n  ${c.plan.spn} ${c.source.ip} -> ${c.destination}:${c.port}/${c.plan.proto}\n  kernel: ${r.verdict} ${JSON.stringify(r.destination)} masquerade=${r.masquerade}\n  path: ${r.path.map((s) => `${s.chain}#${s.index} (${s.verdict})`).join(' > ')}`;
}

/**
 * svcpath's tracer on the same packet: the rules the kernel took must be exactly one outcome's
 * path (policy steps aside), and that outcome's verdict, destination and masquerade the kernel's.
 */
function compareWithTracer(c: Case, r: NftProbeResult): void {
  const traced: TraceResult = traceNftables(ruleset, {
    node: { addresses: [NODE_IP] },
    packet: { source: c.source.ip, destination: c.destination, port: c.port, protocol: c.plan.proto as 'tcp' | 'udp' },
  });
  const key = (steps: ReadonlyArray<{ table: string; chain: string; index: number }>) =>
    steps.filter((s) => s.index > 0).map((s) => `${s.table} ${s.chain}#${s.index}`).join(' > ');
  const kernelPath = r.path.map((s) => `${s.family} ${s.table} ${s.chain}#${s.index}`).join(' > ');
  const outcome = traced.outcomes.find((o) => key(o.path) === kernelPath);
  const msg = `${describe(c, r)}\n  traced:\n    ${traced.outcomes.map((o) => `${o.verdict} ${o.destination.ip}:${o.destination.port} masq=${o.masquerade}: ${key(o.path)}`).join('\n    ')}`;
  assert.ok(outcome, `the kernel took a path svcpath did not trace\n${msg}`);
  const verdict = { accept: ['ACCEPT', 'DNAT'], drop: ['DROP'], reject: ['REJECT'] }[r.verdict];
  assert.ok(verdict.includes(outcome.verdict), msg);
  if (r.destination !== null && r.verdict === 'accept') assert.deepEqual({ ...outcome.destination }, r.destination, msg);
  if (r.verdict === 'accept') assert.equal(outcome.masquerade, r.masquerade, msg);
}

/** The kernel's answer must be one the Service calls for, and one svcpath traced. */
function check(c: Case, r: NftProbeResult, withTracer = true): void {
  if (withTracer) compareWithTracer(c, r);
  const e = c.expectation;
  const msg = describe(c, r);
  if (e.verdict !== 'dnat') {
    assert.equal(r.verdict, e.verdict, msg);
    // No DNAT. A packet the node sends to itself has its connection confirmed on the way out
    // (postrouting, on lo) before input drops it; any other dropped packet leaves none.
    if (r.destination !== null) assert.deepEqual(r.destination, { ip: c.destination, port: c.port }, msg);
    assert.ok(r.destination === null || c.source.kind === 'node', msg);
    return;
  }
  assert.equal(r.verdict, 'accept', msg);
  assert.ok(r.destination, msg);
  const chosen = `${r.destination.ip}:${r.destination.port}`;
  assert.ok(e.endpoints.some((ep) => ep.str === chosen), `${msg}\n  allowed: ${e.endpoints.map((ep) => ep.str).join(', ')}`);
  // The rules say which endpoint they chose; conntrack says where the connection went: the same one.
  assert.equal(endpointOfPath(r), chosen, msg);
  // The mark rewrites the source only on the way out: a connection to the node itself keeps it.
  const leaves = r.destination.ip !== NODE_IP;
  assert.equal(r.masquerade, e.marked && leaves, msg);
  assert.equal(r.path.some((s) => s.chain === 'masquerading' && s.rule.startsWith('masquerade')), e.marked && leaves, msg);
}

test('the generated cluster has what these tests need', () => {
  for (const svc of cluster.services) {
    for (const e of svc.endpoints) {
      assert.notEqual(e.ip, POD_IP, `${svc.namespace}/${svc.name} has an endpoint at the probe source ${POD_IP}`);
    }
  }
  const kinds = new Set(allCases().map(kindOf));
  for (const wanted of [
    /^clusterIP from pod: dnat/,
    /^clusterIP from node: dnat .*marked/,
    /^clusterIP from pod: reject \(no endpoints\)/,
    /^clusterIP from pod: drop \(internalTrafficPolicy Local/,
    /^clusterIP from pod: dnat \(ClusterIP \(iTP Local\)/,
    /^nodePort from client: dnat \(external, eTP Cluster, marked/,
    /^nodePort from client: dnat \(external, eTP Local, local endpoints/,
    /^nodePort from client: drop \(external, eTP Local, no local endpoint/,
    /^nodePort from node: dnat/,
    /^loadBalancer from client: dnat/,
    /^loadBalancer ranges from client: drop/,
    /^loadBalancer ranges from (client|pod): dnat/,
    /^externalIP from client: dnat/,
    /^externalIP from pod: dnat \(external, eTP Local, pod short-circuit/,
  ]) {
    assert.ok([...kinds].some((k) => wanted.test(k)), `no case of the kind ${wanted}: ${[...kinds].sort().join('\n')}`);
  }
});

test('every kind of frontend, source and traffic policy: the kernel does what the Service calls for', async (t) => {
  if (skipUnlessKernel(t)) return;
  const byKind = new Map<string, Case[]>();
  for (const c of allCases()) {
    const list = byKind.get(kindOf(c)) ?? [];
    list.push(c);
    byKind.set(kindOf(c), list);
  }
  let probes = 0;
  for (const [, cases] of [...byKind].sort(([a], [b]) => (a < b ? -1 : 1))) {
    // Up to four frontends of each kind, spread over the list, two probes each.
    const picked = cases.length <= 4 ? cases : [0, 1, 2, 3].map((k) => cases[Math.floor((k * cases.length) / 4)]);
    for (const c of picked) {
      for (let i = 0; i < 2; i++) {
        check(c, await node!.probe(probeOf(c)));
        probes++;
      }
    }
  }
  assert.ok(probes > 100, `only ${probes} probes`);
});

test('a NodePort on 127.0.0.1 is not a NodePort in nftables mode: the packet stays on the node, untranslated', async (t) => {
  if (skipUnlessKernel(t)) return;
  const c = allCases().find((x) => x.frontend === 'nodePort' && x.source.kind === 'node' && x.expectation.verdict === 'dnat');
  assert.ok(c);
  const r = await node!.probe({ source: '127.0.0.1', destination: '127.0.0.1', port: c.port, protocol: c.plan.proto as 'tcp' | 'udp', entry: 'OUTPUT' });
  assert.equal(r.verdict, 'accept');
  assert.deepEqual(r.destination, { ip: '127.0.0.1', port: c.port });
  assert.ok(!r.path.some((s) => s.chain.startsWith('external-')), describe(c, r));
});

test('session affinity: later connections from the same client go to the endpoint the first one got', async (t) => {
  if (skipUnlessKernel(t)) return;
  const sticky = allCases().filter((c) => c.plan.svc.sessionAffinity === 'ClientIP' && c.expectation.verdict === 'dnat' && c.expectation.endpoints.length > 1);
  assert.ok(sticky.length >= 2, `only ${sticky.length} affinity frontends with several endpoints`);
  for (const c of sticky.slice(0, 4)) {
    const first = await node!.probe(probeOf(c));
    check(c, first);
    const chosen = endpointOfPath(first)!;
    assert.ok(first.path.some((s) => /^update @affinity-/.test(s.rule)), describe(c, first));
    for (let i = 0; i < 4; i++) {
      const again = await node!.probe(probeOf(c, { keepState: true }));
      // svcpath answers for a client the kernel has not seen (empty affinity sets, as its answer
      // says); this client has been seen, so only the Service's expectations apply.
      check(c, again, false);
      assert.equal(endpointOfPath(again), chosen, describe(c, again));
      // The affinity rule, not numgen, chose it.
      assert.ok(again.path.some((s) => s.rule.includes(' saddr @affinity-') && s.verdict.startsWith('goto endpoint-')), describe(c, again));
      assert.ok(!again.path.some((s) => s.rule.startsWith('numgen')), describe(c, again));
    }
  }
});

/**
 * numgen random mod n maps a random u32 v to (v × n) >> 32: value k has the u32s from
 * ⌈k·2^32/n⌉ to ⌈(k+1)·2^32/n⌉ − 1, so its share is their count over 2^32.
 */
function numgenShares(n: number): number[] {
  const total = 2n ** 32n;
  const ceilDiv = (a: bigint, b: bigint) => (a + b - 1n) / b;
  return Array.from({ length: n }, (_, k) => Number(ceilDiv(BigInt(k + 1) * total, BigInt(n)) - ceilDiv(BigInt(k) * total, BigInt(n))) / 2 ** 32);
}

/**
 * Critical values of chi-square at p = 0.0001, by degrees of freedom (1 to 7): a fair kernel fails
 * a run once in 10,000 per Service, and a wrong split of 300 probes (1/2, 1/4, 1/4: 37.5) still fails.
 */
const CHI2_LIMIT = [0, 15.137, 18.421, 21.108, 23.513, 25.745, 27.856, 29.877];

test('load balancing: 300 probes of a multi-endpoint Service split as numgen random mod N says (chi-square, p = 0.0001)', async (t) => {
  if (skipUnlessKernel(t)) return;
  const candidates = allCases().filter(
    (c) => c.frontend === 'clusterIP' && c.source.kind === 'pod' && c.expectation.verdict === 'dnat'
      && c.plan.svc.sessionAffinity === 'None' && c.expectation.endpoints.length >= 3 && c.expectation.endpoints.length <= 8,
  );
  assert.ok(candidates.length >= 2, `only ${candidates.length} Services with 3 to 8 endpoints`);
  for (const c of candidates.slice(0, 2)) {
    const endpoints = c.expectation.endpoints.map((e) => e.str);
    const counts = new Map(endpoints.map((e) => [e, 0]));
    const n = 300;
    for (let i = 0; i < n; i++) {
      const r = await node!.probe(probeOf(c));
      check(c, r);
      const chosen = `${r.destination!.ip}:${r.destination!.port}`;
      counts.set(chosen, counts.get(chosen)! + 1);
    }
    // Value k of numgen goes to the k-th endpoint (sorted as kube-proxy sorts them).
    const shares = numgenShares(endpoints.length);
    let chi2 = 0;
    endpoints.forEach((e, k) => {
      const expected = n * shares[k];
      chi2 += (counts.get(e)! - expected) ** 2 / expected;
    });
    const limit = CHI2_LIMIT[endpoints.length - 1];
    assert.ok(chi2 < limit, `${c.plan.spn}: chi-square ${chi2.toFixed(2)} ≥ ${limit} for counts ${JSON.stringify([...counts])}`);
  }
});

test('the split test fails a split other than numgen’s (kube-proxy iptables-style 1/2, 1/4, 1/4 for three)', () => {
  const shares = numgenShares(3);
  const n = 300;
  const wrong = [150, 75, 75];
  const chi2 = wrong.reduce((acc, count, k) => acc + (count - n * shares[k]) ** 2 / (n * shares[k]), 0);
  assert.ok(chi2 >= CHI2_LIMIT[2], `chi-square ${chi2}`);
});
