/**
 * black-holes: for every NodePort (on each of the node's addresses), load-balancer IP and external
 * IP, the nodes where the first packet of a connection from outside the cluster does not reach an
 * endpoint: it is dropped, rejected, or left untranslated. Found by tracing the packet through the
 * node's rules (of either backend), from a client the Service's loadBalancerSourceRanges admit.
 *
 * Two black holes are kube-proxy doing what it is told (info):
 * - a Service port without usable endpoints: kube-proxy REJECTs every frontend
 *   ("ns/name:port has no endpoints");
 * - externalTrafficPolicy Local on a node without a local endpoint: kube-proxy DROPs external
 *   traffic ("has no local endpoints"); load balancers keep away through the health-check NodePort.
 * Any other black hole is an error.
 */
import { expectedPorts } from './expected.ts';
import type { ExpectedPort } from './expected.ts';
import type { Family } from '../netfilter/ast.ts';
import { percent, uniqueRefs } from './node-rules.ts';
import type { Frontend } from './probe.ts';
import { externalFrontends, familiesOf, isBlocked, outcomeKey, outsideClient, probe, verdictStep } from './probe.ts';
import type { AuditNode, Check, Finding, FindingRule } from './types.ts';

const CHECK = 'black-holes';

interface Hole {
  readonly frontend: Frontend;
  readonly probability: number;
  readonly what: string;
}

function explanation(e: ExpectedPort, node: AuditNode): string | null {
  if (!e.hasEndpoints) return `${e.spn} has no usable endpoints, so kube-proxy rejects its traffic (expected)`;
  if (e.externalPolicyLocal && e.local.length === 0) {
    return `${e.spn} has externalTrafficPolicy Local and no endpoint on ${node.name}, so kube-proxy drops external traffic here (expected)`;
  }
  return null;
}

function holesOf(node: AuditNode, e: ExpectedPort, family: Family): Finding[] {
  const frontends = externalFrontends(e, node, family);
  if (frontends.length === 0) return [];
  const source = outsideClient(e.service, node, family);
  const holes: Hole[] = [];
  const rules: FindingRule[] = [];
  const failures: string[] = [];
  for (const f of frontends) {
    const outcomes = probe(node, source, f, false);
    if (typeof outcomes === 'string') {
      failures.push(`${f.label}: ${outcomes}`);
      continue;
    }
    if (!outcomes.outcomes.some(isBlocked)) continue;
    // A black hole: the trace again, with the steps of this node's rules that show it.
    const result = probe(node, source, f);
    if (typeof result === 'string') {
      failures.push(`${f.label}: ${result}`);
      continue;
    }
    const blocked = result.outcomes.filter(isBlocked);
    const probability = blocked.reduce((s, o) => s + o.probability, 0);
    const what = [...new Set(blocked.map(outcomeKey))].join(' or ');
    holes.push({ frontend: f, probability, what });
    for (const o of blocked) {
      const step = o.verdict === 'ACCEPT' ? null : verdictStep(o);
      if (step) rules.push(step);
    }
  }
  const base = { check: CHECK, node: node.name, service: e.service.key, port: e.label };
  const out: Finding[] = [];
  if (failures.length > 0) {
    out.push({ ...base, severity: 'warning', message: `the trace from ${source} could not finish on ${node.name}: ${failures.join('; ')}`, rules: [] });
  }
  if (holes.length === 0) return out;
  const list = holes.map((h) => `${h.frontend.label} (${h.what}${h.probability < 0.9999995 ? `, ${percent(h.probability)} of new connections` : ''})`).join(', ');
  const why = explanation(e, node);
  out.push({
    ...base,
    severity: why ? 'info' : 'error',
    message: why
      ? `${list} from outside the cluster: ${why}`
      : `${list} from outside the cluster (client ${source}), although ${e.spn} has ${e.externalPolicyLocal ? `${e.local.length} endpoint${e.local.length === 1 ? '' : 's'} on ${node.name}` : `${e.cluster.length} usable endpoint${e.cluster.length === 1 ? '' : 's'}`} in the manifests`,
    rules: uniqueRefs(rules),
  });
  return out;
}

export const blackHoles: Check = (input) => {
  const out: Finding[] = [];
  for (const node of input.nodes) {
    for (const family of familiesOf(node)) {
      for (const e of expectedPorts(input.model, node.name, family)) out.push(...holesOf(node, e, family));
    }
  }
  return out;
};
