/** Kubernetes names in answers, and traces by Service, through REST and GraphQL on PostgreSQL. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fastJson from 'fast-json-stringify';
import { sharedSchemas, snapshotTraceSchema } from '../../src/api/rest/schemas.ts';
import { createTestApp } from './helpers.ts';
import type { TestApp } from './helpers.ts';

let t: TestApp;
let id: string;
const example = JSON.parse(readFileSync(new URL('../../examples/k3s/snapshot.json', import.meta.url), 'utf8'));
before(async () => {
  t = await createTestApp();
  const res = await t.app.inject({ method: 'POST', url: '/v1/clusters/k3s-blog/snapshots', payload: example });
  assert.equal(res.statusCode, 201, res.body);
  id = res.json().snapshot.id;
});
after(async () => {
  await t?.close();
});

test('each outcome names its Service, endpoint pod and node, and why it is masqueraded', async () => {
  const res = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${id}/trace?destination=10.43.62.130&port=80&source=10.32.11.62` });
  assert.equal(res.statusCode, 200, res.body);
  const outcomes = res.json().results[0].outcomes;
  const last = outcomes.find((o: { destination: { ip: string } }) => o.destination.ip === '10.42.1.42');
  assert.equal(last.service.namespace, 'default');
  assert.equal(last.service.name, 'service-test');
  assert.equal(last.service.frontend, 'ClusterIP');
  assert.equal(last.endpoint.pod.name, 'service-test-cd79b78bd-bkr52');
  assert.equal(last.endpoint.pod.node, 'ip-10-32-7-224.ap-northeast-2.compute.internal');
  assert.equal(last.endpoint.pod.ready, true);
  assert.match(last.masqueradeReason, /outside the cluster CIDR 10\.42\.0\.0\/16/);
});

test('a trace by Service resolves every frontend of the port and answers for it', async () => {
  const res = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${id}/trace?service=default/service-test-nodeport&port=80&source=198.51.100.7` });
  assert.equal(res.statusCode, 200, res.body);
  const results = res.json().results as { node: string; frontend: { kind: string; destination: string; port: number }; outcomes: { verdict: string; destination: { ip: string } }[] }[];
  const kinds = results.map((r) => `${r.frontend.kind} ${r.frontend.destination}:${r.frontend.port}`).sort();
  assert.deepEqual(kinds, ['ClusterIP 10.43.250.102:80', 'NodePort 10.32.11.62:30080']);
  for (const r of results) {
    assert.deepEqual(r.outcomes.map((o) => o.destination.ip).sort(), ['10.42.0.69', '10.42.0.70', '10.42.1.65', '10.42.1.66']);
  }
  const gql = await t.app.inject({
    method: 'POST', url: '/graphql',
    payload: { query: `{ snapshot(id: "${id}") { trace(service: "default/service-test", port: 80, source: "10.42.0.7") { node frontend { kind destination port } outcomes { probability endpoint { pod { name } } service { name port { port } } } } } }` },
  });
  const traces = gql.json().data.snapshot.trace;
  assert.equal(traces.length, 1);
  assert.equal(traces[0].frontend.kind, 'ClusterIP');
  assert.deepEqual(traces[0].outcomes.map((o: { endpoint: { pod: { name: string } } }) => o.endpoint.pod.name).sort(),
    ['service-test-cd79b78bd-82rpx', 'service-test-cd79b78bd-bkr52', 'service-test-cd79b78bd-pq8bz', 'service-test-cd79b78bd-wtc49']);
  const unknown = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${id}/trace?service=default/nope&port=80` });
  assert.equal(unknown.statusCode, 404);
  assert.match(unknown.json().detail, /not in the manifests/);
});

test('the stateless trace names pods when manifests come with the dump', async () => {
  const res = await t.app.inject({
    method: 'POST', url: '/v1/trace',
    payload: {
      rules: example.nodes[0].rules, manifests: example.manifests,
      node: { addresses: ['10.32.11.62'] }, packet: { source: '10.42.0.7', destination: '10.43.62.130', port: 80 },
    },
  });
  assert.equal(res.statusCode, 200, res.body);
  assert.ok(res.json().outcomes.every((o: { endpoint?: { pod?: { name: string } } }) => o.endpoint?.pod?.name.startsWith('service-test-')));
  const bad = await t.app.inject({
    method: 'POST', url: '/v1/trace',
    payload: { rules: example.nodes[0].rules, manifests: '{"kind": "Service", "metadata": {"name": "x"}, "spec": {"ports": [{"port": "eighty"}]}}', node: { addresses: ['10.32.11.62'] }, packet: { source: '10.42.0.7', destination: '10.43.62.130', port: 80 } },
  });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().code, 'MANIFEST_SYNTAX');
  assert.match(bad.json().detail, /document 1/);
});

test('a stored trace answers with exactly what its response schema would write', async () => {
  // The route writes its answer with JSON.stringify (schema-kit's jsonBytes) instead of the
  // schema's serializer, which drops fields the schema lacks and coerces types: the two must agree.
  const external = Object.fromEntries(sharedSchemas.map((s) => [String(Reflect.get(s, '$id')), s]));
  const serialize = fastJson(snapshotTraceSchema, { schema: external });
  const queries = [
    'destination=10.43.62.130&port=80&source=10.32.11.62',
    'destination=10.43.62.130:80&source=10.42.0.7&node=ip-10-32-11-62',
    'service=default/service-test-nodeport&port=80&source=198.51.100.7',
    'destination=10.32.11.62&port=30080&protocol=udp&entry=OUTPUT',
    'destination=192.0.2.1&port=443',
  ];
  for (const q of queries) {
    const res = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${id}/trace?${q}` });
    assert.equal(res.statusCode, 200, res.body);
    assert.match(String(res.headers['content-type']), /^application\/json; charset=utf-8$/);
    assert.deepEqual(res.json(), JSON.parse(serialize(res.json())), q);
  }
});
