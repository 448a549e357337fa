/**
 * Rules as the parsers hand them out. A large dump has hundreds of thousands of rules, and
 * keeping every option of every rule as objects costs more in garbage collection than parsing
 * does, so a rule keeps its text and re-reads its options the first time something asks for
 * them. The text was fully read, and any syntax error reported, when the dump was parsed.
 */
import type { Chain, Cidr, Counters, Family, MatchModule, Negatable, Policy, Rule, TargetSpec } from './ast.ts';
import { hashOf, sameBytes, Slots, spells, spellsAt } from './char-index.ts';
import { lex, Words } from './lexer.ts';
import { ownCopy } from '../text.ts';
import type { RuleBody } from './rule-parser.ts';
import { NAT_TARGETS, RuleReader } from './rule-parser.ts';

const words = new Words();
const readers: Record<Family, RuleReader> = { ipv4: new RuleReader(), ipv6: new RuleReader() };
readers.ipv4.family = 'ipv4';
readers.ipv6.family = 'ipv6';

/**
 * Rule bodies by family and text, shared by every dump: the nodes of a cluster and the versions of
 * a node have almost every rule in common, and whatever reads a rule's options (the tracer, the
 * checks, the diff) reads one parse of each text. Bodies are read from copies of the texts, so
 * they keep no dump alive; the maps are emptied when full (rules keep the bodies they were given).
 */
const sharedBodies: Record<Family, Map<string, RuleBody>> = { ipv4: new Map(), ipv6: new Map() };
const SHARED_BODIES_KEPT = 200_000;

function sharedBody(family: Family, text: string, start: number, line: number): RuleBody {
  const bodies = sharedBodies[family];
  let body = bodies.get(text);
  if (body === undefined) {
    const own = ownCopy(text);
    body = readers[family].read(lex(own, line, 0, own, words), start, line, own);
    if (bodies.size >= SHARED_BODIES_KEPT) bodies.clear();
    bodies.set(own, body);
  }
  return body;
}

/** Lets go of the shared bodies (rules made already keep theirs). */
export function forgetSharedBodies(): void {
  sharedBodies.ipv4.clear();
  sharedBodies.ipv6.clear();
}

/** How many parsed rule bodies all dumps share (each costs about BYTES_PER_SHARED_BODY, services/ruleset-cache.ts). */
export function sharedBodyCount(): number {
  return sharedBodies.ipv4.size + sharedBodies.ipv6.size;
}

export class TextRule implements Rule {
  private cached: RuleBody | undefined;

  constructor(
    readonly table: string,
    readonly chain: string,
    public index: number,
    readonly line: number,
    readonly text: string,
    /** Word position where the options start (2 after `-A CHAIN`, 3 after `-I CHAIN n`). */
    private readonly start: number,
    private readonly family: Family,
    readonly counters?: Counters,
    readonly synthesized?: string,
    body?: RuleBody,
  ) {
    this.cached = body;
  }

  private body(): RuleBody {
    return (this.cached ??= sharedBody(this.family, this.text, this.start, this.line));
  }

  get protocol(): Negatable<string> | undefined {
    return this.body().protocol;
  }

  get source(): Negatable<Cidr> | undefined {
    return this.body().source;
  }

  get destination(): Negatable<Cidr> | undefined {
    return this.body().destination;
  }

  get inInterface(): Negatable<string> | undefined {
    return this.body().inInterface;
  }

  get outInterface(): Negatable<string> | undefined {
    return this.body().outInterface;
  }

  get fragment(): Negatable<true> | undefined {
    return this.body().fragment;
  }

  get matches(): readonly MatchModule[] {
    return this.body().matches;
  }

  get target(): TargetSpec | undefined {
    return this.body().target;
  }

  /** What the rule's meaning depends on: its family, table and text. */
  meaningKey(): string {
    return `${this.family}\u0000${this.table}\u0000${this.text}`;
  }

  /** The same rule read from a copy of its text: for caches that outlive the dump. */
  ownCopy(): TextRule {
    return new TextRule(this.table, ownCopy(this.chain), this.index, this.line, ownCopy(this.text), this.start, this.family, undefined, this.synthesized);
  }

  /** The same rule at another position (after svcpath inserted rules before it). */
  at(index: number): TextRule {
    return new TextRule(this.table, this.chain, index, this.line, this.text, this.start, this.family, this.counters, this.synthesized, this.cached);
  }
}

/**
 * Every rule of one dump, as columns of numbers: offsets of the rule's text in the dump, its line,
 * the word where its options start, its target and dispatch keys (as numbers into a table of
 * strings). Nothing per rule is an object until something asks for a chain's rules; a
 * 10,000-Service dump has a quarter of a million rules.
 */
export class RuleStore {
  size = 0;
  from = new Int32Array(1024);
  to = new Int32Array(1024);
  lines = new Int32Array(1024);
  /** Word position where options start: 2 after `-A CHAIN`, 3 after `-I CHAIN n`. */
  starts = new Uint8Array(1024);
  /** The `-j`/`-g` target as the parser read it (an index into `strings`, -1 for none). */
  targets = new Int32Array(1024);
  /** A non-negated single-host `-d` (canonical; an index into `strings`), else -1: a dispatch key (compile.ts). */
  dsts = new Int32Array(1024);
  /** A non-negated single `--dport` of a tcp/udp/sctp match, else -1: the other dispatch key. */
  dports = new Int32Array(1024);
  /**
   * The address word of a DNAT's `--to-destination` or an SNAT's `--to-source`, given once: where
   * it starts in the dump (it runs to the next blank), or a string of `strings` (natToString: a
   * word the full reader read); -1 for none. The fast reader makes no string of it.
   */
  natTos = new Int32Array(1024);
  /** Counters of the rules that have them (`iptables-save -c`), by rule id. */
  counters: Map<number, Counters> | null = null;
  readonly strings: string[] = [];
  /**
   * Where each string was read in the dump (internBytes), or -1, and its length, side by side
   * (string e at 2e and 2e + 1). A lookup compares bytes at the origin without touching the string.
   */
  private spans = new Int32Array(2048);
  /** The dump's address family, known once the whole dump is read. */
  family: Family = 'ipv4';
  private readonly index: Slots;

  /** `capacity`: how many rules to make room for at first (the store grows past it). */
  constructor(capacity = 1024) {
    if (capacity > this.from.length) this.resize(capacity);
    // kube-proxy's dumps have a distinct target or address per two or three rules, and the table
    // grows when half full: a slot per two rules of room (capacity errs high) seldom grows, where
    // the default would grow eight times.
    let slots = 4096;
    while (slots * 2 < capacity) slots *= 2;
    this.index = new Slots(slots);
  }

  /** The number of a string in `strings` (one entry per distinct string). */
  intern(s: string): number {
    return this.internAt(s, 0, s.length, hashOf(s, 0, s.length));
  }

  /** The number of s[from, to), whose hashOf is `hash`; a string is made only for a new text. */
  internAt(s: string, from: number, to: number, hash: number): number {
    const { cells, mask } = this.index;
    for (let i = this.index.first(hash); ; i = (i + 2) & mask) {
      const e = cells[i];
      if (e < 0) break;
      if (cells[i + 1] === hash && spells(this.strings[e], s, from, to)) return e;
    }
    return this.made(from === 0 && to === s.length ? s : s.slice(from, to), hash, -1);
  }

  /**
   * internAt for the fast reader: s[from, to) compared in b (s as asciiBytes). Strings it makes
   * remember where they were read, so that later ones compare byte to byte. One store serves one
   * dump: every call passes the same s and b.
   */
  internBytes(s: string, b: Uint8Array, from: number, to: number, hash: number): number {
    const { cells, mask } = this.index;
    const n = to - from;
    for (let i = this.index.first(hash); ; i = (i + 2) & mask) {
      const e = cells[i];
      if (e < 0) break;
      if (cells[i + 1] !== hash) continue;
      const spans = this.spans;
      if (spans[2 * e + 1] !== n) continue;
      const at = spans[2 * e];
      if (at >= 0 ? sameBytes(b, at, from, n) : spellsAt(this.strings[e], b, from, to)) return e;
    }
    return this.made(s.slice(from, to), hash, from);
  }

  private made(text: string, hash: number, origin: number): number {
    const id = this.strings.length;
    this.strings.push(text);
    if (2 * id >= this.spans.length) this.spans = resized(this.spans, id * 4);
    this.spans[2 * id] = origin;
    this.spans[2 * id + 1] = text.length;
    this.index.put(hash, id);
    return id;
  }

  /** The natTos entry for string `id` of `strings`. */
  static natToString(id: number): number {
    return -2 - id;
  }

  /** The address word natTos records for rule `id` in `source`, or null. */
  natTo(source: string, id: number): string | null {
    const at = this.natTos[id];
    if (at === -1) return null;
    if (at < -1) return this.strings[-2 - at];
    const end = this.to[id];
    let k = at;
    while (k < end) {
      const c = source.charCodeAt(k);
      if (c === 0x20 || c === 0x09) break;
      k++;
    }
    return source.slice(at, k);
  }

  /** Stores a rule and returns its id. */
  add(from: number, to: number, line: number, start: number, target: number, dst: number, dport: number, natTo: number, counters: Counters | undefined): number {
    if (this.size >= this.from.length) this.grow();
    const id = this.size++;
    this.from[id] = from;
    this.to[id] = to;
    this.lines[id] = line;
    this.starts[id] = start;
    this.targets[id] = target;
    this.dsts[id] = dst;
    this.dports[id] = dport;
    this.natTos[id] = natTo;
    if (counters) (this.counters ??= new Map()).set(id, counters);
    return id;
  }

  /** Gives back the room grown for rules that never came (the store lives as long as its ruleset). */
  trim(): void {
    // When most of the room is used, copying every column costs more time than the rest is worth.
    if (this.size < this.from.length * 0.75) this.resize(this.size);
  }

  private grow(): void {
    this.resize(Math.max(1024, this.from.length * 2));
  }

  /** Every column at length n, keeping the first rules. */
  private resize(n: number): void {
    this.from = resized(this.from, n);
    this.to = resized(this.to, n);
    this.lines = resized(this.lines, n);
    this.starts = resized(this.starts, n);
    this.targets = resized(this.targets, n);
    this.dsts = resized(this.dsts, n);
    this.dports = resized(this.dports, n);
    this.natTos = resized(this.natTos, n);
  }
}

function resized<T extends Int32Array | Uint8Array>(a: T, n: number): T {
  const b = new (a.constructor as new (length: number) => T)(n);
  b.set(n < a.length ? a.subarray(0, n) : a);
  return b;
}

/** What every chain of one parsed table shares: the table's name, the dump, and its rule store. */
export interface ChainHome {
  readonly table: string;
  readonly source: string;
  readonly store: RuleStore;
}

/** The counters iptables-save prints for almost every chain, `[0:0]`: one object for all of them. */
export const ZERO_COUNTERS: Counters = Object.freeze({ packets: '0', bytes: '0' });

// A DumpChain's flags.
const BUILTIN = 1;
const DELETED = 2;
const ACCEPT = 4;
const DROP = 8;
const ZERO = 16;

/** What few chains have, kept apart so that the others stay small. */
interface ChainExtra {
  /** The chain's rule ids when they are not one run of consecutive ids. */
  ids: number[] | null;
  made: Rule[] | null;
  joined: string | null;
  /** Counters other than [0:0]. */
  counters: Counters | undefined;
}

/**
 * A parsed chain whose Rule objects are made on first access to `rules`. The parser fills in its
 * policy, declaration line and counters while it reads the dump; nothing changes it afterwards.
 *
 * A 10,000-Service dump declares 90,000 chains, and every one is garbage collected young and
 * copied: a chain is kept to few fields.
 * iptables-save lists a chain's rules together, so most chains' rules are one run of
 * consecutive ids (`first`, `count`); a chain whose rules are not (rules inserted with `-I`, or
 * appended between other chains' rules) keeps a list.
 */
export class DumpChain implements Chain {
  private first = 0;
  private count = 0;
  private flags: number;
  private extra: ChainExtra | null = null;
  /** The name, once made (a chain read from a dump makes it from the dump when first asked for). */
  private madeName: string | null;
  line: number;
  /** Where the parser declared it among its table's chains. */
  position = 0;
  /** hashOf(name), for the parser's lookups. */
  hash = 0;
  /** Where the parser read the name in the dump (its lookups then compare bytes), or -1. */
  nameAt: number;
  readonly nameLength: number;

  /** `name`: the chain's name; null to take the `nameLength` characters at `nameAt` in the source. */
  constructor(
    private readonly home: ChainHome,
    name: string | null,
    builtin: boolean,
    line: number,
    nameAt = -1,
    nameLength = name?.length ?? 0,
  ) {
    this.flags = builtin ? BUILTIN | ACCEPT : 0;
    this.madeName = name;
    this.line = line;
    this.nameAt = nameAt;
    this.nameLength = nameLength;
  }

  get table(): string {
    return this.home.table;
  }

  get name(): string {
    return (this.madeName ??= this.home.source.slice(this.nameAt, this.nameAt + this.nameLength));
  }

  get builtin(): boolean {
    return (this.flags & BUILTIN) !== 0;
  }

  get policy(): Policy | null {
    return (this.flags & ACCEPT) !== 0 ? 'ACCEPT' : (this.flags & DROP) !== 0 ? 'DROP' : null;
  }

  set policy(p: Policy | null) {
    this.flags = (this.flags & ~(ACCEPT | DROP)) | (p === 'ACCEPT' ? ACCEPT : p === 'DROP' ? DROP : 0);
  }

  get counters(): Counters | undefined {
    return (this.flags & ZERO) !== 0 ? ZERO_COUNTERS : this.extra?.counters;
  }

  set counters(c: Counters | undefined) {
    const zero = c !== undefined && c.packets === '0' && c.bytes === '0';
    this.flags = zero ? this.flags | ZERO : this.flags & ~ZERO;
    const other = zero ? undefined : c;
    if (other !== undefined || this.extra !== null) this.more().counters = other;
  }

  /** Taken out by `-X` (a ChainIndex no longer finds it). */
  get deleted(): boolean {
    return (this.flags & DELETED) !== 0;
  }

  set deleted(d: boolean) {
    this.flags = d ? this.flags | DELETED : this.flags & ~DELETED;
  }

  private more(): ChainExtra {
    return (this.extra ??= { ids: null, made: null, joined: null, counters: undefined });
  }

  get ruleCount(): number {
    const ids = this.extra?.ids;
    return ids ? ids.length : this.count;
  }

  /** The store id of the rule at 0-based position k. */
  ruleId(k: number): number {
    const ids = this.extra?.ids;
    return ids ? ids[k] : this.first + k;
  }

  /** Appends rule `id`, or inserts it at `at` (0-based) for `-I`. */
  addRule(id: number, at = -1): void {
    let ids = this.extra?.ids;
    if (!ids) {
      if (at < 0 || at >= this.count) {
        if (this.count === 0) {
          this.first = id;
          this.count = 1;
          return;
        }
        if (this.first + this.count === id) {
          this.count++;
          return;
        }
      }
      ids = [];
      for (let k = 0; k < this.count; k++) ids.push(this.first + k);
      this.more().ids = ids;
    }
    if (at < 0 || at >= ids.length) ids.push(id);
    else ids.splice(at, 0, id);
  }

  clearRules(): void {
    this.first = 0;
    this.count = 0;
    if (this.extra) this.extra.ids = null;
  }

  private get source(): string {
    return this.home.source;
  }

  private get store(): RuleStore {
    return this.home.store;
  }

  private get family(): Family {
    return this.store.family;
  }

  /** The rule texts joined by newlines, kept: diffs and checks compare chains by it. */
  joinedText(): string {
    const joined = this.extra?.joined;
    if (joined != null) return joined;
    return (this.more().joined = this.join());
  }

  private join(): string {
    const n = this.ruleCount;
    if (n === 0) return '';
    const { from, to } = this.store;
    let prev = this.ruleId(0);
    for (let k = 1; k < n; k++) {
      const id = this.ruleId(k);
      if (from[id] !== to[prev] + 1 || this.source.charCodeAt(to[prev]) !== 0x0a) return this.texts().texts.join('\n');
      prev = id;
    }
    return this.source.slice(from[this.ruleId(0)], to[prev]);
  }

  lineNumbers(): number[] {
    const n = this.ruleCount;
    const lines = new Array<number>(n);
    for (let k = 0; k < n; k++) lines[k] = this.store.lines[this.ruleId(k)];
    return lines;
  }

  texts(): { texts: string[]; lines: number[] } {
    const n = this.ruleCount;
    const texts = new Array<string>(n);
    const lines = new Array<number>(n);
    for (let k = 0; k < n; k++) {
      texts[k] = this.ruleText(k);
      lines[k] = this.store.lines[this.ruleId(k)];
    }
    return { texts, lines };
  }

  /** The dump line of the rule at 0-based position k. */
  lineAt(k: number): number {
    return this.store.lines[this.ruleId(k)];
  }

  /** The `-j`/`-g` target of the rule at 0-based position k (null for none), as the parser read it. */
  targetAt(k: number): string | null {
    const t = this.store.targets[this.ruleId(k)];
    return t < 0 ? null : this.store.strings[t];
  }

  /** The address word of the NAT target of the rule at 0-based position k (given once), as the parser read it; null for none. */
  natToAt(k: number): string | null {
    return this.store.natTo(this.source, this.ruleId(k));
  }

  /** The dispatch keys the parser read for the rule at 0-based position k (single-host `-d`, single `--dport`). */
  dispatchAt(k: number): { dst: string | null; port: number | null } {
    const id = this.ruleId(k);
    const d = this.store.dsts[id];
    const p = this.store.dports[id];
    return { dst: d < 0 ? null : this.store.strings[d], port: p < 0 ? null : p };
  }

  /** The rule at 0-based position k, made alone (the chain's other rules stay unmade). */
  ruleAt(k: number): Rule {
    const made = this.extra?.made;
    if (made) return made[k];
    const s = this.store;
    const id = this.ruleId(k);
    return new TextRule(this.table, this.name, k + 1, s.lines[id], this.source.slice(s.from[id], s.to[id]), s.starts[id], this.family, s.counters?.get(id));
  }

  /** The text of the rule at 0-based position k. */
  ruleText(k: number): string {
    const id = this.ruleId(k);
    return this.source.slice(this.store.from[id], this.store.to[id]);
  }

  get rules(): readonly Rule[] {
    const made = this.extra?.made;
    if (made) return made;
    const n = this.ruleCount;
    const out = new Array<Rule>(n);
    for (let k = 0; k < n; k++) out[k] = this.ruleAt(k);
    return (this.more().made = out);
  }
}

/** The texts and dump lines of a chain's rules, without making Rule objects for a parsed chain. */
export function ruleTexts(c: Chain): { texts: string[]; lines: number[] } {
  if (c instanceof DumpChain) return c.texts();
  return { texts: c.rules.map((r) => r.text), lines: c.rules.map((r) => r.line) };
}

/**
 * A chain's rule texts joined by newlines. For a parsed chain whose rules stand on consecutive
 * lines of the dump (as iptables-save prints them) this is one slice of the dump, not a copy.
 */
export function chainText(c: Chain): string {
  return c instanceof DumpChain ? c.joinedText() : c.rules.map((r) => r.text).join('\n');
}

/** The `-j`/`-g` target of a chain's rule at 0-based position k (null for none), without making Rule objects for a parsed chain. */
export function ruleTargetAt(c: Chain, k: number): string | null {
  return c instanceof DumpChain ? c.targetAt(k) : c.rules[k].target?.name ?? null;
}

/**
 * The address word of a DNAT's `--to-destination` or an SNAT's `--to-source` (given once) of a
 * chain's rule at 0-based position k; null for none. Read without making Rule objects for a parsed chain.
 */
export function ruleNatToAt(c: Chain, k: number): string | null {
  if (c instanceof DumpChain) return c.natToAt(k);
  return natToOf(c.rules[k]);
}

/** The address word of a rule's DNAT or SNAT target, when given once. */
export function natToOf(rule: Pick<Rule, 'target'>): string | null {
  if (rule.target === undefined || !NAT_TARGETS.has(rule.target.name)) return null;
  const words = rule.target.options.filter((o) => o.name === 'to-destination' || o.name === 'to-source');
  return words.length === 1 ? words[0].args[0] ?? null : null;
}

/** The dump line of a chain's rule at 0-based position k (0 for a rule svcpath added). */
export function ruleLineAt(c: Chain, k: number): number {
  return c instanceof DumpChain ? c.lineAt(k) : c.rules[k].line;
}

/** What svcpath assumed in adding the chain's rule at 0-based position k (undefined for a rule of the dump). */
export function ruleAssumptionAt(c: Chain, k: number): string | undefined {
  return c instanceof DumpChain ? undefined : c.rules[k].synthesized;
}

/** A chain's rule at 0-based position k; for a parsed chain, made alone (its other rules stay unmade). */
export function ruleAt(c: Chain, k: number): Rule {
  return c instanceof DumpChain ? c.ruleAt(k) : c.rules[k];
}

/** The text of a chain's rule at 0-based position k. */
export function ruleTextAt(c: Chain, k: number): string {
  return c instanceof DumpChain ? c.ruleText(k) : c.rules[k].text;
}

/** The dump lines of a chain's rules, without making Rule objects or texts for a parsed chain. */
export function ruleLines(c: Chain): number[] {
  return c instanceof DumpChain ? c.lineNumbers() : c.rules.map((r) => r.line);
}

/** How many rules a chain has, without making Rule objects for a parsed chain. */
export function ruleCount(c: Chain): number {
  return c instanceof DumpChain ? c.ruleCount : c.rules.length;
}
