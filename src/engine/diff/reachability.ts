/**
 * Where traffic goes, before and after: every frontend of a node in A or B, traced in both
 * snapshots of the node, and the outcome distributions compared.
 *
 * One packet per frontend, the first of a new connection:
 *   - ClusterIP: from a pod address (near the top of `clusterCIDR`) when the caller gives the
 *     cluster CIDR — the usual client of a cluster IP — else from outside the cluster;
 *   - NodePort, LoadBalancer, ExternalIP: from outside the cluster (198.18.0.1 / 2001:2::1, the
 *     benchmarking ranges no cluster uses), where traffic policies and firewalls apply.
 * A frontend whose rules are the same along every path (signature.ts) is counted unchanged
 * without tracing; only the others are traced, and they too count as unchanged when their
 * outcomes agree.
 */
import type { ChainNameIndex } from '../kube/chain-names.ts';
import type { ClusterModel, FrontendKind } from '../kube/model.ts';
import type { Family, Ruleset } from '../netfilter/ast.ts';
import { formatIPv4, formatIPv6, hostPort, parseCidr, parseIPv4, parseIPv6 } from '../net/address.ts';
import type { Protocol } from '../trace/packet.ts';
import { TraceMemo } from '../trace/memo.ts';
import type { TraceOutcome } from '../trace/tracer.ts';
import type { Frontend } from './frontends.ts';
import type { KnownDifferenceInfo, ProbeKind } from './known-differences.ts';
import { compareFrontends, listFrontends } from './frontends.ts';
import { ChainTexts, FactsCache } from './rule-facts.ts';
import { ChainDelta } from './delta.ts';
import type { SharedNumbers } from './signature.ts';
import { RulesetSignature, TextIds } from './signature.ts';

export interface DiffNode {
  readonly name: string;
  readonly addresses: readonly string[];
  /** The node's rules, completed (completeKubeProxy). */
  readonly ruleset: Ruleset;
}

/** One node of A compared with one node of B (usually the same node); `name` is what the report says. */
export interface NodePair {
  readonly name: string;
  readonly a: DiffNode;
  readonly b: DiffNode;
}

export type FrontendChange = 'added' | 'removed' | 'changed';

export interface FrontendDiff {
  readonly node: string;
  /** "ns/name", "" when the rules do not name it. */
  readonly service: string;
  readonly frontend: { readonly ip: string; readonly port: number; readonly protocol: Protocol; readonly kind: FrontendKind };
  readonly change: FrontendChange;
  /** The outcomes in A; empty for an added frontend. */
  readonly before: readonly TraceOutcome[];
  /** The outcomes in B; empty for a removed frontend. */
  readonly after: readonly TraceOutcome[];
  /** Human-readable: "endpoint 10.244.1.5:8080 removed", "verdict DNAT → REJECT", … */
  readonly changes: readonly string[];
  /**
   * Across backends (iptables → nftables): the difference is one the two modes of kube-proxy have
   * on purpose (known-differences.ts); such frontends are not counted as changed.
   */
  readonly known?: KnownDifferenceInfo;
  /**
   * Across backends: not a frontend both modes list but a packet the diff sent to show a known
   * difference (a NodePort on 127.0.0.1, a ClusterIP on another port, an unallocated Service IP).
   */
  readonly probe?: ProbeKind;
}

export interface ReachabilityOptions {
  readonly indexA?: ChainNameIndex | null;
  readonly indexB?: ChainNameIndex | null;
  readonly modelA?: ClusterModel | null;
  readonly modelB?: ClusterModel | null;
  /** The pod network: ClusterIPs are traced from a pod address in it. */
  readonly clusterCIDR?: string;
  /** Where packets from outside the cluster come from (default 198.18.0.1 and 2001:2::1). */
  readonly outsideSource?: { readonly ipv4?: string; readonly ipv6?: string };
  readonly facts?: FactsCache;
  readonly texts?: TextIds;
  readonly chainTexts?: ChainTexts;
  /** Which chains differ, per pair, when already known. */
  readonly deltas?: ReadonlyMap<NodePair, ChainDelta>;
  /** Read every chain for the signatures, not only those that differ or reach one that does. */
  readonly exhaustive?: boolean;
  /**
   * Traces shared by the pairs: a frontend traced on one node answers for the others whose chains
   * it walked are alike (memo.ts), and the nodes of a cluster change alike between versions.
   */
  readonly traces?: TraceMemo;
}

export interface ReachabilityDiff {
  readonly frontends: readonly FrontendDiff[];
  readonly counts: {
    readonly added: number;
    readonly removed: number;
    readonly changed: number;
    readonly unchanged: number;
    /** Frontends whose rules differed and that were traced in both snapshots. */
    readonly traced: number;
  };
  /** Endpoints that started or stopped receiving traffic, over all frontends. */
  readonly endpoints: { readonly added: number; readonly removed: number };
  /** Frontends whose set of verdicts changed. */
  readonly verdictChanges: number;
  /** Destinations of a frontend whose masquerading changed. */
  readonly masqueradeChanges: number;
  /** Destinations of a frontend whose share changed by more than 1e-9. */
  readonly probabilityChanges: number;
}

const OUTSIDE: Readonly<Record<Family, string>> = { ipv4: '198.18.0.1', ipv6: '2001:2::1' };
const EPSILON = 1e-9;

/** An address near the top of a CIDR, where pods are least likely to be endpoints themselves. */
export function podAddress(cidr: string | undefined, family: Family): string | null {
  const c = cidr ? parseCidr(cidr.trim()) : null;
  if (!c || c.family !== family) return null;
  if (c.family === 'ipv4') {
    const size = 2 ** (32 - c.prefix);
    return size < 4 ? null : formatIPv4((parseIPv4(c.address)! + size - 2) >>> 0);
  }
  const size = 1n << BigInt(128 - c.prefix);
  return size < 4n ? null : formatIPv6(parseIPv6(c.address)! + size - 2n);
}

/** Where the diff's packet to a frontend comes from: a pod for a ClusterIP when the pod network is known, else outside. */
export function sourceFor(kind: FrontendKind, family: Family, options: Pick<ReachabilityOptions, 'clusterCIDR' | 'outsideSource'>): string {
  return (kind === 'ClusterIP' ? podAddress(options.clusterCIDR, family) : null) ?? options.outsideSource?.[family] ?? OUTSIDE[family];
}

/** How a frontend is matched across the pair: a NodePort by its position among the node's addresses. */
export function pairKey(f: Frontend): string {
  // An nftables ruleset can hold both families: the position is among the addresses of the NodePort's family.
  const where = f.nodeAddress !== undefined ? `node#${f.nodeAddress}${f.ip.includes(':') ? '/ipv6' : ''}` : f.ip;
  return `${where}|${f.port}|${f.protocol}`;
}

interface Group {
  readonly label: string;
  readonly verdict: string;
  probability: number;
  readonly masquerade: Set<boolean>;
  readonly delivery: Set<string>;
}


/** Outcomes grouped by what a user asks about: which endpoint (or which verdict) and how often. */
function groups(outcomes: readonly TraceOutcome[]): Map<string, Group> {
  const out = new Map<string, Group>();
  for (const o of outcomes) {
    const label = o.verdict === 'DNAT' ? hostPort(o.destination.ip, o.destination.port) : o.verdict;
    let g = out.get(label);
    if (!g) {
      g = { label, verdict: o.verdict, probability: 0, masquerade: new Set(), delivery: new Set() };
      out.set(label, g);
    }
    g.probability += o.probability;
    g.masquerade.add(o.masquerade);
    g.delivery.add(o.delivery ?? 'none');
  }
  return out;
}

function share(p: number): string {
  return String(Number(p.toPrecision(6)));
}

function yesNo(s: Set<boolean>): string {
  return s.size > 1 ? 'mixed' : s.has(true) ? 'yes' : 'no';
}

function verdicts(g: Map<string, Group>): string {
  return [...new Set([...g.values()].map((x) => x.verdict))].sort().join('+') || 'none';
}

export interface Compared {
  readonly changes: string[];
  readonly endpointsAdded: number;
  readonly endpointsRemoved: number;
  readonly verdict: boolean;
  readonly masquerade: number;
  readonly probability: number;
}

/** What differs between two outcome distributions of one frontend. */
export function compareOutcomes(before: readonly TraceOutcome[], after: readonly TraceOutcome[]): Compared {
  const a = groups(before);
  const b = groups(after);
  const changes: string[] = [];
  let endpointsAdded = 0;
  let endpointsRemoved = 0;
  let masquerade = 0;
  let probability = 0;
  const va = verdicts(a);
  const vb = verdicts(b);
  const verdict = va !== vb;
  if (verdict) changes.push(`verdict ${va} → ${vb}`);
  for (const [label, g] of a) {
    if (b.has(label) || g.verdict !== 'DNAT') continue;
    endpointsRemoved++;
    changes.push(`endpoint ${label} removed`);
  }
  for (const [label, g] of b) {
    if (a.has(label) || g.verdict !== 'DNAT') continue;
    endpointsAdded++;
    changes.push(`endpoint ${label} added`);
  }
  for (const [label, ga] of a) {
    const gb = b.get(label);
    if (!gb) continue;
    const what = ga.verdict === 'DNAT' ? `endpoint ${label}` : label;
    if (Math.abs(ga.probability - gb.probability) > EPSILON) {
      probability++;
      changes.push(`share of ${what} ${share(ga.probability)} → ${share(gb.probability)}`);
    }
    const ma = yesNo(ga.masquerade);
    const mb = yesNo(gb.masquerade);
    if (ma !== mb) {
      masquerade++;
      changes.push(`masquerade for ${what} ${ma} → ${mb}`);
    }
    const da = [...ga.delivery].sort().join('+');
    const db = [...gb.delivery].sort().join('+');
    if (da !== db) changes.push(`delivery of ${what} ${da} → ${db}`);
  }
  return { changes, endpointsAdded, endpointsRemoved, verdict, masquerade, probability };
}

/** The order of a diff's frontends: by node, Service, address, port and protocol. */
export function compareDiffs(x: FrontendDiff, y: FrontendDiff): number {
  return (x.node < y.node ? -1 : x.node > y.node ? 1 : 0)
    || (x.service < y.service ? -1 : x.service > y.service ? 1 : 0)
    || compareFrontends(x.frontend, y.frontend);
}

/** A frontend's outcomes, or why its trace failed. */
export interface Traced {
  readonly outcomes: readonly TraceOutcome[];
  readonly error?: string;
}

export function tryTrace(run: () => { readonly outcomes: readonly TraceOutcome[] }): Traced {
  try {
    return { outcomes: run().outcomes };
  } catch (e) {
    return { outcomes: [], error: e instanceof Error ? e.message : String(e) };
  }
}

/** compareOutcomes of two traces; a trace that fails the same way on both sides (a loop in rules both share) is no change. */
export function compareTraced(ra: Traced, rb: Traced): Compared {
  const c = compareOutcomes(ra.outcomes, rb.outcomes);
  if (ra.error !== rb.error) {
    if (ra.error) c.changes.push(`trace in A failed: ${ra.error}`);
    if (rb.error) c.changes.push(`trace in B failed: ${rb.error}`);
  }
  return c;
}

/** The frontend a change is reported under: as B has it, with A's kind when B's rules only let it be guessed. */
export function shownFrontend(a: Frontend, b: Frontend): Frontend {
  return { ...b, kind: b.kindGuessed && !a.kindGuessed ? a.kind : b.kind, service: b.service || a.service };
}

export function frontendDiff(
  node: string, f: Frontend, other: Frontend | undefined, change: FrontendChange,
  before: readonly TraceOutcome[], after: readonly TraceOutcome[], changes: string[],
): FrontendDiff {
  return {
    node, service: f.service || other?.service || '', frontend: { ip: f.ip, port: f.port, protocol: f.protocol, kind: f.kind },
    change, before, after, changes,
  };
}

interface Shared {
  readonly facts: FactsCache;
  readonly texts: TextIds;
  readonly chainTexts: ChainTexts;
  readonly counter: SharedNumbers;
  readonly exhaustive: boolean;
}

/**
 * The signatures of both snapshots of a node. Clean chains (delta.ts) are left unread, and of the
 * chains that are the same on both sides only the jumps to tainted chains are read, when no
 * destination an unchanged chain can rewrite a packet to is one the signatures file keyed rules
 * under: then nothing a packet meets after such a rewrite depends on it beyond what both sides
 * share. Otherwise every chain is read.
 */
function signaturesOf(pair: NodePair, shared: Shared, known?: ChainDelta): { a: RulesetSignature; b: RulesetSignature } {
  const { facts, texts, chainTexts, counter } = shared;
  const make = (delta: ChainDelta | null) => {
    const a = new RulesetSignature(pair.a.ruleset, facts, texts, chainTexts, pair.a.addresses, counter, null, delta);
    const b = new RulesetSignature(pair.b.ruleset, facts, texts, chainTexts, pair.b.addresses, counter, a, delta);
    return { a, b };
  };
  if (shared.exhaustive) return make(null);
  const delta = known ?? new ChainDelta(pair.a.ruleset, pair.b.ruleset, chainTexts);
  const fast = make(delta);
  const rewrites = delta.unchangedRewrites();
  if (rewrites.opaque) return make(null);
  for (const sig of [fast.a, fast.b]) {
    const filed = sig.filedKeys();
    for (const ip of filed.ips) if (rewrites.ips.has(ip)) return make(null);
    for (const port of filed.ports) if (rewrites.ports.has(port)) return make(null);
  }
  return fast;
}

/** Compares the frontends of each pair of nodes. */
export function diffReachability(pairs: readonly NodePair[], options: ReachabilityOptions = {}): ReachabilityDiff {
  const facts = options.facts ?? new FactsCache();
  const texts = options.texts ?? new TextIds();
  const chainTexts = options.chainTexts ?? new ChainTexts();
  const counter: SharedNumbers = { next: 1, targets: new Map() };
  const memo = options.traces ?? new TraceMemo();
  const out: FrontendDiff[] = [];
  let added = 0;
  let removed = 0;
  let unchanged = 0;
  let traced = 0;
  let endpointsAdded = 0;
  let endpointsRemoved = 0;
  let verdictChanges = 0;
  let masqueradeChanges = 0;
  let probabilityChanges = 0;

  for (const pair of pairs) {
    const fa = listFrontends(pair.a.ruleset, pair.a.addresses, { index: options.indexA, model: options.modelA, facts, chainTexts });
    const fb = listFrontends(pair.b.ruleset, pair.b.addresses, { index: options.indexB, model: options.modelB, facts, chainTexts });
    const byKeyB = new Map(fb.map((f) => [pairKey(f), f]));
    const byKeyA = new Map(fa.map((f) => [pairKey(f), f]));
    let sigs: { a: RulesetSignature; b: RulesetSignature } | null = null;
    const signatures = () => (sigs ??= signaturesOf(pair, { facts, texts, chainTexts, counter, exhaustive: options.exhaustive === true }, options.deltas?.get(pair)));

    const run = (node: DiffNode, f: Frontend): Traced => tryTrace(() => memo.trace(node.ruleset, {
      node: { name: node.name, addresses: node.addresses },
      packet: { source: sourceFor(f.kind, node.ruleset.family, options), destination: f.ip, port: f.port, protocol: f.protocol },
    }));
    const report = (f: Frontend, other: Frontend | undefined, change: FrontendChange, before: readonly TraceOutcome[], after: readonly TraceOutcome[], changes: string[]) => {
      out.push(frontendDiff(pair.name, f, other, change, before, after, changes));
    };

    for (const [key, a] of byKeyA) {
      const b = byKeyB.get(key);
      if (!b) {
        removed++;
        const r = run(pair.a, a);
        report(a, undefined, 'removed', r.outcomes, [], [`frontend removed${r.error ? ` (trace failed: ${r.error})` : ''}`]);
        continue;
      }
      const { a: sigA, b: sigB } = signatures();
      const sa = sigA.frontend(a.ip, a.port);
      const sb = sigB.frontend(b.ip, b.port);
      if (sa !== null && sa === sb && a.ip === b.ip) {
        unchanged++;
        continue;
      }
      traced++;
      const ra = run(pair.a, a);
      const rb = run(pair.b, b);
      const c = compareTraced(ra, rb);
      if (c.changes.length === 0) {
        unchanged++;
        continue;
      }
      endpointsAdded += c.endpointsAdded;
      endpointsRemoved += c.endpointsRemoved;
      if (c.verdict) verdictChanges++;
      masqueradeChanges += c.masquerade;
      probabilityChanges += c.probability;
      report(shownFrontend(a, b), a, 'changed', ra.outcomes, rb.outcomes, c.changes);
    }
    for (const [key, b] of byKeyB) {
      if (byKeyA.has(key)) continue;
      added++;
      const r = run(pair.b, b);
      report(b, undefined, 'added', [], r.outcomes, [`frontend added${r.error ? ` (trace failed: ${r.error})` : ''}`]);
    }
  }

  out.sort(compareDiffs);
  return {
    frontends: out,
    counts: { added, removed, changed: out.length - added - removed, unchanged, traced },
    endpoints: { added: endpointsAdded, removed: endpointsRemoved },
    verdictChanges, masqueradeChanges, probabilityChanges,
  };
}
