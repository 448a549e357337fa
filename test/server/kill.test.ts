/**
 * The server killed (SIGKILL) during an upload in steps and during its commit: no snapshot is ever
 * partial, and once the abandoned uploads expire and are swept, storage is back where it was.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createTestDatabase } from '../store/helpers.ts';
import type { TestDatabase } from '../store/helpers.ts';
import { generateCluster, renderIptablesSave } from '../support/kube-gen.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let testDb: TestDatabase;
let db: pg.Pool;
/** Every server started, so that a failed test leaves none behind. */
const servers: ChildProcess[] = [];
before(async () => {
  testDb = await createTestDatabase();
  db = new pg.Pool({ connectionString: testDb.url, max: 2 });
});
after(async () => {
  for (const s of servers) if (s.exitCode === null && s.signalCode === null) s.kill('SIGKILL');
  await db?.end();
  await testDb?.drop();
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function start(port: number): Promise<ChildProcess> {
  const env = { ...process.env };
  for (const k of ['HOST', 'SVCPATH_ADMIN_TOKEN', 'SVCPATH_AUTH', 'SVCPATH_RETENTION']) delete env[k];
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: ROOT,
    env: {
      ...env, DATABASE_URL: testDb.url, PORT: String(port),
      SVCPATH_PARSE_THREADS: '0', SVCPATH_UPLOAD_TTL: '2s', SVCPATH_SWEEP_INTERVAL: '1s',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  servers.push(child);
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready in 60 s:\n${output}`)), 60_000);
    const seen = (b: Buffer) => {
      output += b.toString();
      if (output.includes('svcpath ready')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', seen);
    child.stderr.on('data', seen);
    child.on('exit', (code) => reject(new Error(`exited with ${code}:\n${output}`)));
  });
  child.removeAllListeners('exit');
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await gone;
}

async function storage(): Promise<{ chunks: number; blobs: number; bytes: number }> {
  const { rows: [r] } = await db.query(
    `SELECT (SELECT count(*) FROM chunk)::int AS chunks, (SELECT count(*) FROM blob)::int AS blobs,
            (SELECT COALESCE(sum(octet_length(data)), 0) FROM chunk)::int AS bytes`,
  );
  return r;
}

test('killed during puts and during a commit: never a partial snapshot, and the storage of abandoned uploads comes back', async () => {
  const cluster = generateCluster({ seed: 12, services: 300 });
  const names = cluster.nodes.slice(0, 4);
  const dumps = names.map((n, i) => renderIptablesSave({ ...cluster, nodeName: n, nodeIPs: [`10.3.0.${i + 1}`] }));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const begin = async () => ((await (await fetch(`${url}/v1/clusters/killed/uploads`, { method: 'POST' })).json()) as { id: string }).id;
  const put = (id: string, i: number) => fetch(`${url}/v1/uploads/${id}/nodes/${names[i]}?addresses=10.3.0.${i + 1}`, {
    method: 'PUT', body: dumps[i], headers: { 'content-type': 'text/plain' },
  });
  // 1. Killed while the third node is being put.
  let server = await start(port);
  const baseline = await storage();
  const first = await begin();
  for (const i of [0, 1]) assert.equal((await put(first, i)).status, 200);
  const third = put(first, 2).catch(() => null);
  await new Promise((r) => setTimeout(r, 20));
  await kill(server);
  await third;

  // 2. Killed as a commit is sent (it may or may not have happened: either is fine, half is not).
  server = await start(port);
  const second = await begin();
  for (const i of [0, 1, 2, 3]) assert.equal((await put(second, i)).status, 200);
  const commit = fetch(`${url}/v1/uploads/${second}/commit`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } }).catch(() => null);
  await new Promise((r) => setTimeout(r, 5));
  await kill(server);
  await commit;

  server = await start(port);
  try {
    const list = await fetch(`${url}/v1/clusters/killed/snapshots`);
    const snapshots = list.status === 404 ? [] : ((await list.json()) as { items: { id: string; version: number }[] }).items;
    assert.ok(snapshots.length <= 1);
    for (const s of snapshots) {
      assert.equal(s.version, 1);
      const full = (await (await fetch(`${url}/v1/snapshots/${s.id}`)).json()) as { nodes: { name: string }[] };
      assert.deepEqual(full.nodes.map((n: { name: string }) => n.name), [...names].sort());
      for (const [i, n] of names.entries()) assert.equal(await (await fetch(`${url}/v1/snapshots/${s.id}/nodes/${n}/rules`)).text(), dumps[i]);
      // Delete it too: then nothing at all should remain once swept.
      assert.equal((await fetch(`${url}/v1/snapshots/${s.id}`, { method: 'DELETE' })).status, 204);
    }
    // The abandoned uploads expire after 2 s and the sweep runs every second.
    let now = await storage();
    for (let i = 0; i < 40 && JSON.stringify(now) !== JSON.stringify(baseline); i++) {
      await new Promise((r) => setTimeout(r, 250));
      now = await storage();
    }
    assert.deepEqual(now, baseline);
    const { rows: [u] } = await db.query('SELECT count(*)::int AS n FROM upload WHERE expires_at < now()');
    assert.equal(u.n, 0);
  } finally {
    await kill(server);
  }
});
