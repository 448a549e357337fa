/**
 * What changed in the rules of a node, per table: chains added and removed, rules added, removed
 * and moved. Rules are compared by their text without counters, and where two texts differ by
 * their canonical form (printRule) as well, so that an `iptables -S` dump and an iptables-save
 * dump of the same rules agree.
 *
 * kube-proxy names the chains of a Service port and of its endpoints by a hash of what they stand
 * for. A chain that only exists in A and one that only exists in B are the same chain renamed
 * when they stand for the same thing: the same Service port (and endpoint) decoded from the name
 * with each snapshot's manifests, or, without manifests, the same rules once every hashed name in
 * them is replaced by what that chain stands for. A rename is reported once, as `chain-renamed`,
 * and the rules that only name the renamed chains are not reported as changed.
 */
import type { ChainNameIndex } from '../kube/chain-names.ts';
import type { Chain, Rule, Ruleset } from '../netfilter/ast.ts';
import { printRule } from '../netfilter/printer.ts';
import { DumpChain, ruleTexts } from '../netfilter/rule.ts';
import type { ChainDelta } from './delta.ts';
import type { NodePair } from './reachability.ts';
import { ChainTexts } from './rule-facts.ts';
import { hostPort } from '../net/address.ts';

export type RuleChangeKind =
  | 'chain-added' | 'chain-removed' | 'rule-added' | 'rule-removed' | 'rule-moved' | 'chain-renamed'
  /** nftables: a named set or map (`chain` is `@name`), and one of its elements (`rule` is the element). */
  | 'set-added' | 'set-removed' | 'element-added' | 'element-removed';

export interface RuleChange {
  readonly node: string;
  readonly table: string;
  readonly change: RuleChangeKind;
  /** The chain as B names it (as A names it for a removed chain or rule). */
  readonly chain: string;
  /** The rule's text (B's for added and moved rules, A's for removed ones). */
  readonly rule?: string;
  /** chain-renamed: A's name; rule-moved: the 1-based position in A. */
  readonly from?: string | number;
  /** chain-renamed: B's name; rule-moved: the 1-based position in B. */
  readonly to?: string | number;
}

export interface RulesDiffCounts {
  readonly chainsAdded: number;
  readonly chainsRemoved: number;
  readonly rulesAdded: number;
  readonly rulesRemoved: number;
  readonly rulesMoved: number;
  readonly renamed: number;
  /** nftables: named sets and maps added and removed, and their elements. */
  readonly setsAdded: number;
  readonly setsRemoved: number;
  readonly elementsAdded: number;
  readonly elementsRemoved: number;
}

export interface RulesDiff {
  readonly changes: readonly RuleChange[];
  readonly counts: RulesDiffCounts;
}

export interface RulesDiffOptions {
  readonly indexA?: ChainNameIndex | null;
  readonly indexB?: ChainNameIndex | null;
  /** Chain texts already read (by the reachability diff of the same snapshots). */
  readonly chainTexts?: ChainTexts;
  /** Which chains differ, per pair, when already known: only those are compared. */
  readonly deltas?: ReadonlyMap<NodePair, ChainDelta>;
}

const HASHED = /^KUBE-(SVC|SVL|EXT|FW|SEP|XLB)-[A-Z2-7]{16}$/;
const HASHED_IN_TEXT = /KUBE-(?:SVC|SVL|EXT|FW|SEP|XLB)-[A-Z2-7]{16}/g;
const HEAD = /^-[AI] \S+ (?:\d+ )?/;

interface Rules {
  /** Rule bodies: the text after `-A CHAIN `. */
  readonly bodies: readonly string[];
  readonly texts: readonly string[];
  readonly chain: Chain;
}

/** The rules of a chain as the dump shows them (rules svcpath assumed are left out). */
function rulesOf(c: Chain): Rules {
  const texts = c instanceof DumpChain ? ruleTexts(c).texts : c.rules.filter((r) => !r.synthesized).map((r) => r.text);
  return { texts, bodies: texts.map((t) => t.replace(HEAD, '')), chain: c };
}

const NO_CHAINS: ReadonlyMap<string, Chain> = new Map();

/** RulesDiffCounts being counted. */
export type RuleCounter = { -readonly [K in keyof RulesDiffCounts]: RulesDiffCounts[K] };

/** Counts of a diff that found no rule changes. */
export const NO_RULE_CHANGES: RulesDiffCounts = Object.freeze({
  chainsAdded: 0, chainsRemoved: 0, rulesAdded: 0, rulesRemoved: 0, rulesMoved: 0, renamed: 0,
  setsAdded: 0, setsRemoved: 0, elementsAdded: 0, elementsRemoved: 0,
});

/** The chains of a table that the dump shows (chains svcpath assumed are left out). */
function userChains(rs: Ruleset, table: string): ReadonlyMap<string, Chain> {
  const all = rs.tables.get(table)?.chains ?? NO_CHAINS;
  for (const c of all.values()) {
    if (c.synthesized) return new Map([...all].filter(([, x]) => !x.synthesized));
  }
  return all;
}

/** What a hashed chain stands for, in one snapshot. */
class Identities {
  private readonly memo = new Map<string, string>();
  private readonly busy = new Set<string>();

  constructor(
    private readonly chains: ReadonlyMap<string, Chain>,
    private readonly unpaired: ReadonlySet<string>,
    private readonly index: ChainNameIndex | null | undefined,
  ) {}

  of(name: string): string {
    const done = this.memo.get(name);
    if (done !== undefined) return done;
    const decoded = this.index?.decode(name);
    let id: string;
    if (decoded) {
      const ep = decoded.endpoint ? ` ${hostPort(decoded.endpoint.ip, decoded.endpoint.port)}` : '';
      id = `decoded ${decoded.kind} ${decoded.service.namespace}/${decoded.service.name} ${decoded.port.port}/${decoded.port.protocol}${ep}`;
    } else if (this.busy.has(name)) {
      return '@loop';
    } else {
      this.busy.add(name);
      const c = this.chains.get(name);
      const bodies = c ? rulesOf(c).bodies : [];
      const normalised = bodies.map((b) => b.replace(HASHED_IN_TEXT, (m) => (m === name ? '@self' : this.unpaired.has(m) ? `{${this.of(m)}}` : m)));
      this.busy.delete(name);
      id = `content ${name.slice(0, name.lastIndexOf('-'))} ${normalised.join('\n')}`;
    }
    this.memo.set(name, id);
    return id;
  }
}

/** Longest increasing subsequence of `xs` (indices into xs), O(n log n). */
export function increasing(xs: readonly number[]): Set<number> {
  const tails: number[] = [];
  const prev = new Array<number>(xs.length).fill(-1);
  for (let i = 0; i < xs.length; i++) {
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (xs[tails[mid]] < xs[i]) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) prev[i] = tails[lo - 1];
    tails[lo] = i;
  }
  const out = new Set<number>();
  for (let k = tails.length ? tails[tails.length - 1] : -1; k >= 0; k = prev[k]) out.add(k);
  return out;
}

/** Pairs equal keys in order of occurrence; returns B's position for each A position (or -1). */
export function pairUp(keysA: readonly string[], keysB: readonly string[], onlyA: readonly number[], onlyB: readonly number[], match: Int32Array): void {
  const queue = new Map<string, number[]>();
  for (const j of onlyB) {
    const list = queue.get(keysB[j]);
    if (list) list.push(j);
    else queue.set(keysB[j], [j]);
  }
  for (const i of onlyA) {
    const list = queue.get(keysA[i]);
    if (list && list.length > 0) match[i] = list.shift()!;
  }
}

function shownRules(c: Chain): readonly Rule[] {
  return c.rules.filter((x) => !x.synthesized);
}

/** Compares one chain of A with its counterpart in B. */
function diffChain(
  a: Rules, b: Rules, rename: (s: string) => string, families: [string, string],
  emit: (change: RuleChangeKind, rule: string, from?: number, to?: number) => void,
): void {
  const bodiesA = a.bodies.map(rename);
  const bodiesB = b.bodies;
  if (bodiesA.length === bodiesB.length && bodiesA.every((x, i) => x === bodiesB[i])) return;
  const match = new Int32Array(bodiesA.length).fill(-1);
  pairUp(bodiesA, bodiesB, bodiesA.map((_, i) => i), bodiesB.map((_, j) => j), match);
  const usedB = new Set<number>();
  for (const j of match) if (j >= 0) usedB.add(j);
  const leftA = bodiesA.map((_, i) => i).filter((i) => match[i] < 0);
  const leftB = bodiesB.map((_, j) => j).filter((j) => !usedB.has(j));
  if (leftA.length > 0 && leftB.length > 0) {
    // The same rule written differently (option order, address forms): compare canonical texts.
    const canonA: string[] = [];
    const canonB: string[] = [];
    const rulesA = shownRules(a.chain);
    const rulesB = shownRules(b.chain);
    for (const i of leftA) canonA[i] = rename(printRule(rulesA[i], families[0]).replace(HEAD, ''));
    for (const j of leftB) canonB[j] = printRule(rulesB[j], families[1]).replace(HEAD, '');
    pairUp(canonA, canonB, leftA, leftB, match);
    for (const i of leftA) if (match[i] >= 0) usedB.add(match[i]);
  }
  const matchedA: number[] = [];
  for (let i = 0; i < bodiesA.length; i++) {
    if (match[i] < 0) emit('rule-removed', a.texts[i]);
    else matchedA.push(i);
  }
  for (let j = 0; j < bodiesB.length; j++) if (!usedB.has(j)) emit('rule-added', b.texts[j]);
  const keep = increasing(matchedA.map((i) => match[i]));
  matchedA.forEach((i, k) => {
    if (!keep.has(k)) emit('rule-moved', b.texts[match[i]], i + 1, match[i] + 1);
  });
}

/** Compares the rules of each pair of nodes, table by table. */
export function diffRules(pairs: readonly NodePair[], options: RulesDiffOptions = {}): RulesDiff {
  const chainTexts = options.chainTexts ?? new ChainTexts();
  const changes: RuleChange[] = [];
  const counts: RuleCounter = { ...NO_RULE_CHANGES };
  for (const pair of pairs) {
    const ra = pair.a.ruleset;
    const rb = pair.b.ruleset;
    const tables = [...new Set([...ra.tables.keys(), ...rb.tables.keys()])];
    for (const table of tables) {
      // The chains that differ, when the reachability diff found them; else every chain.
      const changed = options.deltas?.get(pair)?.changedIn(table);
      if (changed?.size === 0) continue;
      const ca = userChains(ra, table);
      const cb = userChains(rb, table);
      const candidates = (side: ReadonlyMap<string, Chain>) => (changed ? [...changed].filter((n) => side.has(n)) : [...side.keys()]);
      const onlyA = candidates(ca).filter((n) => !cb.has(n));
      const onlyB = candidates(cb).filter((n) => !ca.has(n));
      const hashedA = new Set(onlyA.filter((n) => HASHED.test(n)));
      const hashedB = new Set(onlyB.filter((n) => HASHED.test(n)));
      const renames = new Map<string, string>();
      if (hashedA.size > 0 && hashedB.size > 0) {
        const idA = new Identities(ca, hashedA, options.indexA);
        const idB = new Identities(cb, hashedB, options.indexB);
        const byIdentity = new Map<string, string[]>();
        for (const n of [...hashedB].sort()) {
          const k = idB.of(n);
          const list = byIdentity.get(k);
          if (list) list.push(n);
          else byIdentity.set(k, [n]);
        }
        for (const n of [...hashedA].sort()) {
          const list = byIdentity.get(idA.of(n));
          if (list && list.length > 0) renames.set(n, list.shift()!);
        }
      }
      const rename = renames.size === 0
        ? (s: string) => s
        : (s: string) => s.replace(HASHED_IN_TEXT, (m) => renames.get(m) ?? m);
      const node = pair.name;
      for (const [from, to] of renames) {
        counts.renamed++;
        changes.push({ node, table, change: 'chain-renamed', chain: to, from, to });
      }
      const renamedTo = new Set(renames.values());
      for (const n of onlyA) {
        if (renames.has(n)) continue;
        counts.chainsRemoved++;
        changes.push({ node, table, change: 'chain-removed', chain: n });
      }
      for (const n of onlyB) {
        if (renamedTo.has(n)) continue;
        counts.chainsAdded++;
        changes.push({ node, table, change: 'chain-added', chain: n });
      }
      const compare = (nameA: string, nameB: string) => {
        const a = ca.get(nameA)!;
        const b = cb.get(nameB)!;
        const emit = (change: RuleChangeKind, rule: string, from?: number, to?: number) => {
          if (change === 'rule-added') counts.rulesAdded++;
          else if (change === 'rule-removed') counts.rulesRemoved++;
          else counts.rulesMoved++;
          const chain = change === 'rule-removed' ? nameA : nameB;
          changes.push({ node, table, change, chain, rule, ...(from !== undefined ? { from, to } : {}) });
        };
        if (a.builtin && (a.policy ?? 'ACCEPT') !== (b.policy ?? 'ACCEPT')) {
          // A policy is reported as the `-P` line that sets it.
          emit('rule-removed', `-P ${nameA} ${a.policy ?? 'ACCEPT'}`);
          emit('rule-added', `-P ${nameB} ${b.policy ?? 'ACCEPT'}`);
        }
        // Most chains are the same in both snapshots: one string comparison says so.
        if (nameA === nameB && a instanceof DumpChain && b instanceof DumpChain && chainTexts.joined(a) === chainTexts.joined(b)) return;
        diffChain(rulesOf(a), rulesOf(b), rename, [ra.family, rb.family], emit);
      };
      for (const n of candidates(ca)) if (cb.has(n)) compare(n, n);
      for (const [from, to] of renames) compare(from, to);
    }
  }
  return { changes, counts };
}
