/**
 * kube-proxy's chain names, recomputed. In iptables mode kube-proxy names the chains of a Service
 * port and of each of its endpoints by hashing what they stand for (pkg/proxy/iptables/proxier.go,
 * portProtoHash / servicePortChainName / servicePortEndpointChainName):
 *
 *   KUBE-SVC|SVL|EXT|FW|XLB-<h>  h = first 16 chars of base32(sha256(servicePortName + protocol))
 *   KUBE-SEP-<h>                 h = first 16 chars of base32(sha256(servicePortName + protocol + endpoint))
 *
 * where servicePortName is ServicePortName.String(): "ns/name:port", or just "ns/name" for an
 * unnamed port (no colon), protocol is lower case ("tcp"), and endpoint is "ip:port" ("[ip]:port"
 * for IPv6). The hash cannot be inverted, so a chain is named by recomputing the names of every
 * Service port and endpoint in the manifests and looking the chain up.
 */
import type { ClusterModel, Service, ServicePort } from './model.ts';
import { canonicalIP } from './model.ts';
import { hostPort } from '../net/address.ts';
import { base32, sha256 } from './sha256.ts';

export type ChainPrefix = 'KUBE-SVC' | 'KUBE-SVL' | 'KUBE-EXT' | 'KUBE-FW' | 'KUBE-SEP' | 'KUBE-XLB';
export type ChainKind = 'SVC' | 'SVL' | 'EXT' | 'FW' | 'SEP' | 'XLB';

/** The per-Service-port chains: cluster (SVC), local-only (SVL), external (EXT), LB firewall (FW), and the pre-1.24 local-only XLB. */
const SERVICE_PREFIXES: readonly ChainPrefix[] = ['KUBE-SVC', 'KUBE-SVL', 'KUBE-EXT', 'KUBE-FW', 'KUBE-XLB'];

/**
 * ServicePortName.String(): "ns/name:port", and "ns/name" when the port is unnamed — kube-proxy
 * hashes no trailing colon for an unnamed port (checked against the conformance corpus and the
 * k3s example, whose unnamed ports give KUBE-SVC-GBTMB5ZTD56ECL5F for "default/service-test").
 */
export function servicePortNameString(namespace: string, name: string, portName: string): string {
  return portName === '' ? `${namespace}/${name}` : `${namespace}/${name}:${portName}`;
}

/** net.JoinHostPort: "ip:port", "[ip]:port" for IPv6. */
export function endpointString(ip: string, port: number): string {
  return hostPort(canonicalIP(ip), port);
}

/**
 * The chain kube-proxy names for a Service port (and, for KUBE-SEP, one endpoint of it).
 * `servicePortName` is "ns/name:port"; an empty port name may be written "ns/name:" or "ns/name"
 * (both hash as "ns/name", as kube-proxy does). `protocol` is folded to lower case.
 */
export function kubeProxyChainName(prefix: ChainPrefix, servicePortName: string, protocol: string, endpoint?: string): string {
  const spn = servicePortName.endsWith(':') ? servicePortName.slice(0, -1) : servicePortName;
  if (prefix === 'KUBE-SEP' && endpoint === undefined) throw new TypeError('a KUBE-SEP chain name needs the endpoint "ip:port"');
  const input = spn + protocol.toLowerCase() + (prefix === 'KUBE-SEP' ? endpoint : '');
  return `${prefix}-${base32(sha256(input)).slice(0, 16)}`;
}

/** A chain name split into kube-proxy's prefix and hash; null if it does not have that shape. */
export function splitChainName(chain: string): { prefix: ChainPrefix; kind: ChainKind; hash: string } | null {
  const m = /^KUBE-(SVC|SVL|EXT|FW|SEP|XLB)-([A-Z2-7]{16})$/.exec(chain);
  if (!m) return null;
  return { prefix: `KUBE-${m[1]}` as ChainPrefix, kind: m[1] as ChainKind, hash: m[2] };
}

export interface ChainNameEntry {
  readonly chain: string;
  readonly kind: ChainKind;
  readonly service: { readonly namespace: string; readonly name: string };
  /** protocol upper case, as in the API. */
  readonly port: { readonly name: string; readonly port: number; readonly protocol: string };
  /** For KUBE-SEP chains: the endpoint the chain DNATs to. */
  readonly endpoint?: { readonly ip: string; readonly port: number };
}

/**
 * Every chain name kube-proxy could write for the Services and endpoints of a cluster model,
 * mapped back to what it stands for. Chains of all kinds are listed for every Service port
 * whether or not kube-proxy would create them (it writes KUBE-FW only for load balancers with
 * source ranges, KUBE-SVL only under a Local policy, …): a name that decodes is a name of that
 * Service port either way.
 */
export class ChainNameIndex {
  private readonly entries = new Map<string, ChainNameEntry>();

  /** Index of every Service port and endpoint in the model. */
  static fromModel(model: ClusterModel): ChainNameIndex {
    const index = new ChainNameIndex();
    for (const service of model.services.values()) {
      for (const port of service.ports) {
        index.addServicePort(service, port, model.endpointsOf(service.key, port).map((e) => ({ ip: e.ip, port: e.port })));
      }
    }
    return index;
  }

  /** Adds the chains of one Service port, and the KUBE-SEP chain of each endpoint given. */
  addServicePort(
    service: Pick<Service, 'namespace' | 'name'>,
    port: Pick<ServicePort, 'name' | 'port' | 'protocol'>,
    endpoints: readonly { readonly ip: string; readonly port: number }[] = [],
  ): void {
    const spn = servicePortNameString(service.namespace, service.name, port.name);
    const base = {
      service: { namespace: service.namespace, name: service.name },
      port: { name: port.name, port: port.port, protocol: port.protocol.toUpperCase() },
    };
    for (const prefix of SERVICE_PREFIXES) {
      const chain = kubeProxyChainName(prefix, spn, port.protocol);
      this.entries.set(chain, { chain, kind: prefix.slice(5) as ChainKind, ...base });
    }
    for (const ep of endpoints) {
      const ip = canonicalIP(ep.ip);
      const chain = kubeProxyChainName('KUBE-SEP', spn, port.protocol, endpointString(ip, ep.port));
      this.entries.set(chain, { chain, kind: 'SEP', ...base, endpoint: { ip, port: ep.port } });
    }
  }

  /** What a chain stands for, or null when no Service port or endpoint of the model hashes to it. */
  decode(chain: string): ChainNameEntry | null {
    return this.entries.get(chain) ?? null;
  }

  get size(): number {
    return this.entries.size;
  }

  values(): IterableIterator<ChainNameEntry> {
    return this.entries.values();
  }
}

/**
 * Decodes a chain name against an index. Returns null both for names that are not kube-proxy's
 * (KUBE-SERVICES, a user chain) and for kube-proxy names that no Service port or endpoint of the
 * model derives — an orphan chain, or manifests older or newer than the rules.
 */
export function decodeChainName(index: ChainNameIndex | null, chain: string): ChainNameEntry | null {
  if (!index || splitChainName(chain) === null) return null;
  return index.decode(chain);
}
