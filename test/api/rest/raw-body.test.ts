/** Bodies read whole as bytes: large ones straight into shared memory, limits and lengths held to. */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { test } from 'node:test';
import { AppError } from '../../../src/app-error.ts';
import { Gathered, readRawBody } from '../../../src/api/rest/raw-body.ts';
import { SHARED_FROM_BYTES } from '../../../src/services/parse-pool.ts';

/** `bytes` in chunks of 64 KiB, as a socket hands them over. */
function chunked(bytes: Buffer): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 65536) chunks.push(bytes.subarray(i, i + 65536));
  return Readable.from(chunks, { objectMode: false });
}

const big = Buffer.alloc(SHARED_FROM_BYTES + 12345);
for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;

test('a large body of known length, and one whose length is found at its end, land in shared memory byte for byte', async () => {
  for (const expected of [big.length, undefined]) {
    const body = await readRawBody(chunked(big), { ...(expected !== undefined ? { expected } : {}), limit: 8 << 20, limitName: 'LIMIT' });
    assert.ok(body.buffer instanceof SharedArrayBuffer, `expected ${expected}`);
    assert.ok(body.equals(big));
  }
  const small = Buffer.from('*nat\nCOMMIT\n');
  const body = await readRawBody(chunked(small), { expected: small.length, limit: 8 << 20, limitName: 'LIMIT' });
  assert.ok(!(body.buffer instanceof SharedArrayBuffer));
  assert.ok(body.equals(small));
});

test('past the limit is 413, whether the length says so first or the body runs over', async () => {
  const refused = async (expected: number | undefined) => {
    const e = await readRawBody(chunked(big), { ...(expected !== undefined ? { expected } : {}), limit: SHARED_FROM_BYTES, limitName: 'SVCPATH_NODE_LIMIT_MB' }).then(() => null, (x: unknown) => x);
    assert.ok(e instanceof AppError, String(e));
    assert.equal(e.code, 'PAYLOAD_TOO_LARGE');
    assert.match(e.message, /SVCPATH_NODE_LIMIT_MB: 1 MiB/);
  };
  await refused(big.length);
  await refused(undefined);
});

test('a body that ends short of its Content-Length, or runs past it, is refused', async () => {
  for (const expected of [big.length + 1, big.length - 1]) {
    const e = await readRawBody(chunked(big), { expected, limit: 8 << 20, limitName: 'LIMIT' }).then(() => null, (x: unknown) => x);
    assert.ok(e instanceof AppError && e.code === 'VALIDATION', String(e));
  }
});

test('a body of unknown length is joined into shared memory over several turns, and keeps every byte', async () => {
  const bytes = Buffer.alloc(5 * SHARED_FROM_BYTES + 777);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 131 + 17) & 0xff;
  const body = new Gathered();
  for (let i = 0; i < bytes.length; i += 100_003) body.push(bytes.subarray(i, i + 100_003));
  let turns = 0;
  const counting = setInterval(() => { turns++; }, 0);
  const out = await body.bytes();
  clearInterval(counting);
  assert.ok(turns > 0, 'other work ran while the body was joined');
  assert.ok(out.buffer instanceof SharedArrayBuffer);
  assert.equal(out.length, bytes.length);
  assert.ok(out.equals(bytes));
});

test('a body whose stream fails (corrupt gzip) is the request\'s fault: 400, not 500', async () => {
  const corrupt = Readable.from([Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02, 0x03])]).pipe(createGunzip());
  const e = await readRawBody(corrupt, { limit: 1 << 20, limitName: 'LIMIT' }).then(() => null, (x: unknown) => x);
  assert.ok(e instanceof AppError, String(e));
  assert.equal(e.code, 'VALIDATION');
  assert.match(e.message, /gzip body is corrupt/);
});
