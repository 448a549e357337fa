/**
 * The OpenAPI document as the routes declare it. `npm run openapi` writes it to
 * openapi/openapi.json; a test fails when the committed file drifts from the code.
 */
import { buildApp } from '../../app.ts';
import type { SnapshotService } from '../../services/snapshot-types.ts';

/** Routes need a service to be registered; documenting them never calls it. */
function documentationOnly<T extends object>(): T {
  return new Proxy({} as T, {
    get: (_target, name) => () => {
      throw new Error(`documentation-only service: ${String(name)} called`);
    },
  });
}

export async function openApiDocument(): Promise<Record<string, unknown>> {
  const app = await buildApp({
    snapshotService: documentationOnly<SnapshotService>(), ping: async () => {},
    access: { authenticator: documentationOnly(), owners: documentationOnly(), tokenService: documentationOnly() },
  });
  await app.ready();
  const doc = app.swagger() as unknown as Record<string, unknown>;
  await app.close();
  return doc;
}

export function renderOpenApi(doc: Record<string, unknown>): string {
  return JSON.stringify(doc, null, 2) + '\n';
}
