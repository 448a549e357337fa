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
import { splitChainName } from '../kube/chain-names.ts';
import type { Family } from '../netfilter/ast.ts';
import type { TraceResult } from '../trace/tracer.ts';
import { expectedPorts } from './expected.ts';
import type { ExpectedPort } from './expected.ts';
import { nodeRules, percent, uniqueRefs } from './node-rules.ts';
import type { Frontend } from './probe.ts';
import { clusterIPFrontends, distribution, externalFrontends, outcomeKey, outsideClient, probe, stepRef, verdictStep } from './probe.ts';
import type { AuditNode, Check, Finding, FindingRule } from './types.ts';

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

interface Observation {
  readonly node: AuditNode;
  readonly frontend: Frontend;
  readonly result: TraceResult;
  readonly dist: Map<string, number>;
}

/** One comparable frontend across nodes: the same packet, except the NodePort, which each node answers on its own address. */
interface Probe {
  readonly label: string;
  readonly frontends: Map<AuditNode, Frontend>;
}

function probesOf(e: ExpectedPort, nodes: readonly AuditNode[], family: Family): Probe[] {
  const out: Probe[] = [];
  const shared = [
    ...(e.internalPolicyLocal ? [] : clusterIPFrontends(e)),
    ...(e.externalPolicyLocal ? [] : externalFrontends({ ...e, nodePort: null }, nodes[0], family)),
  ];
  for (const f of shared) out.push({ label: f.label, frontends: new Map(nodes.map((n) => [n, f])) });
  if (e.nodePort !== null && !e.externalPolicyLocal) {
    const frontends = new Map<AuditNode, Frontend>();
    for (const n of nodes) {
      const f = externalFrontends({ ...e, loadBalancerIPs: [], externalIPs: [] }, n, family)[0];
      if (f) frontends.set(n, f);
    }
    out.push({ label: `NodePort ${e.nodePort} (on each node's address)`, frontends });
  }
  return out;
}

function rulesShowing(e: ExpectedPort, o: Observation, differs: (key: string) => boolean): FindingRule[] {
  const refs: FindingRule[] = [];
  const own = new Set(Object.values(e.chains));
  for (const out of o.result.outcomes) {
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
  for (const out of o.result.outcomes) {
    for (const s of out.path) if (own.has(s.chain) && splitChainName(s.chain)?.kind !== 'SEP') refs.push(stepRef(s));
  }
  return refs;
}

function compare(e: ExpectedPort, nodes: readonly AuditNode[], family: Family): Finding[] {
  const expected = expectedDistribution(e);
  // Per disagreeing node: the frontends and what they show.
  const byNode = new Map<AuditNode, { parts: string[]; rules: FindingRule[] }>();
  for (const p of probesOf(e, nodes, family)) {
    const obs: Observation[] = [];
    for (const [node, frontend] of p.frontends) {
      const result = probe(node, outsideClient(e.service, node, family), frontend);
      if (typeof result !== 'string') obs.push({ node, frontend, result, dist: distribution(result) });
    }
    if (obs.length < 2) continue;
    const groups: Observation[][] = [];
    for (const o of obs) {
      const g = groups.find((x) => same(x[0].dist, o.dist));
      if (g) g.push(o);
      else groups.push([o]);
    }
    if (groups.length < 2) continue;
    const reference = groups.find((g) => same(g[0].dist, expected)) ?? groups.reduce((a, b) => (b.length > a.length ? b : a));
    const ref = reference[0].dist;
    const refNodes = reference.map((o) => o.node.name);
    const refName = refNodes.length === 1 ? refNodes[0] : `${refNodes.slice(0, 3).join(', ')}${refNodes.length > 3 ? ` and ${refNodes.length - 3} more` : ''}`;
    for (const g of groups) {
      if (g === reference) continue;
      for (const o of g) {
        const onlyHere = [...o.dist.keys()].filter((k) => !ref.has(k));
        const onlyThere = [...ref.keys()].filter((k) => !o.dist.has(k));
        const detail: string[] = [];
        if (onlyHere.length > 0) detail.push(`only ${o.node.name} sends to ${onlyHere.join(', ')}`);
        if (onlyThere.length > 0) detail.push(`only ${refName} send${refNodes.length === 1 ? 's' : ''} to ${onlyThere.join(', ')}`);
        if (detail.length === 0) detail.push(`the shares differ: ${describe(o.dist)} against ${describe(ref)}`);
        const entry = byNode.get(o.node) ?? { parts: [], rules: [] };
        entry.parts.push(`${o.frontend.label}: ${detail.join('; ')}`);
        const onlyHereSet = new Set(onlyHere);
        entry.rules.push(...rulesShowing(e, o, onlyHere.length > 0 ? (k) => onlyHereSet.has(k) : (k) => Math.abs((o.dist.get(k) ?? 0) - (ref.get(k) ?? 0)) > TOLERANCE));
        byNode.set(o.node, entry);
      }
    }
  }
  const out: Finding[] = [];
  for (const [node, { parts, rules }] of byNode) {
    out.push({
      check: CHECK, severity: 'warning', node: node.name, service: e.service.key, port: e.label,
      message: `node ${node.name} handles ${e.spn} differently from the other nodes, which its traffic policies (Cluster) do not explain — ${parts.join(' | ')}`,
      rules: uniqueRefs(rules),
    });
  }
  return out;
}

export const nodeDisagreement: Check = (input) => {
  const out: Finding[] = [];
  // Compared per address family: each family's rules are a ruleset of their own.
  const families = new Map<Family, AuditNode[]>();
  for (const node of input.nodes) {
    const f = nodeRules(node).family;
    families.set(f, [...(families.get(f) ?? []), node]);
  }
  for (const [family, nodes] of families) {
    if (nodes.length < 2) continue;
    // The Cluster-policy split is the same for every node; the first node's view gives the ports.
    for (const e of expectedPorts(input.model, nodes[0].name, family)) out.push(...compare(e, nodes, family));
  }
  return out;
};
