import { isRunning, shippedMigrations, waitFor } from './helpers.ts';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { openDatabase } from '../../src/store/database.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/store/embedded.ts';

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

async function canConnect(url: string): Promise<boolean> {
  try {
    await query(url, 'SELECT 1');
    return true;
  } catch {
    return false;
  }
}

/** Starts the server in a child process, then kills that process with SIGKILL. */
async function killOwner(dataDir: string, watchdog: boolean): Promise<{ connectionString: string; pid: number }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(new URL('./embedded-child.ts', import.meta.url)), dataDir, watchdog ? 'watchdog' : 'no-watchdog'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]);
    });
    child.once('exit', (code) => reject(new Error(`child exited early (code ${code})`)));
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  const pid = Number.parseInt((await readFile(path.join(dataDir, 'pgdata', 'postmaster.pid'), 'utf8')).split('\n')[0], 10);
  assert.equal(pid, JSON.parse(line).pid);
  return { connectionString: JSON.parse(line).connectionString, pid };
}

describe('startEmbeddedPostgres', { timeout: 60_000 }, () => {
  let dataDir: string;
  let server: EmbeddedPostgres | undefined;

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'svcpath-embedded-'));
  });

  after(async () => {
    await server?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('initialises a new data directory and serves the svcpath database', async (t) => {
    const started = performance.now();
    server = await startEmbeddedPostgres({ dataDir });
    const ms = Math.round(performance.now() - started);
    t.diagnostic(`first start (initdb + start + create database): ${ms} ms`);
    assert.equal(server.initialised, true);
    assert.notEqual(server.port, 5432);
    assert.match(server.connectionString, /^postgresql:\/\/postgres:[^@]+@127\.0\.0\.1:\d+\/svcpath$/);

    const [row] = await query<{ db: string; version: string }>(
      server.connectionString,
      "SELECT current_database() AS db, current_setting('server_version') AS version",
    );
    assert.equal(row?.db, 'svcpath');
    assert.match(row?.version ?? '', /^18\./);
    await query(server.connectionString, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives restarts')");

    await server.stop();
    await server.stop(); // idempotent
    assert.equal(await canConnect(server.connectionString), false);
    server = undefined;
  });

  test('reuses the data directory on the next start', async (t) => {
    const started = performance.now();
    server = await startEmbeddedPostgres({ dataDir });
    t.diagnostic(`restart: ${Math.round(performance.now() - started)} ms`);
    assert.equal(server.initialised, false);
    const rows = await query<{ v: string }>(server.connectionString, 'SELECT v FROM kept');
    assert.deepEqual(rows, [{ v: 'survives restarts' }]);
    await server.stop();
    server = undefined;
  });

  test('the watchdog stops the server when the process that started it is killed with SIGKILL', async (t) => {
    const orphan = await killOwner(dataDir, true);
    const started = performance.now();
    assert.ok(await waitFor(() => !isRunning(orphan.pid), 15_000), 'the postmaster is stopped');
    t.diagnostic(`postmaster gone ${Math.round(performance.now() - started)} ms after its owner's SIGKILL`);
    assert.equal(await canConnect(orphan.connectionString), false);
  });

  test('stops a postmaster left behind by a killed process, then starts', async (t) => {
    const orphan = await killOwner(dataDir, false);
    assert.ok(isRunning(orphan.pid), 'the postmaster outlives the killed process');
    assert.equal(await canConnect(orphan.connectionString), true);

    const started = performance.now();
    server = await startEmbeddedPostgres({ dataDir });
    t.diagnostic(`start after stopping the leftover: ${Math.round(performance.now() - started)} ms`);
    assert.equal(server.initialised, false);
    // The leftover is gone (its port may well have been handed to the new server, so check the process).
    assert.equal(isRunning(orphan.pid), false);
    if (new URL(orphan.connectionString).port !== String(server.port)) assert.equal(await canConnect(orphan.connectionString), false);
    const rows = await query<{ v: string }>(server.connectionString, 'SELECT v FROM kept');
    assert.deepEqual(rows, [{ v: 'survives restarts' }]);
  });

  test('refuses a data directory whose server a live process is using', async () => {
    assert.ok(server, 'the server of the previous test runs');
    await assert.rejects(startEmbeddedPostgres({ dataDir }), /is in use by a PostgreSQL \(pid \d+\) that a running node process/);
    assert.equal(await canConnect(server.connectionString), true);
  });

  test('a port in use gives an error that quotes the server log', async () => {
    await server?.stop();
    server = undefined;
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as AddressInfo;
    try {
      await assert.rejects(startEmbeddedPostgres({ dataDir, port }), /did not start on port \d+[\s\S]*could not bind/i);
    } finally {
      blocker.close();
    }
  });

  test('restarts the server on the same port when it dies, keeping the data', async () => {
    const states: string[] = [];
    server = await startEmbeddedPostgres({ dataDir, restartDelaysMs: [300], onStateChange: (state) => states.push(state) });
    const first = server.pid();
    assert.ok(first);
    process.kill(first, 'SIGKILL');
    assert.ok(await waitFor(() => server!.state() === 'restarting', 5_000));
    assert.equal(await canConnect(server.connectionString), false);
    assert.ok(await waitFor(() => server!.state() === 'running', 15_000), `state: ${server.state()}`);
    assert.notEqual(server.pid(), first);
    assert.deepEqual(states, ['restarting', 'running']);
    const rows = await query<{ v: string }>(server.connectionString, 'SELECT v FROM kept');
    assert.deepEqual(rows, [{ v: 'survives restarts' }]);
    await server.stop();
    assert.equal(server.state(), 'stopped');
    server = undefined;
  });

  test('gives up after the last restart attempt, and says so', async () => {
    const states: string[] = [];
    const blocker = createServer();
    server = await startEmbeddedPostgres({ dataDir, restartDelaysMs: [100, 100], onStateChange: (state) => states.push(state) });
    try {
      // The port is taken while the server is down: every restart fails.
      const pid = server.pid()!;
      process.kill(pid, 'SIGKILL');
      assert.ok(await waitFor(() => !isRunning(pid), 5_000));
      await new Promise<void>((resolve) => blocker.listen(server!.port, '127.0.0.1', resolve));
      assert.ok(await waitFor(() => server!.state() === 'failed', 15_000), `state: ${server.state()}`);
      assert.deepEqual(states, ['restarting', 'failed']);
    } finally {
      blocker.close();
      await server.stop();
      server = undefined;
    }
  });

  test('refuses a data directory of another PostgreSQL major version, saying what to do', async () => {
    const other = await mkdtemp(path.join(os.tmpdir(), 'svcpath-embedded-old-'));
    try {
      await mkdir(path.join(other, 'pgdata'));
      await writeFile(path.join(other, 'pgdata', 'PG_VERSION'), '15\n');
      await writeFile(path.join(other, 'password'), 'x\n');
      await assert.rejects(startEmbeddedPostgres({ dataDir: other }), (error: Error) => {
        assert.equal(error.name, 'EmbeddedPostgresError');
        assert.match(error.message, /holds a PostgreSQL 15 cluster but the embedded server is PostgreSQL 18; dump it/);
        return true;
      });
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  test('as root: runs the binaries from a copy the OS user postgres can reach, and refuses an unreachable data directory', async (t) => {
    if (process.getuid?.() !== 0) {
      t.skip('not root');
      return;
    }
    // A directory only its owner (root) can enter, like root's home or `mktemp -d`.
    const closed = await mkdtemp(path.join(os.tmpdir(), 'svcpath-closed-'));
    try {
      await assert.rejects(startEmbeddedPostgres({ dataDir: path.join(closed, 'data') }), (error: Error) => {
        assert.equal(error.name, 'EmbeddedPostgresError');
        assert.match(error.message, /runs as the OS user postgres \(PostgreSQL refuses to run as root\), which cannot enter \/tmp\/svcpath-closed-\w+ \(mode 0700\)/);
        assert.match(error.message, /Leave SVCPATH_DATA_DIR unset/);
        return true;
      });
      assert.equal((await stat(closed)).mode & 0o777, 0o700, 'the directory is left as it was');
    } finally {
      await rm(closed, { recursive: true, force: true });
    }
    server = await startEmbeddedPostgres({ dataDir });
    assert.equal(server.osUser, 'postgres');
    assert.match(server.installDir, /^\/var\/lib\/svcpath\/postgresql-18\.[\w.-]+-linux-x64$/);
    assert.equal((await stat(path.join(server.installDir, 'bin', 'postgres'))).mode & 0o755, 0o755);
    await server.stop();
    server = undefined;
  });

  test('openDatabase without DATABASE_URL runs the embedded server and migrates it', async (t) => {
    await server?.stop();
    server = undefined;
    const started = performance.now();
    const db = await openDatabase({ databaseUrl: undefined, dataDir });
    t.diagnostic(`openDatabase (start + migrate): ${Math.round(performance.now() - started)} ms`);
    try {
      assert.equal(db.embedded, true);
      assert.deepEqual(db.appliedMigrations, shippedMigrations());
      const cluster = await db.prisma.cluster.create({ data: { name: 'embedded' } });
      assert.equal((await db.prisma.cluster.findUniqueOrThrow({ where: { name: 'embedded' } })).id, cluster.id);
    } finally {
      await db.close();
    }
    assert.equal(await canConnect(db.connectionString), false);
  });
});
