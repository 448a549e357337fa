/**
 * Which chains of a node differ between two snapshots, found without reading rules one by one.
 *
 * A chain is *changed* when it exists on one side only or its policy or rule texts differ (one
 * string comparison of the joined texts). A chain is *tainted* when it is changed or jumps,
 * directly or through other chains, to a changed one. Every other chain is *clean*: it and
 * everything it reaches are the same text in both snapshots, so a packet entering it in the same
 * state leaves it (or ends in it) the same way in both. After a deploy that touched a hundred
 * Services of ten thousand, almost every chain is clean, and the reachability diff (signature.ts)
 * only reads the tainted ones.
 */
import type { Chain, Ruleset } from '../netfilter/ast.ts';
import type { ChainTexts } from './rule-facts.ts';
import { dnatKeyAt, REWRITING_TARGETS } from './rule-facts.ts';
import { ruleCount, ruleTargetAt } from '../netfilter/rule.ts';

function sameChain(x: Chain, y: Chain, texts: ChainTexts): boolean {
  return x === y || ((x.policy ?? '-') === (y.policy ?? '-') && texts.joined(x) === texts.joined(y));
}

/** The destinations unchanged chains can rewrite a packet to. */
export interface UnchangedRewrites {
  /** Addresses and ports of every single-address DNAT in an unchanged chain. */
  readonly ips: ReadonlySet<string>;
  readonly ports: ReadonlySet<number>;
  /** An unchanged chain rewrites destinations in a way these sets do not describe (REDIRECT, ranges, …). */
  readonly opaque: boolean;
}

export class ChainDelta {
  private readonly changed = new Map<string, Set<string>>();
  private readonly tainted = new Map<string, Set<string>>();
  /** Per table, A's chains that rewrite destinations, with the 0-based positions of the rules that do. */
  private readonly rewriting = new Map<string, Map<Chain, number[]>>();

  constructor(a: Ruleset, b: Ruleset, texts: ChainTexts) {
    const tables = [...new Set([...a.tables.keys(), ...b.tables.keys()])];
    for (const table of tables) {
      const ca = a.tables.get(table)?.chains ?? new Map<string, Chain>();
      const cb = b.tables.get(table)?.chains ?? new Map<string, Chain>();
      const changed = new Set<string>();
      for (const [name, x] of ca) {
        const y = cb.get(name);
        if (!y || !sameChain(x, y, texts)) changed.add(name);
      }
      for (const name of cb.keys()) if (!ca.has(name)) changed.add(name);
      this.changed.set(table, changed);
    }
    if (this.identical) {
      for (const table of tables) this.tainted.set(table, new Set());
      return;
    }
    for (const table of tables) {
      const ca = a.tables.get(table)?.chains ?? new Map<string, Chain>();
      const cb = b.tables.get(table)?.chains ?? new Map<string, Chain>();
      this.tainted.set(table, this.scan(table, ca, cb, this.changed.get(table)!));
    }
  }

  /**
   * One pass over the jumps of every chain (A's, and B's changed ones): the chains that reach a
   * changed chain, directly or not, and the lines of A's chains that rewrite destinations.
   */
  private scan(table: string, ca: ReadonlyMap<string, Chain>, cb: ReadonlyMap<string, Chain>, changed: ReadonlySet<string>): Set<string> {
    // Per distinct target: the chains that jump to it, or null when it is not a chain.
    const callers = new Map<string, string[] | null>();
    const rewriting = new Map<Chain, number[]>();
    this.rewriting.set(table, rewriting);
    const read = (name: string, c: Chain, side: 'a' | 'b') => {
      const n = ruleCount(c);
      for (let k = 0; k < n; k++) {
        const target = ruleTargetAt(c, k);
        if (target === null) continue;
        let list = callers.get(target);
        if (list === undefined) {
          list = ca.has(target) || cb.has(target) ? [] : null;
          callers.set(target, list);
        }
        if (list !== null) {
          if (list[list.length - 1] !== name) list.push(name);
        } else if (side === 'a' && REWRITING_TARGETS.has(target)) {
          const at = rewriting.get(c);
          if (at) at.push(k);
          else rewriting.set(c, [k]);
        }
      }
    };
    for (const [name, c] of ca) read(name, c, 'a');
    for (const [name, c] of cb) if (changed.has(name)) read(name, c, 'b');
    // Backwards along the jumps, from the changed chains.
    const out = new Set(changed);
    const queue = [...changed];
    while (queue.length > 0) {
      for (const caller of callers.get(queue.pop()!) ?? []) {
        if (out.has(caller)) continue;
        out.add(caller);
        queue.push(caller);
      }
    }
    return out;
  }

  /** No chain of any table differs. */
  get identical(): boolean {
    for (const set of this.changed.values()) if (set.size > 0) return false;
    return true;
  }

  /** The chains of a table that exist on one side only or whose policy or rules differ. */
  changedIn(table: string): ReadonlySet<string> {
    return this.changed.get(table) ?? new Set();
  }

  /** The chain exists on one side only, or its policy or rules differ. */
  isChanged(table: string, chain: string): boolean {
    return this.changed.get(table)?.has(chain) ?? true;
  }

  /** The chain and everything it reaches are the same in both snapshots. */
  isClean(table: string, chain: string): boolean {
    return !(this.tainted.get(table)?.has(chain) ?? true);
  }

  /**
   * Where the chains whose text is the same on both sides (A's are read) can send a packet by
   * rewriting its destination; anything but a DNAT to one address and port makes it opaque. The
   * signatures skip the rewrites of clean chains, and of the rules of unchanged chains that do
   * not jump to a tainted chain: all of them are here.
   */
  unchangedRewrites(): UnchangedRewrites {
    const ips = new Set<string>();
    const ports = new Set<number>();
    let opaque = false;
    for (const [table, chains] of this.rewriting) {
      for (const [c, at] of chains) {
        if (this.isChanged(table, c.name)) continue;
        for (const k of at) {
          const key = dnatKeyAt(c, k);
          if (key === null) {
            opaque = true;
            continue;
          }
          const bar = key.lastIndexOf('|');
          ips.add(key.slice(0, bar));
          ports.add(Number(key.slice(bar + 1)));
        }
      }
    }
    return { ips, ports, opaque };
  }
}
