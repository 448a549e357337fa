/**
 * GraphQL answers what REST answers: every GraphQL type of a trace, an audit and a diff is
 * compared field by field with the TypeBox schema of the same answer in src/api/rest/schemas.ts
 * (the one declaration REST validates and serialises with, and openapi/openapi.json is generated
 * from), nested types and enums included. A field added to the TypeBox schema fails here until
 * the SDL in src/api/graphql/schema has it with a compatible type, and the other way round, unless
 * listed below with the reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildSchema, getNamedType, GraphQLEnumType, GraphQLObjectType, GraphQLScalarType, isListType, isNonNullType } from 'graphql';
import type { GraphQLOutputType } from 'graphql';
import Type from 'typebox';
import { PROTOCOLS } from '../../src/engine/index.ts';
import { typeDefs } from '../../src/api/graphql/index.ts';
import { auditReportSchema, diffPageSchema, sharedSchemas, snapshotTraceSchema, traceOutcomeSchema } from '../../src/api/rest/schemas.ts';

interface JsonSchema {
  readonly $id?: string;
  readonly $ref?: string;
  readonly type?: string;
  readonly enum?: readonly unknown[];
  readonly properties?: Readonly<Record<string, JsonSchema>>;
  readonly items?: JsonSchema;
}

/** A TypeBox schema as JSON Schema: what fastify validates with and OpenAPI shows. */
function json(s: object): JsonSchema {
  return JSON.parse(JSON.stringify(s)) as JsonSchema;
}

const byId = new Map(sharedSchemas.map((s) => json(s)).map((s): [string, JsonSchema] => [s.$id ?? '', s]));
const schema = buildSchema(typeDefs.join('\n'));

/** Differences on purpose: GraphQL type.field, with why. */
const ONLY_IN_GRAPHQL: Readonly<Record<string, string>> = {
  'NodeTrace.warningDetails': 'deprecated alias of warnings, kept for older queries',
};

function resolve(s: JsonSchema): JsonSchema {
  if (!s.$ref) return s;
  const target = byId.get(s.$ref.replace(/#$/, ''));
  assert.ok(target, `no shared schema ${s.$ref}`);
  return target;
}

const SCALARS: Readonly<Record<string, string>> = { String: 'string', ID: 'string', Int: 'integer', Float: 'number', Boolean: 'boolean' };

function compare(gql: GraphQLOutputType, rest: JsonSchema, path: string, problems: string[]): void {
  let t = gql;
  const r = resolve(rest);
  if (isNonNullType(t)) t = t.ofType;
  if (isListType(t)) {
    if (r.type !== 'array' || !r.items) {
      problems.push(`${path}: a list in GraphQL, ${r.type ?? 'untyped'} in the TypeBox schema`);
      return;
    }
    compare(t.ofType, r.items, `${path}[]`, problems);
    return;
  }
  const named = getNamedType(t);
  if (named instanceof GraphQLObjectType) {
    if (!r.properties) {
      problems.push(`${path}: object ${named.name} in GraphQL, no properties in the TypeBox schema`);
      return;
    }
    const fields = named.getFields();
    for (const name of Object.keys(fields)) {
      if (ONLY_IN_GRAPHQL[`${named.name}.${name}`]) continue;
      const sub = r.properties[name];
      if (!sub) problems.push(`${path}.${name}: in GraphQL ${named.name}, not in the TypeBox schema (src/api/rest/schemas.ts)`);
      else compare(fields[name].type, sub, `${path}.${name}`, problems);
    }
    for (const name of Object.keys(r.properties)) {
      if (!fields[name]) problems.push(`${path}.${name}: in the TypeBox schema, not in GraphQL type ${named.name} (src/api/graphql/schema/*.graphql)`);
    }
    return;
  }
  if (named instanceof GraphQLEnumType) {
    const values = named.getValues().map((v) => String(v.value)).sort();
    const allowed = (r.enum ?? []).filter((v) => v !== null).map(String).sort();
    if (JSON.stringify(values) !== JSON.stringify(allowed)) problems.push(`${path}: enum ${named.name} [${values}] in GraphQL, [${allowed}] in the TypeBox schema`);
    return;
  }
  if (named instanceof GraphQLScalarType) {
    // Values such as `chain-added` cannot be GraphQL enum values: such a field stays a String.
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- enum values are strings, numbers or booleans: String prints each as itself
    const nameable = (r.enum ?? []).every((v) => v === null || /^[_A-Za-z][_0-9A-Za-z]*$/.test(String(v)));
    if (r.enum && nameable) problems.push(`${path}: ${named.name} in GraphQL, an enum [${r.enum.join(',')}] in the TypeBox schema (make it a GraphQL enum)`);
    const want = SCALARS[named.name];
    // An untyped value (a number or a name, say: anyOf) is given as a String in GraphQL.
    if (want && r.type !== undefined && r.type !== want) problems.push(`${path}: ${named.name} in GraphQL, ${r.type} in the TypeBox schema`);
  }
}

function drift(typeName: string, typebox: object): string[] {
  const rest = json(typebox);
  const type = schema.getType(typeName);
  assert.ok(type instanceof GraphQLObjectType, `GraphQL has no type ${typeName}`);
  const problems: string[] = [];
  compare(type, rest, typeName, problems);
  return problems;
}

function resultItems(s: object): JsonSchema {
  const items = json(s).properties?.results?.items;
  assert.ok(items);
  return items;
}

test('a trace outcome: GraphQL TraceOutcome has every field of the TypeBox TraceOutcome, with a compatible type', () => {
  assert.deepEqual(drift('TraceOutcome', traceOutcomeSchema), []);
});

test('a trace: GraphQL NodeTrace and the items of SnapshotTrace.results are the same type', () => {
  assert.deepEqual(drift('NodeTrace', resultItems(snapshotTraceSchema)), []);
});

test('a trace as a whole: GraphQL Snapshot.traces (SnapshotTrace) and SnapshotTrace are the same type', () => {
  assert.deepEqual(drift('SnapshotTrace', snapshotTraceSchema), []);
});

test('an audit: GraphQL AuditReport (its Finding) and AuditReport are the same type', () => {
  assert.deepEqual(drift('AuditReport', auditReportSchema), []);
});

test('a diff: GraphQL Diff and DiffPage are the same type', () => {
  assert.deepEqual(drift('Diff', diffPageSchema), []);
});

test('the protocols GraphQL names are the engine\'s list, as REST\'s are', () => {
  const protocol = schema.getType('Protocol');
  assert.ok(protocol instanceof GraphQLEnumType);
  assert.deepEqual(protocol.getValues().map((v) => v.name).sort(), [...PROTOCOLS].sort());
});

test('a field declared only in the TypeBox trace outcome fails the comparison, naming the GraphQL type to extend', () => {
  const grown = Type.Object({ ...traceOutcomeSchema.properties, hops: Type.Optional(Type.Integer()) });
  const problems = drift('TraceOutcome', grown);
  assert.deepEqual(problems, ['TraceOutcome.hops: in the TypeBox schema, not in GraphQL type TraceOutcome (src/api/graphql/schema/*.graphql)']);
});

test('the comparison sees a drift: a field only one side has, a type that differs, an enum on one side only', () => {
  const findings = auditReportSchema.properties.findings.items;
  const changed = Type.Object({
    ...auditReportSchema.properties,
    findings: Type.Array(Type.Object({
      ...findings.properties,
      extra: Type.String(),
      check: Type.Unsafe<string>({ type: 'string', enum: ['a'] }),
      message: Type.Integer(),
    })),
  });
  const problems = drift('AuditReport', changed);
  assert.ok(problems.some((p) => /findings\[\]\.extra: in the TypeBox schema, not in GraphQL type Finding/.test(p)), problems.join('\n'));
  assert.ok(problems.some((p) => /findings\[\]\.check: String in GraphQL, an enum/.test(p)), problems.join('\n'));
  assert.ok(problems.some((p) => /findings\[\]\.message: String in GraphQL, integer in the TypeBox schema/.test(p)), problems.join('\n'));
});
