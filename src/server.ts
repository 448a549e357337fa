/**
 * The only file that listens: reads the config, opens the database (DATABASE_URL, or the embedded
 * PostgreSQL in SVCPATH_DATA_DIR), applies migrations, builds the app, binds HOST:PORT.
 *
 * A start-up failure prints one message to stderr that says what to do, without a stack trace,
 * and exits with 1 (2 for invalid settings). Once running, the embedded PostgreSQL is restarted
 * when it dies; when it cannot be brought back the process exits with 1, so that a supervisor
 * (systemd, Kubernetes, docker --restart) starts it afresh.
 */
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { isDatabaseUnavailable } from './app-error.ts';
import { ConfigError, DEFAULT_DATA_DIR, loadConfig, type Config } from './config.ts';
import { buildApp } from './app.ts';
import { hostPort } from './engine/index.ts';
import { openDatabase, type Database } from './store/database.ts';
import { EmbeddedPostgresError } from './store/embedded.ts';
import { MigrationError } from './store/migrate.ts';
import { createSnapshotStore } from './store/snapshot-store.ts';
import { createSnapshotService } from './services/snapshot-service.ts';
import { createRulesetCache } from './services/ruleset-cache.ts';
import { createTraceService } from './services/trace-service.ts';
import { createParsePool } from './services/parse-pool.ts';
import type { ParsePool } from './services/parse-pool.ts';
import { createAnalysisPool } from './services/analysis-pool.ts';
import { chunkCache } from './services/byte-cache.ts';
import type { AnalysisPool } from './services/analysis-pool.ts';
import { createAuthenticator, isLoopbackAddress, startupAccess } from './services/access.ts';
import { createTokenService } from './services/token-service.ts';
import { createClusterLookup, createTokenStore } from './store/token-store.ts';
import { createRetention, describePolicy } from './services/retention.ts';
import { createRetentionStore } from './store/retention-store.ts';

/** A failure whose message already says what to do. */
class StartupError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

let db: Database | undefined;
let app: FastifyInstance | undefined;
let parsePool: ParsePool | undefined;
let analysis: AnalysisPool | undefined;
/** Background work stopped at exit: the storage sweep and retention. */
const stops: (() => void)[] = [];
let config: Config | undefined;
let closing = false;
/** Until the app's logger exists, the database's news goes to stderr. */
let log: (message: string) => void = (message) => process.stderr.write(`svcpath: ${message}\n`);

async function main(): Promise<void> {
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) throw new StartupError(`${error.message}\nFix these settings (environment variables) and start again.`, 2);
    throw error;
  }
  const { host, port } = config;
  // Before the database starts: a second server on a taken port should fail at once, and
  // leave the data directory alone.
  await ensurePortFree(host, port);

  const started = performance.now();
  db = await openDatabase(config, {
    log: (message) => log(message),
    onEmbeddedStateChange: (state, cause) => {
      if (state === 'failed') {
        void exitWith(
          `the embedded PostgreSQL died and could not be restarted (${cause?.message ?? 'no reason given'}); ` +
            'exiting so that a supervisor can start svcpath again',
          1,
        );
      }
    },
  });
  const database = db;
  // Prisma loads its runtime and query compiler on its first query (some 300 ms of the event
  // loop): done now, not in the middle of the first upload while /health waits.
  await database.prisma.cluster.count();
  // With no token configured, only a loopback address may be served (requests are anonymous admins).
  const tokenStore = createTokenStore(database);
  const auth = startupAccess({ host, port, mode: config.authMode, adminToken: config.adminToken, tokenCount: (await tokenStore.list()).length });
  if (auth.refusal) throw new StartupError(auth.refusal);
  // One cache of parsed dumps for traces of snapshots and of pasted rules.
  const rulesets = createRulesetCache({ budgetBytes: config.caches.rulesets });
  const traceService = createTraceService({ limits: config.limits, rulesets });
  parsePool = createParsePool({ threads: config.parseThreads });
  analysis = createAnalysisPool({
    connectionString: database.connectionString, threads: config.analysisThreads, heapMb: config.analysisHeapMb, queue: config.analysisQueue,
    chunkCacheBytes: config.chunkCacheBytes,
  });
  const snapshotService = createSnapshotService({
    store: createSnapshotStore(database, { chunks: chunkCache(config.chunkCacheBytes) }), traceService, parsePool, analysis, caches: config.caches, rulesets,
    uploadTtlMs: config.uploadTtlMs, limits: config.limits, log: (m) => log(m),
  });
  app = await buildApp({
    logger: { level: config.logLevel },
    bodyLimit: config.bodyLimitBytes,
    uploadLimits: { partBytes: config.nodeLimitBytes, totalBytes: config.uploadLimitBytes },
    limits: config.limits,
    timeouts: { idleMs: config.idleTimeoutMs, requestMs: config.requestTimeoutMs, maxConnections: config.maxConnections },
    inflightBytes: config.inflightBytes,
    traceService,
    snapshotService,
    ping: () => database.ping(),
    access: {
      authenticator: createAuthenticator({ mode: config.authMode, adminToken: config.adminToken, loopback: isLoopbackAddress(host) }, tokenStore),
      owners: createClusterLookup(database),
      tokenService: createTokenService(tokenStore),
    },
  });
  // Expired uploads and whatever no snapshot refers to any more are swept now and then (and soon
  // after each delete, by the service).
  const sweeping = setInterval(() => void snapshotService.sweep(), config.sweepIntervalMs);
  sweeping.unref();
  stops.push(() => clearInterval(sweeping));
  void snapshotService.sweep();
  // Old snapshots go per SVCPATH_RETENTION, hourly, through the same delete as DELETE /v1/snapshots/{id}.
  if (config.retention) {
    stops.push(createRetention({
      policy: config.retention, store: createRetentionStore(database), deleteSnapshot: (id) => snapshotService.delete(id), log: (m) => log(m),
    }).start(3600_000));
  }
  const logger = app.log;
  log = (message) => logger.warn(message);

  try {
    await app.listen({ port, host });
  } catch (error) {
    throw listenError(error, host, port);
  }
  const address = app.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  app.log.info(
    `svcpath ready in ${((performance.now() - started) / 1000).toFixed(1)} s on http://${hostPort(host, bound)} — database: ${describeDatabase(database)}; ` +
      `web page /ui/, REST /v1, OpenAPI /docs, GraphQL /graphql, GraphiQL /graphiql; auth: ${auth.summary}` +
      (config.retention ? `; retention: ${describePolicy(config.retention)}` : ''),
  );
  const earlier = path.resolve(DEFAULT_DATA_DIR);
  if (database.server && database.server.dataDir !== earlier && existsSync(path.join(earlier, 'pgdata'))) {
    app.log.warn(`${earlier} holds an earlier embedded database; set SVCPATH_DATA_DIR=${earlier} to use it instead`);
  }
}

function describeDatabase(database: Database): string {
  const server = database.server;
  if (!server) return 'DATABASE_URL';
  const runAs = server.osUser ? `, run as the OS user ${server.osUser} from ${server.installDir}` : '';
  return `embedded PostgreSQL ${server.majorVersion} with its data in ${server.dataDir}${runAs}`;
}

async function ensurePortFree(host: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error) => reject(listenError(error, host, port)));
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve()));
  });
}

function listenError(error: unknown, host: string, port: number): Error {
  switch ((error as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE':
      return new StartupError(`port ${port} on ${host} is in use (another svcpath?): stop what listens there, or set PORT to another port`);
    case 'EACCES':
      return new StartupError(`no permission to listen on port ${port}: set PORT to a port above 1023`);
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
      return new StartupError(`HOST ${host} is not an address of this machine: set HOST (0.0.0.0 listens on every address)`);
    default:
      return error as Error;
  }
}

/** The one line a person reads when the start fails. */
function explain(error: unknown): string {
  if (error instanceof StartupError || error instanceof EmbeddedPostgresError) return error.message;
  if (error instanceof MigrationError) return `${error.message}\nThe database schema could not be brought up to date; fix the cause above and start again.`;
  const code = (error as { code?: unknown }).code;
  if (config?.databaseUrl) {
    if (isDatabaseUnavailable(error)) {
      return `cannot reach the database at DATABASE_URL (${(error as Error).message}): check the address and that PostgreSQL runs, or unset DATABASE_URL to use the embedded one`;
    }
    if (code === '28P01' || code === '28000') return `the database refused DATABASE_URL's user or password (${(error as Error).message}): fix DATABASE_URL`;
    if (code === '3D000') return `${(error as Error).message}: create that database, or fix DATABASE_URL`;
  }
  const message = error instanceof Error ? error.message : String(error);
  const stack = config?.logLevel === 'debug' || config?.logLevel === 'trace';
  return stack && error instanceof Error && error.stack
    ? error.stack
    : `${message}\n(set LOG_LEVEL=debug to see where it happened)`;
}

/** Closes what is open, prints `message` (if any) and exits. */
async function exitWith(message: string | undefined, code: number): Promise<void> {
  if (closing) return;
  closing = true;
  if (message) process.stderr.write(`svcpath: ${message}\n`);
  // The embedded server must not outlive us: close it, but do not hang on a stuck close.
  const timer = setTimeout(() => process.exit(code), 15_000);
  timer.unref();
  for (const stop of stops) stop();
  await app?.close().catch(() => {});
  await parsePool?.close().catch(() => {});
  await analysis?.close().catch(() => {});
  await db?.close().catch(() => {});
  process.exit(code);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app?.log.info({ signal }, 'shutting down');
    void exitWith(undefined, 0);
  });
}
process.on('uncaughtException', (error) => {
  app?.log.fatal({ err: error }, 'uncaught exception');
  void exitWith(app ? 'stopped after an unexpected error (logged above)' : `could not start: ${explain(error)}`, 1);
});
process.on('unhandledRejection', (reason) => {
  app?.log.fatal({ err: reason }, 'unhandled rejection');
  void exitWith(app ? 'stopped after an unexpected error (logged above)' : `could not start: ${explain(reason)}`, 1);
});

try {
  await main();
} catch (error) {
  await exitWith(`could not start: ${explain(error)}`, error instanceof StartupError ? error.exitCode : 1);
}
