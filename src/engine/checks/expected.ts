/**
 * What kube-proxy (iptables mode, 1.24+ chain layout) would program on one node for each Service
 * port of the manifests: which endpoints each of its chains lists and where each kind of traffic
 * goes. The checks compare this with the node's rules.
 *
 * The selection follows kube-proxy's CategorizeEndpoints (pkg/proxy/topology.go) without topology
 * hints, and the chain choices of syncProxyRules (pkg/proxy/iptables/proxier.go).
 */
import { endpointString, kubeProxyChainName, servicePortNameString } from '../kube/chain-names.ts';
import type { ClusterModel, Service, ServiceEndpoint, ServicePort } from '../kube/model.ts';
import { canonicalIP } from '../kube/model.ts';
import type { Family } from '../netfilter/ast.ts';
import { familyOf } from '../net/address.ts';

/** One endpoint of a Service port as kube-proxy sees it on a node. */
export interface PlannedEndpoint {
  readonly ip: string;
  readonly port: number;
  /** kube-proxy's endpoint string, "ip:port" ("[ip]:port" for IPv6). */
  readonly key: string;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly nodeName: string | null;
  /** Runs on the node being audited (EndpointSlice nodeName equals the node's name). */
  readonly local: boolean;
  readonly endpoint: ServiceEndpoint;
}

export interface PortChains {
  readonly svc: string;
  readonly svl: string;
  readonly ext: string;
  readonly fw: string;
  /** The local-only external chain of kube-proxy before 1.24. */
  readonly xlb: string;
}

export interface ExpectedPort {
  readonly service: Service;
  readonly port: ServicePort;
  /** "ns/name:port", or "ns/name" for an unnamed port, as kube-proxy's comments write it. */
  readonly spn: string;
  /** What a Finding's `port` says: the port's name, or its number when unnamed. */
  readonly label: string;
  readonly chains: PortChains;
  /** The Service's addresses of the ruleset's family. */
  readonly clusterIPs: readonly string[];
  readonly externalIPs: readonly string[];
  readonly loadBalancerIPs: readonly string[];
  readonly nodePort: number | null;
  /** Every endpoint of the port, of the ruleset's family, unique by ip:port, sorted as kube-proxy sorts them. */
  readonly endpoints: readonly PlannedEndpoint[];
  /** What KUBE-SVC lists: the ready endpoints, or the serving-terminating ones when none is ready. */
  readonly cluster: readonly PlannedEndpoint[];
  /** What KUBE-SVL lists: the local ready endpoints, or the local serving-terminating ones when none is ready. */
  readonly local: readonly PlannedEndpoint[];
  /** Some endpoint is usable anywhere: otherwise kube-proxy REJECTs every frontend of the port. */
  readonly hasEndpoints: boolean;
  readonly externallyAccessible: boolean;
  readonly internalPolicyLocal: boolean;
  readonly externalPolicyLocal: boolean;
  /** kube-proxy writes KUBE-SVC-… (with `cluster`). */
  readonly usesClusterChain: boolean;
  /** kube-proxy writes KUBE-SVL-… (with `local`). */
  readonly usesLocalChain: boolean;
  /** kube-proxy writes KUBE-EXT-…. */
  readonly usesExternalChain: boolean;
  /** Where cluster-IP traffic goes: the chain, or null when kube-proxy drops (no local endpoints) or rejects it. */
  readonly internalTarget: string | null;
  /** Where KUBE-EXT-… finally sends traffic from outside the cluster: the chain, or null when it is dropped or rejected. */
  readonly externalTarget: string | null;
}

/** ServiceEndpoint conditions to pick endpoints with, duplicates merged (a ready copy wins). */
function plannedEndpoints(model: ClusterModel, service: Service, port: ServicePort, family: Family, nodeName: string): PlannedEndpoint[] {
  const byKey = new Map<string, PlannedEndpoint>();
  for (const pe of model.endpointsOf(service.key, port)) {
    const ip = canonicalIP(pe.ip);
    if (familyOf(ip) !== family) continue;
    const key = endpointString(ip, pe.port);
    const e = pe.endpoint;
    const planned: PlannedEndpoint = {
      ip, port: pe.port, key,
      ready: e.ready, serving: e.serving, terminating: e.terminating,
      nodeName: e.nodeName ?? null,
      local: e.nodeName !== undefined && e.nodeName === nodeName,
      endpoint: e,
    };
    const seen = byKey.get(key);
    if (!seen || (!seen.ready && planned.ready)) byKey.set(key, planned);
  }
  // kube-proxy writes endpoints sorted by their "ip:port" string.
  return [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

function isFamily(family: Family) {
  return (ip: string) => familyOf(ip) === family;
}

/** Builds the expectation of one Service port on one node. */
export function expectPort(model: ClusterModel, service: Service, port: ServicePort, family: Family, nodeName: string): ExpectedPort {
  const spn = servicePortNameString(service.namespace, service.name, port.name);
  // Every per-port chain has the same hash (of "ns/name:port" + protocol) behind its prefix.
  const hash = kubeProxyChainName('KUBE-SVC', spn, port.protocol).slice('KUBE-SVC-'.length);
  const chains: PortChains = { svc: `KUBE-SVC-${hash}`, svl: `KUBE-SVL-${hash}`, ext: `KUBE-EXT-${hash}`, fw: `KUBE-FW-${hash}`, xlb: `KUBE-XLB-${hash}` };
  const clusterIPs = service.clusterIPs.map(canonicalIP).filter(isFamily(family));
  const externalIPs = service.externalIPs.map(canonicalIP).filter(isFamily(family));
  const loadBalancerIPs = service.loadBalancerIPs.map(canonicalIP).filter(isFamily(family));
  const nodePort = port.nodePort ?? null;
  const endpoints = plannedEndpoints(model, service, port, family, nodeName);

  // ExternallyAccessible (service level, apiservice): what makes externalTrafficPolicy apply.
  const type = service.type ?? 'ClusterIP';
  const serviceExternallyAccessible = type === 'NodePort' || type === 'LoadBalancer' || service.externalIPs.length > 0;
  const externalPolicyLocal = serviceExternallyAccessible && service.externalTrafficPolicy === 'Local';
  const internalPolicyLocal = service.internalTrafficPolicy === 'Local';
  // ExternallyAccessible (port level, proxy): something besides the cluster IP reaches this port.
  const externallyAccessible = nodePort !== null || loadBalancerIPs.length > 0 || externalIPs.length > 0;
  const usesClusterEndpoints = !internalPolicyLocal || externallyAccessible;
  const usesLocalEndpoints = internalPolicyLocal || (externalPolicyLocal && externallyAccessible);

  // CategorizeEndpoints: ready endpoints, or serving-terminating ones when none is ready
  // (ProxyTerminatingEndpoints), decided separately for the cluster and the local set.
  let cluster: PlannedEndpoint[] = [];
  let hasEndpoints = false;
  if (usesClusterEndpoints) {
    cluster = endpoints.filter((e) => e.ready);
    if (cluster.length === 0) cluster = endpoints.filter((e) => e.serving && e.terminating);
    if (cluster.length > 0) hasEndpoints = true;
  }
  let local: PlannedEndpoint[] = [];
  if (usesLocalEndpoints) {
    let localReady = false;
    let localServingTerminating = false;
    for (const e of endpoints) {
      if (e.ready) {
        hasEndpoints = true;
        if (e.local) localReady = true;
      } else if (e.serving && e.terminating) {
        hasEndpoints = true;
        if (e.local) localServingTerminating = true;
      }
    }
    if (localReady) local = endpoints.filter((e) => e.local && e.ready);
    else if (localServingTerminating) local = endpoints.filter((e) => e.local && e.serving && e.terminating);
  }

  const usesClusterChain = cluster.length > 0 && usesClusterEndpoints;
  const usesLocalChain = local.length > 0 && usesLocalEndpoints;
  // With a Local policy and no local endpoint the traffic class is dropped in filter ("has no
  // local endpoints"); with no endpoint at all everything is rejected ("has no endpoints").
  const hasInternalEndpoints = hasEndpoints && (!internalPolicyLocal || local.length > 0);
  const hasExternalEndpoints = hasEndpoints && (!externalPolicyLocal || local.length > 0);
  return {
    service, port, spn,
    label: port.name !== '' ? port.name : String(port.port),
    chains, clusterIPs, externalIPs, loadBalancerIPs, nodePort, endpoints, cluster, local, hasEndpoints,
    externallyAccessible, internalPolicyLocal, externalPolicyLocal,
    usesClusterChain, usesLocalChain,
    usesExternalChain: hasEndpoints && externallyAccessible,
    internalTarget: hasInternalEndpoints ? (internalPolicyLocal ? chains.svl : chains.svc) : null,
    externalTarget: hasExternalEndpoints && externallyAccessible ? (externalPolicyLocal ? chains.svl : chains.svc) : null,
  };
}

/** Per model, per node and family; a model kept between tasks (a worker's manifests cache) would keep every node's. */
let cache = new WeakMap<ClusterModel, Map<string, readonly ExpectedPort[]>>();

/** Lets go of every node's expected ports (shared-parses.ts). */
export function forgetExpectedPorts(): void {
  cache = new WeakMap();
}

/**
 * Every Service port kube-proxy proxies on a node for one address family: Services with a cluster
 * IP of that family (headless and ExternalName Services get no rules), in manifest order.
 */
export function expectedPorts(model: ClusterModel, nodeName: string, family: Family): readonly ExpectedPort[] {
  let byNode = cache.get(model);
  if (!byNode) {
    byNode = new Map();
    cache.set(model, byNode);
  }
  const key = `${family}|${nodeName}`;
  const hit = byNode.get(key);
  if (hit) return hit;
  const out: ExpectedPort[] = [];
  for (const service of model.services.values()) {
    if (service.headless || service.type === 'ExternalName') continue;
    if (!service.clusterIPs.some(isFamily(family))) continue;
    for (const port of service.ports) out.push(expectPort(model, service, port, family, nodeName));
  }
  byNode.set(key, out);
  return out;
}

/** "ready", "not ready (serving, terminating)", … for messages. */
export function conditions(e: Pick<PlannedEndpoint, 'ready' | 'serving' | 'terminating'>): string {
  if (e.ready) return 'ready';
  const parts = [e.serving ? 'serving' : 'not serving'];
  if (e.terminating) parts.push('terminating');
  return `not ready (${parts.join(', ')})`;
}

/** "1 ready endpoint", "3 ready endpoints", "2 serving-terminating endpoints". */
export function countEndpoints(list: readonly PlannedEndpoint[]): string {
  const n = list.length;
  const kind = list.length > 0 && list.every((e) => !e.ready) ? 'serving-terminating' : 'ready';
  return `${n} ${kind} endpoint${n === 1 ? '' : 's'}`;
}
