/**
 * The ruleset model shared by every dump format (iptables-save, iptables -S; later nftables and IPVS
 * are expected to lower into the same tables → chains → rules shape).
 *
 * Nodes are plain readonly data. Every rule keeps the table, chain, 1-based position in its chain,
 * the line it came from and its raw text, so that answers can point back at the input.
 */

export type Family = 'ipv4' | 'ipv6';
export type DumpFormat = 'iptables-save' | 'iptables-S';

/** A match or option that can be inverted with `!`. Negation is data, never a string prefix. */
export interface Negatable<T> {
  readonly negated: boolean;
  readonly value: T;
}

/** An address with its prefix length, normalised (`10.0.0.1` → `10.0.0.1/32`). */
export interface Cidr {
  readonly family: Family;
  readonly address: string;
  readonly prefix: number;
}

/** One `--option args…` of a match module or target, as written. */
export interface ModuleOption {
  readonly name: string;
  readonly negated: boolean;
  readonly args: readonly string[];
}

/** `-m NAME --opt …` (or a protocol's implicit module such as `tcp` after `-p tcp --dport 80`). */
export interface MatchModule {
  readonly module: string;
  readonly options: readonly ModuleOption[];
  readonly implicit: boolean;
}

/** `-j TARGET …` or `-g CHAIN`. */
export interface TargetSpec {
  readonly kind: 'jump' | 'goto';
  readonly name: string;
  readonly options: readonly ModuleOption[];
}

export interface Counters {
  readonly packets: string;
  readonly bytes: string;
}

export interface Rule {
  readonly table: string;
  readonly chain: string;
  /** 1-based position in its chain, as `iptables -L --line-numbers` counts. */
  readonly index: number;
  /** 1-based line of the input; 0 for a rule svcpath synthesised. */
  readonly line: number;
  /** The rule as it stood in the input (without counters), or as synthesised. */
  readonly text: string;
  readonly counters?: Counters;
  readonly protocol?: Negatable<string>;
  readonly source?: Negatable<Cidr>;
  readonly destination?: Negatable<Cidr>;
  readonly inInterface?: Negatable<string>;
  readonly outInterface?: Negatable<string>;
  readonly fragment?: Negatable<true>;
  readonly matches: readonly MatchModule[];
  readonly target?: TargetSpec;
  /** Set when svcpath added the rule to complete a fragment: says what was assumed. */
  readonly synthesized?: string;
}

export type Policy = 'ACCEPT' | 'DROP';

export interface Chain {
  readonly table: string;
  readonly name: string;
  readonly builtin: boolean;
  /** Policy of a built-in chain; null for user chains. */
  readonly policy: Policy | null;
  readonly counters?: Counters;
  /** Line of the declaration, 0 if the chain was only seen in rules or was synthesised. */
  readonly line: number;
  readonly rules: readonly Rule[];
  readonly synthesized?: string;
}

export interface Table {
  readonly name: string;
  readonly line: number;
  /** Chains in the order they were declared or first seen. */
  readonly chains: ReadonlyMap<string, Chain>;
  /** Every -j/-g target the table's rules name, when the parser recorded them. */
  readonly jumpTargets?: ReadonlySet<string>;
}

export type Severity = 'error' | 'warning' | 'info';

/** Something a parser or the tracer wants the user to know, located in the input where possible. */
export interface Diagnostic {
  readonly severity: Severity;
  readonly code: string;
  readonly message: string;
  readonly line?: number;
  readonly column?: number;
  readonly text?: string;
}

export interface Ruleset {
  readonly format: DumpFormat;
  readonly family: Family;
  /** Tables in input order. */
  readonly tables: ReadonlyMap<string, Table>;
  readonly diagnostics: readonly Diagnostic[];
  /** Rules svcpath added or would add to complete a fragment, with what was assumed. */
  readonly assumptions: readonly string[];
}

export const BUILTIN_CHAINS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  raw: ['PREROUTING', 'OUTPUT'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
});

export const TABLE_NAMES: readonly string[] = Object.freeze(['raw', 'mangle', 'nat', 'filter', 'security']);

export function isBuiltinChain(table: string, chain: string): boolean {
  return BUILTIN_CHAINS[table]?.includes(chain) ?? false;
}

/** The rule's first `-m module` match, or undefined. */
export function matchOf(rule: Pick<Rule, 'matches'>, module: string): MatchModule | undefined {
  return rule.matches.find((m) => m.module === module);
}

/** The first argument of option `name` (written `--name`) among `options`; undefined when the option is not given. */
export function optionArg(options: readonly ModuleOption[], name: string): string | undefined {
  return options.find((o) => o.name === name)?.args[0];
}

/** The target's option `name` (written `--name`), or undefined. */
export function targetOption(rule: Pick<Rule, 'target'>, name: string): ModuleOption | undefined {
  return rule.target?.options.find((o) => o.name === name);
}

/** The rule's comment (`-m comment --comment …`), its words joined as iptables joins them; null when it has none. */
export function commentOf(rule: Pick<Rule, 'matches'>): string | null {
  for (const m of rule.matches) {
    if (m.module !== 'comment') continue;
    const o = m.options.find((x) => x.name === 'comment');
    if (o) return o.args.join(' ');
  }
  return null;
}
