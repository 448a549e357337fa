/** /health probes come every few seconds: their request logs show only at debug level. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { buildApp } from '../../../src/app.ts';

async function logLines(level: string): Promise<{ health: number; other: number }> {
  let out = '';
  const stream = new Writable({
    write(chunk, _encoding, done) {
      out += chunk;
      done();
    },
  });
  const app = await buildApp({ logger: { level, stream } as never });
  await app.inject('/health');
  await app.inject({ method: 'POST', url: '/v1/trace', payload: {} });
  await app.close();
  const lines = out.split('\n');
  return { health: lines.filter((l) => l.includes('"/health"')).length, other: lines.filter((l) => l.includes('"/v1/trace"')).length };
}

test('at info, /health requests are not logged and other requests are', async () => {
  const info = await logLines('info');
  assert.equal(info.health, 0);
  assert.ok(info.other > 0);
});

test('at debug, /health requests are logged too', async () => {
  assert.ok((await logLines('debug')).health > 0);
});
