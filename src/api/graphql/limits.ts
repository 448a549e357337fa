/**
 * Limits on a GraphQL request, checked before graphql-js validates or executes it, so that an
 * operation built to be expensive is refused in time proportional to its text:
 *
 * - tokens (SVCPATH_GRAPHQL_MAX_TOKENS): counted by graphql-js's own lexer before parsing;
 * - aliases (SVCPATH_GRAPHQL_MAX_ALIASES) in the whole document;
 * - depth (SVCPATH_GRAPHQL_MAX_DEPTH): nested fields, through fragments;
 * - cost (SVCPATH_GRAPHQL_MAX_COST): an upper bound of the work and the size of the answer.
 *
 * A refusal is a GraphQL error with `extensions.code` QUERY_TOO_COMPLEX, sent with HTTP 400.
 *
 * The cost model. Every object in the answer costs 1 and scalars cost nothing. A list multiplies
 * what each of its items costs by its size: the `first` argument of the field, or of the field
 * above it (a connection's `edges`), else LIST_SIZE. Fields whose resolvers do the work add
 * FIELD_COST once per call: `diff` compares two whole snapshots, `audit` runs every check on every
 * node, `trace` without `node` traces on every node. A `first` or `node` given as a variable is
 * counted as the largest page or as absent: the bound must hold whatever the variables are.
 * Introspection is costed the same way, except `ofType`, whose chain ends after at most three
 * wrappers (`[T!]!`) whatever the query asks: it adds neither cost nor depth.
 *
 * Why not a library: graphql-query-complexity walks a fragment again at every spread (no
 * memoisation), so ten nested fragments each spreading the next several times make it do
 * exponential work; and graphql-armor's alias and depth rules run inside graphql-js validation,
 * next to OverlappingFieldsCanBeMergedRule, whose work grows with the square of the fields. Here
 * each fragment is walked once, before validation.
 */
import type {
  DocumentNode, FieldNode, FragmentDefinitionNode, GraphQLField, GraphQLNamedType, GraphQLOutputType, GraphQLSchema, SelectionSetNode,
} from 'graphql';
import {
  getNamedType, GraphQLError, isInterfaceType, isListType, isNonNullType, isObjectType, Kind, Lexer, SchemaMetaFieldDef, Source, TokenKind,
  TypeMetaFieldDef,
} from 'graphql';
import type { Limits } from '../../services/limits.ts';

export type GraphqlLimits = Pick<Limits, 'graphqlMaxDepth' | 'graphqlMaxAliases' | 'graphqlMaxCost' | 'graphqlMaxTokens'>;

export const QUERY_TOO_COMPLEX = 'QUERY_TOO_COMPLEX';

/** The size assumed for a list without `first`. */
export const LIST_SIZE = 10;
/** The largest `first` the API accepts: what a `first` given as a variable counts as. */
export const MAX_PAGE = 100;

/** What one call of a field costs on top of the objects it returns. */
export const FIELD_COST: Readonly<Record<string, number | ((field: FieldNode) => number)>> = Object.freeze({
  'Query.diff': 2000,
  'Snapshot.audit': 1000,
  'Snapshot.trace': (field: FieldNode) => (hasLiteralArgument(field, 'node') ? 50 : 500),
  'Snapshot.traces': (field: FieldNode) => (hasLiteralArgument(field, 'node') ? 50 : 500),
  'Mutation.createSnapshot': 1000,
  'Mutation.deleteSnapshot': 10,
});

/** The refusal: mercurius sends a thrown error's `errors` with its `statusCode`. */
export class QueryTooComplexError extends Error {
  readonly statusCode = 400;
  readonly errors: readonly GraphQLError[];

  constructor(message: string, details: Record<string, unknown>) {
    super(message);
    this.name = 'QueryTooComplexError';
    this.errors = [new GraphQLError(message, { extensions: { code: QUERY_TOO_COMPLEX, ...details } })];
  }
}

/** Throws QueryTooComplexError when `source` has more than `max` tokens; stops lexing there. */
export function checkTokens(source: string, max: number): void {
  const lexer = new Lexer(new Source(source));
  let count = 0;
  try {
    while (lexer.advance().kind !== TokenKind.EOF) {
      if (++count > max) {
        throw new QueryTooComplexError(`the document has more than ${max} tokens (SVCPATH_GRAPHQL_MAX_TOKENS)`, { limit: max });
      }
    }
  } catch (e) {
    if (e instanceof QueryTooComplexError) throw e;
    // A lexical error: the parser reports it, with its location.
  }
}

export interface Measure {
  readonly aliases: number;
  readonly depth: number;
  readonly cost: number;
}

function hasLiteralArgument(field: FieldNode, name: string): boolean {
  const arg = field.arguments?.find((a) => a.name.value === name);
  return arg !== undefined && arg.value.kind !== Kind.VARIABLE && arg.value.kind !== Kind.NULL;
}

/** The page size a field asks for: its `first` literal, the largest page for a variable, its default. */
function pageSize(field: FieldNode, def: GraphQLField<unknown, unknown> | undefined): number | undefined {
  const arg = field.arguments?.find((a) => a.name.value === 'first');
  if (arg?.value.kind === Kind.INT) return Math.max(0, Number(arg.value.value));
  if (arg?.value.kind === Kind.VARIABLE) return MAX_PAGE;
  const fallback = def?.args.find((a) => a.name === 'first')?.defaultValue;
  return typeof fallback === 'number' ? fallback : undefined;
}

function isList(type: GraphQLOutputType): boolean {
  const inner = isNonNullType(type) ? type.ofType : type;
  return isListType(inner);
}

interface Tally {
  depth: number;
  cost: number;
}

/**
 * Aliases, depth and cost of `document` against `schema`, each operation's depth and cost being
 * the largest of them. Unknown fields and types count as objects of no type (validation refuses
 * them later); a fragment spread inside itself counts nothing the second time.
 */
export function measure(schema: GraphQLSchema, document: DocumentNode): Measure {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  // Each fragment is walked once per page size inherited into it.
  const memo = new Map<string, Tally | null>();
  let aliases = 0;
  const counted = new Set<SelectionSetNode>();

  const walk = (set: SelectionSetNode, parent: GraphQLNamedType | undefined, inherited: number | undefined): Tally => {
    const countAliases = !counted.has(set);
    counted.add(set);
    const tally: Tally = { depth: 0, cost: 0 };
    for (const selection of set.selections) {
      let inner: Tally;
      if (selection.kind === Kind.FIELD) {
        if (countAliases && selection.alias) aliases++;
        inner = field(selection, parent, inherited);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const type = selection.typeCondition ? schema.getType(selection.typeCondition.name.value) ?? undefined : parent;
        inner = walk(selection.selectionSet, type, inherited);
      } else {
        inner = spread(selection.name.value, inherited);
      }
      tally.depth = Math.max(tally.depth, inner.depth);
      tally.cost += inner.cost;
    }
    return tally;
  };

  const spread = (name: string, inherited: number | undefined): Tally => {
    const key = `${name}\u0000${inherited ?? ''}`;
    if (memo.has(key)) return memo.get(key) ?? { depth: 0, cost: 0 };
    const fragment = fragments.get(name);
    if (!fragment) return { depth: 0, cost: 0 };
    memo.set(key, null); // a cycle meets null: validation refuses it
    const result = walk(fragment.selectionSet, schema.getType(fragment.typeCondition.name.value) ?? undefined, inherited);
    memo.set(key, result);
    return result;
  };

  const field = (node: FieldNode, parent: GraphQLNamedType | undefined, inherited: number | undefined): Tally => {
    const name = node.name.value;
    let def: GraphQLField<unknown, unknown> | undefined;
    if (name === '__schema') def = SchemaMetaFieldDef;
    else if (name === '__type') def = TypeMetaFieldDef;
    else if ((isObjectType(parent) || isInterfaceType(parent)) && Object.hasOwn(parent.getFields(), name)) def = parent.getFields()[name];
    const ofType = name === 'ofType' && parent?.name === '__Type';
    if (!node.selectionSet) return { depth: 1, cost: 0 };
    const own = pageSize(node, def);
    const child = walk(node.selectionSet, def ? getNamedType(def.type) : undefined, own);
    if (ofType) return child;
    const extra = parent ? FIELD_COST[`${parent.name}.${name}`] : undefined;
    const callCost = typeof extra === 'function' ? extra(node) : extra ?? 0;
    let items = 1;
    if (def && isList(def.type)) {
      // A trace on one node answers for that node only.
      const oneNode = parent?.name === 'Snapshot' && name === 'trace' && hasLiteralArgument(node, 'node');
      items = oneNode ? 1 : own ?? inherited ?? LIST_SIZE;
    }
    return { depth: child.depth + 1, cost: callCost + items * (1 + child.cost) };
  };

  let depth = 0;
  let cost = 0;
  for (const d of document.definitions) {
    if (d.kind !== Kind.OPERATION_DEFINITION) continue;
    // eslint-disable-next-line @typescript-eslint/no-unsafe-enum-comparison -- graphql's OperationTypeNode is a string enum whose values are these words
    const root = d.operation === 'query' ? schema.getQueryType() : d.operation === 'mutation' ? schema.getMutationType() : schema.getSubscriptionType();
    const t = walk(d.selectionSet, root ?? undefined, undefined);
    depth = Math.max(depth, t.depth);
    cost = Math.max(cost, t.cost);
  }
  // Aliases in fragments no operation uses are still text the validator reads.
  for (const f of fragments.values()) if (!counted.has(f.selectionSet)) walk(f.selectionSet, schema.getType(f.typeCondition.name.value) ?? undefined, undefined);
  return { aliases, depth, cost };
}

/** Throws QueryTooComplexError when `document` is over any of `limits`; returns its measure. */
export function checkDocument(schema: GraphQLSchema, document: DocumentNode, limits: GraphqlLimits): Measure {
  const m = measure(schema, document);
  if (m.aliases > limits.graphqlMaxAliases) {
    throw new QueryTooComplexError(`the document has ${m.aliases} aliases, at most ${limits.graphqlMaxAliases} (SVCPATH_GRAPHQL_MAX_ALIASES)`, { aliases: m.aliases, limit: limits.graphqlMaxAliases });
  }
  if (m.depth > limits.graphqlMaxDepth) {
    throw new QueryTooComplexError(`the operation is ${m.depth} fields deep, at most ${limits.graphqlMaxDepth} (SVCPATH_GRAPHQL_MAX_DEPTH)`, { depth: m.depth, limit: limits.graphqlMaxDepth });
  }
  if (m.cost > limits.graphqlMaxCost) {
    throw new QueryTooComplexError(
      `the operation costs ${costText(m.cost)}, at most ${limits.graphqlMaxCost} (SVCPATH_GRAPHQL_MAX_COST): ask for fewer diffs, audits or all-node traces, or smaller pages (first)`,
      { cost: Number.isFinite(m.cost) && m.cost <= Number.MAX_SAFE_INTEGER ? m.cost : null, limit: limits.graphqlMaxCost },
    );
  }
  return m;
}

function costText(cost: number): string {
  return cost <= Number.MAX_SAFE_INTEGER ? String(cost) : 'more than 2^53';
}
