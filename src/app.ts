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
import { createTraceService } from './services/trace-service.ts';
import type { TraceService } from './services/trace-service.ts';

export interface AppOptions {
  readonly logger?: FastifyServerOptions['logger'];
  /** Largest request body in bytes (a 10,000-Service node's dump is about 40 MB). */
  readonly bodyLimit?: number;
  readonly traceService?: TraceService;
}

export const API_VERSION = '0.1.0';

export async function buildApp(options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 200 * 1024 * 1024,
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
      tags: [{ name: 'trace', description: 'Packet traces' }],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  const traceService = options.traceService ?? createTraceService();
  await app.register(traceRoutes, { traceService });
  return app;
}
