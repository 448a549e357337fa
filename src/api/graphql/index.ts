/**
 * The GraphQL API: mercurius at /graphql (GraphiQL at /graphiql, served offline by graphiql.ts),
 * schema-first from schema/*.graphql, over the same snapshot service as REST, with the limits of
 * limits.ts checked before an operation is validated.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { getOperationAST, GraphQLError, GraphQLObjectType, Kind, Location, parse } from 'graphql';
import type { DocumentNode, GraphQLFieldResolver } from 'graphql';
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
  const sources = new WeakMap<object, string>();
  app.graphql.addHook('preParsing', async (_schema, source, context) => {
    checkTokens(source, limits.graphqlMaxTokens);
    sources.set(context, source);
    refuseBadGet(source, context);
  });
  app.graphql.addHook('preValidation', async (schema, document, context) => {
    refuseUnparsed(document, sources.get(context));
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

/** A request refused before validation, sent by mercurius as `errors` with HTTP 400. */
class BadRequestError extends Error {
  readonly statusCode = 400;
  readonly errors: readonly GraphQLError[];

  constructor(error: GraphQLError) {
    super(error.message);
    this.errors = [error];
  }
}

/**
 * When a query does not parse, mercurius tries it as JSON and runs what comes out as a document
 * (`"null"`, `{"kind": "List"}`, or a hand-made AST the limits were not written for). Only what
 * graphql-js parsed goes on: the rest gets the parser's own syntax error.
 */
function refuseUnparsed(document: DocumentNode, source: string | undefined): void {
  const parsed = typeof document === 'object' && document !== null && document.kind === Kind.DOCUMENT && document.loc instanceof Location;
  if (parsed) return;
  try {
    parse(source ?? '');
  } catch (e) {
    if (e instanceof GraphQLError) throw new BadRequestError(e);
  }
  throw new BadRequestError(new GraphQLError('Syntax Error: the query is not a GraphQL document'));
}

/**
 * What mercurius does not check in a GET request, and fails on with a TypeError (an INTERNAL
 * error): `variables` that are not a JSON object (`variables=` or `variables=5`, passed on to
 * graphql-js as they are), and an `operationName` no operation has (its check that a GET holds no
 * mutation reads that operation). Checked before parsing, because a document mercurius has cached
 * skips preValidation; a GET query is short (it fits in a URL), so parsing it once more costs little.
 */
function refuseBadGet(source: string, context: MercuriusContext): void {
  const request = (context as Partial<MercuriusContext>).reply?.request;
  if (request?.method !== 'GET') return;
  const query = (request.query ?? {}) as { operationName?: unknown; variables?: unknown };
  if (typeof query.variables === 'string') {
    let variables: unknown;
    try {
      variables = JSON.parse(query.variables);
    } catch {
      variables = undefined; // mercurius answers 400 to JSON that does not parse; '' lands here too
    }
    if (query.variables === '' || (variables !== undefined && variables !== null && typeof variables !== 'object')) {
      throw new BadRequestError(new GraphQLError('variables must be a JSON object'));
    }
  }
  let document: DocumentNode;
  try {
    document = parse(source);
  } catch {
    return; // mercurius reports the syntax error
  }
  // As mercurius passes it on: an empty name is a name, that no operation has.
  const operationName = typeof query.operationName === 'string' ? query.operationName : undefined;
  if (getOperationAST(document, operationName)) return;
  throw new BadRequestError(new GraphQLError(operationName !== undefined
    ? `Unknown operation named "${operationName.slice(0, 100)}".`
    : 'Must provide operation name if query contains multiple operations.'));
}

// Not encapsulated: `app.graphql` must be on the instance that registers the plugin.
fp(graphqlPlugin, { name: 'svcpath-graphql', fastify: '5.x' });
