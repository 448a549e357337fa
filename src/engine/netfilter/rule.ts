/**
 * Rules as the parsers hand them out. A large dump has hundreds of thousands of rules, and
 * keeping every option of every rule as objects costs more in garbage collection than parsing
 * does, so a rule keeps its text and re-reads its options the first time something asks for
 * them. The text was fully read, and any syntax error reported, when the dump was parsed.
 */
import type { Cidr, Counters, Family, MatchModule, Negatable, Rule, TargetSpec } from './ast.ts';
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
