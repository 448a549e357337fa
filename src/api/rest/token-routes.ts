/** `/v1/tokens`: API tokens, made and revoked by an admin (the routes' access is in access.ts). */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { TokenService } from '../../services/token-service.ts';
import { problem } from './schemas.ts';
import { list, nullable, oneOf, ref, stringOneOf } from './schema-kit.ts';

const SCOPES = ['read', 'write', 'admin'] as const;

const tokenProperties = {
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  hint: Type.String({ description: "the secret's first characters, to tell tokens apart", example: 'svcp_Ab3x…' }),
  scopes: list(stringOneOf(SCOPES)),
  clusters: list(Type.String(), { description: "cluster name patterns ('*' matches any run of characters)" }),
  createdAt: Type.String({ format: 'date-time' }),
  lastUsedAt: nullable(Type.String({ format: 'date-time', description: 'to the minute' })),
};

const tokenSchema = Type.Object(tokenProperties, { $id: 'Token', description: 'An API token, without its secret' });

const createdTokenSchema = Type.Object({
  ...tokenProperties,
  secret: Type.String({ description: 'send as Authorization: Bearer <secret>' }),
}, { $id: 'CreatedToken', description: 'A new token with its secret, which is shown only here: only its sha256 is stored' });

export const tokenSchemas = [tokenSchema, createdTokenSchema] as const;

export async function tokenRoutes(plain: FastifyInstance, opts: { tokenService: TokenService }): Promise<void> {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();
  const tokens = opts.tokenService;

  app.post('/v1/tokens', {
    schema: {
      tags: ['tokens'],
      operationId: 'createToken',
      summary: 'Create an API token; the answer holds its secret, shown once',
      body: Type.Object({
        name: Type.String({ description: 'unique; 1 to 100 letters, digits, spaces and ._:@/-' }),
        scopes: list(oneOf(SCOPES), { minItems: 1 }),
        clusters: Type.Optional(list(Type.String(), { minItems: 1, description: "patterns such as 'prod-*'; default every cluster ('*')" })),
      }, { additionalProperties: false }),
      response: { 201: ref(createdTokenSchema), 400: problem, 409: problem },
    },
    handler: async (request, reply) => reply.status(201).send(await tokens.create(request.body)),
  });

  app.get('/v1/tokens', {
    schema: {
      tags: ['tokens'],
      operationId: 'listTokens',
      summary: 'Every API token, without secrets',
      response: { 200: Type.Object({ items: list(ref(tokenSchema)) }) },
    },
    handler: async () => ({ items: await tokens.list() }),
  });

  app.delete('/v1/tokens/:id', {
    schema: {
      tags: ['tokens'],
      operationId: 'revokeToken',
      summary: 'Revoke a token: it is refused from the next request on',
      params: Type.Object({ id: Type.String({ description: "the token's id (or its name)" }) }),
      response: { 204: Type.Null({ description: 'revoked' }), 404: problem },
    },
    handler: async (request, reply) => {
      await tokens.revoke(request.params.id);
      return reply.status(204).send(null);
    },
  });
}
