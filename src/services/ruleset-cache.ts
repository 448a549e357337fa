/**
 * Parsed node dumps kept for traces, bounded by an estimate of their memory rather than by their
 * number. Entries are keyed by content (dump sha256, format, table): a dump shared by many nodes
 * or versions is parsed once. Requests for a dump being parsed wait for that parse instead of
 * starting another.
 */
import { readRules, rulesCompiled, sharedBodyCount, sharedRuleCount } from '../engine/index.ts';
import type { AnyRuleset, FormatOption } from '../engine/index.ts';
import { ByteCache } from './byte-cache.ts';

/**
 * What a parsed dump costs, as measured on kube-proxy dumps of 2,000 and 10,000 Services: its
 * text and the parsed chains and rule store, about 1.6 times the dump's size; each rule a trace
 * has compiled in it, about 400 bytes (its place in the chain); and, once for every dump that has
 * the same rule, the compiled rule itself, about 1.5 KB (the engine's shared rules), and the parsed
 * rule that whatever reads its options shares, about 1.4 KB (measured: 55,051 rules of a
 * 2,000-Service dump read, 1,401 bytes each).
 */
export const BYTES_PER_DUMP_BYTE = 1.6;
export const BYTES_PER_COMPILED_RULE = 400;
export const BYTES_PER_SHARED_RULE = 1500;
export const BYTES_PER_SHARED_BODY = 1400;

export interface RulesetKey {
  readonly sha256: string;
  readonly format: string;
  readonly table?: string;
}

interface Entry {
  /** The dump's size; 0 until it is loaded. */
  dumpBytes: number;
  value: Promise<AnyRuleset>;
  ruleset: AnyRuleset | null;
}

export interface RulesetCache {
  /** The completed ruleset of the dump; `load` fetches its bytes when it is not cached. */
  get(key: RulesetKey, load: () => Promise<Buffer>): Promise<AnyRuleset>;
  /** The same for a dump in hand (a trace of pasted rules): parsed now unless cached. */
  parse(key: RulesetKey, text: string): AnyRuleset;
  /** Weighs the entries again (traces compile rules as they go) and evicts down to the budget. */
  settle(): void;
  /** Bytes held, by the estimate above (the shared compiled rules included). */
  readonly bytes: number;
  readonly entries: number;
  readonly budget: number;
}

const weightOf = (e: Entry) => e.dumpBytes * BYTES_PER_DUMP_BYTE + (e.ruleset ? rulesCompiled(e.ruleset) * BYTES_PER_COMPILED_RULE : 0);

export function createRulesetCache(options: { budgetBytes: number }): RulesetCache {
  // The compiled and parsed rules the engine shares between dumps cost memory too: counted in the budget.
  const overhead = () => sharedRuleCount() * BYTES_PER_SHARED_RULE + sharedBodyCount() * BYTES_PER_SHARED_BODY;
  const cache = new ByteCache<Entry>({ budgetBytes: options.budgetBytes, overhead });
  const keyOf = (k: RulesetKey) => `${k.sha256}|${k.format}|${k.table ?? ''}`;
  const read = (key: RulesetKey, text: string) => readRules(text, { format: key.format as FormatOption, table: key.table });

  return {
    get(key, load) {
      const k = keyOf(key);
      const hit = cache.get(k);
      if (hit) return hit.value;
      // Assigned before `load` settles, which is when the parse below first reads it.
      // eslint-disable-next-line prefer-const -- the closure below reads it once `load` settles; it is assigned after the closure is made
      let entry!: Entry;
      const value = (async () => {
        const raw = await load();
        // Counted from the moment the size is known, evicting older entries to make room.
        entry.dumpBytes = raw.length;
        if (cache.peek(k) === entry) {
          cache.makeRoom(weightOf(entry));
          cache.reweigh(k, weightOf(entry));
        }
        const rs = read(key, raw.toString('utf8'));
        entry.ruleset = rs;
        return rs;
      })();
      entry = { dumpBytes: 0, ruleset: null, value };
      cache.set(k, entry, 0);
      entry.value.catch(() => {
        if (cache.peek(k) === entry) cache.delete(k);
      });
      return entry.value;
    },
    parse(key, text) {
      const k = keyOf(key);
      const hit = cache.get(k);
      if (hit?.ruleset) return hit.ruleset;
      const rs = read(key, text);
      const entry: Entry = { dumpBytes: Buffer.byteLength(text), ruleset: rs, value: Promise.resolve(rs) };
      cache.set(k, entry, weightOf(entry));
      return rs;
    },
    settle() {
      for (const [k, e] of [...cache.entries()]) if (e.ruleset) cache.reweigh(k, weightOf(e));
    },
    get bytes() { return cache.bytes; },
    get entries() { return cache.size; },
    get budget() { return cache.budget; },
  };
}
