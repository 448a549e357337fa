/**
 * Traces shared by the nodes of a cluster and the versions of a node. Their rules are nearly all
 * alike, and a packet meets the same rules on most of them: a trace made on one ruleset answers
 * for every ruleset in which each chain it walked offers the packet the same rules (wherever they
 * stand in the chain), and the node's addresses it asked about answer alike (TraceDependencies).
 * The answer is then moved onto the ruleset asked about: its steps name that ruleset's positions
 * and lines, so it equals a trace made there. Answers are kept as copies (no dump stays alive).
 */
import type { Rule, Ruleset } from '../netfilter/ast.ts';
import { ruleLineAt, TextRule } from '../netfilter/rule.ts';
import { detached, ownCopy } from '../text.ts';
import { compileRuleset } from './compile.ts';
import { ruleOf, withRule } from './step-rule.ts';
import type { Positions, TraceDependencies, TraceRequest, TraceResult, TraceStep } from './tracer.ts';
import { dependenciesHold, newDependencies, trace } from './tracer.ts';

interface Kept {
  readonly deps: TraceDependencies;
  readonly result: TraceResult;
}

/**
 * Where a step of a trace made elsewhere stands in `rs`. A step that moved gets the rule of `rs`
 * at its new position, the one a trace made on `rs` holds; one that did not keeps the kept copy of
 * the rule, which has the same text, position and line.
 */
function moveStep<T extends { table: string; chain: string; index: number; line: number }>(s: T, rs: Ruleset, moved: Positions): T {
  // dependenciesHold compiled every chain the trace walked.
  const cc = compileRuleset(rs).tables.get(s.table)?.get(s.chain);
  if (!cc) return s;
  const chain = cc.chain;
  if (s.index === 0) return s.line === chain.line ? s : { ...s, line: chain.line };
  // Positions that did not move are not listed; the line is this ruleset's either way.
  const at = moved.get(`${s.table}\0${s.chain}`)?.get(s.index - 1) ?? s.index - 1;
  if (at >= cc.length) return s;
  const line = ruleLineAt(chain, at);
  return at === s.index - 1 && line === s.line ? s : withRule({ ...s, index: at + 1, line }, cc.rule(at).rule);
}

function moveResult(r: TraceResult, rs: Ruleset, moved: Positions): TraceResult {
  return {
    ...r,
    outcomes: r.outcomes.map((o) => ({ ...o, path: o.path.map((s: TraceStep) => moveStep(s, rs, moved)) })),
    warnings: r.warnings.map((w) => (w.rule ? { ...w, rule: moveStep(w.rule, rs, moved) } : w)),
  };
}

export class TraceMemo {
  private readonly byPacket = new Map<string, Kept[]>();
  /** One copy of each text the kept answers hold (rule texts recur in most of them). */
  private readonly texts = new Map<string, string>();
  /** One copy of each rule the kept answers stand on, under its text's copy in `texts`. */
  private readonly rules = new Map<string, Rule[]>();

  private own(s: string): string {
    let copy = this.texts.get(s);
    if (copy === undefined) this.texts.set((copy = ownCopy(s)), copy);
    return copy;
  }

  /** A copy of a rule that shares no string with a dump (a parsed rule's parts are read again from the copy, when asked for). */
  private ownRule(r: Rule): Rule {
    const text = this.own(r.text);
    let same = this.rules.get(text);
    if (same === undefined) this.rules.set(text, (same = []));
    let copy = same.find((c) => c.index === r.index && c.line === r.line && c.chain === r.chain && c.table === r.table && c.synthesized === r.synthesized);
    if (copy === undefined) {
      copy = r instanceof TextRule ? r.ownCopy((s) => this.own(s)) : detached(r);
      same.push(copy);
    }
    return copy;
  }

  /** A copy of an answer that shares no string with a dump, its steps with copies of their rules. */
  private keep(r: TraceResult): TraceResult {
    const own = (s: string) => this.own(s);
    const step = <T extends { table: string; chain: string }>(s: T & ({ rule: string } | { text: string }), more: Partial<T> = {}): T => {
      const copy = { ...s, ...more, table: own(s.table), chain: own(s.chain), ...('rule' in s ? { rule: own(s.rule) } : { text: own(s.text) }) };
      const rule = ruleOf(s);
      return rule ? withRule(copy, this.ownRule(rule)) : copy;
    };
    return {
      ...r,
      packet: { ...r.packet, source: own(r.packet.source), destination: own(r.packet.destination) },
      outcomes: r.outcomes.map((o) => ({
        ...o,
        destination: { ...o.destination, ip: own(o.destination.ip) },
        ...(o.snat ? { snat: { ...o.snat, ip: o.snat.ip === null ? null : own(o.snat.ip) } } : {}),
        path: o.path.map((s) => step(s, { action: own(s.action), ...(s.assumed ? { assumed: own(s.assumed) } : {}) })),
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
    // Everything asked but the node's name and addresses (its addresses are among the dependencies).
    const key = `${rs.family}|${JSON.stringify({ ...req, node: { ...req.node, name: undefined, addresses: undefined } })}`;
    const known = this.byPacket.get(key);
    if (known) {
      for (const k of known) {
        const moved = dependenciesHold(rs, req, k.deps);
        if (moved) {
          this.hits++;
          return moveResult(k.result, rs, moved);
        }
      }
    }
    this.misses++;
    const deps = newDependencies();
    const result = trace(rs, req, deps);
    if (this.kept < this.limit) {
      const keys = <V>(m: Map<string, V>) => new Map([...m].map(([k, v]) => [ownCopy(k), v]));
      const kept = { deps: { chains: keys(deps.chains), positions: keys(deps.positions), local: keys(deps.local), primary: deps.primary }, result: this.keep(result) };
      if (known) known.push(kept);
      else this.byPacket.set(ownCopy(key), [kept]);
      this.kept++;
    }
    return result;
  }
}
