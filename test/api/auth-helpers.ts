/** An app with access control, on a throwaway PostgreSQL database, for the token and cross-site tests. */
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { createAuthenticator } from '../../src/services/access.ts';
import type { AccessPolicy } from '../../src/services/access.ts';
import { createSnapshotService } from '../../src/services/snapshot-service.ts';
import { createTokenService } from '../../src/services/token-service.ts';
import type { TokenService } from '../../src/services/token-service.ts';
import { createTraceService } from '../../src/services/trace-service.ts';
import { openDatabase } from '../../src/store/database.ts';
import type { Database } from '../../src/store/database.ts';
import { createSnapshotStore } from '../../src/store/snapshot-store.ts';
import { createClusterLookup, createTokenStore } from '../../src/store/token-store.ts';
import { createTestDatabase } from '../store/helpers.ts';
import { inPlaceAnalysis } from '../../src/services/analysis-pool.ts';

export interface AuthApp {
  app: FastifyInstance;
  db: Database;
  service: ReturnType<typeof createSnapshotService>;
  tokens: TokenService;
  close(): Promise<void>;
}

export async function createAuthApp(policy: AccessPolicy): Promise<AuthApp> {
  const testDb = await createTestDatabase();
  const db = await openDatabase({ databaseUrl: testDb.url, dataDir: '' });
  const traceService = createTraceService();
  const service = createSnapshotService({ store: createSnapshotStore(db), traceService, analysis: inPlaceAnalysis(db.pool) });
  const tokenStore = createTokenStore(db);
  const tokens = createTokenService(tokenStore);
  const app = await buildApp({
    traceService, snapshotService: service, ping: () => service.ping(),
    logger: process.env.TEST_LOG ? { level: 'error' } : false,
    access: { authenticator: createAuthenticator(policy, tokenStore), owners: createClusterLookup(db), tokenService: tokens },
  });
  return {
    app, db, service, tokens,
    async close() {
      await app.close();
      await service.sweep();
      await db.close();
      await testDb.drop();
    },
  };
}
