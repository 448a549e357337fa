/**
 * Traces shared by the nodes of a cluster and the versions of a node. Their rules are nearly all
 * alike, and a packet meets the same rules on most of them: a trace made on one ruleset answers
 * for every ruleset in which each chain it walked offers the packet the same rules (wherever they
 * stand in the chain), and the node's addresses it asked about answer alike (TraceDependencies).
 * The answer is then moved onto the ruleset asked about: its steps name that ruleset's positions
 * and lines, so it equals a trace made there. Answers are kept as copies (no dump stays alive).
 */
import type { Chain, Ruleset } from '../netfilter/ast.ts';
import { ruleCount, ruleLineAt } from '../netfilter/rule.ts';
import { ownCopy } from '../text.ts';
import { withRuleAt } from './step-rule.ts';
import type { Positions, TraceDependencies, TraceRequest, TraceResult, TraceStep, TraceWarning } from './tracer.ts';
import { DependencyRecorder, dependenciesHold, makeEnv, trace } from './tracer.ts';

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
function moveStep(s: TraceStep, rs: Ruleset, moved: Positions, made: MovedSteps): TraceStep {
  const place = placeIn(s, rs, moved);
  if (!place) return s;
  const { chain, at } = place;
  if (at < 0) return s.line === chain.line ? s : { ...s, line: chain.line };
  const { hook, table, rule, action, assumed } = s;
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
function moveRef(r: NonNullable<TraceWarning['rule']>, rs: Ruleset, moved: Positions): NonNullable<TraceWarning['rule']> {
  const place = placeIn(r, rs, moved);
  if (!place || place.at < 0) return r;
  const { chain, at } = place;
  return withRuleAt({ table: r.table, chain: r.chain, index: at + 1, line: ruleLineAt(chain, at), text: r.text }, chain, at);
}

function moveResult(r: TraceResult, rs: Ruleset, moved: Positions, made: MovedSteps): TraceResult {
  return {
    ...r,
    outcomes: r.outcomes.map((o) => ({ ...o, path: o.path.map((s) => moveStep(s, rs, moved, made)) })),
    warnings: r.warnings.map((w) => (w.rule ? { ...w, rule: moveRef(w.rule, rs, moved) } : w)),
  };
}

export class TraceMemo {
  private readonly byPacket = new Map<string, Kept[]>();
  /** The steps answers moved onto each ruleset share; they go with the ruleset. */
  private readonly steps = new WeakMap<Ruleset, MovedSteps>();
  /** One copy of each text the kept answers hold (rule texts recur in most of them). */
  private readonly texts = new Map<string, string>();

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
        path: o.path.map((s) => ({ ...step(s), action: own(s.action), ...(s.assumed ? { assumed: own(s.assumed) } : {}) })),
        notes: o.notes.map(own),
        ...(o.outInterface !== undefined ? { outInterface: own(o.outInterface) } : {}),
        ...(o.conditions ? { conditions: o.conditions.map(own) } : {}),
        ...(o.rejectWith !== undefined ? { rejectWith: own(o.rejectWith) } : {}),
      })),
      warnings: r.warnings.map((w) => ({ ...w, message: own(w.message), ...(w.rule ? { rule: step(w.rule) } : {}) })),
      assumptions: r.assumptions.map(own),
    };
  }
  private kept = 0;
  hits = 0;
  misses = 0;

  /** `limit`: how many answers to keep at most (later ones are traced but not kept). */
  constructor(private readonly limit = 60_000) {}

  /** trace(rs, req), or the answer of an equal trace made on another ruleset, moved onto this one. */
  trace(rs: Ruleset, req: TraceRequest): TraceResult {
    const found = this.lookup(rs, req);
    if (found.hit) {
      let made = this.steps.get(rs);
      if (!made) this.steps.set(rs, (made = new Map()));
      return moveResult(found.hit.result, rs, found.hit.moved, made);
    }
    return this.traceAndKeep(rs, req, found.key, found.known).fresh;
  }

  /**
   * What trace(rs, req) answers, for callers that read only its outcomes' verdicts, destinations
   * and probabilities: a kept answer as it is, whose steps may name another ruleset's positions
   * and lines and carry no rules. Nothing is moved or copied, so holding it costs nothing beyond
   * the memo.
   */
  outcomes(rs: Ruleset, req: TraceRequest): TraceResult {
    const found = this.lookup(rs, req);
    if (found.hit) return found.hit.result;
    const made = this.traceAndKeep(rs, req, found.key, found.known);
    return made.kept ?? made.fresh;
  }

  private lookup(rs: Ruleset, req: TraceRequest): { key: string; known: Kept[] | undefined; hit: { result: TraceResult; moved: Positions } | null } {
    // Everything asked but the node's name and addresses (its addresses are among the dependencies).
    const key = `${rs.family}|${JSON.stringify({ ...req, node: { ...req.node, name: undefined, addresses: undefined } })}`;
    const known = this.byPacket.get(key);
    if (known) {
      const env = makeEnv(req.node, req.routes);
      for (const k of known) {
        const moved = dependenciesHold(rs, env, k.deps);
        if (moved) {
          this.hits++;
          return { key, known, hit: { result: k.result, moved } };
        }
      }
    }
    return { key, known, hit: null };
  }

  /** Traces on `rs` and keeps the answer while under the limit: the fresh answer, and the kept copy when kept. */
  private traceAndKeep(rs: Ruleset, req: TraceRequest, key: string, known: Kept[] | undefined): { fresh: TraceResult; kept: TraceResult | null } {
    this.misses++;
    const deps = new DependencyRecorder();
    const fresh = trace(rs, req, deps);
    if (this.kept >= this.limit) return { fresh, kept: null };
    const kept = { deps: deps.kept((s) => this.own(s)), result: this.keep(fresh) };
    if (known) known.push(kept);
    else this.byPacket.set(ownCopy(key), [kept]);
    this.kept++;
    return { fresh, kept: kept.result };
  }
}
