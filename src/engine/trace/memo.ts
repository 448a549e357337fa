/**
 * Traces shared by the nodes of a cluster and the versions of a node. Their rules are nearly all
 * alike, and a packet meets the same rules on most of them: a trace made on one ruleset answers
 * for every ruleset in which each chain it walked offers the packet the same rules (wherever they
 * stand in the chain), and the node's addresses it asked about answer alike (TraceDependencies).
 * The answer is then moved onto the ruleset asked about: its steps name that ruleset's positions
 * and lines, so it equals a trace made there. Answers are kept as copies (no dump stays alive).
 */
import type { Chain, Ruleset } from '../netfilter/ast.ts';
import { ruleCount, ruleLineAt, ruleTextAt } from '../netfilter/rule.ts';
import { ownCopy } from '../text.ts';
import { withRuleAt } from './step-rule.ts';
import type { Addr } from './packet.ts';
import { parseAddr } from './packet.ts';
import type { AddressSwap, Positions, TraceDependencies, TraceRequest, TraceResult, TraceStep, TraceWarning } from './tracer.ts';
import { DependencyRecorder, dependenciesHold, makeEnv, trace } from './tracer.ts';
import { mentionsAddress } from './node-address.ts';

interface Kept {
  readonly deps: TraceDependencies;
  readonly result: TraceResult;
}

/** Where a step (or rule reference) of a trace made elsewhere stands in `rs`: the chain and 0-based position, or null when `rs` lacks it. */
function placeIn(s: { table: string; chain: string; index: number }, rs: Ruleset, moved: Positions): { chain: Chain; at: number } | null {
  const chain = rs.tables.get(s.table)?.chains.get(s.chain);
  if (!chain) return null;
  // Positions that did not move are not listed.
  const at = s.index === 0 ? -1 : moved.size === 0 ? s.index - 1 : moved.get(chain)?.get(s.index - 1) ?? s.index - 1;
  return at < ruleCount(chain) ? { chain, at } : null;
}

/**
 * The steps answers moved onto one ruleset have taken, by chain and 0-based position: a step
 * names a rule of that ruleset and carries it, so the answers moved there share it (answers are
 * read, never changed), where each answer would otherwise hold its own copy of each step.
 */
type MovedSteps = Map<Chain, (TraceStep[] | undefined)[]>;

/**
 * A step of a trace made elsewhere, as a trace made on `rs` has it: that ruleset's position, line
 * and rule (kept answers hold no rules, so that they keep nothing of a dump). Written out field by
 * field as the tracer writes a step: the rule is attached to an object of the same shape.
 */
function moveStep(s: TraceStep, rs: Ruleset, moved: Positions, made: MovedSteps, retext: boolean): TraceStep {
  const place = placeIn(s, rs, moved);
  if (!place) return s;
  const { chain, at } = place;
  if (at < 0) return s.line === chain.line ? s : { ...s, line: chain.line };
  const { hook, table, action, assumed } = s;
  const rule = retext ? ruleTextAt(chain, at) : s.rule;
  let byPosition = made.get(chain);
  if (!byPosition) made.set(chain, (byPosition = []));
  const same = byPosition[at];
  if (same) for (const m of same) if (m.hook === hook && m.action === action && m.rule === rule && m.assumed === assumed) return m;
  const index = at + 1;
  const line = ruleLineAt(chain, at);
  const step: TraceStep = assumed === undefined
    ? { hook, table, chain: s.chain, index, line, rule, action }
    : { hook, table, chain: s.chain, index, line, rule, action, assumed };
  withRuleAt(step, chain, at);
  if (same) same.push(step);
  else byPosition[at] = [step];
  return step;
}

/** A warning's reference to a rule of a trace made elsewhere, as a trace made on `rs` has it. */
function moveRef(r: NonNullable<TraceWarning['rule']>, rs: Ruleset, moved: Positions, retext: boolean): NonNullable<TraceWarning['rule']> {
  const place = placeIn(r, rs, moved);
  if (!place || place.at < 0) return r;
  const { chain, at } = place;
  const text = retext ? ruleTextAt(chain, at) : r.text;
  return withRuleAt({ table: r.table, chain: r.chain, index: at + 1, line: ruleLineAt(chain, at), text }, chain, at);
}

/**
 * The answer moved onto `rs`. `retext`: the answer was traced on another node's address, and its
 * rules' texts are that node's (they differ where kube-proxy wrote the address): each step takes
 * the text of the rule it now names.
 */
function moveResult(r: TraceResult, rs: Ruleset, moved: Positions, made: MovedSteps, retext = false): TraceResult {
  return {
    ...r,
    outcomes: r.outcomes.map((o) => ({ ...o, path: o.path.map((s) => moveStep(s, rs, moved, made, retext)) })),
    warnings: r.warnings.map((w) => (w.rule ? { ...w, rule: moveRef(w.rule, rs, moved, retext) } : w)),
  };
}

/**
 * A packet from elsewhere to one of the node's own IPv4 addresses (a NodePort): which of them, and
 * the address as the tracer writes it. Its trace on another node, sent to that node's address in
 * the same place, is the same trace when its rules are alike: the kept answer stands for it, the
 * address swapped (AddressSwap). IPv6 destinations are not generalised.
 */
interface NodeSlot {
  readonly slot: number;
  readonly address: Addr;
}

function nodeSlot(req: TraceRequest): NodeSlot | null {
  // A node's routes could answer its address and another's differently.
  if (req.routes !== undefined) return null;
  const { addresses } = req.node;
  let dst: Addr;
  let src: Addr;
  try {
    dst = parseAddr(req.packet.destination, 'destination');
    src = parseAddr(req.packet.source, 'source');
  } catch {
    return null;
  }
  if (dst.family !== 'ipv4') return null;
  let slot = -1;
  for (let i = 0; i < addresses.length; i++) {
    let a: Addr;
    try {
      a = parseAddr(addresses[i], 'node address');
    } catch {
      return null;
    }
    // From the node itself, the packet starts elsewhere (OUTPUT): not generalised.
    if (a.text === src.text) return null;
    if (slot < 0 && a.family === 'ipv4' && a.v4 === dst.v4) slot = i;
  }
  return slot < 0 ? null : { slot, address: dst };
}

/** The answer with the node's address `from` replaced by `to` where the packet was sent to it (not translated). */
function swapDestination(r: TraceResult, from: string, to: string): TraceResult {
  return {
    ...r,
    packet: { ...r.packet, destination: to },
    outcomes: r.outcomes.map((o) => (o.verdict !== 'DNAT' && o.destination.ip === from ? { ...o, destination: { ...o.destination, ip: to } } : o)),
  };
}

/**
 * Whether a trace sent to the node's address `from` holds for another node's address: nothing in
 * it names `from` except where the packet was sent (no DNAT to it, no note or rule quoting it).
 */
function generalisable(r: TraceResult, from: string): boolean {
  if (r.outcomes.some((o) => o.verdict === 'DNAT' && o.destination.ip === from)) return false;
  // The rules' texts are compared apart (generalWalkId), and each node's own are shown.
  const rest = swapDestination(r, from, '');
  const scanned = {
    ...rest,
    outcomes: rest.outcomes.map((o) => ({ ...o, path: o.path.map((s) => ({ ...s, rule: '' })) })),
    warnings: rest.warnings.map((w) => (w.rule ? { ...w, rule: { ...w.rule, text: '' } } : w)),
  };
  return !mentionsAddress(JSON.stringify(scanned), from);
}

export class TraceMemo {
  private readonly byPacket = new Map<string, Kept[]>();
  /** The steps answers moved onto each ruleset share; they go with the ruleset. */
  private readonly steps = new WeakMap<Ruleset, MovedSteps>();
  /** One copy of each text the kept answers hold (rule texts recur in most of them). */
  private readonly texts = new Map<string, string>();
  /**
   * One kept step for each distinct step of the kept answers: the outcomes of an answer share most
   * of their path (a Service's 17 endpoints differ in one KUBE-SEP step), and answers share their
   * hooks' built-in chains. Measured on the ClusterIPs of a 2,000-Service node: 25.8 KB a kept
   * answer, against 28.7 KB with a copy of each step.
   */
  private readonly keptSteps = new Map<string, TraceStep>();

  private own(s: string): string {
    let copy = this.texts.get(s);
    if (copy === undefined) this.texts.set((copy = ownCopy(s)), copy);
    return copy;
  }

  /** A copy of an answer that shares no string with a dump; its steps carry no rules (moveStep gives them theirs). */
  private keep(r: TraceResult): TraceResult {
    const own = (s: string) => this.own(s);
    const step = <T extends { table: string; chain: string }>(s: T & ({ rule: string } | { text: string })): T => ({
      ...s, table: own(s.table), chain: own(s.chain), ...('rule' in s ? { rule: own(s.rule) } : { text: own(s.text) }),
    });
    return {
      ...r,
      packet: { ...r.packet, source: own(r.packet.source), destination: own(r.packet.destination) },
      outcomes: r.outcomes.map((o) => ({
        ...o,
        destination: { ...o.destination, ip: own(o.destination.ip) },
        ...(o.snat ? { snat: { ...o.snat, ip: o.snat.ip === null ? null : own(o.snat.ip) } } : {}),
        path: o.path.map((s) => this.keptStep(s, () => ({ ...step(s), action: own(s.action), ...(s.assumed ? { assumed: own(s.assumed) } : {}) }))),
        notes: o.notes.map(own),
        ...(o.outInterface !== undefined ? { outInterface: own(o.outInterface) } : {}),
        ...(o.conditions ? { conditions: o.conditions.map(own) } : {}),
        ...(o.rejectWith !== undefined ? { rejectWith: own(o.rejectWith) } : {}),
      })),
      warnings: r.warnings.map((w) => ({ ...w, message: own(w.message), ...(w.rule ? { rule: step(w.rule) } : {}) })),
      assumptions: r.assumptions.map(own),
    };
  }
  private keptStep(s: TraceStep, copy: () => TraceStep): TraceStep {
    const key = `${s.hook}\u0000${s.table}\u0000${s.chain}\u0000${s.index}\u0000${s.line}\u0000${s.action}\u0000${s.assumed ?? ''}\u0000${s.handle ?? ''}\u0000${s.rule}`;
    let kept = this.keptSteps.get(key);
    if (kept === undefined) {
      kept = copy();
      this.keptSteps.set(ownCopy(key), kept);
    }
    return kept;
  }

  private kept = 0;
  hits = 0;
  /** Hits answered by a trace to another node's address (node-address.ts). */
  swaps = 0;
  misses = 0;

  /** `limit`: how many answers to keep at most (later ones are traced but not kept). */
  constructor(private readonly limit = 60_000) {}

  /** trace(rs, req), or the answer of an equal trace made on another ruleset, moved onto this one. */
  trace(rs: Ruleset, req: TraceRequest): TraceResult {
    const found = this.lookup(rs, req);
    if (found.hit) {
      let made = this.steps.get(rs);
      if (!made) this.steps.set(rs, (made = new Map()));
      return moveResult(found.hit.result, rs, found.hit.moved, made, found.hit.retext);
    }
    return this.traceAndKeep(rs, req, found).fresh;
  }

  /**
   * What trace(rs, req) answers, for callers that read only its outcomes' verdicts, destinations
   * and probabilities: a kept answer as it is (its steps may name another ruleset's positions,
   * lines and rule texts, and carry no rules). Nothing is moved, so holding it costs next to
   * nothing beyond the memo.
   */
  outcomes(rs: Ruleset, req: TraceRequest): TraceResult {
    const found = this.lookup(rs, req);
    if (found.hit) return found.hit.result;
    const made = this.traceAndKeep(rs, req, found);
    return made.kept ?? made.fresh;
  }

  private lookup(rs: Ruleset, req: TraceRequest): Lookup {
    // Everything asked but the node's name and addresses (its addresses are among the dependencies).
    const asked = { ...req, node: { ...req.node, name: undefined, addresses: undefined } };
    const key = `${rs.family}|${JSON.stringify(asked)}`;
    const node = nodeSlot(req);
    // The same packet sent to another node's address in the same place.
    const general = node && `${rs.family}|node ${node.slot}|${JSON.stringify({ ...asked, packet: { ...req.packet, destination: undefined } })}`;
    const env = makeEnv(req.node, req.routes);
    const known = this.byPacket.get(key);
    for (const k of known ?? []) {
      const moved = dependenciesHold(rs, env, k.deps);
      if (moved) {
        this.hits++;
        return { key, node, general, hit: { result: k.result, moved, retext: false } };
      }
    }
    for (const k of (general && this.byPacket.get(general)) || []) {
      const swap: AddressSwap = { from: k.result.packet.destination, to: node!.address };
      const moved = dependenciesHold(rs, env, k.deps, swap);
      if (moved) {
        this.hits++;
        this.swaps++;
        return { key, node, general, hit: { result: swapDestination(k.result, swap.from, swap.to.text), moved, retext: true } };
      }
    }
    return { key, node, general, hit: null };
  }

  /** Traces on `rs` and keeps the answer while under the limit: the fresh answer, and the kept copy when kept. */
  private traceAndKeep(rs: Ruleset, req: TraceRequest, found: Lookup): { fresh: TraceResult; kept: TraceResult | null } {
    this.misses++;
    const deps = new DependencyRecorder(found.node?.address.text ?? null);
    const fresh = trace(rs, req, deps);
    if (this.kept >= this.limit) return { fresh, kept: null };
    const kept = { deps: deps.kept((s) => this.own(s)), result: this.keep(fresh) };
    const key = found.general && found.node && generalisable(kept.result, found.node.address.text) ? found.general : found.key;
    const list = this.byPacket.get(key);
    if (list) list.push(kept);
    else this.byPacket.set(ownCopy(key), [kept]);
    this.kept++;
    return { fresh, kept: kept.result };
  }
}

interface Lookup {
  readonly key: string;
  readonly node: NodeSlot | null;
  /** The key of the packet sent to whichever node's address stands in node.slot. */
  readonly general: string | null;
  /** `retext`: the answer was traced to another node's address (moveResult). */
  readonly hit: { readonly result: TraceResult; readonly moved: Positions; readonly retext: boolean } | null;
}
