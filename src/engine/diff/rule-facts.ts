/**
 * What the diff needs to know about one rule, read from its text without building the full rule
 * model: the jump target, the destination host and port it is keyed by, its comment and a DNAT
 * destination. A 10,000-Service node has a quarter of a million rules per side, so the target is
 * found with two native string searches when it follows every quoted word (as iptables-save prints
 * it), and only the dispatch chains are split into words with the engine's lexer.
 */
import { lex, Words } from '../netfilter/lexer.ts';
import type { Chain } from '../netfilter/ast.ts';
import { chainText } from '../netfilter/rule.ts';
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

  get(text: string): RuleFacts {
    let f = this.facts.get(text);
    if (!f) {
      f = readFacts(text);
      this.facts.set(text, f);
    }
    return f;
  }
}

/**
 * The target of a rule, fast: when the last ` -j `/` -g ` comes after the last quote it cannot be
 * inside a quoted word, and iptables allows one target per rule; otherwise the rule is lexed.
 */
export function targetOf(text: string): string | null {
  const j = text.lastIndexOf(' -j ');
  const g = text.lastIndexOf(' -g ');
  const at = j > g ? j : g;
  if (at < 0) {
    if (text.indexOf('--jump') < 0 && text.indexOf('--goto') < 0) return null;
    return readFacts(text).target;
  }
  if (text.lastIndexOf('"') > at) return readFacts(text).target;
  const from = at + 4;
  const end = text.indexOf(' ', from);
  return text.slice(from, end < 0 ? text.length : end);
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

const TARGET_IN_TEXT = / -[jg] ([^ \n]+)/g;

/**
 * Calls `visit` with the target of every rule of a chain that has one, and where the rule's line
 * starts and ends in the joined text. Scanned in the joined text: a ` -j X` after the last quote of
 * its line cannot be inside a quoted word; lines where that is not so are lexed, and so are all
 * lines of a chain that uses the long forms `--jump`/`--goto`.
 */
export function eachTarget(t: ChainText, visit: (target: string, start: number, end: number) => void): void {
  const j = t.joined;
  if (j.indexOf('--jump') >= 0 || j.indexOf('--goto') >= 0) {
    let start = 0;
    while (start < j.length) {
      let end = j.indexOf('\n', start);
      if (end < 0) end = j.length;
      const target = targetOf(j.slice(start, end));
      if (target !== null) visit(target, start, end);
      start = end + 1;
    }
    return;
  }
  TARGET_IN_TEXT.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = TARGET_IN_TEXT.exec(j)) !== null) {
    const at = m.index;
    let end = j.indexOf('\n', at);
    if (end < 0) end = j.length;
    const start = j.lastIndexOf('\n', at) + 1;
    let quoted = false;
    for (let k = at + 4; k < end && !quoted; k++) quoted = j.charCodeAt(k) === 0x22;
    if (quoted) {
      const target = readFacts(j.slice(start, end)).target;
      if (target !== null) visit(target, start, end);
    } else {
      visit(m[1], start, end);
    }
    // One target per rule; and the visitor may have scanned another chain with this expression.
    TARGET_IN_TEXT.lastIndex = end;
  }
}

/** Every target of a chain's rules, with the rule text of each DNAT-like target. */
export function chainTargets(t: ChainText): { target: string; line: string | null }[] {
  const out: { target: string; line: string | null }[] = [];
  eachTarget(t, (target, start, end) => {
    out.push({ target, line: REWRITING_TARGETS.has(target) ? t.joined.slice(start, end) : null });
  });
  return out;
}
