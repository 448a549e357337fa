/**
 * A diff as the server keeps it between pages: every listed frontend, rule and manifest change as
 * its JSON text, written on the analysis worker as UTF-8 bytes, one after another.
 *
 * A diff of 20 nodes after a deploy lists a couple of hundred frontends, each with every path of
 * its traffic before and after: 7.8 MB of JSON (100 nodes: 43 MB). Handed to the event loop as
 * objects, it cost the event loop a structured clone (45 ms), weighing for the cache (50 ms), the
 * schema's serializer for a page (about 150 ms) and the collection of some hundred thousand young
 * objects that all survive: `/health` waited half a second as each diff ended. Handed over as
 * strings, the 100-node diff still put 43 MB on the event loop's heap. As bytes it crosses as one
 * copy outside the heap, is weighed by its length, and a page is a few slices of it.
 */
import type { DiffResult } from '../engine/index.ts';
import { estimateBytes } from './byte-cache.ts';

type Lists = 'frontends' | 'rules' | 'manifests';

/** A list's items as JSON texts in UTF-8, a comma between each two; item i ends at `ends[i]`. */
export interface JsonList {
  readonly bytes: Uint8Array;
  readonly ends: Int32Array;
}

export interface PreparedDiff {
  /** Everything but the lists, as objects (the summary, unpaired nodes, backends, known differences). */
  readonly head: Omit<DiffResult, Lists>;
  readonly frontends: JsonList;
  readonly rules: JsonList;
  readonly manifests: JsonList;
  /** What keeping it costs, roughly: estimateBytes of the head, and the lists' bytes. */
  readonly bytes: number;
}

const ENCODER = new TextEncoder();

export function jsonList(items: readonly unknown[]): JsonList {
  const texts = items.map((x) => JSON.stringify(x));
  const ends = new Int32Array(texts.length);
  let at = 0;
  for (const [i, t] of texts.entries()) {
    at += (i > 0 ? 1 : 0) + Buffer.byteLength(t);
    ends[i] = at;
  }
  return { bytes: ENCODER.encode(texts.join(',')), ends };
}

export function prepareDiff(result: DiffResult): PreparedDiff {
  const { frontends, rules, manifests, ...head } = result;
  const lists = { frontends: jsonList(frontends), rules: jsonList(rules), manifests: jsonList(manifests) };
  let bytes = estimateBytes(head);
  for (const list of Object.values(lists)) bytes += list.bytes.byteLength + list.ends.byteLength;
  return { head, ...lists, bytes };
}

/** A stored diff's answer prepared, or what was missing for it. */
export function prepared(result: DiffResult | { missing: 'node' }): PreparedDiff | { missing: 'node' } {
  return 'missing' in result ? result : prepareDiff(result);
}

/** Items [from, to) of a list, as the bytes between a JSON array's brackets. */
export function listSlice(list: JsonList, from: number, to: number): Buffer {
  const n = list.ends.length;
  const end = Math.min(to, n);
  if (from >= end) return Buffer.alloc(0);
  const start = from === 0 ? 0 : list.ends[from - 1] + 1;
  return Buffer.from(list.bytes.buffer, list.bytes.byteOffset + start, list.ends[end - 1] - start);
}

/** Items [from, to) of a list, as objects. */
export function parsedSlice<T>(list: JsonList, from: number, to: number): T[] {
  return JSON.parse(`[${listSlice(list, from, to).toString('utf8')}]`) as T[];
}
