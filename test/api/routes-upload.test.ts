/**
 * Issue 14: a node's routes (`ip route` output) uploaded next to its rules — in the JSON upload,
 * as a multipart part, or put in steps — are stored by content with the node, count in the
 * snapshot's content, and decide the output interface in traces of the stored snapshot (REST and
 * GraphQL), against a real PostgreSQL.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createTestApp } from './helpers.ts';
import type { TestApp } from './helpers.ts';
import { fixture } from '../helpers.ts';

let t: TestApp;
before(async () => {
  t = await createTestApp();
});
after(async () => {
  await t?.close();
});

// kubernetes-mesos-788-1: a container's packet out meets `POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE`.
const mesos = fixture('realworld', 'kubernetes-mesos-788-1.iptables-save.txt');
const routes = fixture('routes', 'docker-host', 'ip-route.txt');
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

type Outcome = { masquerade: boolean; outInterface?: string; conditions?: string[] };

async function traceOut(id: string): Promise<Outcome[]> {
  const res = await t.app.inject({
    method: 'GET', url: `/v1/snapshots/${id}/trace?destination=93.184.216.34&port=443&source=172.17.0.26&node=node-a`,
  });
  assert.equal(res.statusCode, 200, res.body);
  return res.json().results[0].outcomes.map((o: Outcome) => ({ masquerade: o.masquerade, outInterface: o.outInterface, conditions: o.conditions }));
}

const decided = [{ masquerade: true, outInterface: 'eth0', conditions: undefined }];

async function upload(cluster: string, node: Record<string, unknown>) {
  return t.app.inject({ method: 'POST', url: `/v1/clusters/${cluster}/snapshots`, payload: { nodes: [{ name: 'node-a', addresses: ['10.0.0.5'], rules: mesos, ...node }] } });
}

test('routes in the JSON upload are stored with the node and decide the output interface in stored traces', async () => {
  const without = await upload('routes-json', {});
  assert.equal(without.statusCode, 201, without.body);
  assert.equal(without.json().snapshot.nodes[0].routes, null);
  const split = await traceOut(without.json().snapshot.id);
  assert.deepEqual(split.map((o) => [o.masquerade, o.conditions]), [
    [false, ['if the packet to 93.184.216.34 leaves through docker0']],
    [true, ['if the packet to 93.184.216.34 does not leave through docker0']],
  ]);

  const withRoutes = await upload('routes-json', { routes });
  // Routes are part of the content: the same rules with routes are a new version.
  assert.equal(withRoutes.statusCode, 201, withRoutes.body);
  const snap = withRoutes.json().snapshot;
  assert.equal(snap.version, 2);
  assert.deepEqual(snap.nodes[0].routes, { sha256: sha(routes), bytes: Buffer.byteLength(routes) });
  assert.notEqual(snap.contentHash, without.json().snapshot.contentHash);
  assert.deepEqual(await traceOut(snap.id), decided);
  // The same content again is the same snapshot.
  const again = await upload('routes-json', { routes });
  assert.equal(again.statusCode, 200);
  assert.equal(again.json().snapshot.id, snap.id);
  // Read back through the snapshot too.
  const got = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${snap.id}` });
  assert.deepEqual(got.json().nodes[0].routes, { sha256: sha(routes), bytes: Buffer.byteLength(routes) });
  // Stored as a blob: the sweep keeps it while a snapshot refers to it, and frees it after.
  const stored = async () => (await t.db.pool.query("SELECT count(*)::int AS n FROM blob WHERE encode(sha256, 'hex') = $1", [sha(routes)])).rows[0].n;
  await t.service.sweep();
  assert.equal(await stored(), 1);
  assert.equal((await t.app.inject({ method: 'DELETE', url: `/v1/snapshots/${snap.id}` })).statusCode, 204);
  await t.service.sweep();
  assert.equal(await stored(), 0);
});

test('routes that do not read are a located 400 naming the node, and nothing is stored', async () => {
  const res = await upload('routes-bad', { routes: 'default via 10.0.0.1 dev eth0\nvia 10.0.0.1 dev eth0\n' });
  assert.equal(res.statusCode, 400, res.body);
  const p = res.json();
  assert.equal(p.code, 'DUMP_SYNTAX');
  assert.equal(p.node, 'node-a');
  assert.deepEqual([p.line, p.column, p.text], [2, 1, 'via 10.0.0.1 dev eth0']);
  assert.match(p.detail, /node node-a: routes: 'via' is not a route destination/);
  const clusters = await t.app.inject({ method: 'GET', url: '/v1/clusters' });
  assert.deepEqual(clusters.json().items.filter((c: { name: string }) => c.name === 'routes-bad'), []);
});

test('routes put in steps (after the rules, kept when the rules are put again) and as a multipart part', async () => {
  const begun = await t.app.inject({ method: 'POST', url: '/v1/clusters/routes-steps/uploads' });
  const id = begun.json().id;
  const putRoutes = (node: string, body: string) => t.app.inject({
    method: 'PUT', url: `/v1/uploads/${id}/nodes/${node}/routes`, payload: body, headers: { 'content-type': 'text/plain' },
  });
  // Routes before the node's rules: there is no node to put them on yet.
  const early = await putRoutes('node-a', routes);
  assert.equal(early.statusCode, 404, early.body);
  assert.match(early.json().detail, /put its rules first/);
  const put = (q = '') => t.app.inject({ method: 'PUT', url: `/v1/uploads/${id}/nodes/node-a${q}`, payload: mesos, headers: { 'content-type': 'text/plain' } });
  assert.equal((await put('?addresses=10.0.0.5')).json().node.routes, null);
  const r = await putRoutes('node-a', routes);
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(r.json(), { sha256: sha(routes), bytes: Buffer.byteLength(routes) });
  const bad = await putRoutes('node-a', 'nonsense here\n');
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().line, 1);
  // The rules put again keep the routes.
  assert.deepEqual((await put('?addresses=10.0.0.5')).json().node.routes, { sha256: sha(routes), bytes: Buffer.byteLength(routes) });
  const done = await t.app.inject({ method: 'POST', url: `/v1/uploads/${id}/commit`, payload: {} });
  assert.equal(done.statusCode, 201, done.body);
  assert.deepEqual(await traceOut(done.json().snapshot.id), decided);

  // multipart: routes.<node> before or after the node's dump.
  for (const order of ['before', 'after'] as const) {
    const boundary = 'svcpathroutes';
    const part = (name: string, value: string) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
    const parts = [part('addresses.node-a', '10.0.0.5'), part('node-a', mesos)];
    if (order === 'before') parts.unshift(part('routes.node-a', routes));
    else parts.push(part('routes.node-a', routes));
    const res = await t.app.inject({
      method: 'POST', url: `/v1/clusters/routes-multipart-${order}/snapshots`,
      payload: `${parts.join('')}--${boundary}--\r\n`, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    });
    assert.equal(res.statusCode, 201, res.body);
    assert.deepEqual(res.json().snapshot.nodes[0].routes, { sha256: sha(routes), bytes: Buffer.byteLength(routes) });
    assert.deepEqual(await traceOut(res.json().snapshot.id), decided);
  }
});

test('GraphQL: routes given with a node in createSnapshot decide stored traces', async () => {
  const mutation = `mutation($input: SnapshotInput!) { createSnapshot(cluster: "routes-gql", input: $input) { snapshot { id nodes { name routes { sha256 bytes } } } } }`;
  const variables = { input: { nodes: [{ name: 'node-a', addresses: ['10.0.0.5'], rules: mesos, routes }] } };
  const created = await t.app.inject({ method: 'POST', url: '/graphql', payload: { query: mutation, variables } });
  assert.equal(created.statusCode, 200, created.body);
  const snap = created.json().data.createSnapshot.snapshot;
  assert.deepEqual(snap.nodes, [{ name: 'node-a', routes: { sha256: sha(routes), bytes: Buffer.byteLength(routes) } }]);
  const query = `{ snapshot(id: "${snap.id}") { trace(destination: "93.184.216.34", port: 443, source: "172.17.0.26", node: "node-a") {
    outcomes { masquerade outInterface conditions } } } }`;
  const res = await t.app.inject({ method: 'POST', url: '/graphql', payload: { query } });
  assert.equal(res.statusCode, 200, res.body);
  assert.deepEqual(res.json().data.snapshot.trace[0].outcomes, [{ masquerade: true, outInterface: 'eth0', conditions: null }]);
});
