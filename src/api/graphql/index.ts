/**
 * The GraphQL API: mercurius at /graphql (GraphiQL at /graphiql, served offline by graphiql.ts),
 * schema-first from schema/*.graphql, over the same snapshot service as REST, with the limits of
 * limits.ts checked before an operation is validated.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { GraphQLObjectType } from 'graphql';
import type { GraphQLFieldResolver } from 'graphql';
import mercurius from 'mercurius';
import type { MercuriusContext } from 'mercurius';
import type { SnapshotService } from '../../services/snapshot-types.ts';
import { DEFAULT_LIMITS } from '../../services/limits.ts';
import { errorFormatter } from './errors.ts';
import { graphiqlRoutes } from './graphiql.ts';
import { checkDocument, checkTokens } from './limits.ts';
import type { GraphqlLimits } from './limits.ts';
import { createLoaders, directNodes } from './loaders.ts';
import type { SnapshotParent } from './loaders.ts';
import { createResolvers } from './resolvers.ts';

const SCHEMA_DIR = new URL('./schema/', import.meta.url);

/** Every SDL file, in name order, read once when the module loads. */
export const typeDefs: readonly string[] = readdirSync(SCHEMA_DIR)
  .filter((f) => f.endsWith('.graphql'))
  .sort()
  .map((f) => readFileSync(new URL(f, SCHEMA_DIR), 'utf8'));

export interface GraphqlPluginOptions {
  readonly snapshotService: SnapshotService;
  /** Tokens, aliases, depth and cost allowed in one request (config `limits`); DEFAULT_LIMITS without. */
  readonly limits?: GraphqlLimits;
}

export async function graphqlPlugin(app: FastifyInstance, opts: GraphqlPluginOptions): Promise<void> {
  const service = opts.snapshotService;
  const limits = opts.limits ?? DEFAULT_LIMITS;
  await app.register(mercurius, {
    schema: [...typeDefs],
    resolvers: createResolvers(service),
    loaders: createLoaders(service),
    path: '/graphql',
    // GraphiQL is served by graphiql.ts: mercurius's page loads React and GraphiQL from a CDN.
    graphiql: false,
    errorFormatter,
    // Batches (an array of operations in one body) stay refused, as by default: limits are per operation.
    allowBatchedQueries: false,
    // The parser's own bound, behind the token count below.
    graphql: { parseOptions: { maxTokens: limits.graphqlMaxTokens } },
  });
  await graphiqlRoutes(app);
  // Refuse expensive documents before graphql-js parses (tokens) and validates (the rest) them.
  app.graphql.addHook('preParsing', async (_schema, source) => checkTokens(source, limits.graphqlMaxTokens));
  app.graphql.addHook('preValidation', async (schema, document) => {
    checkDocument(schema, document, limits);
  });

  // mercurius's loader resolvers need the reply of an HTTP request; app.graphql() calls have
  // none, so they get the same batching from a per-context loader instead.
  const snapshot = app.graphql.schema.getType('Snapshot');
  if (!(snapshot instanceof GraphQLObjectType)) throw new Error('schema/*.graphql must define type Snapshot');
  const viaReply = snapshot.getFields().nodes.resolve as GraphQLFieldResolver<SnapshotParent, MercuriusContext>;
  const direct = directNodes(service);
  app.graphql.defineResolvers({
    Snapshot: {
      nodes: (parent: SnapshotParent, args: unknown, context: MercuriusContext, info) =>
        (context as Partial<MercuriusContext>).reply ? viaReply(parent, args, context, info) : direct(context, parent),
    },
  });
}

// Not encapsulated: `app.graphql` must be on the instance that registers the plugin.
fp(graphqlPlugin, { name: 'svcpath-graphql', fastify: '5.x' });
