/**
 * Content-defined chunking: where a blob is cut depends only on the bytes around the cut, so two
 * node dumps that share most of their text share most of their chunks, whatever was inserted or
 * removed between them. A cut falls where a rolling "gear" hash of the last 32 bytes has its top
 * CUT_BITS bits zero (FastCDC's scheme), with a minimum and a maximum chunk size.
 *
 * Changing these numbers never breaks stored data (chunks are addressed by their content and a
 * blob lists its chunks); it only makes new chunks line up less with old ones.
 */

import { createHash } from 'node:crypto';

export const MIN_CHUNK = 2 * 1024;
export const MAX_CHUNK = 64 * 1024;
/** 13 bits: a cut every 8 KiB past the minimum, on average. */
const CUT_BITS = 13;
const CUT_SHIFT = 32 - CUT_BITS;

/** 256 fixed pseudo-random words (splitmix32 from a constant seed): the gear table. */
const GEAR = (() => {
  const table = new Uint32Array(256);
  let state = 0x5eed_c0de;
  for (let i = 0; i < 256; i++) {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    table[i] = (z ^ (z >>> 16)) >>> 0;
  }
  return table;
})();

/** The end offsets of the chunks of `data`, in order (the last is data.length). */
export function chunkEnds(data: Uint8Array): number[] {
  const ends: number[] = [];
  const n = data.length;
  let start = 0;
  while (start < n) {
    const limit = Math.min(n, start + MAX_CHUNK);
    let cut = limit;
    if (limit - start > MIN_CHUNK) {
      // The hash only remembers 32 bytes: start it 32 bytes before the first allowed cut.
      let h = 0;
      for (let i = start + MIN_CHUNK - 32; i < limit; i++) {
        h = ((h << 1) + GEAR[data[i]]) >>> 0;
        if (h >>> CUT_SHIFT === 0 && i + 1 - start >= MIN_CHUNK) {
          cut = i + 1;
          break;
        }
      }
    }
    ends.push(cut);
    start = cut;
  }
  return ends;
}

/** A blob cut into chunks, with the sha256 of the whole and of each chunk: what storing it needs. */
export interface ChunkPlan {
  readonly sha256: Buffer;
  /** End offsets of the chunks (chunkEnds). */
  readonly ends: readonly number[];
  readonly shas: readonly Buffer[];
}

const digest = (data: Uint8Array) => createHash('sha256').update(data).digest();

/** Cuts and hashes `data` (hashing 40 MB takes a tenth of a second: parse workers do it for uploads). */
export function planChunks(data: Uint8Array): ChunkPlan {
  const ends = chunkEnds(data);
  const shas: Buffer[] = [];
  let from = 0;
  for (const end of ends) {
    shas.push(digest(data.subarray(from, end)));
    from = end;
  }
  return { sha256: digest(data), ends, shas };
}
