/**
 * node-disagreement: nodes that handle the same frontend differently when the traffic policies
 * say they should not (warning).
 *
 * Under the Cluster policies every node's kube-proxy programs the same split over the same
 * endpoints, so the first packet of a connection to a cluster IP, a load-balancer IP, an external
 * IP or the NodePort (on the node's own address) has the same outcomes with the same
 * probabilities on every node. Under internalTrafficPolicy Local (cluster IPs) or
 * externalTrafficPolicy Local (the other frontends) each node uses its own endpoints, so
 * differences are expected and not compared.
 *
 * The outcomes of each node are traced; the nodes that match what the manifests make kube-proxy
 * program (a uniform split over the usable endpoints, or REJECT without any) are the reference,
 * or else the largest group of nodes that agree. Every other node is reported.
 */
import { ownCopy } from '../text.ts';
import { splitChainName } from '../kube/chain-names.ts';
import type { Family } from '../netfilter/ast.ts';
import type { TraceResult } from '../trace/tracer.ts';
import { expectedPorts } from './expected.ts';
import type { ExpectedPort } from './expected.ts';
import { percent, uniqueRefs } from './node-rules.ts';
import type { Frontend } from './probe.ts';
import { clusterIPFrontends, distribution, externalFrontends, familiesOf, outcomeKey, outsideClient, probe, stepRef, verdictStep } from './probe.ts';
import type { AuditInput, AuditNode, Check, Finding, FindingRule } from './types.ts';

const CHECK = 'node-disagreement';

/**
 * Two splits are the same within what the kernel's k/2^31 probabilities and kube-proxy's 10
 * decimals allow: different endpoint orders give slightly different exact shares.
 */
const TOLERANCE = 1e-6;

function same(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean {
  for (const k of new Set([...a.keys(), ...b.keys()])) if (Math.abs((a.get(k) ?? 0) - (b.get(k) ?? 0)) > TOLERANCE) return false;
  return true;
}

function describe(d: ReadonlyMap<string, number>): string {
  if (d.size === 0) return 'nothing';
  const parts = [...d].sort((x, y) => (x[0] < y[0] ? -1 : 1)).map(([k, p]) => (d.size === 1 ? k : `${k} ${percent(p)}`));
  return parts.length > 6 ? `${parts.slice(0, 6).join(', ')} and ${parts.length - 6} more` : parts.join(', ');
}

/** What the manifests make kube-proxy do with a Cluster-policy frontend. */
function expectedDistribution(e: ExpectedPort): Map<string, number> {
  if (!e.hasEndpoints) return new Map([['REJECT', 1]]);
  return new Map(e.cluster.map((x) => [x.key, 1 / e.cluster.length]));
}

/** What one node did with one probe: the distribution only; the trace is found again when reported. */
interface Observation {
  readonly node: AuditNode['name'];
  readonly frontend: Frontend;
  readonly dist: Map<string, number>;
}

/** One comparable frontend across nodes: the same packet, except the NodePort, which each node answers on its own address. */
interface Probe {
  readonly label: string;
  /** The frontend on a node (node-independent unless it is the NodePort on each node's address). */
  readonly frontendOn: (node: AuditNode) => Frontend | undefined;
}

/** The probes of a port; `first` is any node (the shared frontends do not depend on it). */
function probesOf(e: ExpectedPort, family: Family, first: AuditNode): Probe[] {
  const out: Probe[] = [];
  const shared = [
    ...(e.internalPolicyLocal ? [] : clusterIPFrontends(e)),
    ...(e.externalPolicyLocal ? [] : externalFrontends({ ...e, nodePort: null }, first, family)),
  ];
  for (const f of shared) out.push({ label: f.label, frontendOn: () => f });
  if (e.nodePort !== null && !e.externalPolicyLocal) {
    out.push({
      label: `NodePort ${e.nodePort} (on each node's address)`,
      frontendOn: (n) => externalFrontends({ ...e, loadBalancerIPs: [], externalIPs: [] }, n, family)[0],
    });
  }
  return out;
}

function rulesShowing(e: ExpectedPort, result: TraceResult, differs: (key: string) => boolean): FindingRule[] {
  const refs: FindingRule[] = [];
  const own = new Set(Object.values(e.chains));
  for (const out of result.outcomes) {
    if (!differs(outcomeKey(out))) continue;
    const step = verdictStep(out);
    if (!step) continue;
    // The Service chain's choice of this endpoint, then the endpoint's DNAT.
    const at = out.path.findIndex((s) => s.chain === step.chain && s.index === step.index && s.table === step.table);
    const choice = out.path.slice(0, at).reverse().find((s) => s.action === 'jump' || s.action === 'goto');
    if (choice && own.has(choice.chain)) refs.push(stepRef(choice));
    refs.push(step);
  }
  if (refs.length > 0) return refs;
  // The node lacks something the others have: show where its endpoint list is.
  for (const out of result.outcomes) {
    for (const s of out.path) if (own.has(s.chain) && splitChainName(s.chain)?.kind !== 'SEP') refs.push(stepRef(s));
  }
  return refs;
}

/** A node's observation that disagrees with the reference, and what to say about it. */
interface Disagreement {
  readonly e: ExpectedPort;
  readonly family: Family;
  readonly o: Observation;
  readonly part: string;
  readonly differs: (key: string) => boolean;
}

interface FamilyState {
  /** The Cluster-policy split is the same for every node; the first node's view gives the ports. */
  readonly ports: readonly ExpectedPort[];
  readonly probes: readonly Probe[][];
  /** Per port, per probe: the nodes' observations in the order the nodes came. */
  readonly observations: Observation[][][];
  nodes: number;
}

/**
 * The check node by node: `observe` each node (its probes are traced and only their outcome
 * distributions kept), then `disagreements` names the nodes to show, and `report` turns each
 * into findings with that node's traces. Memory holds one node's rules at a time.
 */
export class NodeDisagreementCheck {
  private readonly families = new Map<Family, FamilyState>();
  private found: Disagreement[] | null = null;
  /**
   * Distributions by their exact contents: nodes that agree (most of them, on most frontends)
   * share one, so 20 nodes of 10,000 Services keep tens of MB of them, not a GB.
   */
  private readonly dists = new Map<string, Map<string, number>>();

  constructor(private readonly input: Omit<AuditInput, 'nodes'>) {}

  observe(node: AuditNode): void {
    for (const family of familiesOf(node)) this.observeFamily(node, family);
  }

  private observeFamily(node: AuditNode, family: Family): void {
    let state = this.families.get(family);
    if (!state) {
      const ports = expectedPorts(this.input.model, node.name, family);
      const probes = ports.map((e) => probesOf(e, family, node));
      state = { ports, probes, observations: probes.map((ps) => ps.map(() => [])), nodes: 0 };
      this.families.set(family, state);
    }
    state.nodes++;
    for (const [i, e] of state.ports.entries()) {
      for (const [j, p] of state.probes[i].entries()) {
        const frontend = p.frontendOn(node);
        if (!frontend) continue;
        const result = probe(node, outsideClient(e.service, node, family), frontend, false);
        if (typeof result !== 'string') state.observations[i][j].push({ node: node.name, frontend, dist: this.shared(distribution(result)) });
      }
    }
  }

  private shared(dist: Map<string, number>): Map<string, number> {
    let key = '';
    for (const [k, p] of dist) key += `${k}=${p};`;
    const known = this.dists.get(key);
    if (known) return known;
    // Kept for the whole audit: copies, as the endpoints are read from the node's dump.
    const own = new Map([...dist].map(([k, p]) => [ownCopy(k), p]));
    this.dists.set(ownCopy(key), own);
    return own;
  }

  /** The nodes that disagree with the reference on some probe, in the order they were observed. */
  disagreeing(): string[] {
    this.found ??= this.judge();
    return [...new Set(this.found.map((d) => d.o.node))];
  }

  /** The findings of a node named by `disagreeing`, traced again on its rules. */
  report(node: AuditNode): Finding[] {
    this.found ??= this.judge();
    const byPort = new Map<ExpectedPort, { parts: string[]; rules: FindingRule[] }>();
    for (const d of this.found) {
      if (d.o.node !== node.name) continue;
      const result = probe(node, outsideClient(d.e.service, node, d.family), d.o.frontend);
      const entry = byPort.get(d.e) ?? { parts: [], rules: [] };
      entry.parts.push(d.part);
      if (typeof result !== 'string') entry.rules.push(...rulesShowing(d.e, result, d.differs));
      byPort.set(d.e, entry);
    }
    return [...byPort].map(([e, { parts, rules }]) => ({
      check: CHECK, severity: 'warning', node: node.name, service: e.service.key, port: e.label,
      message: `node ${node.name} handles ${e.spn} differently from the other nodes, which its traffic policies (Cluster) do not explain — ${parts.join(' | ')}`,
      rules: uniqueRefs(rules),
    }));
  }

  private judge(): Disagreement[] {
    const out: Disagreement[] = [];
    for (const [family, state] of this.families) {
      if (state.nodes < 2) continue;
      for (const [i, e] of state.ports.entries()) {
        for (const obs of state.observations[i]) out.push(...compare(e, family, obs));
      }
    }
    return out;
  }
}

function compare(e: ExpectedPort, family: Family, obs: readonly Observation[]): Disagreement[] {
  if (obs.length < 2) return [];
  const groups: Observation[][] = [];
  for (const o of obs) {
    const g = groups.find((x) => same(x[0].dist, o.dist));
    if (g) g.push(o);
    else groups.push([o]);
  }
  if (groups.length < 2) return [];
  const expected = expectedDistribution(e);
  const reference = groups.find((g) => same(g[0].dist, expected)) ?? groups.reduce((a, b) => (b.length > a.length ? b : a));
  const ref = reference[0].dist;
  const refNodes = reference.map((o) => o.node);
  const refName = refNodes.length === 1 ? refNodes[0] : `${refNodes.slice(0, 3).join(', ')}${refNodes.length > 3 ? ` and ${refNodes.length - 3} more` : ''}`;
  const out: Disagreement[] = [];
  for (const g of groups) {
    if (g === reference) continue;
    for (const o of g) {
      const onlyHere = [...o.dist.keys()].filter((k) => !ref.has(k));
      const onlyThere = [...ref.keys()].filter((k) => !o.dist.has(k));
      const detail: string[] = [];
      if (onlyHere.length > 0) detail.push(`only ${o.node} sends to ${onlyHere.join(', ')}`);
      if (onlyThere.length > 0) detail.push(`only ${refName} send${refNodes.length === 1 ? 's' : ''} to ${onlyThere.join(', ')}`);
      if (detail.length === 0) detail.push(`the shares differ: ${describe(o.dist)} against ${describe(ref)}`);
      const onlyHereSet = new Set(onlyHere);
      const differs = onlyHere.length > 0
        ? (k: string) => onlyHereSet.has(k)
        : (k: string) => Math.abs((o.dist.get(k) ?? 0) - (ref.get(k) ?? 0)) > TOLERANCE;
      out.push({ e, family, o, part: `${o.frontend.label}: ${detail.join('; ')}`, differs });
    }
  }
  return out;
}

export const nodeDisagreement: Check = (input) => {
  const check = new NodeDisagreementCheck(input);
  for (const node of input.nodes) check.observe(node);
  const byName = new Map(input.nodes.map((n) => [n.name, n]));
  return check.disagreeing().flatMap((name) => check.report(byName.get(name)!));
};
