/**
 * Snapshot A against snapshot B: where traffic goes (per frontend and node), what changed in the
 * rules (per node and table, renames of kube-proxy's hashed chains reported once), and what
 * changed in the manifests. Pure and synchronous, like the rest of the engine.
 *
 * Nodes are paired by name; when each side has exactly one node they are paired whatever their
 * names (two dumps of different nodes or clusters). `options.node` diffs one node, and
 * `{ nodeA, nodeB }` pairs two differently named nodes.
 */
import type { ChainNameIndex } from '../kube/chain-names.ts';
import { isNftables } from '../rules.ts';
import type { ClusterModel } from '../kube/model.ts';
import { EngineError } from '../errors.ts';
import { detached } from '../text.ts';
import { ChainDelta } from './delta.ts';
import type { ManifestChange } from './manifests-diff.ts';
import { diffManifests } from './manifests-diff.ts';
import type { AnyDiffNode, AnyNodePair, Backend, KnownDifference } from './backends.ts';
import { backendOf, diffByTracing } from './backends.ts';
import { diffNftRules } from './nft-rules-diff.ts';
import type { NftNodePair } from './nft-rules-diff.ts';
import type { FrontendDiff, NodePair } from './reachability.ts';
import { compareDiffs, diffReachability } from './reachability.ts';
import { ChainTexts, FactsCache } from './rule-facts.ts';
import { TraceMemo } from '../trace/memo.ts';
import type { RuleChange, RuleCounter, RulesDiffCounts } from './rules-diff.ts';
import { diffRules, NO_RULE_CHANGES } from './rules-diff.ts';

export interface DiffSide {
  /** Nodes with rules of either backend (iptables rules completed). */
  readonly nodes: readonly AnyDiffNode[];
  readonly model?: ClusterModel | null;
  readonly index?: ChainNameIndex | null;
}

export interface DiffOptions {
  /** Diff only this node, or pair two differently named nodes. */
  readonly node?: string | { readonly nodeA: string; readonly nodeB: string };
  /** The pod network: ClusterIPs are traced from a pod address in it (else from outside the cluster). */
  readonly clusterCIDR?: string;
  /** Where packets from outside the cluster come from (default 198.18.0.1 and 2001:2::1). */
  readonly outsideSource?: { readonly ipv4?: string; readonly ipv6?: string };
  /**
   * Read every chain of both snapshots for the reachability signatures, even the chains that are
   * the same on both sides with all they reach (slower; the answer is the same: tests check it).
   */
  readonly exhaustive?: boolean;
  /** Compare the manifests too (default true when a side has a model). */
  readonly manifests?: boolean;
  /**
   * What rule texts mean, shared by diffs of several pairs of nodes: most rules are the same on
   * every node, and are read once (NodeByNodeDiff passes one).
   */
  readonly facts?: FactsCache;
  /** Traces shared by diffs of several pairs of nodes (NodeByNodeDiff passes one). */
  readonly traces?: TraceMemo;
}

export interface DiffSummary {
  /** `known`: frontends whose outcomes differ as the two backends differ on purpose (not counted as changed). */
  readonly frontends: { readonly added: number; readonly removed: number; readonly changed: number; readonly unchanged: number; readonly known: number };
  readonly endpoints: { readonly added: number; readonly removed: number };
  readonly verdictChanges: number;
  readonly masqueradeChanges: number;
  readonly probabilityChanges: number;
  readonly rules: RulesDiffCounts;
  /**
   * Compared only when both snapshots have manifests (`compared`); otherwise `reason` says which
   * side lacks them, and nothing is listed as added or removed for it.
   */
  readonly manifests: { readonly added: number; readonly removed: number; readonly changed: number; readonly compared: boolean; readonly reason?: string };
  /** Nodes only in `to` (added), only in `from` (removed), and in both (compared). */
  readonly nodes: { readonly added: number; readonly removed: number; readonly compared: number };
}

export interface DiffResult {
  readonly summary: DiffSummary;
  readonly frontends: readonly FrontendDiff[];
  readonly rules: readonly RuleChange[];
  readonly manifests: readonly ManifestChange[];
  /** Nodes that are in only one snapshot (not compared), by side. */
  readonly unpairedNodes: { readonly a: readonly string[]; readonly b: readonly string[] };
  /** The rule backends of the nodes compared, and which pairs of nodes are of different backends. */
  readonly backends: DiffBackends;
  /** Differences the two backends have on purpose, per node, with their code and reason. */
  readonly knownDifferences: readonly KnownDifference[];
}

/** `mixed`: some nodes of the side are of each backend; `none`: no node was compared. */
export type SideBackend = Backend | 'mixed' | 'none';

export interface DiffBackends {
  readonly from: SideBackend;
  readonly to: SideBackend;
  /**
   * Pairs of nodes (as `frontends[].node` names them) whose rules are of different backends: their
   * rules are not listed rule by rule (they have nothing in common), only where traffic goes.
   */
  readonly across: readonly string[];
}

function sideBackend(seen: ReadonlySet<Backend>): SideBackend {
  return seen.size === 0 ? 'none' : seen.size > 1 ? 'mixed' : [...seen][0];
}

function pairNodes(a: DiffSide, b: DiffSide, option: DiffOptions['node']): { pairs: AnyNodePair[]; onlyA: string[]; onlyB: string[] } {
  const find = (side: DiffSide, name: string, which: 'A' | 'B'): AnyDiffNode => {
    const n = side.nodes.find((x) => x.name === name);
    if (!n) throw new EngineError('BAD_PACKET', `snapshot ${which} has no node '${name}'`);
    return n;
  };
  if (typeof option === 'string') {
    return { pairs: [{ name: option, a: find(a, option, 'A'), b: find(b, option, 'B') }], onlyA: [], onlyB: [] };
  }
  if (option) {
    const name = option.nodeA === option.nodeB ? option.nodeA : `${option.nodeA} → ${option.nodeB}`;
    return { pairs: [{ name, a: find(a, option.nodeA, 'A'), b: find(b, option.nodeB, 'B') }], onlyA: [], onlyB: [] };
  }
  if (a.nodes.length === 1 && b.nodes.length === 1) {
    const [x, y] = [a.nodes[0], b.nodes[0]];
    return { pairs: [{ name: x.name === y.name ? x.name : `${x.name} → ${y.name}`, a: x, b: y }], onlyA: [], onlyB: [] };
  }
  const byName = new Map(b.nodes.map((n) => [n.name, n]));
  const pairs: AnyNodePair[] = [];
  for (const n of a.nodes) {
    const other = byName.get(n.name);
    if (other) pairs.push({ name: n.name, a: n, b: other });
  }
  const names = new Set(a.nodes.map((n) => n.name));
  return {
    pairs,
    onlyA: a.nodes.filter((n) => !byName.has(n.name)).map((n) => n.name),
    onlyB: b.nodes.filter((n) => !names.has(n.name)).map((n) => n.name),
  };
}

export function diffSnapshots(a: DiffSide, b: DiffSide, options: DiffOptions = {}): DiffResult {
  const { pairs: all, onlyA, onlyB } = pairNodes(a, b, options.node);
  const facts = options.facts ?? new FactsCache();
  const chainTexts = new ChainTexts();
  // Pairs of iptables nodes take the signature shortcut and the rule-by-rule comparison of
  // iptables mode; every pair with an nftables side is traced frontend by frontend.
  const pairs: NodePair[] = [];
  const traced: AnyNodePair[] = [];
  const nftPairs: NftNodePair[] = [];
  const across: string[] = [];
  const backends = { from: new Set<Backend>(), to: new Set<Backend>() };
  for (const p of all) {
    const ra = p.a.ruleset;
    const rb = p.b.ruleset;
    backends.from.add(backendOf(ra));
    backends.to.add(backendOf(rb));
    if (!isNftables(ra) && !isNftables(rb)) pairs.push({ name: p.name, a: { ...p.a, ruleset: ra }, b: { ...p.b, ruleset: rb } });
    else {
      traced.push(p);
      if (isNftables(ra) && isNftables(rb)) nftPairs.push({ name: p.name, a: ra, b: rb });
      else across.push(p.name);
    }
  }
  const deltas = new Map(pairs.map((p) => [p, new ChainDelta(p.a.ruleset, p.b.ruleset, chainTexts)]));
  const where = {
    ...(options.clusterCIDR !== undefined ? { clusterCIDR: options.clusterCIDR } : {}),
    ...(options.outsideSource ? { outsideSource: options.outsideSource } : {}),
  };
  const reach = diffReachability(pairs, {
    indexA: a.index, indexB: b.index, modelA: a.model, modelB: b.model, facts, chainTexts, deltas, ...where,
    ...(options.exhaustive ? { exhaustive: true } : {}),
    ...(options.traces ? { traces: options.traces } : {}),
  });
  // Two nftables rulesets with no rule, set or element change, on nodes of the same addresses, send
  // every packet the same way: their frontends are not traced.
  const nftRules = diffNftRules(nftPairs);
  const changedNft = new Set(nftRules.changes.map((c) => c.node));
  const sameAddresses = (p: AnyNodePair) => [...p.a.addresses].sort().join(',') === [...p.b.addresses].sort().join(',');
  const sameRules = new Set(traced.filter((p) => nftPairs.some((q) => q.name === p.name) && !changedNft.has(p.name) && sameAddresses(p)));
  const byTracing = diffByTracing(traced, { indexA: a.index, indexB: b.index, modelA: a.model, modelB: b.model, facts, chainTexts, sameRules, ...where });
  const rules = diffRules(pairs, { indexA: a.index, indexB: b.index, chainTexts, deltas });
  // A diff of one pair within a node-by-node diff leaves the manifests to the whole (finish).
  const manifests = options.manifests === false
    ? { changes: [], counts: { added: 0, removed: 0, changed: 0, compared: false, reason: 'compared once for the whole diff' } }
    : compareManifests(a.model ?? null, b.model ?? null);
  const ruleCounts: RuleCounter = { ...NO_RULE_CHANGES };
  for (const c of [rules.counts, nftRules.counts]) for (const k of Object.keys(ruleCounts) as (keyof RuleCounter)[]) ruleCounts[k] += c[k];
  const frontends = [...reach.frontends, ...byTracing.frontends];
  if (reach.frontends.length > 0 && byTracing.frontends.length > 0) frontends.sort(compareDiffs);
  const count = (k: 'added' | 'removed' | 'changed' | 'unchanged') => reach.counts[k] + byTracing.counts[k];
  return {
    summary: {
      frontends: { added: count('added'), removed: count('removed'), changed: count('changed'), unchanged: count('unchanged'), known: byTracing.frontends.filter((f) => f.known).length },
      endpoints: { added: reach.endpoints.added + byTracing.endpoints.added, removed: reach.endpoints.removed + byTracing.endpoints.removed },
      verdictChanges: reach.verdictChanges + byTracing.verdictChanges,
      masqueradeChanges: reach.masqueradeChanges + byTracing.masqueradeChanges,
      probabilityChanges: reach.probabilityChanges + byTracing.probabilityChanges,
      rules: ruleCounts,
      manifests: manifests.counts,
      nodes: { added: onlyB.length, removed: onlyA.length, compared: all.length },
    },
    frontends,
    rules: [...rules.changes, ...nftRules.changes],
    manifests: manifests.changes,
    unpairedNodes: { a: onlyA, b: onlyB },
    backends: { from: sideBackend(backends.from), to: sideBackend(backends.to), across },
    knownDifferences: byTracing.known,
  };
}

/**
 * The manifests' changes when both sides have manifests. A side without them is not compared: its
 * Services are unknown, not removed.
 */
function compareManifests(a: ClusterModel | null, b: ClusterModel | null): { changes: readonly ManifestChange[]; counts: DiffSummary['manifests'] } {
  if (a && b) {
    const d = diffManifests(a, b);
    return { changes: d.changes, counts: { ...d.counts, compared: true } };
  }
  const reason = !a && !b ? 'neither snapshot has manifests'
    : `only the ${a ? 'from' : 'to'} snapshot has manifests: they are not compared, and nothing is listed as added or removed`;
  return { changes: [], counts: { added: 0, removed: 0, changed: 0, compared: false, reason } };
}

/** Rule texts whose meaning a node-by-node diff keeps between pairs. */
const FACTS_KEPT = 200_000;

/** A side of a diff made node by node: its node names, and its model where it has manifests. */
export interface NamedSide {
  readonly names: readonly string[];
  readonly model?: DiffSide['model'];
  readonly index?: DiffSide['index'];
}

/**
 * diffSnapshots one pair of nodes at a time, for snapshots whose rules do not fit in memory
 * together: `add` the nodes of each of `pairs()` in turn (their rules may go after), then
 * `finish`. The answer equals diffSnapshots' on all nodes at once: every change is a node's own,
 * listed node by node in name order, and the caches the pairs share only save work.
 */
export class NodeByNodeDiff {
  readonly pairs: readonly (readonly [string, string])[];
  private readonly frontends: FrontendDiff[] = [];
  private readonly rules: RuleChange[] = [];
  private readonly sum = { added: 0, removed: 0, changed: 0, unchanged: 0, known: 0 };
  private readonly endpoints = { added: 0, removed: 0 };
  private readonly changes = { verdictChanges: 0, masqueradeChanges: 0, probabilityChanges: 0 };
  private readonly ruleCounts: RuleCounter = { ...NO_RULE_CHANGES };
  private readonly known: KnownDifference[] = [];
  private readonly across: string[] = [];
  private readonly backends = { from: new Set<Backend>(), to: new Set<Backend>() };
  /** One node on each side: paired whatever their names, as diffSnapshots does. */
  private readonly single: boolean;
  private whole: DiffResult | null = null;
  private facts = new FactsCache();
  /** Answers kept as copies (memo.ts), bounded by the memo's own limit. */
  readonly traces = new TraceMemo();

  constructor(private readonly a: NamedSide, private readonly b: NamedSide, private readonly options: Omit<DiffOptions, 'node' | 'manifests'> = {}) {
    this.single = a.names.length === 1 && b.names.length === 1;
    const inB = new Set(b.names);
    this.pairs = this.single
      ? [[a.names[0], b.names[0]]]
      : a.names.filter((n) => inB.has(n)).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)).map((n) => [n, n] as const);
  }

  add(na: AnyDiffNode, nb: AnyDiffNode): void {
    const side = (s: NamedSide, n: AnyDiffNode): DiffSide => ({ nodes: [n], model: s.model ?? null, index: s.index ?? null });
    if (this.single) {
      this.whole = diffSnapshots(side(this.a, na), side(this.b, nb), this.options);
      return;
    }
    // The rule texts read so far keep their dumps in memory (they are slices of them): start afresh
    // now and then, so that a cluster of many large nodes does not keep them all.
    if (this.facts.size > FACTS_KEPT) this.facts = new FactsCache();
    const r = diffSnapshots(side(this.a, na), side(this.b, nb), { ...this.options, node: na.name, manifests: false, facts: this.facts, traces: this.traces });
    // Kept while further pairs are read: copies, as their rule texts are slices of the dumps.
    this.frontends.push(...detached(r.frontends));
    this.rules.push(...detached(r.rules));
    for (const k of Object.keys(this.sum) as (keyof typeof this.sum)[]) this.sum[k] += r.summary.frontends[k];
    this.endpoints.added += r.summary.endpoints.added;
    this.endpoints.removed += r.summary.endpoints.removed;
    for (const k of Object.keys(this.changes) as (keyof typeof this.changes)[]) this.changes[k] += r.summary[k];
    for (const k of Object.keys(this.ruleCounts) as (keyof typeof this.ruleCounts)[]) this.ruleCounts[k] += r.summary.rules[k];
    this.known.push(...r.knownDifferences);
    this.across.push(...r.backends.across);
    this.backends.from.add(backendOf(na.ruleset));
    this.backends.to.add(backendOf(nb.ruleset));
  }

  finish(): DiffResult {
    if (this.whole) return this.whole;
    const { a, b } = this;
    const manifests = compareManifests(a.model ?? null, b.model ?? null);
    const inA = new Set(a.names);
    const inB = new Set(b.names);
    const nodes = { added: b.names.filter((n) => !inA.has(n)).length, removed: a.names.filter((n) => !inB.has(n)).length, compared: this.pairs.length };
    return {
      summary: { frontends: this.sum, endpoints: this.endpoints, ...this.changes, rules: this.ruleCounts, manifests: manifests.counts, nodes },
      frontends: this.frontends,
      rules: this.rules,
      manifests: manifests.changes,
      unpairedNodes: { a: a.names.filter((n) => !inB.has(n)), b: b.names.filter((n) => !inA.has(n)) },
      backends: { from: sideBackend(this.backends.from), to: sideBackend(this.backends.to), across: this.across },
      knownDifferences: this.known,
    };
  }
}

/** NodeByNodeDiff with a loader that gives a node's rules when its pair's turn comes. */
export function diffNodeByNode(
  a: NamedSide, b: NamedSide, load: (side: 'a' | 'b', name: string) => AnyDiffNode, options: Omit<DiffOptions, 'node' | 'manifests'> = {},
): DiffResult {
  const run = new NodeByNodeDiff(a, b, options);
  for (const [na, nb] of run.pairs) run.add(load('a', na), load('b', nb));
  return run.finish();
}

export { compareOutcomes, diffReachability } from './reachability.ts';
export { diffRules } from './rules-diff.ts';
export { diffManifests } from './manifests-diff.ts';
export { compareFrontends, listFrontends, frontendKey } from './frontends.ts';
export { listNftFrontends } from './nft-frontends.ts';
export { diffNftRules } from './nft-rules-diff.ts';
export { diffByTracing } from './backends.ts';
export { KNOWN_DIFFERENCES } from './known-differences.ts';

export type { DiffNode, FrontendChange, FrontendDiff, NodePair, ReachabilityDiff, ReachabilityOptions } from './reachability.ts';
export type { RuleChange, RuleChangeKind, RulesDiff, RulesDiffCounts } from './rules-diff.ts';
export type { FieldChange, ManifestChange, ManifestKind, ManifestsDiff } from './manifests-diff.ts';
export type { Frontend, FrontendOptions } from './frontends.ts';
export type { AnyDiffNode, AnyNodePair, Backend, BackendsDiff, KnownDifference } from './backends.ts';
export type { KnownDifferenceCode, KnownDifferenceInfo, ProbeKind } from './known-differences.ts';
