/**
 * Which frontends can have changed between two snapshots of a node, without tracing them.
 *
 * A packet for a frontend (destination D, port P) can only match, in any chain, the rules that
 * are not keyed to another destination or port. So every chain reachable from the built-in
 * chains is split into
 *   - "rest" rules (no single-host `-d`, no single `--dport`): they may match any packet, and
 *     together with the chains they jump to form one global signature per snapshot;
 *   - keyed rules: filed under their host or port with their rank among the rest rules (so the
 *     merged order is known) and the signature of everything their target reaches (whole chain
 *     contents, memoised per chain).
 * A frontend's signature is the global one plus the keyed rules filed under its destination and
 * under every DNAT destination those rules lead to (the packet meets filter and POSTROUTING with
 * the translated destination). Equal signatures in A and B mean equal rules along every path the
 * tracer could take, so equal outcomes; only frontends whose signatures differ are traced.
 *
 * Rule texts get numbers from one table shared by both snapshots (equal text, equal number: the
 * engine hashes each text natively, once), and chain contents are compared by a 53-bit hash
 * (hash.ts) of those numbers, computed once per chain.
 */
import type { Chain, Ruleset } from '../netfilter/ast.ts';
import { Hasher, hashString } from '../hash.ts';
import type { ChainDelta } from './delta.ts';
import type { ChainTexts, FactsCache } from './rule-facts.ts';
import { chainTargets, REWRITING_TARGETS } from './rule-facts.ts';
import type { RuleFacts } from './rule-facts.ts';
import { ruleCount, ruleTargetAt, ruleTextAt } from '../netfilter/rule.ts';

/** Numbers for rule texts, shared by the two snapshots of one diff. */
export class TextIds {
  private readonly ids = new Map<string, number>();

  id(text: string): number {
    let n = this.ids.get(text);
    if (n === undefined) {
      n = this.ids.size + 1;
      this.ids.set(text, n);
    }
    return n;
  }
}

interface Closure {
  readonly id: number;
  /** "ip|port" of every DNAT the closure can apply. */
  readonly dnat: readonly string[];
  /** The closure rewrites destinations in a way the signature cannot follow (REDIRECT, ranges, …). */
  readonly opaque: boolean;
}

interface Entry {
  readonly table: string;
  readonly chain: string;
  /** Order of the chain in the walk, then the rule's position: the order the tracer meets them in. */
  readonly walk: number;
  readonly position: number;
  /**
   * How many rest rules of the chain come before it; in a chain that is the same in both
   * snapshots (only its jumps to tainted chains are filed), its position in the chain.
   */
  readonly rank: number | string;
  readonly text: number;
  readonly dport: number | null;
  /** What the rule's target reaches when it is not a chain; for a chain, read when asked (closureOf). */
  readonly closure: Closure | null;
  /** The chain the rule jumps to, when `closure` is null. */
  readonly target: string | null;
}

/** A chain read for packets to one port at a time: its rules for any port, and the others by port. */
interface PortIndex {
  /** The rules without a single `--dport`, in order, with what their targets reach. */
  readonly any: Closure;
  /** The rules with a single `--dport`: their rank among the others, text and facts. */
  readonly byPort: ReadonlyMap<number, readonly { readonly rank: number; readonly text: string; readonly facts: RuleFacts }[]>;
}

/** What the two snapshots of a diff share: content numbers, and the targets read per content. */
export interface SharedNumbers {
  next: number;
  readonly targets: Map<number, readonly { readonly target: string; readonly dnat: string | null }[]>;
}

const NO_CLOSURE: Closure = { id: 0, dnat: [], opaque: false };

function policyOf(c: Chain): string {
  return c.policy ?? '-';
}

/** The signatures of one snapshot of a node. */
export class RulesetSignature {
  /** Signature of the rest rules of every chain reachable from the built-in chains. */
  readonly global: number;
  private readonly globalDnat = new Set<string>();
  private globalOpaque = false;
  private readonly byDst = new Map<string, Entry[]>();
  private readonly byPort = new Map<number, Entry[]>();
  /** Per table: rest signatures and closures by chain name. */
  private readonly rest = new Map<string, Map<string, number>>();
  private readonly closures = new Map<string, Map<string, Closure>>();
  private readonly inProgress = new Set<Chain>();
  private readonly contents = new Map<string, Map<string, number>>();
  private walks = 0;

  /**
   * `reference` is the other snapshot's signature (A's, when this is B's): a chain whose text
   * equals the reference's chain of the same name gets the same content number there, without
   * reading its rules again. `counter` numbers every other content, shared by both snapshots.
   *
   * With `delta` (the same for both snapshots), clean chains are not read: each stands for
   * itself by name, the same on both sides, and of a chain whose text is the same on both sides
   * only the rules that jump to tainted chains are read. The caller checks that no destination an
   * unchanged chain rewrites to is filed here (`filedKeys`): the signature no longer follows those.
   */
  constructor(
    private readonly rs: Ruleset,
    private readonly facts: FactsCache,
    private readonly texts: TextIds,
    private readonly chainTexts: ChainTexts,
    addresses: readonly string[],
    private readonly counter: SharedNumbers,
    private readonly reference: RulesetSignature | null = null,
    private readonly delta: ChainDelta | null = null,
  ) {
    const h = new Hasher().string(rs.family).string([...addresses].sort().join(','));
    for (const name of [...rs.tables.keys()].sort()) {
      const chains = rs.tables.get(name)!.chains;
      this.rest.set(name, new Map());
      this.closures.set(name, new Map());
      this.contents.set(name, new Map());
      const builtins = [...chains.values()].filter((c) => c.builtin).map((c) => c.name).sort();
      for (const chain of builtins) h.string(`${name}/${chain}`).number(this.restWalk(name, chains, chain));
    }
    this.global = h.value();
  }

  /** The rest rules of a chain in order, each with what its target reaches; keyed rules are filed. */
  private restWalk(table: string, chains: ReadonlyMap<string, Chain>, name: string): number {
    const memo = this.rest.get(table)!;
    const done = memo.get(name);
    if (done !== undefined) return done;
    const c = chains.get(name);
    if (!c) return hashString(`missing ${table}/${name}`);
    if (this.delta?.isClean(table, name)) {
      const id = hashString(`clean ${table}/${name}`);
      memo.set(name, id);
      return id;
    }
    if (this.inProgress.has(c)) return hashString(`loop ${table}/${name}`);
    if (this.delta && !this.delta.isChanged(table, name)) return this.taintedWalk(table, chains, name, c);
    this.inProgress.add(c);
    const walk = this.walks++;
    const { texts } = this.chainTexts.of(c);
    const h = new Hasher().string(table).string(name).string(policyOf(c));
    let rank = 0;
    texts.forEach((text, position) => {
      const f = this.facts.get(c, position, text);
      const target = f.target;
      const isChain = target !== null && chains.has(target);
      if (f.dst !== null || f.dport !== null) {
        const closure = isChain ? null : this.leaf(target, f.dnat);
        const entry: Entry = { table, chain: name, walk, position, rank, text: this.texts.id(text), dport: f.dport, closure, target: isChain ? target : null };
        if (f.dst !== null) push(this.byDst, f.dst, entry);
        else push(this.byPort, f.dport!, entry);
        return;
      }
      rank++;
      if (!isChain) {
        const leaf = this.leaf(target, f.dnat);
        for (const k of leaf.dnat) this.globalDnat.add(k);
        if (leaf.opaque) this.globalOpaque = true;
      }
      h.number(this.texts.id(text)).number(isChain ? this.restWalk(table, chains, target) : 0);
    });
    this.inProgress.delete(c);
    const id = h.value();
    memo.set(name, id);
    return id;
  }

  /**
   * A chain with the same text in both snapshots that jumps to tainted chains: every other rule
   * acts the same on both sides (its target is clean, or not a chain), so only the jumps to
   * tainted chains are read (targets as the parser read them), filed by their position.
   */
  private taintedWalk(table: string, chains: ReadonlyMap<string, Chain>, name: string, c: Chain): number {
    this.inProgress.add(c);
    const walk = this.walks++;
    const h = new Hasher().string('same').string(table).string(name);
    const n = ruleCount(c);
    for (let k = 0; k < n; k++) {
      const target = ruleTargetAt(c, k);
      if (target === null || !chains.has(target) || this.delta!.isClean(table, target)) continue;
      const text = ruleTextAt(c, k);
      const f = this.facts.get(c, k, text);
      if (f.dst !== null || f.dport !== null) {
        const entry: Entry = { table, chain: name, walk, position: k, rank: `@${k}`, text: this.texts.id(text), dport: f.dport, closure: null, target };
        if (f.dst !== null) push(this.byDst, f.dst, entry);
        else push(this.byPort, f.dport!, entry);
      } else {
        h.number(k).number(this.texts.id(text)).number(this.restWalk(table, chains, target));
      }
    }
    this.inProgress.delete(c);
    const id = h.value();
    this.rest.get(table)!.set(name, id);
    return id;
  }

  /** Every destination address and port keyed rules are filed under. */
  filedKeys(): { readonly ips: Iterable<string>; readonly ports: Iterable<number> } {
    return { ips: this.byDst.keys(), ports: this.byPort.keys() };
  }

  /** A rule whose target is not a chain: what it rewrites. */
  private leaf(target: string | null, dnat: string | null): Closure {
    if (target === null || !REWRITING_TARGETS.has(target)) return NO_CLOSURE;
    // `dnat` is where a DNAT to one address and port sends; any other rewrite cannot be followed.
    return dnat === null ? { id: 0, dnat: [], opaque: true } : { id: 0, dnat: [dnat], opaque: false };
  }

  /** A number for a chain's name, policy and rules: the reference's number when they are the same there. */
  private content(table: string, name: string, c: Chain): number {
    const memo = this.contents.get(table)!;
    let id = memo.get(name);
    if (id !== undefined) return id;
    const other = this.reference?.rs.tables.get(table)?.chains.get(name);
    if (other && (other === c || (policyOf(other) === policyOf(c) && this.chainTexts.joined(other) === this.chainTexts.joined(c)))) {
      id = this.reference!.content(table, name, other);
    } else {
      id = this.counter.next++;
    }
    memo.set(name, id);
    return id;
  }

  /** Everything a chain reaches, whole: its rules and, recursively, the chains they jump to. */
  private closure(table: string, chains: ReadonlyMap<string, Chain>, name: string): Closure {
    const memo = this.closures.get(table)!;
    const done = memo.get(name);
    if (done) return done;
    const c = chains.get(name);
    if (!c) return { id: hashString(`missing ${table}/${name}`), dnat: [], opaque: false };
    if (this.delta?.isClean(table, name)) {
      const clean: Closure = { id: hashString(`clean ${table}/${name}`), dnat: [], opaque: false };
      memo.set(name, clean);
      return clean;
    }
    if (this.inProgress.has(c)) return { id: hashString(`loop ${table}/${name}`), dnat: [], opaque: true };
    this.inProgress.add(c);
    const content = this.content(table, name, c);
    const h = new Hasher().number(content);
    let dnat: string[] | null = null;
    let opaque = false;
    let targets = this.counter.targets.get(content);
    if (!targets) {
      targets = chainTargets(c);
      this.counter.targets.set(content, targets);
    }
    for (const { target, dnat: to } of targets) {
      if (chains.has(target)) {
        const sub = this.closure(table, chains, target);
        h.number(sub.id);
        if (sub.dnat.length > 0) (dnat ??= []).push(...sub.dnat);
        opaque ||= sub.opaque;
      } else {
        const leaf = this.leaf(target, to);
        if (leaf.dnat.length > 0) (dnat ??= []).push(...leaf.dnat);
        opaque ||= leaf.opaque;
      }
    }
    this.inProgress.delete(c);
    const out: Closure = { id: h.value(), dnat: dnat ? [...new Set(dnat)].sort() : [], opaque };
    memo.set(name, out);
    return out;
  }

  /**
   * What a keyed rule's target reaches for a packet to `port`: read for the port when the rule is
   * keyed by its destination only (a jump to KUBE-NODEPORTS on the node's address, which every
   * NodePort's packet takes).
   */
  private closureOf(e: Entry, port: number): Closure {
    if (e.closure) return e.closure;
    return e.dport === null ? this.portClosure(e.table, e.target!, port) : this.closure(e.table, this.rs.tables.get(e.table)!.chains, e.target!);
  }

  private readonly portClosures = new Map<string, Map<string, Closure>>();
  private readonly portIndexes = new Map<Chain, PortIndex>();

  /**
   * What a chain reaches for a packet to `port`: its rules without a single `--dport` and those
   * for this port, the others left out (they cannot match the packet, and a packet in a chain of
   * nat keeps its port until a rewrite ends the chain). A chain such as KUBE-NODEPORTS, one rule
   * per NodePort, then differs between snapshots only for the ports whose rules differ.
   */
  private portClosure(table: string, name: string, port: number): Closure {
    let memo = this.portClosures.get(table);
    if (!memo) this.portClosures.set(table, (memo = new Map()));
    const key = `${name}|${port}`;
    const done = memo.get(key);
    if (done) return done;
    const chains = this.rs.tables.get(table)!.chains;
    const c = chains.get(name);
    if (!c || this.delta?.isClean(table, name) || this.inProgress.has(c)) return this.closure(table, chains, name);
    const index = this.portIndex(table, chains, c);
    const own = index.byPort.get(port);
    let out = index.any;
    if (own) {
      const h = new Hasher().number(index.any.id);
      const dnat = [...index.any.dnat];
      let opaque = index.any.opaque;
      for (const r of own) {
        const sub = this.targetClosure(table, chains, r.facts);
        h.number(r.rank).number(this.texts.id(r.text)).number(sub.id);
        dnat.push(...sub.dnat);
        opaque ||= sub.opaque;
      }
      out = { id: h.value(), dnat: [...new Set(dnat)].sort(), opaque };
    }
    memo.set(key, out);
    return out;
  }

  /** What a rule's target reaches: the chain's closure, or what the rule itself rewrites. */
  private targetClosure(table: string, chains: ReadonlyMap<string, Chain>, f: RuleFacts): Closure {
    const { target } = f;
    return target !== null && chains.has(target) ? this.closure(table, chains, target) : this.leaf(target, f.dnat);
  }

  private portIndex(table: string, chains: ReadonlyMap<string, Chain>, c: Chain): PortIndex {
    const done = this.portIndexes.get(c);
    if (done) return done;
    this.inProgress.add(c);
    const h = new Hasher().string('ports').string(table).string(c.name).string(policyOf(c));
    const byPort = new Map<number, { rank: number; text: string; facts: RuleFacts }[]>();
    const dnat = new Set<string>();
    let opaque = false;
    let rank = 0;
    const { texts } = this.chainTexts.of(c);
    for (let k = 0; k < texts.length; k++) {
      const text = texts[k];
      const f = this.facts.get(c, k, text);
      if (f.dport !== null) {
        const list = byPort.get(f.dport);
        const entry = { rank, text, facts: f };
        if (list) list.push(entry);
        else byPort.set(f.dport, [entry]);
        continue;
      }
      rank++;
      const sub = this.targetClosure(table, chains, f);
      h.number(this.texts.id(text)).number(sub.id);
      for (const k of sub.dnat) dnat.add(k);
      opaque ||= sub.opaque;
    }
    this.inProgress.delete(c);
    const index: PortIndex = { any: { id: h.value(), dnat: [...dnat].sort(), opaque }, byPort };
    this.portIndexes.set(c, index);
    return index;
  }

  /** The keyed rules filed under one destination (`ip|port`), in the order the tracer meets them. */
  private matched(key: string): Entry[] {
    const dst = key.slice(0, key.lastIndexOf('|'));
    const dport = portOf(key);
    const out: Entry[] = [];
    for (const e of this.byDst.get(dst) ?? []) if (e.dport === null || e.dport === dport) out.push(e);
    for (const e of this.byPort.get(dport) ?? []) out.push(e);
    if (out.length > 1) out.sort((x, y) => x.walk - y.walk || x.position - y.position);
    return out;
  }

  private readonly reached = new Map<readonly string[], number | null>();

  /**
   * A number for everything a packet can meet once translated to any of `dnat` and, from there,
   * to any destination those rules translate to: the keyed rules of every such destination. null
   * when one of them rewrites in a way the signature cannot follow. Memoised per list: a
   * NodePort rule reached by every frontend on the node's address leads to thousands of them.
   */
  private reach(dnat: readonly string[]): number | null {
    const done = this.reached.get(dnat);
    if (done !== undefined) return done;
    const keys = [...dnat];
    const seen = new Set(keys);
    const parts = new Map<string, string>();
    let id: number | null = null;
    search: {
      for (let i = 0; i < keys.length; i++) {
        const own: string[] = [];
        for (const e of this.matched(keys[i])) {
          const closure = this.closureOf(e, portOf(keys[i]));
          if (closure.opaque) break search;
          own.push(`${e.table}/${e.chain}#${e.rank}:${e.text}>${closure.id}`);
          for (const k of closure.dnat) {
            if (!seen.has(k)) {
              seen.add(k);
              keys.push(k);
            }
          }
        }
        parts.set(keys[i], own.join(','));
      }
      const h = new Hasher();
      for (const k of [...parts.keys()].sort()) h.string(k).string(parts.get(k)!);
      id = h.value();
    }
    this.reached.set(dnat, id);
    return id;
  }

  private globalReach: number | null | undefined;

  /**
   * The signature of one frontend: the global signature, what every packet can meet through the
   * rest rules' DNATs, and the keyed rules a packet to ip:port can meet with everything their
   * DNATs lead to. null when it cannot be computed (a rewrite the signature does not follow):
   * trace the frontend.
   */
  frontend(ip: string, port: number): string | null {
    if (this.globalOpaque) return null;
    if (this.globalReach === undefined) this.globalReach = this.reach([...this.globalDnat].sort());
    if (this.globalReach === null) return null;
    const parts: string[] = [String(this.global), String(this.globalReach), `${ip}|${port}`];
    for (const e of this.matched(`${ip}|${port}`)) {
      const closure = this.closureOf(e, port);
      if (closure.opaque) return null;
      const further = this.reach(closure.dnat);
      if (further === null) return null;
      parts.push(`${e.table}/${e.chain}#${e.rank}:${e.text}>${closure.id}>${further}`);
    }
    return parts.join(';');
  }
}

function portOf(key: string): number {
  return Number(key.slice(key.lastIndexOf('|') + 1));
}

function push<K>(map: Map<K, Entry[]>, key: K, e: Entry): void {
  const list = map.get(key);
  if (list) list.push(e);
  else map.set(key, [e]);
}
