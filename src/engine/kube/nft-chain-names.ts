/**
 * kube-proxy's chain names in nftables mode. Unlike iptables mode, the names say what they stand
 * for; the hash in front only keeps similar names apart (pkg/proxy/nftables/proxier.go,
 * hashAndTruncate / servicePortChainNameBase / servicePortEndpointChainNameBase):
 *
 *   service-<h>-<ns>/<name>/<proto>/<port>        the Service port's endpoints (Cluster policy)
 *   local-<h>-<ns>/<name>/<proto>/<port>          its node-local endpoints (Local policy)
 *   external-<h>-<ns>/<name>/<proto>/<port>       NodePort, external and load-balancer IP traffic
 *   firewall-<h>-<ns>/<name>/<proto>/<port>       loadBalancerSourceRanges
 *   endpoint-<h>-<ns>/<name>/<proto>/<port>__<ip>/<eport>   one endpoint (its DNAT)
 *   affinity-<h>-…__<ip>/<eport>                  the session-affinity set of one endpoint
 *
 * where <port> is the port's name (empty for an unnamed port), <proto> is lower case, and h is
 * the first 8 characters of base32(sha256(everything after the hash)). An IPv6 endpoint address
 * has its colons written as dots. A base longer than 240 characters is cut to 237 and ends in
 * "...": such a name cannot be read back in full.
 */
import { formatIPv6, parseIPv4, parseIPv6 } from '../net/address.ts';
import { base32, sha256 } from './sha256.ts';

export type NftChainKind = 'service' | 'local' | 'external' | 'firewall' | 'endpoint' | 'affinity';

export interface NftChainName {
  readonly kind: NftChainKind;
  readonly hash: string;
  readonly namespace: string;
  readonly name: string;
  /** Lower case, as written: tcp, udp or sctp. */
  readonly protocol: string;
  /** The Service port's name; '' for an unnamed port. */
  readonly portName: string;
  /** For endpoint and affinity names: the endpoint, its IPv6 address in the usual colon form. */
  readonly endpoint?: { readonly ip: string; readonly port: number };
  /** Whether the hash is the one kube-proxy computes for the rest of the name (false: edited or another writer's name). */
  readonly hashMatches: boolean;
}

/** kube-proxy's limit for the part after the prefix (knftables.NameLengthMax 256 − 16). */
const BASE_LENGTH_MAX = 240;

const NAME = /^(service|local|external|firewall|endpoint|affinity)-([A-Z2-7]{8})-(.+)$/;
const LABEL = '[a-z0-9](?:[-a-z0-9]*[a-z0-9])?';
const SERVICE_PART = new RegExp(`^(${LABEL})/(${LABEL})/(tcp|udp|sctp)/((?:${LABEL})?)$`);

function hashOf(base: string): string {
  return base32(sha256(base)).slice(0, 8);
}

/** The endpoint address as the name writes it (IPv6 with dots for colons), back in the usual form. */
function endpointAddress(written: string): string | null {
  if (parseIPv4(written) !== null) return written;
  const v6 = parseIPv6(written.replaceAll('.', ':'));
  return v6 === null ? null : formatIPv6(v6);
}

/**
 * What a kube-proxy nftables chain (or affinity set) name stands for; null for every other name
 * (kube-proxy's fixed chains such as `services`, other software's chains, truncated names).
 */
export function decodeNftChainName(chain: string): NftChainName | null {
  const m = NAME.exec(chain);
  if (!m) return null;
  const [, kind, hash, base] = m;
  if (base.endsWith('...') && base.length === BASE_LENGTH_MAX - 9) return null;
  const perEndpoint = kind === 'endpoint' || kind === 'affinity';
  const sep = base.indexOf('__');
  if (perEndpoint !== (sep >= 0)) return null;
  const servicePart = perEndpoint ? base.slice(0, sep) : base;
  const s = SERVICE_PART.exec(servicePart);
  if (!s) return null;
  let endpoint: NftChainName['endpoint'];
  if (perEndpoint) {
    const e = /^([0-9A-Fa-f.]+)\/(\d{1,5})$/.exec(base.slice(sep + 2));
    const ip = e ? endpointAddress(e[1]) : null;
    if (!e || ip === null || Number(e[2]) > 65535) return null;
    endpoint = { ip, port: Number(e[2]) };
  }
  return {
    kind: kind as NftChainKind, hash, namespace: s[1], name: s[2], protocol: s[3], portName: s[4],
    ...(endpoint ? { endpoint } : {}),
    hashMatches: hashOf(base) === hash,
  };
}

/**
 * The name kube-proxy gives a chain (or affinity set) of a Service port, and for `endpoint` and
 * `affinity` of one endpoint of it. `protocol` is folded to lower case.
 */
export function nftChainName(
  kind: NftChainKind,
  service: { readonly namespace: string; readonly name: string; readonly portName: string; readonly protocol: string },
  endpoint?: { readonly ip: string; readonly port: number },
): string {
  const perEndpoint = kind === 'endpoint' || kind === 'affinity';
  if (perEndpoint && !endpoint) throw new TypeError(`a ${kind} name needs the endpoint`);
  let base = `${service.namespace}/${service.name}/${service.protocol.toLowerCase()}/${service.portName}`;
  if (perEndpoint) base += `__${endpoint!.ip.replaceAll(':', '.')}/${endpoint!.port}`;
  let named = `${hashOf(base)}-${base}`;
  if (named.length > BASE_LENGTH_MAX) named = `${named.slice(0, BASE_LENGTH_MAX - 3)}...`;
  return `${kind}-${named}`;
}
