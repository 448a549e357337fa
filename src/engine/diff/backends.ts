/**
 * Where traffic goes, before and after, when a side of a pair of nodes is an nftables ruleset:
 * nftables → nftables, and across backends (iptables → nftables, as when a cluster moves to
 * kube-proxy's nftables mode, or back).
 *
 * Every frontend either side lists (frontends.ts for iptables, nft-frontends.ts for nftables) is
 * traced in both snapshots with the packet reachability.ts sends, and the outcome distributions are
 * compared (compareOutcomes: endpoints, exact shares, verdicts, masquerade, delivery). The rules
 * of two backends have nothing in common to compare, so no signature saves a trace here.
 *
 * Across backends the diff also sends the packets that show where the two modes differ on purpose
 * (known-differences.ts): a NodePort on 127.0.0.1 from the node itself, a ClusterIP on a port that
 * is not a Service port, an address of the Service CIDR no Service has. A difference that matches
 * a known one is reported with its code and reason and not counted as a change; one that does not
 * is reported as any other change. Differences only the rules show (NodePorts on other local
 * addresses, filter FORWARD accepts, conntrack INVALID drops) are told per node.
 */
import type { ChainNameIndex } from '../kube/chain-names.ts';
import type { ClusterModel } from '../kube/model.ts';
import type { Rule, Ruleset } from '../netfilter/ast.ts';
import { ruleAt, ruleCount, ruleTargetAt } from '../netfilter/rule.ts';
import { familyOf, formatIPv4, formatIPv6, parseCidr, parseIPv4, parseIPv6 } from '../net/address.ts';
import type { NftExpr, NftRuleset, NftStatement } from '../nftables/ast.ts';
import type { AnyRuleset } from '../rules.ts';
import { isNftables, traceRules } from '../rules.ts';
import type { Entry, Protocol } from '../trace/packet.ts';
import type { TraceOutcome } from '../trace/tracer.ts';
import type { Frontend } from './frontends.ts';
import { compareFrontends, listFrontends } from './frontends.ts';
import type { KnownDifferenceCode, KnownDifferenceInfo, ProbeKind } from './known-differences.ts';
import { classifyFrontend, classifyProbe, known } from './known-differences.ts';
import { kubeProxyTables, listNftFrontends } from './nft-frontends.ts';
import type { Compared, FrontendChange, FrontendDiff, ReachabilityDiff, ReachabilityOptions, Traced } from './reachability.ts';
import { compareDiffs, compareOutcomes, compareTraced, frontendDiff, pairKey, shownFrontend, sourceFor, tryTrace } from './reachability.ts';
import { ChainTexts, FactsCache } from './rule-facts.ts';

export type Backend = 'iptables' | 'nftables';

/** A node of a snapshot with rules of either backend. */
export interface AnyDiffNode {
  readonly name: string;
  readonly addresses: readonly string[];
  /** iptables rules completed (completeKubeProxy), or an nftables ruleset. */
  readonly ruleset: AnyRuleset;
}

export interface AnyNodePair {
  readonly name: string;
  readonly a: AnyDiffNode;
  readonly b: AnyDiffNode;
}

/** A known difference between the backends, per node: how many frontends (and probes) it explains. */
export interface KnownDifference extends KnownDifferenceInfo {
  readonly node: string;
  /** Frontends and probes whose differing outcomes it explains; 0 when only the rules show it. */
  readonly frontends: number;
  /** `trace`: packets were sent and their outcomes differ so; `rules`: the rules of both sides show it. */
  readonly seen: 'trace' | 'rules';
}

export interface BackendsDiff extends ReachabilityDiff {
  readonly known: readonly KnownDifference[];
}

export function backendOf(rs: AnyRuleset): Backend {
  return isNftables(rs) ? 'nftables' : 'iptables';
}

/** Counts what the compared outcomes of the frontends say, as reachability.ts counts them. */
class Tally {
  readonly frontends: FrontendDiff[] = [];
  readonly counts = { added: 0, removed: 0, changed: 0, unchanged: 0, traced: 0 };
  readonly endpoints = { added: 0, removed: 0 };
  verdictChanges = 0;
  masqueradeChanges = 0;
  probabilityChanges = 0;
  /** Known differences seen per node and code. */
  readonly explained = new Map<string, { node: string; info: KnownDifferenceInfo; frontends: number }>();

  explain(node: string, info: KnownDifferenceInfo, frontends: number): void {
    const key = `${node}\u0000${info.code}`;
    const e = this.explained.get(key);
    if (e) e.frontends += frontends;
    else this.explained.set(key, { node, info, frontends });
  }

  report(d: FrontendDiff, compared?: Compared): void {
    this.frontends.push(d);
    if (d.known) {
      this.explain(d.node, d.known, 1);
      return;
    }
    this.counts[d.change]++;
    if (!compared) return;
    this.endpoints.added += compared.endpointsAdded;
    this.endpoints.removed += compared.endpointsRemoved;
    if (compared.verdict) this.verdictChanges++;
    this.masqueradeChanges += compared.masquerade;
    this.probabilityChanges += compared.probability;
  }
}

interface Probe {
  readonly kind: ProbeKind;
  readonly ip: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly source: string;
  readonly entry?: Entry;
  /** The Service the probe's address or port belongs to ("" for none). */
  readonly service: string;
}

/** An address of `cidr` no frontend uses, from the top down (the network's last addresses are seldom allocated). */
function unusedAddress(cidr: string, used: ReadonlySet<string>): string | null {
  const c = parseCidr(cidr);
  if (!c) return null;
  if (c.family === 'ipv4') {
    const size = 2 ** (32 - c.prefix);
    const base = parseIPv4(c.address)!;
    for (let k = 2; k < Math.min(size, 1026); k++) {
      const ip = formatIPv4((base + size - k) >>> 0);
      if (!used.has(ip)) return ip;
    }
    return null;
  }
  const size = 1n << BigInt(128 - c.prefix);
  const base = parseIPv6(c.address)!;
  for (let k = 2n; k < (size < 1026n ? size : 1026n); k++) {
    const ip = formatIPv6(base + size - k);
    if (!used.has(ip)) return ip;
  }
  return null;
}

/** The values the right-hand side of a match names: each of a list or an anonymous set, or itself. */
function valuesOf(e: NftExpr): readonly NftExpr[] {
  if (e.kind === 'list') return e.items;
  return e.kind === 'anonymous-set' ? e.elements.map((x) => x.key) : [e];
}

/** kube-proxy's `cluster-ips-check` drop of the Service CIDR: `ip daddr { 10.96.0.0/12 } drop`. */
function serviceCIDRs(rs: NftRuleset): string[] {
  const out: string[] = [];
  for (const t of kubeProxyTables(rs)) {
    for (const r of t.chains.get('cluster-ips-check')?.rules ?? []) {
      const verdict = r.statements.at(-1);
      if (verdict?.kind !== 'verdict' || verdict.verdict !== 'drop') continue;
      for (const m of r.statements) {
        if (m.kind !== 'match' || m.op === '!=' || m.left.kind !== 'payload' || m.left.field !== 'daddr') continue;
        for (const v of valuesOf(m.right)) if (v.kind === 'prefix') out.push(`${v.address}/${v.length}`);
      }
    }
  }
  return out;
}

/** Some rule of an iptables chain (completed rules too: kube-proxy writes those) jumps to `target` (as the parser read it) and passes `keep`. */
function someIptablesRule(rs: Ruleset, table: string, chain: string, target: string, keep: (r: Rule) => boolean): boolean {
  const c = rs.tables.get(table)?.chains.get(chain);
  if (!c) return false;
  const n = ruleCount(c);
  for (let k = 0; k < n; k++) if (ruleTargetAt(c, k) === target && keep(ruleAt(c, k))) return true;
  return false;
}

/** The rule has a non-negated option `name` of a match whose value (a comma list) includes `value`. */
function hasOptionValue(r: Rule, name: string, value: string): boolean {
  return r.matches.some((m) => m.options.some((o) => o.name === name && !o.negated && (o.args[0] ?? '').split(',').includes(value)));
}

/** Some rule of a kube-proxy table of the nftables ruleset has a statement that `test` keeps. */
function nftHasStatement(nft: NftRuleset, test: (s: NftStatement) => boolean): boolean {
  return kubeProxyTables(nft).some((t) => [...t.chains.values()].some((c) => c.rules.some((r) => r.statements.some(test))));
}

/** A verdict statement, or an element of an anonymous verdict map, that accepts. */
function accepts(s: NftStatement): boolean {
  if (s.kind === 'verdict') return s.verdict === 'accept';
  if (s.kind !== 'vmap' || s.map.kind !== 'anonymous-set') return false;
  return s.map.elements.some((e) => e.value?.kind === 'verdict' && e.value.verdict === 'accept');
}

/** `ct state invalid` (alone or in a list). */
function matchesInvalid(s: NftStatement): boolean {
  if (s.kind !== 'match' || s.left.kind !== 'ct' || s.left.key !== 'state' || s.op === '!=') return false;
  return valuesOf(s.right).some((v) => v.kind === 'literal' && v.text === 'invalid');
}

/** `ip daddr @nodeport-ips` (or ip6): kube-proxy's NodePorts on chosen addresses only. */
function matchesNodePortIPs(s: NftStatement): boolean {
  return s.kind === 'match' && s.left.kind === 'payload' && s.left.field === 'daddr' && s.right.kind === 'set-ref' && s.right.name === 'nodeport-ips';
}

/** Known differences the rules of an iptables node and an nftables node show, without a packet. */
function rulesNotes(ipt: Ruleset, nft: NftRuleset, iptFrontends: readonly Frontend[]): KnownDifferenceCode[] {
  const out: KnownDifferenceCode[] = [];
  // NodePorts on every local address: the jump to KUBE-NODEPORTS keyed by address type alone.
  const everyLocal = someIptablesRule(ipt, 'nat', 'KUBE-SERVICES', 'KUBE-NODEPORTS', (r) => r.destination === undefined && hasOptionValue(r, 'dst-type', 'LOCAL'));
  const nftByAddress = kubeProxyTables(nft).some((t) => t.chains.get('services')?.rules.some((r) => r.statements.some(matchesNodePortIPs)));
  if (everyLocal && nftByAddress && iptFrontends.some((f) => f.kind === 'NodePort')) out.push('NODEPORT_ADDRESSES');
  if (someIptablesRule(ipt, 'filter', 'KUBE-FORWARD', 'ACCEPT', () => true) && !nftHasStatement(nft, accepts)) out.push('FORWARD_ACCEPT');
  if (someIptablesRule(ipt, 'filter', 'KUBE-FORWARD', 'DROP', (r) => hasOptionValue(r, 'ctstate', 'INVALID')) && !nftHasStatement(nft, matchesInvalid)) out.push('CONNTRACK_INVALID');
  return out;
}

export interface BackendsOptions extends Omit<ReachabilityOptions, 'deltas' | 'exhaustive' | 'texts'> {
  /**
   * Pairs whose rules are the same on both sides (two nftables rulesets with no rule, set or
   * element change, on nodes of the same addresses): every packet meets the same rules, so their
   * frontends are counted unchanged without tracing.
   */
  readonly sameRules?: ReadonlySet<AnyNodePair>;
  readonly indexA?: ChainNameIndex | null;
  readonly indexB?: ChainNameIndex | null;
  readonly modelA?: ClusterModel | null;
  readonly modelB?: ClusterModel | null;
}

/** Compares the frontends of each pair of nodes by tracing every one of them in both snapshots. */
export function diffByTracing(pairs: readonly AnyNodePair[], options: BackendsOptions = {}): BackendsDiff {
  const facts = options.facts ?? new FactsCache();
  const chainTexts = options.chainTexts ?? new ChainTexts();
  const tally = new Tally();

  for (const pair of pairs) {
    // An iptables dump is of one family: against one, an nftables ruleset's frontends of that family.
    const iptFamily = [pair.a.ruleset, pair.b.ruleset].find((rs): rs is Ruleset => !isNftables(rs))?.family;
    const list = (node: AnyDiffNode, model: ClusterModel | null | undefined, index: ChainNameIndex | null | undefined): Frontend[] =>
      isNftables(node.ruleset)
        ? listNftFrontends(node.ruleset, node.addresses, { model, ...(iptFamily ? { family: iptFamily } : {}) })
        : listFrontends(node.ruleset, node.addresses, { index, model, facts, chainTexts });
    const fa = list(pair.a, options.modelA, options.indexA);
    if (options.sameRules?.has(pair)) {
      tally.counts.unchanged += fa.length;
      continue;
    }
    const fb = list(pair.b, options.modelB, options.indexB);
    const byKeyA = new Map(fa.map((f) => [pairKey(f), f]));
    const byKeyB = new Map(fb.map((f) => [pairKey(f), f]));

    const run = (node: AnyDiffNode, ip: string, port: number, protocol: Protocol, source: string, entry?: Entry): Traced => tryTrace(() => traceRules(node.ruleset, {
      node: { name: node.name, addresses: node.addresses },
      packet: { source, destination: ip, port, protocol, ...(entry ? { entry } : {}) },
    }));
    const traceFrontend = (node: AnyDiffNode, f: Frontend) =>
      run(node, f.ip, f.port, f.protocol, sourceFor(f.kind, familyOf(f.ip) ?? 'ipv4', options));
    const backA = backendOf(pair.a.ruleset);
    const across = backA !== backendOf(pair.b.ruleset);
    /** A pair's outcomes as (iptables side, nftables side), whichever snapshot is A. */
    const iptFirst = (x: readonly TraceOutcome[], y: readonly TraceOutcome[]): [readonly TraceOutcome[], readonly TraceOutcome[]] => (backA === 'iptables' ? [x, y] : [y, x]);
    const diffOf = (f: Frontend, other: Frontend | undefined, change: FrontendChange, before: readonly TraceOutcome[], after: readonly TraceOutcome[], changes: string[]) =>
      frontendDiff(pair.name, f, other, change, before, after, changes);

    for (const [key, a] of byKeyA) {
      const b = byKeyB.get(key);
      if (!b) {
        const r = traceFrontend(pair.a, a);
        tally.report(diffOf(a, undefined, 'removed', r.outcomes, [], [`frontend removed${r.error ? ` (trace failed: ${r.error})` : ''}`]));
        continue;
      }
      tally.counts.traced++;
      const ra = traceFrontend(pair.a, a);
      const rb = traceFrontend(pair.b, b);
      const c = compareTraced(ra, rb);
      if (c.changes.length === 0) {
        tally.counts.unchanged++;
        continue;
      }
      const info = across && !ra.error && !rb.error ? classifyFrontend(...iptFirst(ra.outcomes, rb.outcomes), compareOutcomes) : null;
      tally.report({ ...diffOf(shownFrontend(a, b), a, 'changed', ra.outcomes, rb.outcomes, c.changes), ...(info ? { known: info } : {}) }, c);
    }
    for (const [key, b] of byKeyB) {
      if (byKeyA.has(key)) continue;
      const r = traceFrontend(pair.b, b);
      tally.report(diffOf(b, undefined, 'added', [], r.outcomes, [`frontend added${r.error ? ` (trace failed: ${r.error})` : ''}`]));
    }

    if (!across) continue;
    const [ipt, nft, iptFrontends] = backA === 'iptables'
      ? [pair.a.ruleset as Ruleset, pair.b.ruleset as NftRuleset, fa]
      : [pair.b.ruleset as Ruleset, pair.a.ruleset as NftRuleset, fb];

    // The packets that show the known differences, sent on both sides.
    const family = ipt.family;
    const probes: Probe[] = [];
    const all = [...fa, ...fb];
    if (family === 'ipv4') {
      const nodePorts = new Map<string, Frontend>();
      for (const f of all) if (f.kind === 'NodePort') nodePorts.set(`${f.port}|${f.protocol}`, f);
      for (const f of [...nodePorts.values()].sort((x, y) => x.port - y.port || (x.protocol < y.protocol ? -1 : 1))) {
        probes.push({ kind: 'localhost-nodeport', ip: '127.0.0.1', port: f.port, protocol: f.protocol, source: '127.0.0.1', entry: 'OUTPUT', service: f.service });
      }
    }
    const clusterIP = all.filter((f) => f.kind === 'ClusterIP').sort(compareFrontends)[0];
    if (clusterIP) {
      const used = new Set(all.filter((f) => f.ip === clusterIP.ip && f.protocol === 'tcp').map((f) => f.port));
      let port = 1;
      while (used.has(port)) port++;
      probes.push({ kind: 'cluster-ip-other-port', ip: clusterIP.ip, port, protocol: 'tcp', source: sourceFor('ClusterIP', family, options), service: clusterIP.service });
    }
    const usedIPs = new Set(all.map((f) => f.ip));
    for (const cidr of serviceCIDRs(nft)) {
      const ip = unusedAddress(cidr, usedIPs);
      if (ip && familyOf(ip) === family) {
        probes.push({ kind: 'service-cidr-unallocated', ip, port: 80, protocol: 'tcp', source: sourceFor('ClusterIP', family, options), service: '' });
      }
    }
    for (const p of probes) {
      const ra = run(pair.a, p.ip, p.port, p.protocol, p.source, p.entry);
      const rb = run(pair.b, p.ip, p.port, p.protocol, p.source, p.entry);
      const c = compareTraced(ra, rb);
      if (c.changes.length === 0) continue;
      const info = ra.error || rb.error ? null : classifyProbe(p.kind, ...iptFirst(ra.outcomes, rb.outcomes));
      const kind = p.kind === 'localhost-nodeport' ? 'NodePort' : 'ClusterIP';
      tally.report({
        node: pair.name,
        service: p.service,
        frontend: { ip: p.ip, port: p.port, protocol: p.protocol, kind },
        change: 'changed', before: ra.outcomes, after: rb.outcomes, changes: c.changes,
        ...(info ? { known: info } : {}),
        probe: p.kind,
      }, info ? undefined : c);
    }
    for (const code of rulesNotes(ipt, nft, iptFrontends)) tally.explain(pair.name, known(code), 0);
  }

  tally.frontends.sort(compareDiffs);
  const knownList: KnownDifference[] = [...tally.explained.values()]
    .map((e) => ({ ...e.info, node: e.node, frontends: e.frontends, seen: e.frontends > 0 ? 'trace' as const : 'rules' as const }))
    .sort((x, y) => (x.node < y.node ? -1 : x.node > y.node ? 1 : 0) || (x.code < y.code ? -1 : x.code > y.code ? 1 : 0));
  return {
    frontends: tally.frontends,
    counts: tally.counts,
    endpoints: tally.endpoints,
    verdictChanges: tally.verdictChanges,
    masqueradeChanges: tally.masqueradeChanges,
    probabilityChanges: tally.probabilityChanges,
    known: knownList,
  };
}
