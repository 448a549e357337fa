/**
 * What the diff needs to know about one rule, read from its text without building the full rule
 * model: the jump target, the destination host and port it is keyed by, its comment and a DNAT
 * destination. A 10,000-Service node has a quarter of a million rules per side, so jump targets
 * come from what the parser kept, and only the rules the diff looks into are split into words
 * with the engine's lexer.
 */
import { lex, Words } from '../netfilter/lexer.ts';
import type { Chain } from '../netfilter/ast.ts';
import { chainText, ruleCount, ruleTargetAt, ruleTextAt } from '../netfilter/rule.ts';
import { canonicalAddress } from '../net/address.ts';

export interface RuleFacts {
  /** The `-j`/`-g` target, or null for a rule without one. */
  readonly target: string | null;
  /** A non-negated `-d` naming a single host (/32, /128), canonical; null otherwise. */
  readonly dst: string | null;
  /** A non-negated single `--dport`; null otherwise. */
  readonly dport: number | null;
  /** A non-negated `-p`, lower case; null otherwise. */
  readonly protocol: string | null;
  /** The first `--comment`, unquoted. */
  readonly comment: string | null;
  /** `-m addrtype --dst-type LOCAL` (the NodePort form). */
  readonly dstTypeLocal: boolean;
  /** Non-negated `-s` networks, as written. */
  readonly sources: readonly string[];
}

const words = new Words();

/** The host of a `-d` argument when it names exactly one address. */
function hostOf(arg: string): string | null {
  const slash = arg.indexOf('/');
  const addr = slash < 0 ? arg : arg.slice(0, slash);
  const prefix = slash < 0 ? null : arg.slice(slash + 1);
  const canonical = canonicalAddress(addr);
  if (canonical === null) return null;
  const full = canonical.includes(':') ? '128' : '32';
  if (prefix !== null && prefix !== full && prefix !== (full === '32' ? '255.255.255.255' : '')) return null;
  return canonical;
}

/** Reads every fact of a rule with the engine's lexer. */
export function readFacts(text: string): RuleFacts {
  const w = lex(text, 0, 0, text, words);
  let target: string | null = null;
  let dst: string | null = null;
  let dstSeen = 0;
  let dport: number | null = null;
  let dportSeen = 0;
  let protocol: string | null = null;
  let comment: string | null = null;
  let dstTypeLocal = false;
  const sources: string[] = [];
  for (let i = 0; i < w.count; i++) {
    const negated = i > 0 && w.isBang(i - 1);
    if (!w.isOption(i)) continue;
    const name = w.text(i)!;
    const arg = w.text(i + 1);
    switch (name) {
      case '-j':
      case '--jump':
      case '-g':
      case '--goto':
        target = arg ?? null;
        break;
      case '-d':
      case '--destination':
      case '--dst':
        dstSeen++;
        dst = !negated && arg !== undefined ? hostOf(arg) : null;
        break;
      case '--dport':
      case '--destination-port':
        dportSeen++;
        dport = !negated && arg !== undefined && /^\d+$/.test(arg) ? Number(arg) : null;
        break;
      case '-p':
      case '--protocol':
        protocol = !negated && arg !== undefined ? arg.toLowerCase() : null;
        break;
      case '--comment':
        if (comment === null && arg !== undefined) comment = arg;
        break;
      case '--dst-type':
        if (!negated && arg === 'LOCAL') dstTypeLocal = true;
        break;
      case '-s':
      case '--source':
      case '--src':
        if (!negated && arg !== undefined) sources.push(arg);
        break;
      default:
        break;
    }
  }
  // A rule that names a destination or port twice is not keyed: it is compared whole.
  if (dstSeen !== 1) dst = null;
  if (dportSeen !== 1) dport = null;
  return { target, dst, dport, protocol, comment, dstTypeLocal, sources };
}

/** Facts of rule texts, read once per distinct text for both snapshots of a diff. */
export class FactsCache {
  private readonly facts = new Map<string, RuleFacts>();

  get size(): number {
    return this.facts.size;
  }

  get(text: string): RuleFacts {
    let f = this.facts.get(text);
    if (!f) {
      f = readFacts(text);
      this.facts.set(text, f);
    }
    return f;
  }
}

/** Targets that rewrite the destination in a way the diff reads (DNAT) or cannot follow (the others). */
export const REWRITING_TARGETS: ReadonlySet<string> = new Set(['DNAT', 'REDIRECT', 'NETMAP', 'TPROXY', 'TEE']);

/**
 * The `ip:port` a DNAT rule sends to, as a key "ip|port"; null when the rule's translation is not a
 * single address and port (ranges, no port, another rewriting target).
 */
export function dnatKey(text: string): string | null {
  // The translation follows the target, which follows every quoted word: search from the end.
  const at = text.lastIndexOf(' --to-destination ');
  if (at < 0 || text.lastIndexOf('"') > at) return null;
  const m = /^ --to-destination (\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)(?: |$)/.exec(text.slice(at));
  if (!m) return null;
  const ip = canonicalAddress(m[1].replace(/^\[|\]$/g, ''));
  return ip === null ? null : `${ip}|${m[2]}`;
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
 * Every target of a chain's rules, as the parser read them, with the rule text of each
 * destination-rewriting target.
 */
export function chainTargets(c: Chain): { target: string; line: string | null }[] {
  const out: { target: string; line: string | null }[] = [];
  const n = ruleCount(c);
  for (let k = 0; k < n; k++) {
    const target = ruleTargetAt(c, k);
    if (target !== null) out.push({ target, line: REWRITING_TARGETS.has(target) ? ruleTextAt(c, k) : null });
  }
  return out;
}
