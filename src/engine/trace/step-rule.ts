/**
 * The parsed rule behind a path step (or a warning's rule reference), so that what reads a trace
 * (descriptions, affinity notes, the trace memo) takes the rule's comment, target and matches from
 * the rule itself instead of reading its text again.
 *
 * The rule travels as a non-enumerable property under a symbol: JSON, `assert.deepEqual` and the
 * API's serialisers see only the step's own fields, so answers are unchanged on the wire. Copies
 * made with spread or JSON lose it: whatever copies a step attaches the rule it stands for there
 * (see memo.ts).
 */
import type { Rule } from '../netfilter/ast.ts';
import type { NftRule } from '../nftables/ast.ts';

const RULE = Symbol('rule');
const NFT_RULE = Symbol('nft rule');

/** `step` with `rule` attached; the same object, returned for use in expressions. */
export function withRule<T extends object>(step: T, rule: Rule): T {
  Object.defineProperty(step, RULE, { value: rule });
  return step;
}

/** The iptables rule a step or rule reference stands for; undefined for a policy step or a copy made without it. */
export function ruleOf(step: object): Rule | undefined {
  return (step as { [RULE]?: Rule })[RULE];
}

/** The element of a verdict map a step's rule took: its verdict, the verdict's chain, its comment. */
export interface TakenElement {
  readonly verdict: string;
  readonly chain?: string;
  readonly comment?: string;
}

interface NftStepRule {
  readonly rule: NftRule;
  readonly taken: TakenElement | null;
}

/** `step` with the nftables rule it stands for (and the verdict-map element it took) attached; the same object. */
export function withNftRule<T extends object>(step: T, rule: NftRule, taken: TakenElement | null = null): T {
  Object.defineProperty(step, NFT_RULE, { value: { rule, taken } satisfies NftStepRule });
  return step;
}

/** The nftables rule a step or rule reference stands for; undefined for a policy step. */
export function nftRuleOf(step: object): NftRule | undefined {
  return (step as { [NFT_RULE]?: NftStepRule })[NFT_RULE]?.rule;
}

/** The verdict-map element the step's rule took; undefined when it took none. */
export function takenElementOf(step: object): TakenElement | undefined {
  return (step as { [NFT_RULE]?: NftStepRule })[NFT_RULE]?.taken ?? undefined;
}
