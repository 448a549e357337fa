/**
 * The parsed rule behind a path step (or a warning's rule reference), so that what reads a trace
 * (descriptions, affinity notes, the trace memo) takes the rule's comment, target and matches from
 * the rule itself instead of reading its text again.
 *
 * The rule travels as a private field stamped on the step (see Carrier): JSON, `assert.deepEqual`
 * and the API's serialisers see only the step's own fields, so answers are unchanged on the wire.
 * Copies made with spread or JSON lose it: whatever copies a step attaches the rule it stands for
 * there (see memo.ts).
 */
import type { Chain, Rule } from '../netfilter/ast.ts';
import { ruleAt } from '../netfilter/rule.ts';
import type { NftRule } from '../nftables/ast.ts';

/**
 * A constructor that returns the object it is given: the private fields of a subclass are then
 * added to that object. A private field is no property (JSON, Object.keys, spread, structured
 * clone and assert.deepEqual do not see it, and the object keeps its prototype), and adding one
 * to objects of a few shapes (object literals written field by field) costs what adding a
 * property costs, where Object.defineProperty would cost several times a step's making.
 */
class Carrier {
  constructor(o: object) {
    return o;
  }
}

/** Where a rule stands in a chain, for a rule read only when asked for. */
class RulePlace {
  constructor(readonly chain: Chain, readonly at: number) {}
}

/** The iptables rule of a step or rule reference. */
class IptablesStep extends Carrier {
  /** The rule, or where to find it: read when first asked for (answers moved by the memo). */
  #rule: Rule | RulePlace;

  constructor(step: object, rule: Rule | RulePlace) {
    super(step);
    this.#rule = rule;
  }

  static ruleOf(step: object): Rule | undefined {
    if (!(#rule in step)) return undefined;
    const r = step.#rule;
    if (r instanceof RulePlace) return (step.#rule = ruleAt(r.chain, r.at));
    return r;
  }
}

/** The element of a verdict map a step's rule took: its verdict, the verdict's chain, its comment. */
export interface TakenElement {
  readonly verdict: string;
  readonly chain?: string;
  readonly comment?: string;
}

/** The nftables rule of a step or rule reference, and the verdict-map element it took. */
class NftStep extends Carrier {
  readonly #rule: NftRule;
  readonly #taken: TakenElement | null;

  constructor(step: object, rule: NftRule, taken: TakenElement | null) {
    super(step);
    this.#rule = rule;
    this.#taken = taken;
  }

  static ruleOf(step: object): NftRule | undefined {
    return #rule in step ? step.#rule : undefined;
  }

  static takenOf(step: object): TakenElement | undefined {
    return #taken in step ? step.#taken ?? undefined : undefined;
  }
}

/** `step` (a new object, never one that carries a rule already) with `rule` attached; the same object. */
export function withRule<T extends object>(step: T, rule: Rule): T {
  new IptablesStep(step, rule);
  return step;
}

/** The iptables rule a step or rule reference stands for; undefined for a policy step or a copy made without it. */
/**
 * `step` with the rule at 0-based position `at` of `chain` attached, read only when ruleOf asks:
 * most answers the memo moves are never described, and making their rules would cost more than
 * moving them.
 */
export function withRuleAt<T extends object>(step: T, chain: Chain, at: number): T {
  new IptablesStep(step, new RulePlace(chain, at));
  return step;
}

export function ruleOf(step: object): Rule | undefined {
  return IptablesStep.ruleOf(step);
}

/** `step` (a new object) with the nftables rule it stands for, and the verdict-map element it took, attached; the same object. */
export function withNftRule<T extends object>(step: T, rule: NftRule, taken: TakenElement | null = null): T {
  new NftStep(step, rule, taken);
  return step;
}

/** The nftables rule a step or rule reference stands for; undefined for a policy step. */
export function nftRuleOf(step: object): NftRule | undefined {
  return NftStep.ruleOf(step);
}

/** The verdict-map element the step's rule took; undefined when it took none. */
export function takenElementOf(step: object): TakenElement | undefined {
  return NftStep.takenOf(step);
}
