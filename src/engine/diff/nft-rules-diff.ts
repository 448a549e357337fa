/**
 * What changed in the rules of a node whose both snapshots are nftables rulesets, per table
 * (`family name`): chains added and removed, a base chain's hook, type, priority or policy, rules
 * added, removed and moved, and, as most of kube-proxy's nftables state lives in sets and maps,
 * named sets and maps added and removed and their elements added and removed.
 *
 * Rules and elements are compared by their text as nft prints it (rule.text; the element's key
 * and value through the printer), so the list, JSON and command forms of one ruleset agree.
 * kube-proxy's nftables chain names say what they stand for (nft-chain-names.ts): no renames to
 * detect, unlike iptables mode's hashed names.
 */
import type { NftChain, NftRuleset, NftSet, NftSetElement, NftTable } from '../nftables/ast.ts';
import { printExpr } from '../nftables/printer.ts';
import type { RuleChange, RuleChangeKind, RuleCounter, RulesDiff } from './rules-diff.ts';
import { increasing, NO_RULE_CHANGES, pairUp } from './rules-diff.ts';

export interface NftNodePair {
  readonly name: string;
  readonly a: NftRuleset;
  readonly b: NftRuleset;
}

/** A base chain's registration as `nft list ruleset` prints it; '' for a regular chain. */
function baseText(c: NftChain): string {
  const b = c.base;
  return b ? `type ${b.type} hook ${b.hook} priority ${b.priorityText}; policy ${b.policy};` : '';
}

function elementText(e: NftSetElement): string {
  const key = printExpr(e.key);
  return e.value ? `${key} : ${printExpr(e.value)}` : key;
}

/** A set's declaration (type, flags, timeout), apart from its elements. */
function setText(s: NftSet): string {
  return [s.isMap ? 'map' : 'set', s.key.text, s.data?.text ?? '', s.flags.join(','), s.timeoutMs ?? ''].join(' ');
}

/** The entries of `xs` that `ys` does not hold as often (multiset difference), in the order of `xs`. */
function minus(xs: readonly string[], ys: readonly string[]): string[] {
  const left = new Map<string, number>();
  for (const y of ys) left.set(y, (left.get(y) ?? 0) + 1);
  const out: string[] = [];
  for (const x of xs) {
    const n = left.get(x) ?? 0;
    if (n > 0) left.set(x, n - 1);
    else out.push(x);
  }
  return out;
}

/** Compares the rules of one chain in A and B: added, removed and moved, as for iptables. */
function diffChainRules(a: NftChain, b: NftChain, emit: (change: RuleChangeKind, rule: string, from?: number, to?: number) => void): void {
  const ta = a.rules.map((r) => r.text);
  const tb = b.rules.map((r) => r.text);
  if (ta.length === tb.length && ta.every((x, i) => x === tb[i])) return;
  const match = new Int32Array(ta.length).fill(-1);
  pairUp(ta, tb, ta.map((_, i) => i), tb.map((_, j) => j), match);
  const usedB = new Set<number>();
  const matchedA: number[] = [];
  for (let i = 0; i < ta.length; i++) {
    if (match[i] < 0) emit('rule-removed', ta[i]);
    else {
      usedB.add(match[i]);
      matchedA.push(i);
    }
  }
  for (let j = 0; j < tb.length; j++) if (!usedB.has(j)) emit('rule-added', tb[j]);
  const keep = increasing(matchedA.map((i) => match[i]));
  matchedA.forEach((i, k) => {
    if (!keep.has(k)) emit('rule-moved', tb[match[i]], i + 1, match[i] + 1);
  });
}

const NO_TABLE: NftTable | undefined = undefined;

/** Compares the nftables rules of each pair of nodes, table by table. */
export function diffNftRules(pairs: readonly NftNodePair[]): RulesDiff {
  const changes: RuleChange[] = [];
  const counts: RuleCounter = { ...NO_RULE_CHANGES };
  for (const pair of pairs) {
    const node = pair.name;
    const tables = [...new Set([...pair.a.tables.keys(), ...pair.b.tables.keys()])];
    for (const table of tables) {
      const ta = pair.a.tables.get(table) ?? NO_TABLE;
      const tb = pair.b.tables.get(table) ?? NO_TABLE;
      const push = (change: RuleChangeKind, chain: string, rule?: string, from?: number, to?: number) => {
        changes.push({ node, table, change, chain, ...(rule !== undefined ? { rule } : {}), ...(from !== undefined ? { from, to } : {}) });
      };
      const chainsA = ta?.chains ?? new Map<string, NftChain>();
      const chainsB = tb?.chains ?? new Map<string, NftChain>();
      for (const [name] of chainsA) {
        if (chainsB.has(name)) continue;
        counts.chainsRemoved++;
        push('chain-removed', name);
      }
      for (const [name] of chainsB) {
        if (chainsA.has(name)) continue;
        counts.chainsAdded++;
        push('chain-added', name);
      }
      for (const [name, a] of chainsA) {
        const b = chainsB.get(name);
        if (!b) continue;
        const emit = (change: RuleChangeKind, rule: string, from?: number, to?: number) => {
          if (change === 'rule-added') counts.rulesAdded++;
          else if (change === 'rule-removed') counts.rulesRemoved++;
          else counts.rulesMoved++;
          push(change, name, rule, from, to);
        };
        // A base chain's registration is reported as the line that declares it.
        if (baseText(a) !== baseText(b)) {
          if (a.base) emit('rule-removed', baseText(a));
          if (b.base) emit('rule-added', baseText(b));
        }
        diffChainRules(a, b, emit);
      }

      const setsA = ta?.sets ?? new Map<string, NftSet>();
      const setsB = tb?.sets ?? new Map<string, NftSet>();
      for (const [name, s] of setsA) {
        const other = setsB.get(name);
        if (other && setText(other) === setText(s)) continue;
        counts.setsRemoved++;
        push('set-removed', `@${name}`, setText(s));
      }
      for (const [name, s] of setsB) {
        const other = setsA.get(name);
        if (other && setText(other) === setText(s)) continue;
        counts.setsAdded++;
        push('set-added', `@${name}`, setText(s));
      }
      for (const [name, a] of setsA) {
        const b = setsB.get(name);
        // A set declared anew is reported whole above; its elements are compared all the same.
        const ea = a.elements.map(elementText);
        const eb = (b?.elements ?? []).map(elementText);
        const removed = minus(ea, eb);
        const added = minus(eb, ea);
        for (const e of removed) {
          counts.elementsRemoved++;
          push('element-removed', `@${name}`, e);
        }
        for (const e of added) {
          counts.elementsAdded++;
          push('element-added', `@${name}`, e);
        }
      }
      for (const [name, b] of setsB) {
        if (setsA.has(name)) continue;
        for (const e of b.elements) {
          counts.elementsAdded++;
          push('element-added', `@${name}`, elementText(e));
        }
      }
    }
  }
  return { changes, counts };
}
