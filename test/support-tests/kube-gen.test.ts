import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  editFiveServices,
  fleetNodes,
  generateCluster,
  kubeProxyChainName,
  renderFleet,
  renderIptablesSave,
  renderManifests,
} from '../support/kube-gen.ts';
import type { GenCluster, GenService } from '../support/kube-gen.ts';

/** Declared chains and `-j KUBE-…` targets, per table. */
function declaredAndTargets(text: string): Map<string, { declared: Set<string>; targets: Set<string> }> {
  const tables = new Map<string, { declared: Set<string>; targets: Set<string> }>();
  let current: { declared: Set<string>; targets: Set<string> } | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      current = { declared: new Set(), targets: new Set() };
      tables.set(line.slice(1), current);
    } else if (line.startsWith(':') && current) {
      current.declared.add(line.slice(1, line.indexOf(' ')));
    } else if (current) {
      const m = / -j (KUBE-[A-Z0-9-]+)/.exec(line);
      if (m) current.targets.add(m[1]);
    }
  }
  return tables;
}

/** Lines of `a` that `b` lacks, and the other way round. */
function lineDiff(a: string, b: string): string[] {
  const la = new Set(a.split('\n'));
  const lb = new Set(b.split('\n'));
  return [...[...la].filter((l) => !lb.has(l)), ...[...lb].filter((l) => !la.has(l))];
}

/** Every chain kube-proxy may write for these Services (SVC, SVL, EXT, FW, and a SEP per endpoint). */
function chainsOf(services: readonly GenService[]): Set<string> {
  const out = new Set<string>();
  for (const s of services) {
    s.ports.forEach((p, i) => {
      for (const prefix of ['KUBE-SVC', 'KUBE-SVL', 'KUBE-EXT', 'KUBE-FW'] as const) {
        out.add(kubeProxyChainName(prefix, s.namespace, s.name, p.name, p.protocol));
      }
      for (const e of s.endpoints) {
        out.add(kubeProxyChainName('KUBE-SEP', s.namespace, s.name, p.name, p.protocol, `${e.ip}:${i === 0 ? e.port : p.targetPort}`));
      }
    });
  }
  return out;
}

/** Whether a dump line belongs to one of these Services: a chain of theirs, or a comment naming one. */
function belongsTo(line: string, services: readonly GenService[], chains: Set<string>): boolean {
  for (const m of line.matchAll(/KUBE-(?:SVC|SVL|EXT|FW|SEP)-[A-Z2-7]{16}/g)) if (chains.has(m[0])) return true;
  return services.some((s) => line.includes(`"${s.namespace}/${s.name}:`) || line.includes(`"${s.namespace}/${s.name} `));
}

const usesLocal = (s: GenService) => s.externalTrafficPolicy === 'Local' || s.internalTrafficPolicy === 'Local';

/** Items of a manifest List by Service (`ns/name`): the Service and its EndpointSlices, as JSON. */
function manifestsByService(text: string): Map<string, string> {
  const out = new Map<string, string[]>();
  for (const item of (JSON.parse(text) as { items: { kind: string; metadata: { namespace: string; name: string; labels: Record<string, string> } }[] }).items) {
    const name = item.kind === 'Service' ? item.metadata.name : item.metadata.labels['kubernetes.io/service-name'];
    const key = `${item.metadata.namespace}/${name}`;
    out.set(key, [...(out.get(key) ?? []), JSON.stringify(item)]);
  }
  return new Map([...out].map(([k, v]) => [k, v.join('\n')]));
}

let fleetCluster: GenCluster | undefined;
function fleet(): GenCluster {
  fleetCluster ??= generateCluster({ seed: 11, services: 400, nodes: 6 });
  return fleetCluster;
}

let big: string | undefined;
function bigDump(): string {
  big ??= renderIptablesSave(generateCluster({ seed: 1, services: 10000 }));
  return big;
}

describe('kube-gen', () => {
  it('is deterministic per seed', () => {
    const a = generateCluster({ seed: 42, services: 300 });
    const b = generateCluster({ seed: 42, services: 300 });
    assert.deepEqual(a, b);
    assert.equal(renderIptablesSave(a), renderIptablesSave(b));
    assert.equal(renderManifests(a), renderManifests(b));
    const c = generateCluster({ seed: 43, services: 300 });
    assert.notEqual(renderIptablesSave(a), renderIptablesSave(c));
  });

  it('names chains as kube-proxy does (names from the conformance corpus)', () => {
    // dumps-only/overall-iptables-rules.txt
    assert.equal(kubeProxyChainName('KUBE-SVC', 'ns1', 'svc1', 'p80', 'TCP'), 'KUBE-SVC-XPGD46QRK7WJZT7O');
    assert.equal(
      kubeProxyChainName('KUBE-SEP', 'ns1', 'svc1', 'p80', 'TCP', '10.180.0.1:80'),
      'KUBE-SEP-SXIVWICOYRO3J4NJ',
    );
    assert.equal(kubeProxyChainName('KUBE-FW', 'ns5', 'svc5', 'p80', 'tcp'), 'KUBE-FW-NUKIZ6OKUXPJNT4C');
    // internal-traffic-policy-e2e: an unnamed port hashes `ns1/svc1` alone.
    assert.equal(kubeProxyChainName('KUBE-SVL', 'ns1', 'svc1', '', 'tcp'), 'KUBE-SVL-AQI2S6QIMU7PVVRP');
  });

  it('prints what iptables-save prints for kube-proxy fixed rules', () => {
    const text = renderIptablesSave(generateCluster({ seed: 3, services: 40 }));
    assert.match(text, /^-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000\/0x4000$/m);
    assert.match(text, /^-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000\/0x0$/m);
    assert.match(text, /^-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES$/m);
    assert.match(text, /--probability 0\.(50000000000|33333333349|25000000000)/);
    assert.match(text, /^-A KUBE-SEP-[A-Z2-7]{16} -s 10\.244\.\d+\.\d+\/32 -m comment --comment "[^"]+" -j KUBE-MARK-MASQ$/m);
    const tableOrder = text.split('\n').filter((l) => l.startsWith('*'));
    assert.deepEqual(tableOrder, ['*mangle', '*filter', '*nat']);
  });

  it('renders manifests as a v1 List of Services and EndpointSlices', () => {
    const cluster = generateCluster({ seed: 5, services: 60 });
    const list = JSON.parse(renderManifests(cluster)) as { kind: string; items: { kind: string }[] };
    assert.equal(list.kind, 'List');
    assert.equal(list.items.filter((i) => i.kind === 'Service').length, 60);
    assert.ok(list.items.filter((i) => i.kind === 'EndpointSlice').length >= 60);
  });

  it('lands near 365,000 lines and 40 MB for 10,000 services', () => {
    const text = bigDump();
    const lines = text.split('\n').length - 1;
    const bytes = Buffer.byteLength(text);
    assert.ok(Math.abs(lines - 365_000) <= 365_000 * 0.25, `lines ${lines}`);
    assert.ok(Math.abs(bytes - 40_000_000) <= 40_000_000 * 0.25, `bytes ${bytes}`);
  });

  it('declares every KUBE-… chain it jumps to', () => {
    for (const [table, { declared, targets }] of declaredAndTargets(bigDump())) {
      const missing = [...targets].filter((t) => !declared.has(t));
      assert.deepEqual(missing, [], `undeclared targets in ${table}`);
    }
  });

  describe('fleet', () => {
    it('has as many nodes as asked for, with endpoints on each, in its own pod CIDR block', () => {
      const c = fleet();
      assert.equal(c.nodes.length, 6);
      const blocks = new Map<string, Set<string>>();
      for (const s of c.services) {
        for (const e of s.endpoints) {
          if (e.nodeName === '') continue;
          // 6 nodes: a /19 each (8192 addresses), 10.244.0.0, 10.244.32.0, …
          const block = String(Math.floor(Number(e.ip.split('.')[2]) / 32));
          blocks.set(e.nodeName, (blocks.get(e.nodeName) ?? new Set()).add(block));
        }
      }
      assert.deepEqual([...blocks.keys()].sort(), c.nodes);
      c.nodes.forEach((n, i) => assert.deepEqual([...blocks.get(n)!], [String(i)], n));
      assert.deepEqual(fleetNodes(c, 2), [
        { name: 'node-001', addresses: ['192.168.0.10'] },
        { name: 'node-002', addresses: ['192.168.0.11'] },
      ]);
      assert.throws(() => fleetNodes(c, 7), /cluster has 6/);
    });

    it('renders node-001 as renderIptablesSave does, and is deterministic', () => {
      const c = fleet();
      const a = renderFleet(c, { nodes: 3 });
      assert.deepEqual(a.map((n) => n.name), ['node-001', 'node-002', 'node-003']);
      assert.equal(a[0].dump, renderIptablesSave(c));
      assert.deepEqual(renderFleet(generateCluster({ seed: 11, services: 400, nodes: 6 }), { nodes: 3 }), a);
    });

    it('differs between nodes only where Services have a Local traffic policy, each node listing its own local endpoints', () => {
      const c = fleet();
      const [a, b] = renderFleet(c, { nodes: 2 });
      const local = c.services.filter(usesLocal);
      const chains = chainsOf(local);
      const changed = lineDiff(a.dump, b.dump);
      assert.ok(changed.length > 0);
      for (const line of changed) assert.ok(belongsTo(line, local, chains), line);
      // Without those Services the nodes' dumps are the same.
      const global = { ...c, services: c.services.filter((s) => !usesLocal(s)) };
      const [ga, gb] = renderFleet(global, { nodes: 2 });
      assert.equal(ga.dump, gb.dump);
      // A KUBE-SVL chain lists the endpoints on its own node, and only those.
      const nodeOf = new Map<string, string>();
      for (const s of c.services) for (const e of s.endpoints) nodeOf.set(e.ip, e.nodeName);
      for (const n of [a, b]) {
        const svl = n.dump.split('\n').filter((l) => l.startsWith('-A KUBE-SVL-') && l.includes(' -> '));
        assert.ok(svl.length > 0, n.name);
        for (const line of svl) assert.equal(nodeOf.get(/ -> ([\d.]+):/.exec(line)![1]), n.name, line);
      }
    });

    it('lists each node\'s own address for NodePorts with nodePortAddresses', () => {
      const [a, b] = renderFleet(fleet(), { nodes: 2, nodePortAddresses: ['192.168.0.0/16'] });
      const rule = (ip: string) => `-A KUBE-SERVICES -d ${ip}/32 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -j KUBE-NODEPORTS`;
      assert.ok(a.dump.includes(`${rule('192.168.0.10')}\n`));
      assert.ok(b.dump.includes(`${rule('192.168.0.11')}\n`));
      assert.ok(!a.dump.includes('--dst-type LOCAL -j KUBE-NODEPORTS'));
      assert.ok(!a.dump.includes(rule('192.168.0.11')));
      const [none] = renderFleet(fleet(), { nodes: 1, nodePortAddresses: ['10.0.0.0/8'] });
      assert.ok(!none.dump.includes('NOTE: this must be the last rule'), 'no node IP in 10.0.0.0/8: no tail call to KUBE-NODEPORTS');
    });

    it('edits five Services for the next version, deterministically', () => {
      const c = fleet();
      const before = structuredClone(c);
      const v2 = editFiveServices(c);
      assert.deepEqual(c, before, 'the input is left alone');
      assert.deepEqual(editFiveServices(c), v2);
      assert.equal(new Set(v2.changed).size, 5);

      const m1 = manifestsByService(renderManifests(c));
      const m2 = manifestsByService(renderManifests(v2.cluster));
      assert.deepEqual([...m2.keys()].sort(), [...m1.keys()].sort());
      const differing = [...m1.keys()].filter((k) => m1.get(k) !== m2.get(k));
      assert.deepEqual(differing.sort(), [...v2.changed].sort());

      const edited = [...c.services, ...v2.cluster.services].filter((s) => v2.changed.includes(`${s.namespace}/${s.name}`));
      const chains = chainsOf(edited);
      const d1 = renderFleet(c, { nodes: 3 });
      const d2 = renderFleet(v2.cluster, { nodes: 3 });
      for (let i = 0; i < 3; i++) {
        const changed = lineDiff(d1[i].dump, d2[i].dump);
        assert.ok(changed.length > 0, d1[i].name);
        for (const line of changed) assert.ok(belongsTo(line, edited, chains), `${d1[i].name}: ${line}`);
      }
    });
  });
});
