/**
 * Audits of nftables nodes: the checks that trace (black-holes, node-disagreement) read them as
 * they read iptables nodes; the checks that read kube-proxy's iptables chains skip them and say so
 * once, naming the nodes. The same cluster audits alike in both modes, and a node whose nftables
 * rules lag behind the others is found.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readRules, runAudit } from '../../../src/engine/index.ts';
import { NodeByNodeAudit } from '../../../src/engine/checks/index.ts';
import type { AuditNode, Finding } from '../../../src/engine/checks/index.ts';
import { ChainNameIndex, readClusterModel } from '../../../src/engine/kube/index.ts';
import type { GenCluster, GenService } from '../../support/kube-gen.ts';
import { fleetNodes, generateCluster, onNode, renderIptablesSave, renderManifests } from '../../support/kube-gen.ts';
import { renderNftables } from '../../support/kube-gen-nft.ts';

const c = generateCluster({ seed: 3, services: 50, nodes: 3, nodePortShare: 0.2, loadBalancerShare: 0.1 });
const model = readClusterModel([JSON.parse(renderManifests(c))]).model;
const index = ChainNameIndex.fromModel(model);
const fleet = fleetNodes(c, 3);

function nodes(render: (cluster: GenCluster, i: number) => string): AuditNode[] {
  return fleet.map((n, i) => ({ name: n.name, addresses: n.addresses, ruleset: readRules(render(c, i)) }));
}

const iptables = (cluster: GenCluster, i: number) => renderIptablesSave(onNode(cluster, fleet[i]));
const nftables = (cluster: GenCluster, i: number) => renderNftables(cluster, fleet[i]);

/** What the traced checks found, without the client address (chosen per node family alike). */
function traced(findings: readonly Finding[]): string[] {
  return findings.filter((f) => f.check === 'black-holes' || f.check === 'node-disagreement')
    .map((f) => `${f.check} ${f.severity} ${f.node} ${f.service}:${f.port} ${f.message}`).sort();
}

describe('audits of nftables nodes', () => {
  it('the same cluster in nftables mode: the traced checks find what they find in iptables mode', () => {
    const ipt = runAudit({ model, index, nodes: nodes(iptables) });
    const nft = runAudit({ model, index, nodes: nodes(nftables) });
    assert.ok(traced(ipt).length > 0, 'the cluster has expected black holes (externalTrafficPolicy Local)');
    assert.deepEqual(traced(nft), traced(ipt));
    assert.deepEqual(nft.filter((f) => f.severity !== 'info'), []);
  });

  it('the checks that read iptables chains are skipped on nftables nodes, once each, with the reason', () => {
    const mixed = runAudit({ model, index, nodes: nodes((cluster, i) => (i === 1 ? nftables(cluster, i) : iptables(cluster, i))) });
    const skipped = mixed.filter((f) => /^not checked on the nftables node/.test(f.message));
    assert.deepEqual(skipped.map((f) => f.check).sort(), ['affinity-stale', 'endpoint-drift', 'service-rules', 'uneven-split']);
    for (const f of skipped) {
      assert.equal(f.severity, 'info');
      assert.equal(f.node, undefined);
      assert.match(f.message, /nftables node node-002: this check reads kube-proxy's iptables-mode chains/);
    }
    // An iptables node and an nftables node of one cluster send every frontend to the same pods.
    assert.deepEqual(mixed.filter((f) => f.check === 'node-disagreement'), []);
    assert.deepEqual(mixed.filter((f) => f.severity !== 'info'), []);
  });

  it('an nftables node whose rules lag behind (an endpoint gone only there) disagrees with the others', () => {
    const b = structuredClone(c);
    const svc = b.services.find((s: GenService) => s.type === 'ClusterIP' && s.clusterIP !== 'None' && s.ports.length === 1
      && s.endpoints.length >= 2 && s.endpoints.every((e) => e.ready && !e.terminating) && s.sessionAffinity === 'None'
      && s.internalTrafficPolicy === 'Cluster')!;
    const gone = svc.endpoints.pop()!;
    const findings = runAudit({ model, index, nodes: nodes((cluster, i) => nftables(i === 1 ? b : cluster, i)) });
    const errors = findings.filter((f) => f.severity !== 'info');
    assert.equal(errors.length, 1, JSON.stringify(errors));
    const [f] = errors;
    assert.deepEqual([f.check, f.node, f.service], ['node-disagreement', 'node-002', `${svc.namespace}/${svc.name}`]);
    assert.match(f.message, new RegExp(`only node-001, node-003 send to ${gone.ip.replaceAll('.', '\\.')}:${gone.port}`));
    assert.ok(f.rules.length > 0 && f.rules.every((r) => r.table === 'ip kube-proxy'), JSON.stringify(f.rules));

    // Node by node, the same findings.
    const run = new NodeByNodeAudit({ model, index });
    const all = nodes((cluster, i) => nftables(i === 1 ? b : cluster, i));
    for (const n of all) run.add(n);
    for (const name of run.disagreeing()) run.report(all.find((n) => n.name === name)!);
    assert.deepEqual(run.finish(), findings);
  });
});
