/**
 * The cluster model: the Kubernetes objects kube-proxy programs its rules from (Services and
 * their endpoints) plus what an answer needs to name things (Pods, Nodes, Namespaces).
 * Built by `readClusterModel` (manifests.ts) from `kubectl get … -o json|yaml` output; plain
 * readonly data with a few lookups.
 */
import { canonicalAddress } from '../net/address.ts';

/** Service.spec.type; null when the object leaves it unset (API defaulting would make it ClusterIP). */
export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
/** As written in the API (upper case). */
export type ServiceProtocol = 'TCP' | 'UDP' | 'SCTP';
export type TrafficPolicy = 'Cluster' | 'Local';
/** Where a packet meets a Service: the kinds of address kube-proxy programs a rule for. */
export type FrontendKind = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalIP';

export interface ObjectRef {
  readonly namespace: string;
  readonly name: string;
}

/** Where an object came from: 1-based document number and the path inside it (e.g. `items[3]`). */
export interface SourceRef {
  readonly document: number;
  readonly path: string;
}

export interface ServicePort {
  /** "" for the single unnamed port a Service may have. */
  readonly name: string;
  readonly port: number;
  /** Defaults to TCP, as the API server does. */
  readonly protocol: ServiceProtocol;
  /** Number, named container port, or null when unset. */
  readonly targetPort: number | string | null;
  readonly nodePort?: number;
}

export interface Service extends ObjectRef {
  /** "ns/name". */
  readonly key: string;
  readonly type: ServiceType | null;
  /** spec.clusterIPs, else [spec.clusterIP]; empty for headless ("None") and ExternalName Services. */
  readonly clusterIPs: readonly string[];
  readonly headless: boolean;
  readonly ports: readonly ServicePort[];
  readonly externalIPs: readonly string[];
  /**
   * status.loadBalancer.ingress[].ip of VIP-mode ingress points, the ones kube-proxy writes rules
   * for (hostname-only points and `ipMode: Proxy` ones are skipped, as kube-proxy skips them).
   */
  readonly loadBalancerIPs: readonly string[];
  /** Trimmed, as kube-proxy trims them before writing `-s` rules. */
  readonly loadBalancerSourceRanges: readonly string[];
  readonly externalTrafficPolicy: TrafficPolicy;
  readonly internalTrafficPolicy: TrafficPolicy;
  readonly sessionAffinity: 'None' | 'ClientIP';
  /** sessionAffinityConfig.clientIP.timeoutSeconds, 10800 by default under ClientIP; null otherwise. */
  readonly sessionAffinityTimeoutSeconds: number | null;
  /** null when the Service has no selector (its endpoints are managed by hand). */
  readonly selector: Readonly<Record<string, string>> | null;
  readonly healthCheckNodePort: number | null;
  readonly labels: Readonly<Record<string, string>>;
  readonly source: SourceRef;
}

export interface EndpointPort {
  readonly port: number;
  readonly protocol: ServiceProtocol;
}

/**
 * One endpoint address of a Service, from an EndpointSlice (or converted from core/v1 Endpoints).
 * kube-proxy reads the conditions this way: an absent `ready` counts as ready, an absent
 * `serving` takes the value of `ready`, an absent `terminating` is false.
 */
export interface ServiceEndpoint {
  readonly ip: string;
  /** Port by port name ("" for the unnamed port), as kube-proxy pairs them with the Service's ports. */
  readonly ports: Readonly<Record<string, EndpointPort>>;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly nodeName?: string;
  readonly zone?: string;
  readonly targetRef?: { readonly kind: string; readonly namespace: string; readonly name: string };
  /** Which object listed it: `EndpointSlice ns/name` or `Endpoints ns/name`. */
  readonly from: string;
}

export interface Pod extends ObjectRef {
  readonly key: string;
  readonly podIPs: readonly string[];
  readonly nodeName: string | null;
  readonly phase: string | null;
  /** The Ready condition; null when the object has no such condition. */
  readonly ready: boolean | null;
  /** metadata.deletionTimestamp is set: the pod is shutting down. */
  readonly terminating: boolean;
  readonly hostNetwork: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly source: SourceRef;
}

export interface NodeAddress {
  readonly type: string;
  readonly address: string;
}

export interface Node {
  readonly name: string;
  readonly addresses: readonly NodeAddress[];
  /** InternalIP and ExternalIP addresses: where NodePorts answer. */
  readonly ips: readonly string[];
  readonly podCIDRs: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly source: SourceRef;
}

export interface Namespace {
  readonly name: string;
  readonly phase: string | null;
  readonly labels: Readonly<Record<string, string>>;
}

/** An object of a kind the model does not use, kept as it was. */
export interface OtherObject {
  readonly apiVersion: string | null;
  readonly kind: string;
  readonly namespace: string | null;
  readonly name: string | null;
  readonly source: SourceRef;
  readonly object: unknown;
}

export interface FrontendMatch {
  readonly service: Service;
  readonly port: ServicePort;
  readonly frontend: FrontendKind;
}

/** The endpoint of a Service port: one ServiceEndpoint paired with the port the Service port maps to. */
export interface PortEndpoint {
  readonly endpoint: ServiceEndpoint;
  readonly ip: string;
  readonly port: number;
  readonly protocol: ServiceProtocol;
}

export interface ClusterModelData {
  readonly services: ReadonlyMap<string, Service>;
  readonly endpoints: ReadonlyMap<string, readonly ServiceEndpoint[]>;
  readonly pods: ReadonlyMap<string, Pod>;
  readonly nodes: ReadonlyMap<string, Node>;
  readonly namespaces: ReadonlyMap<string, Namespace>;
  readonly others: readonly OtherObject[];
}

/** Address text as the rules print it (IPv6 compressed), so lookups agree with trace output. */
export function canonicalIP(ip: string): string {
  return canonicalAddress(ip) ?? ip;
}

function isLoopback(ip: string): boolean {
  return ip === '::1' || /^127\./.test(ip);
}

export class ClusterModel implements ClusterModelData {
  /** Services by "ns/name". */
  readonly services: ReadonlyMap<string, Service>;
  /** Endpoints by Service key ("ns/name"), from every EndpointSlice (or Endpoints) of the Service. */
  readonly endpoints: ReadonlyMap<string, readonly ServiceEndpoint[]>;
  /** Pods by "ns/name". */
  readonly pods: ReadonlyMap<string, Pod>;
  readonly nodes: ReadonlyMap<string, Node>;
  readonly namespaces: ReadonlyMap<string, Namespace>;
  readonly others: readonly OtherObject[];
  private readonly podIndex = new Map<string, Pod[]>();
  private readonly nodeIndex = new Map<string, Node>();

  constructor(data: ClusterModelData) {
    this.services = data.services;
    this.endpoints = data.endpoints;
    this.pods = data.pods;
    this.nodes = data.nodes;
    this.namespaces = data.namespaces;
    this.others = data.others;
    for (const pod of this.pods.values()) {
      for (const ip of pod.podIPs) {
        const list = this.podIndex.get(ip) ?? [];
        list.push(pod);
        this.podIndex.set(ip, list);
      }
    }
    for (const node of this.nodes.values()) for (const a of node.ips) if (!this.nodeIndex.has(a)) this.nodeIndex.set(a, node);
  }

  static empty(): ClusterModel {
    return new ClusterModel({ services: new Map(), endpoints: new Map(), pods: new Map(), nodes: new Map(), namespaces: new Map(), others: [] });
  }

  /**
   * The pod that owns an IP. Host-network pods share their node's IP, so a pod-network pod is
   * preferred, then a running one; null when no pod has the IP.
   */
  podByIP(ip: string): Pod | null {
    const list = this.podIndex.get(canonicalIP(ip));
    if (!list || list.length === 0) return null;
    const rank = (p: Pod) => (p.hostNetwork ? 2 : 0) + (p.phase === 'Running' ? 0 : 1);
    return [...list].sort((a, b) => rank(a) - rank(b))[0];
  }

  /** The Node with this InternalIP or ExternalIP. */
  nodeByAddress(ip: string): Node | null {
    return this.nodeIndex.get(canonicalIP(ip)) ?? null;
  }

  /**
   * Every Service port a packet to ip:port/protocol meets, in the order kube-proxy's nat
   * KUBE-SERVICES tests them: cluster IPs, external IPs, load-balancer IPs, and last the NodePort
   * jump, which applies only to the node's own (LOCAL) addresses. `nodeAddresses` adds addresses
   * to treat as a node's when the manifests have no Node objects (e.g. the traced node's); the
   * loopback range counts too, as kube-proxy's `--dst-type LOCAL` NodePort rule accepts it.
   */
  servicesByFrontend(ip: string, port: number, protocol: string, nodeAddresses: readonly string[] = []): FrontendMatch[] {
    const addr = canonicalIP(ip);
    const proto = protocol.toUpperCase();
    const { byAddress, byNodePort } = this.frontendIndex();
    const out: FrontendMatch[] = [];
    for (const { service, frontend } of byAddress.get(addr) ?? []) {
      for (const p of service.ports) if (p.port === port && p.protocol === proto) out.push({ service, port: p, frontend });
    }
    const local = isLoopback(addr) || this.nodeIndex.has(addr) || nodeAddresses.some((a) => canonicalIP(a) === addr);
    if (local) for (const m of byNodePort.get(`${port}/${proto}`) ?? []) out.push(m);
    return out;
  }

  private frontends?: {
    byAddress: Map<string, { service: Service; frontend: FrontendKind }[]>;
    byNodePort: Map<string, FrontendMatch[]>;
  };

  /**
   * Services by frontend address (in the order servicesByFrontend gives them: cluster IPs, then
   * external IPs, then load-balancer IPs, each in Service order) and by NodePort; made on first use.
   */
  private frontendIndex(): NonNullable<ClusterModel['frontends']> {
    if (this.frontends) return this.frontends;
    const byAddress = new Map<string, { service: Service; frontend: FrontendKind }[]>();
    const kinds: [FrontendKind, (s: Service) => readonly string[]][] = [
      ['ClusterIP', (s) => s.clusterIPs],
      ['ExternalIP', (s) => s.externalIPs],
      // kube-proxy programs status.loadBalancer.ingress IPs whatever the type says.
      ['LoadBalancer', (s) => s.loadBalancerIPs],
    ];
    for (const [frontend, ips] of kinds) {
      for (const service of this.services.values()) {
        // A Service listed once per kind, however many of its IPs are the same address.
        for (const a of new Set(ips(service).map(canonicalIP))) {
          const list = byAddress.get(a) ?? [];
          list.push({ service, frontend });
          byAddress.set(a, list);
        }
      }
    }
    const byNodePort = new Map<string, FrontendMatch[]>();
    for (const service of this.services.values()) {
      for (const p of service.ports) {
        if (p.nodePort === undefined) continue;
        const key = `${p.nodePort}/${p.protocol}`;
        const list = byNodePort.get(key) ?? [];
        list.push({ service, port: p, frontend: 'NodePort' });
        byNodePort.set(key, list);
      }
    }
    return (this.frontends = { byAddress, byNodePort });
  }

  /** The first of `servicesByFrontend`: the Service port kube-proxy's rules send the packet to. */
  serviceByFrontend(ip: string, port: number, protocol: string, nodeAddresses: readonly string[] = []): FrontendMatch | null {
    return this.servicesByFrontend(ip, port, protocol, nodeAddresses)[0] ?? null;
  }

  /**
   * The endpoints of one Service port: each endpoint that lists a port of the same name and
   * protocol, as kube-proxy pairs EndpointSlice ports with Service ports (by name, not number).
   */
  endpointsOf(serviceKey: string, port: ServicePort): PortEndpoint[] {
    const out: PortEndpoint[] = [];
    for (const ep of this.endpoints.get(serviceKey) ?? []) {
      const p = ep.ports[port.name];
      if (p && p.protocol === port.protocol) out.push({ endpoint: ep, ip: ep.ip, port: p.port, protocol: p.protocol });
    }
    return out;
  }

  /** The Service port named `port` (a port name, or a port number as number or digits). */
  servicePort(service: Service, port: string | number): ServicePort | null {
    if (typeof port === 'string') {
      const byName = service.ports.find((p) => p.name === port);
      if (byName) return byName;
      if (!/^\d+$/.test(port)) return null;
      port = Number(port);
    }
    return service.ports.find((p) => p.port === port) ?? null;
  }
}
