/**
 * The import boundaries of eslint.config.js fire: each snippet is linted in memory, as if it were
 * a file at the path given, with the repository's own config (type information aside: these rules
 * read import strings only, and the files do not exist).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';

const root = fileURLToPath(new URL('../../', import.meta.url));
const eslint = new ESLint({
  cwd: root,
  overrideConfig: [tseslint.configs.disableTypeChecked],
});

/** The import-boundary messages for `code` placed at `path` (relative to the repository). */
async function boundaryErrors(path: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${root}${path}` });
  const fatal = result.messages.filter((m) => m.fatal);
  assert.deepEqual(fatal, [], `${path} does not parse`);
  return result.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

test('the engine imports no Node built-in, prefixed or bare', async () => {
  const errors = await boundaryErrors('src/engine/trace/probe.ts', "import { readFileSync } from 'node:fs';\nexport const read = readFileSync;\n");
  assert.equal(errors.length, 1);
  assert.match(errors[0], /'node:fs' import is restricted/);
  assert.match(errors[0], /the engine does no I\/O/);
  for (const spec of ['fs', 'fs/promises', 'node:crypto', 'crypto', 'worker_threads', 'path']) {
    assert.equal((await boundaryErrors('src/engine/probe.ts', `import * as m from '${spec}';\nexport { m };\n`)).length, 1, spec);
  }
});

test('the engine imports no framework, database or thread pool, not even its types', async () => {
  for (const spec of ['fastify', '@fastify/multipart', 'fastify-plugin', '@prisma/client', '@prisma/adapter-pg', 'mercurius', 'graphql', 'pg', 'piscina']) {
    const errors = await boundaryErrors('src/engine/kube/probe.ts', `import type * as m from '${spec}';\nexport type M = typeof m;\n`);
    assert.equal(errors.length, 1, spec);
    assert.match(errors[0], /the engine is pure/, spec);
  }
});

test('the engine imports nothing from the layers above it, nor re-exports it', async () => {
  const above = [
    '../../store/snapshot-store.ts',
    '../../services/limits.ts',
    '../../api/rest/errors.ts',
    '../../cli/main.ts',
    '../../generated/prisma/client.ts',
  ];
  for (const spec of above) {
    const errors = await boundaryErrors('src/engine/netfilter/probe.ts', `export * from '${spec}';\n`);
    assert.equal(errors.length, 1, spec);
    assert.match(errors[0], /the engine imports nothing from the layers above it/, spec);
  }
  for (const spec of ['../app-error.ts', '../config.ts', '../app.ts']) {
    assert.equal((await boundaryErrors('src/engine/probe.ts', `import '${spec}';\n`)).length, 1, spec);
  }
});

test('the engine imports its own modules freely', async () => {
  const code = "import { EngineError } from '../errors.ts';\nimport type { Rule } from '../netfilter/ast.ts';\nimport { x } from './compile.ts';\nexport { EngineError, x };\nexport type { Rule };\n";
  assert.deepEqual(await boundaryErrors('src/engine/trace/probe.ts', code), []);
});

test('the store imports nothing from the API or the services', async () => {
  const api = await boundaryErrors('src/store/probe.ts', "import { problem } from '../api/rest/errors.ts';\nexport { problem };\n");
  assert.equal(api.length, 1);
  assert.match(api[0], /'\.\.\/api\/rest\/errors\.ts' import is restricted/);
  assert.match(api[0], /the store serves the services/);
  assert.equal((await boundaryErrors('src/store/probe.ts', "import type { Limits } from '../services/limits.ts';\nexport type { Limits };\n")).length, 1);
  // What it may use: the engine's types, its own modules, the database driver.
  assert.deepEqual(await boundaryErrors('src/store/probe.ts', "import type { Family } from '../engine/index.ts';\nimport pg from 'pg';\nimport { planChunks } from './chunking.ts';\nexport { pg, planChunks };\nexport type { Family };\n"), []);
});

test('the services import nothing from the API', async () => {
  const errors = await boundaryErrors('src/services/probe.ts', "import { uploadRoutes } from '../api/rest/upload-routes.ts';\nexport { uploadRoutes };\n");
  assert.equal(errors.length, 1);
  assert.match(errors[0], /services are called by the API/);
  assert.deepEqual(await boundaryErrors('src/services/probe.ts', "import { readBlob } from '../store/blob-store.ts';\nimport { createHash } from 'node:crypto';\nexport { readBlob, createHash };\n"), []);
});
