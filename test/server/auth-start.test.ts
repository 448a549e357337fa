/** The server as a process: where it may listen without a token, and what its start-up line says. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createTestDatabase } from '../store/helpers.ts';
import type { TestDatabase } from '../store/helpers.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let testDb: TestDatabase;
before(async () => {
  testDb = await createTestDatabase();
});
after(async () => {
  await testDb?.drop();
});

/** Starts the server; resolves with its output once it is ready (then stops it) or has exited. */
function run(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const base = { ...process.env };
  for (const k of ['HOST', 'PORT', 'SVCPATH_ADMIN_TOKEN', 'SVCPATH_AUTH', 'SVCPATH_RETENTION', 'DATABASE_URL']) delete base[k];
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: ROOT, env: { ...base, DATABASE_URL: testDb.url, PORT: '0', SVCPATH_PARSE_THREADS: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no answer in 60 s:\n${output}`));
    }, 60_000);
    const seen = (b: Buffer) => {
      output += b.toString();
      if (output.includes('svcpath ready')) child.kill('SIGTERM');
    };
    child.stdout.on('data', seen);
    child.stderr.on('data', seen);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

test('HOST=0.0.0.0 with no token configured: refuses to start and says how to set one or opt out', async () => {
  const r = await run({ HOST: '0.0.0.0' });
  assert.equal(r.code, 1, r.output);
  assert.match(r.output, /refusing to listen on 0\.0\.0\.0:0 with no token configured/);
  assert.match(r.output, /SVCPATH_ADMIN_TOKEN=/);
  assert.match(r.output, /SVCPATH_AUTH=off/);
  assert.doesNotMatch(r.output, /svcpath ready/);
});

test('the default HOST (127.0.0.1) with no token: anonymous admins, and the start-up line says so', async () => {
  const r = await run({});
  assert.match(r.output, /svcpath ready .* on http:\/\/127\.0\.0\.1:\d+ .*auth: no token configured: requests are anonymous admins/, r.output);
});

test('HOST=0.0.0.0 starts with SVCPATH_ADMIN_TOKEN, or with SVCPATH_AUTH=off (and says so)', async () => {
  const withToken = await run({ HOST: '0.0.0.0', SVCPATH_ADMIN_TOKEN: 'a-long-admin-secret', SVCPATH_RETENTION: 'keep=10' });
  assert.match(withToken.output, /svcpath ready .* on http:\/\/0\.0\.0\.0:\d+ .*auth: tokens required \(SVCPATH_ADMIN_TOKEN\); retention: the newest 10 per cluster/, withToken.output);
  assert.doesNotMatch(withToken.output, /a-long-admin-secret/);
  const off = await run({ HOST: '0.0.0.0', SVCPATH_AUTH: 'off' });
  assert.match(off.output, /auth: authentication OFF \(SVCPATH_AUTH=off\)/, off.output);
});
