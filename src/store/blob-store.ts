/**
 * Blobs: node dumps and manifests stored once by content. A blob is the list of its chunks
 * (chunking.ts); a chunk is stored once however many blobs contain it, compressed on its own.
 *
 * Garbage is collected by mark and sweep rather than reference counts: whatever no snapshot and no
 * upload in progress refers to goes. Writers hold a shared advisory lock from the moment they
 * look up existing chunks until the row that refers to their blob is written (one transaction);
 * the sweep holds the same lock exclusively, so it never frees a chunk a writer is about to use.
 */
import { createHash } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import { promisify } from 'node:util';
import { deflateRaw, gunzip, inflateRaw } from 'node:zlib';
import { planChunks } from './chunking.ts';
import type { ChunkPlan } from './chunking.ts';

const deflateRawAsync = promisify(deflateRaw);
const inflateRawAsync = promisify(inflateRaw);
const gunzipAsync = promisify(gunzip);

/** pg_advisory lock key of the blob sweep (writers take it shared). */
const GC_LOCK = 72707370;

const ENCODING_NONE = 0;
const ENCODING_DEFLATE = 1;
const ENCODING_GZIP = 2;

export function sha256(data: string | Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

/** Called first in a transaction that will write blobs or rows referring to them. */
export async function lockForBlobWrites(client: PoolClient): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock_shared($1)', [GC_LOCK]);
}

/** The id of the stored blob with this sha256, or null. */
export async function findBlob(db: Pool | PoolClient, sha: Buffer): Promise<string | null> {
  const { rows } = await db.query<{ id: string }>('SELECT id FROM blob WHERE sha256 = $1', [sha]);
  return rows[0]?.id ?? null;
}

/**
 * Stores `content` as a blob, within the caller's transaction (after lockForBlobWrites), and
 * returns its id. Only chunks not stored yet are compressed and written. `plan` (planChunks) may
 * have been made elsewhere, off the event loop.
 */
export async function putBlob(client: PoolClient, content: Buffer, plan?: ChunkPlan): Promise<{ id: string; created: boolean }> {
  const existing = await findBlob(client, plan?.sha256 ?? sha256(content));
  if (existing) return { id: existing, created: false };
  const { sha256: sha, ends, shas } = plan ?? planChunks(content);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const end of ends) {
    pieces.push(content.subarray(from, end));
    from = end;
  }
  const ids = await chunkIds(client, shas);
  const missing: number[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < shas.length; i++) {
    const key = shas[i].toString('hex');
    if (!ids.has(key) && !seen.has(key)) {
      seen.add(key);
      missing.push(i);
    }
  }
  // Compression runs on libuv's threads, a batch at a time.
  for (let k = 0; k < missing.length; k += 256) {
    const batch = missing.slice(k, k + 256);
    const data = await Promise.all(batch.map((i) => deflateRawAsync(pieces[i], { level: 6 })));
    const { rows } = await client.query<{ id: string; sha256: Buffer }>(
      `INSERT INTO chunk (sha256, bytes, encoding, data)
       SELECT * FROM unnest($1::bytea[], $2::int[], $3::smallint[], $4::bytea[])
       ON CONFLICT (sha256) DO NOTHING RETURNING id, sha256`,
      [batch.map((i) => shas[i]), batch.map((i) => pieces[i].length), batch.map(() => ENCODING_DEFLATE), data],
    );
    for (const r of rows) ids.set(r.sha256.toString('hex'), r.id);
  }
  // A chunk another upload inserted at the same moment was skipped above: look it up.
  const late = shas.filter((s) => !ids.has(s.toString('hex')));
  if (late.length > 0) for (const [k, v] of await chunkIds(client, late)) ids.set(k, v);
  const recipe = shas.map((s) => ids.get(s.toString('hex'))!);
  const { rows } = await client.query<{ id: string }>(
    `INSERT INTO blob (sha256, bytes, chunks) VALUES ($1, $2, $3::bigint[])
     ON CONFLICT (sha256) DO NOTHING RETURNING id`,
    [sha, content.length, recipe],
  );
  if (rows.length > 0) return { id: rows[0].id, created: true };
  return { id: (await findBlob(client, sha))!, created: false };
}

async function chunkIds(client: PoolClient, shas: readonly Buffer[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let k = 0; k < shas.length; k += 4096) {
    const { rows } = await client.query<{ id: string; sha256: Buffer }>(
      'SELECT id, sha256 FROM chunk WHERE sha256 = ANY($1::bytea[])', [shas.slice(k, k + 4096)],
    );
    for (const r of rows) out.set(r.sha256.toString('hex'), r.id);
  }
  return out;
}

/**
 * Chunks already inflated, by id. A chunk's id names its content for good (ids are never reused),
 * so a cache needs no invalidation; the caller bounds it.
 */
export interface ChunkCache {
  get(id: string): Buffer | undefined;
  set(id: string, data: Buffer): void;
}

function inflateChunk(blob: string, encoding: number, data: Buffer): Promise<Buffer> {
  if (encoding === ENCODING_DEFLATE) return inflateRawAsync(data);
  if (encoding === ENCODING_GZIP) return gunzipAsync(data);
  if (encoding === ENCODING_NONE) return Promise.resolve(data);
  throw new Error(`blob ${blob}: a chunk has unknown encoding ${encoding}`);
}

/**
 * The blob's bytes, exactly as stored. With `cache`, only the chunks it lacks are fetched and
 * inflated: the nodes of a cluster share almost all their chunks, so reading every node's dump in
 * turn (an audit, a diff) transfers and inflates little more than one dump.
 */
export async function readBlob(db: Pick<Pool, 'query'> | PoolClient, id: string, cache?: ChunkCache): Promise<Buffer> {
  if (cache) return readBlobCached(db, id, cache);
  const { rows } = await db.query<{ encoding: number; data: Buffer }>(
    `SELECT c.encoding, c.data FROM blob b CROSS JOIN LATERAL unnest(b.chunks) WITH ORDINALITY AS u(id, n)
     JOIN chunk c ON c.id = u.id WHERE b.id = $1 ORDER BY u.n`,
    [id],
  );
  return Buffer.concat(await Promise.all(rows.map((r) => inflateChunk(id, r.encoding, r.data))));
}

async function readBlobCached(db: Pick<Pool, 'query'> | PoolClient, id: string, cache: ChunkCache): Promise<Buffer> {
  const { rows: [blob] } = await db.query<{ chunks: string[] }>('SELECT chunks::text[] AS chunks FROM blob WHERE id = $1', [id]);
  if (!blob) return Buffer.alloc(0);
  const parts = new Map<string, Buffer>();
  const missing: string[] = [];
  for (const chunk of new Set(blob.chunks)) {
    const kept = cache.get(chunk);
    if (kept) parts.set(chunk, kept);
    else missing.push(chunk);
  }
  for (let k = 0; k < missing.length; k += 4096) {
    const { rows } = await db.query<{ id: string; encoding: number; data: Buffer }>(
      'SELECT id::text AS id, encoding, data FROM chunk WHERE id = ANY($1::bigint[])', [missing.slice(k, k + 4096)],
    );
    await Promise.all(rows.map(async (r) => {
      const data = await inflateChunk(id, r.encoding, r.data);
      parts.set(r.id, data);
      cache.set(r.id, data);
    }));
  }
  return Buffer.concat(blob.chunks.map((chunk) => {
    const data = parts.get(chunk);
    // Only a blob deleted while it was read loses chunks; its snapshot is gone too.
    if (!data) throw new Error(`blob ${id}: chunk ${chunk} is gone`);
    return data;
  }));
}


/**
 * Deletes expired uploads, then every blob nothing refers to, then every chunk no blob lists.
 * Returns what went.
 */
export async function sweep(pool: Pool): Promise<{ uploads: number; blobs: number; chunks: number }> {
  const result = await inTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [GC_LOCK]);
    const uploads = await client.query('DELETE FROM upload WHERE expires_at < now()');
    await client.query("SET LOCAL work_mem = '64MB'");
    await client.query('CREATE TEMP TABLE swept_chunk (id BIGINT) ON COMMIT DROP');
    const blobs = await client.query<{ n: number }>(
      `WITH gone AS (
         DELETE FROM blob b WHERE NOT EXISTS (SELECT 1 FROM snapshot_node n WHERE n.blob_id = b.id)
           AND NOT EXISTS (SELECT 1 FROM snapshot_node n WHERE n.routes_blob_id = b.id)
           AND NOT EXISTS (SELECT 1 FROM snapshot_node n WHERE n.rules6_blob_id = b.id)
           AND NOT EXISTS (SELECT 1 FROM snapshot s WHERE s.manifests_blob_id = b.id)
           AND NOT EXISTS (SELECT 1 FROM upload_node u WHERE u.blob_id = b.id)
           AND NOT EXISTS (SELECT 1 FROM upload_node u WHERE u.routes_blob_id = b.id)
           AND NOT EXISTS (SELECT 1 FROM upload_node u WHERE u.rules6_blob_id = b.id)
           AND NOT EXISTS (SELECT 1 FROM upload u WHERE u.manifests_blob_id = b.id)
         RETURNING b.chunks),
       kept AS (INSERT INTO swept_chunk SELECT DISTINCT unnest(chunks) FROM gone)
       SELECT count(*)::int AS n FROM gone`,
    );
    const blobCount = blobs.rows[0].n;
    // Only chunks of the blobs just deleted can have become garbage; the others' blobs remain.
    const chunks = blobCount > 0
      ? await client.query(
        `DELETE FROM chunk c USING (SELECT id FROM swept_chunk EXCEPT SELECT unnest(chunks) FROM blob) d
         WHERE c.id = d.id`,
      )
      : { rowCount: 0 };
    return { uploads: uploads.rowCount ?? 0, blobs: blobCount, chunks: chunks.rowCount ?? 0 };
  });
  // VACUUM gives the space back (it also truncates empty pages at the end of a table, which is
  // where an abandoned upload's rows are): storage returns to what it was.
  if (result.uploads + result.blobs > 0) await pool.query('VACUUM chunk, blob, blob_parse, upload, upload_node');
  return result;
}

/** Runs `work` in a transaction on a client of its own (rolled back if it throws). */
export async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    client.release();
  }
}
