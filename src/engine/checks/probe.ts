/**
 * Traces of a Service port's frontends on a node, for the checks that judge behaviour rather than
 * rule text (black holes, nodes that disagree). Each probe is the first packet of a connection
 * from a client outside the cluster, the case where traffic policies and firewalls matter.
 */
import { EngineError } from '../errors.ts';
import { canonicalIP } from '../kube/model.ts';
import type { FrontendKind, Service } from '../kube/model.ts';
import type { Family } from '../netfilter/ast.ts';
import { cidrTest, familyOf, formatIPv4, formatIPv6, hostPort, parseCidr, parseIPv4, parseIPv6 } from '../net/address.ts';
import type { Protocol } from '../trace/packet.ts';
import type { TraceOutcome, TraceResult, TraceStep } from '../trace/tracer.ts';
import { trace } from '../trace/tracer.ts';
import { kubeProxyTables } from '../diff/nft-frontends.ts';
import { isNftables, traceRules } from '../rules.ts';
import type { ExpectedPort } from './expected.ts';
import type { AuditNode, FindingRule } from './types.ts';

export interface Frontend {
  readonly kind: FrontendKind;
  readonly destination: string;
  readonly port: number;
  readonly protocol: Protocol;
  /** "NodePort 192.168.0.10:31234", "ClusterIP 10.96.4.2:80", … */
  readonly label: string;
}


function frontend(kind: FrontendKind, destination: string, port: number, protocol: Protocol): Frontend {
  return { kind, destination, port, protocol, label: `${kind} ${hostPort(destination, port)}` };
}

/**
 * The address families a node's rules handle: an iptables dump's one; an nftables ruleset's
 * kube-proxy tables' (both for a dual-stack node; IPv4 when it has none).
 */
export function familiesOf(node: AuditNode): Family[] {
  const rs = node.ruleset;
  if (!isNftables(rs)) return [rs.family];
  const out = new Set<Family>();
  for (const t of kubeProxyTables(rs)) {
    if (t.family !== 'ip6') out.add('ipv4');
    if (t.family !== 'ip') out.add('ipv6');
  }
  return out.size === 0 ? ['ipv4'] : [...out].sort();
}

/** The node's NodePort addresses of a family. */
export function nodeAddresses(node: AuditNode, family: Family): string[] {
  return node.addresses.map(canonicalIP).filter((a) => familyOf(a) === family);
}

/** The frontends reached from outside the cluster: the NodePort on each of the node's addresses, load-balancer IPs, external IPs. */
export function externalFrontends(e: ExpectedPort, node: AuditNode, family: Family): Frontend[] {
  const protocol = e.port.protocol.toLowerCase() as Protocol;
  const out: Frontend[] = [];
  if (e.nodePort !== null) for (const a of nodeAddresses(node, family)) out.push(frontend('NodePort', a, e.nodePort, protocol));
  for (const ip of e.loadBalancerIPs) out.push(frontend('LoadBalancer', ip, e.port.port, protocol));
  for (const ip of e.externalIPs) out.push(frontend('ExternalIP', ip, e.port.port, protocol));
  return out;
}

export function clusterIPFrontends(e: ExpectedPort): Frontend[] {
  const protocol = e.port.protocol.toLowerCase() as Protocol;
  return e.clusterIPs.map((ip) => frontend('ClusterIP', ip, e.port.port, protocol));
}

/** Addresses reserved for benchmarking (RFC 2544, RFC 5180): no cluster uses them for anything. */
const OUTSIDE: Readonly<Record<Family, string>> = { ipv4: '198.18.0.1', ipv6: '2001:2::1' };

/** Addresses inside a CIDR to try as a client: near its top, then near its bottom. */
function addressesIn(cidr: string): string[] {
  const c = parseCidr(cidr.trim());
  if (!c) return [];
  if (c.family === 'ipv4') {
    const base = parseIPv4(c.address)!;
    const size = 2 ** (32 - c.prefix);
    const picks = size <= 2 ? [0, size - 1] : [size - 2, size - 3, 1, 2];
    return picks.map((o) => formatIPv4((base + o) >>> 0));
  }
  const base = parseIPv6(c.address)!;
  const size = 1n << BigInt(128 - c.prefix);
  const picks = size <= 2n ? [0n, size - 1n] : [size - 2n, size - 3n, 1n, 2n];
  return picks.map((o) => formatIPv6(base + o));
}

/**
 * A client outside the cluster that the Service's load-balancer source ranges let in (kube-proxy
 * drops other sources in KUBE-PROXY-FIREWALL by design), and that is not one of the node's
 * addresses (a packet from the node itself starts in OUTPUT and is handled as LOCAL traffic).
 */
export function outsideClient(service: Service, node: AuditNode, family: Family): string {
  const own = new Set(nodeAddresses(node, family));
  const ranges = service.loadBalancerSourceRanges.filter((r) => parseCidr(r.trim())?.family === family);
  const allowed = (a: string) => ranges.length === 0 || ranges.some((r) => cidrTest(parseCidr(r.trim())!).contains(a));
  if (allowed(OUTSIDE[family])) return OUTSIDE[family];
  for (const r of ranges) for (const a of addressesIn(r)) if (!own.has(a)) return a;
  return OUTSIDE[family];
}

/** A probe's answer, and whether its steps are the node's own (see probe's `placed`). */
interface Probed {
  readonly result: TraceResult | string;
  readonly placed: boolean;
}

const cache = new WeakMap<AuditNode['ruleset'], Map<string, Probed>>();

/**
 * Lets go of the traces kept for a ruleset: on a node of 10,000 Services they are hundreds of MB,
 * and the node-by-node audit needs them only while the node's checks run.
 */
export function forgetProbes(ruleset: AuditNode['ruleset']): void {
  cache.delete(ruleset);
}

/**
 * The trace of one packet on a node (cached per ruleset), or the error that stopped it.
 *
 * `placed` false is for callers that read only the outcomes' verdicts, destinations and
 * probabilities: the answer may then be one the node's trace memo kept from another node, as it
 * is (its steps name that node's positions and carry no rules). Such an answer costs no copy.
 */
export function probe(node: AuditNode, source: string, f: Frontend, placed = true): TraceResult | string {
  let byPacket = cache.get(node.ruleset);
  if (!byPacket) {
    byPacket = new Map();
    cache.set(node.ruleset, byPacket);
  }
  const key = `${node.addresses.join(',')}|${source}|${f.destination}|${f.port}|${f.protocol}`;
  const hit = byPacket.get(key);
  if (hit !== undefined && (hit.placed || !placed)) return hit.result;
  const rs = node.ruleset;
  // The memo shares traces between iptables nodes whose chains are alike; nftables rulesets are traced as they are.
  const memo = isNftables(rs) ? undefined : node.traces;
  let result: TraceResult | string;
  try {
    const req = {
      node: { name: node.name, addresses: node.addresses },
      packet: { source, destination: f.destination, port: f.port, protocol: f.protocol },
    };
    result = isNftables(rs) ? traceRules(rs, req) : memo ? (placed ? memo.trace(rs, req) : memo.outcomes(rs, req)) : trace(rs, req);
  } catch (e) {
    if (!(e instanceof EngineError)) throw e;
    result = e.message;
  }
  byPacket.set(key, { result, placed: placed || memo === undefined || typeof result === 'string' });
  return result;
}

/** What became of the connection, as compared between nodes: the endpoint, or the verdict. */
export function outcomeKey(o: TraceOutcome): string {
  if (o.verdict === 'DNAT') return hostPort(o.destination.ip, o.destination.port);
  if (o.verdict === 'ACCEPT') return `not translated (${o.delivery === 'local' ? 'delivered to the node' : 'forwarded as addressed'})`;
  return o.verdict;
}

/** The traced outcomes merged by `outcomeKey`, with their probabilities. */
export function distribution(result: TraceResult): Map<string, number> {
  const out = new Map<string, number>();
  for (const o of result.outcomes) {
    const k = outcomeKey(o);
    out.set(k, (out.get(k) ?? 0) + o.probability);
  }
  return out;
}

/** The connection does not reach an endpoint: dropped, rejected, or left untranslated. */
export function isBlocked(o: TraceOutcome): boolean {
  return o.verdict !== 'DNAT';
}

/** The step that decided an outcome (the DROP, REJECT or DNAT rule, or the policy), as a Finding rule. */
export function verdictStep(o: TraceOutcome): FindingRule | null {
  const path = [...o.path].reverse();
  let step: TraceStep | undefined;
  // iptables steps say `dnat`, `drop`, `reject`, `policy DROP`; nftables steps `dnat to …`, `reject with …`, `policy drop`.
  if (o.verdict === 'DNAT') step = path.find((s) => /^dnat\b/.test(s.action));
  else if (o.verdict === 'DROP' || o.verdict === 'REJECT') step = path.find((s) => /^(drop|reject)\b|^policy (DROP|drop)\b/.test(s.action));
  return step ? stepRef(step) : null;
}

export function stepRef(s: TraceStep): FindingRule {
  return { table: s.table, chain: s.chain, index: s.index, rule: s.rule };
}
