/**
 * The web page's routes without a browser (test/browser/ui.test.ts drives the page itself): `/`
 * redirects to /ui/, every path under /ui/ is the page with a same-origin Content-Security-Policy,
 * the assets are the build's, and none of it needs a token while the API it calls does.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { buildUi, UI_DIST } from '../../../scripts/build-ui.ts';
import { errorHandler } from '../../../src/api/rest/errors.ts';
import { uiRoutes } from '../../../src/api/ui/ui-routes.ts';
import { createAuthApp } from '../auth-helpers.ts';
import type { AuthApp } from '../auth-helpers.ts';

let t: AuthApp;
let secret: string;
before(async () => {
  await buildUi();
  t = await createAuthApp({ mode: 'auto', loopback: true });
  // With a token configured every API request needs one; the page's files do not.
  secret = (await t.tokens.create({ name: 'reader', scopes: ['read'] })).secret;
});
after(async () => {
  await t?.close();
});

const get = (url: string) => t.app.inject({ method: 'GET', url, headers: { host: 'localhost' } });

test('/ and /ui redirect to /ui/', async () => {
  for (const url of ['/', '/ui']) {
    const res = await get(url);
    assert.equal(res.statusCode, 302, url);
    assert.equal(res.headers.location, '/ui/');
  }
});

test('every path under /ui/ is the page, with a CSP that lets it load and ask nothing from another origin', async () => {
  const page = await readFile(join(UI_DIST, 'index.html'), 'utf8');
  for (const url of ['/ui/', '/ui/trace?snapshot=k3s-blog@1&destination=10.43.62.130&port=80', '/ui/clusters/prod', '/ui/diff?cluster=x']) {
    const res = await get(url);
    assert.equal(res.statusCode, 200, url);
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(res.body, page);
    const csp = String(res.headers['content-security-policy']);
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /connect-src 'self'/);
    assert.doesNotMatch(csp, /https?:|\*/, 'no other origin');
  }
  assert.match(page, /<script type="module" src="\/ui\/assets\/app\.js"><\/script>/);
  assert.match(page, /<link rel="stylesheet" href="\/ui\/assets\/app\.css">/);
  assert.doesNotMatch(page, /https?:\/\//, 'the page names no other site');
});

test('the assets are the build, with their types; other names are refused', async () => {
  const js = await get('/ui/assets/app.js');
  assert.equal(js.statusCode, 200);
  assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal(js.body, await readFile(join(UI_DIST, 'app.js'), 'utf8'));
  const css = await get('/ui/assets/app.css');
  assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
  assert.match(css.body, /prefers-color-scheme:\s*dark/);
  for (const url of ['/ui/assets/nope.js', '/ui/assets/..%2F..%2Fpackage.json']) {
    const res = await get(url);
    assert.equal(res.statusCode, 400, `${url}: ${res.body}`);
    assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
  }
});

test('the page needs no token; the API it calls does, and answers the token the page sends', async () => {
  assert.equal((await get('/ui/')).statusCode, 200);
  assert.equal((await get('/ui/assets/app.js')).statusCode, 200);
  assert.equal((await get('/')).statusCode, 302);
  assert.equal((await get('/v1/clusters')).statusCode, 401);
  const withToken = await t.app.inject({ method: 'GET', url: '/v1/clusters', headers: { host: 'localhost', authorization: `Bearer ${secret}` } });
  assert.equal(withToken.statusCode, 200);
});

test('a build missing its files is answered 503 with what to run', async () => {
  const empty = await mkdtemp(join(os.tmpdir(), 'svcpath-ui-'));
  const app = Fastify();
  try {
    await app.register(errorHandler);
    await app.register(uiRoutes, { dist: empty });
    const res = await app.inject({ method: 'GET', url: '/ui/' });
    assert.equal(res.statusCode, 503);
    assert.match(res.json().detail, /the web page is not built .*npm run build:ui/);
  } finally {
    await app.close();
    await rm(empty, { recursive: true });
  }
});

test('the build writes the page, its script and its style sheet', async () => {
  const out = await mkdtemp(join(os.tmpdir(), 'svcpath-ui-'));
  try {
    assert.deepEqual((await buildUi(out)).sort(), ['app.css', 'app.js', 'index.html']);
    const js = await readFile(join(out, 'app.js'), 'utf8');
    // Preact and dagre are bundled: nothing is imported from elsewhere at run time.
    assert.doesNotMatch(js, /\bimport\s*\(|from\s*["']https?:/);
  } finally {
    await rm(out, { recursive: true });
  }
});
