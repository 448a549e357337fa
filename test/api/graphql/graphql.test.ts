import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { AppError } from '../../../src/app-error.ts';
import { syntaxError } from '../../../src/engine/errors.ts';
import { graphqlPlugin } from '../../../src/api/graphql/index.ts';
import type { SnapshotService } from '../../../src/services/snapshot-types.ts';
import { fixture } from '../../helpers.ts';
import { fakeSnapshots } from './fake-snapshots.ts';

const clusterip = fixture('k3s-blog', 'clusterip.iptables-S.txt');

interface Result {
  data?: any;
  errors?: Array<{ message: string; path?: readonly (string | number)[]; extensions?: Record<string, unknown> }>;
}

async function appWith(service: SnapshotService): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(graphqlPlugin, { snapshotService: service });
  await app.ready();
  return app;
}

/** app.graphql(), with the answer as plain JSON (graphql-js builds null-prototype objects). */
async function gql(app: FastifyInstance, query: string, variables?: Record<string, unknown>): Promise<Result> {
  return JSON.parse(JSON.stringify(await app.graphql(query, {}, variables))) as Result;
}

/** A small dump that differs by `n`, so each upload is a new snapshot. */
function dump(n: number): string {
  return `*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d 10.0.0.${n}/32 -j ACCEPT\nCOMMIT\n`;
}

async function seed(service: SnapshotService, cluster: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 1; i <= count; i++) {
    const r = await service.create(cluster, { nodes: [{ name: `node-${i}`, addresses: [`10.1.0.${i}`], rules: dump(i) }] });
    ids.push(r.snapshot.id);
  }
  return ids;
}

const K3S_QUERY = (id: string) => `{ snapshot(id: "${id}") { id cluster version createdAt nodes { name addresses }
    trace(destination: "10.43.62.130", port: 80, protocol: "tcp", source: "10.42.0.7", node: "node-a") {
      node warnings { code message node } outcomes { probability verdict masquerade delivery
        destination { ip port } path { table chain index rule action } } } } }`;

test('the k3s ClusterIP query answers with every outcome and its path', async () => {
  const { service, calls } = fakeSnapshots();
  const app = await appWith(service);
  const { snapshot } = await service.create('k3s', {
    nodes: [
      { name: 'node-a', addresses: ['10.32.11.62'], rules: clusterip, format: 'iptables-S', table: 'nat' },
      { name: 'node-b', addresses: ['10.32.11.63'], rules: clusterip, format: 'iptables-S', table: 'nat' },
    ],
  });
  const res = await gql(app, K3S_QUERY(snapshot.id));
  assert.equal(res.errors, undefined);
  const s = res.data.snapshot;
  assert.deepEqual(
    { id: s.id, cluster: s.cluster, version: s.version, createdAt: s.createdAt },
    { id: snapshot.id, cluster: 'k3s', version: 1, createdAt: snapshot.createdAt },
  );
  assert.deepEqual(s.nodes, [
    { name: 'node-a', addresses: ['10.32.11.62'] },
    { name: 'node-b', addresses: ['10.32.11.63'] },
  ]);
  assert.equal(s.trace.length, 1);
  const [t] = s.trace;
  assert.equal(t.node, 'node-a');
  assert.ok(Array.isArray(t.warnings) && t.warnings.every((w: { code: unknown; message: unknown }) => typeof w.code === 'string' && typeof w.message === 'string'));
  assert.equal(t.outcomes.length, 4);
  assert.deepEqual(
    t.outcomes.map((o: any) => `${o.destination.ip}:${o.destination.port}`),
    ['10.42.0.43:8080', '10.42.0.44:8080', '10.42.1.41:8080', '10.42.1.42:8080'],
  );
  const first = t.outcomes[0];
  assert.deepEqual(Object.keys(first), ['probability', 'verdict', 'masquerade', 'delivery', 'destination', 'path']);
  assert.equal(first.probability, 0.25);
  assert.equal(first.verdict, 'DNAT');
  assert.equal(first.masquerade, false);
  assert.equal(first.delivery, 'forward');
  assert.deepEqual(Object.keys(first.path[0]), ['table', 'chain', 'index', 'rule', 'action']);
  const svc = first.path.find((p: any) => p.chain === 'KUBE-SERVICES');
  assert.deepEqual({ table: svc.table, index: svc.index, action: svc.action }, { table: 'nat', index: 1, action: 'jump' });
  assert.match(svc.rule, /10\.43\.62\.130/);

  // Over HTTP (where mercurius's loaders run) the answer is the same, and the nodes get()
  // returned are used as they are.
  const http = await app.inject({ method: 'POST', url: '/graphql', payload: { query: K3S_QUERY(snapshot.id) } });
  assert.equal(http.statusCode, 200);
  assert.deepEqual(http.json(), res);
  assert.deepEqual(calls.nodesOf, []);
  await app.close();
});

test('a trace over HTTP gives the same answer, with the rest of the outcome and warning fields', async () => {
  const { service, calls } = fakeSnapshots();
  const app = await appWith(service);
  const { snapshot } = await service.create('k3s', {
    nodes: [{ name: 'node-a', addresses: ['10.32.11.62'], rules: clusterip, format: 'iptables-S', table: 'nat' }],
  });
  const res = await app.inject({
    method: 'POST',
    url: '/graphql',
    payload: {
      query: `query ($id: ID!) { snapshot(id: $id) { trace(destination: "10.43.62.130", port: 80, entry: "PREROUTING", inInterface: "eth0", sourcePort: 40000) {
        node entry packet { source destination port protocol sourcePort } assumptions
        warnings { code message rule { table chain index line text } }
        warningDetails { code message rule { table chain index line text } }
        outcomes { probability exactProbability snat { ip port } rejectWith mark notes path { hook line assumed } } } } }`,
      variables: { id: snapshot.id },
    },
  });
  assert.equal(res.statusCode, 200);
  const body = res.json<Result>();
  assert.equal(body.errors, undefined);
  const [t] = body.data.snapshot.trace;
  assert.equal(t.entry, 'PREROUTING');
  assert.deepEqual(t.packet, { source: '203.0.113.10', destination: '10.43.62.130', port: 80, protocol: 'tcp', sourcePort: 40000 });
  assert.deepEqual(t.warnings, t.warningDetails);
  assert.equal(t.outcomes.length, 4);
  assert.equal(t.outcomes[0].exactProbability, '1/4');
  assert.equal(typeof t.outcomes[0].mark, 'string');
  assert.equal(t.outcomes[0].path[0].hook, 'PREROUTING');
  assert.deepEqual(calls.trace[0].query, {
    destination: '10.43.62.130', port: 80, entry: 'PREROUTING', sourcePort: 40000, inInterface: 'eth0',
  });
  await app.close();
});

test('listing snapshots with their nodes asks the service for nodes once (app.graphql)', async () => {
  const { service, calls } = fakeSnapshots();
  const app = await appWith(service);
  const ids = await seed(service, 'big', 20);
  const res = await gql(app, '{ snapshots(cluster: "big", first: 20) { edges { node { id version nodes { name addresses } } } } }');
  assert.equal(res.errors, undefined);
  const edges = res.data.snapshots.edges;
  assert.equal(edges.length, 20);
  assert.equal(calls.nodesOf.length, 1);
  assert.deepEqual([...calls.nodesOf[0]].sort(), [...ids].sort());
  for (const { node } of edges) assert.deepEqual(node.nodes, [{ name: `node-${node.version}`, addresses: [`10.1.0.${node.version}`] }]);
  assert.equal(calls.get.length, 0);
  await app.close();
});

test('listing snapshots with their nodes asks the service for nodes once (HTTP, mercurius loaders)', async () => {
  const { service, calls } = fakeSnapshots();
  const app = await appWith(service);
  await seed(service, 'big', 12);
  const res = await app.inject({
    method: 'POST',
    url: '/graphql',
    payload: { query: '{ snapshots(cluster: "big", first: 20) { edges { node { id nodes { name } } } } }' },
  });
  assert.equal(res.statusCode, 200);
  const body = res.json<Result>();
  assert.equal(body.errors, undefined);
  assert.equal(body.data.snapshots.edges.length, 12);
  assert.equal(calls.nodesOf.length, 1);
  assert.equal(calls.nodesOf[0].length, 12);
  await app.close();
});

test('a single snapshot uses the nodes get() returned; no nodesOf call', async () => {
  const { service, calls } = fakeSnapshots();
  const app = await appWith(service);
  const [id] = await seed(service, 'one', 1);
  const res = await gql(app, `{ snapshot(id: "${id}") { nodes { name format sha256 bytes rules tables { name chains rules } diagnostics { severity code message line text } } } }`);
  assert.equal(res.errors, undefined);
  const [node] = res.data.snapshot.nodes;
  assert.equal(node.name, 'node-1');
  assert.equal(node.format, 'iptables-save');
  assert.equal(node.rules, 1);
  assert.deepEqual(node.tables, [{ name: 'nat', chains: 1, rules: 1 }]);
  assert.deepEqual(calls.nodesOf, []);
  await app.close();
});

test('pagination: endCursor is the service cursor; every edge cursor continues after its edge', async () => {
  const { service, calls } = fakeSnapshots();
  const app = await appWith(service);
  await seed(service, 'paged', 5);
  const page = (after?: string, first = 2) =>
    gql(app, 'query ($after: String, $first: Int) { snapshots(cluster: "paged", first: $first, after: $after) { edges { cursor node { version } } pageInfo { hasNextPage endCursor } } }', { after, first });
  const versions = (r: Result) => r.data.snapshots.edges.map((e: any) => e.node.version);

  const p1 = await page();
  assert.deepEqual(versions(p1), [5, 4]);
  assert.deepEqual(p1.data.snapshots.pageInfo, { hasNextPage: true, endCursor: 'before-v4' });
  assert.equal(p1.data.snapshots.edges[1].cursor, 'before-v4');

  const p2 = await page(p1.data.snapshots.pageInfo.endCursor);
  assert.deepEqual(versions(p2), [3, 2]);
  const p3 = await page(p2.data.snapshots.pageInfo.endCursor);
  assert.deepEqual(versions(p3), [1]);
  assert.deepEqual(p3.data.snapshots.pageInfo, { hasNextPage: false, endCursor: null });

  // The cursor of an edge inside a page: the next page starts right after that edge.
  calls.listSnapshots.length = 0;
  const fromInner = await page(p1.data.snapshots.edges[0].cursor, 3);
  assert.deepEqual(versions(fromInner), [4, 3, 2]);
  assert.deepEqual(fromInner.data.snapshots.pageInfo, { hasNextPage: true, endCursor: 'before-v2' });
  assert.equal(calls.listSnapshots.length, 1, 'an edge cursor is a service cursor: one call');
  // And the last page's last edge still has a cursor, after which nothing is left.
  const end = await page(p3.data.snapshots.edges[0].cursor);
  assert.deepEqual(versions(end), []);
  assert.deepEqual(end.data.snapshots.pageInfo, { hasNextPage: false, endCursor: null });

  const bad = await page('o.not-json');
  assert.equal(bad.errors?.[0].extensions?.code, 'VALIDATION');
  const tooMany = await page(undefined, 101);
  assert.equal(tooMany.errors?.[0].extensions?.code, 'VALIDATION');
  const defaults = await gql(app, '{ snapshots(cluster: "paged") { edges { node { version } } pageInfo { hasNextPage } } }');
  assert.equal(defaults.data.snapshots.edges.length, 5);
  assert.equal(calls.listSnapshots.at(-1)?.limit, 20);
  await app.close();
});

test('a snapshot that does not exist is null, not an error', async () => {
  const { service } = fakeSnapshots();
  const app = await appWith(service);
  const res = await gql(app, '{ snapshot(id: "missing") { id nodes { name } } }');
  assert.deepEqual(res, { data: { snapshot: null } });
  await app.close();
});

test('a bad protocol or entry is a VALIDATION error in extensions.code', async () => {
  const { service, calls } = fakeSnapshots();
  const app = await appWith(service);
  const [id] = await seed(service, 'v', 1);
  for (const args of ['protocol: "http"', 'entry: "INPUT"', 'port: 70000']) {
    const res = await gql(app, `{ snapshot(id: "${id}") { id trace(destination: "10.0.0.1", ${args.startsWith('port') ? args : `port: 80, ${args}`}) { node } } }`);
    assert.equal(res.data.snapshot, null, args);
    assert.equal(res.errors?.length, 1, args);
    assert.equal(res.errors?.[0].extensions?.code, 'VALIDATION', args);
    assert.deepEqual(res.errors?.[0].path, ['snapshot', 'trace'], args);
  }
  assert.equal(calls.trace.length, 0);

  // Over HTTP the error travels in a 200 response, as GraphQL errors beside data do.
  const res = await app.inject({
    method: 'POST', url: '/graphql',
    payload: { query: `{ snapshot(id: "${id}") { trace(destination: "10.0.0.1", port: 80, protocol: "http") { node } } }` },
  });
  assert.equal(res.statusCode, 200);
  assert.equal((res.json<Result>()).errors?.[0].extensions?.code, 'VALIDATION');
  await app.close();
});

test('createSnapshot passes the input through to the service and returns the payload', async () => {
  const { service, calls } = fakeSnapshots();
  const app = await appWith(service);
  const mutation = `mutation ($cluster: String!, $input: SnapshotInput!) {
    createSnapshot(cluster: $cluster, input: $input) {
      created snapshot { id cluster version labels { key value } manifests { sha256 bytes } nodes { name addresses format } }
    } }`;
  const input = {
    labels: [{ key: 'team', value: 'net' }, { key: 'env', value: 'prod' }],
    nodes: [
      { name: 'node-a', addresses: ['10.32.11.62'], rules: clusterip, format: 'iptables-S', table: 'nat' },
      { name: 'node-b', addresses: [], rules: dump(1) },
    ],
    manifests: '{"kind":"List","items":[]}',
  };
  const res = await gql(app, mutation, { cluster: 'prod', input });
  assert.equal(res.errors, undefined);
  assert.deepEqual(calls.create, [{
    cluster: 'prod',
    upload: {
      labels: { team: 'net', env: 'prod' },
      nodes: [
        { name: 'node-a', addresses: ['10.32.11.62'], rules: clusterip, format: 'iptables-S', table: 'nat' },
        { name: 'node-b', addresses: [], rules: dump(1) },
      ],
      manifests: '{"kind":"List","items":[]}',
    },
  }]);
  const payload = res.data.createSnapshot;
  assert.equal(payload.created, true);
  assert.equal(payload.snapshot.cluster, 'prod');
  assert.equal(payload.snapshot.version, 1);
  assert.deepEqual(payload.snapshot.labels, [{ key: 'env', value: 'prod' }, { key: 'team', value: 'net' }]);
  assert.equal(payload.snapshot.manifests.bytes, 26);
  assert.deepEqual(payload.snapshot.nodes, [
    { name: 'node-a', addresses: ['10.32.11.62'], format: 'iptables-S' },
    { name: 'node-b', addresses: [], format: 'iptables-save' },
  ]);
  assert.deepEqual(calls.nodesOf, []);

  const again = await gql(app, mutation, { cluster: 'prod', input });
  assert.equal(again.data.createSnapshot.created, false);
  assert.equal(again.data.createSnapshot.snapshot.id, payload.snapshot.id);

  const dup = await gql(app, mutation, { cluster: 'prod', input: { ...input, labels: [{ key: 'a', value: '1' }, { key: 'a', value: '2' }] } });
  assert.equal(dup.errors?.[0].extensions?.code, 'VALIDATION');
  const badFormat = await gql(app, mutation, { cluster: 'prod', input: { nodes: [{ ...input.nodes[1], format: 'nft' }] } });
  assert.equal(badFormat.errors?.[0].extensions?.code, 'VALIDATION');
  assert.equal(calls.create.length, 2);
  await app.close();
});

test('an AppError DUMP_SYNTAX comes out with its code, line, column and text', async () => {
  const { service } = fakeSnapshots();
  const app = await appWith({
    ...service,
    create: async () => {
      throw new AppError('DUMP_SYNTAX', 'node node-a: unknown option --bogus (line 3, column 14)', {
        node: 'node-a', line: 3, column: 14, text: '-A KUBE-SVC-X --bogus', excerpt: '3 | -A KUBE-SVC-X --bogus\n                 ^',
      });
    },
  });
  const res = await gql(app, 'mutation { createSnapshot(cluster: "c", input: { nodes: [{ name: "node-a", addresses: [], rules: "x" }] }) { created } }');
  assert.equal(res.data, null);
  assert.equal(res.errors?.length, 1);
  assert.equal(res.errors?.[0].message, 'node node-a: unknown option --bogus (line 3, column 14)');
  assert.deepEqual(res.errors?.[0].path, ['createSnapshot']);
  assert.deepEqual(res.errors?.[0].extensions, { code: 'DUMP_SYNTAX', line: 3, column: 14, text: '-A KUBE-SVC-X --bogus' });
  await app.close();
});

test('an EngineError is mapped like the AppError it stands for', async () => {
  const { service } = fakeSnapshots();
  const app = await appWith({
    ...service,
    create: async () => {
      throw syntaxError('missing COMMIT', 7, 1, '*filter');
    },
  });
  const res = await gql(app, 'mutation { createSnapshot(cluster: "c", input: { nodes: [{ name: "n", addresses: [], rules: "x" }] }) { created } }');
  assert.deepEqual(res.errors?.[0].extensions, { code: 'DUMP_SYNTAX', line: 7, column: 1, text: '*filter' });
  await app.close();
});

test('5xx errors keep their code but not their message', async () => {
  const { service } = fakeSnapshots();
  const secret = 'connect ECONNREFUSED postgres://svcpath:hunter2@10.0.0.5/svcpath';
  const unexpected = await appWith({ ...service, listClusters: async () => { throw new Error(secret); } });
  const res = await gql(unexpected, '{ clusters { name } }');
  assert.deepEqual(res.errors?.map((e) => [e.message, e.extensions]), [['an unexpected error occurred', { code: 'INTERNAL' }]]);
  const http = await unexpected.inject({ method: 'POST', url: '/graphql', payload: { query: '{ clusters { name } }' } });
  assert.doesNotMatch(http.body, /hunter2|ECONNREFUSED/);
  assert.equal(http.json<Result>().errors?.[0].extensions?.code, 'INTERNAL');
  await unexpected.close();

  const down = await appWith({ ...service, listClusters: async () => { throw new AppError('UNAVAILABLE', secret); } });
  const res2 = await gql(down, '{ clusters { name } }');
  assert.equal(res2.errors?.[0].extensions?.code, 'UNAVAILABLE');
  assert.doesNotMatch(res2.errors?.[0].message ?? '', /hunter2/);
  await down.close();
});

test('clusters and deleteSnapshot', async () => {
  const { service } = fakeSnapshots();
  const app = await appWith(service);
  const ids = await seed(service, 'alpha', 2);
  await seed(service, 'beta', 1);
  const res = await gql(app, '{ clusters { name createdAt snapshotCount latest { id version createdAt } } }');
  assert.equal(res.errors, undefined);
  assert.deepEqual(res.data.clusters.map((c: any) => [c.name, c.snapshotCount, c.latest.id, c.latest.version]), [
    ['alpha', 2, ids[1], 2],
    ['beta', 1, 'snap-3', 1],
  ]);
  const del = `mutation { deleteSnapshot(id: "${ids[0]}") }`;
  assert.deepEqual(await gql(app, del), { data: { deleteSnapshot: true } });
  assert.deepEqual(await gql(app, del), { data: { deleteSnapshot: false } });
  await app.close();
});

test('GraphiQL is served, and a query that does not parse is still a 400 from mercurius', async () => {
  const { service } = fakeSnapshots();
  const app = await appWith(service);
  const ui = await app.inject({ method: 'GET', url: '/graphiql' });
  assert.equal(ui.statusCode, 200);
  assert.match(String(ui.headers['content-type']), /text\/html/);
  const bad = await app.inject({ method: 'POST', url: '/graphql', payload: { query: '{ snapshot(id: ' } });
  assert.equal(bad.statusCode, 400);
  assert.match(bad.json<Result>().errors?.[0].message ?? '', /Syntax Error/);
  await app.close();
});
