/**
 * endpoint-drift: the endpoints a node's rules send a Service port's traffic to, against the
 * endpoints kube-proxy would program from the EndpointSlices, per node (all errors).
 *
 * kube-proxy's selection (expected.ts): KUBE-SVC lists the ready endpoints, or the
 * serving-terminating ones when none is ready (ProxyTerminatingEndpoints); KUBE-SVL lists the same
 * among the node's own endpoints. Cluster-IP traffic goes to KUBE-SVL under internalTrafficPolicy
 * Local, and KUBE-EXT ends in KUBE-SVL under externalTrafficPolicy Local; with no local endpoint
 * that traffic is dropped instead. Compared here:
 * - each endpoint a Service chain jumps to (via its KUBE-SEP chain's DNAT) that the manifests do
 *   not list, list as not ready, or (in KUBE-SVL) place on another node;
 * - each endpoint the manifests make usable that the chain does not list (a lagging kube-proxy);
 * - where cluster-IP traffic and external traffic are sent, against the traffic policies.
 * Service ports with no KUBE-SVC/SVL chain at all on the node are service-rules' findings.
 */
import { canonicalIP } from '../kube/model.ts';
import { conditions, expectedPorts } from './expected.ts';
import type { ExpectedPort, PlannedEndpoint } from './expected.ts';
import type { NodeRules } from './node-rules.ts';
import { namedKey, nodeRules, ruleRef, uniqueRefs } from './node-rules.ts';
import type { Check, Finding, FindingRule } from './types.ts';

const CHECK = 'endpoint-drift';

type Problem = 'absent' | 'not-ready' | 'not-local' | 'missing';

interface Acc {
  readonly problem: Problem;
  readonly endpoint: string;
  readonly detail: string;
  readonly chains: string[];
  readonly rules: FindingRule[];
}

/** The policy that makes a chain local-only, for messages. */
function localPolicies(e: ExpectedPort): string {
  const p: string[] = [];
  if (e.internalPolicyLocal) p.push('internalTrafficPolicy');
  if (e.externalPolicyLocal) p.push('externalTrafficPolicy');
  return p.length > 0 ? `${p.join(' and ')} Local` : 'a Local traffic policy';
}

/** Compares one chain's endpoint list with the list kube-proxy would write (null: it writes no such chain). */
function compareChain(
  view: NodeRules,
  e: ExpectedPort,
  chain: string,
  expected: readonly PlannedEndpoint[] | null,
  isLocal: boolean,
  acc: Map<string, Acc>,
  unexpected: string[],
): void {
  const add = (problem: Problem, endpoint: string, detail: string, rules: FindingRule[]) => {
    const key = `${problem}|${endpoint}`;
    let a = acc.get(key);
    if (!a) {
      a = { problem, endpoint, detail, chains: [], rules: [] };
      acc.set(key, a);
    }
    if (!a.chains.includes(chain)) a.chains.push(chain);
    a.rules.push(...rules);
  };
  const actual = view.has(chain) ? view.endpointJumps(chain) : [];
  const actualKeys = new Set(actual.map((a) => a.dnat?.key).filter((k): k is string => k !== undefined));
  const expectedKeys = new Set((expected ?? []).map((x) => x.key));
  // Usable as kube-proxy decides it among the chain's pool (every endpoint, or the node's own):
  // ready, or serving and terminating when no endpoint of the pool is ready.
  const pool = isLocal ? e.endpoints.filter((x) => x.local) : e.endpoints;
  const anyReady = pool.some((x) => x.ready);
  for (const { jump, dnat } of actual) {
    if (!dnat || expectedKeys.has(dnat.key)) continue;
    const rules = [ruleRef(jump.rule), ruleRef(dnat.rule)];
    const m = e.endpoints.find((x) => x.key === dnat.key || (dnat.port === null && x.ip === dnat.ip));
    if (!m) {
      add('absent', dnat.key, `is not an endpoint of ${e.spn} in the EndpointSlices`, rules);
    } else if (isLocal && !m.local) {
      const where = m.nodeName ? `runs on node ${m.nodeName}` : 'has no nodeName';
      add('not-local', dnat.key, `${where}, not on ${view.node.name}: under ${localPolicies(e)} KUBE-SVL lists only the node's own endpoints`, rules);
    } else if (!m.ready && !(m.serving && m.terminating && !anyReady)) {
      const fallback = m.serving && m.terminating ? ': kube-proxy uses serving-terminating endpoints only when no endpoint is ready' : '';
      add('not-ready', dnat.key, `is ${conditions(m)} in the EndpointSlices${fallback}`, rules);
    } else {
      // Usable, so only the chain itself is wrong: kube-proxy writes none under these policies.
      unexpected.push(dnat.key);
    }
  }
  if (expected === null) return;
  const list = actual.filter((a) => a.jump.affinity === null).map((a) => ruleRef(a.jump.rule));
  const evidence = list.length > 0
    ? list
    : view.named(namedKey(e.service.namespace, e.service.name, e.port.name)).filter((n) => n.rule.table === 'filter').map((n) => ruleRef(n.rule));
  for (const x of expected) {
    if (actualKeys.has(x.key)) continue;
    const usable = x.ready ? 'ready' : 'serving and terminating (no endpoint is ready)';
    const where = view.has(chain) ? `missing from ${chain}` : `missing: the node has no ${chain} chain`;
    add('missing', x.key, `is ${usable}${isLocal ? ` on ${view.node.name}` : ''} in the EndpointSlices but ${where}`, evidence);
  }
}

/** Where the rules send a traffic class, against where kube-proxy would (null: drop or reject). */
function compareTarget(e: ExpectedPort, what: string, actual: readonly string[], expected: string | null, policy: 'internalTrafficPolicy' | 'externalTrafficPolicy'): string | null {
  if (actual.length === 0) return null;
  if (expected !== null && actual.length === 1 && actual[0] === expected) return null;
  const local = policy === 'internalTrafficPolicy' ? e.internalPolicyLocal : e.externalPolicyLocal;
  const describe = (c: string) => (c === e.chains.svl || c === e.chains.xlb ? `${c} (the node's own endpoints)` : c === e.chains.svc ? `${c} (every endpoint)` : c);
  const sent = `${what} is sent to ${actual.map(describe).join(' and ')}`;
  if (expected === null) {
    if (policy === 'externalTrafficPolicy' && !e.externallyAccessible) {
      return `${sent}, but the manifests give ${e.spn} no NodePort, load-balancer IP or external IP`;
    }
    return `${sent}, but ${e.spn} has ${policy} Local and no endpoint on this node: kube-proxy would drop it`;
  }
  return `${sent}, but ${e.spn} has ${policy} ${local ? 'Local' : 'Cluster'}: kube-proxy would send it to ${describe(expected)}`;
}

function drift(view: NodeRules, e: ExpectedPort): Finding[] {
  const { chains } = e;
  if (![chains.svc, chains.svl, chains.xlb].some((c) => view.hasRules(c))) return [];
  const base = { check: CHECK, severity: 'error' as const, node: view.node.name, service: e.service.key, port: e.label };
  const out: Finding[] = [];

  // Endpoint lists. Before 1.24 the local-only chain was KUBE-XLB.
  const acc = new Map<string, Acc>();
  const unexpected: string[] = [];
  compareChain(view, e, chains.svc, e.usesClusterChain ? e.cluster : null, false, acc, unexpected);
  const localChain = !view.has(chains.svl) && view.has(chains.xlb) ? chains.xlb : chains.svl;
  compareChain(view, e, localChain, e.usesLocalChain ? e.local : null, true, acc, unexpected);
  for (const a of acc.values()) {
    const lag = a.problem === 'missing' ? ': kube-proxy on this node has not caught up' : ` but ${a.chains.join(' and ')} still send${a.chains.length === 1 ? 's' : ''} traffic to it`;
    out.push({ ...base, message: `endpoint ${a.endpoint} ${a.detail}${lag}`, rules: uniqueRefs(a.rules) });
  }
  // Without usable endpoints the per-endpoint findings above already say everything.
  if (!e.hasEndpoints) return out;
  const routing = out.length;

  // Cluster-IP traffic: KUBE-SERVICES sends each cluster IP to the internal policy chain.
  const clusterIPs = new Set(e.clusterIPs);
  const internal = [chains.svc, chains.svl, chains.xlb].flatMap((c) => view.referrers(c))
    .filter((r) => r.chain === 'KUBE-SERVICES' && r.destination && !r.destination.negated && clusterIPs.has(canonicalIP(r.destination.value.address)));
  const internalMsg = compareTarget(e, 'cluster-IP traffic', [...new Set(internal.map((r) => r.target!.name))], e.internalTarget, 'internalTrafficPolicy');
  if (internalMsg) out.push({ ...base, message: internalMsg, rules: uniqueRefs(internal.map(ruleRef)) });

  // External traffic: KUBE-EXT's last, unconditional jump. Its jumps by source (pod traffic,
  // the node's own traffic) go to KUBE-SVC under any policy, by design.
  if (view.hasRules(chains.ext)) {
    const final = view.jumps(chains.ext).filter((j) => !j.conditional && (j.kind === 'SVC' || j.kind === 'SVL'));
    const externalMsg = compareTarget(e, 'external traffic (KUBE-EXT)', [...new Set(final.map((j) => j.target))], e.externalTarget, 'externalTrafficPolicy');
    if (externalMsg) out.push({ ...base, message: externalMsg, rules: uniqueRefs(final.map((j) => ruleRef(j.rule))) });
  }
  // A chain kube-proxy would not write, listing usable endpoints: said already when traffic is
  // misrouted to it.
  if (unexpected.length > 0 && out.length === routing) {
    const chain = view.has(chains.svc) && !e.usesClusterChain ? chains.svc : localChain;
    out.push({
      ...base,
      message: `${chain} lists ${[...new Set(unexpected)].join(', ')}, but kube-proxy writes no such chain for ${e.spn} under its traffic policies (internalTrafficPolicy ${e.internalPolicyLocal ? 'Local' : 'Cluster'}, externalTrafficPolicy ${e.externalPolicyLocal ? 'Local' : 'Cluster'})`,
      rules: uniqueRefs(view.endpointJumps(chain).map((j) => ruleRef(j.jump.rule))),
    });
  }
  return out;
}

export const endpointDrift: Check = (input) => {
  const out: Finding[] = [];
  for (const node of input.nodes) {
    const view = nodeRules(node);
    for (const e of expectedPorts(input.model, node.name, view.family)) out.push(...drift(view, e));
  }
  return out;
};
