/**
 * A diff as the server keeps it between pages: every listed frontend, rule and manifest change as
 * its JSON text, written on the analysis worker.
 *
 * A diff of 20 nodes after a deploy lists a couple of hundred frontends, each with every path of
 * its traffic before and after: 7.8 MB of JSON. Handed to the event loop as objects, it cost the
 * event loop a structured clone (45 ms), weighing for the cache (50 ms), the schema's serializer
 * for a page (about 150 ms) and the collection of some hundred thousand young objects that all
 * survive: `/health` waited half a second as each diff ended. As texts it crosses as a few hundred
 * flat strings, is weighed by their lengths, and a page is written by joining them.
 */
import type { DiffResult } from '../engine/index.ts';
import { estimateBytes } from './byte-cache.ts';

type Lists = 'frontends' | 'rules' | 'manifests';

export interface PreparedDiff {
  /** Everything but the lists, as objects (the summary, unpaired nodes, backends, known differences). */
  readonly head: Omit<DiffResult, Lists>;
  /** Each item of each list, as JSON.stringify wrote it. */
  readonly frontends: readonly string[];
  readonly rules: readonly string[];
  readonly manifests: readonly string[];
  /** What keeping it costs, roughly: estimateBytes of the head, and a header and two bytes a character for each text (erring high, as estimateBytes does). */
  readonly bytes: number;
}

export function prepareDiff(result: DiffResult): PreparedDiff {
  const { frontends, rules, manifests, ...head } = result;
  const texts = (list: readonly unknown[]) => list.map((x) => JSON.stringify(x));
  const lists = { frontends: texts(frontends), rules: texts(rules), manifests: texts(manifests) };
  let bytes = estimateBytes(head);
  for (const list of Object.values(lists)) for (const t of list) bytes += TEXT_BYTES + t.length * 2;
  return { head, ...lists, bytes };
}

const TEXT_BYTES = 24;

/** A stored diff's answer prepared, or what was missing for it. */
export function prepared(result: DiffResult | { missing: 'node' }): PreparedDiff | { missing: 'node' } {
  return 'missing' in result ? result : prepareDiff(result);
}

/** Items [from, to) of a list of JSON texts, as the text of a JSON array. */
export function arraySlice(texts: readonly string[], from: number, to: number): string {
  return `[${texts.slice(from, to).join(',')}]`;
}

/** Items [from, to) of a list of JSON texts, as objects. */
export function parsedSlice<T>(texts: readonly string[], from: number, to: number): T[] {
  return JSON.parse(arraySlice(texts, from, to)) as T[];
}
