/**
 * The only file that listens: reads the config, opens the database (DATABASE_URL, or the embedded
 * PostgreSQL in SVCPATH_DATA_DIR), applies migrations, builds the app, binds HOST:PORT.
 */
import { loadConfig } from './config.ts';
import { buildApp } from './app.ts';
import { openDatabase } from './store/database.ts';
import { createSnapshotStore } from './store/snapshot-store.ts';
import { createSnapshotService } from './services/snapshot-service.ts';
import { createTraceService } from './services/trace-service.ts';
import { createParsePool } from './services/parse-pool.ts';
import { createAnalysisPool } from './services/analysis-pool.ts';
import { createAuthenticator, isLoopbackAddress, startupAccess } from './services/access.ts';
import { createTokenService } from './services/token-service.ts';
import { createClusterLookup, createTokenStore } from './store/token-store.ts';
import { createRetention, describePolicy } from './services/retention.ts';
import { createRetentionStore } from './store/retention-store.ts';

const config = loadConfig();
const started = performance.now();
const db = await openDatabase(config, { log: (m) => console.error(`[db] ${m}`) });
// With no token configured, only a loopback address may be served (requests are anonymous admins).
const tokenStore = createTokenStore(db);
const auth = startupAccess({ host: config.host, port: config.port, mode: config.authMode, adminToken: config.adminToken, tokenCount: (await tokenStore.list()).length });
if (auth.refusal) {
  console.error(auth.refusal);
  await db.close();
  process.exit(1);
}
const traceService = createTraceService({ limits: config.limits });
const parsePool = createParsePool({ threads: config.parseThreads });
const analysis = createAnalysisPool({
  connectionString: db.connectionString, threads: config.analysisThreads, heapMb: config.analysisHeapMb, queue: config.analysisQueue,
});
const snapshotService = createSnapshotService({
  store: createSnapshotStore(db), traceService, parsePool, analysis, cacheBytes: config.cacheBytes, uploadTtlMs: config.uploadTtlMs,
  limits: config.limits,
  log: (m) => app.log.warn(m),
});
const app = await buildApp({
  logger: { level: config.logLevel },
  bodyLimit: config.bodyLimitBytes,
  uploadLimits: { partBytes: config.nodeLimitBytes, totalBytes: config.uploadLimitBytes },
  limits: config.limits,
  timeouts: { idleMs: config.idleTimeoutMs, requestMs: config.requestTimeoutMs, maxConnections: config.maxConnections },
  traceService,
  snapshotService,
  ping: () => snapshotService.ping(),
  access: {
    authenticator: createAuthenticator({ mode: config.authMode, adminToken: config.adminToken, loopback: isLoopbackAddress(config.host) }, tokenStore),
    owners: createClusterLookup(db),
    tokenService: createTokenService(tokenStore),
  },
});

let closing = false;
async function shutdown(signal: string): Promise<void> {
  if (closing) return;
  closing = true;
  app.log.info({ signal }, 'shutting down');
  clearInterval(sweeping);
  stopRetention();
  await app.close().catch(() => {});
  await parsePool.close().catch(() => {});
  await analysis.close().catch(() => {});
  await db.close().catch(() => {});
  process.exit(0);
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void shutdown(signal));

// Expired uploads and whatever no snapshot refers to any more are swept now and then (and soon
// after each delete, by the service).
const sweeping = setInterval(() => void snapshotService.sweep(), config.sweepIntervalMs);
sweeping.unref();
void snapshotService.sweep();
// Old snapshots go per SVCPATH_RETENTION, hourly, through the same delete as DELETE /v1/snapshots/{id}.
const stopRetention = config.retention
  ? createRetention({ policy: config.retention, store: createRetentionStore(db), deleteSnapshot: (id) => snapshotService.delete(id), log: (m) => app.log.info(m) }).start(3600_000)
  : () => {};

await app.listen({ port: config.port, host: config.host });
app.log.info(
  `svcpath ready in ${((performance.now() - started) / 1000).toFixed(1)} s on ${config.host}:${config.port} — database: ${db.embedded ? `embedded PostgreSQL in ${config.dataDir}` : 'DATABASE_URL'}; REST /v1, OpenAPI /docs, GraphQL /graphql, GraphiQL /graphiql; auth: ${auth.summary}${config.retention ? `; retention: ${describePolicy(config.retention)}` : ''}`,
);
