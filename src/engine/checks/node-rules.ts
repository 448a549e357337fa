/**
 * A node's rules as the checks read them: kube-proxy's chains by name, who jumps where, which
 * endpoint each KUBE-SEP chain DNATs to, and which rules name a Service port in their comment.
 * Built once per ruleset and shared by the checks (the ruleset is immutable).
 */
import { endpointString, splitChainName } from '../kube/chain-names.ts';
import type { ChainKind } from '../kube/chain-names.ts';
import { parseServicePortName } from '../kube/describe.ts';
import { canonicalIP } from '../kube/model.ts';
import type { Chain, Family, Rule, Ruleset } from '../netfilter/ast.ts';
import { commentOf } from '../netfilter/ast.ts';
import { chainText, DumpChain, TextRule, ruleAt, ruleCount, ruleNatToAt, ruleTargetAt } from '../netfilter/rule.ts';
import { readNatAddress } from '../netfilter/values.ts';
import { quantizeProbability, SCALE } from '../trace/probability.ts';
import { requireIptables } from '../rules.ts';
import { ownCopy } from '../text.ts';
import type { AuditNode, FindingRule } from './types.ts';

/** The rule as a Finding lists it. */
export function ruleRef(r: Rule): FindingRule {
  return { table: r.table, chain: r.chain, index: r.index, rule: r.text };
}

/** A chain that has no rule to show: the chain itself (index 0). */
export function chainRef(table: string, chain: string): FindingRule {
  return { table, chain, index: 0, rule: `-N ${chain}` };
}

/** Unique by table, chain and index, in first-seen order. */
export function uniqueRefs(refs: Iterable<FindingRule>): FindingRule[] {
  const seen = new Map<string, FindingRule>();
  for (const r of refs) {
    const key = `${r.table}|${r.chain}|${r.index}|${r.rule}`;
    if (!seen.has(key)) seen.set(key, r);
  }
  return [...seen.values()];
}

/** `--dport N` of the rule's protocol match, or null. */
export function dportOf(r: Rule): number | null {
  for (const m of r.matches) {
    for (const o of m.options) {
      if ((o.name === 'dport' || o.name === 'destination-port') && !o.negated && /^\d+$/.test(o.args[0] ?? '')) return Number(o.args[0]);
    }
  }
  return null;
}

/** The endpoint a DNAT rule translates to. */
export interface DnatTarget {
  readonly ip: string;
  readonly port: number | null;
  /** "ip:port" as kube-proxy writes endpoints ("ip" alone when the rule keeps the port). */
  readonly key: string;
  readonly rule: Rule;
}

/** A rule of a Service chain that sends to another chain (an endpoint, or a policy chain). */
export interface ChainJump {
  readonly rule: Rule;
  readonly target: string;
  readonly kind: ChainKind | null;
  /** `-m recent --rcheck|--update`: session affinity, taken only by clients already pinned. */
  readonly affinity: { readonly name: string; readonly seconds: number | null } | null;
  /** The kernel's k of `-m statistic --mode random --probability p` (k/2^31), 2^31 without one. */
  readonly k: number;
  /** Matches the source (`-s`, `--src-type`): kube-proxy's special paths for pod and node traffic. */
  readonly bySource: boolean;
  /** Other matches than comment, statistic and recent. */
  readonly conditional: boolean;
}

function readJump(r: Rule): ChainJump | null {
  const target = r.target?.name;
  if (!target) return null;
  let affinity: ChainJump['affinity'] = null;
  let k = SCALE;
  let bySource = r.source !== undefined && !r.source.negated;
  let conditional = r.destination !== undefined || r.protocol !== undefined || r.inInterface !== undefined || r.outInterface !== undefined;
  for (const m of r.matches) {
    if (m.module === 'comment') continue;
    if (m.module === 'statistic') {
      const p = m.options.find((o) => o.name === 'probability');
      if (p) {
        const q = quantizeProbability(Number(p.args[0]));
        k = p.negated ? SCALE - q : q;
      }
      continue;
    }
    if (m.module === 'recent') {
      if (m.options.some((o) => o.name === 'rcheck' || o.name === 'update')) {
        const name = m.options.find((o) => o.name === 'name')?.args[0] ?? 'DEFAULT';
        const seconds = m.options.find((o) => o.name === 'seconds')?.args[0];
        affinity = { name, seconds: seconds !== undefined && /^\d+$/.test(seconds) ? Number(seconds) : null };
      }
      continue;
    }
    if (m.module === 'addrtype' && m.options.some((o) => o.name === 'src-type' && !o.negated)) bySource = true;
    conditional = true;
  }
  if (r.source !== undefined) conditional = true;
  return { rule: r, target, kind: splitChainName(target)?.kind ?? null, affinity, k, bySource, conditional };
}

/** What the checks read of a chain: the rules that send to another chain, and where it DNATs. */
interface Readings {
  readonly jumps: readonly ChainJump[];
  readonly dnat: DnatTarget | null;
}
/** A chain text's readings made so far. */
type KeptReadings = { -readonly [K in keyof Readings]?: Readings[K] };

/**
 * What the checks read of a chain depends on its text alone (the text names the chain, and each
 * rule's position in it), so a chain of the same text on another node or in another version is
 * read once: its jumps (unfiltered: whether a target exists is each node's question) and its DNAT.
 * The rules kept are copies of the texts, so no dump stays alive; their lines are the first
 * reader's, which findings do not show. Long chains (KUBE-SERVICES) differ between nodes and are
 * not kept; the map is emptied when full (CHAIN_TEXT_CHARS_KEPT).
 */
const byChainText = new Map<string, KeptReadings>();
/**
 * The characters of the texts kept, at most: each is held about twice (the key and the rules'
 * copies; their parses are shared with every reader, netfilter/rule.ts), one byte a character,
 * so some 64 MB. A 2,000-Service node's Service and endpoint chains are about 5.6 M characters.
 */
const CHAIN_TEXT_CHARS_KEPT = 32_000_000;
const LONGEST_KEPT_TEXT = 16 * 1024;
let keptChars = 0;

/** Lets go of the chain readings kept (views made already keep theirs). */
export function forgetChainReadings(): void {
  byChainText.clear();
  keptChars = 0;
}

/** The entry of a parsed chain short enough to be kept, made on first use; null otherwise. */
function readingsOf(c: Chain): KeptReadings | null {
  if (!(c instanceof DumpChain)) return null;
  const text = chainText(c);
  if (text.length > LONGEST_KEPT_TEXT) return null;
  let hit = byChainText.get(text);
  if (!hit) {
    if (keptChars + text.length > CHAIN_TEXT_CHARS_KEPT) {
      byChainText.clear();
      keptChars = 0;
    }
    keptChars += text.length;
    byChainText.set(ownCopy(text), (hit = {}));
  }
  return hit;
}

/** A rule of a parsed chain that outlives its dump. */
function keptRule(c: Chain, k: number): Rule {
  const r = ruleAt(c, k);
  return r instanceof TextRule ? r.ownCopy() : r;
}

/** What `read` gives of chain `c`, read once per chain text when the chain's readings are kept (with copies of its rules). */
function readOnce<K extends keyof Readings>(c: Chain, what: K, read: (c: Chain, rule: (k: number) => Rule) => Readings[K]): Readings[K] {
  const kept = readingsOf(c);
  if (!kept) return read(c, (k) => ruleAt(c, k));
  if (!(what in kept)) kept[what] = read(c, (k) => keptRule(c, k));
  return kept[what] as Readings[K];
}

/** The rules of a chain that send to another chain, each read for kube-proxy's meaning; `rule` makes the rule at a position. */
function readJumps(c: Chain, rule: (k: number) => Rule): ChainJump[] {
  const out: ChainJump[] = [];
  const n = ruleCount(c);
  for (let k = 0; k < n; k++) {
    // Rules without a target are not made.
    if (ruleTargetAt(c, k) === null) continue;
    const j = readJump(rule(k));
    if (j) out.push(j);
  }
  return out;
}

/** The endpoint a chain DNATs to (its first DNAT rule to one address), or null. */
function readDnat(c: Chain, rule: (k: number) => Rule): DnatTarget | null {
  const n = ruleCount(c);
  for (let k = 0; k < n; k++) {
    if (ruleTargetAt(c, k) !== 'DNAT') continue;
    const to = readNatAddress(ruleNatToAt(c, k) ?? undefined);
    // A range is not one endpoint: kube-proxy never writes one.
    if (to.ip === null || to.range || to.serviceName) continue;
    const ip = canonicalIP(to.ip);
    return { ip, port: to.port, key: to.port === null ? ip : endpointString(ip, to.port), rule: rule(k) };
  }
  return null;
}

/** A rule whose comment names a Service port ("ns/name:port …"). */
export interface NamedRule {
  readonly rule: Rule;
  readonly namespace: string;
  readonly name: string;
  readonly portName: string;
}

/** kube-proxy's fixed chains, whose comments name Service ports. */
const KUBE_PROXY_CHAINS: Readonly<Record<string, readonly string[]>> = {
  nat: ['KUBE-SERVICES', 'KUBE-NODEPORTS'],
  filter: ['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL', 'KUBE-FORWARD'],
};

export class NodeRules {
  readonly family: Family;
  private referrerMap: Map<string, [string, number][]> | null = null;
  private readonly jumpCache = new Map<string, readonly ChainJump[]>();
  private readonly dnatCache = new Map<string, DnatTarget | null>();
  private namedCache: Map<string, NamedRule[]> | null = null;

  constructor(
    readonly node: AuditNode,
    readonly ruleset: Ruleset,
  ) {
    this.family = ruleset.family;
  }

  chain(table: string, name: string): Chain | undefined {
    return this.ruleset.tables.get(table)?.chains.get(name);
  }

  /** The nat chain exists with at least one rule (counted without materialising its rules). */
  hasRules(name: string): boolean {
    const c = this.chain('nat', name);
    return c !== undefined && ruleCount(c) > 0;
  }

  /** The nat chain is declared or has rules. */
  has(name: string): boolean {
    return this.chain('nat', name) !== undefined;
  }

  rules(name: string, table = 'nat'): readonly Rule[] {
    return this.chain(table, name)?.rules ?? [];
  }

  /** nat chains with kube-proxy's hashed names (KUBE-SVC/SVL/EXT/FW/SEP/XLB-…). */
  kubeChains(): { name: string; kind: ChainKind }[] {
    const out: { name: string; kind: ChainKind }[] = [];
    for (const name of this.ruleset.tables.get('nat')?.chains.keys() ?? []) {
      const s = splitChainName(name);
      if (s) out.push({ name, kind: s.kind });
    }
    return out;
  }

  /** nat rules that jump or go to `chain` (one of kube-proxy's, `KUBE-…`). */
  referrers(chain: string): readonly Rule[] {
    if (!this.referrerMap) this.referrerMap = this.indexReferrers();
    const refs = this.referrerMap.get(chain);
    if (!refs) return [];
    return refs.map(([from, index]) => this.rules(from)[index]);
  }

  /** Whether a nat rule jumps or goes to `chain` (no rule is made). */
  isReferred(chain: string): boolean {
    if (!this.referrerMap) this.referrerMap = this.indexReferrers();
    return this.referrerMap.has(chain);
  }

  /** Where each KUBE-… chain is jumped to from, by the targets the parser read (no rule is made). */
  private indexReferrers(): Map<string, [string, number][]> {
    const map = new Map<string, [string, number][]>();
    for (const c of this.ruleset.tables.get('nat')?.chains.values() ?? []) {
      const n = ruleCount(c);
      for (let k = 0; k < n; k++) {
        const target = ruleTargetAt(c, k);
        if (target === null || !target.startsWith('KUBE-')) continue;
        const list = map.get(target);
        if (list) list.push([c.name, k]);
        else map.set(target, [[c.name, k]]);
      }
    }
    return map;
  }

  /** The rules of a nat chain that send to other chains, read for kube-proxy's meaning. */
  jumps(chain: string): readonly ChainJump[] {
    let hit = this.jumpCache.get(chain);
    if (!hit) {
      const c = this.chain('nat', chain);
      const all = c ? readOnce(c, 'jumps', readJumps) : [];
      hit = all.filter((j) => this.has(j.target));
      this.jumpCache.set(chain, hit);
    }
    return hit;
  }

  /** The endpoint a KUBE-SEP chain DNATs to (its first DNAT rule to one address), or null. */
  dnat(chain: string): DnatTarget | null {
    if (this.dnatCache.has(chain)) return this.dnatCache.get(chain)!;
    const c = this.chain('nat', chain);
    const out = c ? readOnce(c, 'dnat', readDnat) : null;
    this.dnatCache.set(chain, out);
    return out;
  }

  /**
   * The endpoints a Service chain sends to: its jumps to KUBE-SEP chains, each with the endpoint
   * it DNATs to. `affinity` chooses the `-m recent` rules (true), the others (false), or both.
   */
  endpointJumps(chain: string, affinity?: boolean): { jump: ChainJump; dnat: DnatTarget | null }[] {
    return this.jumps(chain)
      .filter((j) => j.kind === 'SEP' && (affinity === undefined || (j.affinity !== null) === affinity))
      .map((jump) => ({ jump, dnat: this.dnat(jump.target) }));
  }

  /**
   * Rules of kube-proxy's fixed chains (nat and filter KUBE-SERVICES, KUBE-NODEPORTS, …) and of
   * its hashed chains whose comment names a Service port, by "ns/name" and then port name.
   */
  named(spnKey: string): readonly NamedRule[] {
    if (!this.namedCache) {
      const map = new Map<string, NamedRule[]>();
      const add = (r: Rule) => {
        const c = commentOf(r);
        const spn = c ? parseServicePortName(c) : null;
        if (!spn) return;
        const key = `${spn.namespace}/${spn.name}:${spn.portName}`;
        const entry = { rule: r, ...spn };
        const list = map.get(key);
        if (list) list.push(entry);
        else map.set(key, [entry]);
      };
      for (const [table, chains] of Object.entries(KUBE_PROXY_CHAINS)) {
        for (const name of chains) for (const r of this.rules(name, table)) add(r);
      }
      this.namedCache = map;
    }
    return this.namedCache.get(spnKey) ?? [];
  }

  /** Every spn key (`ns/name:port`, unnamed port: `ns/name:`) that `named` knows. */
  namedKeys(): string[] {
    this.named('');
    return [...this.namedCache!.keys()];
  }
}

/** `ns/name:port` key of `NodeRules.named` (the port part empty for an unnamed port). */
export function namedKey(namespace: string, name: string, portName: string): string {
  return `${namespace}/${name}:${portName}`;
}

const cache = new WeakMap<Ruleset, NodeRules>();

/** The iptables rules of a node, read for the checks (the audit gives the checks that read rules iptables nodes only). */
export function nodeRules(node: AuditNode): NodeRules {
  const rs = requireIptables(node.ruleset, 'rule-reading audit checks');
  let hit = cache.get(rs);
  if (!hit || hit.node.name !== node.name) {
    hit = new NodeRules(node, rs);
    cache.set(rs, hit);
  }
  return hit;
}

/** A readable share: "33.3%", "0.00001%". */
export function percent(p: number): string {
  if (p >= 0.9999995) return '100%';
  const v = p * 100;
  if (v >= 0.1) return `${v.toFixed(1)}%`;
  return `${Number(v.toPrecision(2))}%`;
}
