/**
 * GraphiQL and the OpenAPI UI work without internet: Debian's chromium, driven by playwright-core,
 * loads /graphiql and /docs with every request that leaves 127.0.0.1 blocked, runs a query and
 * sees its answer. Without /usr/bin/chromium (apt-get install chromium) the test is skipped,
 * loudly; in CI, where .ci/run installs it, a missing browser is a failure.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Browser } from 'playwright-core';
import { buildApp } from '../../src/app.ts';
import { fakeSnapshots } from '../api/graphql/fake-snapshots.ts';
import { CHROMIUM, launch, offlinePage as offline, present, sayIfAbsent } from './chromium.ts';

sayIfAbsent('GraphiQL and /docs');

let app: FastifyInstance;
let base: string;
let browser: Browser | undefined;

before(async () => {
  if (!present) return;
  const { service } = fakeSnapshots();
  await service.create('offline-cluster', {
    nodes: [{ name: 'node-a', addresses: ['10.1.0.1'], rules: '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d 10.0.0.1/32 -j ACCEPT\nCOMMIT\n' }],
  });
  app = await buildApp({ snapshotService: service });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  if (app) await app.close();
});

const offlinePage = () => offline(browser!, base);

test('GraphiQL loads from the server alone and runs a query', { skip: present ? false : 'skipped: no chromium', timeout: 120_000 }, async (t) => {
  if (!present && process.env.CI === 'true') assert.fail(`no chromium at ${CHROMIUM} in CI: .ci/run installs it`);
  const { page, blocked, errors } = await offlinePage();
  // GraphiQL asks for the schema first: introspection must pass the query limits.
  const introspection = page.waitForResponse((r) => r.url() === `${base}/graphql` && (r.request().postData() ?? '').includes('__schema'), { timeout: 60_000 });
  await page.goto(`${base}/graphiql`);
  await page.waitForSelector('.graphiql-container', { timeout: 60_000 });
  assert.equal((await introspection).status(), 200);
  await page.click('.graphiql-execute-button');
  const result = page.locator('.result-window');
  await result.getByText('offline-cluster').waitFor({ timeout: 30_000 });
  const text = await result.innerText();
  assert.match(text, /"snapshotCount": 1/);
  assert.deepEqual(blocked, [], 'requests outside 127.0.0.1');
  assert.deepEqual(errors, [], 'console errors');
  if (process.env.SVCPATH_SCREENSHOT) await page.screenshot({ path: process.env.SVCPATH_SCREENSHOT });
  t.diagnostic(`GraphiQL ran { clusters } with no request leaving ${base}`);
});

test('the OpenAPI UI at /docs loads from the server alone', { skip: present ? false : 'skipped: no chromium', timeout: 120_000 }, async () => {
  const { page, blocked, errors } = await offlinePage();
  await page.goto(`${base}/docs`);
  await page.locator('.swagger-ui .info .title').getByText('svcpath').waitFor({ timeout: 60_000 });
  await page.locator('.opblock-tag').first().waitFor();
  assert.deepEqual(blocked, [], 'requests outside 127.0.0.1');
  assert.deepEqual(errors, [], 'console errors');
});
