/**
 * Kubernetes meaning for a trace: which Service port each outcome went through and by which kind
 * of address (frontend), which pod the endpoint is, and why kube-proxy masquerades the packet.
 *
 * The rules are read first, because they are what the node does: kube-proxy writes
 * "ns/name:port …" into the comment of almost every rule, and names the chains of a Service port
 * and of each endpoint by a hash that can be recomputed from the manifests (chain-names.ts).
 * The manifests come last, for what the rules cannot say (the pod behind an endpoint, its node
 * and conditions) and for Services whose rules carry neither comments nor known chain names.
 */
import { EngineError } from '../errors.ts';
import { formatCidr, hostPort } from '../net/address.ts';
import type { Rule } from '../netfilter/ast.ts';
import { commentOf } from '../netfilter/ast.ts';
import type { Protocol } from '../trace/packet.ts';
import { ruleOf } from '../trace/step-rule.ts';
import type { NodeSpec, TraceOutcome, TraceResult, TraceStep } from '../trace/tracer.ts';
import type { ChainNameEntry, ChainNameIndex } from './chain-names.ts';
import { decodeChainName, kubeProxyChainName, servicePortNameString, splitChainName } from './chain-names.ts';
import type { ClusterModel, FrontendKind, Service, ServiceEndpoint, ServicePort } from './model.ts';
import { canonicalIP } from './model.ts';

/** The frontend kinds, plus the health-check NodePort (answered by kube-proxy itself) and unknown. */
export type DescribedFrontend = FrontendKind | 'HealthCheckNodePort' | 'unknown';

export interface DescribedService {
  readonly namespace: string;
  readonly name: string;
  /** `port` is null when neither the rules nor the manifests say it (a NodePort rule without manifests). */
  readonly port: { readonly name: string; readonly port: number | null; readonly protocol: string };
  readonly frontend: DescribedFrontend;
  /** How the Service was named: a rule comment, a decoded chain-name hash, or the manifests alone. */
  readonly via: 'comment' | 'chain-hash' | 'manifests';
}

export interface DescribedPod {
  readonly name: string;
  readonly namespace: string;
  readonly node: string | null;
  /** From the EndpointSlice conditions when the endpoint is listed there, else from the Pod's Ready condition. */
  readonly ready: boolean | null;
  readonly serving: boolean | null;
  readonly terminating: boolean;
}

export interface DescribedEndpoint {
  readonly ip: string;
  readonly port: number;
  readonly pod?: DescribedPod;
  /** The node the endpoint runs on (EndpointSlice nodeName, the pod's node, or the node owning the IP). */
  readonly node?: string;
  /** Whether the manifests list this ip:port as an endpoint of the Service port; absent without manifests for the Service. */
  readonly listed?: boolean;
}

export interface DescribedOutcome {
  readonly service?: DescribedService;
  readonly endpoint?: DescribedEndpoint;
  /** Why the packet is masqueraded, in Kubernetes terms; only when the outcome's `masquerade` is true. */
  readonly masqueradeReason?: string;
  /** Every distinct reason when more than one rule marked the packet (the first is `masqueradeReason`). */
  readonly masqueradeReasons?: readonly string[];
  /** Disagreements and gaps found while naming things (e.g. an endpoint the manifests do not list). */
  readonly notes: readonly string[];
}

export interface DescribedTrace {
  /** One per TraceResult outcome, in the same order. */
  readonly outcomes: readonly DescribedOutcome[];
}

export interface DescribeOptions {
  /**
   * The traced node's addresses, so that a packet to one of them can be matched to a NodePort
   * from the manifests when the manifests have no Node objects.
   */
  readonly nodeAddresses?: readonly string[];
}

/** A path step with the rule it stands for (null for a policy step) and that rule's comment and target. */
interface ParsedStep {
  readonly step: TraceStep;
  readonly body: Rule | null;
  readonly comment: string | null;
  readonly target: string | null;
}

function addrtype(body: Rule | null, option: 'src-type' | 'dst-type'): { negated: boolean; value: string } | null {
  for (const m of body?.matches ?? []) {
    if (m.module !== 'addrtype') continue;
    const o = m.options.find((x) => x.name === option);
    if (o) return { negated: o.negated, value: o.args[0] ?? '' };
  }
  return null;
}

/**
 * "ns/name:port" (or "ns/name" for an unnamed port) as kube-proxy writes it at the start of, or
 * inside, its rule comments. Namespaces and Service names are DNS labels (no dots), which keeps
 * CIDRs such as 10.0.0.0/8 from matching.
 */
const SERVICE_PORT_NAME = /(?:^|\s)([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\/([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)(?::([a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?))?(?=\s|$)/;

export function parseServicePortName(comment: string): { namespace: string; name: string; portName: string } | null {
  const m = SERVICE_PORT_NAME.exec(comment);
  return m ? { namespace: m[1], name: m[2], portName: m[3] ?? '' } : null;
}

/** What kind of address a rule stands for, from its comment, chain and matches (null: it does not say). */
function frontendOf(p: ParsedStep): DescribedFrontend | null {
  const { step, comment, target, body } = p;
  if (comment?.endsWith(' health check node port')) return 'HealthCheckNodePort';
  if (step.chain === 'KUBE-NODEPORTS') return 'NodePort';
  if (comment?.endsWith(' cluster IP')) return 'ClusterIP';
  if (comment?.endsWith(' external IP')) return 'ExternalIP';
  if (comment && /\s(loadbalancer|LB) IP(\s|$)/.test(comment)) return 'LoadBalancer';
  // KUBE-FW-* exists only for load-balancer IPs (source ranges); KUBE-PROXY-FIREWALL drops what it did not accept.
  if (target?.startsWith('KUBE-FW-') || step.chain.startsWith('KUBE-FW-') || comment?.includes('traffic not accepted by KUBE-FW-')) return 'LoadBalancer';
  if (step.table === 'filter' && step.chain === 'KUBE-EXTERNAL-SERVICES') {
    const dst = addrtype(body, 'dst-type');
    if (dst && !dst.negated && dst.value === 'LOCAL') return 'NodePort';
  }
  return null;
}

/** The masquerade bit kube-proxy uses unless configured otherwise (--iptables-masquerade-bit 14). */
function setsMark(body: Rule | null): boolean {
  if (body?.target?.name !== 'MARK') return false;
  return body.target.options.some((o) => ['or-mark', 'set-xmark', 'set-mark'].includes(o.name) && !/^0x0+(\/|$)|^0+(\/|$)/.test(o.args[0] ?? ''));
}

/**
 * The reason for one rule that marked the packet for masquerade, by the chain it sits in:
 * - KUBE-SVC/SVL (and KUBE-SERVICES in older layouts) `! -s <cidr>`: the local-traffic detector —
 *   traffic not from a pod is masqueraded so replies come back through this node.
 * - KUBE-EXT unconditional: externalTrafficPolicy Cluster may send to any node's endpoint, so the
 *   client address is replaced; `--src-type LOCAL`: the node's own traffic to an external address.
 * - KUBE-SEP `-s <endpoint>`: hairpin — a pod reaching itself through its Service.
 * - KUBE-FW (before KUBE-EXT existed), KUBE-XLB, KUBE-NODEPORTS: the same decisions in older layouts.
 */
function masqueradeReasonOf(p: ParsedStep): string {
  const { step, body, comment } = p;
  const kind = splitChainName(step.chain)?.kind ?? null;
  const src = body?.source;
  const local = addrtype(body, 'src-type');
  const fromLocal = local !== null && !local.negated && local.value === 'LOCAL';
  const inIface = body?.inInterface;
  if (kind === 'SEP') {
    if (src && !src.negated) return 'hairpin: the endpoint reaches itself through the Service';
  }
  if (fromLocal) return 'traffic from the node itself (LOCAL origin)';
  if (kind === 'SVC' || kind === 'SVL' || (step.chain === 'KUBE-SERVICES' && step.table === 'nat')) {
    if (src?.negated) return `source outside the cluster CIDR ${formatCidr(src.value)}`;
    if (inIface?.negated) return `traffic not arriving on the pod interface ${inIface.value} (not from a local pod)`;
    if (comment?.endsWith(' external IP')) return 'traffic to an external IP of a Service with externalTrafficPolicy: Cluster';
    if (comment && /\s(loadbalancer|LB) IP(\s|$)/.test(comment)) return 'load-balancer traffic to a Service with externalTrafficPolicy: Cluster';
    if (!src && !inIface) return 'masqueradeAll: kube-proxy masquerades all traffic to Service cluster IPs';
  }
  if (kind === 'EXT') {
    if (!src && !inIface) return 'external traffic to a Service with externalTrafficPolicy: Cluster';
  }
  if (kind === 'FW') return 'load-balancer traffic to a Service with externalTrafficPolicy: Cluster';
  if (kind === 'XLB') {
    if (src && !src.negated) return 'traffic from a pod to a load-balancer IP of a Service with externalTrafficPolicy: Local';
  }
  if (step.chain === 'KUBE-NODEPORTS') {
    if (src && !src.negated && src.value.address.startsWith('127.')) return 'NodePort traffic to a localhost address (must be masqueraded to leave the node)';
    return 'NodePort traffic to a Service with externalTrafficPolicy: Cluster';
  }
  return `marked for masquerade by ${step.table} ${step.chain} rule ${step.index}${comment ? ` ("${comment}")` : ''}`;
}

function masqueradeReasons(steps: readonly ParsedStep[]): string[] {
  const reasons: string[] = [];
  for (const p of steps) {
    const { step } = p;
    if (step.hook === 'POSTROUTING' || step.chain === 'KUBE-POSTROUTING' || step.chain === 'KUBE-MARK-MASQ') continue;
    const marks = ((step.action === 'jump' || step.action === 'goto') && p.target === 'KUBE-MARK-MASQ') || (step.action === 'mark' && setsMark(p.body));
    if (!marks) continue;
    const reason = masqueradeReasonOf(p);
    if (!reasons.includes(reason)) reasons.push(reason);
  }
  if (reasons.length > 0) return reasons;
  // MASQUERADE without kube-proxy's mark: another component's rule (a CNI's, the node's own).
  const masq = steps.find((p) => p.step.action === 'masquerade');
  if (masq) {
    const { step, comment } = masq;
    return [`MASQUERADE by ${step.table} ${step.chain} rule ${step.index}${comment ? ` ("${comment}")` : ''}, not by kube-proxy's masquerade mark`];
  }
  return [];
}

interface Named {
  namespace: string;
  name: string;
  portName: string;
  port: number | null;
  via: DescribedService['via'];
}

function sameServicePort(a: Pick<Named, 'namespace' | 'name' | 'portName'>, b: ChainNameEntry): boolean {
  return a.namespace === b.service.namespace && a.name === b.service.name && a.portName === b.port.name;
}

/**
 * Names the Service, endpoint, pod and masquerade reason of every outcome of a trace. `model` and
 * `index` are optional: without them the answer comes from the rule comments alone.
 */
export function describeTrace(
  result: TraceResult,
  model: ClusterModel | null,
  index: ChainNameIndex | null,
  options: DescribeOptions = {},
): DescribedTrace {
  const parse = (step: TraceStep): ParsedStep => {
    const body = ruleOf(step) ?? null;
    return { step, body, comment: body && commentOf(body), target: body?.target?.name ?? null };
  };
  return { outcomes: result.outcomes.map((o) => describeOutcome(result, o, o.path.map(parse), model, index, options)) };
}

function describeOutcome(
  result: TraceResult,
  outcome: TraceOutcome,
  steps: readonly ParsedStep[],
  model: ClusterModel | null,
  index: ChainNameIndex | null,
  options: DescribeOptions,
): DescribedOutcome {
  const notes: string[] = [];
  const protocol = result.packet.protocol.toUpperCase();

  // 1. The Service port: the first rule comment naming one, else the first chain whose name decodes.
  let named: Named | null = null;
  let commentStep: ParsedStep | null = null;
  for (const p of steps) {
    const spn = p.comment ? parseServicePortName(p.comment) : null;
    if (spn) {
      named = { ...spn, port: null, via: 'comment' };
      commentStep = p;
      break;
    }
  }
  const decoded: ChainNameEntry[] = [];
  for (const p of steps) {
    for (const chain of [p.step.chain, p.target]) {
      const e = chain ? decodeChainName(index, chain) : null;
      if (e && !decoded.some((d) => d.chain === e.chain)) decoded.push(e);
    }
  }
  if (named) {
    const conflict = decoded.find((e) => !sameServicePort(named!, e));
    if (conflict) {
      const said = servicePortNameString(named.namespace, named.name, named.portName);
      const hashed = servicePortNameString(conflict.service.namespace, conflict.service.name, conflict.port.name);
      notes.push(`the rule comments name ${said}, but chain ${conflict.chain} is kube-proxy's name for ${hashed}`);
    }
  } else if (decoded.length > 0) {
    const e = decoded[0];
    named = { namespace: e.service.namespace, name: e.service.name, portName: e.port.name, port: e.port.port, via: 'chain-hash' };
  }

  // The frontend: what the rules on the path say, else what the manifests say about the address.
  let frontend: DescribedFrontend | null = null;
  for (const p of steps) {
    frontend = frontendOf(p);
    if (frontend) break;
  }
  const matches = model
    ? model.servicesByFrontend(result.packet.destination, result.packet.port, protocol, options.nodeAddresses ?? [])
    : [];
  if (!named && matches.length > 0) {
    const m = matches[0];
    named = { namespace: m.service.namespace, name: m.service.name, portName: m.port.name, port: m.port.port, via: 'manifests' };
  }
  let service: Service | null = null;
  let servicePort: ServicePort | null = null;
  let described: DescribedService | undefined;
  if (named) {
    const key = `${named.namespace}/${named.name}`;
    service = model?.services.get(key) ?? null;
    servicePort = service?.ports.find((p) => p.name === named.portName && p.protocol === protocol) ?? null;
    if (!frontend) {
      const m = matches.find((x) => x.service.key === key && x.port.name === named.portName);
      if (m) frontend = m.frontend;
      // Older kube-proxy wrote "has no endpoints" REJECTs for cluster IPs into filter KUBE-SERVICES.
      else if (commentStep?.step.table === 'filter' && commentStep.step.chain === 'KUBE-SERVICES') frontend = 'ClusterIP';
    }
    let port = named.port ?? servicePort?.port ?? null;
    if (port === null && index) {
      const spn = servicePortNameString(named.namespace, named.name, named.portName);
      port = index.decode(kubeProxyChainName('KUBE-SVC', spn, protocol))?.port.port ?? null;
    }
    // Cluster, external and load-balancer IP rules match the Service port itself.
    if (port === null && (frontend === 'ClusterIP' || frontend === 'ExternalIP' || frontend === 'LoadBalancer')) port = result.packet.port;
    if (named.via === 'manifests') {
      notes.push(`no rule on the path names ${key}: the packet is addressed to its ${frontend ?? 'frontend'} by the manifests, but the rules did not handle it as such`);
    }
    if (model && !service && named.via !== 'manifests') notes.push(`Service ${key} is not in the manifests`);
    else if (service && !servicePort) notes.push(`Service ${key} has no ${protocol} port named "${named.portName}" in the manifests`);
    described = {
      namespace: named.namespace,
      name: named.name,
      port: { name: named.portName, port, protocol },
      frontend: frontend ?? 'unknown',
      via: named.via,
    };
  }

  // 2. The endpoint and its pod, for outcomes that were DNATed.
  let endpoint: DescribedEndpoint | undefined;
  if (outcome.verdict === 'DNAT') {
    const ip = canonicalIP(outcome.destination.ip);
    const port = outcome.destination.port;
    const dnat = [...steps].reverse().find((p) => p.step.action === 'dnat');
    const sep = dnat ? decodeChainName(index, dnat.step.chain) : null;
    if (sep?.endpoint && (sep.endpoint.ip !== ip || sep.endpoint.port !== port)) {
      notes.push(`chain ${sep.chain} is kube-proxy's name for endpoint ${hostPort(sep.endpoint.ip, sep.endpoint.port)}, but it DNATs to ${hostPort(ip, port)}`);
    }
    endpoint = describeEndpoint(model, service, servicePort, ip, port, notes);
  }

  // 3. Why the packet is masqueraded.
  return assembleOutcome(described, endpoint, outcome.masquerade ? masqueradeReasons(steps) : null, notes);
}

/**
 * One described outcome from its parts; `reasons` is null when the packet is not masqueraded,
 * and an empty list (a masquerade no rule explains) becomes a note.
 */
export function assembleOutcome(
  service: DescribedService | undefined,
  endpoint: DescribedEndpoint | undefined,
  reasons: readonly string[] | null,
  notes: string[],
): DescribedOutcome {
  if (reasons && reasons.length === 0) notes.push('masqueraded, but no rule on the path says why');
  return {
    ...(service ? { service } : {}),
    ...(endpoint ? { endpoint } : {}),
    ...(reasons && reasons.length > 0 ? { masqueradeReason: reasons[0] } : {}),
    ...(reasons && reasons.length > 1 ? { masqueradeReasons: reasons } : {}),
    notes,
  };
}

/**
 * The endpoint a packet was DNATed to (`ip` canonical): whether the manifests list it for the
 * Service port, the pod behind it and its node. Disagreements go to `notes`.
 */
export function describeEndpoint(
  model: ClusterModel | null,
  service: Service | null,
  servicePort: ServicePort | null,
  ip: string,
  port: number,
  notes: string[],
): DescribedEndpoint {
  let listed: ServiceEndpoint | null = null;
  let listedKnown = false;
  if (model && service && servicePort) {
    listedKnown = true;
    listed = model.endpointsOf(service.key, servicePort).find((e) => e.ip === ip && e.port === port)?.endpoint ?? null;
    if (!listed) notes.push(`${hostPort(ip, port)} is not an endpoint of ${service.key} in the manifests (rules and manifests disagree)`);
  }
  const pod = describePod(model, listed, ip);
  const nodeOwner = model?.nodeByAddress(ip) ?? null;
  const node = listed?.nodeName ?? pod?.node ?? nodeOwner?.name ?? undefined;
  if (model && !pod && nodeOwner) notes.push(`${ip} is an address of node ${nodeOwner.name}: a host-network endpoint`);
  return {
    ip, port,
    ...(pod ? { pod } : {}),
    ...(node ? { node } : {}),
    ...(listedKnown ? { listed: listed !== null } : {}),
  };
}

/**
 * The pod behind an endpoint: the EndpointSlice's targetRef when it points at a Pod, else the pod
 * owning the IP. Conditions come from the EndpointSlice (what kube-proxy acts on) when the
 * endpoint is listed there, else from the Pod object.
 */
function describePod(model: ClusterModel | null, listed: ServiceEndpoint | null, ip: string): DescribedPod | undefined {
  if (!model) return undefined;
  const ref = listed?.targetRef && listed.targetRef.kind === 'Pod' ? listed.targetRef : null;
  const pod = ref ? model.pods.get(`${ref.namespace}/${ref.name}`) ?? null : model.podByIP(ip);
  if (!ref && !pod) return undefined;
  return {
    name: ref?.name ?? pod!.name,
    namespace: ref?.namespace ?? pod!.namespace,
    node: listed?.nodeName ?? pod?.nodeName ?? null,
    ready: listed ? listed.ready : pod?.ready ?? null,
    serving: listed ? listed.serving : pod?.ready ?? null,
    terminating: listed ? listed.terminating : pod?.terminating ?? false,
  };
}

export interface ServiceFrontend {
  readonly frontend: FrontendKind;
  /** For NodePort frontends: the node whose address this is. */
  readonly node?: string;
  readonly servicePort: { readonly name: string; readonly port: number; readonly protocol: string };
  /** What to trace (add a source): the frontend address, port and protocol. */
  readonly packet: { readonly destination: string; readonly port: number; readonly protocol: Protocol };
}

/**
 * Every address a Service port answers on, as packets to trace: each cluster IP, each external
 * IP and load-balancer IP on the Service port, and the NodePort on each address of each node
 * (`nodes`, or the model's Nodes' InternalIP/ExternalIP addresses when not given). `port` is a
 * port name, or a port number (number or digits); a port number shared by TCP and UDP gives both.
 */
/**
 * A Service as people name it, as the model keys it ("ns/name"): `ns/name`, or its DNS name
 * `name.ns`, `name.ns.svc` or `name.ns.svc.<cluster domain>` (names and namespaces hold no dots).
 */
export function serviceKey(text: string): string {
  const t = text.trim();
  if (t.includes('/')) return t;
  const dns = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.svc(\..+)?)?\.?$/.exec(t);
  return dns ? `${dns[3]}/${dns[1]}` : t;
}

export function resolveServiceFrontends(
  model: ClusterModel,
  service: string,
  port: string | number,
  nodes?: readonly NodeSpec[],
): ServiceFrontend[] {
  const key = serviceKey(service);
  const svc = model.services.get(key);
  if (!svc) throw new EngineError('BAD_PACKET', `Service ${key} is not in the manifests`);
  const byName = typeof port === 'string' ? svc.ports.filter((p) => p.name === port) : [];
  const ports = byName.length > 0
    ? byName
    : svc.ports.filter((p) => (typeof port === 'number' || /^\d+$/.test(port)) && p.port === Number(port));
  if (ports.length === 0) {
    const list = svc.ports.map((p) => `${p.name ? `${p.name} ` : ''}${p.port}/${p.protocol}`).join(', ') || 'none';
    throw new EngineError('BAD_PACKET', `Service ${service} has no port ${JSON.stringify(port)} (its ports: ${list})`);
  }
  const nodeList: readonly NodeSpec[] = nodes ?? [...model.nodes.values()].map((n) => ({ name: n.name, addresses: n.ips }));
  const out: ServiceFrontend[] = [];
  for (const p of ports) {
    const servicePort = { name: p.name, port: p.port, protocol: p.protocol };
    const protocol = p.protocol.toLowerCase() as Protocol;
    const add = (frontend: FrontendKind, destination: string, dport: number, node?: string) =>
      out.push({ frontend, ...(node !== undefined ? { node } : {}), servicePort, packet: { destination, port: dport, protocol } });
    for (const ip of svc.clusterIPs) add('ClusterIP', ip, p.port);
    for (const ip of svc.externalIPs) add('ExternalIP', ip, p.port);
    for (const ip of svc.loadBalancerIPs) add('LoadBalancer', ip, p.port);
    if (p.nodePort !== undefined) {
      nodeList.forEach((n, i) => {
        for (const a of n.addresses) add('NodePort', canonicalIP(a), p.nodePort!, n.name ?? `node ${i + 1}`);
      });
    }
  }
  return out;
}
