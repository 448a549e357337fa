/**
 * Snapshot A against snapshot B: a generated cluster A, and B made from it by known edits (scale
 * a Deployment, delete a Service, switch a NodePort to externalTrafficPolicy Local, add an
 * endpoint, change a targetPort). The diff must report exactly those effects; A against itself
 * reports nothing; a chain renamed by hand is one rename, not rule churn.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { completeKubeProxy, parseDump } from '../../../src/engine/index.ts';
import { ChainNameIndex, kubeProxyChainName, readClusterModel } from '../../../src/engine/kube/index.ts';
import { diffSnapshots } from '../../../src/engine/diff/index.ts';
import type { DiffSide } from '../../../src/engine/diff/index.ts';
import type { GenCluster, GenService } from '../../support/kube-gen.ts';
import { generateCluster, renderIptablesSave, renderManifests } from '../../support/kube-gen.ts';

const SEED = 21;

function key(s: GenService): string {
  return `${s.namespace}/${s.name}`;
}

function side(c: GenCluster, edit: (dump: string) => string = (d) => d, withManifests = true): DiffSide {
  const ruleset = completeKubeProxy(parseDump(edit(renderIptablesSave(c))));
  const node = { name: c.nodeName, addresses: c.nodeIPs, ruleset };
  if (!withManifests) return { nodes: [node] };
  const model = readClusterModel([JSON.parse(renderManifests(c))]).model;
  return { nodes: [node], model, index: ChainNameIndex.fromModel(model) };
}

/** Services A is built around: plain (no affinity, one port, no external IPs) with endpoints. */
function plain(s: GenService): boolean {
  return s.namespace !== 'kube-system' && s.name !== 'kubernetes' && s.ports.length === 1 && s.sessionAffinity === 'None'
    && s.externalIPs.length === 0 && s.clusterIP !== 'None' && s.internalTrafficPolicy === 'Cluster'
    && s.endpoints.length >= 2 && s.endpoints.every((e) => e.ready && !e.terminating);
}

interface Edited {
  a: GenCluster;
  b: GenCluster;
  scaled: GenService;
  deleted: GenService;
  local: GenService;
  added: GenService;
  retargeted: GenService;
  newEndpoints: string[];
}

function edited(): Edited {
  const a = generateCluster({ seed: SEED, services: 60, nodePortShare: 0.2 });
  const b = structuredClone(a);
  const pick = (what: string, ok: (s: GenService) => boolean, taken: GenService[]): GenService => {
    const s = b.services.find((x) => ok(x) && !taken.includes(x));
    assert.ok(s, `the generated cluster has ${what}`);
    return s;
  };
  const taken: GenService[] = [];
  const scaled = pick('a ClusterIP Service', (s) => plain(s) && s.type === 'ClusterIP', taken);
  taken.push(scaled);
  const deleted = pick('another ClusterIP Service', (s) => plain(s) && s.type === 'ClusterIP', taken);
  taken.push(deleted);
  const local = pick('a NodePort Service with policy Cluster', (s) => plain(s) && s.type === 'NodePort' && s.externalTrafficPolicy === 'Cluster', taken);
  taken.push(local);
  const added = pick('a third ClusterIP Service', (s) => plain(s) && s.type === 'ClusterIP', taken);
  taken.push(added);
  const retargeted = pick('a fourth ClusterIP Service', (s) => plain(s) && s.type === 'ClusterIP', taken);

  const newEndpoints: string[] = [];
  let pod = 240;
  const grow = (s: GenService) => {
    const ip = `10.244.1.${pod++}`;
    const first = s.endpoints[0];
    s.endpoints.push({ ...first, ip, nodeName: 'node-002', podName: `${s.name}-new-${pod}` });
    newEndpoints.push(`${ip}:${first.port}`);
  };
  grow(scaled); // kubectl scale: one more replica behind the Service
  b.services.splice(b.services.indexOf(deleted), 1);
  local.externalTrafficPolicy = 'Local';
  grow(added);
  retargeted.ports[0].targetPort += 1;
  for (const e of retargeted.endpoints) e.port += 1;
  return { a, b, scaled, deleted, local, added, retargeted, newEndpoints };
}

test('A against B: exactly the effects of the edits on frontends, rules and manifests', () => {
  const e = edited();
  const d = diffSnapshots(side(e.a), side(e.b), { clusterCIDR: e.a.clusterCIDR });

  const got = d.frontends.map((f) => `${f.service} ${f.frontend.kind} ${f.change}`).sort();
  const want = [
    `${key(e.scaled)} ClusterIP changed`,
    `${key(e.deleted)} ClusterIP removed`,
    `${key(e.local)} NodePort changed`,
    `${key(e.added)} ClusterIP changed`,
    `${key(e.retargeted)} ClusterIP changed`,
  ].sort();
  assert.deepEqual(got, want);

  const changesOf = (s: GenService, kind: string) => d.frontends.find((f) => f.service === key(s) && f.frontend.kind === kind)!.changes;
  assert.ok(changesOf(e.scaled, 'ClusterIP').includes(`endpoint ${e.newEndpoints[0]} added`));
  assert.ok(changesOf(e.added, 'ClusterIP').includes(`endpoint ${e.newEndpoints[1]} added`));
  const n = e.scaled.endpoints.length;
  assert.ok(changesOf(e.scaled, 'ClusterIP').some((c) => c.endsWith(`${Number((1 / (n - 1)).toPrecision(6))} → ${Number((1 / n).toPrecision(6))}`)));
  for (const ep of e.retargeted.endpoints) {
    assert.ok(changesOf(e.retargeted, 'ClusterIP').includes(`endpoint ${ep.ip}:${ep.port - 1} removed`));
    assert.ok(changesOf(e.retargeted, 'ClusterIP').includes(`endpoint ${ep.ip}:${ep.port} added`));
  }
  // Policy Local: outside traffic to the NodePort goes only to the node's own endpoints, unmasqueraded,
  // and is dropped on a node without one.
  const np = d.frontends.find((f) => f.service === key(e.local))!;
  assert.ok(np.before.every((o) => o.verdict === 'DNAT' && o.masquerade));
  const onNode = e.local.endpoints.filter((x) => x.nodeName === e.a.nodeName).map((x) => `${x.ip}:${x.port}`).sort();
  if (onNode.length === 0) {
    assert.ok(np.after.length > 0 && np.after.every((o) => o.verdict === 'DROP'), JSON.stringify(np.changes));
    assert.deepEqual(np.changes.filter((c) => c.startsWith('verdict')), ['verdict DNAT → DROP']);
  } else {
    assert.deepEqual(np.after.map((o) => `${o.destination.ip}:${o.destination.port}`).sort(), onNode);
    assert.ok(np.after.every((o) => o.verdict === 'DNAT' && !o.masquerade));
    for (const x of onNode) assert.ok(np.changes.includes(`masquerade for endpoint ${x} yes → no`));
  }
  const verdictChanges = onNode.length === 0 ? 1 : 0;
  const localRemoved = onNode.length === 0 ? 0 : e.local.endpoints.length - onNode.length;

  assert.equal(d.summary.frontends.added, 0);
  assert.equal(d.summary.frontends.removed, 1);
  assert.equal(d.summary.frontends.changed, 4);
  assert.ok(d.summary.frontends.unchanged > 40);
  assert.equal(d.summary.endpoints.added, 2 + e.retargeted.endpoints.length);
  assert.equal(d.summary.endpoints.removed, e.retargeted.endpoints.length + localRemoved);
  assert.equal(d.summary.verdictChanges, verdictChanges);

  // Rules: the deleted Service's chains and the retargeted Service's endpoint chains go, new ones come; no renames.
  assert.equal(d.summary.rules.renamed, 0);
  const svc = (s: GenService) => kubeProxyChainName('KUBE-SVC', s.ports[0].name ? `${key(s)}:${s.ports[0].name}` : key(s), s.ports[0].protocol);
  const removedChains = d.rules.filter((r) => r.change === 'chain-removed').map((r) => r.chain);
  assert.ok(removedChains.includes(svc(e.deleted)));
  assert.ok(!removedChains.includes(svc(e.scaled)));
  const touched = new Set(d.rules.map((r) => r.chain));
  for (const c of touched) {
    assert.match(c, /^KUBE-(SERVICES|NODEPORTS|SVC|SVL|EXT|SEP)-?|^KUBE-(SERVICES|NODEPORTS|EXTERNAL-SERVICES)$/, `unexpected chain ${c}`);
  }

  // Manifests: the Service and its endpoints gone, the two changed Services, three endpoint lists changed.
  const m = d.manifests.map((x) => `${x.kind} ${x.name} ${x.change}`).sort();
  assert.deepEqual(m, [
    `Endpoints ${key(e.added)} changed`,
    `Endpoints ${key(e.deleted)} removed`,
    `Endpoints ${key(e.retargeted)} changed`,
    `Endpoints ${key(e.scaled)} changed`,
    `Service ${key(e.deleted)} removed`,
    `Service ${key(e.local)} changed`,
    `Service ${key(e.retargeted)} changed`,
  ].sort());
  const fieldsOf = (kind: string, s: GenService) => d.manifests.find((x) => x.kind === kind && x.name === key(s))!.fields!;
  assert.deepEqual(fieldsOf('Service', e.local).map((f) => [f.path, f.before, f.after]), [['externalTrafficPolicy', 'Cluster', 'Local']]);
  const tp = fieldsOf('Service', e.retargeted);
  assert.equal(tp.length, 1);
  assert.match(tp[0].path, /^ports(\.|\[).*targetPort$/);
  assert.equal(tp[0].after, (tp[0].before as number) + 1);
  assert.deepEqual(fieldsOf('Endpoints', e.scaled).map((f) => f.path), [`[${e.newEndpoints[0].split(':')[0]}]`]);
});

test('a snapshot against itself: no changes of any kind', () => {
  const a = generateCluster({ seed: SEED, services: 60, nodePortShare: 0.2 });
  const s = side(a);
  const d = diffSnapshots(s, s, { clusterCIDR: a.clusterCIDR });
  assert.deepEqual(d.frontends, []);
  assert.deepEqual(d.rules, []);
  assert.deepEqual(d.manifests, []);
  const { unchanged, ...rest } = d.summary.frontends;
  assert.deepEqual(rest, { added: 0, removed: 0, changed: 0, known: 0 });
  assert.ok(unchanged > 60);
  assert.deepEqual(d.summary.rules, { chainsAdded: 0, chainsRemoved: 0, rulesAdded: 0, rulesRemoved: 0, rulesMoved: 0, renamed: 0, setsAdded: 0, setsRemoved: 0, elementsAdded: 0, elementsRemoved: 0 });
  // Two separately parsed copies of the same dump agree too.
  const again = diffSnapshots(side(a), side(a));
  assert.equal(again.frontends.length + again.rules.length + again.manifests.length, 0);
});

test('a pure hash rename is one chain-renamed, not rule churn, and changes no frontend', () => {
  const a = generateCluster({ seed: SEED, services: 60, nodePortShare: 0.2 });
  const s = a.services.find((x) => plain(x) && x.type === 'ClusterIP')!;
  const old = kubeProxyChainName('KUBE-SVC', s.ports[0].name ? `${key(s)}:${s.ports[0].name}` : key(s), s.ports[0].protocol);
  const renamed = 'KUBE-SVC-AAAAAAAAAAAAAAAA';
  const d = diffSnapshots(side(a, undefined, false), side(a, (dump) => dump.split(old).join(renamed), false));
  assert.deepEqual(d.rules.map((r) => [r.change, r.from, r.to]), [['chain-renamed', old, renamed]]);
  assert.equal(d.summary.rules.renamed, 1);
  assert.deepEqual({ ...d.summary.rules, renamed: 0 }, { chainsAdded: 0, chainsRemoved: 0, rulesAdded: 0, rulesRemoved: 0, rulesMoved: 0, renamed: 0, setsAdded: 0, setsRemoved: 0, elementsAdded: 0, elementsRemoved: 0 });
  assert.deepEqual(d.frontends, []);
});

test('a moved rule and a reordered chain are reported as moves', () => {
  const a = generateCluster({ seed: SEED, services: 20 });
  const swap = (dump: string) => {
    const lines = dump.split('\n');
    const at = lines.findIndex((l, i) => i > lines.indexOf('*nat') && l.startsWith('-A KUBE-SERVICES -d '));
    [lines[at], lines[at + 1]] = [lines[at + 1], lines[at]];
    return lines.join('\n');
  };
  const d = diffSnapshots(side(a, undefined, false), side(a, swap, false));
  assert.equal(d.summary.rules.rulesMoved, 1);
  assert.equal(d.summary.rules.rulesAdded + d.summary.rules.rulesRemoved, 0);
  assert.deepEqual(d.frontends, []);
});

test('two 10,000-Service nodes: the time the diff takes', (t) => {
  const a = generateCluster({ seed: 5, services: 10000 });
  const b = structuredClone(a);
  const s = b.services.find((x) => plain(x))!;
  s.endpoints.pop();
  b.services.splice(b.services.findIndex((x) => plain(x) && x !== s), 1);
  const ra = completeKubeProxy(parseDump(renderIptablesSave(a)));
  const rb = completeKubeProxy(parseDump(renderIptablesSave(b)));
  const started = performance.now();
  const d = diffSnapshots(
    { nodes: [{ name: a.nodeName, addresses: a.nodeIPs, ruleset: ra }] },
    { nodes: [{ name: b.nodeName, addresses: b.nodeIPs, ruleset: rb }] },
    { clusterCIDR: a.clusterCIDR },
  );
  const ms = performance.now() - started;
  t.diagnostic(`diff of two 10,000-Service nodes: ${ms.toFixed(0)} ms; ${JSON.stringify(d.summary.frontends)}; rules ${JSON.stringify(d.summary.rules)}`);
  assert.equal(d.summary.frontends.removed, 1);
  assert.ok(d.summary.frontends.changed >= 1);
});

test('the diff pair by pair equals the diff of all nodes at once (nodes added and removed too)', async () => {
  const { diffNodeByNode } = await import('../../../src/engine/diff/index.ts');
  const a = generateCluster({ seed: SEED, services: 80 });
  const b = structuredClone(a);
  const victim = b.services.find((s) => plain(s))!;
  victim.endpoints.pop();
  b.services = b.services.filter((s) => s !== b.services.find((x) => x !== victim && plain(x)));
  const nodeOf = (c: GenCluster, name: string, i: number) => {
    const view = { ...c, nodeName: name, nodeIPs: [`192.168.7.${i + 1}`] };
    return { name, addresses: view.nodeIPs, ruleset: completeKubeProxy(parseDump(renderIptablesSave(view))) };
  };
  const modelOf = (c: GenCluster) => readClusterModel([JSON.parse(renderManifests(c))]).model;
  const [ma, mb] = [modelOf(a), modelOf(b)];
  const namesA = a.nodes.slice(0, 3);
  const namesB = [a.nodes[1], a.nodes[0], a.nodes[3]].sort();
  const nodesA = namesA.map((n) => nodeOf(a, n, a.nodes.indexOf(n)));
  const nodesB = namesB.map((n) => nodeOf(b, n, a.nodes.indexOf(n)));
  const whole = diffSnapshots(
    { nodes: nodesA, model: ma, index: ChainNameIndex.fromModel(ma) },
    { nodes: nodesB, model: mb, index: ChainNameIndex.fromModel(mb) },
  );
  const loaded: string[] = [];
  const byPair = diffNodeByNode(
    { names: namesA, model: ma, index: ChainNameIndex.fromModel(ma) },
    { names: namesB, model: mb, index: ChainNameIndex.fromModel(mb) },
    (s, name) => {
      loaded.push(`${s}:${name}`);
      return (s === 'a' ? nodesA : nodesB).find((n) => n.name === name)!;
    },
  );
  assert.deepEqual(byPair, whole);
  assert.ok(whole.frontends.length > 0 && whole.rules.length > 0 && whole.manifests.length > 0);
  assert.deepEqual(whole.unpairedNodes, { a: [namesA[2]], b: [a.nodes[3]] });
  // Only paired nodes are loaded, a pair at a time.
  assert.deepEqual(loaded, [`a:${a.nodes[0]}`, `b:${a.nodes[0]}`, `a:${a.nodes[1]}`, `b:${a.nodes[1]}`]);
});
