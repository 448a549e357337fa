/**
 * What the diff needs to know about one rule: the jump target, the destination host and port it is
 * keyed by, its comment and a DNAT destination, taken from the parsed rule. A 10,000-Service node
 * has a quarter of a million rules per side, so jump targets come from what the parser kept, and
 * only the rules the diff looks into are read as rules (each distinct text once: rule bodies are
 * shared, netfilter/rule.ts).
 */
import type { Chain, Rule } from '../netfilter/ast.ts';
import { commentOf } from '../netfilter/ast.ts';
import { dispatchHost } from '../netfilter/dispatch.ts';
import { chainText, natToOf, ruleAt, ruleCount, ruleNatToAt, ruleTargetAt, ruleTextAt } from '../netfilter/rule.ts';
import { readNatAddress } from '../netfilter/values.ts';
import { canonicalAddress } from '../net/address.ts';
import { ownCopy } from '../text.ts';

export interface RuleFacts {
  /** The `-j`/`-g` target, or null for a rule without one. */
  readonly target: string | null;
  /** A non-negated `-d` naming a single host (/32, /128), canonical; null otherwise. */
  readonly dst: string | null;
  /** A non-negated single `--dport`; null otherwise. */
  readonly dport: number | null;
  /** A non-negated `-p`, lower case; null otherwise. */
  readonly protocol: string | null;
  /** The comment (`-m comment --comment`). */
  readonly comment: string | null;
  /** `-m addrtype --dst-type LOCAL` (the NodePort form). */
  readonly dstTypeLocal: boolean;
  /** Where a DNAT rule sends to, as "ip|port" (dnatKey); null for other rules. */
  readonly dnat: string | null;
}

/** The host of a `-d` when it names exactly one address, canonical. */
function hostOf(rule: Rule): string | null {
  const host = dispatchHost(rule.destination);
  return host === null ? null : canonicalAddress(host);
}

/** The port of a single `--dport` (of any match), null when there is none, several, a range or a negation. */
function dportOf(rule: Rule): number | null {
  let port: number | null = null;
  let seen = 0;
  for (const m of rule.matches) {
    for (const o of m.options) {
      if (o.name !== 'dport' && o.name !== 'destination-port') continue;
      seen++;
      const arg = o.args[0];
      port = !o.negated && arg !== undefined && /^\d+$/.test(arg) ? Number(arg) : null;
    }
  }
  // A rule that names a port twice is not keyed: it is compared whole.
  return seen === 1 ? port : null;
}

/** Reads the facts of a parsed rule. */
export function readFacts(rule: Rule): RuleFacts {
  const target = rule.target?.name ?? null;
  const p = rule.protocol;
  return {
    target,
    dst: hostOf(rule),
    dport: dportOf(rule),
    protocol: p !== undefined && !p.negated ? p.value.toLowerCase() : null,
    comment: commentOf(rule),
    dstTypeLocal: rule.matches.some((m) => m.options.some((o) => o.name === 'dst-type' && !o.negated && o.args[0] === 'LOCAL')),
    dnat: dnatKey(rule),
  };
}

/** Facts of rules, read once per distinct text for both snapshots of a diff. */
export class FactsCache {
  private readonly facts = new Map<string, RuleFacts>();

  get size(): number {
    return this.facts.size;
  }

  /** The facts of a chain's rule at 0-based position k (`text`: its text, when the caller has it). */
  get(c: Chain, k: number, text = ruleTextAt(c, k)): RuleFacts {
    let f = this.facts.get(text);
    if (!f) {
      f = readFacts(ruleAt(c, k));
      this.facts.set(text, f);
    }
    return f;
  }
}

/** Targets that rewrite the destination in a way the diff reads (DNAT) or cannot follow (the others). */
export const REWRITING_TARGETS: ReadonlySet<string> = new Set(['DNAT', 'REDIRECT', 'NETMAP', 'TPROXY', 'TEE']);

/**
 * The `ip:port` a DNAT rule sends to, as a key "ip|port"; null when the rule's translation is not a
 * single address and port (ranges, no port, several translations, another rewriting target).
 */
export function dnatKey(rule: Rule): string | null {
  return rule.target?.name === 'DNAT' ? natKey(natToOf(rule)) : null;
}

/** dnatKey of a chain's rule at 0-based position k, from what the parser kept (no Rule is made for a parsed chain). */
export function dnatKeyAt(c: Chain, k: number): string | null {
  return ruleTargetAt(c, k) === 'DNAT' ? natKey(ruleNatToAt(c, k)) : null;
}

/**
 * natKey by address word: the same endpoints recur on every node and in both snapshots. Keys are
 * copies (the parser's words are cut from the dump); emptied when full.
 */
const natKeys = new Map<string, string | null>();
const NAT_KEYS_KEPT = 100_000;

/** "ip|port" of a NAT address word naming one address and one port, else null. */
function natKey(word: string | null): string | null {
  if (word === null) return null;
  let key = natKeys.get(word);
  if (key === undefined) {
    const to = readNatAddress(word);
    const ip = to.ip === null || to.port === null || to.range || to.serviceName ? null : canonicalAddress(to.ip);
    key = ip === null ? null : `${ip}|${to.port}`;
    if (natKeys.size >= NAT_KEYS_KEPT) natKeys.clear();
    natKeys.set(ownCopy(word), key);
  }
  return key;
}

/** A chain's rule texts, and the same joined by newlines (compared and scanned as one string). */
export interface ChainText {
  readonly texts: readonly string[];
  readonly joined: string;
}

/** Rule texts per chain, read once per diff for the frontends, the signatures and the rule diff. */
export class ChainTexts {
  private readonly memo = new Map<Chain, ChainText>();

  /** The joined text alone (a parsed chain keeps it; nothing is made per chain). */
  joined(c: Chain): string {
    return chainText(c);
  }

  of(c: Chain): ChainText {
    let t = this.memo.get(c);
    if (!t) {
      // The joined text is a slice of the dump; the list of texts is made only when asked for.
      const joined = chainText(c);
      let texts: readonly string[] | null = null;
      t = { joined, get texts() { return (texts ??= joined === '' ? [] : joined.split('\n')); } };
      this.memo.set(c, t);
    }
    return t;
  }
}

/**
 * Every target of a chain's rules, with where each DNAT sends to (dnatKey), as the parser read them.
 */
export function chainTargets(c: Chain): { target: string; dnat: string | null }[] {
  const out: { target: string; dnat: string | null }[] = [];
  const n = ruleCount(c);
  for (let k = 0; k < n; k++) {
    const target = ruleTargetAt(c, k);
    if (target !== null) out.push({ target, dnat: target === 'DNAT' ? natKey(ruleNatToAt(c, k)) : null });
  }
  return out;
}
