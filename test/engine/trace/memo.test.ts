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
  // Most of the answers came from another node's trace: the memo is doing its work.
  assert.ok(memo.hits > memo.misses, `${memo.hits} hits, ${memo.misses} misses`);
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
        // No copy: asked again, the same object.
        assert.equal(memo.outcomes(rs, req), got);
      }
    }
  }
  assert.ok(hits > 500, `${hits} hits`);
});
