/**
 * Authorization of GraphQL's root fields: each query and mutation field's needs are one line of
 * FIELD_ACCESS (a field missing from it needs `admin`), checked before its resolver runs.
 * Nested fields (a snapshot's nodes, trace, audit) are reached only through a root field that was
 * checked. The principal is the HTTP request's (api/rest/access.ts authenticated it); a query run
 * in-process with `app.graphql()` has no request and is trusted.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { GraphQLObjectType, defaultFieldResolver } from 'graphql';
import type { GraphQLFieldResolver } from 'graphql';
import { AppError } from '../../app-error.ts';
import { allows, authorize } from '../../services/access.ts';
import type { AccessRule, ClusterOwners } from '../../services/access.ts';

export const FIELD_ACCESS: Readonly<Record<string, AccessRule>> = Object.freeze({
  'Query.clusters': { scope: 'read', filter: 'clusters' },
  'Query.snapshots': { scope: 'read', cluster: 'cluster' },
  'Query.cluster': { scope: 'read', cluster: 'name' },
  'Query.snapshot': { scope: 'read', snapshots: ['id'], cluster: 'cluster' },
  'Query.diff': { scope: 'read', snapshots: ['from', 'to'] },
  'Mutation.createSnapshot': { scope: 'write', cluster: 'cluster' },
  'Mutation.deleteSnapshot': { scope: 'admin' },
});

const ADMIN: AccessRule = { scope: 'admin' };

/** Wraps every Query and Mutation field's resolver in its access check. Call after the schema is built. */
export function guardGraphql(app: FastifyInstance, owners: ClusterOwners): void {
  const schema = app.graphql.schema;
  for (const type of [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()]) {
    if (!(type instanceof GraphQLObjectType)) continue;
    for (const field of Object.values(type.getFields())) {
      const rule = FIELD_ACCESS[`${type.name}.${field.name}`] ?? ADMIN;
      const resolve: GraphQLFieldResolver<unknown, unknown> = field.resolve ?? defaultFieldResolver;
      field.resolve = async (parent, args: Record<string, unknown>, context, info) => {
        const reply = (context as { reply?: FastifyReply }).reply;
        if (!reply) return resolve(parent, args, context, info);
        const principal = reply.request.principal;
        if (!principal) throw new AppError('UNAUTHENTICATED', 'a token is required');
        await authorize(principal, rule, args, owners);
        const result = await resolve(parent, args, context, info);
        if (rule.filter === 'clusters' && Array.isArray(result)) {
          return result.filter((c: { name: string }) => allows(principal, 'read', c.name));
        }
        return result;
      };
    }
  }
}
