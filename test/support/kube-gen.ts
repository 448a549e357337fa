/**
 * Deterministic generator of kube-proxy (iptables mode) node dumps, for benchmarks,
 * differential tests against the kernel (`iptables-restore` in a network namespace),
 * and manifest/audit/diff tests.
 *
 * - `generateCluster(opts)` builds a cluster model (Services + endpoints) from a seed.
 * - `renderIptablesSave(cluster)` prints what `iptables-save` shows on `cluster.nodeName`
 *   once kubelet and kube-proxy (1.27+ layout, iptables mode) have synced it.
 * - `renderManifests(cluster)` prints the Service and EndpointSlice objects as
 *   `kubectl get services,endpointslices -A -o json` would.
 * - `renderFleet(cluster, { nodes })` (or `fleetNodes` + `renderFleetNode`, one dump at a
 *   time) renders every node of the cluster as kube-proxy on that node writes it;
 *   `editFiveServices(cluster)` is the next version after a deploy that changed five Services.
 *
 * No I/O and no dependencies; `node:crypto` only for sha256 (chain names).
 *
 * What the renderer models (kube-proxy's syncProxyRules, as of the upstream commit the
 * conformance corpus was read from, with its default settings):
 * - local-traffic detector `ClusterCIDR`, masqueradeAll off, nodePortAddresses unset
 *   (`-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`), localhostNodePorts on (so the
 *   `KUBE-FIREWALL` anti-martian rule is written), nf_conntrack_tcp_be_liberal off (so the
 *   INVALID drop rule is written), nfacct counters unavailable (no `-m nfacct` rules),
 *   `MASQUERADE --random-fully` (iptables supports it);
 * - endpoint selection as CategorizeEndpoints does without topology hints: Ready endpoints,
 *   or Serving+Terminating ones when no endpoint is Ready (separately for Cluster and Local);
 * - the hook rules kube-proxy and kubelet install one by one with `iptables -I` (prepend),
 *   in the order they end up in after all the prepends;
 * - iptables-save's canonical printing (`-s`/`-d` with a prefix length, `-p` before the
 *   matches, `--set-xmark`, probabilities as stored by the kernel, `-m recent` defaults,
 *   `REJECT --reject-with icmp-port-unreachable`, comments quoted unless `[A-Za-z0-9_-]+`),
 *   user chains sorted by name, built-in chains first, one header/footer per table.
 *   Checked line for line against iptables-save 1.8.9 (nf_tables and legacy): restoring a
 *   dump and saving it again gives the same lines, and the service chains rendered from the
 *   conformance corpus' manifests equal the corpus' expected dumps.
 *   Legacy iptables-save prints tables in reverse order of their registration on the host,
 *   so compare legacy dumps table by table. iptables-nft-save 1.8.9 crashes (stack overflow)
 *   printing the nat table of the 10,000-Service dump unless run with `ulimit -s unlimited`.
 *
 * What the generator produces (see GenOptions for the shares):
 * - `default/kubernetes` (10.96.0.1, apiserver endpoints on the first three node IPs, no
 *   nodeName) and `kube-system/kube-dns` (10.96.0.10, dns/dns-tcp/metrics) first, then
 *   Services with short team-style names in ~services/60 namespaces; ClusterIP (random in
 *   10.96.0.0/12), NodePort and LoadBalancer types, a few headless ones; mostly TCP, some
 *   UDP, a little SCTP; 2–4 ports on a share of them, single ports often unnamed.
 * - Addresses: nodes `node-001`… at 192.168.0.10…, the rendered node is `node-001`; one /24
 *   of 10.244.0.0/16 per node for pods (at most 256 nodes; if the /16 fills up, pods back
 *   several Services), or with `nodes` given, that many nodes sharing the /16 evenly; LoadBalancer IPs from 203.0.113.0/24 and 198.51.100.0/24 (then
 *   100.64.0.0/10), externalIPs from 192.0.2.0/24 (then 100.96.0.0/11); NodePorts and
 *   health-check NodePorts unique in 30000–32767 (a NodePort Service falls back to
 *   ClusterIP when they run out).
 * - Endpoints: 1 + floor(maxEndpoints × u²) per Service, all Ready and Serving, except:
 *   noEndpointShare Services have none (60%) or only not-ready ones (40%), both rendered as
 *   REJECT; terminatingShare Services get 1–2 extra terminating endpoints (ignored while a
 *   Ready one exists; for a tenth of them every endpoint is Serving+Terminating, which
 *   kube-proxy then uses). Half of the Services with a Local traffic policy get an endpoint
 *   on the rendered node; the others render the "has no local endpoints" DROP rules.
 */
import { createHash } from 'node:crypto';

// ---------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------

export interface GenEndpoint {
  ip: string;
  /** Endpoint port of the Service's first port; further ports use their `targetPort`. */
  port: number;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  /** '' when the endpoint is not a pod on a node (the apiserver endpoints of default/kubernetes). */
  nodeName: string;
  podName: string;
}

export interface GenServicePort {
  /** '' for an unnamed (single) port: the chain hash and comments then use `ns/name` alone. */
  name: string;
  port: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  targetPort: number;
  nodePort?: number;
}

export interface GenService {
  namespace: string;
  name: string;
  type: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
  /** 'None' for a headless Service: kube-proxy writes no rules for it. */
  clusterIP: string;
  ports: GenServicePort[];
  externalIPs: string[];
  /** status.loadBalancer.ingress IPs; only used when type is LoadBalancer. */
  loadBalancerIPs: string[];
  loadBalancerSourceRanges: string[];
  externalTrafficPolicy: 'Cluster' | 'Local';
  internalTrafficPolicy: 'Cluster' | 'Local';
  sessionAffinity: 'None' | 'ClientIP';
  affinityTimeoutSeconds: number;
  endpoints: GenEndpoint[];
  /** Allocated for type LoadBalancer with externalTrafficPolicy Local (optional extra field). */
  healthCheckNodePort?: number;
}

export interface GenCluster {
  nodeName: string;
  nodeIPs: string[];
  clusterCIDR: string;
  serviceCIDR: string;
  nodes: string[];
  services: GenService[];
  masqueradeMark: string; // '0x4000'
}

export interface GenOptions {
  seed: number;
  services: number;
  /** Upper bound of endpoints per Service (default 17). */
  maxEndpoints?: number;
  /** Share of Services of type NodePort (default 0.10). */
  nodePortShare?: number;
  /** Share of Services of type LoadBalancer (default 0.05). */
  loadBalancerShare?: number;
  /** Share of Services with externalIPs (default 0.02). */
  externalIPShare?: number;
  /**
   * Share of externally reachable Services with externalTrafficPolicy Local (default 0.3);
   * a tenth of this share of all Services gets internalTrafficPolicy Local.
   */
  localPolicyShare?: number;
  /** Share of Services with sessionAffinity ClientIP (default 0.05). */
  affinityShare?: number;
  /** Share of Services without a usable endpoint: REJECT rules (default 0.03). */
  noEndpointShare?: number;
  /** Share of Service ports using UDP (default 0.06). */
  udpShare?: number;
  /** Share of Services with 2–4 ports (default 0.15). */
  multiPortShare?: number;
  // Further knobs:
  /** Share of LoadBalancer Services with loadBalancerSourceRanges (default 0.25). */
  sourceRangeShare?: number;
  /** Share of Services that also have terminating endpoints (default 0.03). */
  terminatingShare?: number;
  /** Share of headless Services (clusterIP None, no rules) (default 0.02). */
  headlessShare?: number;
  /** Share of Service ports using SCTP (default 0.002). */
  sctpShare?: number;
  /**
   * Number of nodes (1–4096). Default: one per ~110 pods, 3 to 256, each with a /24 of the
   * cluster CIDR. When given, the cluster CIDR is split into that many equal power-of-two
   * blocks instead (a /21 each for 20 nodes, a /23 each for 100), so a fleet of a few big
   * nodes still gets a pod IP per endpoint (until the /16 fills up).
   */
  nodes?: number;
}

export interface RenderOptions {
  /** Print packet/byte counters as `iptables-save -c` does (deterministic made-up values). */
  counters?: boolean;
  /**
   * kube-proxy drops the comments of KUBE-SEP-* rules and of the KUBE-SVC/SVL → KUBE-SEP
   * rules once the node has more than 1000 endpoints. Default false (comments kept);
   * 'auto' applies kube-proxy's own threshold.
   */
  largeClusterMode?: boolean | 'auto';
  /**
   * Which iptables-save prints (default 'nf_tables'): the header text and the table order
   * (nf_tables: mangle, filter, nat; legacy: nat, filter, mangle, which really depends on the host).
   */
  backend?: 'nf_tables' | 'legacy';
  /** ctime(3)-style date of the header and footer comments. */
  timestamp?: string;
  /** Whether KUBE-POSTROUTING's MASQUERADE has --random-fully (default true). */
  randomFully?: boolean;
  /**
   * kube-proxy's `--nodeport-addresses` (CIDRs). Unset: NodePorts on every local address
   * (`-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`). Set: one `-d <ip>/32 -j KUBE-NODEPORTS`
   * rule per node IP inside one of the CIDRs, so each node's dump names its own addresses.
   */
  nodePortAddresses?: readonly string[];
}

export type ChainPrefix = 'KUBE-SVC' | 'KUBE-SVL' | 'KUBE-EXT' | 'KUBE-FW' | 'KUBE-SEP';

// ---------------------------------------------------------------------------------------
// Seeded PRNG (mulberry32)
// ---------------------------------------------------------------------------------------

export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

// ---------------------------------------------------------------------------------------
// Chain names
// ---------------------------------------------------------------------------------------

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** First 16 characters of base32(sha256(input)), i.e. of its first 80 bits. */
function hash16(input: string): string {
  const digest = createHash('sha256').update(input).digest();
  let out = '';
  let value = 0;
  let bits = 0;
  for (let i = 0; i < 10; i++) {
    value = ((value << 8) | digest[i]) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

/** ServicePortName.String(): `ns/name`, plus `:port` when the port is named. */
function servicePortName(namespace: string, name: string, portName: string): string {
  return portName === '' ? `${namespace}/${name}` : `${namespace}/${name}:${portName}`;
}

/**
 * kube-proxy's per-service-port chain name: prefix + 16 chars of
 * base32(sha256(`ns/name[:port]` + lower-case protocol [+ endpoint `ip:port` for KUBE-SEP])).
 */
export function kubeProxyChainName(
  prefix: ChainPrefix,
  namespace: string,
  name: string,
  portName: string,
  protocol: string,
  endpoint?: string,
): string {
  if (prefix === 'KUBE-SEP' && endpoint === undefined) {
    throw new Error('kubeProxyChainName: KUBE-SEP needs the endpoint "ip:port"');
  }
  const base = servicePortName(namespace, name, portName) + protocol.toLowerCase();
  return `${prefix}-${hash16(prefix === 'KUBE-SEP' ? base + endpoint : base)}`;
}

// ---------------------------------------------------------------------------------------
// IPv4 helpers
// ---------------------------------------------------------------------------------------

function ipToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new Error(`not an IPv4 address: ${ip}`);
  let n = 0;
  for (const p of parts) {
    const v = Number(p);
    if (!Number.isInteger(v) || v < 0 || v > 255 || p === '') throw new Error(`not an IPv4 address: ${ip}`);
    n = n * 256 + v;
  }
  return n;
}

function intToIp(n: number): string {
  return `${Math.floor(n / 16777216) % 256}.${Math.floor(n / 65536) % 256}.${Math.floor(n / 256) % 256}.${n % 256}`;
}

interface Cidr {
  base: number;
  bits: number;
}

function parseCidr(text: string): Cidr {
  const [ip, len] = text.trim().split('/');
  const bits = len === undefined ? 32 : Number(len);
  if (!Number.isInteger(bits) || bits < 0 || bits > 32) throw new Error(`bad CIDR: ${text}`);
  const size = 2 ** (32 - bits);
  return { base: Math.floor(ipToInt(ip) / size) * size, bits };
}

function cidrContains(c: Cidr, ip: string): boolean {
  const n = ipToInt(ip);
  return n >= c.base && n < c.base + 2 ** (32 - c.bits);
}

/** The network as Go's IPNet.String() and iptables-save print it (host bits cleared). */
function cidrString(c: Cidr): string {
  return `${intToIp(c.base)}/${c.bits}`;
}

// ---------------------------------------------------------------------------------------
// iptables-save printing details
// ---------------------------------------------------------------------------------------

const NO_QUOTE = /^[A-Za-z0-9_-]+$/;

/** xtables_save_string: bare when only [A-Za-z0-9_-], else double-quoted with \" \\ \' escaped. */
function saveString(value: string): string {
  if (NO_QUOTE.test(value)) return value;
  return `"${value.replace(/["\\']/g, (c) => `\\${c}`)}"`;
}

function comment(text: string): string {
  return `-m comment --comment ${saveString(text)}`;
}

/** An address as iptables-save prints it: always with a prefix length. */
function addr(ipOrCidr: string): string {
  return ipOrCidr.includes('/') ? cidrString(parseCidr(ipOrCidr)) : `${ipOrCidr}/32`;
}

const TEN_POW_10 = 10n ** 10n;
const TEN_POW_11 = 10n ** 11n;
const TWO_POW_31 = 2n ** 31n;
const probabilityCache: string[] = [];

/**
 * The `--probability` iptables-save prints for kube-proxy's 1/n. kube-proxy writes
 * fmt "%0.10f" of 1/n; libxt_statistic stores lround(p * 2^31) and prints that back
 * with "%.11f" (e.g. 1/3 → 0.3333333333 → 715827883 → 0.33333333349).
 */
function savedProbability(n: number): string {
  const cached = probabilityCache[n];
  if (cached !== undefined) return cached;
  const bn = BigInt(n);
  // 1/n to 10 decimals, ties to even as Go's strconv does.
  let p10 = TEN_POW_10 / bn;
  const r10 = TEN_POW_10 % bn;
  if (2n * r10 > bn || (2n * r10 === bn && p10 % 2n === 1n)) p10 += 1n;
  // lround(p * 2^31): p10 * 2^31 / 10^10 can never be exactly half an integer.
  const num = p10 * TWO_POW_31;
  let k = num / TEN_POW_10;
  if (2n * (num % TEN_POW_10) >= TEN_POW_10) k += 1n;
  // "%.11f" of k / 2^31, ties to even as glibc does.
  const scaled = k * TEN_POW_11;
  let q = scaled / TWO_POW_31;
  const rem = scaled % TWO_POW_31;
  if (2n * rem > TWO_POW_31 || (2n * rem === TWO_POW_31 && q % 2n === 1n)) q += 1n;
  const whole = q / TEN_POW_11;
  const frac = (q % TEN_POW_11).toString().padStart(11, '0');
  const text = `${whole}.${frac}`;
  probabilityCache[n] = text;
  return text;
}

// ---------------------------------------------------------------------------------------
// Rule model: one table = built-in chains (with policy) + user chains, each a list of
// rule bodies (the text after `-A CHAIN `).
// ---------------------------------------------------------------------------------------

type TableName = 'mangle' | 'filter' | 'nat';

const BUILTINS: Record<TableName, readonly string[]> = {
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
};

class Table {
  readonly builtins: readonly string[];
  readonly chains = new Map<string, string[]>();

  constructor(readonly name: TableName) {
    this.builtins = BUILTINS[name];
    for (const b of this.builtins) this.chains.set(b, []);
  }

  /** Declare a chain (idempotent) and return its rule list. */
  chain(name: string): string[] {
    let rules = this.chains.get(name);
    if (rules === undefined) {
      rules = [];
      this.chains.set(name, rules);
    }
    return rules;
  }

  add(chain: string, body: string): void {
    pushFlat(this.chain(chain), body);
  }
}

/**
 * Append a rule body, flattened first: a template literal is a tree of string fragments
 * in V8, and keeping ~350k such trees alive until the final join costs more in GC than
 * copying each line once (charCodeAt forces the flattening).
 */
function pushFlat(rules: string[], body: string): void {
  body.charCodeAt(0);
  rules.push(body);
}

// ---------------------------------------------------------------------------------------
// Hook rules (installed with `iptables -I <chain> 1`, not through iptables-restore)
// ---------------------------------------------------------------------------------------

interface JumpRule {
  table: 'filter' | 'nat';
  src: string;
  dst: string;
  body: string;
}

const CT_NEW = '-m conntrack --ctstate NEW';

function jump(table: 'filter' | 'nat', src: string, dst: string, text: string, extra?: string): JumpRule {
  const parts = [];
  if (extra) parts.push(extra);
  if (text) parts.push(comment(text));
  parts.push(`-j ${dst}`);
  return { table, src, dst, body: parts.join(' ') };
}

/** kube-proxy's iptablesJumpChains followed by iptablesKubeletJumpChains, in its order. */
const JUMP_RULES: readonly JumpRule[] = [
  jump('filter', 'INPUT', 'KUBE-EXTERNAL-SERVICES', 'kubernetes externally-visible service portals', CT_NEW),
  jump('filter', 'FORWARD', 'KUBE-EXTERNAL-SERVICES', 'kubernetes externally-visible service portals', CT_NEW),
  jump('filter', 'INPUT', 'KUBE-NODEPORTS', 'kubernetes health check service ports'),
  jump('filter', 'FORWARD', 'KUBE-SERVICES', 'kubernetes service portals', CT_NEW),
  jump('filter', 'OUTPUT', 'KUBE-SERVICES', 'kubernetes service portals', CT_NEW),
  jump('filter', 'FORWARD', 'KUBE-FORWARD', 'kubernetes forwarding rules'),
  jump('filter', 'INPUT', 'KUBE-PROXY-FIREWALL', 'kubernetes load balancer firewall', CT_NEW),
  jump('filter', 'OUTPUT', 'KUBE-PROXY-FIREWALL', 'kubernetes load balancer firewall', CT_NEW),
  jump('filter', 'FORWARD', 'KUBE-PROXY-FIREWALL', 'kubernetes load balancer firewall', CT_NEW),
  jump('nat', 'OUTPUT', 'KUBE-SERVICES', 'kubernetes service portals'),
  jump('nat', 'PREROUTING', 'KUBE-SERVICES', 'kubernetes service portals'),
  jump('nat', 'POSTROUTING', 'KUBE-POSTROUTING', 'kubernetes postrouting rules'),
  jump('filter', 'INPUT', 'KUBE-FIREWALL', ''),
  jump('filter', 'OUTPUT', 'KUBE-FIREWALL', ''),
];

function installHooks(filter: Table, nat: Table): void {
  // EnsureRule(Prepend): each rule goes to position 1 unless already present, so the final
  // order is the reverse of the order kube-proxy ensures them in.
  for (const j of JUMP_RULES) {
    const table = j.table === 'filter' ? filter : nat;
    table.chain(j.dst);
    const rules = table.chain(j.src);
    if (!rules.includes(j.body)) rules.unshift(j.body);
  }
}

// ---------------------------------------------------------------------------------------
// Rendering one node's rules
// ---------------------------------------------------------------------------------------

export interface EndpointInfo {
  ip: string;
  port: number;
  str: string;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  local: boolean;
  chain: string;
}

export interface Categorized {
  cluster: EndpointInfo[];
  local: EndpointInfo[];
  reachable: EndpointInfo[];
  hasAny: boolean;
}

/** CategorizeEndpoints without topology hints. */
function categorize(eps: EndpointInfo[], usesCluster: boolean, usesLocal: boolean): Categorized {
  const out: Categorized = { cluster: [], local: [], reachable: [], hasAny: false };
  if (eps.length === 0) return out;
  if (usesCluster) {
    out.cluster = eps.filter((e) => e.ready);
    if (out.cluster.length === 0) out.cluster = eps.filter((e) => e.serving && e.terminating);
    if (out.cluster.length > 0) out.hasAny = true;
  }
  if (!usesLocal) {
    out.reachable = out.cluster;
    return out;
  }
  let localReady = false;
  let localServingTerminating = false;
  for (const e of eps) {
    if (e.ready) {
      out.hasAny = true;
      if (e.local) localReady = true;
    } else if (e.serving && e.terminating) {
      out.hasAny = true;
      if (e.local) localServingTerminating = true;
    }
  }
  let useServingTerminating = false;
  if (localReady) {
    out.local = eps.filter((e) => e.local && e.ready);
  } else if (localServingTerminating) {
    useServingTerminating = true;
    out.local = eps.filter((e) => e.local && e.serving && e.terminating);
  }
  if (!usesCluster) {
    out.reachable = out.local;
    return out;
  }
  if (!useServingTerminating) {
    out.reachable = out.cluster;
    return out;
  }
  const seen = new Set<string>();
  for (const e of [...out.cluster, ...out.local]) {
    if (!seen.has(e.str)) {
      seen.add(e.str);
      out.reachable.push(e);
    }
  }
  return out;
}

interface RenderCtx {
  filter: Table;
  nat: Table;
  clusterCIDR: string;
  nodeName: string;
  nodeIP: string;
  largeCluster: boolean;
}

function writeServiceToEndpointRules(
  ctx: RenderCtx,
  spn: string,
  svc: GenService,
  chain: string,
  endpoints: EndpointInfo[],
): void {
  const rules = ctx.nat.chain(chain);
  if (svc.sessionAffinity === 'ClientIP') {
    for (const ep of endpoints) {
      const c = ctx.largeCluster ? '' : `${comment(`${spn} -> ${ep.str}`)} `;
      pushFlat(
        rules,
        `${c}-m recent --rcheck --seconds ${svc.affinityTimeoutSeconds} --reap --name ${ep.chain} --mask 255.255.255.255 --rsource -j ${ep.chain}`,
      );
    }
  }
  const n = endpoints.length;
  endpoints.forEach((ep, i) => {
    const c = ctx.largeCluster ? '' : `${comment(`${spn} -> ${ep.str}`)} `;
    const stat = i < n - 1 ? `-m statistic --mode random --probability ${savedProbability(n - i)} ` : '';
    pushFlat(rules, `${c}${stat}-j ${ep.chain}`);
  });
}

/**
 * What kube-proxy decides for one Service port on one node before it writes a rule, the same in
 * its iptables and nftables proxiers (syncProxyRules up to the "Capture the clusterIP" step):
 * the endpoints it knows, how CategorizeEndpoints splits them, and which policy chains exist.
 */
export interface ServicePortPlan {
  svc: GenService;
  port: GenServicePort;
  /** Lower-case protocol. */
  proto: string;
  /** ServicePortName.String(): `ns/name` or `ns/name:port`. */
  spn: string;
  lbVIPs: string[];
  /** 0 when the port has no NodePort (or the Service type does not open one). */
  nodePort: number;
  externallyAccessible: boolean;
  externalPolicyLocal: boolean;
  internalPolicyLocal: boolean;
  healthCheckNodePort: number;
  cat: Categorized;
  hasEndpoints: boolean;
  usesClusterPolicyChain: boolean;
  usesLocalPolicyChain: boolean;
  /** false when internalTrafficPolicy is Local and no endpoint is on this node. */
  hasInternalEndpoints: boolean;
  /** false when externalTrafficPolicy is Local and no endpoint is on this node. */
  hasExternalEndpoints: boolean;
  usesExternalTrafficChain: boolean;
}

/**
 * kube-proxy's view of one Service port from `nodeName`; `endpointChain(ipPort)` names each
 * endpoint's chain, as the backend calling it does.
 */
export function planServicePort(
  svc: GenService,
  portIndex: number,
  nodeName: string,
  endpointChain: (endpoint: string) => string,
): ServicePortPlan {
  const sp = svc.ports[portIndex];
  const proto = sp.protocol.toLowerCase();
  const spn = servicePortName(svc.namespace, svc.name, sp.name);

  const lbVIPs = svc.type === 'LoadBalancer' ? svc.loadBalancerIPs : [];
  const nodePort = svc.type === 'NodePort' || svc.type === 'LoadBalancer' ? (sp.nodePort ?? 0) : 0;
  const serviceExternallyAccessible =
    svc.type === 'NodePort' || svc.type === 'LoadBalancer' || svc.externalIPs.length > 0;
  const externalPolicyLocal = serviceExternallyAccessible && svc.externalTrafficPolicy === 'Local';
  const internalPolicyLocal = svc.internalTrafficPolicy === 'Local';
  const externallyAccessible = nodePort !== 0 || lbVIPs.length > 0 || svc.externalIPs.length > 0;
  const usesClusterEndpoints = !internalPolicyLocal || externallyAccessible;
  const usesLocalEndpoints = internalPolicyLocal || (externalPolicyLocal && externallyAccessible);
  const healthCheckNodePort =
    svc.type === 'LoadBalancer' && externalPolicyLocal ? (svc.healthCheckNodePort ?? 0) : 0;

  // The endpoints kube-proxy knows for this port: unique by ip:port, sorted by that string.
  const byStr = new Map<string, EndpointInfo>();
  for (const e of svc.endpoints) {
    const port = portIndex === 0 ? e.port : sp.targetPort;
    const str = e.ip.includes(':') ? `[${e.ip}]:${port}` : `${e.ip}:${port}`;
    if (byStr.has(str)) continue;
    byStr.set(str, {
      ip: e.ip,
      port,
      str,
      ready: e.ready,
      serving: e.serving,
      terminating: e.terminating,
      local: e.nodeName !== '' && e.nodeName === nodeName,
      chain: endpointChain(str),
    });
  }
  const endpoints = [...byStr.values()].sort((a, b) => (a.str < b.str ? -1 : a.str > b.str ? 1 : 0));
  const cat = categorize(endpoints, usesClusterEndpoints, usesLocalEndpoints);
  const hasEndpoints = cat.hasAny;

  let hasInternalEndpoints = hasEndpoints;
  if (internalPolicyLocal && cat.local.length === 0) hasInternalEndpoints = false;
  let hasExternalEndpoints = hasEndpoints;
  if (externalPolicyLocal && cat.local.length === 0) hasExternalEndpoints = false;

  return {
    svc,
    port: sp,
    proto,
    spn,
    lbVIPs,
    nodePort,
    externallyAccessible,
    externalPolicyLocal,
    internalPolicyLocal,
    healthCheckNodePort,
    cat,
    hasEndpoints,
    usesClusterPolicyChain: cat.cluster.length > 0 && usesClusterEndpoints,
    usesLocalPolicyChain: cat.local.length > 0 && usesLocalEndpoints,
    hasInternalEndpoints,
    hasExternalEndpoints,
    usesExternalTrafficChain: hasEndpoints && externallyAccessible,
  };
}

function renderServicePort(ctx: RenderCtx, svc: GenService, portIndex: number): void {
  const sp = svc.ports[portIndex];
  const proto = sp.protocol.toLowerCase();
  const spn = servicePortName(svc.namespace, svc.name, sp.name);
  const hash = hash16(spn + proto);
  const clusterPolicyChain = `KUBE-SVC-${hash}`;
  const localPolicyChain = `KUBE-SVL-${hash}`;
  const externalChain = `KUBE-EXT-${hash}`;
  const fwChain = `KUBE-FW-${hash}`;
  const { filter, nat } = ctx;

  const plan = planServicePort(svc, portIndex, ctx.nodeName, (str) => `KUBE-SEP-${hash16(spn + proto + str)}`);
  const { lbVIPs, nodePort, externalPolicyLocal, internalPolicyLocal, healthCheckNodePort, cat, hasEndpoints } = plan;
  const { usesClusterPolicyChain, usesLocalPolicyChain, hasInternalEndpoints, hasExternalEndpoints } = plan;
  const sourceRanges = svc.loadBalancerSourceRanges.map(parseCidr);
  const internalTrafficChain = internalPolicyLocal ? localPolicyChain : clusterPolicyChain;
  const externalPolicyChain = externalPolicyLocal ? localPolicyChain : clusterPolicyChain;
  const usesExternalTrafficChain = plan.usesExternalTrafficChain;
  const usesFWChain = hasEndpoints && lbVIPs.length > 0 && sourceRanges.length > 0;
  const loadBalancerTrafficChain = usesFWChain ? fwChain : externalChain;

  let internalFilterTarget = '';
  let internalFilterComment = '';
  let externalFilterTarget = '';
  let externalFilterComment = '';
  if (!hasEndpoints) {
    internalFilterTarget = externalFilterTarget = 'REJECT --reject-with icmp-port-unreachable';
    internalFilterComment = externalFilterComment = `${spn} has no endpoints`;
  } else {
    if (!hasInternalEndpoints) {
      internalFilterTarget = 'DROP';
      internalFilterComment = `${spn} has no local endpoints`;
    }
    if (!hasExternalEndpoints) {
      externalFilterTarget = 'DROP';
      externalFilterComment = `${spn} has no local endpoints`;
    }
  }

  const dport = `-m ${proto} --dport`;
  const clusterIPMatch = `-d ${addr(svc.clusterIP)} -p ${proto} ${comment(`${spn} cluster IP`)} ${dport} ${sp.port}`;

  // Capture the clusterIP.
  if (hasInternalEndpoints) {
    nat.add('KUBE-SERVICES', `${clusterIPMatch} -j ${internalTrafficChain}`);
  } else {
    filter.add(
      'KUBE-SERVICES',
      `-d ${addr(svc.clusterIP)} -p ${proto} ${comment(internalFilterComment)} ${dport} ${sp.port} -j ${internalFilterTarget}`,
    );
  }

  // Capture externalIPs.
  for (const ip of svc.externalIPs) {
    if (hasEndpoints) {
      nat.add(
        'KUBE-SERVICES',
        `-d ${addr(ip)} -p ${proto} ${comment(`${spn} external IP`)} ${dport} ${sp.port} -j ${externalChain}`,
      );
    }
    if (!hasExternalEndpoints) {
      filter.add(
        'KUBE-EXTERNAL-SERVICES',
        `-d ${addr(ip)} -p ${proto} ${comment(externalFilterComment)} ${dport} ${sp.port} -j ${externalFilterTarget}`,
      );
    }
  }

  // Capture load-balancer ingress.
  for (const ip of lbVIPs) {
    if (hasEndpoints) {
      nat.add(
        'KUBE-SERVICES',
        `-d ${addr(ip)} -p ${proto} ${comment(`${spn} loadbalancer IP`)} ${dport} ${sp.port} -j ${loadBalancerTrafficChain}`,
      );
    }
    if (usesFWChain) {
      filter.add(
        'KUBE-PROXY-FIREWALL',
        `-d ${addr(ip)} -p ${proto} ${comment(`${spn} traffic not accepted by ${fwChain}`)} ${dport} ${sp.port} -j DROP`,
      );
    }
  }
  if (!hasExternalEndpoints) {
    for (const ip of lbVIPs) {
      filter.add(
        'KUBE-EXTERNAL-SERVICES',
        `-d ${addr(ip)} -p ${proto} ${comment(externalFilterComment)} ${dport} ${sp.port} -j ${externalFilterTarget}`,
      );
    }
  }

  // Capture nodeports.
  if (nodePort !== 0) {
    if (hasEndpoints) {
      nat.add('KUBE-NODEPORTS', `-p ${proto} ${comment(spn)} ${dport} ${nodePort} -j ${externalChain}`);
    }
    if (!hasExternalEndpoints) {
      filter.add(
        'KUBE-EXTERNAL-SERVICES',
        `-p ${proto} ${comment(externalFilterComment)} -m addrtype --dst-type LOCAL ${dport} ${nodePort} -j ${externalFilterTarget}`,
      );
    }
  }

  // Capture healthCheckNodePorts (always TCP, whatever the service port's protocol).
  if (healthCheckNodePort !== 0) {
    filter.add(
      'KUBE-NODEPORTS',
      `-p tcp ${comment(`${spn} health check node port`)} -m tcp --dport ${healthCheckNodePort} -j ACCEPT`,
    );
  }

  // Internal traffic: masquerade off-cluster sources (ClusterCIDR local-traffic detector).
  if (hasInternalEndpoints) {
    nat.add(
      internalTrafficChain,
      `! -s ${addr(ctx.clusterCIDR)} -d ${addr(svc.clusterIP)} -p ${proto} ${comment(`${spn} cluster IP`)} ${dport} ${sp.port} -j KUBE-MARK-MASQ`,
    );
  }

  // External traffic: everything goes through KUBE-EXT-*.
  if (usesExternalTrafficChain) {
    nat.chain(externalChain);
    if (!externalPolicyLocal) {
      nat.add(externalChain, `${comment(`masquerade traffic for ${spn} external destinations`)} -j KUBE-MARK-MASQ`);
    } else {
      nat.add(
        externalChain,
        `-s ${addr(ctx.clusterCIDR)} ${comment(`pod traffic for ${spn} external destinations`)} -j ${clusterPolicyChain}`,
      );
      nat.add(
        externalChain,
        `${comment(`masquerade LOCAL traffic for ${spn} external destinations`)} -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
      );
      nat.add(
        externalChain,
        `${comment(`route LOCAL traffic for ${spn} external destinations`)} -m addrtype --src-type LOCAL -j ${clusterPolicyChain}`,
      );
    }
    if (hasExternalEndpoints) nat.add(externalChain, `-j ${externalPolicyChain}`);
  }

  // LoadBalancer source ranges.
  if (usesFWChain) {
    const lbComment = comment(`${spn} loadbalancer IP`);
    let allowFromNode = false;
    for (const c of sourceRanges) {
      nat.add(fwChain, `-s ${cidrString(c)} ${lbComment} -j ${externalChain}`);
      if (cidrContains(c, ctx.nodeIP)) allowFromNode = true;
    }
    // A VIP-like LB whose VIP is a local address: node → VIP comes back with the VIP as source.
    if (allowFromNode) {
      for (const ip of lbVIPs) nat.add(fwChain, `-s ${addr(ip)} ${lbComment} -j ${externalChain}`);
    }
    nat.add(fwChain, comment(`other traffic to ${spn} will be dropped by KUBE-PROXY-FIREWALL`));
  }

  if (usesClusterPolicyChain) writeServiceToEndpointRules(ctx, spn, svc, clusterPolicyChain, cat.cluster);
  if (usesLocalPolicyChain) writeServiceToEndpointRules(ctx, spn, svc, localPolicyChain, cat.local);

  // Per-endpoint chains.
  const sepComment = ctx.largeCluster ? '' : `${comment(spn)} `;
  const affinity = svc.sessionAffinity === 'ClientIP';
  for (const ep of cat.reachable) {
    const rules = nat.chain(ep.chain);
    pushFlat(rules, `-s ${ep.ip}/32 ${sepComment}-j KUBE-MARK-MASQ`);
    const recent = affinity ? `-m recent --set --name ${ep.chain} --mask 255.255.255.255 --rsource ` : '';
    pushFlat(rules, `-p ${proto} ${sepComment}${recent}-m ${proto} -j DNAT --to-destination ${ep.str}`);
  }
}

export function isProxied(svc: GenService): boolean {
  return svc.clusterIP !== '' && svc.clusterIP !== 'None';
}

function buildTables(cluster: GenCluster, opts: RenderOptions): Table[] {
  const mangle = new Table('mangle');
  const filter = new Table('filter');
  const nat = new Table('nat');
  const mark = cluster.masqueradeMark;

  // kubelet's chains (KUBE-IPTABLES-HINT tells containerised tools which backend the host uses).
  mangle.chain('KUBE-IPTABLES-HINT');
  for (const t of [mangle, filter, nat]) {
    t.chain('KUBE-KUBELET-CANARY');
    t.chain('KUBE-PROXY-CANARY');
  }

  installHooks(filter, nat);

  for (const c of ['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FORWARD', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL']) {
    filter.chain(c);
  }
  for (const c of ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ']) nat.chain(c);

  nat.add('KUBE-POSTROUTING', `-m mark ! --mark ${mark}/${mark} -j RETURN`);
  // --xor-mark X is --set-xmark X/0.
  nat.add('KUBE-POSTROUTING', `-j MARK --set-xmark ${mark}/0x0`);
  nat.add(
    'KUBE-POSTROUTING',
    `${comment('kubernetes service traffic requiring SNAT')} -j MASQUERADE${opts.randomFully === false ? '' : ' --random-fully'}`,
  );
  // --or-mark X is --set-xmark X/X.
  nat.add('KUBE-MARK-MASQ', `-j MARK --set-xmark ${mark}/${mark}`);

  filter.add(
    'KUBE-FIREWALL',
    `! -s 127.0.0.0/8 -d 127.0.0.0/8 ${comment('block incoming localnet connections')} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`,
  );

  let largeCluster = false;
  if (opts.largeClusterMode === true) largeCluster = true;
  else if (opts.largeClusterMode === 'auto') {
    let total = 0;
    for (const svc of cluster.services) if (isProxied(svc)) total += svc.endpoints.length * svc.ports.length;
    largeCluster = total > 1000;
  }

  const ctx: RenderCtx = {
    filter,
    nat,
    clusterCIDR: cluster.clusterCIDR,
    nodeName: cluster.nodeName,
    nodeIP: cluster.nodeIPs[0] ?? '',
    largeCluster,
  };
  for (const svc of cluster.services) {
    if (!isProxied(svc)) continue;
    for (let i = 0; i < svc.ports.length; i++) renderServicePort(ctx, svc, i);
  }

  const nodePortsComment = comment('kubernetes service nodeports; NOTE: this must be the last rule in this chain');
  if (opts.nodePortAddresses === undefined) {
    nat.add('KUBE-SERVICES', `${nodePortsComment} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`);
  } else {
    // proxier.go: with --nodeport-addresses, a rule per node IP the CIDRs take in (loopback never).
    const cidrs = opts.nodePortAddresses.map(parseCidr);
    for (const ip of cluster.nodeIPs) {
      if (ip.startsWith('127.') || !cidrs.some((c) => cidrContains(c, ip))) continue;
      nat.add('KUBE-SERVICES', `-d ${addr(ip)} ${nodePortsComment} -j KUBE-NODEPORTS`);
    }
  }

  filter.add('KUBE-FORWARD', '-m conntrack --ctstate INVALID -j DROP');
  filter.add('KUBE-FORWARD', `${comment('kubernetes forwarding rules')} -m mark --mark ${mark}/${mark} -j ACCEPT`);
  filter.add(
    'KUBE-FORWARD',
    `${comment('kubernetes forwarding conntrack rule')} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
  );

  return opts.backend === 'legacy' ? [nat, filter, mangle] : [mangle, filter, nat];
}

function byteCompare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** What `iptables-save` (or `iptables-save -c` with `counters`) prints on the cluster's node. */
export function renderIptablesSave(cluster: GenCluster, opts: RenderOptions = {}): string {
  const tables = buildTables(cluster, opts);
  const timestamp = opts.timestamp ?? 'Mon Jan  1 00:00:00 2024';
  const version = opts.backend === 'legacy' ? 'v1.8.9' : 'v1.8.9 (nf_tables)';
  const counterRng = opts.counters ? new Rng(0xc0ffee) : undefined;
  const counter = (): string => {
    if (!counterRng) return '[0:0]';
    const packets = counterRng.int(5000);
    return `[${packets}:${packets * (60 + counterRng.int(1400))}]`;
  };

  const out: string[] = [];
  for (const t of tables) {
    out.push(`# Generated by iptables-save ${version} on ${timestamp}`, `*${t.name}`);
    for (const b of t.builtins) out.push(`:${b} ACCEPT ${counter()}`);
    // Default sort compares UTF-16 code units: byte order for these ASCII names, as iptables-save sorts.
    const user = [...t.chains.keys()].filter((c) => !t.builtins.includes(c)).sort();
    for (const c of user) out.push(`:${c} - [0:0]`);
    for (const c of [...t.builtins, ...user]) {
      const rules = t.chains.get(c) as string[];
      for (const body of rules) {
        out.push(counterRng ? `${counter()} -A ${c} ${body}` : `-A ${c} ${body}`);
      }
    }
    out.push('COMMIT', `# Completed on ${timestamp}`);
  }
  out.push('');
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------
// Cluster generation
// ---------------------------------------------------------------------------------------

const DEFAULTS: Required<Omit<GenOptions, 'seed' | 'services' | 'nodes'>> = {
  maxEndpoints: 17,
  nodePortShare: 0.1,
  loadBalancerShare: 0.05,
  externalIPShare: 0.02,
  localPolicyShare: 0.3,
  affinityShare: 0.05,
  noEndpointShare: 0.03,
  udpShare: 0.06,
  multiPortShare: 0.15,
  sourceRangeShare: 0.25,
  terminatingShare: 0.03,
  headlessShare: 0.02,
  sctpShare: 0.002,
};

const TEAMS = [
  'shop', 'pay', 'auth', 'cart', 'search', 'media', 'mail', 'ml', 'data', 'web', 'api', 'ops',
  'infra', 'logs', 'mon', 'billing', 'geo', 'chat', 'feed', 'games', 'ads', 'crm', 'erp', 'cdn',
  'iot', 'bank', 'risk', 'hr', 'dev', 'sre',
] as const;
const ENVS = ['', '-prod', '-stg', '-dev', '-qa'] as const;
const NAME_PREFIXES = [
  'order', 'user', 'cart', 'item', 'price', 'stock', 'bill', 'mail', 'sms', 'push', 'login', 'token',
  'event', 'audit', 'img', 'video', 'file', 'conf', 'flag', 'rate', 'geo', 'tax', 'promo', 'wallet',
  'acct', 'risk', 'score', 'quote', 'ship', 'feed',
] as const;
const NAME_COMPONENTS = [
  'api', 'web', 'app', 'grpc', 'ui', 'svc', 'db', 'cache', 'redis', 'pg', 'mysql', 'kafka', 'mq',
  'es', 'proxy', 'gw', 'cron', 'ctl', 'hook', 'admin', 'sync', 'idx', 'worker', 'pub', 'sub', 'srv',
  'lb', 'mon', 'exp', 'rpc',
] as const;

interface PortTemplate {
  name: string;
  port: number;
  targetPort: number;
}

const TCP_PORTS: readonly PortTemplate[] = [
  { name: 'http', port: 80, targetPort: 8080 },
  { name: 'http', port: 80, targetPort: 80 },
  { name: 'https', port: 443, targetPort: 8443 },
  { name: 'http', port: 8080, targetPort: 8080 },
  { name: 'grpc', port: 9090, targetPort: 9090 },
  { name: 'grpc', port: 50051, targetPort: 50051 },
  { name: 'web', port: 3000, targetPort: 3000 },
  { name: 'redis', port: 6379, targetPort: 6379 },
  { name: 'pg', port: 5432, targetPort: 5432 },
  { name: 'mysql', port: 3306, targetPort: 3306 },
  { name: 'amqp', port: 5672, targetPort: 5672 },
  { name: 'kafka', port: 9092, targetPort: 9092 },
  { name: 'mongo', port: 27017, targetPort: 27017 },
  { name: 'es', port: 9200, targetPort: 9200 },
  { name: 'memc', port: 11211, targetPort: 11211 },
  { name: 'tcp-8000', port: 8000, targetPort: 8000 },
];
const TCP_EXTRA_PORTS: readonly PortTemplate[] = [
  { name: 'metrics', port: 9100, targetPort: 9100 },
  { name: 'admin', port: 8081, targetPort: 8081 },
  { name: 'https', port: 443, targetPort: 8443 },
  { name: 'grpc', port: 9090, targetPort: 9090 },
  { name: 'health', port: 8086, targetPort: 8086 },
  { name: 'debug', port: 6060, targetPort: 6060 },
];
const UDP_PORTS: readonly PortTemplate[] = [
  { name: 'dns', port: 53, targetPort: 5353 },
  { name: 'syslog', port: 514, targetPort: 5514 },
  { name: 'statsd', port: 8125, targetPort: 8125 },
  { name: 'jaeger', port: 6831, targetPort: 6831 },
  { name: 'quic', port: 443, targetPort: 8443 },
  { name: 'ntp', port: 123, targetPort: 1123 },
  { name: 'sip', port: 5060, targetPort: 5060 },
  { name: 'game', port: 7777, targetPort: 7777 },
];
const SCTP_PORTS: readonly PortTemplate[] = [
  { name: 'diameter', port: 3868, targetPort: 3868 },
  { name: 's1ap', port: 36412, targetPort: 36412 },
];

const SOURCE_RANGES = [
  '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '203.0.113.0/25', '198.51.100.0/24',
  '192.0.2.0/24', '100.64.0.0/10',
] as const;

const CLUSTER_CIDR = '10.244.0.0/16';
const SERVICE_CIDR = '10.96.0.0/12';
/** Pod IPs per node: 10.244.<node>.2–254, like a /24 per node from the host-local IPAM. */
const PODS_PER_NODE_CIDR = 253;
const MAX_NODES = 256;
/** The most nodes `GenOptions.nodes` allows: a /28 of pods each. */
const MAX_GIVEN_NODES = 4096;

/** Sequential allocator over a list of address blocks, skipping .0 and .255. */
class AddressPool {
  private block = 0;
  private offset = 1;

  constructor(private readonly blocks: readonly [string, number][]) {}

  next(): string {
    while (this.block < this.blocks.length) {
      const [base, size] = this.blocks[this.block];
      if (this.offset < size) {
        const ip = intToIp(ipToInt(base) + this.offset);
        this.offset++;
        const last = ip.slice(ip.lastIndexOf('.') + 1);
        if (last === '0' || last === '255') continue;
        return ip;
      }
      this.block++;
      this.offset = 1;
    }
    throw new Error('address pool exhausted');
  }
}

function nodeIP(index: number): string {
  const n = 10 + index;
  return `192.168.${Math.floor(n / 256)}.${n % 256}`;
}

function suffix(rng: Rng, length: number): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let s = '';
  for (let i = 0; i < length; i++) s += alphabet[rng.int(alphabet.length)];
  return s;
}

interface ServicePlan {
  svc: GenService;
  endpointCount: number;
  forceLocal: boolean;
  notReady: boolean;
  terminating: number;
  onlyTerminating: boolean;
}

/** A ClusterIP Service with the API's defaults and nothing else: no address, ports or endpoints yet. */
export function blankService(namespace: string, name: string): GenService {
  return {
    namespace,
    name,
    type: 'ClusterIP',
    clusterIP: '',
    ports: [],
    externalIPs: [],
    loadBalancerIPs: [],
    loadBalancerSourceRanges: [],
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
    sessionAffinity: 'None',
    affinityTimeoutSeconds: 10800,
    endpoints: [],
  };
}

/** A seeded, deterministic cluster: same options → same cluster. */
export function generateCluster(opts: GenOptions): GenCluster {
  const o: Required<Omit<GenOptions, 'nodes'>> = { ...DEFAULTS, ...stripUndefined(opts), seed: opts.seed, services: opts.services };
  if (!Number.isInteger(o.services) || o.services < 0) throw new Error('services must be a non-negative integer');
  if (opts.nodes !== undefined && !(Number.isInteger(opts.nodes) && opts.nodes >= 1 && opts.nodes <= MAX_GIVEN_NODES)) {
    throw new Error(`nodes must be an integer from 1 to ${MAX_GIVEN_NODES}`);
  }
  const maxEndpoints = Math.max(1, Math.floor(o.maxEndpoints));
  const rng = new Rng(opts.seed);

  // Namespaces.
  const namespaceCount = Math.max(1, Math.round(o.services / 60));
  const namespaces: string[] = [];
  for (let i = 0; namespaces.length < namespaceCount; i++) {
    const team = TEAMS[i % TEAMS.length];
    const env = ENVS[Math.floor(i / TEAMS.length) % ENVS.length];
    const round = Math.floor(i / (TEAMS.length * ENVS.length));
    namespaces.push(round === 0 ? `${team}${env}` : `${team}${env}-${round + 1}`);
  }

  // Allocators.
  const usedClusterIPs = new Set<string>(['10.96.0.1', '10.96.0.10']);
  const serviceBase = ipToInt('10.96.0.0');
  const clusterIP = (): string => {
    for (;;) {
      const ip = intToIp(serviceBase + 1 + rng.int(2 ** 20 - 2));
      if (!usedClusterIPs.has(ip)) {
        usedClusterIPs.add(ip);
        return ip;
      }
    }
  };
  const freeNodePorts: number[] = [];
  for (let p = 30000; p <= 32767; p++) freeNodePorts.push(p);
  const nodePort = (): number | undefined => {
    if (freeNodePorts.length === 0) return undefined;
    const i = rng.int(freeNodePorts.length);
    const p = freeNodePorts[i];
    freeNodePorts[i] = freeNodePorts[freeNodePorts.length - 1];
    freeNodePorts.pop();
    return p;
  };
  // Documentation ranges first; 100.64.0.0/10 (shared address space) only if they run out.
  const lbPool = new AddressPool([['203.0.113.0', 256], ['198.51.100.0', 256], ['100.64.0.0', 2 ** 21]]);
  const externalPool = new AddressPool([['192.0.2.0', 256], ['100.96.0.0', 2 ** 21]]);

  const plans: ServicePlan[] = [];
  const usedNames = new Map<string, Set<string>>();
  const uniqueName = (ns: string, base: string): string => {
    let names = usedNames.get(ns);
    if (!names) {
      names = new Set();
      usedNames.set(ns, names);
    }
    let name = base;
    for (let i = 2; names.has(name); i++) name = `${base}-${i}`;
    names.add(name);
    return name;
  };

  // The two Services every cluster has.
  if (o.services >= 1) {
    const k = blankService('default', uniqueName('default', 'kubernetes'));
    k.clusterIP = '10.96.0.1';
    k.ports = [{ name: 'https', port: 443, protocol: 'TCP', targetPort: 6443 }];
    plans.push({ svc: k, endpointCount: 0, forceLocal: false, notReady: false, terminating: 0, onlyTerminating: false });
  }
  if (o.services >= 2) {
    const d = blankService('kube-system', uniqueName('kube-system', 'kube-dns'));
    d.clusterIP = '10.96.0.10';
    d.ports = [
      { name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 },
      { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 53 },
      { name: 'metrics', port: 9153, protocol: 'TCP', targetPort: 9153 },
    ];
    plans.push({ svc: d, endpointCount: 2, forceLocal: false, notReady: false, terminating: 0, onlyTerminating: false });
  }

  while (plans.length < o.services) {
    const ns = rng.pick(namespaces);
    let base = `${rng.pick(NAME_PREFIXES)}-${rng.pick(NAME_COMPONENTS)}`;
    if (rng.chance(0.1)) base += rng.pick(['-v2', '-int', '-canary', '-ro']);
    const svc = blankService(ns, uniqueName(ns, base));

    const headless = rng.chance(o.headlessShare);
    const typeRoll = rng.next();
    if (!headless && typeRoll < o.loadBalancerShare) svc.type = 'LoadBalancer';
    else if (!headless && typeRoll < o.loadBalancerShare + o.nodePortShare) svc.type = 'NodePort';
    svc.clusterIP = headless ? 'None' : clusterIP();

    // Ports.
    const portCount = rng.chance(o.multiPortShare) ? 2 + rng.int(3) : 1;
    const taken = new Set<string>();
    const names = new Set<string>();
    for (let attempt = 0; svc.ports.length < portCount && attempt < 50; attempt++) {
      const protoRoll = rng.next();
      const protocol: GenServicePort['protocol'] =
        protoRoll < o.sctpShare ? 'SCTP' : protoRoll < o.sctpShare + o.udpShare ? 'UDP' : 'TCP';
      const pool =
        protocol === 'SCTP' ? SCTP_PORTS : protocol === 'UDP' ? UDP_PORTS : svc.ports.length === 0 ? TCP_PORTS : TCP_EXTRA_PORTS;
      const t = rng.pick(pool);
      let name = t.name;
      if (protocol === 'UDP' && names.has(name)) name = `${name}-udp`;
      if (taken.has(`${t.port}/${protocol}`) || names.has(name)) continue;
      taken.add(`${t.port}/${protocol}`);
      names.add(name);
      svc.ports.push({ name, port: t.port, protocol, targetPort: t.targetPort });
    }
    // A single port is often left unnamed.
    if (svc.ports.length === 1 && rng.chance(0.5)) svc.ports[0].name = '';

    if (svc.type !== 'ClusterIP') {
      for (const p of svc.ports) {
        const np = nodePort();
        if (np === undefined) break;
        p.nodePort = np;
      }
      if (svc.type === 'NodePort' && svc.ports.some((p) => p.nodePort === undefined)) {
        // Out of NodePorts: fall back to ClusterIP, as the apiserver would refuse the Service.
        for (const p of svc.ports) delete p.nodePort;
        svc.type = 'ClusterIP';
      }
    }
    if (!headless && svc.type !== 'LoadBalancer' && rng.chance(o.externalIPShare)) {
      svc.externalIPs.push(externalPool.next());
      if (rng.chance(0.2)) svc.externalIPs.push(externalPool.next());
    }
    if (svc.type === 'LoadBalancer') {
      svc.loadBalancerIPs.push(lbPool.next());
      if (rng.chance(0.1)) svc.loadBalancerIPs.push(lbPool.next());
      if (rng.chance(o.sourceRangeShare)) {
        const count = 1 + rng.int(3);
        for (let i = 0; i < count; i++) {
          const r = rng.pick(SOURCE_RANGES);
          if (!svc.loadBalancerSourceRanges.includes(r)) svc.loadBalancerSourceRanges.push(r);
        }
      }
    }
    const externallyReachable = svc.type !== 'ClusterIP' || svc.externalIPs.length > 0;
    if (externallyReachable && rng.chance(o.localPolicyShare)) svc.externalTrafficPolicy = 'Local';
    if (!headless && rng.chance(o.localPolicyShare / 10)) svc.internalTrafficPolicy = 'Local';
    if (svc.type === 'LoadBalancer' && svc.externalTrafficPolicy === 'Local') {
      svc.healthCheckNodePort = nodePort();
    }
    if (!headless && rng.chance(o.affinityShare)) {
      svc.sessionAffinity = 'ClientIP';
      svc.affinityTimeoutSeconds = rng.chance(0.8) ? 10800 : rng.pick([600, 3600, 86400]);
    }

    // Endpoint plan.
    const noEndpoints = rng.chance(o.noEndpointShare);
    const u = rng.next();
    const count = noEndpoints && rng.chance(0.6) ? 0 : 1 + Math.floor(maxEndpoints * u * u);
    const usesLocal = svc.externalTrafficPolicy === 'Local' || svc.internalTrafficPolicy === 'Local';
    const terminating = !noEndpoints && rng.chance(o.terminatingShare) ? 1 + rng.int(2) : 0;
    plans.push({
      svc,
      endpointCount: count,
      forceLocal: usesLocal && count > 0 && rng.chance(0.5),
      notReady: noEndpoints,
      terminating,
      onlyTerminating: terminating > 0 && rng.chance(0.1),
    });
  }

  // Nodes: about 110 pods each, a /24 of the cluster CIDR each (or as many as asked for, with
  // the CIDR split evenly: hosts .2 to the block's last but one, as for a /24).
  let totalPods = 0;
  for (const p of plans) totalPods += p.endpointCount + p.terminating;
  const nodeCount = opts.nodes ?? Math.min(MAX_NODES, Math.max(3, Math.ceil(totalPods / 110)));
  const podBlock = opts.nodes === undefined ? 256 : 2 ** Math.min(8 + Math.floor(Math.log2(MAX_NODES / nodeCount)), 16);
  const podsPerNode = opts.nodes === undefined ? PODS_PER_NODE_CIDR : podBlock - 3;
  const podBase = ipToInt('10.244.0.0');
  const nodes: string[] = [];
  for (let i = 0; i < nodeCount; i++) nodes.push(`node-${String(i + 1).padStart(3, '0')}`);
  const nextPodHost = new Array<number>(nodeCount).fill(2);
  const allocatedPods: { ip: string; node: number }[] = [];

  const podIP = (preferredNode: number): { ip: string; node: number } => {
    for (let k = 0; k < nodeCount; k++) {
      const node = (preferredNode + k) % nodeCount;
      if (nextPodHost[node] < 2 + podsPerNode) {
        const pod = { ip: intToIp(podBase + node * podBlock + nextPodHost[node]++), node };
        allocatedPods.push(pod);
        return pod;
      }
    }
    // The cluster CIDR is full: this pod backs several Services.
    return rng.pick(allocatedPods);
  };

  for (const plan of plans) {
    const { svc } = plan;
    if (svc.namespace === 'default' && svc.name === 'kubernetes') {
      for (let i = 0; i < Math.min(3, nodeCount); i++) {
        svc.endpoints.push({
          ip: nodeIP(i),
          port: 6443,
          ready: true,
          serving: true,
          terminating: false,
          nodeName: '',
          podName: '',
        });
      }
      continue;
    }
    const firstTarget = svc.ports[0]?.targetPort ?? 0;
    const replicaSet = `${svc.name}-${suffix(rng, 9)}`;
    const total = plan.endpointCount + plan.terminating;
    for (let i = 0; i < total; i++) {
      const preferred = i === 0 && plan.forceLocal ? 0 : rng.int(nodeCount);
      const pod = podIP(preferred);
      const isTerminating = i >= plan.endpointCount || plan.onlyTerminating;
      const serving = plan.onlyTerminating ? true : isTerminating ? rng.chance(0.5) : !plan.notReady;
      svc.endpoints.push({
        ip: pod.ip,
        port: firstTarget,
        ready: !isTerminating && !plan.notReady,
        serving,
        terminating: isTerminating,
        nodeName: nodes[pod.node],
        podName: `${replicaSet}-${suffix(rng, 5)}`,
      });
    }
  }

  const services = plans.map((p) => p.svc);
  services.sort((a, b) => byteCompare(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`));
  return {
    nodeName: nodes[0],
    nodeIPs: [nodeIP(0)],
    clusterCIDR: CLUSTER_CIDR,
    serviceCIDR: SERVICE_CIDR,
    nodes,
    services,
    masqueradeMark: '0x4000',
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

// ---------------------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------------------

const CREATED = '2024-01-01T00:00:00Z';

function uid(kind: string, key: string): string {
  const h = createHash('sha256').update(`${kind}/${key}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function sliceSuffix(key: string): string {
  const h = createHash('sha256').update(`slice/${key}`).digest();
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let s = '';
  for (let i = 0; i < 5; i++) s += alphabet[h[i] % alphabet.length];
  return s;
}

/**
 * `kubectl get services,endpointslices -A -o json`: a v1 List with every Service, then
 * every EndpointSlice (at most 100 endpoints each, one group per endpoint port set).
 */
export function renderManifests(cluster: GenCluster): string {
  const services: unknown[] = [];
  const slices: { key: string; obj: unknown }[] = [];
  let resourceVersion = 1000;

  for (const svc of cluster.services) {
    const key = `${svc.namespace}/${svc.name}`;
    const headless = !isProxied(svc);
    const externallyReachable = svc.type !== 'ClusterIP' || svc.externalIPs.length > 0;
    const spec: Record<string, unknown> = {};
    if (svc.type === 'LoadBalancer') spec.allocateLoadBalancerNodePorts = svc.ports.every((p) => p.nodePort !== undefined);
    spec.clusterIP = headless ? 'None' : svc.clusterIP;
    spec.clusterIPs = [headless ? 'None' : svc.clusterIP];
    if (svc.externalIPs.length > 0) spec.externalIPs = [...svc.externalIPs];
    if (externallyReachable) spec.externalTrafficPolicy = svc.externalTrafficPolicy;
    if (svc.healthCheckNodePort !== undefined && svc.type === 'LoadBalancer' && svc.externalTrafficPolicy === 'Local') {
      spec.healthCheckNodePort = svc.healthCheckNodePort;
    }
    spec.internalTrafficPolicy = svc.internalTrafficPolicy;
    spec.ipFamilies = ['IPv4'];
    spec.ipFamilyPolicy = 'SingleStack';
    if (svc.loadBalancerSourceRanges.length > 0) spec.loadBalancerSourceRanges = [...svc.loadBalancerSourceRanges];
    spec.ports = svc.ports.map((p) => {
      const port: Record<string, unknown> = {};
      if (p.name !== '') port.name = p.name;
      if (p.nodePort !== undefined && svc.type !== 'ClusterIP') port.nodePort = p.nodePort;
      port.port = p.port;
      port.protocol = p.protocol;
      port.targetPort = p.targetPort;
      return port;
    });
    const isApiserver = svc.namespace === 'default' && svc.name === 'kubernetes';
    if (!isApiserver) spec.selector = { app: svc.name };
    spec.sessionAffinity = svc.sessionAffinity;
    if (svc.sessionAffinity === 'ClientIP') {
      spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: svc.affinityTimeoutSeconds } };
    }
    spec.type = svc.type;
    const labels: Record<string, string> = isApiserver
      ? { component: 'apiserver', provider: 'kubernetes' }
      : { app: svc.name };
    services.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        creationTimestamp: CREATED,
        labels,
        name: svc.name,
        namespace: svc.namespace,
        resourceVersion: String(resourceVersion++),
        uid: uid('Service', key),
      },
      spec,
      status: {
        loadBalancer:
          svc.type === 'LoadBalancer' && svc.loadBalancerIPs.length > 0
            ? { ingress: svc.loadBalancerIPs.map((ip) => ({ ip, ipMode: 'VIP' })) }
            : {},
      },
    });

    // EndpointSlices: endpoints grouped by their port set (the first port's number varies).
    const groups = new Map<number, GenEndpoint[]>();
    for (const e of svc.endpoints) {
      const g = groups.get(e.port);
      if (g) g.push(e);
      else groups.set(e.port, [e]);
    }
    if (groups.size === 0) groups.set(svc.ports[0]?.targetPort ?? 0, []);
    let sliceIndex = 0;
    for (const [firstPort, eps] of groups) {
      const chunks: GenEndpoint[][] = [];
      for (let i = 0; i < eps.length; i += 100) chunks.push(eps.slice(i, i + 100));
      if (chunks.length === 0) chunks.push([]);
      for (const chunk of chunks) {
        const sliceName = isApiserver ? 'kubernetes' : `${svc.name}-${sliceSuffix(`${key}#${sliceIndex}`)}`;
        sliceIndex++;
        const ports = svc.ports.map((p, i) => ({
          name: p.name,
          port: i === 0 ? firstPort : p.targetPort,
          protocol: p.protocol,
        }));
        const endpoints = chunk.map((e) => {
          const ep: Record<string, unknown> = {
            addresses: [e.ip],
            conditions: { ready: e.ready, serving: e.serving, terminating: e.terminating },
          };
          if (e.nodeName !== '') ep.nodeName = e.nodeName;
          if (e.podName !== '') {
            ep.targetRef = { kind: 'Pod', name: e.podName, namespace: svc.namespace, uid: uid('Pod', `${svc.namespace}/${e.podName}`) };
          }
          return ep;
        });
        const labels: Record<string, string> = isApiserver
          ? { 'kubernetes.io/service-name': svc.name }
          : {
              app: svc.name,
              'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
              'kubernetes.io/service-name': svc.name,
            };
        if (!isApiserver && headless) labels['service.kubernetes.io/headless'] = '';
        const metadata: Record<string, unknown> = {
          creationTimestamp: CREATED,
        };
        if (!isApiserver) metadata.generateName = `${svc.name}-`;
        metadata.generation = 1;
        metadata.labels = labels;
        metadata.name = sliceName;
        metadata.namespace = svc.namespace;
        if (!isApiserver) {
          metadata.ownerReferences = [
            { apiVersion: 'v1', blockOwnerDeletion: true, controller: true, kind: 'Service', name: svc.name, uid: uid('Service', key) },
          ];
        }
        metadata.resourceVersion = String(resourceVersion++);
        metadata.uid = uid('EndpointSlice', `${svc.namespace}/${sliceName}`);
        slices.push({
          key: `${svc.namespace}/${sliceName}`,
          obj: {
            addressType: 'IPv4',
            apiVersion: 'discovery.k8s.io/v1',
            endpoints: endpoints.length > 0 ? endpoints : null,
            kind: 'EndpointSlice',
            metadata,
            ports,
          },
        });
      }
    }
  }

  slices.sort((a, b) => byteCompare(a.key, b.key));
  const list = {
    apiVersion: 'v1',
    items: [...services, ...slices.map((s) => s.obj)],
    kind: 'List',
    metadata: { resourceVersion: '' },
  };
  return `${JSON.stringify(list, null, 4)}\n`;
}

// ---------------------------------------------------------------------------------------
// A fleet: every node of one cluster, as kube-proxy on each writes it
// ---------------------------------------------------------------------------------------

export interface FleetNode {
  name: string;
  addresses: string[];
}

export interface FleetNodeDump extends FleetNode {
  dump: string;
}

/**
 * The first `count` nodes of the cluster (default all) with their addresses: `node-001` at
 * 192.168.0.10, `node-002` at 192.168.0.11, … (the node IPs `generateCluster` uses).
 */
export function fleetNodes(cluster: GenCluster, count: number = cluster.nodes.length): FleetNode[] {
  if (!Number.isInteger(count) || count < 1 || count > cluster.nodes.length) {
    throw new Error(`a fleet of ${count} nodes: the cluster has ${cluster.nodes.length} (generateCluster({ nodes }) sets how many)`);
  }
  return cluster.nodes.slice(0, count).map((name, i) => ({ name, addresses: [nodeIP(i)] }));
}

/**
 * The cluster seen from one of its nodes: what kube-proxy there renders. Its endpoints on that
 * node are the local ones (the KUBE-SVL chains of Local traffic policies, the "has no local
 * endpoints" drops elsewhere), and with `nodePortAddresses` its NodePorts listen on its own IPs.
 */
export function onNode(cluster: GenCluster, node: FleetNode): GenCluster {
  return { ...cluster, nodeName: node.name, nodeIPs: [...node.addresses] };
}

/** What `iptables-save` prints on one node of the fleet. */
export function renderFleetNode(cluster: GenCluster, node: FleetNode, opts: RenderOptions = {}): string {
  return renderIptablesSave(onNode(cluster, node), opts);
}

/**
 * Every node's dump (`nodes`: the first so many, default all). Holds every dump at once: for
 * big fleets render node by node with `fleetNodes` and `renderFleetNode`.
 */
export function renderFleet(cluster: GenCluster, opts: RenderOptions & { nodes?: number } = {}): FleetNodeDump[] {
  const { nodes, ...render } = opts;
  return fleetNodes(cluster, nodes).map((n) => ({ ...n, dump: renderFleetNode(cluster, n, render) }));
}

export interface FleetEdit {
  cluster: GenCluster;
  /** `ns/name` of the edited Services, in the order of the edits below. */
  changed: string[];
}

/** An address of the cluster CIDR no endpoint has: after the node's last pod, or down from the CIDR's top. */
function freePodIP(cluster: GenCluster, used: Set<string>, node: string): string {
  const cidr = parseCidr(cluster.clusterCIDR);
  let last = -1;
  for (const s of cluster.services) {
    for (const e of s.endpoints) if (e.nodeName === node) last = Math.max(last, ipToInt(e.ip));
  }
  const step = last >= 0 ? 1 : -1;
  for (let n = last >= 0 ? last + 1 : cidr.base + 2 ** (32 - cidr.bits) - 2; cidrContains(cidr, intToIp(n)); n += step) {
    const ip = intToIp(n);
    if (n % 256 !== 0 && n % 256 !== 255 && !used.has(ip)) return ip;
  }
  throw new Error(`no free pod IP left in ${cluster.clusterCIDR}`);
}

/**
 * The next version of a cluster after a small deploy: five Services changed, the same ones for
 * the same cluster. Spread over the Service list, among proxied Services with two or more
 * endpoints: (1) scaled down by one endpoint, (2) scaled up by one on the fleet's second node,
 * (3) its first port's number changed, (4) a Service with externalTrafficPolicy Local (if any)
 * gets an endpoint on the fleet's third node, (5) an endpoint starts terminating (not ready,
 * still serving). Every node's dump changes (the KUBE-SVC chains) and so do the manifests.
 */
export function editFiveServices(cluster: GenCluster): FleetEdit {
  const edited = structuredClone(cluster);
  const candidates = edited.services.filter(
    (s) => isProxied(s) && s.endpoints.length >= 2 && !(s.namespace === 'default' && s.name === 'kubernetes'),
  );
  if (candidates.length < 5) throw new Error('editFiveServices: fewer than five Services with two or more endpoints');
  const picked: GenService[] = [];
  for (let k = 0; k < 5; k++) {
    let i = Math.floor((k * candidates.length) / 5);
    while (picked.includes(candidates[i])) i = (i + 1) % candidates.length;
    picked.push(candidates[i]);
  }
  const local = candidates.find((s) => s.externalTrafficPolicy === 'Local' && !picked.includes(s));
  if (local !== undefined) picked[3] = local;

  const used = new Set<string>();
  for (const s of edited.services) for (const e of s.endpoints) used.add(e.ip);
  const addEndpoint = (svc: GenService, node: string, tag: string): void => {
    const ip = freePodIP(edited, used, node);
    used.add(ip);
    const template = svc.endpoints[0];
    svc.endpoints.push({ ...template, ip, ready: true, serving: true, terminating: false, nodeName: node, podName: `${svc.name}-${tag}` });
  };
  const nodeAt = (i: number): string => edited.nodes[i % edited.nodes.length];

  picked[0].endpoints.pop();
  addEndpoint(picked[1], nodeAt(1), 'v2scale');
  const port = picked[2].ports[0];
  port.port = Math.max(...picked[2].ports.map((p) => p.port)) + 1;
  addEndpoint(picked[3], nodeAt(2), 'v2local');
  const leaving = picked[4].endpoints.find((e) => e.ready) ?? picked[4].endpoints[0];
  Object.assign(leaving, { ready: false, serving: true, terminating: true });

  return { cluster: edited, changed: picked.map((s) => `${s.namespace}/${s.name}`) };
}
