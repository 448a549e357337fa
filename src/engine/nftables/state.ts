/**
 * What the nftables tracer carries through the hooks, and what a compiled rule is: the packet's
 * fields that expressions read and statements rewrite, and each rule as the ordered list of its
 * expressions, evaluated left to right as the kernel does (a statement before a failed match has
 * already run; a verdict ends the rule).
 */
import type { Addr, Protocol } from '../trace/packet.ts';
import type { NftHook } from './hooks.ts';
import type { NftRule } from './ast.ts';
import type { TakenElement } from '../trace/step-rule.ts';

/** conntrack's view of the packet: before conntrack has seen it (priority below −200) it is `invalid`. */
export type CtState = 'new' | 'untracked' | 'invalid';

export interface NftPacketState {
  src: Addr;
  dst: Addr;
  sport: number | null;
  dport: number;
  readonly proto: Protocol;
  mark: number;
  ctmark: number;
  ctState: CtState;
  /** The input interface's name; '' for a packet the node made (it has none); null when not known. */
  iif: string | null;
  /** The output interface's name; '' before routing; null when routing's answer is not known. */
  oif: string | null;
  /** Whether a NAT binding of each kind was made (the NAT core stops running nat chains then). */
  dnatDone: boolean;
  snatDone: boolean;
  /** Elements `add`/`update @set` statements put in dynamic sets during this trace: "set|key". */
  readonly added: Set<string>;
}

/** What the node is: its addresses (fib … type local) and its first address (redirect). */
export interface NftEnv {
  isLocal(a: Addr): boolean;
  readonly primary: Addr | null;
}

export type NftVerdict =
  | { readonly kind: 'accept' }
  | { readonly kind: 'drop' }
  | { readonly kind: 'reject'; readonly with?: string }
  | { readonly kind: 'return' }
  | { readonly kind: 'continue' }
  | { readonly kind: 'jump' | 'goto'; readonly chain: string; readonly target: ChainTarget };

/** The chain a jump or goto goes to, in the table of the rule; null when the table has no such chain. */
export interface ChainTarget {
  chain(): CompiledNftChain | null;
}

/**
 * What one expression of a rule tells the walker: go on to the next expression, stop because a
 * match failed, stop because a match cannot be decided (why), or a verdict.
 */
export type Flow =
  | 'next'
  | 'break'
  | { readonly unknown: string }
  /** `quiet`: the expression's own action text already says what the verdict does (vmap, NAT). */
  | { readonly verdict: NftVerdict; readonly quiet?: boolean };

/** What an expression may do besides answering: read the hook, draw, and say what it did. */
export interface RuleContext {
  readonly s: NftPacketState;
  readonly env: NftEnv;
  readonly hook: NftHook;
  /** One random draw of `numgen random mod modulus`; returns the value (before any offset). */
  draw(modulus: number): number;
  /** Adds to the step's action text ("mark set 0x4000", "vmap: … → goto …"). */
  act(text: string): void;
  note(text: string): void;
  /** A NAT statement ran: its kind, for the outcome. */
  nat(kind: 'dnat' | 'snat' | 'masquerade' | 'redirect', detail?: { ip: string | null; port: number | null }): void;
  /** An expression the tracer does not model ran as a statement: warn, naming the rule. */
  unmodelled(what: string): void;
  /** A verdict map gave the packet this element: the step says so. */
  took(element: TakenElement): void;
}

export type Item = (ctx: RuleContext) => Flow;

/** Where a rule stands in the input, for path steps and warnings. */
export interface RuleRef {
  /** `family name`, e.g. `ip kube-proxy`. */
  readonly table: string;
  readonly chain: string;
  /** 1-based position as `nft list ruleset` lists the chain. */
  readonly index: number;
  readonly line: number;
  readonly text: string;
  readonly handle?: number;
}

export interface CompiledNftRule {
  readonly ref: RuleRef;
  /** The parsed rule, which path steps carry (step-rule.ts). */
  readonly rule: NftRule;
  readonly items: readonly Item[];
}

export interface CompiledNftChain {
  readonly table: string;
  readonly name: string;
  readonly length: number;
  rule(i: number): CompiledNftRule;
  /** Base chains: the policy applied when the walk falls off the end. */
  readonly policy: 'accept' | 'drop' | null;
  readonly line: number;
}
