/**
 * buildApp(): the fastify instance with every plugin and route registered. It never listens:
 * tests call `inject()`, and only server.ts binds a port.
 */
import Fastify from 'fastify';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { errorHandler, frameworkErrors } from './api/rest/errors.ts';
import { sharedSchemas } from './api/rest/schemas.ts';
import { traceRoutes } from './api/rest/trace-routes.ts';
import multipart from '@fastify/multipart';
import { createTraceService } from './services/trace-service.ts';
import type { TraceService } from './services/trace-service.ts';
import type { SnapshotService } from './services/snapshot-types.ts';
import { gzipBodies } from './api/rest/gzip.ts';
import { bodyAdmission } from './api/rest/admission.ts';
import { healthRoutes } from './api/rest/health-routes.ts';
import { snapshotRoutes } from './api/rest/snapshot-routes.ts';
import type { UploadLimits } from './api/rest/snapshot-routes.ts';
import { uploadRoutes } from './api/rest/upload-routes.ts';
import { graphqlPlugin } from './api/graphql/index.ts';
import { accessControl } from './api/rest/access.ts';
import type { AccessOptions } from './api/rest/access.ts';
import { tokenRoutes, tokenSchemas } from './api/rest/token-routes.ts';
import { guardGraphql } from './api/graphql/access.ts';
import type { TokenService } from './services/token-service.ts';
import type { Limits } from './services/limits.ts';
import { uiRoutes } from './api/ui/ui-routes.ts';

export interface AppOptions {
  readonly logger?: FastifyServerOptions['logger'];
  /** Largest JSON (or other unstreamed) request body in bytes (a 10,000-Service node's dump is about 40 MB). */
  readonly bodyLimit?: number;
  /** Largest node dump or manifests, and largest multipart upload in all (inflated bytes). */
  readonly uploadLimits?: UploadLimits;
  /** Memory all request bodies being read may cost together (admission.ts); default 1 GiB. */
  readonly inflightBytes?: number;
  /** Idle connection, whole-request (headers and body) timeouts in ms, and the most connections. */
  readonly timeouts?: { readonly idleMs: number; readonly requestMs: number; readonly maxConnections: number };
  readonly traceService?: TraceService;
  /** Without it the app is stateless: /v1/trace and /health only. */
  readonly snapshotService?: SnapshotService;
  /** Answers when the database does (for /health). */
  readonly ping?: () => Promise<void>;
  /** Tokens and who may do what (api/rest/access.ts); without it every request may do everything. */
  readonly access?: AccessOptions & { readonly tokenService: TokenService };
  /** GraphQL tokens, aliases, depth and cost (config `limits`); the defaults without. */
  readonly limits?: Limits;
}

export const API_VERSION = '0.1.0';

export async function buildApp(options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 200 * 1024 * 1024,
    // A connection trickling a request is closed once idle, and a request must arrive whole in
    // time (uploads of hundreds of MB included: the limit is generous, the idle one is not).
    connectionTimeout: options.timeouts?.idleMs ?? 30_000,
    requestTimeout: options.timeouts?.requestMs ?? 600_000,
    keepAliveTimeout: 5_000,
    // Node checks request and header timeouts on this interval (30 s by default).
    http: { connectionsCheckingInterval: 1_000 },
    ajv: { customOptions: { removeAdditional: false, allErrors: false } },
    frameworkErrors,
  });
  app.server.maxConnections = options.timeouts?.maxConnections ?? 1000;
  // The idle timeout guards the reading of a request; while the server works on its answer (an
  // audit can take a minute) the connection is quiet by design, so the timeout is paused from the
  // handler on (a multipart upload, read inside its handler, pauses it itself once read) and set
  // again for the next request on the connection.
  const idleMs = options.timeouts?.idleMs ?? 30_000;
  app.addHook('preHandler', async (request) => {
    if (!request.isMultipart()) request.raw.socket?.setTimeout?.(0);
  });
  app.addHook('onResponse', async (request) => {
    request.raw.socket?.setTimeout?.(idleMs);
  });
  app.server.headersTimeout = Math.min(30_000, options.timeouts?.requestMs ?? 600_000);
  for (const schema of sharedSchemas) app.addSchema(schema);
  await app.register(errorHandler);
  if (options.access) await app.register(accessControl, options.access);
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
        { name: 'tokens', description: 'API tokens (admin)' },
      ],
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'An API token (`svcp_…`) or SVCPATH_ADMIN_TOKEN. Scopes: read, write, admin; see each operation.' },
        },
      },
      security: [{ bearer: [] }],
    },
    // Only the tagged REST routes are documented (not /graphql, /graphiql or their assets).
    hideUntagged: true,
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a route schema's $id is a string (fastify-swagger types the schema loosely)
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  await app.register(gzipBodies);
  const uploadLimits = options.uploadLimits ?? { partBytes: 256 * 1024 * 1024, totalBytes: 4096 * 1024 * 1024 };
  await app.register(bodyAdmission, { budgetBytes: options.inflightBytes ?? 1024 * 1024 * 1024, partBytes: uploadLimits.partBytes });
  // Parts are read as streams and measured after gzip is inflated (snapshot-routes.ts).
  await app.register(multipart, { limits: { fileSize: uploadLimits.totalBytes, fieldSize: uploadLimits.partBytes, parts: 10_000 } });
  const traceService = options.traceService ?? createTraceService();
  await app.register(traceRoutes, { traceService });
  await app.register(healthRoutes, { ping: options.ping });
  await app.register(uiRoutes);
  if (options.snapshotService) {
    await app.register(snapshotRoutes, { snapshotService: options.snapshotService, limits: uploadLimits });
    await app.register(uploadRoutes, { snapshotService: options.snapshotService, partBytes: uploadLimits.partBytes });
    await app.register(graphqlPlugin, { snapshotService: options.snapshotService, limits: options.limits });
    if (options.access) guardGraphql(app, options.access.owners);
  }
  if (options.access) {
    for (const schema of tokenSchemas) app.addSchema(schema);
    await app.register(tokenRoutes, { tokenService: options.access.tokenService });
  }
  return app;
}
