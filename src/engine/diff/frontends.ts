/**
 * The frontends of a node, read from its rules alone: every address × port × protocol where
 * kube-proxy's rules catch a packet for a Service.
 *
 *   nat KUBE-SERVICES       `-d ip/32 -p proto --dport port -j …`, the kind from the comment's
 *                           wording ("cluster IP", "external IP", "loadbalancer IP")
 *   nat KUBE-NODEPORTS      `-p proto --dport nodePort -j KUBE-EXT-…`: a NodePort on each node address
 *   filter KUBE-SERVICES    `-d clusterIP … -j REJECT|DROP`: a ClusterIP without (local) endpoints
 *   filter KUBE-EXTERNAL-SERVICES
 *                           the same for external and load-balancer IPs, and NodePorts (`--dst-type LOCAL`)
 *   filter KUBE-PROXY-FIREWALL
 *                           `-d lbIP … -j DROP`: a load-balancer IP with source ranges
 *
 * A Service whose endpoints all go away moves from nat to filter (REJECT), so a frontend is
 * identified by address, port and protocol, not by which rule caught it.
 */
import type { ChainNameIndex } from '../kube/chain-names.ts';
import type { ClusterModel, FrontendKind } from '../kube/model.ts';
import { canonicalIP } from '../kube/model.ts';
import type { Ruleset } from '../netfilter/ast.ts';
import { familyOf } from '../net/address.ts';
import type { Protocol } from '../trace/packet.ts';
import { ChainTexts, FactsCache } from './rule-facts.ts';
import type { RuleFacts } from './rule-facts.ts';

export interface Frontend {
  readonly ip: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly kind: FrontendKind;
  /** "ns/name", or "" when neither the comment nor the chain name tells. */
  readonly service: string;
  /** The Service port's name ("" for an unnamed port or when unknown). */
  readonly portName: string;
  /** For a NodePort: which of the node's addresses (of the ruleset's family) it is on, from 0. */
  readonly nodeAddress?: number;
  /** Set when neither the rules nor the manifests tell an external IP from a load-balancer IP. */
  readonly kindGuessed?: true;
  /** The rule that catches the packet (the first one found, nat before filter). */
  readonly rule: { readonly table: string; readonly chain: string; readonly index: number; readonly text: string };
}

export interface FrontendOptions {
  /** Decodes the target chain's hash into the Service port (preferred over the comment). */
  readonly index?: ChainNameIndex | null;
  /** Tells external IPs from load-balancer IPs where the rules do not (filter REJECT rules). */
  readonly model?: ClusterModel | null;
  readonly facts?: FactsCache;
  readonly chainTexts?: ChainTexts;
}

/** "ip|port|protocol": how a frontend is matched between snapshots. */
export function frontendKey(f: Pick<Frontend, 'ip' | 'port' | 'protocol'>): string {
  return `${f.ip}|${f.port}|${f.protocol}`;
}

const PROTOCOLS: ReadonlySet<string> = new Set(['tcp', 'udp', 'sctp']);

const KIND_WORDING: readonly [string, FrontendKind][] = [
  [' cluster IP', 'ClusterIP'],
  [' external IP', 'ExternalIP'],
  [' loadbalancer IP', 'LoadBalancer'],
];

const COMMENT_SUFFIXES: readonly string[] = [
  ' cluster IP', ' external IP', ' loadbalancer IP', ' has no endpoints', ' has no local endpoints', ' traffic not accepted by ',
];

/** "ns/name:port" from a kube-proxy comment, or null when the comment is not one of kube-proxy's. */
function servicePortOf(comment: string | null): { service: string; portName: string } | null {
  if (!comment) return null;
  let spn = comment;
  for (const s of COMMENT_SUFFIXES) {
    const at = comment.indexOf(s);
    if (at > 0) {
      spn = comment.slice(0, at);
      break;
    }
  }
  if (!/^[a-z0-9.-]+\/[a-z0-9.-]+(:[^\s]*)?$/i.test(spn)) return null;
  const colon = spn.indexOf(':');
  return colon < 0 ? { service: spn, portName: '' } : { service: spn.slice(0, colon), portName: spn.slice(colon + 1) };
}

/** How sure a source is of a frontend's kind: the comment's wording beats a guess. */
type Confidence = 2 | 1 | 0;

interface Found {
  frontend: Frontend;
  confidence: Confidence;
}

/** Every frontend of a node's (completed) ruleset, sorted by address, port and protocol. */
export function listFrontends(rs: Ruleset, addresses: readonly string[], options: FrontendOptions = {}): Frontend[] {
  const facts = options.facts ?? new FactsCache();
  const chainTexts = options.chainTexts ?? new ChainTexts();
  const found = new Map<string, Found>();
  const nodeIPs = addresses.map(canonicalIP).filter((a) => familyOf(a) === rs.family);

  const name = (f: RuleFacts): { service: string; portName: string } => {
    const decoded = options.index && f.target ? options.index.decode(f.target) : null;
    if (decoded) return { service: `${decoded.service.namespace}/${decoded.service.name}`, portName: decoded.port.name };
    return servicePortOf(f.comment) ?? { service: '', portName: '' };
  };

  const add = (ip: string, port: number, protocol: string, kind: FrontendKind, confidence: Confidence, f: RuleFacts, rule: Frontend['rule'], nodeAddress?: number) => {
    const key = frontendKey({ ip, port, protocol: protocol as Protocol });
    const existing = found.get(key);
    if (existing && existing.confidence >= confidence) return;
    const named = name(f);
    const service = named.service || existing?.frontend.service || '';
    const portName = named.service ? named.portName : existing?.frontend.portName ?? '';
    found.set(key, {
      frontend: {
        ip, port, protocol: protocol as Protocol, kind, service, portName, rule: existing?.frontend.rule ?? rule,
        ...(nodeAddress !== undefined ? { nodeAddress } : {}),
        ...(confidence === 0 ? { kindGuessed: true as const } : {}),
      },
      confidence,
    });
  };

  const each = (table: string, chain: string, visit: (f: RuleFacts, rule: Frontend['rule']) => void) => {
    const c = rs.tables.get(table)?.chains.get(chain);
    if (!c) return;
    const { texts } = chainTexts.of(c);
    texts.forEach((text, i) => visit(facts.get(c, i, text), { table, chain, index: i + 1, text }));
  };

  /** The kind of an address the rules do not name: the manifests' word, else external IP. */
  const guess = (ip: string, port: number, protocol: string): FrontendKind => {
    const m = options.model?.servicesByFrontend(ip, port, protocol).find((x) => x.frontend !== 'NodePort');
    return m?.frontend ?? 'ExternalIP';
  };
  const sure = (ip: string, port: number, protocol: string): Confidence =>
    options.model?.servicesByFrontend(ip, port, protocol).some((x) => x.frontend !== 'NodePort') ? 1 : 0;

  each('nat', 'KUBE-SERVICES', (f, rule) => {
    if (f.dst === null || f.dport === null || !f.protocol || !PROTOCOLS.has(f.protocol)) return;
    const wording = KIND_WORDING.find(([w]) => f.comment?.endsWith(w));
    if (wording) add(f.dst, f.dport, f.protocol, wording[1], 2, f, rule);
    else if (f.target?.startsWith('KUBE-SVC-') || f.target?.startsWith('KUBE-SVL-')) add(f.dst, f.dport, f.protocol, 'ClusterIP', 1, f, rule);
    else if (f.target?.startsWith('KUBE-FW-')) add(f.dst, f.dport, f.protocol, 'LoadBalancer', 2, f, rule);
    else add(f.dst, f.dport, f.protocol, guess(f.dst, f.dport, f.protocol), sure(f.dst, f.dport, f.protocol), f, rule);
  });
  each('nat', 'KUBE-NODEPORTS', (f, rule) => {
    if (f.dport === null || !f.protocol || !PROTOCOLS.has(f.protocol)) return;
    nodeIPs.forEach((ip, i) => add(ip, f.dport!, f.protocol!, 'NodePort', 2, f, rule, i));
  });
  each('filter', 'KUBE-SERVICES', (f, rule) => {
    if (f.dst === null || f.dport === null || !f.protocol || !PROTOCOLS.has(f.protocol)) return;
    add(f.dst, f.dport, f.protocol, 'ClusterIP', 1, f, rule);
  });
  each('filter', 'KUBE-EXTERNAL-SERVICES', (f, rule) => {
    if (f.dport === null || !f.protocol || !PROTOCOLS.has(f.protocol)) return;
    if (f.dst !== null) add(f.dst, f.dport, f.protocol, guess(f.dst, f.dport, f.protocol), sure(f.dst, f.dport, f.protocol), f, rule);
    else if (f.dstTypeLocal) nodeIPs.forEach((ip, i) => add(ip, f.dport!, f.protocol!, 'NodePort', 1, f, rule, i));
  });
  each('filter', 'KUBE-PROXY-FIREWALL', (f, rule) => {
    if (f.dst === null || f.dport === null || !f.protocol || !PROTOCOLS.has(f.protocol)) return;
    add(f.dst, f.dport, f.protocol, 'LoadBalancer', 1, f, rule);
  });

  return [...found.values()].map((x) => x.frontend).sort(compareFrontends);
}

export function compareFrontends(a: Pick<Frontend, 'ip' | 'port' | 'protocol'>, b: Pick<Frontend, 'ip' | 'port' | 'protocol'>): number {
  if (a.ip !== b.ip) return a.ip < b.ip ? -1 : 1;
  if (a.port !== b.port) return a.port - b.port;
  return a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : 0;
}
