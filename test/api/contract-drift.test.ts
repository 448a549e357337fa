/**
 * REST and GraphQL describe the same answers (issue 15, item 1): for a trace and an audit, every
 * GraphQL type is compared field by field with the OpenAPI schema of the same answer, nested types
 * and enums included. A field added to one and not the other fails here, unless listed below with
 * the reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { buildSchema, getNamedType, GraphQLEnumType, GraphQLObjectType, GraphQLScalarType, isListType, isNonNullType } from 'graphql';
import type { GraphQLOutputType } from 'graphql';
import { typeDefs } from '../../src/api/graphql/index.ts';

interface JsonSchema {
  readonly $ref?: string;
  readonly type?: string;
  readonly enum?: readonly unknown[];
  readonly properties?: Record<string, JsonSchema>;
  readonly items?: JsonSchema;
}

const openapi = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8')) as {
  components: { schemas: Record<string, JsonSchema> };
};
const schema = buildSchema(typeDefs.join('\n'));

/** Differences on purpose: GraphQL type.field, or OpenAPI path, with why. */
const ONLY_IN_GRAPHQL: Readonly<Record<string, string>> = {
  'NodeTrace.warningDetails': 'deprecated alias of warnings, kept for older queries',
};

function resolve(s: JsonSchema): JsonSchema {
  if (!s.$ref) return s;
  const name = s.$ref.replace('#/components/schemas/', '');
  const target = openapi.components.schemas[name];
  assert.ok(target, `OpenAPI has no schema ${name}`);
  return target;
}

const SCALARS: Readonly<Record<string, string>> = { String: 'string', ID: 'string', Int: 'integer', Float: 'number', Boolean: 'boolean' };

function compare(gql: GraphQLOutputType, rest: JsonSchema, path: string, problems: string[]): void {
  let t = gql;
  const r = resolve(rest);
  if (isNonNullType(t)) t = t.ofType;
  if (isListType(t)) {
    if (r.type !== 'array' || !r.items) {
      problems.push(`${path}: a list in GraphQL, ${r.type ?? 'untyped'} in OpenAPI`);
      return;
    }
    compare(t.ofType, r.items, `${path}[]`, problems);
    return;
  }
  const named = getNamedType(t);
  if (named instanceof GraphQLObjectType) {
    if (!r.properties) {
      problems.push(`${path}: object ${named.name} in GraphQL, no properties in OpenAPI`);
      return;
    }
    const fields = named.getFields();
    for (const name of Object.keys(fields)) {
      if (ONLY_IN_GRAPHQL[`${named.name}.${name}`]) continue;
      const sub = r.properties[name];
      if (!sub) problems.push(`${path}.${name}: in GraphQL ${named.name}, not in OpenAPI`);
      else compare(fields[name].type, sub, `${path}.${name}`, problems);
    }
    for (const name of Object.keys(r.properties)) {
      if (!fields[name]) problems.push(`${path}.${name}: in OpenAPI, not in GraphQL ${named.name}`);
    }
    return;
  }
  if (named instanceof GraphQLEnumType) {
    const values = named.getValues().map((v) => v.value as string).sort();
    const allowed = (r.enum ?? []).filter((v) => v !== null).map(String).sort();
    if (JSON.stringify(values) !== JSON.stringify(allowed)) problems.push(`${path}: enum ${named.name} [${values}] in GraphQL, [${allowed}] in OpenAPI`);
    return;
  }
  if (named instanceof GraphQLScalarType) {
    // Values such as `chain-added` cannot be GraphQL enum values: such a field stays a String.
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- enum values are strings, numbers or booleans: String prints each as itself
    const nameable = (r.enum ?? []).every((v) => v === null || /^[_A-Za-z][_0-9A-Za-z]*$/.test(String(v)));
    if (r.enum && nameable) problems.push(`${path}: ${named.name} in GraphQL, an enum [${r.enum.join(',')}] in OpenAPI (make it a GraphQL enum)`);
    const want = SCALARS[named.name];
    // An untyped OpenAPI value (a number or a name, say) is given as a String in GraphQL.
    if (want && r.type !== undefined && r.type !== want) problems.push(`${path}: ${named.name} in GraphQL, ${r.type} in OpenAPI`);
  }
}

function drift(typeName: string, rest: JsonSchema): string[] {
  const problems: string[] = [];
  compare(schema.getType(typeName) as GraphQLObjectType, rest, typeName, problems);
  return problems;
}

test('a trace: GraphQL NodeTrace and the items of REST SnapshotTrace.results are the same type', () => {
  assert.deepEqual(drift('NodeTrace', openapi.components.schemas.SnapshotTrace.properties!.results.items!), []);
});

test('a trace as a whole: GraphQL Snapshot.traces (SnapshotTrace) and REST SnapshotTrace are the same type', () => {
  assert.deepEqual(drift('SnapshotTrace', openapi.components.schemas.SnapshotTrace), []);
});

test('an audit: GraphQL AuditReport and REST AuditReport are the same type', () => {
  assert.deepEqual(drift('AuditReport', openapi.components.schemas.AuditReport), []);
});

test('the comparison sees a drift: a field only one side has, and an enum on one side only', () => {
  const rest = structuredClone(openapi.components.schemas.AuditReport) as { properties: Record<string, JsonSchema> };
  (rest.properties.findings as { items: { properties: Record<string, unknown> } }).items.properties.extra = { type: 'string' };
  (rest.properties.findings as { items: { properties: Record<string, unknown> } }).items.properties.check = { type: 'string', enum: ['a'] };
  const problems = drift('AuditReport', rest);
  assert.ok(problems.some((p) => /findings\[\]\.extra: in OpenAPI, not in GraphQL Finding/.test(p)), problems.join('\n'));
  assert.ok(problems.some((p) => /findings\[\]\.check: String in GraphQL, an enum/.test(p)), problems.join('\n'));
});

test('a diff: GraphQL Diff and REST DiffPage are the same type', () => {
  assert.deepEqual(drift('Diff', openapi.components.schemas.DiffPage), []);
});
