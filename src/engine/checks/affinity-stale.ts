/**
 * affinity-stale: session affinity in the rules that does not match the manifests (warning).
 *
 * Under sessionAffinity ClientIP kube-proxy writes, before the random split of a KUBE-SVC/SVL
 * chain, one rule per endpoint
 *   `-m recent --rcheck --seconds T --reap --name KUBE-SEP-X --mask … --rsource -j KUBE-SEP-X`
 * and KUBE-SEP-X records each client with `-m recent --set --name KUBE-SEP-X`. A client seen by
 * an endpoint within T seconds goes back to it whatever the split says. Reported per node:
 * - an affinity rule that pins clients to an endpoint that is no longer ready, or no longer in the
 *   EndpointSlices: those clients keep reaching it for up to T seconds after their last connection;
 * - affinity rules for a Service whose sessionAffinity is None, or none for a ClientIP Service;
 * - a timeout other than sessionAffinityConfig.clientIP.timeoutSeconds.
 */
import { conditions, expectedPorts } from './expected.ts';
import type { ExpectedPort } from './expected.ts';
import type { NodeRules } from './node-rules.ts';
import { nodeRules, ruleRef, uniqueRefs } from './node-rules.ts';
import type { Check, Finding } from './types.ts';

const CHECK = 'affinity-stale';

function affinityOf(view: NodeRules, e: ExpectedPort): Finding[] {
  const base = { check: CHECK, severity: 'warning' as const, node: view.node.name, service: e.service.key, port: e.label };
  const out: Finding[] = [];
  const clientIP = e.service.sessionAffinity === 'ClientIP';
  const chains = [
    { chain: e.chains.svc, expected: e.cluster },
    { chain: e.chains.svl, expected: e.local },
    { chain: e.chains.xlb, expected: e.local },
  ].filter((c) => view.hasRules(c.chain));
  for (const { chain, expected } of chains) {
    const pinned = view.endpointJumps(chain, true);
    const split = view.endpointJumps(chain, false);
    if (!clientIP) {
      if (pinned.length > 0) {
        out.push({
          ...base,
          message: `${chain} pins clients to endpoints (-m recent), but ${e.spn} has sessionAffinity None in the manifests: kube-proxy on this node has not caught up`,
          rules: uniqueRefs(pinned.map((p) => ruleRef(p.jump.rule))),
        });
      }
      continue;
    }
    if (pinned.length === 0) {
      if (split.length > 0) {
        out.push({
          ...base,
          message: `${e.spn} has sessionAffinity ClientIP in the manifests, but ${chain} does not pin clients to endpoints (no -m recent rules): kube-proxy on this node has not caught up`,
          rules: uniqueRefs(split.map((p) => ruleRef(p.jump.rule))),
        });
      }
      continue;
    }
    const timeout = e.service.sessionAffinityTimeoutSeconds;
    const wrongTimeout = pinned.filter((p) => timeout !== null && p.jump.affinity!.seconds !== timeout);
    if (wrongTimeout.length > 0) {
      const seen = [...new Set(wrongTimeout.map((p) => p.jump.affinity!.seconds ?? 'no'))].join(', ');
      out.push({
        ...base,
        message: `${chain} keeps clients pinned for ${seen} seconds, but ${e.spn} has sessionAffinityConfig.clientIP.timeoutSeconds ${timeout} in the manifests`,
        rules: uniqueRefs(wrongTimeout.map((p) => ruleRef(p.jump.rule))),
      });
    }
    const usable = new Set(expected.map((x) => x.key));
    for (const { jump, dnat } of pinned) {
      if (!dnat || usable.has(dnat.key)) continue;
      const m = e.endpoints.find((x) => x.key === dnat.key);
      const state = !m ? 'is not in the EndpointSlices' : m.ready ? `is not one of the endpoints kube-proxy would use here` : `is ${conditions(m)}`;
      out.push({
        ...base,
        message: `${chain} pins clients to endpoint ${dnat.key} (recent list ${jump.affinity!.name}) for ${jump.affinity!.seconds ?? '?'} seconds, but it ${state}: clients it has seen keep reaching it`,
        rules: uniqueRefs([ruleRef(jump.rule), ruleRef(dnat.rule)]),
      });
    }
  }
  return out;
}

export const affinityStale: Check = (input) => {
  const out: Finding[] = [];
  for (const node of input.nodes) {
    const view = nodeRules(node);
    for (const e of expectedPorts(input.model, node.name, view.family)) out.push(...affinityOf(view, e));
  }
  return out;
};
