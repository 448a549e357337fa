/**
 * Diffs with an nftables side: the same generated cluster rendered in iptables mode and in
 * nftables mode (kube-gen.ts, kube-gen-nft.ts), node by node, must diff clean but for the
 * documented known differences; a real change on the nftables side (an endpoint removed) must be
 * reported as one; nftables against nftables reports frontends and rule, set and element changes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readRules } from '../../../src/engine/index.ts';
import { ChainNameIndex, readClusterModel } from '../../../src/engine/kube/index.ts';
import { diffByTracing, diffNodeByNode, diffSnapshots, KNOWN_DIFFERENCES } from '../../../src/engine/diff/index.ts';
import type { DiffResult, DiffSide } from '../../../src/engine/diff/index.ts';
import { classifyProbe } from '../../../src/engine/diff/known-differences.ts';
import type { TraceOutcome } from '../../../src/engine/trace/tracer.ts';
import type { FleetNode, GenCluster, GenService } from '../../support/kube-gen.ts';
import { blankService, fleetNodes, generateCluster, onNode, renderIptablesSave, renderManifests } from '../../support/kube-gen.ts';
import { renderNftables } from '../../support/kube-gen-nft.ts';

type Mode = 'iptables' | 'nftables' | 'nftables-table';

function render(c: GenCluster, node: FleetNode, mode: Mode): string {
  if (mode === 'iptables') return renderIptablesSave(onNode(c, node));
  return renderNftables(c, node, mode === 'nftables-table' ? { form: 'table' } : {});
}

function side(c: GenCluster, mode: Mode, nodes = fleetNodes(c, 2)): DiffSide {
  const model = readClusterModel([JSON.parse(renderManifests(c))]).model;
  return {
    nodes: nodes.map((n) => ({ name: n.name, addresses: n.addresses, ruleset: readRules(render(c, n, mode)) })),
    model,
    index: ChainNameIndex.fromModel(model),
  };
}

function cluster(seed: number): GenCluster {
  return generateCluster({ seed, services: 50, nodes: 3, nodePortShare: 0.2, loadBalancerShare: 0.1, externalIPShare: 0.05, affinityShare: 0.1 });
}

/** What a diff says changed, beyond the known differences. */
function unexplained(r: DiffResult): object {
  const s = r.summary;
  return {
    frontends: { added: s.frontends.added, removed: s.frontends.removed, changed: s.frontends.changed },
    endpoints: s.endpoints, verdictChanges: s.verdictChanges, masqueradeChanges: s.masqueradeChanges, probabilityChanges: s.probabilityChanges,
    listed: r.frontends.filter((f) => !f.known).map((f) => `${f.node} ${f.frontend.ip}:${f.frontend.port}: ${f.changes.join('; ')}`),
  };
}

const CLEAN = { frontends: { added: 0, removed: 0, changed: 0 }, endpoints: { added: 0, removed: 0 }, verdictChanges: 0, masqueradeChanges: 0, probabilityChanges: 0, listed: [] };

/** A Service with a ClusterIP, two ready endpoints or more and no affinity: one endpoint can go. */
function scalable(s: GenService): boolean {
  return s.type !== 'ClusterIP' ? false : s.clusterIP !== 'None' && s.ports.length === 1 && s.sessionAffinity === 'None'
    && s.internalTrafficPolicy === 'Cluster' && s.endpoints.filter((e) => e.ready && !e.terminating).length >= 3
    && s.endpoints.every((e) => e.ready && !e.terminating);
}

describe('diff across backends: iptables → nftables', () => {
  for (const seed of [3, 11]) {
    it(`the same cluster in both modes differs only as documented (seed ${seed})`, () => {
      const c = cluster(seed);
      const r = diffSnapshots(side(c, 'iptables'), side(c, 'nftables'), { clusterCIDR: c.clusterCIDR });
      assert.deepEqual(unexplained(r), CLEAN);
      assert.deepEqual(r.backends, { from: 'iptables', to: 'nftables', across: ['node-001', 'node-002'] });
      // The rules of two backends are not compared rule by rule.
      assert.deepEqual(r.rules, []);
      assert.ok(r.summary.frontends.unchanged > 50, `${r.summary.frontends.unchanged} frontends agree`);
      // Every NodePort's localhost probe, one other port of a ClusterIP, one unallocated Service IP, per node.
      const nodePorts = new Set(c.services.flatMap((s) => s.ports.filter((p) => p.nodePort !== undefined).map((p) => `${p.nodePort}/${p.protocol}`)));
      assert.ok(nodePorts.size > 0);
      for (const node of ['node-001', 'node-002']) {
        const codes = new Map(r.knownDifferences.filter((k) => k.node === node).map((k) => [k.code, k]));
        assert.deepEqual([...codes.keys()].sort(), ['CLUSTER_IP_OTHER_PORT', 'CONNTRACK_INVALID', 'FORWARD_ACCEPT', 'NODEPORT_ADDRESSES', 'NODEPORT_LOCALHOST', 'SERVICE_CIDR_UNALLOCATED']);
        assert.equal(codes.get('NODEPORT_LOCALHOST')!.frontends, nodePorts.size);
        assert.equal(codes.get('NODEPORT_LOCALHOST')!.seen, 'trace');
        assert.equal(codes.get('NODEPORT_ADDRESSES')!.seen, 'rules');
        for (const k of codes.values()) assert.equal(k.reason, KNOWN_DIFFERENCES[k.code]);
      }
      const localhost = r.frontends.find((f) => f.probe === 'localhost-nodeport')!;
      assert.equal(localhost.frontend.ip, '127.0.0.1');
      assert.equal(localhost.known?.code, 'NODEPORT_LOCALHOST');
      assert.ok(localhost.before.some((o) => o.verdict === 'DNAT'));
      assert.ok(localhost.after.every((o) => o.verdict !== 'DNAT'));
      assert.equal(r.summary.frontends.known, r.frontends.filter((f) => f.known).length);
    });
  }

  it('reads the ruleset the same in nft list form (one table block) as in command form', () => {
    const c = cluster(5);
    const commands = diffSnapshots(side(c, 'iptables'), side(c, 'nftables'), { clusterCIDR: c.clusterCIDR });
    const table = diffSnapshots(side(c, 'iptables'), side(c, 'nftables-table'), { clusterCIDR: c.clusterCIDR });
    assert.deepEqual(unexplained(table), CLEAN);
    assert.deepEqual(table.summary, commands.summary);
    assert.deepEqual(table.knownDifferences, commands.knownDifferences);
  });

  it('load balancers with source ranges: dropped at another hook, and dropped without endpoints', () => {
    const lb = (name: string, clusterIP: string, lbIP: string, endpoints: GenService['endpoints']): GenService => ({
      ...blankService('ns', name), type: 'LoadBalancer', clusterIP, loadBalancerIPs: [lbIP], loadBalancerSourceRanges: ['203.0.113.0/25'],
      ports: [{ name: 'p80', port: 80, protocol: 'TCP', targetPort: 8080, nodePort: 30080 + clusterIP.length }], endpoints,
    });
    const ep = { ip: '10.244.1.5', port: 8080, ready: true, serving: true, terminating: false, nodeName: 'node-b', podName: 'web-1' };
    const c: GenCluster = {
      nodeName: 'node-a', nodeIPs: ['192.168.0.10'], clusterCIDR: '10.244.0.0/16', serviceCIDR: '10.96.0.0/12', nodes: ['node-a', 'node-b'],
      masqueradeMark: '0x4000',
      services: [lb('with', '10.96.0.20', '1.2.3.4', [ep]), lb('without', '10.96.0.210', '1.2.3.5', [])],
    };
    const r = diffSnapshots(side(c, 'iptables', [{ name: 'node-a', addresses: ['192.168.0.10'] }]), side(c, 'nftables', [{ name: 'node-a', addresses: ['192.168.0.10'] }]));
    assert.deepEqual(unexplained(r), CLEAN);
    const at = (ip: string) => r.frontends.find((f) => f.frontend.ip === ip && f.frontend.port === 80)!;
    // From outside the source ranges: both drop the packet with endpoints (nftables before DNAT) …
    assert.equal(at('1.2.3.4').known?.code, 'DROP_POINT');
    assert.deepEqual([...new Set(at('1.2.3.4').before.map((o) => o.verdict))], ['DROP']);
    assert.deepEqual([...new Set(at('1.2.3.4').after.map((o) => o.verdict))], ['DROP']);
    // … and without: iptables mode rejects (no firewall rules without endpoints), nftables mode drops.
    assert.equal(at('1.2.3.5').known?.code, 'FIREWALL_WITHOUT_ENDPOINTS');
    assert.deepEqual([...new Set(at('1.2.3.5').before.map((o) => o.verdict))], ['REJECT']);
    assert.deepEqual([...new Set(at('1.2.3.5').after.map((o) => o.verdict))], ['DROP']);
  });

  it('nftables → iptables (back) reports the same known differences', () => {
    const c = cluster(3);
    const r = diffSnapshots(side(c, 'nftables'), side(c, 'iptables'), { clusterCIDR: c.clusterCIDR });
    assert.deepEqual(unexplained(r), CLEAN);
    assert.deepEqual(r.backends, { from: 'nftables', to: 'iptables', across: ['node-001', 'node-002'] });
    assert.ok(r.knownDifferences.some((k) => k.code === 'NODEPORT_LOCALHOST' && k.frontends > 0));
  });

  it('reports an endpoint removed on the nftables side, with the shares that change', () => {
    const c = cluster(3);
    const b = structuredClone(c);
    const svc = b.services.find(scalable);
    assert.ok(svc, 'the generated cluster has a ClusterIP Service with 3 endpoints or more');
    const gone = svc.endpoints.pop()!;
    const left = svc.endpoints.length;
    const r = diffSnapshots(side(c, 'iptables'), side(b, 'nftables'), { clusterCIDR: c.clusterCIDR, manifests: false });
    const changed = r.frontends.filter((f) => !f.known);
    assert.equal(r.summary.frontends.changed, 2, 'the ClusterIP, on each of the two nodes');
    assert.equal(changed.length, 2);
    for (const f of changed) {
      assert.equal(f.service, `${svc.namespace}/${svc.name}`);
      assert.equal(f.frontend.ip, svc.clusterIP);
      assert.equal(f.known, undefined);
      assert.ok(f.changes.includes(`endpoint ${gone.ip}:${gone.port} removed`), f.changes.join('; '));
      assert.ok(f.changes.some((x) => x.startsWith('share of endpoint ')));
      // Each remaining endpoint now gets an equal share of the nftables numgen split.
      const shares = new Map<string, number>();
      for (const o of f.after) shares.set(o.destination.ip, (shares.get(o.destination.ip) ?? 0) + o.probability);
      assert.equal(shares.size, left);
      for (const p of shares.values()) assert.ok(Math.abs(p - 1 / left) < 1e-6, String(p));
    }
    assert.equal(r.summary.endpoints.removed, 2);
    assert.ok(r.summary.probabilityChanges > 0);
    // The known differences are still told, apart from the change.
    assert.ok(r.knownDifferences.some((k) => k.code === 'NODEPORT_LOCALHOST'));
  });

  it('node by node gives the answer of the whole diff', () => {
    const c = cluster(11);
    const a = side(c, 'iptables');
    const b = side(c, 'nftables');
    const whole = diffSnapshots(a, b, { clusterCIDR: c.clusterCIDR });
    const named = (s: DiffSide) => ({ names: s.nodes.map((n) => n.name), model: s.model, index: s.index });
    const byNode = diffNodeByNode(named(a), named(b), (which, name) => (which === 'a' ? a : b).nodes.find((n) => n.name === name)!, { clusterCIDR: c.clusterCIDR });
    assert.deepEqual(byNode.summary, whole.summary);
    assert.deepEqual(byNode.knownDifferences, whole.knownDifferences);
    assert.deepEqual(byNode.backends, whole.backends);
    assert.deepEqual(byNode.frontends.map((f) => [f.node, f.frontend, f.changes]), whole.frontends.map((f) => [f.node, f.frontend, f.changes]));
  });
});

describe('diff nftables → nftables', () => {
  it('the same ruleset diffs clean, whatever the form it was written in', () => {
    const c = cluster(3);
    const r = diffSnapshots(side(c, 'nftables'), side(c, 'nftables-table'));
    assert.deepEqual(unexplained(r), CLEAN);
    assert.deepEqual(r.rules, []);
    assert.deepEqual(r.knownDifferences, []);
    assert.deepEqual(r.backends, { from: 'nftables', to: 'nftables', across: [] });
    assert.ok(r.summary.frontends.unchanged > 50);
    // The rules are the same, so no frontend was traced; tracing every one agrees.
    const a = side(c, 'nftables');
    const b = side(c, 'nftables-table');
    const pairs = a.nodes.map((n, i) => ({ name: n.name, a: n, b: b.nodes[i] }));
    const full = diffByTracing(pairs, { modelA: a.model, modelB: b.model });
    assert.equal(full.counts.traced, r.summary.frontends.unchanged);
    assert.deepEqual([full.counts.unchanged, full.frontends], [r.summary.frontends.unchanged, []]);
  });

  it('an endpoint removed: the frontend changes, its endpoint chain and elements go', () => {
    const c = cluster(3);
    const b = structuredClone(c);
    const svc = b.services.find(scalable)!;
    const gone = svc.endpoints.pop()!;
    const nodes = fleetNodes(c, 1);
    const r = diffSnapshots(side(c, 'nftables', nodes), side(b, 'nftables', nodes), { manifests: false });
    assert.equal(r.summary.frontends.changed, 1);
    assert.ok(r.frontends[0].changes.includes(`endpoint ${gone.ip}:${gone.port} removed`));
    const removedChain = r.rules.filter((x) => x.change === 'chain-removed');
    assert.equal(removedChain.length, 1);
    assert.match(removedChain[0].chain, new RegExp(`^endpoint-[A-Z2-7]{8}-${svc.namespace}/${svc.name}/.*__${gone.ip.replaceAll('.', '\\.')}/${gone.port}$`));
    assert.equal(removedChain[0].table, 'ip kube-proxy');
    // The service chain's numgen vmap lists one endpoint fewer: one rule out, one in.
    assert.equal(r.summary.rules.rulesRemoved, 1);
    assert.equal(r.summary.rules.rulesAdded, 1);
    const added = r.rules.find((x) => x.change === 'rule-added')!;
    assert.match(added.rule!, new RegExp(`numgen random mod ${svc.endpoints.length} vmap`));
    assert.equal(r.summary.rules.renamed, 0);
  });

  it('a dual-stack ruleset (ip and ip6 kube-proxy tables): NodePorts paired per family', () => {
    const web = (clusterIP: string, endpoint: string): GenService => ({
      ...blankService('a', 'web'), type: 'NodePort', clusterIP,
      ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, nodePort: 30080 }],
      endpoints: [{ ip: endpoint, port: 8080, ready: true, serving: true, terminating: false, nodeName: 'n2', podName: 'web-1' }],
    });
    const base = { nodeName: 'n1', nodes: ['n1', 'n2'], masqueradeMark: '0x4000' };
    const v4: GenCluster = { ...base, nodeIPs: ['192.168.0.10'], clusterCIDR: '10.244.0.0/16', serviceCIDR: '10.96.0.0/12', services: [web('10.96.0.5', '10.244.1.5')] };
    const v6: GenCluster = { ...base, nodeIPs: ['fd00::10'], clusterCIDR: 'fd10::/56', serviceCIDR: 'fd20::/112', services: [web('fd20::5', 'fd10::1:5')] };
    const moved: GenCluster = { ...v6, services: [web('fd20::5', 'fd10::1:6')] };
    const node = (...parts: GenCluster[]): DiffSide => ({
      nodes: [{ name: 'n1', addresses: ['192.168.0.10', 'fd00::10'], ruleset: readRules(parts.map((x) => renderNftables(x)).join('\n')) }],
    });
    const same = diffSnapshots(node(v4, v6), node(v4, v6));
    assert.deepEqual(unexplained(same), CLEAN);
    assert.equal(same.summary.frontends.unchanged, 4, 'ClusterIP and NodePort of each family');
    const r = diffSnapshots(node(v4, v6), node(v4, moved));
    assert.deepEqual(r.frontends.map((f) => [f.frontend.ip, f.frontend.kind, f.changes]).sort(), [
      ['fd00::10', 'NodePort', ['endpoint [fd10::1:5]:8080 removed', 'endpoint [fd10::1:6]:8080 added']],
      ['fd20::5', 'ClusterIP', ['endpoint [fd10::1:5]:8080 removed', 'endpoint [fd10::1:6]:8080 added']],
    ]);
    assert.equal(r.summary.frontends.unchanged, 2);
  });

  it('a Service deleted: its map elements are reported per set', () => {
    const c = cluster(3);
    const b = structuredClone(c);
    const at = b.services.findIndex(scalable);
    const [svc] = b.services.splice(at, 1);
    const nodes = fleetNodes(c, 1);
    const r = diffSnapshots(side(c, 'nftables', nodes), side(b, 'nftables', nodes), { manifests: false });
    assert.equal(r.summary.frontends.removed, 1);
    const elements = r.rules.filter((x) => x.change === 'element-removed').map((x) => `${x.chain} ${x.rule}`);
    assert.ok(elements.some((e) => e.startsWith(`@service-ips ${svc.clusterIP} . tcp . ${svc.ports[0].port} : goto service-`)), elements.join('\n'));
    assert.ok(elements.includes(`@cluster-ips ${svc.clusterIP}`), elements.join('\n'));
    assert.equal(r.summary.rules.elementsRemoved, elements.length);
    assert.equal(r.summary.rules.elementsAdded, 0);
  });
});

describe('known differences are matched by what the outcomes show, not assumed', () => {
  const outcome = (verdict: TraceOutcome['verdict'], ip = '10.244.0.5'): TraceOutcome => ({
    probability: 1, exactProbability: '1', verdict, destination: { ip, port: 80 }, masquerade: false, delivery: verdict === 'DNAT' ? 'forward' : 'local',
    mark: '0x0', path: [], notes: [],
  });
  it('a localhost NodePort that nftables mode DNATs too is no known difference', () => {
    assert.equal(classifyProbe('localhost-nodeport', [outcome('DNAT')], [outcome('DNAT', '10.244.0.6')]), null);
    assert.equal(classifyProbe('localhost-nodeport', [outcome('DNAT')], [outcome('ACCEPT')])?.code, 'NODEPORT_LOCALHOST');
    assert.equal(classifyProbe('localhost-nodeport', [outcome('ACCEPT')], [outcome('DROP')]), null);
  });
  it('another port of a ClusterIP: only a REJECT in nftables mode against no rule in iptables mode', () => {
    assert.equal(classifyProbe('cluster-ip-other-port', [outcome('ACCEPT')], [outcome('REJECT')])?.code, 'CLUSTER_IP_OTHER_PORT');
    assert.equal(classifyProbe('cluster-ip-other-port', [outcome('ACCEPT')], [outcome('DROP')]), null);
    assert.equal(classifyProbe('cluster-ip-other-port', [outcome('DNAT')], [outcome('REJECT')]), null);
  });
  it('an unallocated Service IP: only a DROP in nftables mode', () => {
    assert.equal(classifyProbe('service-cidr-unallocated', [outcome('ACCEPT')], [outcome('DROP')])?.code, 'SERVICE_CIDR_UNALLOCATED');
    assert.equal(classifyProbe('service-cidr-unallocated', [outcome('ACCEPT')], [outcome('REJECT')]), null);
  });
});
