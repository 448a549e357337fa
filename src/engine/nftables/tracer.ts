/**
 * The nftables tracer: the first packet of a new connection through every base chain the kernel
 * runs for it, across all tables, with every possible outcome and its exact probability. The
 * answer has the iptables tracer's shape (TraceResult), so that the API, the CLI and the Kubernetes
 * descriptions serve both backends.
 *
 * Randomness (`numgen random mod N`) is explored exhaustively: a run follows one value per draw,
 * and the tracer re-runs with each untried value until every branch has been seen. A run's
 * probability is the product of its values' shares (numgen.ts).
 */
import type { PacketSpec } from '../trace/packet.ts';
import type { Fraction } from '../trace/probability.ts';
import { add, deviationFromUniform, isExactlyUniform, ONE, toNumber, toText } from '../trace/probability.ts';
import type { NodeSpec, TraceOutcome, TraceResult, TraceStep, TraceWarning } from '../trace/tracer.ts';
import { makeEnv, resolvePacket, warningSet } from '../trace/tracer.ts';
import { familySees } from './hooks.ts';
import type { IpFamily } from './hooks.ts';
import { timesNumgenShare } from './numgen.ts';
import type { NftEnv, NftPacketState } from './state.ts';
import type { NftRuleset } from './ast.ts';
import type { CompiledNftProgram } from './compile.ts';
import { compileNftables } from './compile.ts';
import type { NftProgram, NftRun } from './walk.ts';
import { NftWalker, SharedPrefix } from './walk.ts';
import type { ResolvedPacket } from '../trace/tracer.ts';

const MAX_RUNS = 20000;

/**
 * One run: the hooks of the entry point, with the routing decision after prerouting (or after
 * output's DNAT) made on the translated destination.
 */
function runOnce(
  program: NftProgram, env: NftEnv, family: IpFamily, p: ResolvedPacket, prefix: readonly number[], warn: (w: TraceWarning) => void, shared: SharedPrefix | null,
): { run: NftRun; state: NftPacketState } {
  const w = new NftWalker(program, env, family, prefix, warn, shared);
  const fromOutside = p.entry === 'PREROUTING';
  const s: NftPacketState = {
    src: p.src, dst: p.dst, sport: p.sport, dport: p.dport, proto: p.proto, mark: 0, ctmark: 0,
    // conntrack has not seen the packet before priority −200.
    ctState: 'invalid',
    // A packet the node makes has no input interface; no packet has an output interface before routing.
    iif: fromOutside ? p.inIface : '',
    oif: '',
    dnatDone: false, snatDone: false, added: new Set(),
  };
  const run = w.run;
  if (fromOutside) {
    let v = w.hook('prerouting', s, false);
    if (v !== 'accept') return finished(run, s, v);
    // The routing decision looks at the destination after DNAT.
    if (env.isLocal(s.dst)) {
      run.delivery = 'local';
      return finished(run, s, w.hook('input', s, false));
    }
    run.delivery = 'forward';
    s.oif = p.outIface;
    v = w.hook('forward', s, false);
    if (v !== 'accept') return finished(run, s, v);
    return finished(run, s, w.hook('postrouting', s, false));
  }
  // A locally made packet is routed before output, and routed again after a DNAT there.
  s.oif = env.isLocal(s.dst) ? 'lo' : p.outIface;
  let v = w.hook('output', s, false);
  if (v !== 'accept') return finished(run, s, v);
  const local = env.isLocal(s.dst);
  s.oif = local ? 'lo' : p.outIface;
  run.delivery = local ? 'local' : 'output';
  v = w.hook('postrouting', s, false);
  if (v !== 'accept' || !local) return finished(run, s, v);
  // Out and straight back in on loopback, still a new connection; conntrack keeps its NAT, so the
  // nat chains are not run again.
  s.iif = 'lo';
  s.oif = '';
  v = w.hook('prerouting', s, true);
  if (v !== 'accept') return finished(run, s, v);
  return finished(run, s, w.hook('input', s, true));
}

/** The run's end: its verdict from the last hook's. */
function finished(run: NftRun, state: NftPacketState, v: 'accept' | 'drop' | 'reject'): { run: NftRun; state: NftPacketState } {
  run.verdict = v === 'drop' ? 'DROP' : v === 'reject' ? 'REJECT' : run.dnat ? 'DNAT' : 'ACCEPT';
  return { run, state };
}

/** What sets outcomes apart besides their paths (compared step by step in samePath). */
function outcomeKey(run: NftRun, s: NftPacketState): string {
  return `${run.verdict}|${s.dst.text}:${s.dport}|${run.masquerade}|${run.delivery}|${run.path.length}`;
}

function samePath(a: readonly TraceStep[], b: readonly TraceStep[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x.hook !== y.hook || x.table !== y.table || x.chain !== y.chain || x.index !== y.index || x.action !== y.action) return false;
  }
  return true;
}

function probabilityOf(run: NftRun): Fraction {
  let p = ONE;
  for (const d of run.decisions) p = timesNumgenShare(p, d.k, d.modulus);
  return p;
}

/**
 * Compiled programs, one per ruleset object: a ruleset traced again (the API's caches keep parsed
 * rulesets) reuses the chains and sets its earlier traces compiled.
 */
const programs = new WeakMap<NftRuleset, CompiledNftProgram>();

/** The compiled program of a ruleset, made on first use. */
export function nftProgramOf(rs: NftRuleset): CompiledNftProgram {
  let p = programs.get(rs);
  if (!p) programs.set(rs, (p = compileNftables(rs)));
  return p;
}

/** How many rules traces of this ruleset have compiled (0 before the first trace). */
export function nftCompiledRuleCount(rs: NftRuleset): number {
  return programs.get(rs)?.stats.rules ?? 0;
}

/** Traces the first packet of a connection through an nftables ruleset; every possible outcome, exactly. */
export function traceNftables(rs: NftRuleset, req: { readonly node: NodeSpec; readonly packet: PacketSpec }): TraceResult {
  return traceNftProgram(nftProgramOf(rs), req);
}

/** Traces the first packet of a connection through a compiled nftables ruleset; every outcome, exactly. */
export function traceNftProgram(program: NftProgram & { readonly skipped?: readonly string[] }, req: { readonly node: NodeSpec; readonly packet: PacketSpec }): TraceResult {
  const base = makeEnv(req.node);
  // eslint-disable-next-line @typescript-eslint/unbound-method -- isLocal is an arrow function (trace/tracer.ts makeEnv), declared as a method in compile.ts
  const env: NftEnv = { isLocal: base.isLocal, primary: base.primary };
  const packet = resolvePacket(req.packet, base, null);
  const family = packet.dst.family;
  const { warn, warnings } = warningSet();
  if (!program.baseChains.some((c) => familySees(c.family, family))) {
    warn({
      code: 'NO_BASE_CHAINS',
      message: `no base chain of the ruleset sees ${family === 'ipv4' ? 'IPv4' : 'IPv6'} packets: nothing in it acts on this packet (a dump of one table, or of regular chains only, cannot say what the node does)`,
    });
  }
  if (program.skipped && program.skipped.length > 0) {
    warn({
      code: 'NOT_MODELLED',
      message: `base chains on device hooks (ingress, egress) are not traced: ${program.skipped.slice(0, 5).join(', ')}${program.skipped.length > 5 ? ', …' : ''}`,
    });
  }
  interface Acc { run: NftRun; state: NftPacketState; probability: Fraction; order: number }
  const outcomes = new Map<string, Acc[]>();
  const pending: number[][] = [[]];
  const shared = new SharedPrefix();
  let runs = 0;
  while (pending.length > 0) {
    const prefix = pending.pop()!;
    if (++runs > MAX_RUNS) {
      warn({ code: 'TOO_MANY_BRANCHES', message: `more than ${MAX_RUNS} random branches; the answer lists the first ones only` });
      break;
    }
    // Every run but the first has values to draw; they share the rules before the first draw.
    const { run, state } = runOnce(program, env, family, packet, prefix, warn, prefix.length > 0 ? shared : null);
    // Queue every untried value of every draw this run made beyond its prefix (values above 0,
    // since a draw beyond the prefix takes 0); the deepest are tried first.
    for (let i = prefix.length; i < run.decisions.length; i++) {
      const head = run.decisions.slice(0, i).map((d) => d.k);
      for (let k = run.decisions[i].modulus - 1; k >= 1; k--) pending.push([...head, k]);
    }
    const p = probabilityOf(run);
    const key = outcomeKey(run, state);
    let same = outcomes.get(key);
    if (!same) outcomes.set(key, (same = []));
    const existing = same.find((o) => samePath(o.run.path, run.path));
    if (existing) existing.probability = add(existing.probability, p);
    else same.push({ run, state, probability: p, order: runs });
  }
  const list = [...outcomes.values()].flat().sort((a, b) => byDraws(a.run, b.run) || a.order - b.order);
  checkNumgenSplit(list.map((o) => ({ probability: o.probability, draws: o.run.decisions.length })), warn);
  const result: TraceOutcome[] = list.map(({ run, state, probability }) => ({
    probability: toNumber(probability),
    exactProbability: toText(probability),
    verdict: run.verdict!,
    destination: { ip: state.dst.text, port: state.dport },
    masquerade: run.masquerade,
    ...(run.snat ? { snat: run.snat } : {}),
    delivery: run.delivery,
    ...(run.rejectWith && run.verdict === 'REJECT' ? { rejectWith: run.rejectWith } : {}),
    mark: `0x${state.mark.toString(16)}`,
    path: run.path,
    notes: [...new Set(run.notes)],
  }));
  return {
    entry: packet.entry,
    packet: { source: packet.src.text, destination: packet.dst.text, port: packet.dport, protocol: packet.proto, sourcePort: packet.sport },
    outcomes: result,
    warnings: warnings(),
    assumptions: [],
    backend: 'nftables',
  };
}

/** Outcomes in the order of the values drawn: value 0 of the first draw first. */
function byDraws(a: NftRun, b: NftRun): number {
  const n = Math.min(a.decisions.length, b.decisions.length);
  for (let i = 0; i < n; i++) if (a.decisions[i].k !== b.decisions[i].k) return a.decisions[i].k - b.decisions[i].k;
  return a.decisions.length - b.decisions.length;
}

/** kube-proxy means n endpoints to get 1/n each; numgen gives exactly that only for powers of two. */
function checkNumgenSplit(list: { probability: Fraction; draws: number }[], warn: (w: TraceWarning) => void): void {
  const n = list.length;
  if (n < 2 || list.some((o) => o.draws === 0)) return;
  if (list.every((o) => isExactlyUniform(o.probability, n))) return;
  const worst = Math.max(...list.map((o) => Math.abs(deviationFromUniform(o.probability, n))));
  warn({
    code: 'UNEVEN_SPLIT',
    message: `the ${n} outcomes are not exactly 1/${n} each: numgen maps a random 32-bit value v to (v × N) >> 32, so shares differ from 1/${n} by up to ${worst.toExponential(2)}`,
  });
}

