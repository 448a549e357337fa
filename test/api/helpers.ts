/** An app wired to a real, throwaway PostgreSQL database, for API tests. */
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { openDatabase } from '../../src/store/database.ts';
import type { Database } from '../../src/store/database.ts';
import { createSnapshotStore } from '../../src/store/snapshot-store.ts';
import { createSnapshotService } from '../../src/services/snapshot-service.ts';
import { createAnalysisPool, inPlaceAnalysis } from '../../src/services/analysis-pool.ts';
import { chunkCache } from '../../src/services/byte-cache.ts';
import { createTraceService } from '../../src/services/trace-service.ts';
import { createTestDatabase } from '../store/helpers.ts';
import type { TestDatabase } from '../store/helpers.ts';

export interface TestApp {
  app: FastifyInstance;
  db: Database;
  service: ReturnType<typeof createSnapshotService>;
  close(): Promise<void>;
}

export async function createTestApp(options: {
  bodyLimit?: number; uploadTtlMs?: number; uploadLimits?: { partBytes: number; totalBytes: number };
  /** Audits and diffs on a worker thread with this heap (MiB), as the server runs them; else in place. */
  analysisHeapMb?: number;
} = {}): Promise<TestApp> {
  const testDb: TestDatabase = await createTestDatabase();
  const db = await openDatabase({ databaseUrl: testDb.url, dataDir: '' });
  const traceService = createTraceService();
  const analysis = options.analysisHeapMb
    ? createAnalysisPool({ connectionString: db.connectionString, threads: 1, heapMb: options.analysisHeapMb, queue: 4 })
    : inPlaceAnalysis(db.pool);
  const snapshotService = createSnapshotService({
    // A small chunk cache, as the server has one: raw dumps and traces read through it.
    store: createSnapshotStore(db, { chunks: chunkCache(4 * 1024 * 1024) }), traceService, uploadTtlMs: options.uploadTtlMs, analysis,
  });
  const app = await buildApp({
    traceService, snapshotService, ping: () => snapshotService.ping(), bodyLimit: options.bodyLimit, uploadLimits: options.uploadLimits,
    logger: process.env.TEST_LOG ? { level: 'error' } : false,
  });
  return {
    app,
    db,
    service: snapshotService,
    async close() {
      await app.close();
      await analysis.close();
      await db.close();
      await testDb.drop();
    },
  };
}
