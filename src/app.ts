/**
 * buildApp(): the fastify instance with every plugin and route registered. It never listens:
 * tests call `inject()`, and only server.ts binds a port.
 */
import Fastify from 'fastify';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { errorHandler } from './api/rest/errors.ts';
import { sharedSchemas } from './api/rest/schemas.ts';
import { traceRoutes } from './api/rest/trace-routes.ts';
import multipart from '@fastify/multipart';
import { createTraceService } from './services/trace-service.ts';
import type { TraceService } from './services/trace-service.ts';
import type { SnapshotService } from './services/snapshot-types.ts';
import { gzipBodies } from './api/rest/gzip.ts';
import { healthRoutes } from './api/rest/health-routes.ts';
import { snapshotRoutes } from './api/rest/snapshot-routes.ts';
import { graphqlPlugin } from './api/graphql/index.ts';
import type { Limits } from './services/limits.ts';

export interface AppOptions {
  readonly logger?: FastifyServerOptions['logger'];
  /** Largest request body in bytes (a 10,000-Service node's dump is about 40 MB). */
  readonly bodyLimit?: number;
  readonly traceService?: TraceService;
  /** Without it the app is stateless: /v1/trace and /health only. */
  readonly snapshotService?: SnapshotService;
  /** Answers when the database does (for /health). */
  readonly ping?: () => Promise<void>;
  /** GraphQL tokens, aliases, depth and cost (config `limits`); the defaults without. */
  readonly limits?: Limits;
}

export const API_VERSION = '0.1.0';

export async function buildApp(options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 200 * 1024 * 1024,
    // Uploads of 10,000-Service nodes take a while to parse and store.
    requestTimeout: 0,
    ajv: { customOptions: { removeAdditional: false, allErrors: false } },
  });
  for (const schema of sharedSchemas) app.addSchema(schema);
  await app.register(errorHandler);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'svcpath',
        version: API_VERSION,
        description: "Trace Kubernetes Service traffic through kube-proxy's netfilter rules, exactly as the kernel would.",
      },
      tags: [
        { name: 'trace', description: 'Packet traces' },
        { name: 'snapshots', description: 'Versioned, immutable snapshots of node rule dumps and manifests' },
        { name: 'audit', description: 'Where the rules and the manifests disagree' },
        { name: 'diff', description: 'What changed between two snapshots' },
        { name: 'health', description: 'Readiness' },
      ],
    },
    // Only the tagged REST routes are documented (not /graphql, /graphiql or their assets).
    hideUntagged: true,
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  await app.register(gzipBodies);
  const bodyLimit = options.bodyLimit ?? 200 * 1024 * 1024;
  await app.register(multipart, { limits: { fileSize: bodyLimit, fieldSize: bodyLimit, parts: 10_000 } });
  const traceService = options.traceService ?? createTraceService();
  await app.register(traceRoutes, { traceService });
  await app.register(healthRoutes, { ping: options.ping });
  if (options.snapshotService) {
    await app.register(snapshotRoutes, { snapshotService: options.snapshotService });
    await app.register(graphqlPlugin, { snapshotService: options.snapshotService, limits: options.limits });
  }
  return app;
}
