/**
 * Issue 12's table of attacks, one test per row, small versions of the originals, each checking
 * the answer and that the app answers /health at once afterwards. Rows already held elsewhere
 * are named here instead of repeated:
 *
 * - YAML `- - - … x` nested 12,000 levels, JSON nested 100k levels: test/api/limits.test.ts
 *   (POST /v1/trace) and test/api/limits-upload.test.ts (uploads, GraphQL createSnapshot).
 * - 4 aliased `diff` fields, 10,000 aliased traces: test/api/graphql/limits.test.ts (against a fake
 *   service); below again against PostgreSQL.
 * - PostgreSQL killed during an upload and while idle: test/server/outage.test.ts; the server
 *   killed during puts and a commit: test/server/kill.test.ts.
 * - Anonymous DELETE, GraphQL deleteSnapshot, cross-site multipart POST: test/api/cross-site.test.ts
 *   and test/api/access.test.ts (every route with every kind of token).
 * - A 150 MB line that does not parse: test/api/limits.test.ts and limits-upload.test.ts (10 MB).
 * - GraphiQL without internet: test/browser/graphiql.test.ts (in chromium, other origins blocked);
 *   below, the same without a browser.
 *
 * Then the bugs fuzz.test.ts found, as the requests that found them.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { createTestApp } from '../api/helpers.ts';
import type { TestApp } from '../api/helpers.ts';
import { fixture } from '../helpers.ts';

const MIB = 1024 * 1024;
const clusterip = fixture('k3s-blog', 'clusterip.iptables-S.txt');
const k3s = (await import('../../examples/k3s/snapshot.json', { with: { type: 'json' } })).default as {
  nodes: Array<{ name: string; addresses: string[]; rules: string; format?: string; table?: string }>; manifests: string;
};
const node = { name: 'n', addresses: ['10.32.11.62'], rules: clusterip };

let t: TestApp;
let ids: string[];
before(async () => {
  t = await createTestApp({ bodyLimit: 16 * MIB, uploadLimits: { partBytes: 4 * MIB, totalBytes: 6 * MIB } });
  ids = [];
  for (const body of [k3s, { nodes: [node] }]) {
    const res = await t.app.inject({ method: 'POST', url: '/v1/clusters/table/snapshots', payload: body });
    assert.equal(res.statusCode, 201, res.body);
    ids.push(res.json().snapshot.id);
  }
});
after(async () => {
  await t?.close();
});

const inject = (o: InjectOptions) => t.app.inject(o);

/** The app answers /health with 200 in under 100 ms. */
async function alive(): Promise<void> {
  const started = performance.now();
  const res = await inject({ method: 'GET', url: '/health' });
  const ms = performance.now() - started;
  assert.equal(res.statusCode, 200, res.body);
  assert.ok(ms < 100, `/health took ${ms.toFixed(0)} ms`);
}

function problem(res: LightMyRequestResponse, status: number, code: string): Record<string, unknown> {
  assert.equal(res.statusCode, status, res.body.slice(0, 300));
  assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
  const p = res.json<Record<string, unknown>>();
  assert.equal(p.code, code, res.body.slice(0, 300));
  assert.equal(p.status, status);
  return p;
}

function graphqlError(res: LightMyRequestResponse, code: string): { message: string; extensions: Record<string, unknown> } {
  const body = res.json<{ errors?: Array<{ message: string; extensions: Record<string, unknown> }> }>();
  assert.ok(body.errors?.length, res.body.slice(0, 300));
  assert.equal(body.errors[0].extensions?.code, code, res.body.slice(0, 300));
  return body.errors[0];
}

const count = async (table: string, where = '') => (await t.db.pool.query(`SELECT count(*)::int AS n FROM ${table} ${where}`)).rows[0].n as number;
const openUploads = () => count('upload', 'WHERE committed_snapshot_id IS NULL');

function multipart(parts: Array<[string, string | Buffer]>, boundary = 'table-boundary'): InjectOptions {
  const body = Buffer.concat([
    ...parts.map(([name, value]) => Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${name}"\r\nContent-Type: application/octet-stream\r\n\r\n`),
      Buffer.from(value), Buffer.from('\r\n'),
    ])),
    Buffer.from(`--${boundary}--\r\n`),
  ]);
  return { method: 'POST', url: '/v1/clusters/table/snapshots', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, payload: body };
}

describe("the table's rows", () => {
  test('4 aliased diff fields (552 bytes) and 10,000 aliased traces, on stored snapshots: 400 QUERY_TOO_COMPLEX before anything runs', async () => {
    const diffs = `{ ${['a', 'b', 'c', 'd'].map((a) => `${a}: diff(from: "${ids[0]}", to: "${ids[1]}") { summary { verdictChanges } totals { rules } }`).join(' ')} }`;
    const res = await inject({ method: 'POST', url: '/graphql', payload: { query: diffs } });
    assert.equal(res.statusCode, 400);
    assert.match(graphqlError(res, 'QUERY_TOO_COMPLEX').message, /costs \d+, at most 5000/);
    await alive();
    const traces = `{ snapshot(id: "${ids[0]}") { ${Array.from({ length: 10_000 }, (_, i) => `t${i}: trace(destination: "10.43.62.130", port: 80) { node }`).join(' ')} } }`;
    const started = performance.now();
    const many = await inject({ method: 'POST', url: '/graphql', payload: { query: traces } });
    assert.ok(performance.now() - started < 1000, `${(performance.now() - started).toFixed(0)} ms`);
    assert.equal(many.statusCode, 400);
    graphqlError(many, 'QUERY_TOO_COMPLEX');
    await alive();
  });

  test('8 distinct uploads of a dump with a 50,000-rule chain, each traced: answered, and the app answers on', async () => {
    const chain = (n: number) => {
      const lines = ['*nat', ':PREROUTING ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]', ':LONG - [0:0]', '-A PREROUTING -j LONG'];
      for (let i = 0; i < 50_000; i++) lines.push(`-A LONG -d 10.${n}.${(i >> 8) & 255}.${i & 255}/32 -p tcp --dport ${(i % 60_000) + 1} -j ACCEPT`);
      lines.push('COMMIT', '');
      return lines.join('\n');
    };
    for (let n = 0; n < 8; n++) {
      const res = await inject({ method: 'POST', url: `/v1/clusters/long-${n}/snapshots`, payload: { nodes: [{ name: 'n', addresses: ['10.99.0.1'], rules: chain(n) }] } });
      assert.equal(res.statusCode, 201, res.body.slice(0, 300));
      const id = res.json().snapshot.id;
      const traced = await inject({ method: 'GET', url: `/v1/snapshots/${id}/trace?destination=10.${n}.195.79&port=49999&source=10.1.0.1` });
      assert.equal(traced.statusCode, 200, traced.body.slice(0, 300));
      assert.equal(traced.json().results[0].outcomes[0].verdict, 'ACCEPT', traced.body.slice(0, 300));
      await alive();
    }
  });

  test('8 multipart parts of 1 MiB past a 6 MiB upload limit (the original: 150 MB past BODY_LIMIT_MB): 413, no upload left behind', async () => {
    const open = await openUploads();
    const parts: Array<[string, string]> = Array.from({ length: 8 }, (_, i) => [`node-${i}`, `# ${String(i).repeat(MIB)}\n${clusterip}`]);
    const res = await inject(multipart(parts));
    problem(res, 413, 'PAYLOAD_TOO_LARGE');
    assert.equal(await openUploads(), open);
    await alive();
  });

  test('100,000 labels and a 10 MB label value (the original: 100 MB): 400 VALIDATION in under a second, over JSON, commit, multipart and GraphQL', async () => {
    const many = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, 'v']));
    const big = { team: 'x'.repeat(10 * MIB) };
    const snapshots = await count('snapshot');
    for (const labels of [many, big]) {
      const started = performance.now();
      const res = await inject({ method: 'POST', url: '/v1/clusters/labels/snapshots', payload: { nodes: [node], labels } });
      assert.ok(performance.now() - started < 1000, `${(performance.now() - started).toFixed(0)} ms`);
      assert.ok(String(problem(res, 400, 'VALIDATION').detail).length < 300);
      await alive();
      const id = (await inject({ method: 'POST', url: '/v1/clusters/labels/uploads' })).json().id;
      assert.equal((await inject({ method: 'PUT', url: `/v1/uploads/${id}/nodes/n`, headers: { 'content-type': 'text/plain' }, payload: clusterip })).statusCode, 200);
      problem(await inject({ method: 'POST', url: `/v1/uploads/${id}/commit`, payload: { labels } }), 400, 'VALIDATION');
      const gql = await inject({
        method: 'POST', url: '/graphql',
        payload: {
          query: 'mutation($input: SnapshotInput!) { createSnapshot(cluster: "labels", input: $input) { created } }',
          variables: { input: { nodes: [node], labels: Object.entries(labels).map(([key, value]) => ({ key, value })) } },
        },
      });
      graphqlError(gql, 'VALIDATION');
      await alive();
    }
    // 12,000 label fields in a multipart upload: more parts than it may have, or more labels.
    const fields = multipart([['n', clusterip], ...Array.from({ length: 12_000 }, (_, i): [string, string] => [`label.k${i}`, 'v'])]);
    const res = await inject(fields);
    assert.ok(res.statusCode === 400 || res.statusCode === 413, res.body.slice(0, 300));
    assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
    assert.equal(await count('snapshot'), snapshots);
    await alive();
  });

  test('a NUL in a rule comment: 400 VALIDATION naming line and column over JSON, multipart, an upload in steps and GraphQL; nothing stored', async () => {
    const rules = clusterip.replace('default/service-test cluster IP', 'default/service-test\u0000 cluster IP');
    assert.notEqual(rules, clusterip);
    const before = await count('snapshot');
    const json = problem(await inject({ method: 'POST', url: '/v1/clusters/nul/snapshots', payload: { nodes: [{ ...node, rules }] } }), 400, 'VALIDATION');
    assert.match(String(json.detail), /NUL/);
    assert.ok(Number(json.line) > 0 && Number(json.column) > 0);
    assert.match(String(problem(await inject(multipart([['n', rules]])), 400, 'VALIDATION').detail), /NUL/);
    const id = (await inject({ method: 'POST', url: '/v1/clusters/nul/uploads' })).json().id;
    assert.match(String(problem(await inject({ method: 'PUT', url: `/v1/uploads/${id}/nodes/n`, headers: { 'content-type': 'text/plain' }, payload: rules }), 400, 'VALIDATION').detail), /NUL/);
    const gql = await inject({
      method: 'POST', url: '/graphql',
      payload: { query: 'mutation($input: SnapshotInput!) { createSnapshot(cluster: "nul", input: $input) { created } }', variables: { input: { nodes: [{ ...node, rules }] } } },
    });
    assert.match(graphqlError(gql, 'VALIDATION').message, /NUL/);
    // The stateless trace stores nothing: a NUL in a comment is only text there.
    const traced = await inject({
      method: 'POST', url: '/v1/trace',
      payload: { rules, format: 'iptables-S', table: 'nat', node: { addresses: ['10.32.11.62'] }, packet: { source: '10.42.0.7', destination: '10.43.62.130', port: 80 } },
    });
    assert.ok(traced.statusCode === 200 || traced.statusCode === 400, traced.body.slice(0, 300));
    assert.equal(await count('snapshot'), before);
    await alive();
  });

  test('GraphiQL without internet (no browser): the page loads only what the server itself serves', async () => {
    const page = await inject({ method: 'GET', url: '/graphiql' });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-security-policy']), /default-src 'self'|default-src 'none'/);
    const refs = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    assert.ok(refs.length >= 4, refs.join(', '));
    for (const ref of refs) {
      assert.doesNotMatch(ref, /^(?:[a-z]+:)?\/\//i, `${ref} is on another origin`);
      const asset = await inject({ method: 'GET', url: new URL(ref, 'http://127.0.0.1/graphiql').pathname });
      assert.equal(asset.statusCode, 200, ref);
      assert.ok(asset.rawPayload.length > 0, ref);
    }
    await alive();
  });
});

describe('1,000 connections trickling a body (small version: 200, with short timeouts)', () => {
  test('each is closed once the request takes too long, and /health answers a new connection meanwhile', { timeout: 30_000 }, async () => {
    const app = await buildApp({ timeouts: { idleMs: 1000, requestMs: 1500, maxConnections: 1000 } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    try {
      const head = 'POST /v1/trace HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"rules":"';
      const started = performance.now();
      const closed: Array<Promise<number>> = [];
      const timers: NodeJS.Timeout[] = [];
      for (let i = 0; i < 200; i++) {
        closed.push(new Promise((resolve) => {
          const socket = net.connect(port, '127.0.0.1', () => {
            socket.write(head);
            timers.push(setInterval(() => socket.write('x'), 200));
          });
          socket.on('error', () => {});
          socket.on('close', () => resolve(performance.now() - started));
        }));
      }
      await new Promise((r) => setTimeout(r, 500));
      const healthStarted = performance.now();
      const status = await new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: '/health', agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject);
      });
      const healthMs = performance.now() - healthStarted;
      assert.equal(status, 200);
      assert.ok(healthMs < 100, `/health over a new connection took ${healthMs.toFixed(0)} ms`);
      const times = await Promise.all(closed);
      for (const timer of timers) clearInterval(timer);
      const last = Math.max(...times);
      // requestTimeout 1.5 s, checked every second (app.ts connectionsCheckingInterval).
      assert.ok(last < 5000, `the last trickling connection closed after ${last.toFixed(0)} ms`);
      assert.ok(Math.min(...times) >= 1400, 'the trickle kept them open until the request timeout');
      const after = await app.inject({ method: 'GET', url: '/health' });
      assert.equal(after.statusCode, 200);
    } finally {
      await app.close();
    }
  });
});

describe('found by fuzz.test.ts', () => {
  test('a path that is not percent-encoded UTF-8, or a parameter over 100 characters: 400 problem+json, not fastify\'s own JSON', async () => {
    for (const url of ['/v1/snapshots/%ED%A0%80', '/v1/uploads/%C3/nodes/n', '/v1/clusters/%u0000/snapshots', `/v1/snapshots/${'a'.repeat(300)}`]) {
      const p = problem(await inject({ method: 'GET', url }), 400, 'VALIDATION');
      assert.ok(String(p.instance).length <= 200);
    }
    await alive();
  });

  test('a NUL in a path parameter that reaches PostgreSQL: 400, not 500', async () => {
    for (const [method, url] of [['GET', `/v1/snapshots/${ids[0]}/nodes/%00/rules`], ['HEAD', `/v1/snapshots/${ids[0]}/nodes/a%00b/rules`]] as const) {
      const res = await inject({ method, url });
      assert.equal(res.statusCode, 400, `${method} ${url}: ${res.body}`);
    }
    await alive();
  });

  test('GraphQL: a query that is JSON is a syntax error, not a JSON AST run (INTERNAL)', async () => {
    for (const query of ['{"kind":"List","items":[]}', 'null', '"x"', '{"kind":"Document","definitions":[{"kind":"OperationDefinition"}]}']) {
      const res = await inject({ method: 'POST', url: '/graphql', payload: { query } });
      assert.equal(res.statusCode, 400, `${query}: ${res.body}`);
      assert.match(res.json().errors[0].message, /^Syntax Error/, query);
    }
    await alive();
  });

  test('GraphQL over GET: an operationName no operation has, or variables that are not an object: 400, not INTERNAL', async () => {
    const two = encodeURIComponent('query A { clusters { name } } query B { clusters { name } }');
    const one = encodeURIComponent('{ clusters { name } }');
    // The same query by POST first: mercurius caches the document, and a cached one skips preValidation.
    await inject({ method: 'POST', url: '/graphql', payload: { query: '{ clusters { name } }' } });
    for (const url of [
      `/graphql?query=${two}&operationName=x`, `/graphql?query=${two}`, `/graphql?query=${one}&operationName=`, `/graphql?query=${one}&operationName=x`,
      `/graphql?query=${one}&variables=`, `/graphql?query=${one}&variables=5`, `/graphql?query=${one}&variables=%22x%22`,
    ]) {
      const res = await inject({ method: 'GET', url });
      assert.equal(res.statusCode, 400, `${url}: ${res.body}`);
      assert.ok(res.json().errors[0].message.length > 0);
      assert.notEqual(res.json().errors[0].extensions?.code, 'INTERNAL');
    }
    assert.equal((await inject({ method: 'GET', url: `/graphql?query=${two}&operationName=B` })).statusCode, 200);
    assert.equal((await inject({ method: 'GET', url: `/graphql?query=${one}&variables=%7B%7D` })).statusCode, 200);
    await alive();
  });

  test('a multipart upload cut short, or without a boundary: 400, and no upload left behind', async () => {
    const open = await openUploads();
    const cut = `--XX\r\nContent-Disposition: form-data; name="n"\r\n\r\n${clusterip}`;
    for (const [type, payload] of [['multipart/form-data; boundary=XX', cut], ['multipart/form-data', 'x'], ['multipart/form-data; boundary=XX', 'garbage']]) {
      const res = await inject({ method: 'POST', url: '/v1/clusters/cut/snapshots', headers: { 'content-type': type }, payload });
      problem(res, 400, 'VALIDATION');
    }
    assert.equal(await openUploads(), open);
    await alive();
  });
});
