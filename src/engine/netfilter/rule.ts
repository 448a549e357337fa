/**
 * Rules as the parsers hand them out. A large dump has hundreds of thousands of rules, and
 * keeping every option of every rule as objects costs more in garbage collection than parsing
 * does, so a rule keeps its text and re-reads its options the first time something asks for
 * them. The text was fully read, and any syntax error reported, when the dump was parsed.
 */
import type { Chain, Cidr, Counters, Family, MatchModule, Negatable, Policy, Rule, TargetSpec } from './ast.ts';
import { lex, Words } from './lexer.ts';
import type { RuleBody } from './rule-parser.ts';
import { RuleReader } from './rule-parser.ts';

const words = new Words();
const readers: Record<Family, RuleReader> = { ipv4: new RuleReader(), ipv6: new RuleReader() };
readers.ipv4.family = 'ipv4';
readers.ipv6.family = 'ipv6';

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
    if (!this.cached) this.cached = readers[this.family].read(lex(this.text, this.line, 0, this.text, words), this.start, this.line, this.text);
    return this.cached;
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

  /** The same rule at another position (after svcpath inserted rules before it). */
  at(index: number): TextRule {
    return new TextRule(this.table, this.chain, index, this.line, this.text, this.start, this.family, this.counters, this.synthesized, this.cached);
  }
}

/**
 * A chain's rules while a dump is read: offsets into the dump and line numbers, in columns.
 * Nothing per rule survives as an object until something asks for the chain's rules.
 */
export class RuleColumns {
  from: number[] = [];
  to: number[] = [];
  lines: number[] = [];
  /** Word position where options start: 2 after `-A CHAIN`, 3 after `-I CHAIN n`. */
  starts: number[] = [];
  /** The `-j`/`-g` target, as the parser read it (null for a rule without one). */
  targets: (string | null)[] = [];
  /** A non-negated single-host `-d` (canonical address), else null: a dispatch key (compile.ts). */
  dsts: (string | null)[] = [];
  /** A non-negated single `--dport` of a tcp/udp/sctp match, else -1: the other dispatch key. */
  dports: number[] = [];
  counters: (Counters | undefined)[] | null = null;

  get length(): number {
    return this.from.length;
  }

  /** Appends a rule, or inserts it at `at` (0-based) for `-I`. */
  add(
    at: number, from: number, to: number, line: number, start: number,
    target: string | null, dst: string | null, dport: number, counters: Counters | undefined,
  ): void {
    if (counters && !this.counters) this.counters = new Array<Counters | undefined>(this.from.length).fill(undefined);
    if (at < 0 || at >= this.from.length) {
      this.from.push(from);
      this.to.push(to);
      this.lines.push(line);
      this.starts.push(start);
      this.targets.push(target);
      this.dsts.push(dst);
      this.dports.push(dport);
      this.counters?.push(counters);
      return;
    }
    this.from.splice(at, 0, from);
    this.to.splice(at, 0, to);
    this.lines.splice(at, 0, line);
    this.starts.splice(at, 0, start);
    this.targets.splice(at, 0, target);
    this.dsts.splice(at, 0, dst);
    this.dports.splice(at, 0, dport);
    this.counters?.splice(at, 0, counters);
  }

  clear(): void {
    this.from.length = 0;
    this.to.length = 0;
    this.lines.length = 0;
    this.starts.length = 0;
    this.targets.length = 0;
    this.dsts.length = 0;
    this.dports.length = 0;
    this.counters = null;
  }
}

/** A parsed chain whose Rule objects are made on first access to `rules`. */
export class DumpChain implements Chain {
  private made: Rule[] | null = null;

  constructor(
    readonly table: string,
    readonly name: string,
    readonly builtin: boolean,
    readonly policy: Policy | null,
    readonly line: number,
    readonly counters: Counters | undefined,
    private readonly source: string,
    private readonly columns: RuleColumns,
    private readonly family: Family,
  ) {}

  get ruleCount(): number {
    return this.made ? this.made.length : this.columns.length;
  }

  private joined: string | null = null;

  /** The rule texts joined by newlines, kept: diffs and checks compare chains by it. */
  joinedText(): string {
    if (this.joined !== null) return this.joined;
    if (this.made) return (this.joined = this.made.map((r) => r.text).join('\n'));
    const c = this.columns;
    if (c.length === 0) return (this.joined = '');
    for (let k = 1; k < c.length; k++) {
      if (c.from[k] !== c.to[k - 1] + 1 || this.source.charCodeAt(c.to[k - 1]) !== 0x0a) return (this.joined = this.texts().texts.join('\n'));
    }
    return (this.joined = this.source.slice(c.from[0], c.to[c.length - 1]));
  }

  /** Each rule's `-j`/`-g` target (null for none), as the parser read it. */
  targets(): readonly (string | null)[] {
    return this.made ? this.made.map((r) => r.target?.name ?? null) : this.columns.targets;
  }

  /**
   * The dispatch keys of every rule as the parser read them (single-host `-d`, single `--dport`),
   * or null once the rules are materialised.
   */
  dispatchKeys(): { readonly dsts: readonly (string | null)[]; readonly dports: readonly number[] } | null {
    return this.made ? null : this.columns;
  }

  /** The rule at 0-based position k, made alone (the chain's other rules stay unmade). */
  ruleAt(k: number): Rule {
    if (this.made) return this.made[k];
    const c = this.columns;
    return new TextRule(this.table, this.name, k + 1, c.lines[k], this.source.slice(c.from[k], c.to[k]), c.starts[k], this.family, c.counters?.[k]);
  }

  /** The text of the rule at 0-based position k. */
  ruleText(k: number): string {
    return this.made ? this.made[k].text : this.source.slice(this.columns.from[k], this.columns.to[k]);
  }

  texts(): { texts: string[]; lines: number[] } {
    if (this.made) return { texts: this.made.map((r) => r.text), lines: this.made.map((r) => r.line) };
    const c = this.columns;
    const texts = new Array<string>(c.length);
    for (let k = 0; k < c.length; k++) texts[k] = this.source.slice(c.from[k], c.to[k]);
    return { texts, lines: c.lines.slice() };
  }

  get rules(): readonly Rule[] {
    if (!this.made) {
      const c = this.columns;
      const out = new Array<Rule>(c.length);
      for (let k = 0; k < c.length; k++) {
        out[k] = new TextRule(this.table, this.name, k + 1, c.lines[k], this.source.slice(c.from[k], c.to[k]), c.starts[k], this.family, c.counters?.[k]);
      }
      this.made = out;
    }
    return this.made;
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

/** Each rule's `-j`/`-g` target (null for none), without making Rule objects for a parsed chain. */
export function ruleTargets(c: Chain): readonly (string | null)[] {
  return c instanceof DumpChain ? c.targets() : c.rules.map((r) => r.target?.name ?? null);
}

/** The text of a chain's rule at 0-based position k. */
export function ruleTextAt(c: Chain, k: number): string {
  return c instanceof DumpChain ? c.ruleText(k) : c.rules[k].text;
}

/** How many rules a chain has, without making Rule objects for a parsed chain. */
export function ruleCount(c: Chain): number {
  return c instanceof DumpChain ? c.ruleCount : c.rules.length;
}
