/** The walk-through svcpath exists for (test/fixtures/k3s-blog/README.md), from the fragments as pasted. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endpoints, fixture, traceText } from '../helpers.ts';

const NODE = ['10.32.11.62'];
const clusterip = fixture('k3s-blog', 'clusterip.iptables-S.txt');
const nodeport = fixture('k3s-blog', 'nodeport.iptables-S.txt');

test('Q1: 10.43.62.130:80 reaches four pods, a quarter each, and the answer says what was inferred', () => {
  const r = traceText(clusterip, { source: '10.42.0.7', destination: '10.43.62.130', port: 80 }, NODE);
  assert.deepEqual(endpoints(r), ['10.42.0.43:8080', '10.42.0.44:8080', '10.42.1.41:8080', '10.42.1.42:8080']);
  for (const o of r.outcomes) assert.ok(Math.abs(o.probability - 0.25) < 1e-9);
  // 0.33333333349 is 715827883/2^31: the middle shares are off 1/4 by less than 1e-9, and said so.
  assert.equal(r.outcomes[0].exactProbability, '1/4');
  assert.notEqual(r.outcomes[1].exactProbability, '1/4');
  const uneven = r.warnings.find((w) => w.code === 'UNEVEN_SPLIT');
  assert.ok(uneven, 'uneven split reported');
  assert.ok(Math.abs(r.outcomes[1].probability - 0.25) < 1e-9 && Math.abs(r.outcomes[1].probability - 0.25) > 0);
  // Three endpoints come from rule comments; the fourth chain was in the paste.
  const inferred = r.outcomes.filter((o) => o.path.some((s) => s.action === 'dnat' && s.assumed));
  assert.deepEqual(inferred.map((o) => o.destination.ip), ['10.42.0.43', '10.42.0.44', '10.42.1.41']);
  const last = r.outcomes[3].path.find((s) => s.action === 'dnat')!;
  assert.equal(last.assumed, undefined);
  assert.equal(last.chain, 'KUBE-SEP-KYPXHCLNNXAPFHUW');
  assert.equal(last.line, 10);
  assert.ok(r.assumptions.some((a) => /KUBE-SEP-CLPYGNZNNY3PRNQC is not shown/.test(a)));
});

test('Q2: client IP kept from a pod, masqueraded from the node, and the masquerade depends on rules not shown', () => {
  const fromPod = traceText(clusterip, { source: '10.42.0.7', destination: '10.43.62.130', port: 80 }, NODE);
  assert.ok(fromPod.outcomes.every((o) => !o.masquerade));
  const fromNode = traceText(clusterip, { source: '10.32.11.62', destination: '10.43.62.130', port: 80 }, NODE);
  assert.equal(fromNode.entry, 'OUTPUT');
  assert.ok(fromNode.outcomes.every((o) => o.masquerade));
  const markStep = fromNode.outcomes[0].path.find((s) => s.chain === 'KUBE-SVC-GBTMB5ZTD56ECL5F' && s.index === 1);
  assert.ok(markStep, 'the ! -s 10.42.0.0/16 rule marks the packet');
  assert.match(fromNode.outcomes[0].notes.join('\n'), /masquerade depends on rules the dump does not show/);
  assert.ok(fromNode.assumptions.some((a) => /KUBE-POSTROUTING/.test(a)));
});

test('Q3: NodePort 30080 goes KUBE-NODEPORTS → KUBE-EXT → KUBE-SVC → four pods, masqueraded', () => {
  const r = traceText(nodeport, { source: '198.51.100.20', destination: '10.32.11.62', port: 30080 }, NODE);
  assert.deepEqual(endpoints(r), ['10.42.0.69:8080', '10.42.0.70:8080', '10.42.1.65:8080', '10.42.1.66:8080']);
  for (const o of r.outcomes) {
    assert.ok(Math.abs(o.probability - 0.25) < 1e-9);
    assert.equal(o.masquerade, true);
    const chains = o.path.map((s) => s.chain);
    const at = (c: string) => chains.findIndex((x) => x.startsWith(c));
    assert.ok(at('KUBE-NODEPORTS') < at('KUBE-EXT-') && at('KUBE-EXT-') < at('KUBE-SVC-') && at('KUBE-SVC-') < at('KUBE-SEP-'));
  }
});
