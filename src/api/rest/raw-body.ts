/**
 * A request body read whole as bytes, for the routes whose body is a dump or manifests as they are.
 *
 * Read the usual way (fastify's `parseAs: 'buffer'`), a body of 8 MB is joined from its chunks in
 * one copy when it ends, then copied again into shared memory for the parse workers (parse-pool's
 * sharedView): on a two-core machine two such copies held the event loop for 50 to 140 ms per
 * PUT. Here a large body goes straight into shared memory as its chunks arrive (each copy is a
 * chunk's, between other requests), and the workers read it where it lies.
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
  const { limit } = options;
  const mib = limit / (1024 * 1024);
  const tooLarge = () => new AppError('PAYLOAD_TOO_LARGE', `the body is larger than one dump or the manifests may be (${options.limitName}: ${Number.isInteger(mib) ? mib : mib.toFixed(2)} MiB)`);
  const expected = options.expected;
  // A body refused part way is left unread, not destroyed: the socket stays whole for the answer,
  // and Node discards the rest once it is sent.
  if (expected !== undefined && expected > limit) throw tooLarge();
  // Room for the whole body from the start, when its length is known and large.
  const into = expected !== undefined && expected >= SHARED_BODY_BYTES ? Buffer.from(new SharedArrayBuffer(expected)) : null;
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    if (length + chunk.length > limit) throw tooLarge();
    if (into) {
      if (length + chunk.length > into.length) throw new AppError('VALIDATION', `the body is longer than its Content-Length (${into.length} bytes)`);
      chunk.copy(into, length);
    } else chunks.push(chunk);
    length += chunk.length;
  }
  if (into) {
    if (length !== into.length) throw new AppError('VALIDATION', `the body ended after ${length} of the ${into.length} bytes its Content-Length says`);
    return into;
  }
  return joined(chunks, length);
}

/**
 * Chunks of a body whose length was not known before its end (inflated, or a multipart part)
 * joined: a large one in shared memory, so that it is copied once, not again for the workers.
 */
export function joined(chunks: readonly Buffer[], length: number): Buffer {
  if (length < SHARED_BODY_BYTES) return Buffer.concat(chunks, length);
  const into = Buffer.from(new SharedArrayBuffer(length));
  let at = 0;
  for (const c of chunks) {
    c.copy(into, at);
    at += c.length;
  }
  return into;
}
