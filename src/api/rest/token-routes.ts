/** `/v1/tokens`: API tokens, made and revoked by an admin (the routes' access is in access.ts). */
import type { FastifyInstance } from 'fastify';
import type { TokenRequest, TokenService } from '../../services/token-service.ts';

const problem = { $ref: 'Problem#' };

const tokenProperties = {
  id: { type: 'string', format: 'uuid' },
  name: { type: 'string' },
  hint: { type: 'string', description: "the secret's first characters, to tell tokens apart", example: 'svcp_Ab3x…' },
  scopes: { type: 'array', items: { type: 'string', enum: ['read', 'write', 'admin'] } },
  clusters: { type: 'array', items: { type: 'string' }, description: "cluster name patterns ('*' matches any run of characters)" },
  createdAt: { type: 'string', format: 'date-time' },
  lastUsedAt: { type: 'string', format: 'date-time', nullable: true, description: 'to the minute' },
} as const;

export const tokenSchemas = [
  {
    $id: 'Token',
    type: 'object',
    description: 'An API token, without its secret',
    properties: tokenProperties,
    required: ['id', 'name', 'hint', 'scopes', 'clusters', 'createdAt', 'lastUsedAt'],
  },
  {
    $id: 'CreatedToken',
    type: 'object',
    description: 'A new token with its secret, which is shown only here: only its sha256 is stored',
    properties: { ...tokenProperties, secret: { type: 'string', description: 'send as Authorization: Bearer <secret>' } },
    required: ['id', 'name', 'hint', 'scopes', 'clusters', 'createdAt', 'lastUsedAt', 'secret'],
  },
] as const;

export async function tokenRoutes(app: FastifyInstance, opts: { tokenService: TokenService }): Promise<void> {
  const tokens = opts.tokenService;

  app.post('/v1/tokens', {
    schema: {
      tags: ['tokens'],
      operationId: 'createToken',
      summary: 'Create an API token; the answer holds its secret, shown once',
      body: {
        type: 'object',
        properties: {
          name: { type: 'string', description: 'unique; 1 to 100 letters, digits, spaces and ._:@/-' },
          scopes: { type: 'array', minItems: 1, items: { type: 'string', enum: ['read', 'write', 'admin'] } },
          clusters: { type: 'array', minItems: 1, items: { type: 'string' }, description: "patterns such as 'prod-*'; default every cluster ('*')" },
        },
        required: ['name', 'scopes'],
        additionalProperties: false,
      },
      response: { 201: { $ref: 'CreatedToken#' }, 400: problem, 409: problem },
    },
    handler: async (request, reply) => reply.status(201).send(await tokens.create(request.body as TokenRequest)),
  });

  app.get('/v1/tokens', {
    schema: {
      tags: ['tokens'],
      operationId: 'listTokens',
      summary: 'Every API token, without secrets',
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: { $ref: 'Token#' } } }, required: ['items'] } },
    },
    handler: async () => ({ items: await tokens.list() }),
  });

  app.delete('/v1/tokens/:id', {
    schema: {
      tags: ['tokens'],
      operationId: 'revokeToken',
      summary: 'Revoke a token: it is refused from the next request on',
      params: { type: 'object', properties: { id: { type: 'string', description: "the token's id (or its name)" } }, required: ['id'] },
      response: { 204: { type: 'null', description: 'revoked' }, 404: problem },
    },
    handler: async (request, reply) => {
      await tokens.revoke((request.params as { id: string }).id);
      return reply.status(204).send();
    },
  });
}
