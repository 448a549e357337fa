/**
 * The packet tracer: walks the first packet of a new connection through the netfilter hooks in
 * the kernel's order and returns every possible outcome with its exact probability.
 *
 * Randomness (`-m statistic --mode random`) is explored exhaustively: a run follows one choice per
 * draw, and the tracer re-runs with each untried choice until every branch has been seen. Each
 * run's probability is the exact product of its draws.
 */
import type { Chain, Rule, Ruleset } from '../netfilter/ast.ts';
import { matchOf, optionArg } from '../netfilter/ast.ts';
import { EngineError } from '../errors.ts';
import { chainText, DumpChain, ruleAt, ruleCount } from '../netfilter/rule.ts';
import { generalWalkId } from './node-address.ts';
import { Hasher } from '../hash.ts';
import type { Action, CompiledChain, CompiledRule, CompiledRuleset, InterfaceTest, TestEnv } from './compile.ts';
import { compileRuleset, NO, UNKNOWN } from './compile.ts';
import type { Addr, Entry, Hook, PacketSpec, PacketState, Protocol } from './packet.ts';
import { parseAddr } from './packet.ts';
import { PROTOCOLS } from './packet-input.ts';
import { ruleOf, withRule } from './step-rule.ts';
import type { RouteTable } from '../net/routes.ts';
import type { Fraction } from './probability.ts';
import { add, deviationFromUniform, isExactlyUniform, ONE, SCALE, times, toNumber, toText } from './probability.ts';

export type Verdict = 'DNAT' | 'ACCEPT' | 'DROP' | 'REJECT';
export type Delivery = 'local' | 'forward' | 'output';

export interface TraceStep {
  readonly hook: Hook;
  readonly table: string;
  readonly chain: string;
  /** 1-based position in the chain; 0 for a built-in chain's policy. */
  readonly index: number;
  readonly line: number;
  /** The rule's text; the parsed rule travels beside it (ruleOf in step-rule.ts), absent for a policy step. */
  readonly rule: string;
  readonly action: string;
  /** Set when the rule was not in the dump but assumed as kube-proxy writes it: why. */
  readonly assumed?: string;
  /** nftables: the rule's handle, when the dump listed handles (`nft -a`). */
  readonly handle?: number;
}

export interface TraceWarning {
  readonly code: string;
  readonly message: string;
  readonly rule?: { readonly table: string; readonly chain: string; readonly index: number; readonly line: number; readonly text: string };
}

export interface TraceOutcome {
  readonly probability: number;
  /** The probability as an exact fraction, e.g. "715827883/8589934592". */
  readonly exactProbability: string;
  readonly verdict: Verdict;
  readonly destination: { readonly ip: string; readonly port: number };
  readonly masquerade: boolean;
  readonly snat?: { readonly ip: string | null; readonly port: number | null };
  readonly delivery: Delivery | null;
  /** The interface the packet leaves through, when the request or the node's routes say it. */
  readonly outInterface?: string;
  /**
   * The interface conditions this outcome holds under, when an `-i`/`-o` test met an interface the
   * request does not name; `probability` is then the probability given these conditions.
   */
  readonly conditions?: readonly string[];
  readonly rejectWith?: string;
  readonly mark: string;
  readonly path: readonly TraceStep[];
  readonly notes: readonly string[];
}

export interface NodeSpec {
  readonly name?: string;
  readonly addresses: readonly string[];
}

export interface TraceRequest {
  readonly node: NodeSpec;
  readonly packet: PacketSpec;
  /** The node's routes (see parseRoutes): they name the interface a packet leaves through. */
  readonly routes?: RouteTable;
}

export interface TraceResult {
  readonly entry: Entry;
  readonly packet: { source: string; destination: string; port: number; protocol: Protocol; sourcePort: number | null };
  readonly outcomes: readonly TraceOutcome[];
  readonly warnings: readonly TraceWarning[];
  /** What svcpath assumed to complete a fragmentary dump. */
  readonly assumptions: readonly string[];
  /** Set by the nftables tracer; absent when iptables rules answered. */
  readonly backend?: 'nftables';
}

const HOOK_TABLES: Readonly<Record<Hook, readonly string[]>> = {
  // Priorities: raw −300, mangle −150, nat DNAT −100, filter 0, security 50, nat SNAT 100.
  PREROUTING: ['raw', 'mangle', 'nat'],
  INPUT: ['mangle', 'filter', 'security', 'nat'],
  FORWARD: ['mangle', 'filter', 'security'],
  OUTPUT: ['raw', 'mangle', 'nat', 'filter', 'security'],
  POSTROUTING: ['mangle', 'nat'],
};

const MAX_RUNS = 20000;
const MAX_STEPS = 100000;

interface Decision {
  readonly k: number;
  readonly taken: boolean;
  /** Set for a case split on an unknown interface: not random, so it does not weigh the run. */
  readonly iface?: true;
}

/** What a run has assumed about an unknown interface (`key` names which one). */
interface InterfaceFact {
  readonly key: string;
  readonly name: string;
  readonly prefix: boolean;
  readonly holds: boolean;
}

interface Run {
  verdict: Verdict | null;
  rejectWith?: string;
  delivery: Delivery | null;
  masquerade: boolean;
  snat?: { ip: string | null; port: number | null };
  path: TraceStep[];
  notes: string[];
  decisions: Decision[];
  dnat: boolean;
  facts: InterfaceFact[];
  /** The interface conditions this run's outcome holds under, as the answer states them. */
  conditions: string[];
  /** The path steps (by position) whose rule added the client to a `-m recent` list, with the list's name. */
  recentSets: { at: number; name: string }[];
}

type HookVerdict = 'accept' | 'drop' | 'reject';

/**
 * What a trace's answer depended on besides the packet: in every chain it walked, the rules the
 * packet could match there (by their texts, whatever their positions); the chains and tables it
 * found missing; and the node's addresses it asked about. Another ruleset for which all of these
 * are the same gives the same answer at the positions and lines it has (dependenciesHold).
 */
export interface TraceDependencies {
  /** Tables (chain null) and chains the trace looked for and the ruleset lacks: a hook's built-in chain, a jump's target. */
  readonly absent: readonly { readonly table: string; readonly chain: string | null }[];
  /** The chains walked, each once. */
  readonly chains: readonly ChainDependency[];
  /** Addresses asked "is it one of the node's?", with the answer. */
  readonly local: readonly { readonly address: Addr; readonly answer: boolean }[];
  /** The node's first address, when a REDIRECT used it. */
  readonly primary?: string | null;
  /** A number for what was repaired to read the dump as pasted (repairsId). */
  readonly repairs: number;
}

/**
 * A chain a trace walked. A chain of the same text and policy, declared alike, offers every
 * packet the same rules at the same positions; a chain that differs answers alike when each walk
 * meets the same rules there, wherever they stand.
 */
export interface ChainDependency {
  readonly table: string;
  readonly chain: string;
  /**
   * The chain's rules as one text, for a short chain read from a dump (long ones differ between
   * nodes, and their walks are compared); null otherwise.
   */
  readonly text: string | null;
  readonly policy: string | null;
  /** Whether the chain was declared (a built-in chain's policy step shows then). */
  readonly declared: boolean;
  readonly walks: readonly WalkDependency[];
}

/** The chain's text when the memo compares it whole: a short chain read from a dump (see ChainDependency). */
function wholeText(cc: CompiledChain): string | null {
  return cc.index === undefined && cc.chain instanceof DumpChain ? chainText(cc.chain) : null;
}

/** A walk through a chain by a packet to dst:dport: a number for the rules it could meet (walkId), and their positions. */
export interface WalkDependency {
  readonly dst: string;
  readonly dport: number;
  readonly id: number;
  readonly positions: readonly number[];
  /**
   * For a walk to the node's own address (the packet's destination, DependencyRecorder's
   * `nodeAddress`): generalWalkId, which compares it with walks to another node's address. Absent
   * when the walk is not one, or null when its rules cannot be so compared.
   */
  readonly general?: number | null;
}

/** Notes a trace's dependencies as it goes (trace's `deps`); `kept` gives them in the form dependenciesHold reads. */
export class DependencyRecorder {
  private readonly absent: { table: string; chain: string | null }[] = [];
  private readonly walked = new Map<CompiledChain, { table: string; text: string | null; walks: WalkDependency[] }>();
  readonly local = new Map<string, { address: Addr; answer: boolean }>();
  primary?: string | null;
  repairs = 0;

  /** `nodeAddress`: the node's own address the packet was sent to, when it was (node-address.ts). */
  constructor(private readonly nodeAddress: string | null = null) {}

  missing(table: string, chain: string | null): void {
    if (!this.absent.some((a) => a.table === table && a.chain === chain)) this.absent.push({ table, chain });
  }

  /** A walk of a packet to dst:dport through `cc` that could meet the rules at `order`. */
  walk(table: string, cc: CompiledChain, dst: string, dport: number, order: readonly number[]): void {
    let c = this.walked.get(cc);
    if (!c) this.walked.set(cc, (c = { table, text: wholeText(cc), walks: [] }));
    for (const w of c.walks) if (w.dport === dport && w.dst === dst) return;
    const general = dst === this.nodeAddress ? { general: generalId(cc, order, dst) } : {};
    c.walks.push({ dst, dport, id: walkId(cc, order), positions: order, ...general });
  }

  /** The dependencies, every text in them passed through `own` (copies that keep no dump alive). */
  kept(own: (s: string) => string): TraceDependencies {
    return {
      absent: this.absent.map((a) => ({ table: own(a.table), chain: a.chain === null ? null : own(a.chain) })),
      chains: [...this.walked].map(([cc, c]) => ({
        table: own(c.table), chain: own(cc.chain.name), text: c.text === null ? null : own(c.text),
        policy: cc.chain.policy, declared: cc.chain.line > 0,
        walks: c.walks.map((w) => ({ ...w, dst: own(w.dst) })),
      })),
      local: [...this.local.values()].map(({ address, answer }) => ({ address: { ...address, text: own(address.text) }, answer })),
      ...(this.primary !== undefined ? { primary: this.primary === null ? null : own(this.primary) } : {}),
      repairs: this.repairs,
    };
  }
}

class Walker {
  private readonly prefix: readonly boolean[];
  readonly run: Run;
  private readonly compiled: CompiledRuleset;
  private steps = 0;

  constructor(
    compiled: CompiledRuleset,
    private readonly env: Env,
    prefix: readonly boolean[],
    private readonly warn: (w: TraceWarning) => void,
    private readonly deps: DependencyRecorder | null = null,
  ) {
    this.compiled = compiled;
    this.prefix = prefix;
    this.run = { verdict: null, delivery: null, masquerade: false, path: [], notes: [], decisions: [], dnat: false, facts: [], conditions: [], recentSets: [] };
  }

  private draw(k: number): boolean {
    if (k <= 0) return false;
    if (k >= SCALE) return true;
    const i = this.run.decisions.length;
    const taken = i < this.prefix.length ? this.prefix[i] : true;
    this.run.decisions.push({ k, taken });
    return taken;
  }

  /**
   * Does the unknown interface match `t`'s name? Decided by what this run already assumed about the
   * same interface when that settles it; otherwise the run takes one case and the other is explored.
   */
  private interfaceCase(t: InterfaceTest, s: PacketState): boolean {
    if (t.prefix && t.name === '') return true;
    const key = t.dir === 'in' ? 'in' : `out|${s.dst.text}`;
    for (const f of this.run.facts) {
      if (f.key !== key) continue;
      const known = impliedByFact(f, t);
      if (known !== null) return known;
    }
    const i = this.run.decisions.length;
    const holds = i < this.prefix.length ? this.prefix[i] : true;
    this.run.decisions.push({ k: 0, taken: holds, iface: true });
    this.run.facts.push({ key, name: t.name, prefix: t.prefix, holds });
    this.run.conditions.push(interfaceCondition(t, holds, s));
    return holds;
  }

  private step(hook: Hook, r: Rule, action: string): void {
    this.run.path.push(withRule({
      hook, table: r.table, chain: r.chain, index: r.index, line: r.line, rule: r.text, action,
      ...(r.synthesized ? { assumed: r.synthesized } : {}),
    }, r));
  }

  private ruleRef(r: Rule) {
    return withRule({ table: r.table, chain: r.chain, index: r.index, line: r.line, text: r.text }, r);
  }

  /** Does every match of the rule succeed? Draws and side effects happen only once all tests pass. */
  private matches(cr: CompiledRule, s: PacketState): boolean {
    let unknownReason: string | undefined;
    let cases: InterfaceTest[] | undefined;
    for (const t of cr.tests) {
      const r = t.eval(s, this.env);
      if (r === NO) return false;
      if (r !== UNKNOWN) continue;
      if (t.iface) (cases ??= []).push(t.iface);
      else unknownReason = unknownReason ?? t.unknownReason ?? 'a match svcpath does not model';
    }
    if (unknownReason !== undefined) {
      this.warn({
        code: 'NOT_MODELLED',
        message: `the trace cannot decide this rule: it depends on ${unknownReason}; it was assumed not to match`,
        rule: this.ruleRef(cr.rule),
      });
      return false;
    }
    // Split on unknown interfaces only once every other test has passed, so no case is made for nothing.
    for (const t of cases ?? []) if (this.interfaceCase(t, s) === t.negated) return false;
    for (const l of cr.late) {
      if (l.kind === 'random') {
        if (!this.draw(l.k)) return false;
      } else if (!l.run(s)) {
        return false;
      }
    }
    return true;
  }

  /** The rules of a chain the packet can match, in order (null: all of them), noted in deps. */
  private candidates(table: string, cc: CompiledChain, s: PacketState): readonly number[] | null {
    if (!this.deps) return candidatesOf(cc, s.dst.text, s.dport);
    const order = matchable(cc, s.dst.text, s.dport);
    this.deps.walk(table, cc, s.dst.text, s.dport, order);
    return cc.index ? order : null;
  }

  /**
   * One table's walk of one hook, from its built-in chain. Returns the table's verdict.
   * `-j` pushes a frame; `-g` replaces the current one, so RETURN goes back to the chain that
   * called the goto's chain; falling off a built-in chain applies its policy.
   */
  walkTable(hook: Hook, table: string, s: PacketState): HookVerdict {
    const chains = this.compiled.tables.get(table);
    if (!chains) return this.absent(table, null);
    const base = chains.get(hook);
    if (!base) return this.absent(table, hook);
    interface Frame { cc: CompiledChain; order: readonly number[] | null; pos: number }
    const frames: Frame[] = [{ cc: base, order: this.candidates(table, base, s), pos: 0 }];
    while (frames.length > 0) {
      const f = frames[frames.length - 1];
      const count = f.order ? f.order.length : f.cc.length;
      if (f.pos >= count) {
        frames.pop();
        if (frames.length === 0) return this.policy(hook, base);
        continue;
      }
      const cr = f.cc.rule(f.order ? f.order[f.pos] : f.pos);
      f.pos++;
      if (++this.steps > MAX_STEPS) throw new EngineError('BAD_PACKET', 'the trace did not finish: the rules loop');
      if (!this.matches(cr, s)) continue;
      // The rule's step is the next one on the path (act() pushes it first).
      if (cr.recentSet !== null) this.run.recentSets.push({ at: this.run.path.length, name: cr.recentSet });
      const outcome = this.act(hook, cr, s, (chain, isGoto) => {
        const target = chains.get(chain)!;
        if (frames.length > 64) throw new EngineError('BAD_PACKET', `chain nesting deeper than 64 at ${chain}: the rules loop`);
        const frame = { cc: target, order: this.candidates(table, target, s), pos: 0 };
        if (isGoto) frames[frames.length - 1] = frame;
        else frames.push(frame);
      });
      if (outcome === 'continue') continue;
      if (outcome === 'return') {
        frames.pop();
        if (frames.length === 0) return this.policy(hook, base);
        continue;
      }
      return outcome;
    }
    return this.policy(hook, base);
  }

  /** A table or built-in chain the ruleset lacks lets the packet through. */
  private absent(table: string, chain: string | null): HookVerdict {
    this.deps?.missing(table, chain);
    return 'accept';
  }

  private policy(hook: Hook, base: CompiledChain): HookVerdict {
    const policy = base.chain.policy ?? 'ACCEPT';
    if (policy === 'DROP' || ruleCount(base.chain) > 0 || base.chain.line > 0) {
      this.run.path.push({
        hook, table: base.chain.table, chain: base.chain.name, index: 0, line: base.chain.line,
        rule: `-P ${base.chain.name} ${policy}`, action: `policy ${policy}`,
      });
    }
    return policy === 'DROP' ? 'drop' : 'accept';
  }

  private act(
    hook: Hook,
    cr: CompiledRule,
    s: PacketState,
    enter: (chain: string, isGoto: boolean) => void,
  ): HookVerdict | 'continue' | 'return' {
    const a: Action = cr.action;
    const r = cr.rule;
    switch (a.kind) {
      case 'none':
        this.step(hook, r, 'none');
        return 'continue';
      case 'accept':
        this.step(hook, r, 'accept');
        return 'accept';
      case 'drop':
        this.step(hook, r, 'drop');
        return 'drop';
      case 'reject':
        this.step(hook, r, 'reject');
        this.run.rejectWith = a.with;
        return 'reject';
      case 'return':
        this.step(hook, r, 'return');
        return 'return';
      case 'jump':
      case 'goto':
        this.step(hook, r, a.kind);
        enter(a.chain, a.kind === 'goto');
        return 'continue';
      case 'missing-chain':
        this.deps?.missing(r.table, a.chain);
        this.step(hook, r, a.goto ? 'goto' : 'jump');
        this.warn({
          code: 'MISSING_CHAIN',
          message: `chain ${a.chain} is not in the dump; the trace continued as if it returned without a verdict`,
          rule: this.ruleRef(r),
        });
        return a.goto ? 'return' : 'continue';
      case 'dnat': {
        this.step(hook, r, 'dnat');
        if (a.ip) s.dst = a.ip;
        if (a.port !== null) s.dport = a.port;
        s.dnatDone = true;
        this.run.dnat = true;
        if (a.note) this.run.notes.push(a.note);
        // NAT targets end the nat table's walk for this hook.
        return 'accept';
      }
      case 'redirect': {
        this.step(hook, r, 'redirect');
        // REDIRECT sends to the node itself: 127.0.0.1 for locally generated packets, else the
        // incoming interface's primary address (the node's first address here).
        const local = hook === 'OUTPUT' ? parseAddr(s.dst.family === 'ipv6' ? '::1' : '127.0.0.1', 'address') : this.env.primary;
        if (local) s.dst = local;
        if (a.port !== null) s.dport = a.port;
        s.dnatDone = true;
        this.run.dnat = true;
        return 'accept';
      }
      case 'snat':
        this.step(hook, r, 'snat');
        this.run.snat = { ip: a.ip, port: a.port };
        s.snatDone = true;
        return 'accept';
      case 'masquerade':
        this.step(hook, r, 'masquerade');
        this.run.masquerade = true;
        s.snatDone = true;
        return 'accept';
      case 'mark':
        this.step(hook, r, 'mark');
        s.mark = ((s.mark & ~a.mask) ^ a.value) >>> 0;
        return 'continue';
      case 'connmark':
        this.step(hook, r, 'connmark');
        if (a.op === 'set') s.ctmark = ((s.ctmark & ~a.mask) ^ a.value) >>> 0;
        else if (a.op === 'save') s.ctmark = ((s.ctmark & ~a.ctmask) ^ (s.mark & a.nfmask)) >>> 0;
        else s.mark = ((s.mark & ~a.nfmask) ^ (s.ctmark & a.ctmask)) >>> 0;
        return 'continue';
      case 'notrack':
        this.step(hook, r, 'notrack');
        s.untracked = true;
        this.run.notes.push('NOTRACK: the connection is not tracked, so the nat table is never consulted for it');
        return 'continue';
      case 'continue':
        this.step(hook, r, 'continue');
        return 'continue';
      case 'unmodelled-target':
        this.step(hook, r, 'continue');
        this.warn({ code: 'NOT_MODELLED', message: `target ${a.name} is not modelled; the trace continued past it`, rule: this.ruleRef(r) });
        return 'continue';
    }
  }

  /** Runs one hook: each of its tables in priority order, until one of them drops or rejects. */
  hook(hook: Hook, s: PacketState, skipNat: boolean): HookVerdict {
    for (const table of HOOK_TABLES[hook]) {
      if (table === 'nat' && (skipNat || s.untracked)) continue;
      const v = this.walkTable(hook, table, s);
      if (v !== 'accept') return v;
    }
    return 'accept';
  }

}

/**
 * The outcomes of each case of the unknown interfaces, for which the probabilities add up to 1: a
 * case is a most specific set of conditions some outcome holds under, and holds every outcome whose
 * conditions are part of it (an outcome without conditions belongs to every case).
 */
export function groupByCase<T>(items: readonly T[], conditionsOf: (item: T) => readonly string[] | undefined): T[][] {
  const sets = items.map((item) => new Set(conditionsOf(item) ?? []));
  const within = (a: Set<string>, b: Set<string>) => [...a].every((c) => b.has(c));
  const seen = new Set<string>();
  const groups: T[][] = [];
  sets.forEach((set) => {
    const key = [...set].sort().join('\n');
    if (seen.has(key)) return;
    seen.add(key);
    if (sets.some((other) => other.size > set.size && within(set, other))) return;
    groups.push(items.filter((_, j) => within(sets[j], set)));
  });
  return groups;
}

/** What a fact about an interface settles about test `t` on the same interface, or null. */
function impliedByFact(f: InterfaceFact, t: InterfaceTest): boolean | null {
  if (f.holds && !f.prefix) return t.prefix ? f.name.startsWith(t.name) : f.name === t.name;
  if (f.holds) {
    if (t.prefix && f.name.startsWith(t.name)) return true;
    return t.name.startsWith(f.name) ? null : false;
  }
  if (f.prefix) return t.name.startsWith(f.name) ? false : null;
  return !t.prefix && t.name === f.name ? false : null;
}

/** "if the packet to 172.17.0.26 leaves through docker0", as the outcome states its case. */
function interfaceCondition(t: InterfaceTest, holds: boolean, s: PacketState): string {
  const which = t.prefix ? `an interface whose name starts with ${t.name}` : t.name;
  if (t.dir === 'in') return `if the packet came in ${holds ? '' : 'not '}through ${which}`;
  return `if the packet to ${s.dst.text} ${holds ? 'leaves' : 'does not leave'} through ${which}`;
}

const EMPTY: readonly number[] = [];

function merge3(a: readonly number[], b: readonly number[], c: readonly number[]): readonly number[] {
  if (a.length === 0 && b.length === 0) return c;
  const out: number[] = [];
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length || j < b.length || k < c.length) {
    const x = i < a.length ? a[i] : Infinity;
    const y = j < b.length ? b[j] : Infinity;
    const z = k < c.length ? c[k] : Infinity;
    if (x <= y && x <= z) { out.push(x); i++; }
    else if (y <= z) { out.push(y); j++; }
    else { out.push(z); k++; }
  }
  return out;
}


/** The positions of the rules a packet to dst:dport can match, in order; null for every rule (a chain without index). */
function candidatesOf(cc: CompiledChain, dst: string, dport: number): readonly number[] | null {
  return cc.index ? matchable(cc, dst, dport) : null;
}

/**
 * The positions of the rules of a chain that a packet to dst:dport can match, whether or not the
 * chain is indexed for the tracer: rules keyed to another destination or port cannot match it.
 */
function matchable(cc: CompiledChain, dst: string, dport: number): readonly number[] {
  const idx = cc.keys();
  return merge3(idx.byDst.get(dst) ?? EMPTY, idx.byPort.get(dport) ?? EMPTY, idx.rest);
}

/** generalWalkId of a walk through `cc` to the node's address `address`. */
function generalId(cc: CompiledChain, order: readonly number[], address: string): number | null {
  const c = cc.chain;
  return generalWalkId(c.policy, c.line > 0, order.map((i) => ruleAt(c, i)), address);
}

/**
 * A number for what a walk through a chain can meet: the chain's policy and whether it was
 * declared (its policy step shows then), and the texts of the rules at `order`, in that order.
 */
function walkId(cc: CompiledChain, order: readonly number[]): number {
  const c = cc.chain;
  const h = new Hasher().string(c.policy ?? '-').number(c.line > 0 ? 1 : 0).number(order.length);
  for (const i of order) h.number(cc.ruleHash(i));
  return h.value();
}

const UNROUTABLE = new Set(['blackhole', 'unreachable', 'prohibit']);

export interface Env extends TestEnv {
  readonly primary: Addr | null;
  /** The device the routes send `a` to; null when no routes were given or none matches. */
  readonly device: (a: Addr) => string | null;
  /** Why the routes throw a packet to `a` away (a blackhole, unreachable or prohibit route), or null. */
  readonly unroutable: (a: Addr) => string | null;
}

/** The node as the tracers see it: which addresses are LOCAL, its first address, and its routes. */
export function makeEnv(node: NodeSpec, routes?: RouteTable): Env {
  const v4 = new Set<number>();
  const v6 = new Set<bigint>();
  let primary: Addr | null = null;
  for (const a of node.addresses) {
    const p = parseAddr(a, 'node address');
    primary = primary ?? p;
    if (p.family === 'ipv4') v4.add(p.v4);
    else v6.add(p.v6);
  }
  const routed = (a: Addr) => routes?.lookup(a.text, a.family) ?? null;
  return {
    primary,
    // LOCAL: the node's own addresses, the loopback range, and what the routes' local table names.
    isLocal: (a) => (a.family === 'ipv4' ? a.v4 >>> 24 === 127 || v4.has(a.v4) : a.v6 === 1n || v6.has(a.v6)) || routed(a)?.type === 'local',
    device: (a) => routed(a)?.dev ?? null,
    unroutable: (a) => {
      const r = routed(a);
      return r && UNROUTABLE.has(r.type) ? `the node's routes send ${a.text} to a ${r.type} route (routes line ${r.route.line}): the kernel drops it` : null;
    },
  };
}

/**
 * What happens to one run of the packet: the hooks of its entry point, with the routing decision
 * after PREROUTING (or after OUTPUT's DNAT) made on the translated destination.
 */
function runOnce(
  compiled: CompiledRuleset, env: Env, spec: ResolvedPacket, prefix: readonly boolean[], warn: (w: TraceWarning) => void, deps: DependencyRecorder | null,
): { run: Run; state: PacketState } {
  const w = new Walker(compiled, env, prefix, warn, deps);
  const s: PacketState = {
    src: spec.src, dst: spec.dst, sport: spec.sport, dport: spec.dport, proto: spec.proto,
    origDst: spec.dst, origDport: spec.dport, mark: 0, ctmark: 0, dnatDone: false, snatDone: false,
    // A packet made here has no input interface, and none has an output interface before routing:
    // the kernel compares `-i`/`-o` against the empty name there.
    untracked: false, inIface: spec.entry === 'PREROUTING' ? spec.inIface : '', outIface: '', recent: new Set(),
  };
  const leaving = () => spec.outIface ?? env.device(s.dst);
  const run = w.run;
  const finish = (v: HookVerdict): { run: Run; state: PacketState } => {
    if (v === 'drop') run.verdict = 'DROP';
    else if (v === 'reject') run.verdict = 'REJECT';
    else run.verdict = run.dnat ? 'DNAT' : 'ACCEPT';
    return { run, state: s };
  };
  if (spec.entry === 'PREROUTING') {
    let v = w.hook('PREROUTING', s, false);
    if (v !== 'accept') return finish(v);
    // Routing decision on the destination after DNAT.
    if (env.isLocal(s.dst)) {
      run.delivery = 'local';
      v = w.hook('INPUT', s, false);
      return finish(v);
    }
    const dropped = env.unroutable(s.dst);
    if (dropped) {
      run.notes.push(dropped);
      return finish('drop');
    }
    run.delivery = 'forward';
    s.outIface = leaving();
    v = w.hook('FORWARD', s, false);
    if (v !== 'accept') return finish(v);
    return finish(w.hook('POSTROUTING', s, false));
  }
  // Locally generated: routed before OUTPUT, re-routed after a DNAT in nat OUTPUT.
  s.outIface = env.isLocal(s.dst) ? 'lo' : leaving();
  let v = w.hook('OUTPUT', s, false);
  if (v !== 'accept') return finish(v);
  const local = env.isLocal(s.dst);
  s.outIface = local ? 'lo' : leaving();
  run.delivery = local ? 'local' : 'output';
  v = w.hook('POSTROUTING', s, false);
  if (v !== 'accept' || !local) return finish(v);
  // Out and straight back in on loopback, still NEW; the nat table is not consulted again.
  s.inIface = 'lo';
  s.outIface = '';
  v = w.hook('PREROUTING', s, true);
  if (v !== 'accept') return finish(v);
  return finish(w.hook('INPUT', s, true));
}

export interface ResolvedPacket {
  src: Addr;
  dst: Addr;
  sport: number | null;
  dport: number;
  proto: Protocol;
  entry: Entry;
  inIface: string | null;
  outIface: string | null;
}

/**
 * Checks the packet asked about and decides where it starts. `family` is the rules' address family,
 * or null when the rules hold both (nftables' `inet` and `ip6` tables beside `ip` ones).
 */
export function resolvePacket(p: PacketSpec, env: Env, family: string | null): ResolvedPacket {
  if (!PROTOCOLS.includes(p.protocol)) throw new EngineError('BAD_PACKET', `protocol must be one of ${PROTOCOLS.join(', ')}`);
  const src = parseAddr(p.source, 'source');
  const dst = parseAddr(p.destination, 'destination');
  if (src.family !== dst.family) throw new EngineError('BAD_PACKET', 'source and destination must be of the same address family');
  if (family !== null && dst.family !== family) {
    throw new EngineError('BAD_PACKET', `the packet is ${dst.family === 'ipv4' ? 'IPv4' : 'IPv6'} but the rules are ${family === 'ipv4' ? 'IPv4 (iptables)' : 'IPv6 (ip6tables)'}`);
  }
  const port = p.protocol === 'icmp' ? (p.port ?? 0) : p.port;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new EngineError('BAD_PACKET', 'port must be an integer from 0 to 65535');
  if (p.sourcePort !== undefined && (!Number.isInteger(p.sourcePort) || p.sourcePort < 0 || p.sourcePort > 65535)) {
    throw new EngineError('BAD_PACKET', 'sourcePort must be an integer from 0 to 65535');
  }
  // A packet from one of the node's own addresses starts in OUTPUT, as on a real node.
  const entry: Entry = p.entry ?? (env.isLocal(src) ? 'OUTPUT' : 'PREROUTING');
  if (entry !== 'PREROUTING' && entry !== 'OUTPUT') throw new EngineError('BAD_PACKET', "entry must be 'PREROUTING' or 'OUTPUT'");
  return {
    src, dst, sport: p.sourcePort ?? null, dport: port, proto: p.protocol, entry,
    inIface: p.inInterface ?? null, outIface: p.outInterface ?? null,
  };
}

function outcomeKey(run: Run, s: PacketState): string {
  const path = run.path.map((p) => `${p.hook}/${p.table}/${p.chain}/${p.index}`).join(',');
  return `${run.verdict}|${s.dst.text}:${s.dport}|${run.masquerade}|${run.delivery}|${run.conditions.join(';')}|${path}`;
}

/** Warnings of one trace, each said once however many runs meet it. */
export function warningSet(): { warn: (w: TraceWarning) => void; warnings: () => TraceWarning[] } {
  const seen = new Map<string, TraceWarning>();
  return {
    warn: (w) => {
      const key = `${w.code}|${w.rule?.table}|${w.rule?.chain}|${w.rule?.index}|${w.message}`;
      if (!seen.has(key)) seen.set(key, w);
    },
    warnings: () => [...seen.values()],
  };
}

/** The node's environment, noting in `deps` every question asked of it. */
function recordingEnv(env: Env, deps: DependencyRecorder): Env {
  return {
    get primary() {
      deps.primary = env.primary?.text ?? null;
      return env.primary;
    },
    isLocal: (a) => {
      const answer = env.isLocal(a);
      deps.local.set(a.text, { address: a, answer });
      return answer;
    },
    // The routes are part of the request a kept trace answers, not of the node.
    device: env.device,
    unroutable: env.unroutable,
  };
}

/**
 * Traces the first packet of a connection through a ruleset; every possible outcome, exactly.
 * With `deps`, notes what the answer depended on (see TraceDependencies).
 */
export function trace(rs: Ruleset, req: TraceRequest, deps: DependencyRecorder | null = null): TraceResult {
  const compiled = compileRuleset(rs);
  const base = makeEnv(req.node, req.routes);
  const env = deps ? recordingEnv(base, deps) : base;
  const packet = resolvePacket(req.packet, env, rs.family);
  const { warn, warnings } = warningSet();
  interface Acc { run: Run; state: PacketState; probability: Fraction; order: number }
  const outcomes = new Map<string, Acc>();
  const pending: boolean[][] = [[]];
  let runs = 0;
  while (pending.length > 0) {
    const prefix = pending.pop()!;
    if (++runs > MAX_RUNS) {
      warn({ code: 'TOO_MANY_BRANCHES', message: `more than ${MAX_RUNS} random branches; the answer lists the first ones only` });
      break;
    }
    const { run, state } = runOnce(compiled, env, packet, prefix, warn, deps);
    let p = ONE;
    for (const d of run.decisions) if (!d.iface) p = times(p, d.taken ? d.k : SCALE - d.k);
    // Queue the untried alternative of every draw this run made beyond its prefix (deepest first).
    for (let i = run.decisions.length - 1; i >= prefix.length; i--) {
      const alt = run.decisions.slice(0, i).map((d) => d.taken);
      alt.push(!run.decisions[i].taken);
      pending.push(alt);
    }
    const key = outcomeKey(run, state);
    const existing = outcomes.get(key);
    if (existing) existing.probability = add(existing.probability, p);
    else outcomes.set(key, { run, state, probability: p, order: runs });
  }
  if (deps) deps.repairs = repairsId(rs);
  // What was assumed to read the dump as pasted belongs with the answer that rests on it.
  for (const d of rs.diagnostics) {
    if (d.severity !== 'warning' || (d.code !== 'INPUT_REPAIRED' && d.code !== 'TABLE_INFERRED')) continue;
    warn({ code: d.code, message: d.line ? `line ${d.line}${d.column ? `, column ${d.column}` : ''}: ${d.message}` : d.message });
  }
  if (!rs.tables.has('filter')) {
    warn({
      code: 'TABLE_ABSENT',
      message: 'the dump has no filter table: filter verdicts (REJECT for Services without endpoints, DROP under externalTrafficPolicy Local, firewalls) are not part of this answer',
    });
  }
  const list = [...outcomes.values()].sort((a, b) => a.order - b.order);
  for (const group of groupByCase(list, (o) => o.run.conditions)) {
    const drawn = group.map((o) => ({ probability: o.probability, decisions: o.run.decisions.filter((d) => !d.iface).length }));
    checkUniformSplit(drawn, group.length, warn);
  }
  const result: TraceOutcome[] = list.map(({ run, state, probability }) => ({
    probability: toNumber(probability),
    exactProbability: toText(probability),
    verdict: run.verdict!,
    destination: { ip: state.dst.text, port: state.dport },
    masquerade: run.masquerade,
    ...(run.snat ? { snat: run.snat } : {}),
    delivery: run.delivery,
    ...(state.outIface && run.delivery !== 'local' ? { outInterface: state.outIface } : {}),
    ...(run.conditions.length > 0 ? { conditions: run.conditions } : {}),
    ...(run.rejectWith && run.verdict === 'REJECT' ? { rejectWith: run.rejectWith } : {}),
    mark: `0x${state.mark.toString(16)}`,
    path: run.path,
    notes: [...new Set(run.notes), ...affinityNotes(run, rs), ...assumedNotes(run)],
  }));
  const assumptions = new Set<string>();
  for (const o of result) for (const step of o.path) if (step.assumed) assumptions.add(step.assumed);
  return {
    entry: packet.entry,
    packet: { source: packet.src.text, destination: packet.dst.text, port: packet.dport, protocol: packet.proto, sourcePort: packet.sport },
    outcomes: result,
    warnings: warnings(),
    assumptions: [...assumptions],
  };
}

function assumedNotes(run: Run): string[] {
  const notes: string[] = [];
  if (run.masquerade && run.path.some((p) => p.action === 'masquerade' && p.assumed)) {
    notes.push('the masquerade depends on rules the dump does not show (KUBE-POSTROUTING, assumed as kube-proxy writes it)');
  }
  const dnat = run.path.find((p) => p.action === 'dnat' && p.assumed);
  if (dnat) notes.push(`the endpoint comes from a rule comment: ${dnat.chain} is not in the dump`);
  return notes;
}

/** kube-proxy means n endpoints to get 1/n each; rounding of the written decimals can skew that. */
function checkUniformSplit(list: { probability: Fraction; decisions: number }[], n: number, warn: (w: TraceWarning) => void): void {
  if (n < 2 || list.some((o) => o.decisions === 0)) return;
  const deviations = list.map((o) => deviationFromUniform(o.probability, n));
  if (list.every((o) => isExactlyUniform(o.probability, n))) return;
  const worst = Math.max(...deviations.map(Math.abs));
  warn({
    code: 'UNEVEN_SPLIT',
    message: `the ${n} outcomes are not exactly 1/${n} each: the kernel stores each probability as k/2^31, so shares differ from 1/${n} by up to ${worst.toExponential(2)}`,
  });
}

/**
 * `-m recent --set` on the path: later connections from this client stick to the same endpoint,
 * for as long as the `--rcheck` (or `--update`) of the same list in the chain that jumped here says.
 */
function affinityNotes(run: Run, rs: Ruleset): string[] {
  return run.recentSets.map(({ at, name }) => {
    const chain = run.path[at].chain;
    // The rcheck rule for this list sits in the chain that jumped here (KUBE-SVC-…).
    let caller: TraceStep | undefined;
    for (let k = at - 1; k >= 0 && !caller; k--) {
      const p = run.path[k];
      if ((p.action === 'jump' || p.action === 'goto') && ruleOf(p)?.target?.name === chain) caller = p;
    }
    let seconds: string | null = null;
    for (const r of (caller && rs.tables.get(caller.table)?.chains.get(caller.chain)?.rules) || []) {
      const recent = matchOf(r, 'recent')?.options;
      if (!recent || (optionArg(recent, 'name') ?? 'DEFAULT') !== name || !recent.some((o) => o.name === 'rcheck' || o.name === 'update')) continue;
      seconds = optionArg(recent, 'seconds') ?? null;
      if (seconds) break;
    }
    return `session affinity: later connections from this client go to the same endpoint${seconds ? ` for ${seconds} seconds` : ''} (recent list ${name})`;
  });
}

/** A number for what was repaired to read the dump as pasted: the answer repeats it as warnings. */
function repairsId(rs: Ruleset): number {
  const h = new Hasher();
  for (const d of rs.diagnostics) if (d.code === 'INPUT_REPAIRED' || d.code === 'TABLE_INFERRED') h.string(`${d.line}:${d.column}:${d.message}`);
  return h.value();
}

/** For each chain a trace walked, where its rules at the traced positions stand in another ruleset: only those that moved. */
export type Positions = Map<Chain, Map<number, number>>;

const NOTHING_MOVED: Positions = new Map();

/**
 * An address a kept trace's packet was sent to, standing for another: the node's own address, for
 * a trace kept from another node (TraceMemo). Walks to `from` are checked as walks to `to`, and the
 * question "is `from` one of the node's?" is asked of `to`.
 */
export interface AddressSwap {
  readonly from: string;
  readonly to: Addr;
}

/**
 * Would `trace(rs, req)` answer as the trace that recorded `deps` did? When every chain and table
 * it missed is missing here, every walk meets the same rules (maybe elsewhere in the chain), and
 * the node's addresses (`env`, makeEnv of the request) answer its questions alike: where those
 * rules are here (an empty map, not to be changed, when none moved). Otherwise null. With
 * `swap`, the trace was sent to another node's address (AddressSwap).
 */
export function dependenciesHold(rs: Ruleset, env: Env, deps: TraceDependencies, swap?: AddressSwap): Positions | null {
  if (repairsId(rs) !== deps.repairs) return null;
  const compiled = compileRuleset(rs);
  for (const { table, chain } of deps.absent) {
    const chains = compiled.tables.get(table);
    if (chains && (chain === null || chains.has(chain))) return null;
  }
  let moved: Positions | null = null;
  // The positions a walk met its rules at, against where this ruleset has them.
  const noteMoves = (chain: Chain, before: readonly number[], order: readonly number[]) => {
    for (let k = 0; k < order.length; k++) {
      if (before[k] === order[k]) continue;
      moved ??= new Map();
      let map = moved.get(chain);
      if (!map) moved.set(chain, (map = new Map()));
      map.set(before[k], order[k]);
    }
  };
  for (const c of deps.chains) {
    const cc = compiled.tables.get(c.table)?.get(c.chain);
    if (!cc) return null;
    const swapped = swap !== undefined && c.walks.some((w) => w.dst === swap.from);
    // The same rules at the same positions: every walk meets what it met (to the same address).
    if (!swapped && c.text !== null && c.text === wholeText(cc) && cc.chain.policy === c.policy && cc.chain.line > 0 === c.declared) continue;
    for (const w of c.walks) {
      if (swap && w.dst === swap.from) {
        if (w.general === undefined || w.general === null) return null;
        const order = matchable(cc, swap.to.text, w.dport);
        if (generalId(cc, order, swap.to.text) !== w.general) return null;
        noteMoves(cc.chain, w.positions, order);
        continue;
      }
      const order = matchable(cc, w.dst, w.dport);
      if (walkId(cc, order) !== w.id) return null;
      noteMoves(cc.chain, w.positions, order);
    }
  }
  for (const { address, answer } of deps.local) if (env.isLocal(swap && address.text === swap.from ? swap.to : address) !== answer) return null;
  if (deps.primary !== undefined && (env.primary?.text ?? null) !== deps.primary) return null;
  return moved ?? NOTHING_MOVED;
}
