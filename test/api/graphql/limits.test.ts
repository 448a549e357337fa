/** GraphQL requests built to be expensive are refused before they run (issue 12). */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { buildSchema, getIntrospectionQuery, parse } from 'graphql';
import { graphqlPlugin, typeDefs } from '../../../src/api/graphql/index.ts';
import { checkTokens, measure, QueryTooComplexError } from '../../../src/api/graphql/limits.ts';
import { DEFAULT_LIMITS } from '../../../src/services/limits.ts';
import { fakeSnapshots } from './fake-snapshots.ts';

let app: FastifyInstance;
let diffs = 0;
let audits = 0;

before(async () => {
  const { service } = fakeSnapshots();
  const counted = {
    ...service,
    diff: (q: Parameters<typeof service.diff>[0]) => {
      diffs++;
      return service.diff(q);
    },
    audit: (id: string) => {
      audits++;
      return service.audit(id);
    },
  };
  app = Fastify();
  await app.register(graphqlPlugin, { snapshotService: counted });
  await app.ready();
});
after(async () => {
  await app.close();
});

const schema = buildSchema(typeDefs.join('\n'));

async function post(body: unknown) {
  const res = await app.inject({ method: 'POST', url: '/graphql', payload: body as Record<string, unknown> });
  return { status: res.statusCode, body: res.json<{ data?: unknown; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> }>() };
}

function tooComplex(r: Awaited<ReturnType<typeof post>>, pattern: RegExp): void {
  assert.equal(r.status, 400, JSON.stringify(r.body).slice(0, 300));
  assert.equal(r.body.errors?.length, 1);
  assert.equal(r.body.errors?.[0].extensions?.code, 'QUERY_TOO_COMPLEX');
  assert.match(r.body.errors?.[0].message ?? '', pattern);
}

test('4 aliased diff fields (552 bytes) are refused before any diff runs', async () => {
  const query = `{ ${['a', 'b', 'c', 'd'].map((a) => `${a}: diff(from: "1", to: "2") { summary { verdictChanges } totals { rules } }`).join(' ')} }`;
  const r = await post({ query });
  tooComplex(r, /^the operation costs \d+, at most 5000 \(SVCPATH_GRAPHQL_MAX_COST\)/);
  assert.equal(diffs, 0);
});

test('one diff is within budget and runs', async () => {
  const r = await post({ query: '{ diff(from: "1", to: "2") { summary { verdictChanges } frontends { node change changes } } }' });
  assert.equal(r.status, 200);
  assert.equal(diffs, 1);
  assert.match(r.body.errors?.[0].message ?? '', /not found/);
});

test('an audit of each of 100 snapshots is refused before it runs', async () => {
  const r = await post({ query: '{ snapshots(cluster: "c", first: 100) { edges { node { audit { findings { message } } } } } }' });
  tooComplex(r, /costs 1\d{5}/);
  // `first` as a variable counts as the largest page, whatever the variables say.
  const v = await post({ query: 'query($n: Int) { snapshots(cluster: "c", first: $n) { edges { node { audit { findings { message } } } } } }', variables: { n: 1 } });
  tooComplex(v, /costs/);
  assert.equal(audits, 0);
});

test('10,000 aliased traces are refused fast: by the token count, before parsing', async () => {
  const query = `{ snapshot(id: "1") { ${Array.from({ length: 10_000 }, (_, i) => `t${i}: trace(destination: "10.0.0.1", port: 80) { node }`).join(' ')} } }`;
  const started = performance.now();
  const r = await post({ query });
  const ms = performance.now() - started;
  tooComplex(r, /^the document has more than 10000 tokens \(SVCPATH_GRAPHQL_MAX_TOKENS\)$/);
  assert.ok(ms < 1000, `${ms.toFixed(0)} ms`);
});

test('31 aliases are refused, 30 pass the alias check', async () => {
  const aliases = (n: number) => `{ ${Array.from({ length: n }, (_, i) => `c${i}: clusters { name }`).join(' ')} }`;
  tooComplex(await post({ query: aliases(31) }), /^the document has 31 aliases, at most 30 \(SVCPATH_GRAPHQL_MAX_ALIASES\)$/);
  assert.equal((await post({ query: aliases(30) })).status, 200);
});

test('13 levels of fields are refused, 12 pass; fragments count', async () => {
  // __type(name:) { fields { type { fields { type { … } } } } } nests as deep as asked.
  const deep = (levels: number) => {
    let inner = 'name';
    for (let i = 0; i < levels - 2; i++) inner = i % 2 === 0 ? `fields { ${inner} }` : `type { ${inner} }`;
    return `{ __type(name: "Query") { ${inner} } }`;
  };
  assert.equal(measure(schema, parse(deep(12))).depth, 12);
  tooComplex(await post({ query: deep(13) }), /^the operation is 13 fields deep, at most 12 \(SVCPATH_GRAPHQL_MAX_DEPTH\)$/);
  const viaFragments = `{ __type(name: "Query") { ...A } } fragment A on __Type { fields { type { ...B } } } fragment B on __Type { fields { type { ...C } } } fragment C on __Type { fields { type { fields { type { fields { type { fields { type { name } } } } } } } } }`;
  tooComplex(await post({ query: viaFragments }), /fields deep/);
});

test('introspection stays on: GraphiQL\'s full introspection query passes', async () => {
  const query = getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true, schemaDescription: true, specifiedByUrl: true, directiveIsRepeatable: true });
  const r = await post({ query });
  assert.equal(r.status, 200);
  assert.ok((r.body.data as { __schema: { types: unknown[] } }).__schema.types.length > 20);
  // but not an introspection query that multiplies the schema by itself
  tooComplex(await post({ query: '{ __schema { types { fields { type { fields { type { fields { type { fields { name } } } } } } } } } }' }), /costs/);
});

test('batched queries stay refused', async () => {
  const r = await app.inject({ method: 'POST', url: '/graphql', payload: [{ query: '{ clusters { name } }' }, { query: '{ clusters { name } }' }] as unknown as Record<string, unknown> });
  assert.equal(r.statusCode, 400);
});

test('GET requests are held to the same limits', async () => {
  const query = `{ ${['a', 'b', 'c'].map((a) => `${a}: diff(from: "1", to: "2") { totals { rules } }`).join(' ')} }`;
  const res = await app.inject({ method: 'GET', url: `/graphql?query=${encodeURIComponent(query)}` });
  assert.equal(res.statusCode, 400);
  assert.equal(res.json().errors[0].extensions.code, 'QUERY_TOO_COMPLEX');
});

test('the cost model: a trace on one node is cheap, on every node dear; lists multiply', () => {
  const cost = (q: string) => measure(schema, parse(q)).cost;
  const one = cost('{ snapshot(id: "1") { trace(destination: "1.2.3.4", port: 80, node: "a") { outcomes { verdict } } } }');
  const all = cost('{ snapshot(id: "1") { trace(destination: "1.2.3.4", port: 80) { outcomes { verdict } } } }');
  assert.equal(one, 1 + 50 + 1 * (1 + 10 * 1));
  assert.equal(all, 1 + 500 + 10 * (1 + 10 * 1));
  assert.equal(cost('{ snapshots(cluster: "c", first: 7) { edges { node { id } } } }'), 1 + 7 * (1 + 1));
  assert.equal(cost('{ snapshots(cluster: "c") { edges { node { id } } } }'), 1 + 20 * (1 + 1));
  assert.equal(cost('{ clusters { name } }'), 10);
});

test('fragments are walked once: a document of fragments spreading fragments is measured at once', () => {
  let doc = '{ snapshot(id: "1") { ...F40 } }\nfragment F0 on Snapshot { nodes { name } }\n';
  for (let i = 1; i <= 40; i++) doc += `fragment F${i} on Snapshot { ...F${i - 1} ...F${i - 1} }\n`;
  const started = performance.now();
  const m = measure(schema, parse(doc));
  assert.ok(performance.now() - started < 100);
  assert.equal(m.cost, 1 + 2 ** 40 * 10);
  // a cycle ends (validation refuses it afterwards)
  measure(schema, parse('{ snapshot(id: "1") { ...A } } fragment A on Snapshot { nodes { name } ...B } fragment B on Snapshot { ...A }'));
});

test('checkTokens stops at the limit and leaves lexical errors to the parser', () => {
  assert.throws(() => checkTokens('{ a b c d }', 5), QueryTooComplexError);
  checkTokens('{ a b c }', 5);
  checkTokens('{ "unterminated', 5);
  assert.equal(DEFAULT_LIMITS.graphqlMaxTokens, 10_000);
});
