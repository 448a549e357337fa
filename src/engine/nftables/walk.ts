/**
 * One run of a packet through an nftables program: the hooks of its entry point, each hook's base
 * chains in the kernel's order (hooks.ts), the rules of each chain with jumps, gotos and returns,
 * and the routing decision between hooks. Random choices (numgen) follow a given prefix of
 * choices and take value 0 beyond it; tracer.ts re-runs with every untried value.
 */
import { EngineError } from '../errors.ts';
import type { TraceStep, TraceWarning, Verdict, Delivery } from '../trace/tracer.ts';
import type { Addr, Hook } from '../trace/packet.ts';
import type { BaseChainRegistration, HookSlot, IpFamily, NftHook } from './hooks.ts';
import { CONNTRACK_PRIORITY, hookSchedule } from './hooks.ts';
import type { CompiledNftChain, CompiledNftRule, CtState, Flow, NftEnv, NftPacketState, NftVerdict, RuleContext } from './state.ts';
import type { TakenElement } from '../trace/step-rule.ts';
import { withNftRule } from '../trace/step-rule.ts';

/** A compiled ruleset: its base chains and a way to find any chain. */
export interface NftProgram {
  readonly baseChains: readonly BaseChainRegistration<CompiledNftChain>[];
  /** A chain of a table by name; null when the table has no such chain. */
  chain(table: string, name: string): CompiledNftChain | null;
}

export interface Decision {
  readonly modulus: number;
  readonly k: number;
}

export interface NftRun {
  verdict: Verdict | null;
  rejectWith?: string;
  delivery: Delivery | null;
  masquerade: boolean;
  snat?: { ip: string | null; port: number | null };
  dnat: boolean;
  readonly path: TraceStep[];
  readonly notes: string[];
  readonly decisions: Decision[];
}

type HookVerdict = 'accept' | 'drop' | 'reject';

const HOOK_NAMES: Readonly<Record<NftHook, Hook>> = {
  prerouting: 'PREROUTING', input: 'INPUT', forward: 'FORWARD', output: 'OUTPUT', postrouting: 'POSTROUTING',
};

const POLICY_TEXT = { accept: 'policy accept', drop: 'policy drop' } as const;

/** The kernel's jump stack holds 16 frames (NFT_JUMP_STACK_SIZE); deeper jumps are refused when loading. */
const MAX_DEPTH = 16;
const MAX_STEPS = 100000;

/** The text of a verdict as a path step's action shows it. */
export function verdictText(v: NftVerdict): string {
  switch (v.kind) {
    case 'jump':
    case 'goto':
      return `${v.kind} ${v.chain}`;
    case 'reject':
      return v.with ? `reject with ${v.with}` : 'reject';
    default:
      return v.kind;
  }
}

/**
 * What a rule's expressions see and tell (RuleContext): one object per run, pointed at each rule
 * in turn, so that evaluating a rule makes no closures.
 */
class RuleRun implements RuleContext {
  s!: NftPacketState;
  hook: NftHook = 'prerouting';
  rule: CompiledNftRule | null = null;
  /** The current rule's action texts, joined by commas; null until it has one. */
  private actions: string | null = null;
  /** The verdict-map element the current rule took; null until it takes one. */
  taken: TakenElement | null = null;

  constructor(
    private readonly walker: NftWalker,
    readonly env: NftEnv,
    private readonly warn: (w: TraceWarning) => void,
  ) {}

  /** Points the context at the next rule to evaluate. */
  begin(rule: CompiledNftRule, s: NftPacketState, hook: NftHook): void {
    this.rule = rule;
    this.s = s;
    this.hook = hook;
    this.actions = null;
    this.taken = null;
  }

  /** What the rule did, as its path step shows it. */
  actionText(): string {
    return this.actions ?? 'continue';
  }

  draw(modulus: number): number {
    return this.walker.draw(modulus);
  }

  act(text: string): void {
    this.actions = this.actions === null ? text : `${this.actions}, ${text}`;
  }

  note(text: string): void {
    this.walker.run.notes.push(text);
  }

  took(element: TakenElement): void {
    this.taken = element;
  }

  nat(kind: 'dnat' | 'snat' | 'masquerade' | 'redirect', detail?: { ip: string | null; port: number | null }): void {
    const run = this.walker.run;
    if (kind === 'dnat' || kind === 'redirect') {
      this.s.dnatDone = true;
      run.dnat = true;
    } else {
      this.s.snatDone = true;
      if (kind === 'masquerade') run.masquerade = true;
      else run.snat = detail ?? { ip: null, port: null };
    }
  }

  unmodelled(what: string): void {
    this.warn({ code: 'NOT_MODELLED', message: `${what} is not modelled; the trace went on past it`, rule: this.walker.ref(this.rule!) });
  }
}

/** What evaluating one rule did to the run: enough to do it again without evaluating it. */
interface RuleEffect {
  readonly rule: CompiledNftRule;
  readonly verdict: NftVerdict | null;
  readonly step: TraceStep | null;
  readonly notes: readonly string[];
  /** The packet's fields after the rule. */
  readonly src: Addr;
  readonly dst: Addr;
  readonly sport: number | null;
  readonly dport: number;
  readonly mark: number;
  readonly ctmark: number;
  readonly ctState: CtState;
  readonly iif: string | null;
  readonly oif: string | null;
  readonly dnatDone: boolean;
  readonly snatDone: boolean;
  /** The run's NAT and reject outcome after the rule. */
  readonly masquerade: boolean;
  readonly dnat: boolean;
  readonly snat: NftRun['snat'];
  readonly rejectWith: string | undefined;
}

/**
 * The rules a trace's runs evaluate before its first random draw. The runs differ only in the
 * values drawn, so up to the first draw each one evaluates the same rules on the same packet with
 * the same result: the first run given a value to draw records what each rule did, and the runs
 * after it repeat those effects instead of evaluating the rules again (the set lookups of the
 * prefix, done once per trace instead of once per endpoint).
 */
export class SharedPrefix {
  readonly effects: RuleEffect[] = [];
  /** Set when the recording run reaches the first draw, or a rule whose effects are not recorded. */
  closed = false;
}

type Schedules = Readonly<Record<NftHook, readonly HookSlot<CompiledNftChain>[]>>;

/** Each program's hook schedules by IP family, worked out once (the base chains do not change). */
const schedules = new WeakMap<NftProgram, Partial<Record<IpFamily, Schedules>>>();

/** The base chains of every hook for packets of one family, in the kernel's order. */
function schedulesOf(program: NftProgram, family: IpFamily): Schedules {
  let byFamily = schedules.get(program);
  if (!byFamily) schedules.set(program, (byFamily = {}));
  let out = byFamily[family];
  if (!out) {
    const of = (hook: NftHook) => hookSchedule(program.baseChains, hook, family);
    out = byFamily[family] = { prerouting: of('prerouting'), input: of('input'), forward: of('forward'), output: of('output'), postrouting: of('postrouting') };
  }
  return out;
}

export class NftWalker {
  readonly run: NftRun = { verdict: null, delivery: null, masquerade: false, dnat: false, path: [], notes: [], decisions: [] };
  private steps = 0;
  /** Whether conntrack has seen the packet on this pass (it sits at priority −200 in prerouting and output). */
  private tracked = false;
  /** walkBase's jump stack, kept between base chains. */
  private readonly chains: CompiledNftChain[] = [];
  private readonly positions: number[] = [];
  /** The context every rule of this run is evaluated in, pointed at the rule in turn. */
  private readonly ctx: RuleRun;
  private readonly schedules: Schedules;
  /** How many rules this run has evaluated (or repeated from the shared prefix). */
  private evaluated = 0;
  /** Whether the rule being evaluated drew the run's first value. */
  private drewFirst = false;

  constructor(
    program: NftProgram,
    env: NftEnv,
    family: IpFamily,
    private readonly prefix: readonly number[],
    private readonly warn: (w: TraceWarning) => void,
    /** The trace's record of the rules before the first draw (null for its first run). */
    private readonly shared: SharedPrefix | null = null,
  ) {
    this.ctx = new RuleRun(this, env, warn);
    this.schedules = schedulesOf(program, family);
  }

  draw(modulus: number): number {
    if (modulus <= 1) return 0;
    const i = this.run.decisions.length;
    if (i === 0) this.drewFirst = true;
    const k = i < this.prefix.length ? this.prefix[i] : 0;
    this.run.decisions.push({ modulus, k });
    return k;
  }

  /** A warning's reference to a rule, carrying the parsed rule. */
  ref(cr: CompiledNftRule) {
    const r = cr.ref;
    return withNftRule({ table: r.table, chain: r.chain, index: r.index, line: r.line, text: r.text }, cr.rule);
  }

  private step(hook: NftHook, cr: CompiledNftRule, action: string): void {
    const r = cr.ref;
    const step: { -readonly [K in keyof TraceStep]: TraceStep[K] } = {
      hook: HOOK_NAMES[hook], table: r.table, chain: r.chain, index: r.index, line: r.line, rule: r.text, action,
    };
    if (r.handle !== undefined) step.handle = r.handle;
    this.run.path.push(withNftRule(step, cr.rule, this.ctx.taken));
  }

  /** One rule's verdict (null when it ends without one): evaluated, or repeated from the trace's shared prefix. */
  private evalRule(hook: NftHook, cr: CompiledNftRule, s: NftPacketState): NftVerdict | null {
    const shared = this.shared;
    const n = this.evaluated++;
    if (shared === null) return this.evaluate(hook, cr, s);
    if (shared.closed) {
      const e = n < shared.effects.length ? shared.effects[n] : null;
      return e !== null && e.rule === cr ? this.repeat(e, s) : this.evaluate(hook, cr, s);
    }
    // The recording run: record the rule unless it drew (its result depends on the value) or
    // added to a set (the record keeps the packet's fields, not the sets).
    const run = this.run;
    const paths = run.path.length;
    const notes = run.notes.length;
    const added = s.added.size;
    this.drewFirst = false;
    const verdict = this.evaluate(hook, cr, s);
    if (this.drewFirst || s.added.size !== added || n !== shared.effects.length) {
      shared.closed = true;
      return verdict;
    }
    shared.effects.push({
      rule: cr, verdict, step: run.path.length > paths ? run.path[run.path.length - 1] : null, notes: run.notes.slice(notes),
      src: s.src, dst: s.dst, sport: s.sport, dport: s.dport, mark: s.mark, ctmark: s.ctmark, ctState: s.ctState,
      iif: s.iif, oif: s.oif, dnatDone: s.dnatDone, snatDone: s.snatDone,
      masquerade: run.masquerade, dnat: run.dnat, snat: run.snat, rejectWith: run.rejectWith,
    });
    return verdict;
  }

  /** Does again what a rule did in the run that recorded it. */
  private repeat(e: RuleEffect, s: NftPacketState): NftVerdict | null {
    const run = this.run;
    if (e.step) run.path.push(e.step);
    for (const note of e.notes) run.notes.push(note);
    s.src = e.src;
    s.dst = e.dst;
    s.sport = e.sport;
    s.dport = e.dport;
    s.mark = e.mark;
    s.ctmark = e.ctmark;
    s.ctState = e.ctState;
    s.iif = e.iif;
    s.oif = e.oif;
    s.dnatDone = e.dnatDone;
    s.snatDone = e.snatDone;
    run.masquerade = e.masquerade;
    run.dnat = e.dnat;
    if (e.snat !== undefined) run.snat = e.snat;
    if (e.rejectWith !== undefined) run.rejectWith = e.rejectWith;
    return e.verdict;
  }

  /**
   * Evaluates one rule's expressions left to right, as nft_do_chain does: a failed match ends the
   * rule (statements before it have run), a verdict ends it too. Returns the verdict, or null
   * when the rule ends without one.
   */
  private evaluate(hook: NftHook, cr: CompiledNftRule, s: NftPacketState): NftVerdict | null {
    const ctx = this.ctx;
    ctx.begin(cr, s, hook);
    let flow: Flow = 'next';
    const items = cr.items;
    for (let i = 0; i < items.length; i++) {
      flow = items[i](ctx);
      if (flow !== 'next') break;
    }
    if (flow === 'break') return null;
    if (flow !== 'next' && 'unknown' in flow) {
      this.warn({
        code: 'NOT_MODELLED',
        message: `the trace cannot decide this rule: it depends on ${flow.unknown}; it was assumed not to match`,
        rule: this.ref(cr),
      });
      return null;
    }
    const verdict = flow === 'next' ? null : flow.verdict;
    if (verdict && flow !== 'next' && !flow.quiet && verdict.kind !== 'continue') ctx.act(verdictText(verdict));
    this.step(hook, cr, ctx.actionText());
    if (verdict?.kind === 'reject') this.run.rejectWith = verdict.with ?? 'port-unreachable';
    return verdict;
  }

  /**
   * One base chain's walk. `jump` pushes a frame and `goto` replaces the current one, so a
   * `return` (or the end of a regular chain) goes back to the chain that jumped; `accept` ends
   * this base chain only, `drop` and `reject` end the packet; falling off the base chain
   * applies its policy.
   */
  walkBase(hook: NftHook, base: CompiledNftChain, s: NftPacketState): HookVerdict {
    // The jump stack: frame i is chains[i] at rule positions[i]; depth frames are live.
    const chains = this.chains;
    const positions = this.positions;
    chains[0] = base;
    positions[0] = 0;
    let depth = 1;
    while (depth > 0) {
      const chain = chains[depth - 1];
      const pos = positions[depth - 1];
      if (pos >= chain.length) {
        depth--;
        continue;
      }
      const cr = chain.rule(pos);
      positions[depth - 1] = pos + 1;
      if (++this.steps > MAX_STEPS) throw new EngineError('BAD_PACKET', 'the trace did not finish: the rules loop');
      const v = this.evalRule(hook, cr, s);
      if (v === null || v.kind === 'continue') continue;
      switch (v.kind) {
        case 'accept':
          return 'accept';
        case 'drop':
          return 'drop';
        case 'reject':
          return 'reject';
        case 'return':
          depth--;
          continue;
        case 'jump':
        case 'goto': {
          const target = v.target.chain();
          if (!target) {
            this.warn({
              code: 'MISSING_CHAIN',
              message: `chain ${v.chain} is not in table ${base.table}; the trace went on as if it returned without a verdict`,
              rule: this.ref(cr),
            });
            if (v.kind === 'goto') depth--;
            continue;
          }
          if (depth >= MAX_DEPTH) throw new EngineError('BAD_PACKET', `jumps nest deeper than ${MAX_DEPTH} at ${v.chain}: the kernel refuses such rules`);
          // goto replaces the current frame, jump pushes one.
          if (v.kind === 'jump') depth++;
          chains[depth - 1] = target;
          positions[depth - 1] = 0;
          continue;
        }
      }
    }
    const policy = base.policy ?? 'accept';
    const text = POLICY_TEXT[policy];
    this.run.path.push({ hook: HOOK_NAMES[hook], table: base.table, chain: base.name, index: 0, line: base.line, rule: text, action: text });
    return policy === 'drop' ? 'drop' : 'accept';
  }

  /** conntrack looks at the packet: from here on `ct state` is new, or untracked after notrack. */
  private conntrack(s: NftPacketState): void {
    if (this.tracked) return;
    this.tracked = true;
    if (s.ctState === 'invalid') s.ctState = 'new';
  }

  /**
   * Runs every base chain on a hook in order until one drops or rejects. The NAT core runs the
   * hook's nat chains only for a tracked new connection, one after another until one of them
   * makes a binding (nf_nat_inet_fn); `skipNat` is set when conntrack already holds the NAT of
   * this connection (a packet looping back in).
   */
  hook(hook: NftHook, s: NftPacketState, skipNat: boolean): HookVerdict {
    const entryHook = hook === 'prerouting' || hook === 'output';
    for (const slot of this.schedules[hook]) {
      // Chains at −200 or below in prerouting/output run before conntrack has seen the packet.
      if (entryHook && slot.priority > CONNTRACK_PRIORITY) this.conntrack(s);
      if (slot.kind === 'chain') {
        const v = this.walkBase(hook, slot.chain, s);
        if (v !== 'accept') return v;
        continue;
      }
      if (skipNat || s.ctState !== 'new') continue;
      const destination = hook === 'prerouting' || hook === 'output';
      for (const chain of slot.chains) {
        const v = this.walkBase(hook, chain, s);
        if (v !== 'accept') return v;
        if (destination ? s.dnatDone : s.snatDone) break;
      }
    }
    if (entryHook) this.conntrack(s);
    return 'accept';
  }
}
