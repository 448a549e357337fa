/**
 * No token configured on loopback: anonymous admins, but no cross-site writes (browser forms,
 * simple CORS requests, GraphQL mutations over GET or forms) and no DNS rebinding; and once a
 * token exists, every request needs one.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { InjectOptions } from 'fastify';
import { createAuthApp } from './auth-helpers.ts';
import type { AuthApp } from './auth-helpers.ts';

const k3s = (await import('../../examples/k3s/snapshot.json', { with: { type: 'json' } })).default as {
  nodes: Array<{ name: string; addresses: string[]; rules: string }>; manifests: string;
};
const RULES = k3s.nodes[0].rules;
const HOST = 'localhost:8080';

let t: AuthApp;
before(async () => {
  t = await createAuthApp({ mode: 'auto', loopback: true });
});
after(async () => {
  await t?.close();
});

const inject = (o: InjectOptions) => t.app.inject({ ...o, headers: { host: HOST, ...(o.headers as Record<string, string>) } });
const count = async () => (await t.db.pool.query('SELECT count(*)::int AS n FROM snapshot')).rows[0].n as number;

test("the README's first command: with no token configured, a request from this host is an anonymous admin", async () => {
  const res = await inject({ method: 'POST', url: '/v1/clusters/k3s-blog/snapshots', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(k3s) });
  assert.equal(res.statusCode, 201, res.body);
  const list = await inject({ method: 'GET', url: '/v1/clusters' });
  assert.deepEqual(list.json().items.map((c: { name: string }) => c.name), ['k3s-blog']);
  // The same with the headers a same-origin page (the OpenAPI UI) sends.
  const same = await inject({
    method: 'POST', url: '/v1/clusters/k3s-blog/uploads',
    headers: { origin: `http://${HOST}`, 'sec-fetch-site': 'same-origin', 'content-type': 'application/json' }, payload: '{}',
  });
  assert.equal(same.statusCode, 201, same.body);
  // curl and the CLI without a token: multipart and text/plain, no browser headers.
  const id = same.json().id;
  const put = await inject({ method: 'PUT', url: `/v1/uploads/${id}/nodes/n1`, headers: { 'content-type': 'text/plain' }, payload: RULES });
  assert.equal(put.statusCode, 200, put.body);
});

const CROSS_SITE: ReadonlyArray<[string, Record<string, string>]> = [
  ['Sec-Fetch-Site: cross-site', { 'sec-fetch-site': 'cross-site' }],
  ['Sec-Fetch-Site: same-site (another port of the same host)', { 'sec-fetch-site': 'same-site' }],
  ['a foreign Origin', { origin: 'https://evil.example' }],
  ['Origin: null (a sandboxed page)', { origin: 'null' }],
  ['another port as Origin', { origin: 'http://localhost:3000' }],
  ['a foreign Referer and no Origin', { referer: 'https://evil.example/page' }],
];

const FORMS: ReadonlyArray<[string, () => InjectOptions]> = [
  ['a urlencoded form post', () => ({ method: 'POST', url: '/v1/clusters/k3s-blog/snapshots', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'a=b' })],
  ['a multipart form post', () => ({
    method: 'POST', url: '/v1/clusters/evil/snapshots',
    headers: { 'content-type': 'multipart/form-data; boundary=XX' },
    payload: `--XX\r\nContent-Disposition: form-data; name="n1"\r\n\r\n${RULES}\r\n--XX--\r\n`,
  })],
  ['a text/plain post', () => ({ method: 'POST', url: '/v1/clusters/evil/snapshots', headers: { 'content-type': 'text/plain' }, payload: JSON.stringify(k3s) })],
  ['a post without a body', () => ({ method: 'POST', url: '/v1/clusters/evil/uploads' })],
  ['a JSON post', () => ({ method: 'POST', url: '/v1/clusters/evil/snapshots', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(k3s) })],
  ['a GraphQL mutation as text/plain', () => ({ method: 'POST', url: '/graphql', headers: { 'content-type': 'text/plain' }, payload: JSON.stringify({ query: 'mutation { deleteSnapshot(id: "x") }' }) })],
];

test('cross-site writes are refused whatever their content type, and change nothing', async () => {
  const before = await count();
  const uploads = (await t.db.pool.query('SELECT count(*)::int AS n FROM upload')).rows[0].n;
  for (const [why, headers] of CROSS_SITE) {
    for (const [what, make] of FORMS) {
      const o = make();
      const res = await inject({ ...o, headers: { ...(o.headers as Record<string, string>), ...headers } });
      assert.equal(res.statusCode, 403, `${what} with ${why}: ${res.body.slice(0, 200)}`);
      const code = o.url === '/graphql' ? res.json().errors[0].extensions.code : res.json().code;
      assert.equal(code, 'FORBIDDEN');
    }
  }
  const snapshot = (await inject({ method: 'GET', url: '/v1/clusters/k3s-blog/snapshots' })).json().items[0].id;
  for (const [why, headers] of CROSS_SITE) {
    const del = await inject({ method: 'DELETE', url: `/v1/snapshots/${snapshot}`, headers });
    assert.equal(del.statusCode, 403, `DELETE with ${why}`);
  }
  assert.equal(await count(), before);
  assert.equal((await t.db.pool.query('SELECT count(*)::int AS n FROM upload')).rows[0].n, uploads);
});

test('GraphQL mutations over GET are refused (405) and over a form post (415); queries over GET answer', async () => {
  const id = (await inject({ method: 'GET', url: '/v1/clusters/k3s-blog/snapshots' })).json().items[0].id;
  const mutation = encodeURIComponent(`mutation { deleteSnapshot(id: "${id}") }`);
  const get = await inject({ method: 'GET', url: `/graphql?query=${mutation}` });
  assert.equal(get.statusCode, 405, get.body);
  const form = await inject({ method: 'POST', url: '/graphql', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `query=${mutation}` });
  assert.equal(form.statusCode, 415, form.body);
  assert.equal((await inject({ method: 'GET', url: `/v1/snapshots/${id}` })).statusCode, 200, 'still there');
  const query = await inject({ method: 'GET', url: `/graphql?query=${encodeURIComponent('{ clusters { name } }')}` });
  assert.deepEqual(query.json(), { data: { clusters: [{ name: 'k3s-blog' }] } });
});

test('anonymous requests must name a loopback host: a page rebinding its name to 127.0.0.1 gets nothing', async () => {
  for (const host of ['evil.example:8080', 'evil.example', '10.0.0.5:8080']) {
    const res = await inject({ method: 'GET', url: '/v1/clusters', headers: { host } });
    assert.equal(res.statusCode, 403, host);
  }
  for (const host of ['localhost', '127.0.0.1:8080', '[::1]:8080', 'app.localhost:8080']) {
    assert.equal((await inject({ method: 'GET', url: '/v1/clusters', headers: { host } })).statusCode, 200, host);
  }
});

test('once a token exists every request needs one (on loopback too); a bearer token lifts the cross-site rules', async () => {
  const { secret, id } = await t.tokens.create({ name: 'first', scopes: ['admin'] });
  const anon = await inject({ method: 'GET', url: '/v1/clusters' });
  assert.equal(anon.statusCode, 401);
  assert.equal(anon.json().code, 'UNAUTHENTICATED');
  const gql = await inject({ method: 'POST', url: '/graphql', payload: { query: '{ clusters { name } }' } });
  assert.equal(gql.statusCode, 401);
  assert.equal(gql.json().errors[0].extensions.code, 'UNAUTHENTICATED');
  // A browser cannot add Authorization to a cross-site request without a preflight this server never grants.
  const withToken = await inject({
    method: 'POST', url: '/v1/clusters/ci/snapshots',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'multipart/form-data; boundary=XX', host: 'svcpath.example' },
    payload: `--XX\r\nContent-Disposition: form-data; name="n1"; filename="n1"\r\nContent-Type: text/plain\r\n\r\n${RULES}\r\n--XX--\r\n`,
  });
  assert.equal(withToken.statusCode, 201, withToken.body);
  await t.tokens.revoke(id);
  assert.equal((await inject({ method: 'GET', url: '/v1/clusters' })).statusCode, 200, 'no token left: anonymous again');
});

test('SVCPATH_AUTH=off: anonymous admins on any address, cross-site writes still refused', async () => {
  const off = await createAuthApp({ mode: 'off', loopback: false });
  try {
    await off.tokens.create({ name: 'ignored', scopes: ['read'] });
    const res = await off.app.inject({ method: 'POST', url: '/v1/clusters/x/uploads', headers: { host: 'svcpath.example' } });
    assert.equal(res.statusCode, 201);
    const cross = await off.app.inject({ method: 'POST', url: '/v1/clusters/x/uploads', headers: { host: 'svcpath.example', origin: 'https://evil.example' } });
    assert.equal(cross.statusCode, 403);
  } finally {
    await off.close();
  }
});

test('not on loopback, no token configured (SVCPATH_AUTH=on, or tokens all revoked): every request is refused', async () => {
  const closed = await createAuthApp({ mode: 'auto', loopback: false });
  try {
    const res = await closed.app.inject({ method: 'GET', url: '/v1/clusters', headers: { host: 'localhost' } });
    assert.equal(res.statusCode, 401);
  } finally {
    await closed.close();
  }
});
