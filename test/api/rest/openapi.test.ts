import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import SwaggerParser from '@apidevtools/swagger-parser';
import { openApiDocument, renderOpenApi } from '../../../src/api/rest/openapi.ts';
import { sharedSchemas } from '../../../src/api/rest/schemas.ts';

const committedPath = new URL('../../../openapi/openapi.json', import.meta.url);

test('the committed openapi/openapi.json matches the routes (run `npm run openapi` after changing them)', async () => {
  const generated = renderOpenApi(await openApiDocument());
  assert.equal(readFileSync(committedPath, 'utf8'), generated);
});

test('the OpenAPI document is valid and documents the contract routes', async () => {
  const doc = JSON.parse(readFileSync(committedPath, 'utf8'));
  await SwaggerParser.validate(structuredClone(doc));
  const ops = Object.entries(doc.paths as Record<string, Record<string, { operationId?: string }>>).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => `${method.toUpperCase()} ${path} ${op.operationId}`));
  for (const expected of [
    'POST /v1/trace traceDump',
    'POST /v1/clusters/{cluster}/snapshots createSnapshot',
    'GET /v1/clusters listClusters',
    'GET /v1/clusters/{cluster}/snapshots listSnapshots',
    'GET /v1/snapshots/{id} getSnapshot',
    'GET /v1/snapshots/{id}/nodes/{node}/rules getNodeRules',
    'DELETE /v1/snapshots/{id} deleteSnapshot',
    'GET /v1/snapshots/{id}/trace traceSnapshot',
    'GET /health health',
  ]) {
    assert.ok(ops.includes(expected), `missing ${expected}`);
  }
  assert.ok(doc.components.schemas.TraceOutcome.properties.masquerade);
});

/** A schema as OpenAPI writes it: its `$id` dropped, `Name#` references pointed into components. */
function asComponent(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(asComponent);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value)
    .filter(([k]) => k !== '$id')
    .map(([k, v]) => [k, k === '$ref' && typeof v === 'string' ? `#/components/schemas/${v.replace(/#$/, '')}` : asComponent(v)]));
}

test('every shared schema of the document is its TypeBox declaration, as declared (OpenAPI is generated, not written)', () => {
  const doc = JSON.parse(readFileSync(committedPath, 'utf8'));
  for (const schema of sharedSchemas) {
    const declared = JSON.parse(JSON.stringify(schema)) as { $id: string };
    assert.deepEqual(doc.components.schemas[declared.$id], asComponent(declared), declared.$id);
  }
});
