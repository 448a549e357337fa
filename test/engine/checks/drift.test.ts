/**
 * The audit against generated clusters: rules rendered from manifests A, manifests uploaded B =
 * A with known edits. The audit must name every edit, on the nodes whose rules lag, and nothing
 * else; with B = A only the expected `info` findings (black holes that traffic policies and
 * Services without endpoints explain) remain.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeByNodeAudit, runAudit } from '../../../src/engine/checks/index.ts';
import type { Finding } from '../../../src/engine/checks/index.ts';
import type { GenCluster, GenService } from '../../support/kube-gen.ts';
import { auditInput, cluster, freePodIP, isPlain, key, notInfo, Picker, renderNode, sorted, summary } from './support.ts';

function portLabel(s: GenService): string {
  return s.ports[0].name !== '' ? s.ports[0].name : String(s.ports[0].port);
}

function endpointKey(s: GenService, i: number): string {
  return `${s.endpoints[i].ip}:${s.endpoints[i].port}`;
}

test('A vs A: no error or warning on one node or three, over many seeds and features; only explained info', () => {
  let infos = 0;
  for (let seed = 1; seed <= 12; seed++) {
    const a = cluster(seed, 60);
    const nodes = seed % 2 === 0 ? [renderNode(a, 'node-001')] : a.nodes.slice(0, 3).map((n) => renderNode(a, n));
    const findings = runAudit(auditInput(nodes, a));
    assert.deepEqual(notInfo(findings).map(summary), [], `seed ${seed}`);
    for (const f of findings) {
      assert.equal(f.check, 'black-holes', `seed ${seed}: ${f.message}`);
      assert.match(f.message, /\(expected\)$/);
      assert.ok(f.rules.length > 0, f.message);
      for (const r of f.rules) assert.ok(r.table === 'filter' && /-j (DROP|REJECT)/.test(r.rule), r.rule);
    }
    infos += findings.length;
  }
  assert.ok(infos > 10, `only ${infos} info findings: the clusters lack Local policies or Services without endpoints`);
});

interface Edits {
  readonly b: GenCluster;
  readonly added: { service: GenService; endpoint: string };
  readonly removed: { service: GenService; endpoint: string };
  readonly notReady: { service: GenService; endpoint: string };
  readonly affinity: { service: GenService; endpoint: string };
  readonly deleted: GenService;
  readonly local: GenService;
}

/** B = A with one edit of each kind, each on its own Service. */
function edit(a: GenCluster): Edits {
  const b: GenCluster = structuredClone(a);
  const pick = new Picker(b);
  // No endpoint on node-001 or node-002: under Local, both nodes must drop its NodePort traffic.
  const local = pick.pick('a NodePort switched to externalTrafficPolicy Local', (s) => isPlain(s) && s.type === 'NodePort'
    && s.endpoints.every((e) => e.nodeName !== 'node-001' && e.nodeName !== 'node-002'));
  local.externalTrafficPolicy = 'Local';
  const added = pick.pick('an added endpoint', isPlain);
  const ip = freePodIP(b);
  added.endpoints.push({ ...added.endpoints[0], ip, nodeName: 'node-003', podName: 'added-pod' });
  const addedKey = `${ip}:${added.endpoints[0].port}`;

  const removed = pick.pick('a removed endpoint', isPlain);
  const removedKey = endpointKey(removed, 0);
  removed.endpoints.splice(0, 1);

  const notReady = pick.pick('an endpoint made not ready', isPlain);
  const notReadyKey = endpointKey(notReady, 0);
  Object.assign(notReady.endpoints[0], { ready: false, serving: false });

  const affinity = pick.pick('a ClientIP Service losing an endpoint', (s) => isPlain({ ...s, sessionAffinity: 'None' }) && s.sessionAffinity === 'ClientIP');
  const affinityKey = endpointKey(affinity, 1);
  Object.assign(affinity.endpoints[1], { ready: false, serving: false });

  const deleted = pick.pick('a deleted Service', isPlain);
  b.services = b.services.filter((s) => s !== deleted);

  return {
    b, deleted, local,
    added: { service: added, endpoint: addedKey },
    removed: { service: removed, endpoint: removedKey },
    notReady: { service: notReady, endpoint: notReadyKey },
    affinity: { service: affinity, endpoint: affinityKey },
  };
}

/** The findings one lagging node (rules from A, manifests B) must have, with what each message must say. */
function expectedOnLaggingNode(e: Edits, node: string): Map<string, RegExp[]> {
  const at = (check: string, severity: string, s: GenService) => `${severity} ${check} ${node} ${key(s)}:${portLabel(s)}`;
  const ep = (k: string) => new RegExp(`endpoint ${k.replace(/\./g, '\\.')} `);
  return new Map<string, RegExp[]>([
    [at('endpoint-drift', 'error', e.added.service), [ep(e.added.endpoint), /is ready in the EndpointSlices but missing from KUBE-SVC-/, /not caught up/]],
    [at('endpoint-drift', 'error', e.removed.service), [ep(e.removed.endpoint), /is not an endpoint of .* in the EndpointSlices/, /still sends traffic to it/]],
    [at('endpoint-drift', 'error', e.notReady.service), [ep(e.notReady.endpoint), /is not ready \(not serving\)/]],
    [at('endpoint-drift', 'error', e.affinity.service), [ep(e.affinity.endpoint), /is not ready \(not serving\)/]],
    [at('affinity-stale', 'warning', e.affinity.service), [new RegExp(`pins clients to endpoint ${e.affinity.endpoint.replace(/\./g, '\\.')} `), /is not ready/]],
    [`warning service-rules ${node} ${key(e.deleted)}:${portLabel(e.deleted)}`, [/^Service .* is not in the manifests, but node .* still has .*KUBE-SVC-\S+.* KUBE-SEP/]],
    [at('endpoint-drift', 'error', e.local), [/external traffic \(KUBE-EXT\) is sent to KUBE-SVC-\S+ \(every endpoint\)/, /externalTrafficPolicy Local and no endpoint on this node: kube-proxy would drop it/]],
  ]);
}

function assertFindings(findings: readonly Finding[], expected: ReadonlyMap<string, readonly RegExp[]>): void {
  const got = notInfo(findings);
  assert.deepEqual(sorted(got.map(summary)), sorted(expected.keys()), 'the audit names every edit and nothing else');
  for (const f of got) {
    for (const re of expected.get(summary(f))!) assert.match(f.message, re, summary(f));
    assert.ok(f.rules.length > 0, `${summary(f)} lists no rule`);
  }
}

test('A vs B on one node: each edit is named once, by the check it concerns, with the rules that show it', () => {
  for (const seed of [14, 22, 25]) {
    const a = cluster(seed, 60);
    const edits = edit(a);
    const findings = runAudit(auditInput([renderNode(a, 'node-001')], edits.b));
    assertFindings(findings, expectedOnLaggingNode(edits, 'node-001'));

    // The rules cited are the node's own: the jump to the endpoint and its DNAT, the orphan's entry.
    const removed = findings.find((f) => f.check === 'endpoint-drift' && f.service === key(edits.removed.service))!;
    assert.ok(removed.rules.some((r) => r.chain.startsWith('KUBE-SVC-') && /-j KUBE-SEP-/.test(r.rule)));
    assert.ok(removed.rules.some((r) => r.chain.startsWith('KUBE-SEP-') && r.rule.includes(`--to-destination ${edits.removed.endpoint}`)));
    const deleted = findings.find((f) => f.check === 'service-rules')!;
    assert.ok(deleted.rules.some((r) => r.chain === 'KUBE-SERVICES' && r.table === 'nat' && r.rule.includes(edits.deleted.clusterIP)));
    for (const ep of edits.deleted.endpoints) assert.ok(deleted.rules.some((r) => r.rule.includes(`--to-destination ${ep.ip}:${ep.port}`)), ep.ip);

    // The NodePort switched to Local still forwards on this node (its rules lag), so it is no black hole;
    // B's own info findings are the only ones left.
    const info = findings.filter((f) => f.severity === 'info');
    assert.ok(info.every((f) => f.check === 'black-holes' && f.service !== key(edits.local)));
  }
});

test('two nodes, one lagging (rules from A) and one current (rules from B): the lagging node is named, and disagrees', () => {
  const a = cluster(14, 60);
  const edits = edit(a);
  const findings = runAudit(auditInput([renderNode(a, 'node-001'), renderNode(edits.b, 'node-002')], edits.b));
  const expected = expectedOnLaggingNode(edits, 'node-001');
  // Under Cluster policies both nodes should split each changed Service the same way.
  for (const { service, endpoint } of [edits.added, edits.removed, edits.notReady, edits.affinity]) {
    const escaped = endpoint.replace(/\./g, '\\.');
    const side = service === edits.added.service ? `only node-002 sends to ${escaped}` : `only node-001 sends to ${escaped}`;
    expected.set(`warning node-disagreement node-001 ${key(service)}:${portLabel(service)}`, [new RegExp(side), /ClusterIP /]);
  }
  assertFindings(findings, expected);
  // The current node agrees with the manifests: nothing about it but explained black holes,
  // among them the NodePort now Local without an endpoint on node-002.
  const current = findings.filter((f) => f.node === 'node-002');
  assert.ok(current.every((f) => f.severity === 'info' && f.check === 'black-holes'));
  const local = current.find((f) => f.service === key(edits.local));
  assert.ok(local, 'the Local NodePort drops on node-002');
  assert.match(local.message, new RegExp(`NodePort 192\\.168\\.0\\.11:${edits.local.ports[0].nodePort} \\(DROP\\)`));
  assert.match(local.message, /externalTrafficPolicy Local and no endpoint on node-002/);
  // A NodePort Service that changed shows the disagreement on its NodePort too.
  const np = [edits.added, edits.removed, edits.notReady].find((x) => x.service.type === 'NodePort');
  if (np) {
    const f = findings.find((x) => x.check === 'node-disagreement' && x.service === key(np.service))!;
    assert.match(f.message, new RegExp(`NodePort 192\\.168\\.0\\.10:${np.service.ports[0].nodePort}`));
  }
});

test('two nodes rendered from the same manifests agree, Local policies included', () => {
  const a = cluster(21, 80);
  const findings = runAudit(auditInput(a.nodes.slice(0, 3).map((n) => renderNode(a, n)), a));
  assert.deepEqual(notInfo(findings).map(summary), []);
});

test('the audit node by node gives exactly the findings of the audit of all nodes at once', () => {
  const a = cluster(14, 60);
  const edits = edit(a);
  const cases = [
    // A lagging node among current ones (disagreements), and three nodes of one state (agreement).
    [renderNode(a, 'node-001'), renderNode(edits.b, 'node-002'), renderNode(edits.b, 'node-003')],
    a.nodes.slice(0, 3).map((n) => renderNode(edits.b, n)),
    [renderNode(edits.b, 'node-002'), renderNode(a, 'node-001'), renderNode(a, 'node-003')],
  ];
  for (const nodes of cases) {
    const input = auditInput(nodes, edits.b);
    const whole = runAudit(input);
    const byNode = new NodeByNodeAudit({ model: input.model, index: input.index });
    for (const n of input.nodes) byNode.add(n);
    for (const name of byNode.disagreeing()) byNode.report(input.nodes.find((n) => n.name === name)!);
    assert.deepEqual(byNode.finish(), whole);
  }
  assert.ok(runAudit(auditInput(cases[0], edits.b)).some((f) => f.check === 'node-disagreement'));
});
