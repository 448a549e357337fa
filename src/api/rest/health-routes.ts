/** `GET /health`: 200 once the database answers, 503 while it does not. */
import type { FastifyInstance } from 'fastify';

export async function healthRoutes(app: FastifyInstance, opts: { ping?: () => Promise<void> }): Promise<void> {
  app.get('/health', {
    schema: {
      tags: ['health'],
      operationId: 'health',
      summary: 'Liveness and database readiness',
      response: { 200: { $ref: 'Health#' }, 503: { $ref: 'Problem#' } },
    },
    handler: async (_request, reply) => {
      if (!opts.ping) return { status: 'ok', database: 'none (stateless)' };
      try {
        await opts.ping();
        return { status: 'ok', database: 'ok' };
      } catch (e) {
        return reply.status(503).type('application/problem+json').send({
          type: 'about:blank', title: 'Service Unavailable', status: 503, code: 'UNAVAILABLE',
          detail: `the database does not answer: ${(e as Error).message}`,
        });
      }
    },
  });
}
