/**
 * A request body read whole as bytes, for the routes whose body is a dump or manifests as they are
 * (and the parts of a multipart upload).
 *
 * Read the usual way (fastify's `parseAs: 'buffer'`), a body is joined from its chunks in one copy
 * when it ends, then copied again into shared memory for the parse workers (parse-pool's
 * sharedView). On a two-core machine those copies held the event loop for 50 to 140 ms per dump
 * of 8 MB, and a join 135 to 245 ms per dump of 41 MB (the copy, and the faults of fresh pages).
 * Here a large body goes into shared memory once, chunk by chunk as it arrives when its length is
 * known, else a few megabytes a turn at its end, so that other requests are served in between;
 * the workers read it where it lies.
 */
import type { Readable } from 'node:stream';
import { AppError } from '../../app-error.ts';
import { SHARED_FROM_BYTES } from '../../services/parse-pool.ts';

/**
 * Reads `stream` to its end. `expected`: the Content-Length, when the body arrives as sent (not
 * inflated); `limit`: the most bytes accepted (413 past it, said with `limitName`).
 */
export async function readRawBody(stream: Readable, options: { expected?: number; limit: number; limitName: string }): Promise<Buffer> {
  const { limit, expected } = options;
  const mib = limit / (1024 * 1024);
  const tooLarge = () => new AppError('PAYLOAD_TOO_LARGE', `the body is larger than one dump or the manifests may be (${options.limitName}: ${Number.isInteger(mib) ? mib : mib.toFixed(2)} MiB)`);
  // A body refused part way is left unread, not destroyed: the socket stays whole for the answer,
  // and Node discards the rest once it is sent.
  if (expected !== undefined && expected > limit) throw tooLarge();
  const body = new Gathered(expected);
  try {
    for await (const chunk of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      if (body.length + chunk.length > limit) throw tooLarge();
      body.push(chunk);
    }
  } catch (e) {
    // A stream that fails (corrupt gzip, a client gone) is the request's fault, as fastify has it.
    if (e instanceof AppError) throw e;
    const gzip = typeof (e as { code?: unknown }).code === 'string' && (e as { code: string }).code.startsWith('Z_');
    throw new AppError('VALIDATION', `${gzip ? 'the gzip body is corrupt' : 'the body could not be read'}: ${(e as Error).message}`);
  }
  return body.bytes();
}

/**
 * A body gathered chunk by chunk. A large one of known length (`expected`) goes into shared memory
 * as it arrives. Any other is kept as its chunks; at its end, a large one is copied into shared
 * memory a few megabytes at a time, letting other requests in between: growable shared memory
 * would spare the copy, but every later read of it (the worker's decoding, hashing) ran two to
 * three times slower.
 */
export class Gathered {
  private chunks: Buffer[] = [];
  private readonly shared: Buffer | null = null;
  length = 0;

  constructor(private readonly expected?: number) {
    if (expected !== undefined && expected >= SHARED_FROM_BYTES) this.shared = Buffer.from(new SharedArrayBuffer(expected));
  }

  push(chunk: Buffer): void {
    const end = this.length + chunk.length;
    if (this.expected !== undefined && end > this.expected) throw new AppError('VALIDATION', `the body is longer than its Content-Length (${this.expected} bytes)`);
    if (this.shared !== null) chunk.copy(this.shared, this.length);
    else this.chunks.push(chunk);
    this.length = end;
  }

  /** The body: its bytes in shared memory when large. */
  async bytes(): Promise<Buffer> {
    if (this.expected !== undefined && this.length !== this.expected) {
      throw new AppError('VALIDATION', `the body ended after ${this.length} of the ${this.expected} bytes its Content-Length says`);
    }
    if (this.shared !== null) return this.shared;
    if (this.length < SHARED_FROM_BYTES) return Buffer.concat(this.chunks, this.length);
    const into = Buffer.from(new SharedArrayBuffer(this.length));
    let at = 0;
    let sinceTurn = 0;
    for (const c of this.chunks) {
      c.copy(into, at);
      at += c.length;
      sinceTurn += c.length;
      if (sinceTurn >= BYTES_PER_TURN) {
        sinceTurn = 0;
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    this.chunks = [];
    return into;
  }
}

/** What a join copies before letting other work in (some 10 ms on a slow machine). */
const BYTES_PER_TURN = 2 * 1024 * 1024;
