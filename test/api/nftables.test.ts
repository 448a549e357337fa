/**
 * nftables rulesets through every door that traces: POST /v1/trace (format auto and nftables),
 * stored snapshots (upload, then trace by address and by Service over REST and GraphQL), diffs and
 * audits of them (the audit checks that read iptables chains skip nftables nodes, and say so).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestApp } from './helpers.ts';
import type { TestApp } from './helpers.ts';
import { fixture } from '../helpers.ts';

let t: TestApp;
before(async () => {
  t = await createTestApp({ bodyLimit: 8 * 1024 * 1024 });
});
after(async () => {
  await t?.close();
});

const overall = fixture('nftables-trace', 'overall', 'input.nft');
const listed = fixture('nftables-trace', 'numgen-three', 'input.nft');
const manifests = JSON.stringify({
  apiVersion: 'v1', kind: 'List',
  items: [
    {
      apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'ns4', name: 'svc4' },
      spec: { type: 'ClusterIP', clusterIP: '172.30.0.44', externalIPs: ['192.168.99.33'], ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] },
    },
    {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { namespace: 'ns4', name: 'svc4-a', labels: { 'kubernetes.io/service-name': 'svc4' } },
      addressType: 'IPv4', ports: [{ name: 'p80', port: 80, protocol: 'TCP' }],
      endpoints: [
        { addresses: ['10.180.0.4'], conditions: { ready: true }, targetRef: { kind: 'Pod', namespace: 'ns4', name: 'web-4' } },
        { addresses: ['10.180.0.5'], conditions: { ready: true }, targetRef: { kind: 'Pod', namespace: 'ns4', name: 'web-5' } },
      ],
    },
  ],
});

test('POST /v1/trace answers an nftables ruleset, detected or named, with the iptables answer’s shape', async () => {
  for (const format of ['auto', 'nftables']) {
    const res = await t.app.inject({
      method: 'POST', url: '/v1/trace',
      payload: {
        rules: overall, format, manifests,
        node: { addresses: ['192.168.0.2'] },
        packet: { source: '10.0.0.2', destination: '172.30.0.44', port: 80, protocol: 'tcp' },
      },
    });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.equal(body.backend, 'nftables');
    assert.deepEqual(body.outcomes.map((o: { destination: { ip: string }; exactProbability: string }) => [o.destination.ip, o.exactProbability]), [
      ['10.180.0.4', '1/2'], ['10.180.0.5', '1/2'],
    ]);
    const o = body.outcomes[0];
    assert.equal(o.verdict, 'DNAT');
    assert.equal(o.service.name, 'svc4');
    assert.equal(o.service.frontend, 'ClusterIP');
    assert.equal(o.endpoint.pod.name, 'web-4');
    const vmap = o.path.find((s: { chain: string }) => s.chain === 'services');
    assert.deepEqual({ table: vmap.table, index: vmap.index, action: vmap.action }, {
      table: 'ip kube-proxy', index: 1, action: 'vmap: 172.30.0.44 . tcp . 80 → goto service-LAUZTJTB-ns4/svc4/tcp/p80',
    });
  }
});

test('POST /v1/trace keeps the handles of `nft -a list ruleset` on the path', async () => {
  const res = await t.app.inject({
    method: 'POST', url: '/v1/trace',
    payload: { rules: listed, node: { addresses: ['10.0.0.10'] }, packet: { source: '10.244.0.9', destination: '10.96.0.30', port: 80, inInterface: 'eth0' } },
  });
  assert.equal(res.statusCode, 200, res.body);
  const steps = res.json().outcomes[0].path as { chain: string; handle?: number }[];
  assert.equal(steps.find((s) => s.chain === 'services')?.handle, 23);
  assert.ok(res.json().warnings.some((w: { code: string }) => w.code === 'UNEVEN_SPLIT'));
});

test('an nftables ruleset with a syntax error is a located 400', async () => {
  const res = await t.app.inject({
    method: 'POST', url: '/v1/trace',
    payload: { rules: 'table ip t {\n\tchain c {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tip saddr 10.0.0.1 frobnicate\n', format: 'nftables', node: { addresses: ['10.0.0.1'] }, packet: { source: '10.0.0.2', destination: '10.0.0.1', port: 22 } },
  });
  assert.equal(res.statusCode, 400, res.body);
  assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
  assert.equal(typeof res.json().line, 'number');
});

test('a snapshot with an nftables node: stored as nftables, traced over REST and GraphQL, audited and diffed', async () => {
  const created = await t.app.inject({
    method: 'POST', url: '/v1/clusters/nft/snapshots',
    payload: { nodes: [{ name: 'test-node', addresses: ['192.168.0.2'], rules: overall }], manifests },
  });
  assert.equal(created.statusCode, 201, created.body);
  const snap = created.json().snapshot;
  assert.equal(snap.nodes[0].format, 'nftables');
  assert.deepEqual(snap.nodes[0].tables.map((x: { name: string }) => x.name), ['ip kube-proxy']);
  assert.ok(snap.nodes[0].rules > 40);

  const traced = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${snap.id}/trace?destination=192.168.0.2&port=3003&source=203.0.113.200` });
  assert.equal(traced.statusCode, 200, traced.body);
  const [r] = traced.json().results;
  assert.equal(r.node, 'test-node');
  assert.deepEqual(r.outcomes.map((o: { verdict: string; destination: { ip: string }; masquerade: boolean }) => [o.verdict, o.destination.ip, o.masquerade]), [['DNAT', '10.180.0.3', true]]);
  assert.equal(r.outcomes[0].masqueradeReason, 'external traffic to a Service with externalTrafficPolicy: Cluster');

  const byService = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${snap.id}/trace?service=ns4/svc4&port=p80&source=10.0.0.2` });
  assert.equal(byService.statusCode, 200, byService.body);
  const frontends = byService.json().results.map((x: { frontend: { kind: string; destination: string }; outcomes: { destination: { ip: string } }[] }) => [
    x.frontend.kind, x.frontend.destination, x.outcomes.map((o) => o.destination.ip),
  ]);
  assert.deepEqual(frontends, [
    ['ClusterIP', '172.30.0.44', ['10.180.0.4', '10.180.0.5']],
    ['ExternalIP', '192.168.99.33', ['10.180.0.4', '10.180.0.5']],
  ]);

  const query = `{ snapshot(id: "${snap.id}") { nodes { name format }
    trace(destination: "172.30.0.46", port: 80, source: "10.0.0.2") { node outcomes { verdict path { table chain index action handle } service { name } } } } }`;
  const gql = await t.app.inject({ method: 'POST', url: '/graphql', payload: { query } });
  assert.equal(gql.statusCode, 200, gql.body);
  const data = gql.json().data.snapshot;
  assert.deepEqual(data.nodes, [{ name: 'test-node', format: 'nftables' }]);
  const out = data.trace[0].outcomes[0];
  assert.equal(out.verdict, 'REJECT');
  assert.equal(out.service.name, 'svc6');
  assert.ok(out.path.some((s: { chain: string; action: string }) => s.chain === 'reject-chain' && /^reject/.test(s.action)));

  // The audit traces the nftables node; the checks that read iptables chains say they skipped it.
  const audit = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${snap.id}/audit` });
  assert.equal(audit.statusCode, 200, audit.body);
  const skipped = audit.json().findings.filter((f: { message: string }) => /^not checked on the nftables node test-node: /.test(f.message));
  assert.deepEqual(skipped.map((f: { check: string }) => f.check).sort(), ['affinity-stale', 'endpoint-drift', 'service-rules', 'uneven-split']);
  const diff = await t.app.inject({ method: 'GET', url: `/v1/diff?from=${snap.id}&to=${snap.id}` });
  assert.equal(diff.statusCode, 200, diff.body);
  const d = diff.json();
  assert.deepEqual(d.backends, { from: 'nftables', to: 'nftables', across: [] });
  assert.deepEqual([d.frontends, d.rules, d.knownDifferences], [[], [], []]);
  assert.ok(d.summary.frontends.unchanged >= 10, JSON.stringify(d.summary));
});
