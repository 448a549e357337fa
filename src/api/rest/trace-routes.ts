/** `POST /v1/trace`: the engine's answer for a dump sent with the request; no database. */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { TraceService } from '../../services/trace-service.ts';
import { problem, traceRequestSchema, traceResultSchema } from './schemas.ts';
import { ref } from './schema-kit.ts';

export async function traceRoutes(app: FastifyInstance, opts: { traceService: TraceService }): Promise<void> {
  app.withTypeProvider<TypeBoxTypeProvider>().post('/v1/trace', {
    schema: {
      tags: ['trace'],
      operationId: 'traceDump',
      summary: 'Trace a packet through a rule dump sent with the request',
      description:
        'Parses the dump (iptables-save or iptables -S, fragments completed as kube-proxy writes them, the answer saying what was assumed; or an nftables ruleset in any of nft\'s three forms) and returns every outcome of the first packet of a new connection with its exact probability.',
      body: ref(traceRequestSchema),
      response: { 200: ref(traceResultSchema), 400: problem, 413: problem, 415: problem },
    },
    handler: async (request) => opts.traceService.trace(request.body),
  });
}
