/**
 * The nftables ruleset model: tables → chains → rules, plus named sets and maps, read from any of
 * the three forms nft speaks (`nft list ruleset` text, `nft -j list ruleset` JSON, `nft -f`
 * commands). It is its own type, apart from the iptables `Ruleset`: nft rules are ordered lists of
 * typed expressions, not option bags.
 *
 * Nodes are plain readonly data tagged by `kind`. Every rule keeps its table, chain, 1-based index
 * in its chain (the order `nft list ruleset` lists it), its handle when the input had one, its
 * source line and its text, so answers can point back at the input. Anything the model does not
 * describe is kept as `{ kind: 'unmodelled', text }`, never dropped. Negation and comparison
 * operators are data.
 */

import type { Diagnostic } from '../netfilter/ast.ts';

export type NftFamily = 'ip' | 'ip6' | 'inet' | 'arp' | 'bridge' | 'netdev';

export const NFT_FAMILIES: readonly NftFamily[] = Object.freeze(['ip', 'ip6', 'inet', 'arp', 'bridge', 'netdev']);

/** Which of nft's three forms the input was written in. */
export type NftSourceForm = 'list' | 'json' | 'commands';

export type NftHook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting' | 'ingress' | 'egress';

export type NftChainType = 'filter' | 'nat' | 'route';

export type NftPolicy = 'accept' | 'drop';

/** `type T hook H priority P; policy X;` of a base chain. */
export interface NftBaseChainSpec {
  readonly type: NftChainType;
  readonly hook: NftHook;
  /** The priority as a number, names (`dstnat`, `srcnat - 10`, `filter + 5`) resolved per family and hook. */
  readonly priority: number;
  /** The priority as written (`dstnat`, `-100`, `srcnat - 10`), for printing back. */
  readonly priorityText: string;
  /** The chain's policy; `accept` when the input did not say. */
  readonly policy: NftPolicy;
  /** `device "eth0"` / `devices = { … }` of netdev (and inet ingress) chains; empty otherwise. */
  readonly devices: readonly string[];
}

/** Key of a table in `NftRuleset.tables`, and how steps name it: `family name` (e.g. `ip kube-proxy`). */
export type NftTableKey = string;

/** `tableKey('ip', 'kube-proxy')` → `ip kube-proxy`. */
export function tableKey(family: NftFamily, name: string): NftTableKey {
  return `${family} ${name}`;
}

export interface NftRuleset {
  /** The form the input was written in. */
  readonly form: NftSourceForm;
  /** Tables in input order, keyed by `family name`. */
  readonly tables: ReadonlyMap<NftTableKey, NftTable>;
  /** True when the input carried rule handles (`nft -a`, JSON, or `handle N` in commands). */
  readonly hasHandles: boolean;
  readonly diagnostics: readonly Diagnostic[];
}

export interface NftTable {
  readonly kind: 'table';
  readonly family: NftFamily;
  readonly name: string;
  /** `family name`. */
  readonly key: NftTableKey;
  /** Line of the first declaration, 0 if the table was only named by other lines. */
  readonly line: number;
  readonly handle?: number;
  readonly comment?: string;
  /** `flags dormant` and the like, as written. */
  readonly flags: readonly string[];
  /** Chains in the order they were declared or first seen. */
  readonly chains: ReadonlyMap<string, NftChain>;
  /** Named sets and maps (nft keeps them in one namespace per table), in declaration order. */
  readonly sets: ReadonlyMap<string, NftSet>;
}

export interface NftChain {
  readonly kind: 'chain';
  /** `family name` of its table. */
  readonly table: NftTableKey;
  readonly name: string;
  /** Null for a regular chain (reached only by jump/goto/vmap). */
  readonly base: NftBaseChainSpec | null;
  readonly line: number;
  readonly handle?: number;
  readonly comment?: string;
  readonly rules: readonly NftRule[];
}

export interface NftRule {
  readonly kind: 'rule';
  readonly table: NftTableKey;
  readonly chain: string;
  /** 1-based position in its chain as `nft list ruleset` lists it. */
  readonly index: number;
  /** The kernel's handle, when the input had one. */
  readonly handle?: number;
  /** 1-based line of the input; 0 for JSON input (errors there name the JSON path instead). */
  readonly line: number;
  /** The rule's statements as written (list and command forms) or as printed (JSON form), without `# handle N`. */
  readonly text: string;
  readonly comment?: string;
  /** Matches and statements in order; a verdict, when present, is last. */
  readonly statements: readonly NftStatement[];
}

export interface NftSet {
  readonly kind: 'set';
  /** `map` when the set carries data (`type … : …`); a verdict map has `data.types = ['verdict']`. */
  readonly isMap: boolean;
  readonly table: NftTableKey;
  readonly name: string;
  readonly line: number;
  readonly handle?: number;
  readonly key: NftSetType;
  /** What a map maps to; absent for a plain set. */
  readonly data?: NftSetType;
  /** `interval`, `timeout`, `dynamic`, `constant`, … as written. */
  readonly flags: readonly string[];
  /** Default element timeout in milliseconds. */
  readonly timeoutMs?: number;
  readonly gcIntervalMs?: number;
  readonly size?: number;
  readonly policy?: string;
  readonly comment?: string;
  /** `auto-merge` was given. */
  readonly autoMerge?: boolean;
  /** Elements in the order the input gave them. */
  readonly elements: readonly NftSetElement[];
}

/** `type ipv4_addr . inet_proto . inet_service` or `typeof ip daddr . th dport`. */
export interface NftSetType {
  /** The datatype of each concatenated part (`ipv4_addr`, `inet_service`, `verdict`, …), when declared with `type`. */
  readonly types?: readonly string[];
  /** The expression of each part, when declared with `typeof`. */
  readonly typeof?: readonly NftExpr[];
  /** The declaration as written after `type`/`typeof` (`ipv4_addr . inet_service`), for printing back. */
  readonly text: string;
}

export interface NftSetElement {
  /** A literal, prefix, range or concatenation. */
  readonly key: NftExpr;
  /** For maps: the data (a literal, concatenation, or a verdict for verdict maps). */
  readonly value?: NftExpr;
  readonly timeoutMs?: number;
  readonly expiresMs?: number;
  readonly comment?: string;
  /** Line the element was written on (0 when not known). */
  readonly line: number;
}

/**
 * Comparison of a relational expression. `in` is nft's flag test (`ct state established,related`:
 * true when any of the given bits is set; JSON `"op": "in"`); a match written without an operator is
 * `in` on bitmask selectors (ct state, ct status, tcp flags) and when the right side is a comma list,
 * and `==` otherwise, as nft itself reads it.
 */
export type NftOperator = '==' | '!=' | '<' | '>' | '<=' | '>=' | 'in';

export type NftBinaryOp = '&' | '|' | '^' | '<<' | '>>';

/** The left- and right-hand sides of matches, set keys and statement arguments. */
export type NftExpr =
  | NftPayloadExpr
  | NftMetaExpr
  | NftCtExpr
  | NftFibExpr
  | NftNumgenExpr
  | NftConcatExpr
  | NftBinaryExpr
  | NftLiteral
  | NftPrefix
  | NftRange
  | NftAnonymousSet
  | NftSetReference
  | NftMapLookup
  | NftListExpr
  | NftVerdictExpr
  | NftUnmodelled;

/** `ip saddr`, `tcp dport`, `th dport`, `ip6 daddr`, … */
export interface NftPayloadExpr {
  readonly kind: 'payload';
  readonly protocol: string;
  readonly field: string;
}

/** `meta l4proto`, `meta mark` (also written `mark`), `iifname`, `oifname`, `meta nfproto`, … */
export interface NftMetaExpr {
  readonly kind: 'meta';
  readonly key: string;
}

/** `ct state`, `ct status`, `ct mark`, `ct original ip daddr`, … */
export interface NftCtExpr {
  readonly kind: 'ct';
  readonly key: string;
  readonly direction?: 'original' | 'reply';
}

/** `fib saddr type`, `fib daddr . iif oif`, … */
export interface NftFibExpr {
  readonly kind: 'fib';
  /** `saddr`, `daddr`, `mark`, `iif`, `oif`. */
  readonly flags: readonly string[];
  /** `type`, `oif`, `oifname`. */
  readonly result: string;
}

/** `numgen random mod N [offset O]` and `numgen inc mod N`. */
export interface NftNumgenExpr {
  readonly kind: 'numgen';
  readonly mode: 'random' | 'inc';
  readonly modulus: number;
  readonly offset: number;
}

/** `a . b . c`. */
export interface NftConcatExpr {
  readonly kind: 'concat';
  readonly parts: readonly NftExpr[];
}

/** `mark and 0x4000`, `mark or 0x4000`, `mark xor 0x4000` (written `&`, `|`, `^` too). */
export interface NftBinaryExpr {
  readonly kind: 'binary';
  readonly op: NftBinaryOp;
  readonly left: NftExpr;
  readonly right: NftExpr;
}

/**
 * A constant as written: an address, a number, a symbol (`tcp`, `new`, `local`), an interface name.
 * Integers are given in decimal (`0x00004000` → `16384`) so every form reads the same; quoted
 * strings lose their quotes and set `quoted`. Its meaning depends on the other side of the match.
 */
export interface NftLiteral {
  readonly kind: 'literal';
  readonly text: string;
  readonly quoted?: boolean;
}

/** `10.0.0.0/8`. */
export interface NftPrefix {
  readonly kind: 'prefix';
  readonly address: string;
  readonly length: number;
}

/** `1000-2000`, `10.0.0.1-10.0.0.9`. */
export interface NftRange {
  readonly kind: 'range';
  readonly low: NftExpr;
  readonly high: NftExpr;
}

/** `{ a, b, c }` in a rule, for a match or a vmap/map. */
export interface NftAnonymousSet {
  readonly kind: 'anonymous-set';
  readonly elements: readonly NftSetElement[];
}

/** `@name`. */
export interface NftSetReference {
  readonly kind: 'set-ref';
  readonly name: string;
}

/** `KEY map @m` / `KEY map { … }`: the data the key maps to (e.g. in `dnat to ip daddr map { … }`). */
export interface NftMapLookup {
  readonly kind: 'map';
  readonly key: NftExpr;
  readonly map: NftSetReference | NftAnonymousSet;
}

/** `established,related`: a comma list on the right of a flag match. */
export interface NftListExpr {
  readonly kind: 'list';
  readonly items: readonly NftExpr[];
}

export type NftVerdictName = 'accept' | 'drop' | 'return' | 'continue' | 'jump' | 'goto' | 'queue';

/** A verdict as data: the value of a verdict map element, and the body of a verdict statement. */
export interface NftVerdictExpr {
  readonly kind: 'verdict';
  readonly verdict: NftVerdictName;
  /** Chain of `jump`/`goto`. */
  readonly target?: string;
}

/** Anything the model does not describe, kept as written. */
export interface NftUnmodelled {
  readonly kind: 'unmodelled';
  readonly text: string;
}

export type NftStatement =
  | NftMatch
  | NftVerdictStatement
  | NftVmapStatement
  | NftCounterStatement
  | NftLimitStatement
  | NftLogStatement
  | NftNotrackStatement
  | NftMangleStatement
  | NftNatStatement
  | NftRejectStatement
  | NftSetUpdateStatement
  | NftUnmodelled;

/** `LEFT [op] RIGHT`: `ip saddr != 10.0.0.0/8`, `ct state new`, `mark and 0x4000 == 0`. */
export interface NftMatch {
  readonly kind: 'match';
  readonly left: NftExpr;
  readonly op: NftOperator;
  readonly right: NftExpr;
}

/** `accept`, `drop`, `return`, `continue`, `jump C`, `goto C`. */
export interface NftVerdictStatement {
  readonly kind: 'verdict';
  readonly verdict: NftVerdictName;
  readonly target?: string;
}

/** `KEY vmap @m` / `KEY vmap { k : verdict, … }`. */
export interface NftVmapStatement {
  readonly kind: 'vmap';
  readonly key: NftExpr;
  readonly map: NftSetReference | NftAnonymousSet;
}

/** `counter [packets N bytes M]`. Counts are decimal strings (they can pass 2^53). */
export interface NftCounterStatement {
  readonly kind: 'counter';
  readonly packets?: string;
  readonly bytes?: string;
}

/** `limit rate [over] N/unit [burst B packets|bytes]`. */
export interface NftLimitStatement {
  readonly kind: 'limit';
  readonly rate: number;
  /** `packets`, or a byte unit (`bytes`, `kbytes`, `mbytes`). */
  readonly unit: string;
  readonly per: string;
  readonly over: boolean;
  readonly burst?: number;
  readonly burstUnit?: string;
}

/** `log [prefix "…"] [level L] [group G] …`. */
export interface NftLogStatement {
  readonly kind: 'log';
  readonly prefix?: string;
  readonly level?: string;
  readonly group?: number;
  /** Options beyond prefix/level/group, as written (e.g. `flags all`). */
  readonly more?: string;
}

export interface NftNotrackStatement {
  readonly kind: 'notrack';
}

/** `meta mark set EXPR`, `ct mark set EXPR`, `meta nftrace set 1`, …: writes `target`. */
export interface NftMangleStatement {
  readonly kind: 'mangle';
  readonly target: NftExpr;
  readonly value: NftExpr;
}

/** `dnat [ip|ip6] to ADDR[:PORT]`, `snat to …`, `masquerade [to :PORT]`, `redirect [to :PORT]`. */
export interface NftNatStatement {
  readonly kind: 'nat';
  readonly type: 'dnat' | 'snat' | 'masquerade' | 'redirect';
  /** `ip`/`ip6` as written after dnat/snat in inet tables. */
  readonly family?: 'ip' | 'ip6';
  readonly address?: NftExpr;
  readonly port?: NftExpr;
  /** `fully-random`, `random`, `persistent`. */
  readonly flags: readonly string[];
}

/** `reject [with icmp|icmpv6|icmpx type T | with tcp reset]`. */
export interface NftRejectStatement {
  readonly kind: 'reject';
  readonly with?: 'icmp' | 'icmpv6' | 'icmpx' | 'tcp reset';
  readonly code?: string;
}

/** `update @set { KEY [timeout T] }`, `add @set { … }`, `delete @set { … }`. */
export interface NftSetUpdateStatement {
  readonly kind: 'set-update';
  readonly op: 'add' | 'update' | 'delete';
  readonly set: string;
  readonly key: NftExpr;
  readonly timeoutMs?: number;
}

/**
 * Priority names per family and hook, as nft resolves them (`nft describe`; the netdev and bridge
 * families use their own values).
 */
export function standardPriority(family: NftFamily, name: string): number | undefined {
  if (family === 'bridge') {
    return ({ dstnat: -300, filter: -200, out: 100, srcnat: 300 } as Record<string, number>)[name];
  }
  return ({ raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 } as Record<string, number>)[name];
}
