/**
 * The frontends of a node in kube-proxy's nftables mode, read from its rules alone: kube-proxy
 * sends packets to Services through verdict maps keyed by destination, so the frontends are the
 * keys of those maps (pkg/proxy/nftables/proxier.go):
 *
 *   service-ips            `ip . proto . port : goto service-…|local-…|external-…`
 *   service-nodeports      `proto . port : goto external-…` (on the node's NodePort addresses)
 *   no-endpoint-services   `ip . proto . port : drop | goto reject-chain`
 *   no-endpoint-nodeports  `proto . port : drop | goto reject-chain`
 *   firewall-ips           `ip . proto . port : goto firewall-…` (load-balancer IPs with source ranges)
 *
 * Any verdict map of a `kube-proxy` table whose elements are keyed by address, protocol and port
 * (or protocol and port) is read the same way, whatever its name. A frontend is identified by
 * address, port and protocol, as in iptables mode (frontends.ts), so the two modes pair up.
 */
import { decodeNftChainName } from '../kube/nft-chain-names.ts';
import { parseServicePortName } from '../kube/describe.ts';
import type { ClusterModel, FrontendKind } from '../kube/model.ts';
import { canonicalIP } from '../kube/model.ts';
import { familyOf } from '../net/address.ts';
import type { NftExpr, NftRuleset, NftSet, NftSetElement, NftTable } from '../nftables/ast.ts';
import { printExpr } from '../nftables/printer.ts';
import type { Protocol } from '../trace/packet.ts';
import type { Frontend } from './frontends.ts';
import { compareFrontends, frontendKey } from './frontends.ts';

/** kube-proxy writes the protocol by name; nft -j and other writers may give its number. */
const PROTOCOL_NUMBERS: Readonly<Record<string, Protocol>> = { tcp: 'tcp', udp: 'udp', sctp: 'sctp', 6: 'tcp', 17: 'udp', 132: 'sctp' };

/** The kube-proxy tables of a ruleset: `ip kube-proxy`, `ip6 kube-proxy` (and an inet one, should a writer use it). */
export function kubeProxyTables(rs: NftRuleset): NftTable[] {
  return [...rs.tables.values()].filter((t) => t.name === 'kube-proxy' && (t.family === 'ip' || t.family === 'ip6' || t.family === 'inet'));
}

/** The address families a kube-proxy table handles. */
function familiesOf(t: NftTable): readonly ('ipv4' | 'ipv6')[] {
  return t.family === 'ip' ? ['ipv4'] : t.family === 'ip6' ? ['ipv6'] : ['ipv4', 'ipv6'];
}

function literal(e: NftExpr): string | null {
  return e.kind === 'literal' ? e.text : null;
}

interface Key {
  readonly ip: string | null;
  readonly protocol: Protocol;
  readonly port: number;
}

/** `10.96.0.1 . tcp . 443` or `tcp . 30080`; null for any other key. */
function keyOf(el: NftSetElement): Key | null {
  if (el.key.kind !== 'concat') return null;
  const parts = el.key.parts.map(literal);
  if (parts.some((p) => p === null)) return null;
  const [ip, proto, port] = parts.length === 3 ? parts : parts.length === 2 ? [null, ...parts] : [undefined];
  if (ip === undefined) return null;
  const protocol = PROTOCOL_NUMBERS[proto!];
  const n = Number(port);
  if (!protocol || !Number.isInteger(n) || n < 0 || n > 65535) return null;
  if (ip !== null && familyOf(ip) === null) return null;
  return { ip: ip === null ? null : canonicalIP(ip), protocol, port: n };
}

/** The chain a verdict-map element sends the packet to, or null for drop/accept and the like. */
function targetOf(el: NftSetElement): string | null {
  return el.value?.kind === 'verdict' && el.value.target ? el.value.target : null;
}

function isVerdictMap(s: NftSet): boolean {
  return s.isMap && (s.data?.types?.includes('verdict') === true || s.elements.some((e) => e.value?.kind === 'verdict'));
}

/** How sure a source is of a frontend's kind: the chain kind or the map beats a guess. */
type Confidence = 2 | 1 | 0;

export interface NftFrontendOptions {
  /** Tells external IPs from load-balancer IPs where the rules do not. */
  readonly model?: ClusterModel | null;
}

/**
 * Every frontend of a node's nftables ruleset, sorted by address, port and protocol: of both
 * families when the ruleset has kube-proxy tables of both (a dual-stack node), or of `family` only.
 */
export function listNftFrontends(rs: NftRuleset, addresses: readonly string[], options: NftFrontendOptions & { readonly family?: 'ipv4' | 'ipv6' } = {}): Frontend[] {
  const found = new Map<string, { frontend: Frontend; confidence: Confidence }>();

  for (const table of kubeProxyTables(rs)) {
    const families = familiesOf(table).filter((f) => options.family === undefined || f === options.family);
    if (families.length === 0) continue;
    const nodeIPs = addresses.map(canonicalIP).filter((a) => familyOf(a) === families[0]);
    const clusterIPs = new Set<string>();
    for (const s of table.sets.values()) {
      if (s.name !== 'cluster-ips' || s.isMap) continue;
      for (const el of s.elements) {
        const ip = literal(el.key);
        if (ip !== null && familyOf(ip) !== null) clusterIPs.add(canonicalIP(ip));
      }
    }
    const firewalled = new Set<string>();
    const maps = [...table.sets.values()].filter(isVerdictMap);
    for (const m of maps) {
      for (const el of m.elements) {
        const k = keyOf(el);
        const target = targetOf(el);
        if (k?.ip && target && decodeNftChainName(target)?.kind === 'firewall') firewalled.add(frontendKey({ ip: k.ip, port: k.port, protocol: k.protocol }));
      }
    }

    const add = (ip: string, k: Key, kind: FrontendKind, confidence: Confidence, service: { service: string; portName: string }, rule: Frontend['rule'], nodeAddress?: number) => {
      const key = frontendKey({ ip, port: k.port, protocol: k.protocol });
      const existing = found.get(key);
      if (existing && existing.confidence >= confidence) return;
      found.set(key, {
        frontend: {
          ip, port: k.port, protocol: k.protocol, kind,
          service: service.service || existing?.frontend.service || '',
          portName: service.service ? service.portName : existing?.frontend.portName ?? '',
          rule: existing?.frontend.rule ?? rule,
          ...(nodeAddress !== undefined ? { nodeAddress } : {}),
          ...(confidence === 0 ? { kindGuessed: true as const } : {}),
        },
        confidence,
      });
    };

    /** The kind of an address the rules do not name: the manifests' word, else external IP. */
    const guess = (ip: string, k: Key): { kind: FrontendKind; confidence: Confidence } => {
      if (clusterIPs.has(ip)) return { kind: 'ClusterIP', confidence: 2 };
      if (firewalled.has(frontendKey({ ip, port: k.port, protocol: k.protocol }))) return { kind: 'LoadBalancer', confidence: 2 };
      const m = options.model?.servicesByFrontend(ip, k.port, k.protocol.toUpperCase()).find((x) => x.frontend !== 'NodePort');
      return m ? { kind: m.frontend, confidence: 1 } : { kind: 'ExternalIP', confidence: 0 };
    };

    for (const m of maps) {
      m.elements.forEach((el, i) => {
        const k = keyOf(el);
        if (!k) return;
        const target = targetOf(el);
        const decoded = target ? decodeNftChainName(target) : null;
        const spn = decoded ? null : el.comment ? parseServicePortName(el.comment) : null;
        const service = decoded
          ? { service: `${decoded.namespace}/${decoded.name}`, portName: decoded.portName }
          : spn ? { service: `${spn.namespace}/${spn.name}`, portName: spn.portName } : { service: '', portName: '' };
        const rule = { table: table.key, chain: `@${m.name}`, index: i + 1, text: el.value ? `${printExpr(el.key)} : ${printExpr(el.value)}` : printExpr(el.key) };
        if (k.ip === null) {
          nodeIPs.forEach((ip, n) => add(ip, k, 'NodePort', 2, service, rule, n));
          return;
        }
        if (!families.includes(familyOf(k.ip)!)) return;
        if (decoded?.kind === 'service' || decoded?.kind === 'local') add(k.ip, k, 'ClusterIP', 2, service, rule);
        else if (decoded?.kind === 'firewall') add(k.ip, k, 'LoadBalancer', 2, service, rule);
        else {
          const g = guess(k.ip, k);
          add(k.ip, k, g.kind, g.confidence, service, rule);
        }
      });
    }
  }
  return [...found.values()].map((x) => x.frontend).sort(compareFrontends);
}
