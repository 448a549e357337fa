/**
 * Parsed node dumps kept for traces, bounded by an estimate of their memory rather than by their
 * number. Entries are keyed by content (dump sha256, format, table): a dump shared by many nodes
 * or versions is parsed once. Requests for a dump being parsed wait for that parse instead of
 * starting another.
 */
import { readRules, rulesCompiled } from '../engine/index.ts';
import type { AnyRuleset, FormatOption } from '../engine/index.ts';

/**
 * What a parsed dump costs, as measured on kube-proxy dumps of 2,000 and 10,000 Services: its
 * text and the parsed chains and rule store, about 1.6 times the dump's size; and each rule a
 * trace has compiled (with the parsed rule it keeps), about 3 KB.
 */
export const BYTES_PER_DUMP_BYTE = 1.6;
export const BYTES_PER_COMPILED_RULE = 3000;

export interface RulesetKey {
  readonly sha256: string;
  readonly format: string;
  readonly table?: string;
}

interface Entry {
  /** The dump's size; 0 until it is loaded. */
  dumpBytes: number;
  weight: number;
  value: Promise<AnyRuleset> | null;
  ruleset: AnyRuleset | null;
}

export interface RulesetCache {
  /** The completed ruleset of the dump; `load` fetches its bytes when it is not cached. */
  get(key: RulesetKey, load: () => Promise<Buffer>): Promise<AnyRuleset>;
  /** Weighs the entries again (traces compile rules as they go) and evicts down to the budget. */
  settle(): void;
  /** Bytes held, by the estimate above. */
  readonly bytes: number;
  readonly entries: number;
  readonly budget: number;
}

export function createRulesetCache(options: { budgetBytes: number }): RulesetCache {
  const entries = new Map<string, Entry>();
  let held = 0;
  const keyOf = (k: RulesetKey) => `${k.sha256}|${k.format}|${k.table ?? ''}`;

  const weigh = (e: Entry) => {
    const w = Math.ceil(e.dumpBytes * BYTES_PER_DUMP_BYTE + (e.ruleset ? rulesCompiled(e.ruleset) * BYTES_PER_COMPILED_RULE : 0));
    held += w - e.weight;
    e.weight = w;
  };

  /** Evicts the least recently used entries until `room` more bytes fit (the newest stays). */
  function evict(room: number, keep?: string): void {
    for (const [key, e] of entries) {
      if (held + room <= options.budgetBytes) break;
      if (key === keep) continue;
      entries.delete(key);
      held -= e.weight;
    }
  }

  return {
    get(key, load) {
      const k = keyOf(key);
      const hit = entries.get(k);
      if (hit) {
        entries.delete(k);
        entries.set(k, hit);
        return hit.value!;
      }
      const entry: Entry = { dumpBytes: 0, weight: 0, ruleset: null, value: null };
      const value = (async () => {
        const raw = await load();
        // Counted from the moment the size is known, evicting older entries to make room.
        entry.dumpBytes = raw.length;
        if (entries.get(k) === entry) {
          evict(Math.ceil(raw.length * BYTES_PER_DUMP_BYTE), k);
          weigh(entry);
        }
        const rs = readRules(raw.toString('utf8'), { format: key.format as FormatOption, table: key.table });
        entry.ruleset = rs;
        return rs;
      })();
      entry.value = value;
      entries.set(k, entry);
      value.catch(() => {
        if (entries.get(k) === entry) {
          entries.delete(k);
          held -= entry.weight;
        }
      });
      return value;
    },
    settle() {
      for (const e of entries.values()) if (e.ruleset) weigh(e);
      const newest = [...entries.keys()].pop();
      evict(0, newest);
    },
    get bytes() { return held; },
    get entries() { return entries.size; },
    get budget() { return options.budgetBytes; },
  };
}
