/**
 * A request body read whole as bytes, for the routes whose body is a dump or manifests as they are
 * (and the parts of a multipart upload).
 *
 * Read the usual way (fastify's `parseAs: 'buffer'`), a body is joined from its chunks in one copy
 * when it ends, then copied again into shared memory for the parse workers (parse-pool's
 * sharedView). On a two-core machine those copies held the event loop for 50 to 140 ms per dump
 * of 8 MB, and 135 to 245 ms per dump of 41 MB (the copy, and the faults of fresh pages). Here a
 * large body goes into shared memory chunk by chunk as it arrives, so the same work is spread
 * between other requests, and the workers read it where it lies.
 */
import type { Readable } from 'node:stream';
import { AppError } from '../../app-error.ts';

/** From this size on, the body is kept in shared memory (as the parse pool posts it from this size). */
export const SHARED_BODY_BYTES = 1024 * 1024;

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
  const body = new Gathered(limit, expected);
  for await (const chunk of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    if (body.length + chunk.length > limit) throw tooLarge();
    body.push(chunk);
  }
  return body.bytes();
}

/**
 * A body gathered chunk by chunk: a small one as a list of chunks joined at its end, a large one
 * in shared memory, made whole at once when its length is known (`expected`), else growing as it
 * fills (room for `limit` bytes is reserved; only the bytes written take memory).
 */
export class Gathered {
  private chunks: Buffer[] = [];
  private shared: SharedArrayBuffer | null = null;
  length = 0;

  constructor(private readonly limit: number, private readonly expected?: number) {
    if (expected !== undefined && expected >= SHARED_BODY_BYTES) this.shared = new SharedArrayBuffer(expected);
  }

  push(chunk: Buffer): void {
    const end = this.length + chunk.length;
    if (this.expected !== undefined && end > this.expected) throw new AppError('VALIDATION', `the body is longer than its Content-Length (${this.expected} bytes)`);
    if (this.shared === null && end >= SHARED_BODY_BYTES) {
      this.shared = new SharedArrayBuffer(0, { maxByteLength: Math.max(this.limit, end) });
      grow(this.shared, end);
      new Uint8Array(this.shared).set(Buffer.concat(this.chunks, this.length));
      this.chunks = [];
    }
    if (this.shared !== null) {
      grow(this.shared, end);
      new Uint8Array(this.shared, this.length, chunk.length).set(chunk);
    } else this.chunks.push(chunk);
    this.length = end;
  }

  /** The body: its bytes in shared memory when large. */
  bytes(): Buffer {
    if (this.expected !== undefined && this.length !== this.expected) {
      throw new AppError('VALIDATION', `the body ended after ${this.length} of the ${this.expected} bytes its Content-Length says`);
    }
    return this.shared === null ? Buffer.concat(this.chunks, this.length) : Buffer.from(this.shared, 0, this.length);
  }
}

/** Grows shared memory that may grow to hold `end` bytes, doubling as it goes. */
function grow(shared: SharedArrayBuffer, end: number): void {
  if (shared.growable && end > shared.byteLength) shared.grow(Math.min(shared.maxByteLength, Math.max(end, shared.byteLength * 2)));
}
