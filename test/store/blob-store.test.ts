/**
 * Blobs read back through a chunk cache: the same bytes as without it, and only the chunks the
 * cache lacks are fetched.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { putBlob, readBlob } from '../../src/store/blob-store.ts';
import type { ChunkCache } from '../../src/store/blob-store.ts';
import { Rng } from '../support/kube-gen.ts';
import { openedTestDatabase } from './helpers.ts';

const opened = openedTestDatabase();

function dump(seed: number, lines: number): Buffer {
  const rng = new Rng(seed);
  const out: string[] = [];
  for (let i = 0; i < lines; i++) out.push(`-A KUBE-SVC-${rng.int(1e9).toString(36)} -m statistic --mode random --probability 0.${rng.int(1e9)} -j KUBE-SEP-${i}`);
  return Buffer.from(`${out.join('\n')}\n`);
}

/** A cache that counts what it was given. */
function countingCache(): ChunkCache & { sets: number; bytes: number } {
  const kept = new Map<string, Buffer>();
  const c = {
    sets: 0,
    bytes: 0,
    get: (id: string) => kept.get(id),
    set: (id: string, data: Buffer) => {
      c.sets++;
      c.bytes += data.length;
      kept.set(id, data);
    },
  };
  return c;
}

async function put(content: Buffer): Promise<string> {
  const client = await opened().db.pool.connect();
  try {
    await client.query('BEGIN');
    const { id } = await putBlob(client, content);
    await client.query('COMMIT');
    return id;
  } finally {
    client.release();
  }
}

test('a blob read through a chunk cache is byte for byte the blob, and a similar blob fetches only its new chunks', async () => {
  const a = dump(1, 20_000);
  // The same dump with a line changed in the middle and one appended: most chunks are shared.
  const text = a.toString('latin1');
  const middle = text.indexOf('\n', text.length >> 1) + 1;
  const b = Buffer.from(`${text.slice(0, middle)}-A KUBE-SERVICES -j KUBE-NEW\n${text.slice(middle)}-A KUBE-SEP-X -j DNAT --to-destination 10.0.0.1:80\n`, 'latin1');
  const { db } = opened();
  const ida = await put(a);
  const idb = await put(b);
  const cache = countingCache();

  const first = await readBlob(db.pool, ida, cache);
  assert.ok(first.equals(a));
  assert.ok(first.equals(await readBlob(db.pool, ida)));
  const afterFirst = cache.sets;
  assert.ok(afterFirst > 10, `${afterFirst} chunks`);
  assert.equal(cache.bytes, a.length);

  const second = await readBlob(db.pool, idb, cache);
  assert.ok(second.equals(b));
  const fresh = cache.sets - afterFirst;
  assert.ok(fresh >= 1 && fresh <= 4, `${fresh} chunks fetched for the second blob`);

  // Read again: everything comes from the cache.
  const before = cache.sets;
  assert.ok((await readBlob(db.pool, idb, cache)).equals(b));
  assert.equal(cache.sets, before);
  assert.equal((await readBlob(db.pool, '999999', cache)).length, 0);
});
