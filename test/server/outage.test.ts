/**
 * The embedded PostgreSQL killed under a running app (wired as server.ts wires it): every route
 * that needs the database answers 503 problem+json with Retry-After, /health says which part is
 * down, an upload under way fails with 503 without taking the process down, and all of it works
 * again once the server is back.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { openDatabase, type Database } from '../../src/store/database.ts';
import { createSnapshotStore } from '../../src/store/snapshot-store.ts';
import { createSnapshotService } from '../../src/services/snapshot-service.ts';
import { createTraceService } from '../../src/services/trace-service.ts';
import { generateCluster, renderIptablesSave } from '../support/kube-gen.ts';
import { fixture } from '../helpers.ts';
import { isRunning, waitFor } from '../store/helpers.ts';
import { inPlaceAnalysis } from '../../src/services/analysis-pool.ts';

/** Long enough to ask every route while the server is down. */
const RESTART_DELAY_MS = 2500;

describe('the embedded PostgreSQL dies under a running app', { timeout: 120_000 }, () => {
  let dataDir: string;
  let db: Database;
  let app: FastifyInstance;
  const states: string[] = [];
  let snapshotId: string;

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'svcpath-outage-'));
    db = await openDatabase(
      { databaseUrl: undefined, dataDir },
      { restartDelaysMs: [RESTART_DELAY_MS], onEmbeddedStateChange: (state) => states.push(state) },
    );
    const traceService = createTraceService();
    const snapshotService = createSnapshotService({ store: createSnapshotStore(db), traceService, analysis: inPlaceAnalysis(db.pool) });
    app = await buildApp({ traceService, snapshotService, ping: () => db.ping() });
    const created = await app.inject({
      method: 'POST', url: '/v1/clusters/k3s/snapshots',
      headers: { 'content-type': 'application/json' }, payload: fixture('../../examples/k3s/snapshot.json'),
    });
    assert.equal(created.statusCode, 201, created.body);
    snapshotId = created.json().snapshot.id;
  });

  after(async () => {
    await app?.close();
    await db?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  async function killPostmaster(): Promise<void> {
    const pid = db.server!.pid()!;
    process.kill(pid, 'SIGKILL');
    assert.ok(await waitFor(() => db.server!.state() === 'restarting', 5000), 'the death is noticed');
  }

  test('503 problem+json with Retry-After from REST and UNAVAILABLE from GraphQL while it is down', async () => {
    assert.deepEqual((await app.inject('/health')).json(), { status: 'ok', database: 'ok' });
    await killPostmaster();

    const health = await app.inject('/health');
    assert.equal(health.statusCode, 503);
    assert.equal(health.headers['content-type'], 'application/problem+json; charset=utf-8');
    assert.equal(health.headers['retry-after'], '5');
    assert.equal(health.json().database, 'down');
    assert.equal(health.json().embedded, 'restarting');
    assert.equal(health.json().code, 'UNAVAILABLE');

    for (const url of ['/v1/clusters', '/v1/clusters/k3s/snapshots', `/v1/snapshots/${snapshotId}`,
      `/v1/snapshots/${snapshotId}/trace?destination=10.43.62.130&port=80&source=10.42.0.7`]) {
      const response = await app.inject(url);
      assert.equal(response.statusCode, 503, `${url}: ${response.body}`);
      assert.equal(response.headers['retry-after'], '5', url);
      assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8', url);
      assert.equal(response.json().code, 'UNAVAILABLE', url);
      assert.equal(response.json().detail, 'the database is unavailable; try again shortly', url);
    }
    const graphql = await app.inject({
      method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ query: '{ clusters { name } }' }),
    });
    assert.deepEqual(graphql.json().errors.map((e: { extensions: { code: string } }) => e.extensions.code), ['UNAVAILABLE']);
    // The stateless trace needs no database.
    const stateless = await app.inject({
      method: 'POST', url: '/v1/trace', headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ rules: '*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n', node: { addresses: ['10.0.0.1'] }, packet: { source: '10.0.0.2', destination: '10.0.0.3', port: 80, protocol: 'tcp' } }),
    });
    assert.equal(stateless.statusCode, 200, stateless.body);
  });

  test('everything answers again once the server is back, without a restart of the app', async () => {
    assert.ok(await waitFor(() => db.server!.state() === 'running', 30_000), `state: ${db.server!.state()}`);
    assert.deepEqual(states, ['restarting', 'running']);
    assert.deepEqual((await app.inject('/health')).json(), { status: 'ok', database: 'ok' });
    const clusters = await app.inject('/v1/clusters');
    assert.equal(clusters.statusCode, 200, clusters.body);
    assert.equal(clusters.json().items[0].name, 'k3s');
    const graphql = await app.inject({
      method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ query: '{ clusters { name } }' }),
    });
    assert.deepEqual(graphql.json(), { data: { clusters: [{ name: 'k3s' }] } });
  });

  test('an upload under way when the server dies fails with 503, and the process lives on', async (t) => {
    const rules = renderIptablesSave(generateCluster({ seed: 7, services: 1500 }));
    const nodes = Array.from({ length: 6 }, (_, i) => ({ name: `node-${i}`, addresses: [`10.0.0.${i + 1}`], rules }));
    t.diagnostic(`upload of ${nodes.length} nodes × ${(rules.length / 1e6).toFixed(1)} MB`);
    const upload = app.inject({
      method: 'POST', url: '/v1/clusters/big/snapshots',
      headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ nodes }),
    });
    // Kill it once the upload has begun writing: its transaction holds a checked-out connection.
    assert.ok(await waitFor(async () => (await db.pool.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'idle in transaction' OR query LIKE 'COPY%'").catch(() => ({ rows: [{ n: 0 }] }))).rows[0].n > 0, 20_000));
    const pid = db.server!.pid()!;
    process.kill(pid, 'SIGKILL');
    const response = await upload;
    assert.equal(response.statusCode, 503, response.body);
    assert.equal(response.json().code, 'UNAVAILABLE');
    // The upload can fail on the dropped connection before the kernel has finished the process off.
    assert.ok(await waitFor(() => !isRunning(pid), 10_000), 'the killed postmaster is gone');

    assert.ok(await waitFor(() => db.server!.state() === 'running', 30_000), `state: ${db.server!.state()}`);
    // PostgreSQL recovers from the kill before it takes queries (57P03, a 503 meanwhile).
    assert.ok(await waitFor(async () => (await app.inject('/health')).statusCode === 200, 30_000));
    // Nothing of the failed upload was kept; sent again it is stored.
    const again = await app.inject({
      method: 'POST', url: '/v1/clusters/big/snapshots',
      headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ nodes: nodes.slice(0, 1) }),
    });
    assert.equal(again.statusCode, 201, again.body);
    assert.equal(again.json().snapshot.version, 1);
  });
});
