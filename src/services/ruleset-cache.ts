/**
 * Parsed node dumps kept for traces, audits and diffs, bounded by an estimate of their memory
 * rather than by their number. Entries are keyed by content (dump sha256, format, table): a dump
 * shared by many nodes or versions is parsed once. Requests for a dump being parsed wait for that
 * parse instead of starting another.
 */
import { completeKubeProxy, parseDump } from '../engine/index.ts';
import type { FormatOption, Ruleset } from '../engine/index.ts';

/**
 * A parsed ruleset holds the dump's text plus its chains and rule store, about 1.5 times the
 * dump's size as measured on kube-proxy dumps, and the tracer's compiled chains add to that.
 */
export const BYTES_PER_DUMP_BYTE = 2.5;

export interface RulesetKey {
  readonly sha256: string;
  readonly format: string;
  readonly table?: string;
}

interface Entry {
  readonly weight: number;
  value: Promise<Ruleset>;
}

export interface RulesetCache {
  /** The completed ruleset of the dump; `load` fetches its bytes when it is not cached. */
  get(key: RulesetKey, load: () => Promise<Buffer>): Promise<Ruleset>;
  /** Bytes held, by the estimate above. */
  readonly bytes: number;
  readonly entries: number;
  readonly budget: number;
}

export function createRulesetCache(options: { budgetBytes: number }): RulesetCache {
  const entries = new Map<string, Entry>();
  let held = 0;
  const keyOf = (k: RulesetKey) => `${k.sha256}|${k.format}|${k.table ?? ''}`;

  function evict(room: number): void {
    for (const [key, e] of entries) {
      if (held + room <= options.budgetBytes) break;
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
        return hit.value;
      }
      const value: Promise<Ruleset> = (async () => {
        const raw = await load();
        // Counted from the moment the size is known (evicting older entries to make room).
        const w = Math.ceil(raw.length * BYTES_PER_DUMP_BYTE);
        const pending = entries.get(k);
        if (pending?.weight === 0) {
          const { value: self } = pending;
          entries.delete(k);
          evict(w);
          entries.set(k, { weight: w, value: self });
          held += w;
        }
        return completeKubeProxy(parseDump(raw.toString('utf8'), { format: key.format as FormatOption, table: key.table }));
      })();
      entries.set(k, { weight: 0, value });
      value.catch(() => {
        const e = entries.get(k);
        if (e?.value === value) {
          entries.delete(k);
          held -= e.weight;
        }
      });
      return value;
    },
    get bytes() { return held; },
    get entries() { return entries.size; },
    get budget() { return options.budgetBytes; },
  };
}
