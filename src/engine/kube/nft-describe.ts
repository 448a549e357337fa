/**
 * Kubernetes meaning for a trace through kube-proxy's nftables rules: the Service port, the kind
 * of address the packet was sent to, the endpoint pod, and why the packet is masqueraded.
 *
 * In nftables mode the rules name themselves: every per-Service chain carries
 * `<ns>/<name>/<proto>/<port>` (nft-chain-names.ts), the verdict maps send a packet to those
 * chains by address, protocol and port, and the no-endpoint maps' elements carry "ns/name:port"
 * comments. So the answer comes from the path first, and the manifests add the pod, its node and
 * what the rules cannot say (the port number behind a port name, ExternalIP vs LoadBalancer).
 */
import { canonicalIP } from './model.ts';
import type { ClusterModel, Service, ServicePort } from './model.ts';
import type { TraceOutcome, TraceResult, TraceStep } from '../trace/tracer.ts';
import type { DescribedEndpoint, DescribedFrontend, DescribedOutcome, DescribedService, DescribedTrace, DescribeOptions } from './describe.ts';
import { assembleOutcome, describeEndpoint, parseServicePortName } from './describe.ts';
import type { NftChainName } from './nft-chain-names.ts';
import { decodeNftChainName } from './nft-chain-names.ts';
import { hostPort } from '../net/address.ts';
import type { NftExpr, NftMatch, NftRule } from '../nftables/ast.ts';
import { printExpr } from '../nftables/printer.ts';
import { nftRuleOf, takenElementOf } from '../trace/step-rule.ts';

/** kube-proxy's chain that marks a packet for masquerading (`mark set mark or 0x4000`). */
const MARK_CHAIN = 'mark-for-masquerade';

/** The chain a step's verdict (or verdict-map element) sent the packet to. */
function targetOf(step: TraceStep): string | null {
  const taken = takenElementOf(step);
  if (taken) return taken.chain ?? null;
  const last = nftRuleOf(step)?.statements.at(-1);
  return last?.kind === 'verdict' && (last.verdict === 'jump' || last.verdict === 'goto') ? last.target ?? null : null;
}

/** The comment of the verdict-map element a step took: `ns2/svc2:p80` of a no-endpoint element. */
function elementComment(step: TraceStep): string | null {
  return takenElementOf(step)?.comment ?? null;
}

/** The names of the sets and maps a rule looks the packet up in (`@service-ips`). */
function setsOf(rule: NftRule | undefined): string[] {
  const names: string[] = [];
  const expr = (e: NftExpr): void => {
    if (e.kind === 'set-ref') names.push(e.name);
    else if (e.kind === 'map') expr(e.map);
  };
  for (const st of rule?.statements ?? []) {
    if (st.kind === 'vmap') expr(st.map);
    else if (st.kind === 'match') expr(st.right);
  }
  return names;
}

/** The matches of a rule on the packet's source address (`ip saddr …`, `ip6 saddr …`). */
function sourceMatches(rule: NftRule | undefined): NftMatch[] {
  return (rule?.statements ?? []).filter((st): st is NftMatch =>
    st.kind === 'match' && st.left.kind === 'payload' && (st.left.protocol === 'ip' || st.left.protocol === 'ip6') && st.left.field === 'saddr');
}

function samePort(a: NftChainName, b: NftChainName): boolean {
  return a.namespace === b.namespace && a.name === b.name && a.portName === b.portName && a.protocol === b.protocol;
}

/**
 * The kind of address, from the map the `services` chain looked the packet up in and the chain it
 * went to: `service-nodeports` is a NodePort; `service-ips` to a `service-`/`local-` chain is a
 * cluster IP; to an `external-` chain an external or load-balancer IP (a `firewall-` chain on the
 * path says load balancer). The no-endpoint maps say the same for Services without endpoints.
 */
function frontendOf(steps: readonly TraceStep[]): DescribedFrontend | null {
  if (steps.some((s) => decodeNftChainName(s.chain)?.kind === 'firewall')) return 'LoadBalancer';
  for (const s of steps) {
    const sets = setsOf(nftRuleOf(s));
    if (sets.includes('service-nodeports') || sets.includes('no-endpoint-nodeports')) return 'NodePort';
    if (sets.includes('service-ips')) {
      const target = targetOf(s);
      const kind = target ? decodeNftChainName(target)?.kind : null;
      if (kind === 'service' || kind === 'local') return 'ClusterIP';
      if (kind === 'external') return null;
    }
  }
  return null;
}

/**
 * Why one rule that jumped to mark-for-masquerade did so, by the chain it stands in and its
 * matches (kube-proxy's syncProxyRules writes each of these):
 * - service-/local- `ip saddr != <cidr>` (or `iifname != …`): the local-traffic detector: not from a
 *   pod, so replies must come back through this node; unconditional: masqueradeAll.
 * - external- unconditional: externalTrafficPolicy Cluster; `fib saddr type local`: the node's own traffic.
 * - endpoint- `ip saddr <endpoint>`: hairpin.
 */
function masqueradeReasonOf(step: TraceStep): string {
  const kind = decodeNftChainName(step.chain)?.kind ?? null;
  const rule = nftRuleOf(step);
  const statements = rule?.statements ?? [];
  const source = sourceMatches(rule);
  const notFrom = source.find((m) => m.op === '!=');
  const notIface = statements.find((st): st is NftMatch => st.kind === 'match' && st.op === '!=' && st.left.kind === 'meta' && st.left.key === 'iifname');
  if (kind === 'endpoint' && source.some((m) => m.op === '==' && m.right.kind === 'literal')) return 'hairpin: the endpoint reaches itself through the Service';
  const fromLocal = statements.some((st) =>
    st.kind === 'match' && st.op === '==' && st.left.kind === 'fib' && st.left.result === 'type' && st.left.flags.length === 1 && st.left.flags[0] === 'saddr'
    && st.right.kind === 'literal' && st.right.text === 'local');
  if (fromLocal) return 'traffic from the node itself (LOCAL origin)';
  if (kind === 'service' || kind === 'local') {
    if (notFrom) return `source outside the cluster CIDR ${printExpr(notFrom.right)}`;
    if (notIface) return `traffic not arriving on the pod interface ${notIface.right.kind === 'literal' ? notIface.right.text : printExpr(notIface.right)} (not from a local pod)`;
    return 'masqueradeAll: kube-proxy masquerades all traffic to Service cluster IPs';
  }
  if (kind === 'external') return 'external traffic to a Service with externalTrafficPolicy: Cluster';
  return `marked for masquerade by ${step.table} ${step.chain} rule ${step.index}`;
}

/** Does the step's rule end in a NAT statement of this type (it ran: the step is on the path)? */
function hasNat(step: TraceStep, type: 'dnat' | 'masquerade'): boolean {
  return nftRuleOf(step)?.statements.some((st) => st.kind === 'nat' && st.type === type) ?? false;
}

function masqueradeReasons(steps: readonly TraceStep[]): string[] {
  const reasons: string[] = [];
  for (const step of steps) {
    if (targetOf(step) !== MARK_CHAIN || step.hook === 'POSTROUTING') continue;
    const reason = masqueradeReasonOf(step);
    if (!reasons.includes(reason)) reasons.push(reason);
  }
  if (reasons.length > 0) return reasons;
  const masq = steps.find((s) => hasNat(s, 'masquerade'));
  return masq ? [`masquerade by ${masq.table} ${masq.chain} rule ${masq.index}, not by kube-proxy's masquerade mark`] : [];
}

/** Names the Service, endpoint, pod and masquerade reason of every outcome of an nftables trace. */
export function describeNftTrace(result: TraceResult, model: ClusterModel | null, options: DescribeOptions = {}): DescribedTrace {
  return { outcomes: result.outcomes.map((o) => describeOutcome(result, o, model, options)) };
}

function describeOutcome(result: TraceResult, outcome: TraceOutcome, model: ClusterModel | null, options: DescribeOptions): DescribedOutcome {
  const notes: string[] = [];
  const protocol = result.packet.protocol.toUpperCase();
  const steps = outcome.path;

  // 1. The Service port: the first chain on the path (or chain a verdict went to) that is one of
  // a Service port's, else a no-endpoint element's comment, else the manifests.
  let decoded: NftChainName | null = null;
  for (const s of steps) {
    for (const chain of [s.chain, targetOf(s)]) {
      const d = chain ? decodeNftChainName(chain) : null;
      if (!d || d.kind === 'affinity') continue;
      if (!decoded) decoded = d;
      else if (!samePort(decoded, d)) notes.push(`chain ${chain} belongs to ${d.namespace}/${d.name}:${d.portName}, not ${decoded.namespace}/${decoded.name}:${decoded.portName}`);
      if (!d.hashMatches) notes.push(`chain ${chain} does not carry the hash kube-proxy computes for its name`);
    }
  }
  let named: { namespace: string; name: string; portName: string; via: DescribedService['via'] } | null = decoded
    ? { namespace: decoded.namespace, name: decoded.name, portName: decoded.portName, via: 'chain-hash' }
    : null;
  if (!named) {
    for (const s of steps) {
      const comment = elementComment(s);
      const spn = comment ? parseServicePortName(comment) : null;
      if (spn) {
        named = { ...spn, via: 'comment' };
        break;
      }
    }
  }
  let frontend = frontendOf(steps);
  const matches = model
    ? model.servicesByFrontend(result.packet.destination, result.packet.port, protocol, options.nodeAddresses ?? [])
    : [];
  if (!named && matches.length > 0) {
    const m = matches[0];
    named = { namespace: m.service.namespace, name: m.service.name, portName: m.port.name, via: 'manifests' };
    notes.push(`no rule on the path names ${m.service.key}: the packet is addressed to its ${m.frontend} by the manifests, but the rules did not handle it as such`);
  }
  let described: DescribedService | undefined;
  let service: Service | null = null;
  let servicePort: ServicePort | null = null;
  if (named) {
    const key = `${named.namespace}/${named.name}`;
    service = model?.services.get(key) ?? null;
    servicePort = service?.ports.find((p) => p.name === named.portName && p.protocol === protocol) ?? null;
    const m = matches.find((x) => x.service.key === key && x.port.name === named.portName);
    if (!frontend && m) frontend = m.frontend;
    if (model && !service && named.via !== 'manifests') notes.push(`Service ${key} is not in the manifests`);
    else if (service && !servicePort) notes.push(`Service ${key} has no ${protocol} port named "${named.portName}" in the manifests`);
    let port = servicePort?.port ?? null;
    // Cluster, external and load-balancer IPs are reached on the Service port itself.
    if (port === null && frontend && frontend !== 'NodePort' && frontend !== 'unknown' && frontend !== 'HealthCheckNodePort') port = result.packet.port;
    described = {
      namespace: named.namespace, name: named.name, port: { name: named.portName, port, protocol },
      frontend: frontend ?? 'unknown', via: named.via,
    };
  }

  // 2. The endpoint: the destination after DNAT, checked against the endpoint chain's name.
  let endpoint: DescribedEndpoint | undefined;
  if (outcome.verdict === 'DNAT') {
    const ip = canonicalIP(outcome.destination.ip);
    const port = outcome.destination.port;
    const dnat = [...steps].reverse().find((s) => hasNat(s, 'dnat'));
    const ep = dnat ? decodeNftChainName(dnat.chain)?.endpoint : undefined;
    if (ep && (canonicalIP(ep.ip) !== ip || ep.port !== port)) {
      notes.push(`chain ${dnat!.chain} is kube-proxy's name for endpoint ${hostPort(ep.ip, ep.port)}, but it DNATs to ${hostPort(ip, port)}`);
    }
    endpoint = describeEndpoint(model, service, servicePort, ip, port, notes);
  }

  // 3. Why the packet is masqueraded.
  return assembleOutcome(described, endpoint, outcome.masquerade ? masqueradeReasons(steps) : null, notes);
}
