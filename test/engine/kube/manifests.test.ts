/**
 * readClusterModel: every manifests.json of the conformance corpus and the k3s example, the same
 * objects as YAML documents and raw API lists, kube-proxy's reading of endpoint conditions, and
 * errors that name the document, the object and the field.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { EngineError } from '../../../src/engine/errors.ts';
import { readClusterModel } from '../../../src/engine/kube/manifests.ts';
import { K3S_EXAMPLE, kubeProxyCases, readJson } from './fixtures.ts';

function yamlDocuments(text: string): unknown[] {
  return parseAllDocuments(text).map((d) => d.toJS());
}

test('every conformance manifests.json reads: one Service each, endpoints by port name, kube-proxy defaults', () => {
  let cases = 0;
  let endpoints = 0;
  for (const c of kubeProxyCases()) {
    if (c.manifests === null) continue;
    cases++;
    const { model, notes } = readClusterModel([c.manifests]);
    assert.deepEqual(notes, [], c.folder);
    assert.deepEqual([...model.services.keys()], ['ns1/svc1'], c.folder);
    const raw = (c.manifests as { items: { kind: string; endpoints?: unknown[] }[] }).items;
    const rawEndpoints = raw.filter((i) => i.kind === 'EndpointSlice').reduce((n, i) => n + (i.endpoints?.length ?? 0), 0);
    assert.equal(model.endpoints.get('ns1/svc1')?.length ?? 0, rawEndpoints, c.folder);
    endpoints += rawEndpoints;
    const svc = model.services.get('ns1/svc1')!;
    for (const p of svc.ports) for (const e of model.endpointsOf(svc.key, p)) assert.ok(e.port > 0, c.folder);
  }
  assert.equal(cases, 28);
  assert.equal(endpoints, 66);
});

test('load-balancer: source ranges trimmed, ingress IPs, nodePort, defaults, frontend lookups', () => {
  const c = kubeProxyCases().find((x) => x.folder === 'load-balancer')!;
  const { model } = readClusterModel([c.manifests]);
  const s = model.services.get('ns1/svc1')!;
  assert.equal(s.type, 'LoadBalancer');
  assert.deepEqual(s.clusterIPs, ['172.30.0.41']);
  assert.deepEqual(s.loadBalancerSourceRanges, ['192.168.0.0/24', '203.0.113.0/25']);
  assert.deepEqual(s.loadBalancerIPs, ['1.2.3.4', '5.6.7.8']);
  assert.deepEqual(s.ports, [{ name: 'p80', port: 80, protocol: 'TCP', targetPort: null, nodePort: 3001 }]);
  assert.equal(s.externalTrafficPolicy, 'Cluster');
  assert.equal(s.internalTrafficPolicy, 'Cluster');
  assert.equal(s.sessionAffinity, 'None');
  assert.equal(s.sessionAffinityTimeoutSeconds, null);
  const [ep] = model.endpoints.get('ns1/svc1')!;
  // No conditions in the slice: kube-proxy reads the endpoint as ready and serving, not terminating.
  assert.deepEqual({ ready: ep.ready, serving: ep.serving, terminating: ep.terminating }, { ready: true, serving: true, terminating: false });
  assert.equal(model.serviceByFrontend('172.30.0.41', 80, 'tcp')?.frontend, 'ClusterIP');
  assert.equal(model.serviceByFrontend('5.6.7.8', 80, 'TCP')?.frontend, 'LoadBalancer');
  assert.equal(model.serviceByFrontend('192.168.0.2', 3001, 'tcp'), null, 'no Node objects: not a node address');
  assert.equal(model.serviceByFrontend('192.168.0.2', 3001, 'tcp', ['192.168.0.2'])?.frontend, 'NodePort');
  assert.equal(model.serviceByFrontend('172.30.0.41', 80, 'udp'), null);
  assert.equal(model.serviceByFrontend('172.30.0.41', 81, 'tcp'), null);
});

test('terminating endpoints: conditions as written, serving defaulting to ready', () => {
  const c = kubeProxyCases().find((x) => x.folder.endsWith('traffic-policy-local/feature-gate-proxy-terminating-endpoints-enabled-ready-endpoints-exist'))!;
  const { model } = readClusterModel([c.manifests]);
  const s = model.services.get('ns1/svc1')!;
  assert.equal(s.externalTrafficPolicy, 'Local');
  assert.equal(s.sessionAffinity, 'ClientIP');
  assert.equal(s.sessionAffinityTimeoutSeconds, 10800);
  assert.equal(s.healthCheckNodePort, 30000);
  assert.deepEqual(s.selector, { foo: 'bar' });
  const eps = model.endpoints.get('ns1/svc1')!;
  assert.deepEqual(
    eps.map((e) => [e.ip, e.ready, e.serving, e.terminating, e.nodeName]),
    [
      ['10.0.1.1', true, true, false, 'test-hostname'],
      ['10.0.1.2', true, true, false, 'test-hostname'],
      ['10.0.1.3', false, true, true, 'test-hostname'],
      ['10.0.1.4', false, false, true, 'test-hostname'],
      ['10.0.1.5', true, true, false, 'host-1'],
    ],
  );
  const port = s.ports[0];
  assert.equal(port.name, '');
  assert.deepEqual(model.endpointsOf(s.key, port).map((e) => `${e.ip}:${e.port}`), ['10.0.1.1:80', '10.0.1.2:80', '10.0.1.3:80', '10.0.1.4:80', '10.0.1.5:80']);
});

test('examples/k3s/manifests.json: pods, nodes, services, endpoints and the lookups', () => {
  const { model, notes } = readClusterModel([readJson(join(K3S_EXAMPLE, 'manifests.json'))]);
  assert.deepEqual(notes, []);
  assert.deepEqual([...model.services.keys()].sort(), ['default/kubernetes', 'default/service-test', 'default/service-test-nodeport']);
  assert.equal(model.pods.size, 4);
  assert.equal(model.nodes.size, 2);
  const pod = model.podByIP('10.42.1.42')!;
  assert.equal(pod.name, 'service-test-cd79b78bd-bkr52');
  assert.equal(pod.nodeName, 'ip-10-32-7-224.ap-northeast-2.compute.internal');
  assert.equal(pod.ready, true);
  assert.equal(pod.phase, 'Running');
  assert.deepEqual(pod.labels, { app: 'service-test' });
  assert.equal(model.podByIP('10.42.9.9'), null);
  assert.equal(model.nodeByAddress('10.32.11.62')?.name, 'ip-10-32-11-62.ap-northeast-2.compute.internal');
  assert.deepEqual(model.nodeByAddress('10.32.7.224')?.ips, ['10.32.7.224']);
  assert.equal(model.nodeByAddress('10.42.1.42'), null);
  const np = model.serviceByFrontend('10.32.7.224', 30080, 'tcp')!;
  assert.equal(np.service.key, 'default/service-test-nodeport');
  assert.equal(np.frontend, 'NodePort');
  assert.equal(model.serviceByFrontend('10.43.62.130', 80, 'tcp')?.service.key, 'default/service-test');
  const eps = model.endpoints.get('default/service-test')!;
  assert.equal(eps.length, 4);
  assert.deepEqual(eps.find((e) => e.ip === '10.42.1.42')?.targetRef, { kind: 'Pod', namespace: 'default', name: 'service-test-cd79b78bd-bkr52' });
  assert.equal(model.services.get('default/kubernetes')!.ports[0].targetPort, 6443);
});

const YAML = `
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, "fd00::a"]
  externalIPs: [198.51.100.7]
  externalTrafficPolicy: Local
  internalTrafficPolicy: Local
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http, nodePort: 30080}
  - {name: dns, port: 53, protocol: UDP, targetPort: "5353"}
status:
  loadBalancer:
    ingress: [{hostname: lb.example.com}]
---
# an empty document follows
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: shop}
subsets:
- addresses:
  - ip: 10.1.0.5
    nodeName: n1
    targetRef: {kind: Pod, name: web-a, namespace: shop}
  notReadyAddresses:
  - ip: 10.1.0.6
  ports:
  - {name: http, port: 8080}
  - {name: dns, port: 5353, protocol: UDP}
---
apiVersion: v1
kind: Endpoints
metadata: {name: legacy, namespace: shop}
subsets:
- addresses: [{ip: 10.1.0.9}]
  ports: [{port: 9000}]
---
apiVersion: discovery.k8s.io/v1beta1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
- addresses: [10.1.0.5]
  conditions: {ready: true}
  topology: {kubernetes.io/hostname: n1, topology.kubernetes.io/zone: z1}
  targetRef: {kind: Pod, name: web-a}
- addresses: [10.1.0.7]
  conditions: {ready: false, terminating: true}
ports:
- {name: http, port: 8080, protocol: TCP}
- {name: dns, port: 5353, protocol: UDP}
---
apiVersion: v1
kind: PodList
items:
- metadata: {name: web-a, namespace: shop, labels: {app: web}}
  spec: {nodeName: n1}
  status:
    phase: Running
    podIP: 10.1.0.5
    conditions: [{type: Ready, status: "True"}]
- metadata: {name: web-b, namespace: shop, deletionTimestamp: "2024-01-01T00:00:00Z"}
  spec: {nodeName: n2}
  status: {phase: Running, podIPs: [{ip: 10.1.0.7}], conditions: [{type: Ready, status: "False"}]}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: n1}
  spec: {podCIDR: 10.1.0.0/24}
  status:
    addresses:
    - {type: InternalIP, address: 192.0.2.11}
    - {type: ExternalIP, address: 203.0.113.11}
    - {type: Hostname, address: n1}
- apiVersion: v1
  kind: Namespace
  metadata: {name: shop, labels: {team: a}}
  status: {phase: Active}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: shop}}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: b, namespace: shop}}
- {apiVersion: apps/v1, kind: Deployment, metadata: {name: web, namespace: shop}}
`;

test('YAML documents: Endpoints converted, v1beta1 topology, <Kind>List items without kind, other kinds kept', () => {
  const { model, notes } = readClusterModel(yamlDocuments(YAML));
  const s = model.services.get('shop/web')!;
  assert.deepEqual(s.clusterIPs, ['10.96.0.10', 'fd00::a']);
  assert.deepEqual(s.externalIPs, ['198.51.100.7']);
  assert.deepEqual(s.loadBalancerIPs, [], 'hostname-only ingress has no IP');
  assert.equal(s.externalTrafficPolicy, 'Local');
  assert.equal(s.internalTrafficPolicy, 'Local');
  assert.equal(s.sessionAffinityTimeoutSeconds, 60);
  assert.deepEqual(s.ports.map((p) => [p.name, p.port, p.protocol, p.targetPort, p.nodePort]), [
    ['http', 80, 'TCP', 'http', 30080],
    ['dns', 53, 'UDP', 5353, undefined],
  ]);
  // The Service has an EndpointSlice, so its Endpoints object is not used; "legacy" has only Endpoints.
  const eps = model.endpoints.get('shop/web')!;
  assert.deepEqual(eps.map((e) => [e.ip, e.ready, e.serving, e.terminating, e.nodeName, e.zone, e.targetRef?.name, e.from]), [
    ['10.1.0.5', true, true, false, 'n1', 'z1', 'web-a', 'EndpointSlice shop/web-abc'],
    ['10.1.0.7', false, false, true, undefined, undefined, undefined, 'EndpointSlice shop/web-abc'],
  ]);
  assert.deepEqual(eps[0].targetRef, { kind: 'Pod', namespace: 'shop', name: 'web-a' });
  assert.deepEqual(model.endpointsOf('shop/web', s.ports[1]).map((e) => `${e.ip}:${e.port}/${e.protocol}`), ['10.1.0.5:5353/UDP', '10.1.0.7:5353/UDP']);
  const legacy = model.endpoints.get('shop/legacy')!;
  assert.deepEqual(legacy.map((e) => [e.ip, e.ready, e.ports[''].port, e.from]), [['10.1.0.9', true, 9000, 'Endpoints shop/legacy']]);
  assert.equal(model.pods.get('shop/web-a')?.ready, true);
  assert.equal(model.pods.get('shop/web-b')?.terminating, true);
  assert.equal(model.podByIP('10.1.0.7')?.name, 'web-b');
  assert.deepEqual(model.nodes.get('n1')?.ips, ['192.0.2.11', '203.0.113.11']);
  assert.deepEqual(model.nodes.get('n1')?.podCIDRs, ['10.1.0.0/24']);
  assert.equal(model.nodeByAddress('203.0.113.11')?.name, 'n1');
  assert.deepEqual(model.namespaces.get('shop'), { name: 'shop', phase: 'Active', labels: { team: 'a' } });
  assert.equal(model.others.length, 3);
  assert.deepEqual(model.serviceByFrontend('203.0.113.11', 30080, 'tcp')?.frontend, 'NodePort');
  assert.deepEqual(model.serviceByFrontend('198.51.100.7', 53, 'udp')?.port.name, 'dns');
  assert.deepEqual(notes, [
    'Endpoints shop/web not used: the Service has EndpointSlices, which kube-proxy reads instead',
    'endpoints for Service shop/legacy, which is not in the manifests',
    'kept, not used: 2 ConfigMap, 1 Deployment',
  ]);
});

test('a JSON array of objects and several documents read like one List', () => {
  const c = kubeProxyCases().find((x) => x.folder === 'load-balancer')!;
  const items = (c.manifests as { items: unknown[] }).items;
  const asList = readClusterModel([c.manifests]).model;
  const asArray = readClusterModel([items]).model;
  const asDocuments = readClusterModel(items).model;
  for (const m of [asArray, asDocuments]) {
    assert.deepEqual([...m.services.keys()], [...asList.services.keys()]);
    assert.deepEqual(m.endpoints.get('ns1/svc1')?.map((e) => e.ip), asList.endpoints.get('ns1/svc1')?.map((e) => e.ip));
  }
  // An object without a namespace reads as "default", and the note says so.
  const { model, notes } = readClusterModel([{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' }, spec: { ports: [{ port: 1 }] } }]);
  assert.ok(model.services.has('default/x'));
  assert.deepEqual(notes, ['1 object without metadata.namespace read as namespace "default"']);
});

function fails(documents: unknown[], message: string | RegExp): void {
  assert.throws(() => readClusterModel(documents), (e: unknown) => {
    assert.ok(e instanceof EngineError);
    assert.equal(e.code, 'MANIFEST_SYNTAX');
    if (typeof message === 'string') assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

test('errors name the document, the object and the field path', () => {
  const svc = (spec: unknown) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec });
  fails([null, { kind: 'List', items: [] }, svc({ ports: [{ port: '80' }] })], /^document 3 \(Service default\/web\): spec\.ports\[0\]\.port must be an integer from 1 to 65535, not "80"$/);
  fails([svc({ ports: [{ port: 80, protocol: 'tcp' }] })], 'document 1 (Service default/web): spec.ports[0].protocol must be one of TCP, UDP, SCTP, not "tcp"');
  fails([svc({ ports: [{ name: 'a' }] })], 'document 1 (Service default/web): spec.ports[0].port is required');
  fails([svc({ clusterIP: '10.0.0.300' })], 'document 1 (Service default/web): spec.clusterIP must be an IP address, not "10.0.0.300"');
  fails([svc({ externalTrafficPolicy: 'Global' })], 'document 1 (Service default/web): spec.externalTrafficPolicy must be one of Cluster, Local, not "Global"');
  fails([svc({ ports: {} })], 'document 1 (Service default/web): spec.ports must be a list, not an object');
  fails([svc({ loadBalancerSourceRanges: ['10.0.0.0/33'] })], /spec\.loadBalancerSourceRanges\[0\] must be an IP address or CIDR/);
  fails([{ kind: 'List', items: [{ kind: 'Pod', metadata: { name: 'p', namespace: 'n' } }, svc({ selector: { app: 1 } })] }],
    'document 1 items[1] (Service default/web): spec.selector.app must be a string, not 1');
  fails([{ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's', namespace: 'n' }, addressType: 'IPv4', endpoints: [{ addresses: [] }] }],
    'document 1 (EndpointSlice n/s): endpoints[0].addresses must list at least one address');
  fails([{ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's', namespace: 'n' }, addressType: 'IPv4', endpoints: [{ addresses: ['1.2.3.4'], conditions: { ready: 'yes' } }] }],
    'document 1 (EndpointSlice n/s): endpoints[0].conditions.ready must be true or false, not "yes"');
  fails([{ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's', namespace: 'n' }, endpoints: [] }],
    'document 1 (EndpointSlice n/s): addressType is required');
  fails([{ apiVersion: 'discovery.k8s.io/v2', kind: 'EndpointSlice', metadata: { name: 's', namespace: 'n' }, addressType: 'IPv4' }],
    /apiVersion must be discovery\.k8s\.io\/v1 or discovery\.k8s\.io\/v1beta1, not "discovery\.k8s\.io\/v2"/);
  fails([{ apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'e', namespace: 'n' }, subsets: [{ addresses: [{ ip: 'x' }] }] }],
    'document 1 (Endpoints n/e): subsets[0].addresses[0].ip must be an IP address, not "x"');
  fails([{ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'n' }, status: { conditions: [{ type: 'Ready', status: true }] } }],
    'document 1 (Pod n/p): status.conditions[0].status must be a string, not true');
  fails([{ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, status: { addresses: [{ type: 'InternalIP' }] } }],
    'document 1 (Node n1): status.addresses[0].address is required');
  fails([{ apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'n' } }], 'document 1 (Service): metadata.name is required');
  fails([{ metadata: { name: 'x' } }], 'document 1: kind is required');
  fails([{ kind: 'Service', metadata: 'web' }], 'document 1: metadata must be an object, not "web"');
  fails(['apiVersion: v1'], 'document 1: must be a Kubernetes object or a List, not "apiVersion: v1"');
  fails([[{ kind: 'Service', apiVersion: 'apps/v1', metadata: { name: 'a', namespace: 'b' } }]], 'document 1 [0] (Service b/a): apiVersion must be v1 for a Service, not "apps/v1"');
  // YAML mistakes surface the same way: a port written as a string.
  fails(yamlDocuments('kind: Service\napiVersion: v1\nmetadata: {name: w, namespace: d}\n---\nkind: Service\napiVersion: v1\nmetadata: {name: x, namespace: d}\nspec:\n  ports:\n  - port: "http"\n'),
    'document 2 (Service d/x): spec.ports[0].port must be an integer from 1 to 65535, not "http"');
});
