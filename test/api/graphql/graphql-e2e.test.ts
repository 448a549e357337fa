/** GraphQL over the real service and PostgreSQL: the contract query, listing, the mutation. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestApp } from '../helpers.ts';
import type { TestApp } from '../helpers.ts';
import { fixture } from '../../helpers.ts';

let t: TestApp;
before(async () => {
  t = await createTestApp();
});
after(async () => {
  await t?.close();
});

const clusterip = fixture('k3s-blog', 'clusterip.iptables-S.txt');

test('createSnapshot, then the contract trace query, over HTTP', async () => {
  const mutation = `mutation($input: SnapshotInput!) { createSnapshot(cluster: "gql", input: $input) { created snapshot { id version } } }`;
  const variables = { input: { labels: [{ key: 'ci.job', value: '1' }], nodes: [{ name: 'node-a', addresses: ['10.32.11.62'], rules: clusterip }] } };
  const created = await t.app.inject({ method: 'POST', url: '/graphql', payload: { query: mutation, variables } });
  assert.equal(created.statusCode, 200, created.body);
  const { id, version } = created.json().data.createSnapshot.snapshot;
  assert.equal(version, 1);
  const query = `{ snapshot(id: "${id}") { id cluster version createdAt nodes { name addresses }
    trace(destination: "10.43.62.130", port: 80, protocol: "tcp", source: "10.42.0.7", node: "node-a") {
      node warnings { code message node } outcomes { probability verdict masquerade delivery
        destination { ip port } path { table chain index rule action } } } } }`;
  const res = await t.app.inject({ method: 'POST', url: '/graphql', payload: { query } });
  assert.equal(res.statusCode, 200, res.body);
  const snap = res.json().data.snapshot;
  assert.equal(snap.cluster, 'gql');
  assert.deepEqual(snap.nodes, [{ name: 'node-a', addresses: ['10.32.11.62'] }]);
  const [trace] = snap.trace;
  assert.equal(trace.node, 'node-a');
  assert.ok(trace.warnings.some((w: { message: string; node: string }) => /not exactly 1\/4/.test(w.message) && w.node === 'node-a'));
  assert.deepEqual(trace.outcomes.map((o: { destination: { ip: string } }) => o.destination.ip), ['10.42.0.43', '10.42.0.44', '10.42.1.41', '10.42.1.42']);
  const o = trace.outcomes[0];
  assert.equal(o.verdict, 'DNAT');
  assert.equal(o.masquerade, false);
  assert.equal(o.delivery, 'forward');
  assert.deepEqual(o.path[1], {
    table: 'nat', chain: 'KUBE-SERVICES', index: 1,
    rule: '-A KUBE-SERVICES -d 10.43.62.130/32 -p tcp -m comment --comment "default/service-test cluster IP" -m tcp --dport 80 -j KUBE-SVC-GBTMB5ZTD56ECL5F',
    action: 'jump',
  });
});

test('listing snapshots with their nodes, and errors with codes', async () => {
  for (let i = 0; i < 3; i++) {
    await t.app.inject({ method: 'POST', url: '/v1/clusters/gql-list/snapshots', payload: { nodes: [{ name: 'n', addresses: [], rules: `${clusterip}# ${i}\n` }] } });
  }
  const res = await t.app.graphql(`{ clusters { name snapshotCount } snapshots(cluster: "gql-list", first: 2) { edges { node { version nodes { name } } } pageInfo { hasNextPage endCursor } } }`);
  const data = res.data as { clusters: { name: string; snapshotCount: number }[]; snapshots: { edges: { node: { version: number } }[]; pageInfo: { hasNextPage: boolean } } };
  assert.ok(data.clusters.some((c) => c.name === 'gql-list' && c.snapshotCount === 3));
  assert.deepEqual(data.snapshots.edges.map((e) => e.node.version), [3, 2]);
  assert.equal(data.snapshots.pageInfo.hasNextPage, true);
  const bad = await t.app.inject({
    method: 'POST', url: '/graphql',
    payload: { query: 'mutation { createSnapshot(cluster: "gql", input: { nodes: [{ name: "x", addresses: [], rules: "*nat\\n-A X -j\\nCOMMIT\\n" }] }) { created } }' },
  });
  const err = bad.json().errors[0];
  assert.equal(err.extensions.code, 'DUMP_SYNTAX');
  assert.equal(err.extensions.line, 2);
  const gi = await t.app.inject({ method: 'GET', url: '/graphiql' });
  assert.equal(gi.statusCode, 200);
});
