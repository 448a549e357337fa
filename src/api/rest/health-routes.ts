/**
 * `GET /health`: 200 while the database answers, 503 (problem+json, Retry-After) while it does
 * not, saying which part is down: `database` (`ok`/`down`) and, with the embedded PostgreSQL,
 * `embedded` (`running`, `restarting`, `failed`, `stopped`).
 */
import type { FastifyInstance, LogLevel } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { RETRY_AFTER_SECONDS } from '../../app-error.ts';
import { healthSchema } from './schemas.ts';
import { ref } from './schema-kit.ts';

/** What a failed ping may say in its error's `details` (the store's DatabaseDownError). */
export interface HealthReport {
  readonly database: string;
  readonly embedded?: string;
}

const parts = {
  database: Type.Optional(Type.String({ description: '`ok`, or `down` while the database does not answer' })),
  embedded: Type.Optional(Type.String({
    description: 'With the embedded PostgreSQL only: `running`, `restarting` (it died and is being restarted), `failed` or `stopped`',
  })),
};

export async function healthRoutes(
  plain: FastifyInstance,
  opts: { ping?: () => Promise<void> },
): Promise<void> {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();
  // Probes come every few seconds: their request lines show only when the server logs at debug.
  const quiet: LogLevel = app.log.level === 'debug' || app.log.level === 'trace' ? app.log.level as LogLevel : 'warn';
  app.get('/health', {
    logLevel: quiet,
    schema: {
      tags: ['health'],
      operationId: 'health',
      summary: 'Liveness and database readiness',
      response: {
        200: ref(healthSchema),
        503: Type.Object({
          type: Type.Optional(Type.String()),
          title: Type.Optional(Type.String()),
          status: Type.Optional(Type.Integer()),
          code: Type.Optional(Type.String()),
          detail: Type.Optional(Type.String()),
          ...parts,
        }, { description: 'RFC 9457 problem details, with which part is down' }),
      },
    },
    handler: async (_request, reply) => {
      if (!opts.ping) return { status: 'ok', database: 'none (stateless)' };
      try {
        await opts.ping();
        return { status: 'ok', database: 'ok' };
      } catch (e) {
        const details = (e as { details?: Partial<HealthReport> }).details ?? {};
        return reply
          .status(503)
          .header('retry-after', String(RETRY_AFTER_SECONDS))
          .type('application/problem+json')
          .send({
            type: 'about:blank', title: 'Service Unavailable', status: 503, code: 'UNAVAILABLE',
            detail: `the database does not answer: ${(e as Error).message}`,
            database: 'down',
            ...(details.embedded ? { embedded: details.embedded } : {}),
          });
      }
    },
  });
}
