/**
 * Kubernetes descriptions of nftables traces: the Service port from kube-proxy's self-describing
 * chain names (or a no-endpoint element's comment), the frontend from the map the packet was
 * looked up in, the pod behind the endpoint from the manifests, and the masquerade reason from
 * the rule that jumped to mark-for-masquerade.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseNftables } from '../../../src/engine/nftables/index.ts';
import { traceNftables } from '../../../src/engine/nftables/tracer.ts';
import { describeTrace } from '../../../src/engine/kube/describe-any.ts';
import { readClusterModel } from '../../../src/engine/kube/manifests.ts';
import type { PacketSpec } from '../../../src/engine/trace/packet.ts';
import { nftRuleOf, takenElementOf } from '../../../src/engine/trace/step-rule.ts';

const overall = parseNftables(readFileSync(new URL('../../fixtures/nftables-trace/overall/input.nft', import.meta.url), 'utf8'));
const node = { addresses: ['192.168.0.2'] };
const tcp = (source: string, destination: string, port: number): PacketSpec => ({ source, destination, port, protocol: 'tcp' });

/** svc4 (two endpoints, an external IP) and svc5 (a load balancer) of the proxier behind the dump, with pods. */
const manifests = {
  apiVersion: 'v1', kind: 'List',
  items: [
    {
      apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'ns4', name: 'svc4' },
      spec: { type: 'NodePort', clusterIP: '172.30.0.44', externalIPs: ['192.168.99.33'], ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3004 }] },
    },
    {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { namespace: 'ns4', name: 'svc4-a', labels: { 'kubernetes.io/service-name': 'svc4' } },
      addressType: 'IPv4', ports: [{ name: 'p80', port: 80, protocol: 'TCP' }],
      endpoints: [
        { addresses: ['10.180.0.4'], conditions: { ready: true }, nodeName: 'node-b', targetRef: { kind: 'Pod', namespace: 'ns4', name: 'web-4' } },
        { addresses: ['10.180.0.5'], conditions: { ready: true }, nodeName: 'node-c', targetRef: { kind: 'Pod', namespace: 'ns4', name: 'web-5' } },
      ],
    },
    {
      apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'ns5', name: 'svc5' },
      spec: { type: 'LoadBalancer', clusterIP: '172.30.0.45', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3002 }] },
      status: { loadBalancer: { ingress: [{ ip: '5.6.7.8' }] } },
    },
  ],
};
const { model } = readClusterModel([manifests]);

function describe(packet: PacketSpec, withManifests = false) {
  const r = traceNftables(overall, { node, packet });
  return { r, d: describeTrace(r, withManifests ? model : null, null, { nodeAddresses: node.addresses }) };
}

test('a ClusterIP from outside the pod CIDR: Service, frontend and masquerade reason from the rules alone', () => {
  const { d } = describe(tcp('192.168.1.5', '172.30.0.41', 80));
  assert.deepEqual(d.outcomes[0].service, {
    namespace: 'ns1', name: 'svc1', port: { name: 'p80', port: 80, protocol: 'TCP' }, frontend: 'ClusterIP', via: 'chain-hash',
  });
  assert.deepEqual(d.outcomes[0].endpoint, { ip: '10.180.0.1', port: 80 });
  assert.equal(d.outcomes[0].masqueradeReason, 'source outside the cluster CIDR 10.0.0.0/8');
});

test('hairpin, NodePort and node-local origins give their own reasons', () => {
  assert.equal(describe(tcp('10.180.0.1', '172.30.0.41', 80)).d.outcomes[0].masqueradeReason, 'hairpin: the endpoint reaches itself through the Service');
  const nodePort = describe(tcp('203.0.113.200', '192.168.0.2', 3003)).d.outcomes[0];
  assert.equal(nodePort.service?.frontend, 'NodePort');
  assert.equal(nodePort.service?.name, 'svc3');
  assert.equal(nodePort.masqueradeReason, 'external traffic to a Service with externalTrafficPolicy: Cluster');
  assert.equal(describe(tcp('192.168.0.2', '172.30.0.41', 80)).d.outcomes[0].masqueradeReason, 'source outside the cluster CIDR 10.0.0.0/8');
});

test('a Service without endpoints is named by the no-endpoint element’s comment', () => {
  const { r, d } = describe(tcp('10.0.0.2', '172.30.0.46', 80));
  assert.equal(r.outcomes[0].verdict, 'REJECT');
  assert.match(r.outcomes[0].path.find((s) => s.chain === 'service-endpoints-check')!.action, /→ goto reject-chain \(comment "ns6\/svc6:p80"\)$/);
  assert.deepEqual(
    { namespace: d.outcomes[0].service?.namespace, name: d.outcomes[0].service?.name, port: d.outcomes[0].service?.port.name, via: d.outcomes[0].service?.via },
    { namespace: 'ns6', name: 'svc6', port: 'p80', via: 'comment' },
  );
});

test('with manifests: the pods behind the endpoints, the external IP and the load balancer named', () => {
  const ext = describe(tcp('203.0.113.200', '192.168.99.33', 80), true).d.outcomes;
  assert.deepEqual(ext.map((o) => [o.endpoint?.pod?.name, o.endpoint?.node, o.endpoint?.listed, o.service?.frontend]), [
    ['web-4', 'node-b', true, 'ExternalIP'],
    ['web-5', 'node-c', true, 'ExternalIP'],
  ]);
  const lb = describe(tcp('203.0.113.5', '5.6.7.8', 80), true).d.outcomes[0];
  assert.equal(lb.service?.frontend, 'LoadBalancer');
  assert.equal(lb.endpoint?.listed, false, 'svc5 has no EndpointSlice in these manifests');
  assert.ok(lb.notes.some((n) => /10\.180\.0\.3:80 is not an endpoint of ns5\/svc5/.test(n)), lb.notes.join('\n'));
});

test('nftables steps carry their parsed rule and the verdict-map element they took; descriptions read those, not text', () => {
  const { r, d } = describe(tcp('10.0.0.2', '172.30.0.46', 80));
  const check = r.outcomes[0].path.find((s) => s.chain === 'service-endpoints-check')!;
  assert.deepEqual(takenElementOf(check), { verdict: 'goto', chain: 'reject-chain', comment: 'ns6/svc6:p80' });
  assert.equal(nftRuleOf(check)?.statements.at(-1)?.kind, 'vmap');
  for (const s of r.outcomes[0].path) {
    assert.equal(nftRuleOf(s) === undefined, s.index === 0, `${s.chain} ${s.index}: a rule's step carries it, a policy step does not`);
    assert.deepEqual(Object.keys(s), Object.keys(JSON.parse(JSON.stringify(s)) as object));
  }
  assert.equal(d.outcomes[0].service?.via, 'comment');
  // Through JSON the steps lose what they carry, and the comment is no longer read from the action text.
  const copy = JSON.parse(JSON.stringify(r)) as typeof r;
  assert.equal(describeTrace(copy, null, null).outcomes[0].service, undefined);
});
