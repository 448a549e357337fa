import assert from 'node:assert/strict';
import { test } from 'node:test';
import { completeKubeProxy, forgetSharedParses, parseDump, runAudit, sharedBodyCount, sharedRuleCount, trace } from '../../src/engine/index.ts';
import { expectedPorts } from '../../src/engine/checks/expected.ts';
import { ChainNameIndex } from '../../src/engine/kube/chain-names.ts';
import { readClusterModel } from '../../src/engine/kube/manifests.ts';
import { readManifestDocuments } from '../../src/services/manifests.ts';
import { generateCluster, renderIptablesSave, renderManifests } from '../support/kube-gen.ts';

const cluster = generateCluster({ seed: 11, services: 30 });
const text = renderIptablesSave({ ...cluster, nodeName: cluster.nodes[0] });
const svc = cluster.services.find((s) => s.clusterIP !== 'None' && s.endpoints.length > 1)!;
const packet = { source: '10.244.0.5', destination: svc.clusterIP, port: svc.ports[0].port, protocol: 'tcp' as const };

test('rules the dumps have in common are compiled once, and each trace still points at its own dump', () => {
  const a = completeKubeProxy(parseDump(text));
  // The same rules two lines further down: as another node or version with a longer header.
  const b = completeKubeProxy(parseDump(`# another node\n# with two more lines\n${text}`));
  const first = trace(a, { node: { addresses: ['192.168.0.10'] }, packet });
  const shared = sharedRuleCount();
  assert.ok(shared > 0);
  const second = trace(b, { node: { addresses: ['192.168.0.10'] }, packet });
  assert.equal(sharedRuleCount(), shared, 'no rule compiled again');
  assert.equal(second.outcomes.length, first.outcomes.length);
  assert.ok(first.outcomes.length > 1);
  for (const [i, o] of first.outcomes.entries()) {
    const p = second.outcomes[i];
    assert.equal(p.exactProbability, o.exactProbability);
    assert.deepEqual(p.destination, o.destination);
    assert.deepEqual(p.path.map((s) => [s.chain, s.index, s.rule]), o.path.map((s) => [s.chain, s.index, s.rule]));
    for (const [k, s] of o.path.entries()) if (s.line > 0) assert.equal(p.path[k].line, s.line + 2, `${s.chain} #${s.index}`);
  }
});

test('a jump compiles by whether the dump has the chain it names', () => {
  const head = '*nat\n:PREROUTING ACCEPT [0:0]\n';
  const jump = '-A PREROUTING -d 10.0.0.1/32 -j KUBE-EXTRA\n';
  const withChain = parseDump(`${head}:KUBE-EXTRA - [0:0]\n${jump}-A KUBE-EXTRA -p tcp -j DNAT --to-destination 10.1.0.1:80\nCOMMIT\n`);
  const without = parseDump(`${head}${jump}COMMIT\n`);
  const p = { source: '198.18.0.1', destination: '10.0.0.1', port: 80, protocol: 'tcp' as const };
  const r1 = trace(withChain, { node: { addresses: ['192.168.0.10'] }, packet: p });
  const r2 = trace(without, { node: { addresses: ['192.168.0.10'] }, packet: p });
  assert.equal(r1.outcomes[0].verdict, 'DNAT');
  assert.equal(r2.outcomes[0].verdict, 'ACCEPT');
  assert.ok(r2.warnings.some((w) => w.code === 'MISSING_CHAIN'));
});

test('forgetSharedParses lets go of every shared parse, and traces and checks answer as before afterwards', () => {
  const a = completeKubeProxy(parseDump(text));
  const node = { name: cluster.nodes[0], addresses: ['192.168.0.10'], ruleset: a };
  const model = readClusterModel(readManifestDocuments(renderManifests(cluster))).model;
  const index = ChainNameIndex.fromModel(model);
  const before = trace(a, { node, packet });
  const findings = runAudit({ nodes: [node], model, index });
  const ports = expectedPorts(model, node.name, 'ipv4');
  assert.ok(sharedRuleCount() > 0 && sharedBodyCount() > 0);
  forgetSharedParses();
  assert.equal(sharedRuleCount(), 0);
  assert.equal(sharedBodyCount(), 0);
  // Read again from the model, not kept from before.
  assert.notEqual(expectedPorts(model, node.name, 'ipv4'), ports);
  const b = completeKubeProxy(parseDump(text));
  assert.deepEqual(trace(b, { node, packet }), before);
  assert.deepEqual(runAudit({ nodes: [{ ...node, ruleset: b }], model, index }), findings);
});
