import assert from 'node:assert/strict';
import { test } from 'node:test';
import { completeKubeProxy, parseDump, trace } from '../../../src/engine/index.ts';
import type { TraceResult } from '../../../src/engine/index.ts';
import { TraceMemo } from '../../../src/engine/trace/memo.ts';
import { editFiveServices, fleetNodes, generateCluster, renderFleetNode } from '../../support/kube-gen.ts';
import type { GenCluster } from '../../support/kube-gen.ts';

const cluster = generateCluster({ seed: 7, services: 120, nodes: 4 });
const render = (c: GenCluster, n: ReturnType<typeof fleetNodes>[number]) =>
  completeKubeProxy(parseDump(renderFleetNode(c, n, { nodePortAddresses: ['192.168.0.0/16'] })));

/** Every frontend of the cluster as seen from a node, from outside and from a pod, and the node's own NodePort from the node itself. */
function packets(c: GenCluster, node: { addresses: readonly string[] }) {
  const out: { source: string; destination: string; port: number; protocol: 'tcp' | 'udp' | 'sctp' }[] = [];
  for (const s of c.services) {
    if (s.clusterIP === 'None') continue;
    for (const p of s.ports) {
      const protocol = p.protocol.toLowerCase() as 'tcp' | 'udp' | 'sctp';
      for (const source of ['198.18.0.1', '10.244.1.7', node.addresses[0]]) {
        out.push({ source, destination: s.clusterIP, port: p.port, protocol });
        if (p.nodePort) out.push({ source, destination: node.addresses[0], port: p.nodePort, protocol });
        for (const ip of [...s.loadBalancerIPs, ...s.externalIPs]) out.push({ source, destination: ip, port: p.port, protocol });
      }
    }
  }
  return out;
}

const plain = (r: TraceResult) => JSON.parse(JSON.stringify(r)) as unknown;

test('a trace kept from one node answers for another exactly as a trace made there, positions and lines included', () => {
  const edited = editFiveServices(cluster).cluster;
  const nodes = fleetNodes(cluster);
  // Four nodes of one version, then the same nodes of the next version: both kinds of sharing.
  const rulesets = [...nodes.map((n) => ({ n, rs: render(cluster, n), c: cluster })), ...nodes.map((n) => ({ n, rs: render(edited, n), c: edited }))];
  const memo = new TraceMemo();
  let compared = 0;
  for (const { n, rs, c } of rulesets) {
    for (const packet of packets(c, n)) {
      const req = { node: { name: n.name, addresses: n.addresses }, packet };
      let direct: TraceResult | string;
      try {
        direct = trace(rs, req);
      } catch (e) {
        direct = String(e);
      }
      let shared: TraceResult | string;
      try {
        shared = memo.trace(rs, req);
      } catch (e) {
        shared = String(e);
      }
      assert.deepEqual(typeof shared === 'string' ? shared : plain(shared), typeof direct === 'string' ? direct : plain(direct), `${n.name} ${JSON.stringify(packet)}`);
      compared++;
    }
  }
  assert.ok(compared > 2000, `${compared} packets`);
  // Most of the answers came from another node's trace: the memo is doing its work, NodePorts
  // (each node's own address) included.
  assert.ok(memo.hits > memo.misses, `${memo.hits} hits, ${memo.misses} misses`);
  assert.ok(memo.swaps > 100, `${memo.swaps} answers to another node's address`);
});

/** What a caller of `outcomes` may read: each outcome without its path. */
const ends = (r: TraceResult) => r.outcomes.map(({ path: _path, ...rest }) => plain({ ...rest, path: [] } as unknown as TraceResult));

test('outcomes answers as trace does, except the steps, and hands out the kept answer itself on a hit', () => {
  const nodes = fleetNodes(cluster);
  const memo = new TraceMemo();
  let hits = 0;
  for (const n of nodes) {
    const rs = render(cluster, n);
    for (const packet of packets(cluster, n)) {
      const req = { node: { name: n.name, addresses: n.addresses }, packet };
      let direct: TraceResult;
      try {
        direct = trace(rs, req);
      } catch {
        assert.throws(() => memo.outcomes(rs, req));
        continue;
      }
      const before = memo.hits;
      const got = memo.outcomes(rs, req);
      assert.deepEqual(got.outcomes.map((o) => o.probability), direct.outcomes.map((o) => o.probability));
      assert.deepEqual(ends(got), ends(direct), `${n.name} ${JSON.stringify(packet)}`);
      if (memo.hits > before) {
        hits++;
        // No copy: asked again, the same object (an answer to another node's address has its own destination).
        if (packet.destination === n.addresses[0]) assert.deepEqual(memo.outcomes(rs, req), got);
        else assert.equal(memo.outcomes(rs, req), got);
      }
    }
  }
  assert.ok(hits > 500, `${hits} hits`);
});

test('an answer to one node\'s address stands for another\'s only where the rules cannot tell the two apart', () => {
  // Two traps. A rule on every node whose destination range holds some nodes' addresses and not
  // others' (192.168.0.12/30: node-003 and node-004). And a NodePort Service whose one endpoint is
  // node-001's own address (a host-network pod): there a NodePort is DNATed to the node itself.
  const trapped = structuredClone(cluster);
  const nodes = fleetNodes(trapped);
  const hostNetwork = trapped.services.find((s) => s.ports.some((p) => p.nodePort) && s.endpoints.length > 0 && s.externalTrafficPolicy === 'Cluster')!;
  hostNetwork.endpoints = [{ ...hostNetwork.endpoints[0], ip: nodes[0].addresses[0], nodeName: nodes[0].name, ready: true, serving: true, terminating: false }];
  const dropRule = '-A KUBE-SERVICES -d 192.168.0.12/30 -p tcp -m comment --comment "trap" -j DROP';
  const dumpOf = (n: (typeof nodes)[number]) => {
    const text = renderFleetNode(trapped, n, { nodePortAddresses: ['192.168.0.0/16'] });
    const at = text.indexOf('-A KUBE-SERVICES ', text.indexOf('*nat'));
    assert.ok(at > 0);
    return completeKubeProxy(parseDump(`${text.slice(0, at)}${dropRule}\n${text.slice(at)}`));
  };
  const rulesets = nodes.map((n) => ({ n, rs: dumpOf(n) }));
  const nodePorts = trapped.services.flatMap((s) => s.ports.filter((p) => p.nodePort).map((p) => ({ port: p.nodePort!, protocol: p.protocol.toLowerCase() as 'tcp' | 'udp' | 'sctp' })));
  assert.ok(nodePorts.length > 5);
  let trappedAnswers = 0;
  // Both orders: node-001 (the host-network endpoint's node) first, and last.
  for (const order of [rulesets, [...rulesets].reverse()]) {
    const memo = new TraceMemo();
    for (const { n, rs } of order) {
      for (const np of nodePorts) {
        const req = { node: { name: n.name, addresses: n.addresses }, packet: { source: '198.18.0.1', destination: n.addresses[0], ...np } };
        const direct = trace(rs, req);
        assert.deepEqual(plain(memo.trace(rs, req)), plain(direct), `${n.name} ${np.port}`);
        if (direct.outcomes.some((o) => o.verdict === 'DROP' || o.destination.ip === nodes[0].addresses[0])) trappedAnswers++;
      }
    }
    // node-001 and node-002 (outside the range) still share answers.
    assert.ok(memo.swaps > 5, `${memo.swaps} answers to another node's address`);
  }
  // The traps were met: node-003 and node-004 drop every NodePort; the host-network Service's
  // NodePort reaches node-001's address.
  assert.ok(trappedAnswers > 4 * nodePorts.length, `${trappedAnswers} answers met a trap`);
});
