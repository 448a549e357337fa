/**
 * Tokens, route by route: every REST route and every GraphQL root field, for each kind of caller
 * (no token, a bad one, a malformed header, a revoked one, read and write tokens on `prod-*`, a
 * stored admin token, SVCPATH_ADMIN_TOKEN), on a cluster the token covers and on one it does not.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { InjectOptions } from 'fastify';
import { ROUTE_ACCESS } from '../../src/api/rest/access.ts';
import { FIELD_ACCESS } from '../../src/api/graphql/access.ts';
import { matchCluster } from '../../src/services/access.ts';
import { createAuthApp } from './auth-helpers.ts';
import type { AuthApp } from './auth-helpers.ts';

const k3s = (await import('../../examples/k3s/snapshot.json', { with: { type: 'json' } })).default as {
  nodes: Array<{ name: string; addresses: string[]; rules: string }>; manifests: string;
};
const RULES = k3s.nodes[0].rules;
const ADDRESSES = k3s.nodes[0].addresses;
const ENV_ADMIN = 'env-admin-secret-0123456789';
const IN = 'prod-eu';
const OUT = 'dev-1';
type Cluster = typeof IN | typeof OUT;

let t: AuthApp;
const secrets: Record<string, string> = {};
const ids: { prodA: string; prodB: string; dev: string } = { prodA: '', prodB: '', dev: '' };
let counter = 0;

/** A snapshot no other has the content of, in `cluster`. */
async function freshSnapshot(cluster: string): Promise<string> {
  const r = await t.service.create(cluster, { nodes: [{ name: `fresh-${++counter}`, addresses: ADDRESSES, rules: RULES }] });
  return r.snapshot.id;
}

async function freshUpload(cluster: string, withNode = false): Promise<string> {
  const u = await t.service.beginUpload(cluster);
  if (withNode) await t.service.putNode(u.id, { name: `staged-${++counter}`, addresses: ADDRESSES, rules: Buffer.from(RULES) });
  return u.id;
}

before(async () => {
  t = await createAuthApp({ mode: 'auto', adminToken: ENV_ADMIN, loopback: true });
  ids.prodA = (await t.service.create(IN, { nodes: k3s.nodes, manifests: k3s.manifests })).snapshot.id;
  ids.prodB = await freshSnapshot(IN);
  ids.dev = (await t.service.create(OUT, { nodes: k3s.nodes, manifests: k3s.manifests })).snapshot.id;
  for (const [name, scopes, clusters] of [
    ['reader', ['read'], ['prod-*']],
    ['writer', ['write'], ['prod-*']],
    ['admin', ['admin'], undefined],
    ['revoked', ['read', 'write'], ['*']],
  ] as const) {
    secrets[name] = (await t.tokens.create({ name, scopes, ...(clusters ? { clusters } : {}) })).secret;
  }
  await t.tokens.revoke('revoked');
});
after(async () => {
  await t?.close();
});

type Caller = 'none' | 'bad' | 'malformed' | 'revoked' | 'reader' | 'writer' | 'admin' | 'envAdmin';
const CALLERS: readonly Caller[] = ['none', 'bad', 'malformed', 'revoked', 'reader', 'writer', 'admin', 'envAdmin'];

function authHeader(caller: Caller): Record<string, string> {
  switch (caller) {
    case 'none': return {};
    case 'bad': return { authorization: `Bearer svcp_${'x'.repeat(43)}` };
    case 'malformed': return { authorization: 'Basic dXNlcjpwYXNz' };
    case 'envAdmin': return { authorization: `Bearer ${ENV_ADMIN}` };
    default: return { authorization: `Bearer ${secrets[caller]}` };
  }
}

/** What a caller gets: 401, 403, or the route's success. */
function expected(caller: Caller, scope: 'read' | 'write' | 'admin', cluster: Cluster, ok: 'ok'): 401 | 403 | 'ok' {
  if (caller === 'none' || caller === 'bad' || caller === 'malformed' || caller === 'revoked') return 401;
  if (caller === 'admin' || caller === 'envAdmin') return ok;
  const holds = (caller === 'reader' && scope === 'read') || (caller === 'writer' && scope === 'write');
  if (!holds) return 403;
  return cluster === IN ? ok : 403;
}

interface RouteCase {
  readonly route: string;
  readonly scope: 'read' | 'write' | 'admin';
  /** Whether the route names a cluster (directly or through a snapshot or upload). */
  readonly bound: boolean;
  readonly ok: readonly number[];
  request(cluster: Cluster): Promise<InjectOptions>;
}

const snapshotOf = (c: Cluster) => (c === IN ? ids.prodA : ids.dev);

const ROUTES: readonly RouteCase[] = [
  {
    route: 'POST /v1/trace', scope: 'read', bound: false, ok: [200],
    request: async () => ({ method: 'POST', url: '/v1/trace', payload: { rules: RULES, node: { addresses: ADDRESSES }, packet: { source: '10.42.0.7', destination: '10.43.62.130', port: 80, protocol: 'tcp' } } }),
  },
  { route: 'GET /v1/clusters', scope: 'read', bound: false, ok: [200], request: async () => ({ method: 'GET', url: '/v1/clusters' }) },
  { route: 'GET /v1/clusters/:cluster/snapshots', scope: 'read', bound: true, ok: [200], request: async (c) => ({ method: 'GET', url: `/v1/clusters/${c}/snapshots` }) },
  {
    route: 'POST /v1/clusters/:cluster/snapshots', scope: 'write', bound: true, ok: [201],
    request: async (c) => ({ method: 'POST', url: `/v1/clusters/${c}/snapshots`, payload: { nodes: [{ name: `posted-${++counter}`, addresses: ADDRESSES, rules: RULES }] } }),
  },
  { route: 'GET /v1/clusters/:cluster/snapshots/latest', scope: 'read', bound: true, ok: [200], request: async (c) => ({ method: 'GET', url: `/v1/clusters/${c}/snapshots/latest` }) },
  { route: 'GET /v1/clusters/:cluster/snapshots/:version', scope: 'read', bound: true, ok: [200], request: async (c) => ({ method: 'GET', url: `/v1/clusters/${c}/snapshots/1` }) },
  { route: 'GET /v1/snapshots/:id', scope: 'read', bound: true, ok: [200], request: async (c) => ({ method: 'GET', url: `/v1/snapshots/${snapshotOf(c)}` }) },
  {
    route: 'GET /v1/snapshots/:id/nodes/:node/rules', scope: 'read', bound: true, ok: [200],
    request: async (c) => ({ method: 'GET', url: `/v1/snapshots/${snapshotOf(c)}/nodes/${k3s.nodes[0].name}/rules` }),
  },
  {
    route: 'GET /v1/snapshots/:id/trace', scope: 'read', bound: true, ok: [200],
    request: async (c) => ({ method: 'GET', url: `/v1/snapshots/${snapshotOf(c)}/trace?destination=10.43.62.130&port=80&source=10.42.0.7` }),
  },
  { route: 'GET /v1/snapshots/:id/audit', scope: 'read', bound: true, ok: [200], request: async (c) => ({ method: 'GET', url: `/v1/snapshots/${snapshotOf(c)}/audit` }) },
  { route: 'DELETE /v1/snapshots/:id', scope: 'admin', bound: true, ok: [204], request: async (c) => ({ method: 'DELETE', url: `/v1/snapshots/${await freshSnapshot(c)}` }) },
  {
    route: 'GET /v1/diff', scope: 'read', bound: true, ok: [200],
    // Out of scope: one side in a cluster the token does not cover is enough.
    request: async (c) => ({ method: 'GET', url: `/v1/diff?from=${ids.prodA}&to=${c === IN ? ids.prodB : ids.dev}` }),
  },
  { route: 'POST /v1/clusters/:cluster/uploads', scope: 'write', bound: true, ok: [201], request: async (c) => ({ method: 'POST', url: `/v1/clusters/${c}/uploads` }) },
  { route: 'GET /v1/uploads/:id', scope: 'write', bound: true, ok: [200], request: async (c) => ({ method: 'GET', url: `/v1/uploads/${await freshUpload(c)}` }) },
  {
    route: 'PUT /v1/uploads/:id/nodes/:node', scope: 'write', bound: true, ok: [200],
    request: async (c) => ({ method: 'PUT', url: `/v1/uploads/${await freshUpload(c)}/nodes/n1?addresses=${ADDRESSES[0]}`, payload: RULES, headers: { 'content-type': 'text/plain' } }),
  },
  {
    route: 'PUT /v1/uploads/:id/nodes/:node/routes', scope: 'write', bound: true, ok: [200],
    request: async (c) => {
      const id = await freshUpload(c);
      await t.service.putNode(id, { name: 'n1', addresses: ADDRESSES, rules: Buffer.from(RULES) });
      return { method: 'PUT', url: `/v1/uploads/${id}/nodes/n1/routes`, payload: 'default via 10.0.0.1 dev eth0\n', headers: { 'content-type': 'text/plain' } };
    },
  },
  {
    route: 'PUT /v1/uploads/:id/manifests', scope: 'write', bound: true, ok: [200],
    request: async (c) => ({ method: 'PUT', url: `/v1/uploads/${await freshUpload(c)}/manifests`, payload: k3s.manifests, headers: { 'content-type': 'text/plain' } }),
  },
  {
    route: 'POST /v1/uploads/:id/commit', scope: 'write', bound: true, ok: [200, 201],
    request: async (c) => ({ method: 'POST', url: `/v1/uploads/${await freshUpload(c, true)}/commit`, payload: { labels: { by: 'test' } } }),
  },
  { route: 'DELETE /v1/uploads/:id', scope: 'write', bound: true, ok: [204], request: async (c) => ({ method: 'DELETE', url: `/v1/uploads/${await freshUpload(c)}` }) },
  {
    route: 'POST /v1/tokens', scope: 'admin', bound: false, ok: [201],
    request: async () => ({ method: 'POST', url: '/v1/tokens', payload: { name: `made-${++counter}`, scopes: ['read'], clusters: ['prod-*'] } }),
  },
  { route: 'GET /v1/tokens', scope: 'admin', bound: false, ok: [200], request: async () => ({ method: 'GET', url: '/v1/tokens' }) },
  {
    route: 'DELETE /v1/tokens/:id', scope: 'admin', bound: false, ok: [204],
    request: async () => ({ method: 'DELETE', url: `/v1/tokens/${(await t.tokens.create({ name: `doomed-${++counter}`, scopes: ['read'] })).id}` }),
  },
];

test('every route of the app has its line in the access table, and the table test covers every line', () => {
  const unlisted = t.app.accessByRoute.filter((r) => !r.listed && r.access.kind !== 'public').map((r) => `${r.method} ${r.url}`);
  assert.deepEqual(unlisted, [], 'routes left to the admin-only default: add them to ROUTE_ACCESS');
  const registered = new Set(t.app.accessByRoute.map((r) => `${r.method} ${r.url}`));
  for (const key of Object.keys(ROUTE_ACCESS)) assert.ok(registered.has(key), `ROUTE_ACCESS names ${key}, which is not a route`);
  const covered = new Set([...ROUTES.map((r) => r.route), 'GET /health', 'GET /graphql', 'POST /graphql']);
  assert.deepEqual(Object.keys(ROUTE_ACCESS).filter((k) => !covered.has(k)), []);
  for (const r of ROUTES) {
    const access = ROUTE_ACCESS[r.route];
    assert.ok(access.kind === 'rule' && access.scope === r.scope, `${r.route} needs ${r.scope}`);
  }
});

for (const r of ROUTES) {
  test(`REST ${r.route}: ${r.scope}${r.bound ? ' on its cluster' : ''}`, async () => {
    for (const caller of CALLERS) {
      for (const cluster of r.bound ? [IN, OUT] as const : [IN] as const) {
        const want = expected(caller, r.scope, cluster, 'ok');
        const options = await r.request(cluster);
        const res = await t.app.inject({ ...options, headers: { ...(options.headers as Record<string, string>), ...authHeader(caller) } });
        const where = `${caller} on ${cluster}: ${res.statusCode} ${res.body.slice(0, 300)}`;
        if (want === 'ok') {
          assert.ok(r.ok.includes(res.statusCode), where);
        } else {
          assert.equal(res.statusCode, want, where);
          assert.match(String(res.headers['content-type']), /^application\/problem\+json/, where);
          assert.equal(res.json().code, want === 401 ? 'UNAUTHENTICATED' : 'FORBIDDEN', where);
          if (want === 401) assert.equal(res.headers['www-authenticate'], 'Bearer realm="svcpath"');
        }
      }
    }
  });
}

test('GET /health, /docs and /graphiql need no token', async () => {
  for (const url of ['/health', '/docs/json', '/graphiql']) {
    const res = await t.app.inject({ method: 'GET', url });
    assert.equal(res.statusCode, 200, `${url}: ${res.body.slice(0, 200)}`);
  }
});

test('lists show only the clusters the token may read', async () => {
  const names = async (caller: Caller) => {
    const res = await t.app.inject({ method: 'GET', url: '/v1/clusters', headers: authHeader(caller) });
    assert.equal(res.statusCode, 200);
    return res.json().items.map((c: { name: string }) => c.name);
  };
  assert.deepEqual(await names('reader'), [IN]);
  assert.deepEqual(await names('admin'), [OUT, IN]);
  const gql = await t.app.inject({ method: 'POST', url: '/graphql', headers: authHeader('reader'), payload: { query: '{ clusters { name } }' } });
  assert.deepEqual(gql.json(), { data: { clusters: [{ name: IN }] } });
});

interface FieldCase {
  readonly field: string;
  readonly scope: 'read' | 'write' | 'admin';
  readonly bound: boolean;
  query(cluster: Cluster): Promise<string>;
}

const FIELDS: readonly FieldCase[] = [
  { field: 'Query.clusters', scope: 'read', bound: false, query: async () => '{ clusters { name snapshotCount } }' },
  { field: 'Query.snapshots', scope: 'read', bound: true, query: async (c) => `{ snapshots(cluster: "${c}") { edges { node { id } } } }` },
  { field: 'Query.snapshot', scope: 'read', bound: true, query: async (c) => `{ snapshot(id: "${snapshotOf(c)}") { id version nodes { name } } }` },
  { field: 'Query.cluster', scope: 'read', bound: true, query: async (c) => `{ cluster(name: "${c}") { name latest { id } } }` },
  { field: 'Query.diff', scope: 'read', bound: true, query: async (c) => `{ diff(from: "${ids.prodA}", to: "${c === IN ? ids.prodB : ids.dev}") { from to } }` },
  {
    field: 'Mutation.createSnapshot', scope: 'write', bound: true,
    query: async (c) => `mutation { createSnapshot(cluster: "${c}", input: { nodes: [{ name: "gql-${++counter}", addresses: ["${ADDRESSES[0]}"], rules: ${JSON.stringify(RULES)} }] }) { created } }`,
  },
  { field: 'Mutation.deleteSnapshot', scope: 'admin', bound: true, query: async (c) => `mutation { deleteSnapshot(id: "${await freshSnapshot(c)}") }` },
];

test('every GraphQL root field has its line in FIELD_ACCESS, and the table test covers every line', () => {
  const schema = t.app.graphql.schema;
  const fields = [schema.getQueryType(), schema.getMutationType()].flatMap((type) => Object.keys(type?.getFields() ?? {}).map((f) => `${type!.name}.${f}`));
  assert.deepEqual(fields.sort(), Object.keys(FIELD_ACCESS).sort());
  assert.deepEqual(FIELDS.map((f) => f.field).sort(), Object.keys(FIELD_ACCESS).sort());
  for (const f of FIELDS) assert.equal(FIELD_ACCESS[f.field].scope, f.scope);
});

for (const f of FIELDS) {
  test(`GraphQL ${f.field}: ${f.scope}${f.bound ? ' on its cluster' : ''}`, async () => {
    for (const caller of CALLERS) {
      for (const cluster of f.bound ? [IN, OUT] as const : [IN] as const) {
        const want = expected(caller, f.scope, cluster, 'ok');
        const res = await t.app.inject({ method: 'POST', url: '/graphql', headers: authHeader(caller), payload: { query: await f.query(cluster) } });
        const body = res.json();
        const where = `${caller} on ${cluster}: ${res.statusCode} ${res.body.slice(0, 300)}`;
        if (want === 'ok') {
          assert.equal(res.statusCode, 200, where);
          assert.equal(body.errors, undefined, where);
        } else if (want === 401) {
          assert.equal(res.statusCode, 401, where);
          assert.equal(body.errors[0].extensions.code, 'UNAUTHENTICATED', where);
        } else {
          assert.equal(body.errors?.[0]?.extensions?.code, 'FORBIDDEN', where);
          assert.equal(Object.values(body.data ?? { x: null })[0], null, where);
        }
      }
    }
  });
}

test('a snapshot reference (cluster@latest, @version, @time) is held to its cluster, over REST and GraphQL', async () => {
  const now = new Date().toISOString();
  for (const ref of ['latest', '1', now]) {
    for (const [cluster, want] of [[IN, 200], [OUT, 403]] as const) {
      const paths = [`/v1/snapshots/${cluster}@${ref}`, `/v1/snapshots/${cluster}@${ref}/trace?destination=10.43.62.130:80`, `/v1/diff?from=${ids.prodA}&to=${cluster}@${ref}`];
      for (const url of paths) {
        const res = await t.app.inject({ method: 'GET', url, headers: authHeader('reader') });
        assert.equal(res.statusCode, want, `${url}: ${res.body.slice(0, 200)}`);
      }
      for (const query of [`{ snapshot(id: "${cluster}@${ref}") { id } }`, `{ snapshot(cluster: "${cluster}") { id } }`]) {
        const body = (await t.app.inject({ method: 'POST', url: '/graphql', headers: authHeader('reader'), payload: { query } })).json();
        if (want === 200) assert.equal(body.errors, undefined, query);
        else assert.equal(body.errors?.[0]?.extensions?.code, 'FORBIDDEN', query);
      }
    }
  }
});

test('a token revoked is refused from its next request on, over the API or from the CLI (another process: the store)', async () => {
  const made = await t.app.inject({ method: 'POST', url: '/v1/tokens', headers: authHeader('admin'), payload: { name: 'short-lived', scopes: ['read'] } });
  assert.equal(made.statusCode, 201);
  const { id, secret } = made.json();
  const read = () => t.app.inject({ method: 'GET', url: '/v1/clusters', headers: { authorization: `Bearer ${secret}` } });
  assert.equal((await read()).statusCode, 200);
  assert.equal((await t.app.inject({ method: 'DELETE', url: `/v1/tokens/${id}`, headers: authHeader('admin') })).statusCode, 204);
  assert.equal((await read()).statusCode, 401);
  assert.equal((await t.app.inject({ method: 'DELETE', url: `/v1/tokens/${id}`, headers: authHeader('admin') })).statusCode, 404);

  const other = await t.tokens.create({ name: 'revoked-elsewhere', scopes: ['read'] });
  const again = () => t.app.inject({ method: 'GET', url: '/v1/clusters', headers: { authorization: `Bearer ${other.secret}` } });
  assert.equal((await again()).statusCode, 200);
  await t.db.pool.query('DELETE FROM api_token WHERE name = $1', ['revoked-elsewhere']);
  assert.equal((await again()).statusCode, 401);
});

test('secrets are shown once and stored only as their sha256', async () => {
  const res = await t.app.inject({ method: 'POST', url: '/v1/tokens', headers: authHeader('admin'), payload: { name: 'hashed', scopes: ['write'], clusters: ['prod-*', 'stage-?'] } });
  assert.equal(res.statusCode, 400, 'a pattern with ? is refused');
  const ok = await t.app.inject({ method: 'POST', url: '/v1/tokens', headers: authHeader('admin'), payload: { name: 'hashed', scopes: ['write'], clusters: ['prod-*'] } });
  assert.equal(ok.statusCode, 201);
  const { secret, id, hint } = ok.json();
  assert.match(secret, /^svcp_[A-Za-z0-9_-]{43}$/);
  assert.equal(hint, `${secret.slice(0, 9)}…`);
  const { rows: [row] } = await t.db.pool.query('SELECT * FROM api_token WHERE id = $1', [id]);
  assert.deepEqual(row.secret_sha256, createHash('sha256').update(secret).digest());
  assert.ok(!JSON.stringify(row).includes(secret.slice(9)), 'the secret is not stored');
  const list = await t.app.inject({ method: 'GET', url: '/v1/tokens', headers: authHeader('admin') });
  assert.ok(!list.body.includes(secret.slice(9)));
  assert.deepEqual(list.json().items.find((x: { id: string }) => x.id === id).scopes, ['write']);
  const dup = await t.app.inject({ method: 'POST', url: '/v1/tokens', headers: authHeader('admin'), payload: { name: 'hashed', scopes: ['read'] } });
  assert.equal(dup.statusCode, 409);
});

test('cluster patterns: * is any run of characters, the rest is literal', () => {
  assert.ok(matchCluster('prod-*', 'prod-eu'));
  assert.ok(matchCluster('prod-*', 'prod-'));
  assert.ok(!matchCluster('prod-*', 'preprod-eu'));
  assert.ok(matchCluster('*-eu', 'prod-eu'));
  assert.ok(matchCluster('*', 'anything'));
  assert.ok(!matchCluster('a.b', 'axb'));
  assert.ok(matchCluster('a*b*c', 'a-b-c'));
  assert.ok(!matchCluster('dev-1', 'dev-10'));
});
