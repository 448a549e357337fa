/**
 * describeTrace on kube-proxy's own packet flows: every DNAT outcome names the Service port, the
 * frontend and the endpoint (and its pod where the manifests have one), from the rule comments,
 * from the chain-name hashes when the comments are gone, and from the manifests alone; every
 * masqueraded outcome says why in Kubernetes terms.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { completeKubeProxy, parseDump, trace } from '../../../src/engine/index.ts';
import type { TraceResult } from '../../../src/engine/index.ts';
import { EngineError } from '../../../src/engine/errors.ts';
import { ChainNameIndex, kubeProxyChainName } from '../../../src/engine/kube/chain-names.ts';
import { describeTrace, parseServicePortName, resolveServiceFrontends } from '../../../src/engine/kube/describe.ts';
import type { DescribedOutcome } from '../../../src/engine/kube/describe.ts';
import { readClusterModel } from '../../../src/engine/kube/manifests.ts';
import type { KubeProxyCase } from './fixtures.ts';
import { K3S_EXAMPLE, kubeProxyCases, nodeAddresses, readJson } from './fixtures.ts';

/** The Kubernetes reasons describeTrace gives for kube-proxy's own masquerade rules. */
const KNOWN_REASONS = [
  /^source outside the cluster CIDR \d+\.\d+\.\d+\.\d+\/\d+$/,
  /^external traffic to a Service with externalTrafficPolicy: Cluster$/,
  /^traffic from the node itself \(LOCAL origin\)$/,
  /^hairpin: the endpoint reaches itself through the Service$/,
];

interface RawItem {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: {
    clusterIP?: string; externalIPs?: string[]; healthCheckNodePort?: number;
    ports?: { name?: string; port: number; nodePort?: number }[];
  };
  status?: { loadBalancer?: { ingress?: { ip: string }[] } };
  endpoints?: { addresses: string[]; nodeName?: string }[];
  ports?: { name?: string; port: number }[];
}

/** What the raw manifests (read here without the model) say the flow's frontend is. */
function expectedFrontend(c: KubeProxyCase, destination: string, port: number): string | null {
  const svc = (c.manifests as { items: RawItem[] }).items.find((i) => i.kind === 'Service')!;
  const p = svc.spec!.ports![0];
  if (destination === svc.spec!.clusterIP && port === p.port) return 'ClusterIP';
  if (svc.spec!.externalIPs?.includes(destination) && port === p.port) return 'ExternalIP';
  if (svc.status?.loadBalancer?.ingress?.some((i) => i.ip === destination) && port === p.port) return 'LoadBalancer';
  const local = c.flows.localIPs.includes(destination);
  if (local && port === svc.spec!.healthCheckNodePort) return 'HealthCheckNodePort';
  if (local && port === p.nodePort) return 'NodePort';
  return null;
}

/** The raw EndpointSlice entry for ip:port of the Service port named `portName`, if any. */
function rawEndpoint(c: KubeProxyCase, ip: string, port: number, portName: string): { nodeName?: string } | null {
  for (const i of (c.manifests as { items: RawItem[] }).items) {
    if (i.kind !== 'EndpointSlice' || i.metadata.labels?.['kubernetes.io/service-name'] !== 'svc1') continue;
    if (!i.ports?.some((p) => (p.name ?? '') === portName && p.port === port)) continue;
    const e = i.endpoints?.find((x) => x.addresses[0] === ip);
    if (e) return e;
  }
  return null;
}

function traceFlows(c: KubeProxyCase, dump = c.dump): { flow: KubeProxyCase['flows']['flows'][number]; result: TraceResult }[] {
  const rs = completeKubeProxy(parseDump(dump));
  const addresses = nodeAddresses(c);
  return c.flows.flows.map((flow) => ({
    flow,
    result: trace(rs, { node: { addresses }, packet: { source: flow.source, destination: flow.destination, port: flow.port, protocol: flow.protocol } }),
  }));
}

test('conformance flows: every DNAT outcome names ns1/svc1, its port, frontend and listed endpoint; every masquerade has a reason', () => {
  let dnat = 0;
  let masqueraded = 0;
  let verdicts = 0;
  const reasons = new Map<string, number>();
  for (const c of kubeProxyCases()) {
    if (c.manifests === null) continue;
    const { model } = readClusterModel([c.manifests]);
    const index = ChainNameIndex.fromModel(model);
    const svc = (c.manifests as { items: RawItem[] }).items.find((i) => i.kind === 'Service')!;
    const portName = svc.spec!.ports![0].name ?? '';
    for (const { flow, result } of traceFlows(c)) {
      const described = describeTrace(result, model, index, { nodeAddresses: nodeAddresses(c) });
      assert.equal(described.outcomes.length, result.outcomes.length);
      result.outcomes.forEach((o, i) => {
        const d = described.outcomes[i];
        const what = `${c.folder}: ${flow.name}: ${JSON.stringify(d)}`;
        const frontend = expectedFrontend(c, flow.destination, flow.port);
        if (o.verdict === 'DNAT' || o.verdict === 'REJECT' || o.verdict === 'DROP' || frontend === 'HealthCheckNodePort') {
          assert.ok(d.service, what);
          assert.equal(d.service.namespace, 'ns1', what);
          assert.equal(d.service.name, 'svc1', what);
          assert.equal(d.service.port.name, portName, what);
          assert.equal(d.service.port.port, svc.spec!.ports![0].port, what);
          assert.equal(d.service.port.protocol, flow.protocol.toUpperCase(), what);
          assert.equal(d.service.via, 'comment', what);
          assert.equal(d.service.frontend, frontend, what);
          verdicts++;
        }
        if (o.verdict === 'DNAT') {
          dnat++;
          assert.ok(d.endpoint, what);
          assert.equal(`${d.endpoint.ip}:${d.endpoint.port}`, `${o.destination.ip}:${o.destination.port}`, what);
          const raw = rawEndpoint(c, o.destination.ip, o.destination.port, portName);
          assert.ok(raw, `${what}: endpoint not in the raw EndpointSlice`);
          assert.equal(d.endpoint.listed, true, what);
          assert.equal(d.endpoint.node, raw.nodeName, what);
          assert.deepEqual(d.notes, [], what);
        } else {
          assert.equal(d.endpoint, undefined, what);
        }
        if (o.masquerade) {
          masqueraded++;
          assert.ok(d.masqueradeReason, what);
          assert.ok(KNOWN_REASONS.some((r) => r.test(d.masqueradeReason!)), what);
          reasons.set(d.masqueradeReason, (reasons.get(d.masqueradeReason) ?? 0) + 1);
        } else {
          assert.equal(d.masqueradeReason, undefined, what);
        }
      });
    }
  }
  assert.equal(dnat, 74);
  assert.equal(masqueraded, 24);
  assert.equal(verdicts, 103);
  assert.deepEqual(Object.fromEntries(reasons), {
    'hairpin: the endpoint reaches itself through the Service': 1,
    'external traffic to a Service with externalTrafficPolicy: Cluster': 23,
  });
});

test('the specific reasons: hairpin, externalTrafficPolicy Cluster, LOCAL origin, cluster CIDR', () => {
  const cases = kubeProxyCases();
  const reasonOf = (folder: string, flowName: string, source?: string): DescribedOutcome[] => {
    const c = cases.find((x) => x.folder === folder)!;
    const model = c.manifests ? readClusterModel([c.manifests]).model : null;
    const flow = c.flows.flows.find((f) => f.name === flowName)!;
    const rs = completeKubeProxy(parseDump(c.dump));
    const r = trace(rs, { node: { addresses: nodeAddresses(c) }, packet: { ...flow, source: source ?? flow.source } });
    return [...describeTrace(r, model, model && ChainNameIndex.fromModel(model)).outcomes];
  };
  assert.equal(reasonOf('cluster-ip-endpoints-more', 'hairpin to cluster IP')[0].masqueradeReason, 'hairpin: the endpoint reaches itself through the Service');
  assert.equal(reasonOf('node-port', 'external to nodePort')[0].masqueradeReason, 'external traffic to a Service with externalTrafficPolicy: Cluster');
  assert.equal(reasonOf('trace-packet', 'LOCAL, KUBE-MARK-MASQ')[0].masqueradeReason, 'traffic from the node itself (LOCAL origin)');
  // The same cluster IP from outside the cluster CIDR 10.0.0.0/8.
  const outside = reasonOf('load-balancer', 'pod to cluster IP', '203.0.113.9');
  assert.equal(outside[0].masqueradeReason, 'source outside the cluster CIDR 10.0.0.0/8');
  assert.equal(reasonOf('load-balancer', 'pod to cluster IP')[0].masqueradeReason, undefined);
  // externalTrafficPolicy Local: the external client keeps its address.
  assert.equal(reasonOf('only-local-load-balancing', 'external to LB IP hits only local endpoint, unmasqueraded')[0].masqueradeReason, undefined);
});

test('without manifests the rule comments still name the Service port, frontend and endpoint', () => {
  let named = 0;
  for (const c of kubeProxyCases()) {
    for (const { flow, result } of traceFlows(c)) {
      const d = describeTrace(result, null, null);
      result.outcomes.forEach((o, i) => {
        const x = d.outcomes[i];
        if (o.verdict !== 'DNAT') return;
        const what = `${c.folder}: ${flow.name}: ${JSON.stringify(x)}`;
        assert.equal(x.service?.via, 'comment', what);
        // The comment of the rule that sent the packet to the endpoint names the same Service port.
        const sepJump = o.path.find((s) => / -> \S+:\d+/.test(s.rule) && s.rule.includes(`-> ${o.destination.ip}:${o.destination.port}`));
        assert.ok(sepJump, what);
        const spn = parseServicePortName(/--comment "([^"]+)"/.exec(sepJump.rule)![1])!;
        assert.deepEqual([x.service.namespace, x.service.name, x.service.port.name], [spn.namespace, spn.name, spn.portName], what);
        assert.deepEqual(x.endpoint, { ip: o.destination.ip, port: o.destination.port }, what);
        if (x.service.frontend !== 'NodePort') assert.equal(x.service.port.port, flow.port, what);
        else assert.equal(x.service.port.port, null, what);
        named++;
      });
    }
  }
  assert.equal(named, 78);
});

/** Removes every `-m comment --comment …` so that only chain names can say what a rule is for. */
function stripComments(dump: string): string {
  return dump.split('\n').map((l) => l.replace(/ -m comment --comment ("[^"]*"|\S+)/g, '')).join('\n');
}

test('with the comments stripped, the chain-name hashes name the Service port and endpoint', () => {
  let hashed = 0;
  for (const c of kubeProxyCases()) {
    if (c.manifests === null) continue;
    const { model } = readClusterModel([c.manifests]);
    const index = ChainNameIndex.fromModel(model);
    const stripped = stripComments(c.dump);
    assert.ok(!stripped.includes('--comment'));
    for (const { flow, result } of traceFlows(c, stripped)) {
      const d = describeTrace(result, model, index, { nodeAddresses: nodeAddresses(c) });
      result.outcomes.forEach((o, i) => {
        const x = d.outcomes[i];
        if (o.verdict !== 'DNAT') return;
        const what = `${c.folder}: ${flow.name}: ${JSON.stringify(x)}`;
        assert.equal(x.service?.via, 'chain-hash', what);
        assert.equal(`${x.service.namespace}/${x.service.name}`, 'ns1/svc1', what);
        assert.equal(x.service.port.port, model.services.get('ns1/svc1')!.ports[0].port, what);
        assert.equal(x.service.frontend, expectedFrontend(c, flow.destination, flow.port), what);
        assert.equal(x.endpoint?.listed, true, what);
        if (o.masquerade) assert.ok(KNOWN_REASONS.some((r) => r.test(x.masqueradeReason ?? '')), what);
        hashed++;
      });
    }
  }
  assert.equal(hashed, 74);
});

test('the manifests alone name the Service when the rules say nothing about it', () => {
  const c = kubeProxyCases().find((x) => x.folder === 'load-balancer')!;
  const { model } = readClusterModel([c.manifests]);
  // A node whose kube-proxy has not programmed anything yet: only the hook rules.
  const rs = completeKubeProxy(parseDump('*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n'));
  const r = trace(rs, { node: { addresses: ['192.168.0.2'] }, packet: { source: '10.0.0.2', destination: '172.30.0.41', port: 80, protocol: 'tcp' } });
  const [d] = describeTrace(r, model, ChainNameIndex.fromModel(model)).outcomes;
  assert.equal(r.outcomes[0].verdict, 'ACCEPT');
  assert.deepEqual(d.service, { namespace: 'ns1', name: 'svc1', port: { name: 'p80', port: 80, protocol: 'TCP' }, frontend: 'ClusterIP', via: 'manifests' });
  assert.match(d.notes[0], /no rule on the path names ns1\/svc1/);
});

/** trace-packet's hand-written rules as the Services and pods they stand for (six Services, one shared endpoint IP). */
const TRACE_PACKET_MANIFESTS = (() => {
  const svc = (n: number, spec: Record<string, unknown>, status?: unknown) => ({
    apiVersion: 'v1', kind: 'Service', metadata: { name: `svc${n}`, namespace: `ns${n}` },
    spec: { clusterIP: `172.30.0.${40 + n}`, ...spec, ports: [{ name: 'p80', port: 80, protocol: 'TCP', ...(spec.nodePort ? { nodePort: spec.nodePort } : {}) }] },
    ...(status ? { status } : {}),
  });
  const slice = (n: number, ips: string[]) => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: `svc${n}-1`, namespace: `ns${n}`, labels: { 'kubernetes.io/service-name': `svc${n}` } },
    addressType: 'IPv4',
    endpoints: ips.map((ip) => ({ addresses: [ip], nodeName: 'test-node', ...(ip === '10.180.0.4' ? { targetRef: { kind: 'Pod', name: 'web-4', namespace: `ns${n}` } } : {}) })),
    ports: [{ name: 'p80', port: 80, protocol: 'TCP' }],
  });
  const pod = (name: string, ns: string, ip: string, ready: boolean) => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns },
    spec: { nodeName: 'test-node' },
    status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  });
  return {
    apiVersion: 'v1', kind: 'List', items: [
      svc(1, {}), slice(1, ['10.180.0.1']),
      svc(2, { type: 'LoadBalancer', externalIPs: ['192.168.99.22'], nodePort: 3001, externalTrafficPolicy: 'Local', healthCheckNodePort: 30000 }, { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } }),
      slice(2, ['10.180.0.2']),
      svc(3, { type: 'NodePort', nodePort: 3003 }), slice(3, ['10.180.0.3']),
      svc(4, { externalIPs: ['192.168.99.33'] }), slice(4, ['10.180.0.4', '10.180.0.5']),
      svc(5, { type: 'LoadBalancer', nodePort: 3002, loadBalancerSourceRanges: ['203.0.113.0/25'] }, { loadBalancer: { ingress: [{ ip: '5.6.7.8' }] } }),
      slice(5, ['10.180.0.3']),
      svc(6, {}),
      pod('web-1', 'ns1', '10.180.0.1', true), pod('web-2', 'ns2', '10.180.0.2', false), pod('web-4', 'ns4', '10.180.0.4', true), pod('web-5', 'ns4', '10.180.0.5', true),
      { apiVersion: 'v1', kind: 'Node', metadata: { name: 'test-node' }, status: { addresses: [{ type: 'InternalIP', address: '192.168.0.2' }] } },
    ],
  };
})();

test('trace-packet with its Services written out: all 16 chain names decode, pods are named', () => {
  const c = kubeProxyCases().find((x) => x.folder === 'trace-packet')!;
  const { model } = readClusterModel([TRACE_PACKET_MANIFESTS]);
  const index = ChainNameIndex.fromModel(model);
  const names = new Set(c.dump.match(/KUBE-(?:SVC|SVL|EXT|FW|SEP|XLB)-[A-Z2-7]{16}/g));
  assert.equal(names.size, 16);
  for (const n of names) assert.ok(index.decode(n), n);
  const byFlow = new Map(traceFlows(c).map(({ flow, result }) => [flow.name, { result, d: describeTrace(result, model, index, { nodeAddresses: nodeAddresses(c) }) }]));
  const single = byFlow.get('single endpoint')!.d.outcomes[0];
  assert.deepEqual(single.endpoint, {
    ip: '10.180.0.1', port: 80, listed: true, node: 'test-node',
    pod: { name: 'web-1', namespace: 'ns1', node: 'test-node', ready: true, serving: true, terminating: false },
  });
  const multiple = byFlow.get('multiple endpoints')!.d.outcomes;
  assert.deepEqual(multiple.map((o) => [o.service?.name, o.endpoint?.pod?.name]), [['svc4', 'web-4'], ['svc4', 'web-5']]);
  // Listed in the slice: the slice's conditions (ready) win over the Pod's own Ready condition.
  const local = byFlow.get('LOCAL, KUBE-MARK-MASQ')!.d.outcomes[0];
  assert.equal(local.service?.frontend, 'ExternalIP');
  assert.deepEqual(local.endpoint?.pod, { name: 'web-2', namespace: 'ns2', node: 'test-node', ready: true, serving: true, terminating: false });
  assert.equal(local.masqueradeReason, 'traffic from the node itself (LOCAL origin)');
  const hc = byFlow.get('ACCEPT (NodePortHealthCheck)')!.d.outcomes[0];
  assert.deepEqual(hc.service, { namespace: 'ns2', name: 'svc2', port: { name: 'p80', port: 80, protocol: 'TCP' }, frontend: 'HealthCheckNodePort', via: 'comment' });
  assert.equal(byFlow.get('REJECT')!.d.outcomes[0].service?.name, 'svc6');
  assert.equal(byFlow.get('DROP')!.d.outcomes[0].service?.frontend, 'ExternalIP');
  assert.deepEqual(byFlow.get('no match')!.d.outcomes[0], { notes: [] });
});

test('rules and manifests that disagree are said so', () => {
  const c = kubeProxyCases().find((x) => x.folder === 'trace-packet')!;
  const manifests = structuredClone(TRACE_PACKET_MANIFESTS);
  // ns4/svc4 lost 10.180.0.5 from its EndpointSlice; the rules still send traffic there.
  const slice = manifests.items.find((i) => i.kind === 'EndpointSlice' && i.metadata.name === 'svc4-1') as { endpoints: unknown[] };
  slice.endpoints = slice.endpoints.slice(0, 1);
  const { model } = readClusterModel([manifests]);
  const index = ChainNameIndex.fromModel(model);
  const rs = completeKubeProxy(parseDump(c.dump));
  const r = trace(rs, { node: { addresses: ['192.168.0.2'] }, packet: { source: '10.0.0.2', destination: '172.30.0.44', port: 80, protocol: 'tcp' } });
  const d = describeTrace(r, model, index).outcomes;
  assert.equal(d[0].endpoint?.listed, true);
  assert.equal(d[1].endpoint?.listed, false);
  assert.equal(d[1].endpoint?.pod?.name, 'web-5', 'still named from the pod owning the IP');
  assert.equal(d[1].endpoint?.pod?.ready, true, 'not listed: the Pod object gives the conditions');
  assert.ok(d[1].notes.some((n) => /10\.180\.0\.5:80 is not an endpoint of ns4\/svc4 in the manifests/.test(n)), JSON.stringify(d[1]));
  // A comment naming one Service on a chain hashed for another.
  const forged = c.dump.replace('-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP"', '-A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP"');
  const f = trace(completeKubeProxy(parseDump(forged)), { node: { addresses: ['192.168.0.2'] }, packet: { source: '10.0.0.2', destination: '172.30.0.41', port: 80, protocol: 'tcp' } });
  const [o] = describeTrace(f, model, index).outcomes;
  assert.equal(o.service?.name, 'svc3');
  assert.ok(o.notes.some((n) => /the rule comments name ns3\/svc3:p80, but chain KUBE-SVC-XPGD46QRK7WJZT7O is kube-proxy's name for ns1\/svc1:p80/.test(n)), JSON.stringify(o));
});

test('k3s example: 10.42.1.42 is pod service-test-cd79b78bd-bkr52 on ip-10-32-7-224…, and the node is masqueraded', () => {
  const { model } = readClusterModel([readJson(join(K3S_EXAMPLE, 'manifests.json'))]);
  const index = ChainNameIndex.fromModel(model);
  const rs = completeKubeProxy(parseDump(readFileSync(join(K3S_EXAMPLE, 'ip-10-32-11-62.iptables-S.txt'), 'utf8')));
  const run = (source: string, destination: string, port: number) =>
    { const r = trace(rs, { node: { addresses: ['10.32.11.62'] }, packet: { source, destination, port, protocol: 'tcp' } }); return { r, d: describeTrace(r, model, index) }; };
  const { r, d } = run('10.42.0.7', '10.43.62.130', 80);
  assert.equal(r.outcomes.length, 4);
  const i = r.outcomes.findIndex((o) => o.destination.ip === '10.42.1.42');
  const o = d.outcomes[i];
  assert.deepEqual(o.service, { namespace: 'default', name: 'service-test', port: { name: '', port: 80, protocol: 'TCP' }, frontend: 'ClusterIP', via: 'comment' });
  assert.equal(o.endpoint?.pod?.name, 'service-test-cd79b78bd-bkr52');
  assert.equal(o.endpoint?.pod?.namespace, 'default');
  assert.match(o.endpoint?.pod?.node ?? '', /^ip-10-32-7-224\./);
  assert.equal(o.endpoint?.pod?.ready, true);
  assert.deepEqual(d.outcomes.map((x) => x.endpoint?.pod?.name).sort(), [
    'service-test-cd79b78bd-82rpx', 'service-test-cd79b78bd-bkr52', 'service-test-cd79b78bd-pq8bz', 'service-test-cd79b78bd-wtc49',
  ]);
  assert.ok(d.outcomes.every((x) => x.masqueradeReason === undefined));
  // From the node itself the ! -s 10.42.0.0/16 rule marks the packet.
  const fromNode = run('10.32.11.62', '10.43.62.130', 80).d;
  assert.ok(fromNode.outcomes.every((x) => x.masqueradeReason === 'source outside the cluster CIDR 10.42.0.0/16'));
  // The NodePort: its Service port is 80 by the manifests, eTP Cluster masquerades.
  const np = run('198.51.100.20', '10.32.11.62', 30080).d.outcomes;
  assert.equal(np.length, 4);
  for (const x of np) {
    assert.deepEqual(x.service, { namespace: 'default', name: 'service-test-nodeport', port: { name: '', port: 80, protocol: 'TCP' }, frontend: 'NodePort', via: 'comment' });
    assert.equal(x.masqueradeReason, 'external traffic to a Service with externalTrafficPolicy: Cluster');
    assert.equal(x.endpoint?.listed, true);
    assert.equal(x.endpoint?.pod, undefined, 'its EndpointSlice has no targetRefs and the pods are not in the manifests');
    assert.match(x.endpoint?.node ?? '', /^ip-10-32-(11-62|7-224)\./);
  }
});

test('resolveServiceFrontends: cluster IPs, external and load-balancer IPs, the NodePort on every node address', () => {
  const { model } = readClusterModel([readJson(join(K3S_EXAMPLE, 'manifests.json'))]);
  const k3s = resolveServiceFrontends(model, 'default/service-test-nodeport', 80);
  assert.deepEqual(k3s.map((f) => [f.frontend, f.packet.destination, f.packet.port, f.packet.protocol, f.node ?? '']), [
    ['ClusterIP', '10.43.250.102', 80, 'tcp', ''],
    ['NodePort', '10.32.7.224', 30080, 'tcp', 'ip-10-32-7-224.ap-northeast-2.compute.internal'],
    ['NodePort', '10.32.11.62', 30080, 'tcp', 'ip-10-32-11-62.ap-northeast-2.compute.internal'],
  ]);
  assert.deepEqual(resolveServiceFrontends(model, 'default/kubernetes', 'https').map((f) => f.packet), [{ destination: '10.43.0.1', port: 443, protocol: 'tcp' }]);
  const lb = readClusterModel([TRACE_PACKET_MANIFESTS]).model;
  const nodes = [{ name: 'a', addresses: ['192.168.0.2', '192.168.1.2'] }, { name: 'b', addresses: ['192.168.0.3'] }];
  assert.deepEqual(resolveServiceFrontends(lb, 'ns2/svc2', 'p80', nodes).map((f) => `${f.frontend} ${f.packet.destination}:${f.packet.port}${f.node ? ` @${f.node}` : ''}`), [
    'ClusterIP 172.30.0.42:80', 'ExternalIP 192.168.99.22:80', 'LoadBalancer 1.2.3.4:80',
    'NodePort 192.168.0.2:3001 @a', 'NodePort 192.168.1.2:3001 @a', 'NodePort 192.168.0.3:3001 @b',
  ]);
  assert.equal(resolveServiceFrontends(lb, 'ns2/svc2', '80', nodes).length, 6, 'a port number as digits');
  assert.throws(() => resolveServiceFrontends(lb, 'ns9/none', 80), (e: unknown) => e instanceof EngineError && /Service ns9\/none is not in the manifests/.test(e.message));
  assert.throws(() => resolveServiceFrontends(lb, 'ns2/svc2', 'http'), (e: unknown) => e instanceof EngineError && /has no port "http" \(its ports: p80 80\/TCP\)/.test(e.message));
});

/** A pre-1.24 style dump (masquerade in KUBE-SERVICES, KUBE-FW and KUBE-NODEPORTS; KUBE-XLB for Local), with real chain names. */
function oldLayoutDump(): string {
  const svc = kubeProxyChainName('KUBE-SVC', 'ns/web:http', 'tcp');
  const fw = kubeProxyChainName('KUBE-FW', 'ns/web:http', 'tcp');
  const sep = kubeProxyChainName('KUBE-SEP', 'ns/web:http', 'tcp', '10.244.1.5:8080');
  const lsvc = kubeProxyChainName('KUBE-SVC', 'ns/local:http', 'tcp');
  const xlb = kubeProxyChainName('KUBE-XLB', 'ns/local:http', 'tcp');
  const lsep = kubeProxyChainName('KUBE-SEP', 'ns/local:http', 'tcp', '10.244.0.9:8080');
  return [
    '*nat',
    ':PREROUTING ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]',
    ':KUBE-SERVICES - [0:0]', ':KUBE-NODEPORTS - [0:0]', ':KUBE-MARK-MASQ - [0:0]', ':KUBE-POSTROUTING - [0:0]',
    `:${svc} - [0:0]`, `:${fw} - [0:0]`, `:${sep} - [0:0]`, `:${lsvc} - [0:0]`, `:${xlb} - [0:0]`, `:${lsep} - [0:0]`,
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    '-A POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -j MASQUERADE',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -m mark --mark 0x4000/0x4000 -j MASQUERADE',
    '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000',
    `-A KUBE-SERVICES ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment "ns/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
    `-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "ns/web:http cluster IP" -m tcp --dport 80 -j ${svc}`,
    `-A KUBE-SERVICES -d 198.51.100.7/32 -p tcp -m comment --comment "ns/web:http external IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
    `-A KUBE-SERVICES -d 198.51.100.7/32 -p tcp -m comment --comment "ns/web:http external IP" -m tcp --dport 80 -j ${svc}`,
    `-A KUBE-SERVICES -d 203.0.113.50/32 -p tcp -m comment --comment "ns/web:http loadbalancer IP" -m tcp --dport 80 -j ${fw}`,
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    `-A ${fw} -m comment --comment "ns/web:http loadbalancer IP" -j KUBE-MARK-MASQ`,
    `-A ${fw} -m comment --comment "ns/web:http loadbalancer IP" -j ${svc}`,
    `-A KUBE-NODEPORTS -p tcp -m comment --comment "ns/web:http" -m tcp --dport 30080 -j KUBE-MARK-MASQ`,
    `-A KUBE-NODEPORTS -p tcp -m comment --comment "ns/web:http" -m tcp --dport 30080 -j ${svc}`,
    `-A KUBE-NODEPORTS -s 127.0.0.0/8 -p tcp -m comment --comment "ns/local:http" -m tcp --dport 30081 -j KUBE-MARK-MASQ`,
    `-A KUBE-NODEPORTS -p tcp -m comment --comment "ns/local:http" -m tcp --dport 30081 -j ${xlb}`,
    `-A ${svc} -m comment --comment "ns/web:http" -j ${sep}`,
    `-A ${sep} -s 10.244.1.5/32 -m comment --comment "ns/web:http" -j KUBE-MARK-MASQ`,
    `-A ${sep} -p tcp -m comment --comment "ns/web:http" -m tcp -j DNAT --to-destination 10.244.1.5:8080`,
    `-A ${xlb} -s 10.244.0.0/16 -m comment --comment "Redirect pods trying to reach external loadbalancer VIP to clusterIP" -j ${lsvc}`,
    `-A ${xlb} -m comment --comment "masquerade LOCAL traffic for ns/local:http LB IP" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
    `-A ${xlb} -m comment --comment "route LOCAL traffic for ns/local:http LB IP to service chain" -m addrtype --src-type LOCAL -j ${lsvc}`,
    `-A ${xlb} -m comment --comment "Balancing rule 0 for ns/local:http" -j ${lsep}`,
    `-A ${lsvc} -m comment --comment "ns/local:http" -j ${lsep}`,
    `-A ${lsep} -p tcp -m comment --comment "ns/local:http" -m tcp -j DNAT --to-destination 10.244.0.9:8080`,
    'COMMIT', '',
  ].join('\n');
}

test('older layouts: masquerade in KUBE-SERVICES, KUBE-FW, KUBE-NODEPORTS and KUBE-XLB, and a CNI MASQUERADE', () => {
  const rs = completeKubeProxy(parseDump(oldLayoutDump()));
  const node = { addresses: ['192.168.0.2'] };
  const describe = (source: string, destination: string, port: number) => {
    const r = trace(rs, { node, packet: { source, destination, port, protocol: 'tcp' } });
    assert.equal(r.outcomes.length, 1);
    assert.equal(r.outcomes[0].masquerade, true, `${source} → ${destination}:${port}`);
    return describeTrace(r, null, null).outcomes[0];
  };
  const cluster = describe('192.0.2.1', '10.96.0.10', 80);
  assert.equal(cluster.masqueradeReason, 'source outside the cluster CIDR 10.244.0.0/16');
  assert.equal(cluster.service?.frontend, 'ClusterIP');
  assert.equal(describe('192.0.2.1', '198.51.100.7', 80).masqueradeReason, 'traffic to an external IP of a Service with externalTrafficPolicy: Cluster');
  const lb = describe('192.0.2.1', '203.0.113.50', 80);
  assert.equal(lb.masqueradeReason, 'load-balancer traffic to a Service with externalTrafficPolicy: Cluster');
  assert.equal(lb.service?.frontend, 'LoadBalancer');
  const np = describe('192.0.2.1', '192.168.0.2', 30080);
  assert.equal(np.masqueradeReason, 'NodePort traffic to a Service with externalTrafficPolicy: Cluster');
  assert.deepEqual(np.service, { namespace: 'ns', name: 'web', port: { name: 'http', port: null, protocol: 'TCP' }, frontend: 'NodePort', via: 'comment' });
  // Hairpin through the old layout's KUBE-SEP rule, on top of nothing else.
  assert.equal(describe('10.244.1.5', '10.96.0.10', 80).masqueradeReason, 'hairpin: the endpoint reaches itself through the Service');
  // localhost to a Local NodePort: two rules mark it, both reasons are given.
  const lo = describe('127.0.0.1', '127.0.0.1', 30081);
  assert.deepEqual(lo.masqueradeReasons, ['NodePort traffic to a localhost address (must be masqueraded to leave the node)', 'traffic from the node itself (LOCAL origin)']);
  assert.equal(lo.masqueradeReason, lo.masqueradeReasons[0]);
  assert.equal(lo.service?.name, 'local');
  // A pod going off-cluster: the CNI's own MASQUERADE, not kube-proxy's mark.
  const cni = describe('10.244.1.5', '8.8.8.8', 53);
  assert.equal(cni.service, undefined);
  assert.equal(cni.masqueradeReason, `MASQUERADE by nat POSTROUTING rule 2, not by kube-proxy's masquerade mark`);
});

test('parseServicePortName reads kube-proxy comments and ignores CIDRs and plain words', () => {
  assert.deepEqual(parseServicePortName('ns1/svc1:p80 cluster IP'), { namespace: 'ns1', name: 'svc1', portName: 'p80' });
  assert.deepEqual(parseServicePortName('default/service-test -> 10.42.1.42:8080'), { namespace: 'default', name: 'service-test', portName: '' });
  assert.deepEqual(parseServicePortName('masquerade traffic for kube-system/kube-dns:dns-tcp external destinations'), { namespace: 'kube-system', name: 'kube-dns', portName: 'dns-tcp' });
  assert.equal(parseServicePortName('kubernetes service portals'), null);
  assert.equal(parseServicePortName('pod traffic 10.0.0.0/8'), null);
});
