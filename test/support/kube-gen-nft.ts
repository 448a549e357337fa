/**
 * What kube-proxy's nftables proxier writes for a generated cluster (see kube-gen.ts), for the
 * nftables differential tests and the bench.
 *
 * - `buildNftables(cluster, node?)` gives the table as data: sets and maps with their elements,
 *   chains with their rules.
 * - `renderNftables(cluster, node?, opts?)` prints it in the `nft -f` command form kube-proxy's own
 *   tests use (`add table …`, `add chain …`, `add rule …`, `add element …`), or with
 *   `form: 'table'` as one `table ip kube-proxy { … }` block; both load with `nft -f`.
 *
 * The layout is that of the expected rulesets in ../shared/conformance/kube-proxy-nftables/
 * (kube-proxy at kubernetes commit 81810de6, pkg/proxy/nftables/proxier.go): filter chains at
 * prerouting/output priority -110 for `firewall-check`, filter chains at 0 on input, forward and
 * output for `service-endpoints-check`, `nodeport-endpoints-check` and `cluster-ips-check`, nat
 * chains at -100 (prerouting, output) and 100 (postrouting). Settings as kube-proxy's defaults in
 * nftables mode: local-traffic detector ClusterCIDR, masqueradeAll off, `--nodeport-addresses`
 * `primary` (NodePorts on the node's own addresses only, never on 127.0.0.1: the `nodeport-ips`
 * set), masquerade mark from `cluster.masqueradeMark`.
 *
 * Which rules a Service port gets is decided by `planServicePort`, shared with the iptables
 * renderer, so both backends see the same endpoints, categories and traffic policies.
 *
 * Chain names are kube-proxy's: `service-`, `local-`, `external-`, `firewall-` + the first 8
 * characters of base32(sha256(base)) + `-` + base, with base `ns/name/proto/portName`; endpoint
 * chains and affinity sets add `__ip/port` (an IPv6 address with its colons written as dots).
 * A cluster whose ClusterIPs are IPv6 gets table `ip6 kube-proxy` and `ip6` matches.
 */
import { createHash } from 'node:crypto';
import { BlockList, isIPv6 } from 'node:net';
import { isProxied, planServicePort } from './kube-gen.ts';
import type { EndpointInfo, FleetNode, GenCluster, ServicePortPlan } from './kube-gen.ts';

export type NftFamily = 'ip' | 'ip6';

export interface NftBaseChain {
  type: 'filter' | 'nat';
  hook: 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
  priority: number;
}

export interface NftChain {
  name: string;
  base?: NftBaseChain;
  comment?: string;
  /** Rule texts as kube-proxy writes them (a trailing `comment "…"` included). */
  rules: string[];
}

export interface NftElement {
  /** The key, e.g. `10.96.0.1 . tcp . 443` or `tcp . 30080`. */
  key: string;
  /** The verdict of a map element, e.g. `goto service-…`; undefined in a set. */
  value?: string;
  comment?: string;
}

export interface NftSet {
  kind: 'set' | 'map';
  name: string;
  type: string;
  flags?: string;
  /** Seconds (affinity sets). */
  timeout?: number;
  comment?: string;
  elements: NftElement[];
}

export interface NftTable {
  family: NftFamily;
  name: 'kube-proxy';
  comment: string;
  sets: NftSet[];
  chains: NftChain[];
}

export interface NftRenderOptions {
  /** `commands` (default): `add …` lines as kube-proxy's tests list them; `table`: one table block. */
  form?: 'commands' | 'table';
  /**
   * kube-proxy's `--nodeport-addresses`: 'primary' (the default in nftables mode: the node's own
   * addresses), a list of CIDRs (the node addresses inside them), or 'all' (every local address but
   * loopback, through `fib daddr type local`; no `nodeport-ips` set).
   */
  nodePortAddresses?: 'primary' | 'all' | readonly string[];
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** The first 8 characters of base32(sha256(base)): the first 40 bits of the digest. */
function hash8(base: string): string {
  const d = createHash('sha256').update(base).digest();
  let bits = 0n;
  for (let i = 0; i < 5; i++) bits = (bits << 8n) | BigInt(d[i]);
  let out = '';
  for (let i = 7; i >= 0; i--) out += BASE32[Number((bits >> BigInt(5 * i)) & 31n)];
  return out;
}

/** hashAndTruncate: the hash in front; kube-proxy's names are far below the 240-character cut. */
function nameBase(base: string): string {
  return `${hash8(base)}-${base}`;
}

/** `ns/name/proto/portName`: the base of a Service port's chain names. */
function serviceBase(plan: ServicePortPlan): string {
  return `${plan.svc.namespace}/${plan.svc.name}/${plan.proto}/${plan.port.name}`;
}

/** `ip/port` for an endpoint `ip:port` (`[ip]:port`), the colons of an IPv6 address written as dots. */
function endpointPart(endpoint: string): string {
  const cut = endpoint.lastIndexOf(':');
  const ip = endpoint.slice(0, cut).replace(/^\[|\]$/g, '').replaceAll(':', '.');
  return `${ip}/${endpoint.slice(cut + 1)}`;
}

/** kube-proxy's nftables name for one of a Service port's chains, e.g. `service-ULMVA6XW-ns1/svc1/tcp/p80`. */
export function nftChainName(
  prefix: 'service' | 'local' | 'external' | 'firewall',
  namespace: string,
  name: string,
  portName: string,
  protocol: string,
): string {
  return `${prefix}-${nameBase(`${namespace}/${name}/${protocol.toLowerCase()}/${portName}`)}`;
}

/** kube-proxy's nftables name of an endpoint chain or affinity set; `endpoint` is `ip:port` (`[ip]:port` for IPv6). */
export function nftEndpointChainName(
  prefix: 'endpoint' | 'affinity',
  namespace: string,
  name: string,
  portName: string,
  protocol: string,
  endpoint: string,
): string {
  return `${prefix}-${nameBase(`${namespace}/${name}/${protocol.toLowerCase()}/${portName}__${endpointPart(endpoint)}`)}`;
}

/** Whether `ip` lies in `cidr` (either family; a bare address is a /32 or /128). */
function cidrHas(cidr: string, ip: string): boolean {
  const [net, len] = cidr.trim().split('/');
  const v6 = isIPv6(net);
  if (v6 !== isIPv6(ip)) return false;
  const list = new BlockList();
  list.addSubnet(net, len === undefined ? (v6 ? 128 : 32) : Number(len), v6 ? 'ipv6' : 'ipv4');
  return list.check(ip, v6 ? 'ipv6' : 'ipv4');
}

/** A CIDR as Go's IPNet.String() prints it (host bits cleared), for IPv4; IPv6 as written. */
function cidrText(cidr: string): string {
  const [net, len] = cidr.trim().split('/');
  if (isIPv6(net) || len === undefined) return cidr.trim();
  const bits = Number(len);
  const n = net.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  const size = 2 ** (32 - bits);
  const base = Math.floor(n / size) * size;
  return `${[24, 16, 8, 0].map((s) => Math.floor(base / 2 ** s) % 256).join('.')}/${bits}`;
}

const COMMENTS = {
  table: 'rules for kube-proxy',
  clusterIPs: 'Active ClusterIPs',
  nodePortIPs: 'IPs that accept NodePort traffic',
  firewallIPs: 'destinations that are subject to LoadBalancerSourceRanges',
  noEndpointNodePorts: 'vmap to drop or reject packets to service nodeports with no endpoints',
  noEndpointServices: 'vmap to drop or reject packets to services with no endpoints',
  serviceIPs: 'ClusterIP, ExternalIP and LoadBalancer IP traffic',
  serviceNodePorts: 'NodePort traffic',
  rejectChain: 'helper for @no-endpoint-services / @no-endpoint-nodeports',
} as const;

/** kube-proxy's table for the cluster as seen from `node` (default: the cluster's own node). */
export function buildNftables(cluster: GenCluster, node?: FleetNode, opts: NftRenderOptions = {}): NftTable {
  const nodeName = node?.name ?? cluster.nodeName;
  const nodeIPs = node?.addresses ?? cluster.nodeIPs;
  const v6 = cluster.services.some((s) => isProxied(s) && isIPv6(s.clusterIP));
  const family: NftFamily = v6 ? 'ip6' : 'ip';
  const addrType = v6 ? 'ipv6_addr' : 'ipv4_addr';
  const ipX = family;
  const mark = cluster.masqueradeMark;
  const npa = opts.nodePortAddresses ?? 'primary';
  const matchAll = npa === 'all';
  const noLocalhost = v6 ? 'ip6 daddr != ::1' : 'ip daddr != 127.0.0.0/8';

  const sets = new Map<string, NftSet>();
  const set = (kind: NftSet['kind'], name: string, type: string, comment?: string): NftSet => {
    const s: NftSet = { kind, name, type, elements: [] };
    if (comment !== undefined) s.comment = comment;
    sets.set(name, s);
    return s;
  };
  const clusterIPs = set('set', 'cluster-ips', addrType, COMMENTS.clusterIPs);
  const nodePortIPs = matchAll ? undefined : set('set', 'nodeport-ips', addrType, COMMENTS.nodePortIPs);
  const key3 = `${addrType} . inet_proto . inet_service : verdict`;
  const key2 = 'inet_proto . inet_service : verdict';
  const firewallIPs = set('map', 'firewall-ips', key3, COMMENTS.firewallIPs);
  const noEndpointNodePorts = set('map', 'no-endpoint-nodeports', key2, COMMENTS.noEndpointNodePorts);
  const noEndpointServices = set('map', 'no-endpoint-services', key3, COMMENTS.noEndpointServices);
  const serviceIPs = set('map', 'service-ips', key3, COMMENTS.serviceIPs);
  const serviceNodePorts = set('map', 'service-nodeports', key2, COMMENTS.serviceNodePorts);

  const chains = new Map<string, NftChain>();
  const chain = (name: string, base?: NftBaseChain, comment?: string): NftChain => {
    let c = chains.get(name);
    if (c === undefined) {
      c = { name, rules: [] };
      if (base !== undefined) c.base = base;
      if (comment !== undefined) c.comment = comment;
      chains.set(name, c);
    }
    return c;
  };
  const rule = (name: string, text: string): void => {
    chain(name).rules.push(text);
  };

  // Base chains: the filter chains that must see the destination before DNAT at dstnat - 10.
  chain('filter-prerouting-pre-dnat', { type: 'filter', hook: 'prerouting', priority: -110 });
  chain('filter-output-pre-dnat', { type: 'filter', hook: 'output', priority: -110 });
  chain('filter-forward', { type: 'filter', hook: 'forward', priority: 0 });
  chain('filter-input', { type: 'filter', hook: 'input', priority: 0 });
  chain('filter-output', { type: 'filter', hook: 'output', priority: 0 });
  chain('nat-prerouting', { type: 'nat', hook: 'prerouting', priority: -100 });
  chain('nat-output', { type: 'nat', hook: 'output', priority: -100 });
  chain('nat-postrouting', { type: 'nat', hook: 'postrouting', priority: 100 });
  for (const c of ['services', 'service-endpoints-check', 'nodeport-endpoints-check', 'cluster-ips-check', 'firewall-check', 'masquerading', 'mark-for-masquerade']) {
    chain(c);
  }
  chain('reject-chain', undefined, COMMENTS.rejectChain);

  rule('filter-prerouting-pre-dnat', 'ct state new jump firewall-check');
  rule('filter-output-pre-dnat', 'ct state new jump firewall-check');
  rule('filter-forward', 'ct state new jump service-endpoints-check');
  rule('filter-forward', 'ct state new jump cluster-ips-check');
  rule('filter-input', 'ct state new jump nodeport-endpoints-check');
  rule('filter-input', 'ct state new jump service-endpoints-check');
  rule('filter-output', 'ct state new jump service-endpoints-check');
  rule('filter-output', 'ct state new jump cluster-ips-check');
  rule('nat-prerouting', 'jump services');
  rule('nat-output', 'jump services');
  rule('nat-postrouting', 'jump masquerading');

  rule('cluster-ips-check', `${ipX} daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"`);
  rule('cluster-ips-check', `${ipX} daddr { ${cidrText(cluster.serviceCIDR)} } drop comment "Drop traffic to unallocated ClusterIPs"`);
  rule('firewall-check', `${ipX} daddr . meta l4proto . th dport vmap @firewall-ips`);
  rule('mark-for-masquerade', `mark set mark or ${mark}`);
  rule('masquerading', `mark and ${mark} == 0 return`);
  rule('masquerading', `mark set mark xor ${mark}`);
  rule('masquerading', 'masquerade fully-random');
  rule('reject-chain', 'reject');
  rule('services', `${ipX} daddr . meta l4proto . th dport vmap @service-ips`);
  rule('service-endpoints-check', `${ipX} daddr . meta l4proto . th dport vmap @no-endpoint-services`);
  if (matchAll) {
    rule('services', `fib daddr type local ${noLocalhost} meta l4proto . th dport vmap @service-nodeports`);
    rule('nodeport-endpoints-check', `${noLocalhost} meta l4proto . th dport vmap @no-endpoint-nodeports`);
  } else {
    rule('services', `${ipX} daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports`);
    rule('nodeport-endpoints-check', `${ipX} daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports`);
    const cidrs = npa === 'primary' ? undefined : (npa);
    for (const ip of nodeIPs) {
      const address = ip.split('/')[0];
      // Localhost NodePorts are not supported in nftables mode: kube-proxy leaves loopback out.
      if (address.startsWith('127.') || address === '::1' || isIPv6(address) !== v6) continue;
      if (cidrs !== undefined && !cidrs.some((c) => cidrHas(c, address))) continue;
      nodePortIPs!.elements.push({ key: address });
    }
  }

  const affinitySets: NftSet[] = [];
  const seenClusterIPs = new Set<string>();
  for (const svc of cluster.services) {
    if (!isProxied(svc)) continue;
    for (let i = 0; i < svc.ports.length; i++) {
      const plan = planServicePort(svc, i, nodeName, () => '');
      const base = serviceBase(plan);
      const named = (ep: EndpointInfo, prefix: 'endpoint' | 'affinity') => `${prefix}-${nameBase(`${base}__${endpointPart(ep.str)}`)}`;
      const clusterPolicyChain = `service-${nameBase(base)}`;
      const localPolicyChain = `local-${nameBase(base)}`;
      const externalChain = `external-${nameBase(base)}`;
      const fwChain = `firewall-${nameBase(base)}`;
      const internalTrafficChain = plan.internalPolicyLocal ? localPolicyChain : clusterPolicyChain;
      const externalPolicyChain = plan.externalPolicyLocal ? localPolicyChain : clusterPolicyChain;
      const affinity = svc.sessionAffinity === 'ClientIP';
      const { proto, spn } = plan;
      const port = plan.port.port;

      if (!seenClusterIPs.has(svc.clusterIP)) {
        seenClusterIPs.add(svc.clusterIP);
        clusterIPs.elements.push({ key: svc.clusterIP });
      }

      // Chains first, so that every rule and element below refers to a chain that exists.
      for (const ep of plan.cat.reachable) chain(named(ep, 'endpoint'));
      if (plan.usesClusterPolicyChain) chain(clusterPolicyChain);
      if (plan.usesLocalPolicyChain) chain(localPolicyChain);
      if (plan.usesExternalTrafficChain) chain(externalChain);
      const usesFWChain = plan.lbVIPs.length > 0 && svc.loadBalancerSourceRanges.length > 0;
      if (usesFWChain) chain(fwChain);

      let internalVerdict = '';
      let externalVerdict = '';
      if (!plan.hasEndpoints) {
        internalVerdict = externalVerdict = 'goto reject-chain';
      } else {
        if (!plan.hasInternalEndpoints) internalVerdict = 'drop';
        if (!plan.hasExternalEndpoints) externalVerdict = 'drop';
      }

      // The ClusterIP.
      if (plan.hasInternalEndpoints) {
        serviceIPs.elements.push({ key: `${svc.clusterIP} . ${proto} . ${port}`, value: `goto ${internalTrafficChain}` });
      } else {
        noEndpointServices.elements.push({ key: `${svc.clusterIP} . ${proto} . ${port}`, value: internalVerdict, comment: spn });
      }

      // External IPs.
      for (const ip of svc.externalIPs) {
        if (plan.hasEndpoints) serviceIPs.elements.push({ key: `${ip} . ${proto} . ${port}`, value: `goto ${externalChain}` });
        if (!plan.hasExternalEndpoints) {
          noEndpointServices.elements.push({ key: `${ip} . ${proto} . ${port}`, value: externalVerdict, comment: spn });
        }
      }

      // LoadBalancerSourceRanges: the node's own address may reach a VIP-like LB address that loops back.
      if (usesFWChain) {
        const sources = svc.loadBalancerSourceRanges.map(cidrText);
        if (svc.loadBalancerSourceRanges.some((c) => nodeIPs[0] !== undefined && cidrHas(c, nodeIPs[0].split('/')[0]))) {
          sources.push(...plan.lbVIPs);
        }
        rule(fwChain, `${ipX} saddr != { ${sources.join(', ')} } drop`);
      }

      // Load-balancer ingress.
      for (const ip of plan.lbVIPs) {
        if (plan.hasEndpoints) serviceIPs.elements.push({ key: `${ip} . ${proto} . ${port}`, value: `goto ${externalChain}` });
        if (usesFWChain) firewallIPs.elements.push({ key: `${ip} . ${proto} . ${port}`, value: `goto ${fwChain}` });
      }
      if (!plan.hasExternalEndpoints) {
        for (const ip of plan.lbVIPs) {
          noEndpointServices.elements.push({ key: `${ip} . ${proto} . ${port}`, value: externalVerdict, comment: spn });
        }
      }

      // NodePorts (not subject to loadBalancerSourceRanges, as in iptables mode).
      if (plan.nodePort !== 0) {
        if (plan.hasEndpoints) serviceNodePorts.elements.push({ key: `${proto} . ${plan.nodePort}`, value: `goto ${externalChain}` });
        if (!plan.hasExternalEndpoints) {
          noEndpointNodePorts.elements.push({ key: `${proto} . ${plan.nodePort}`, value: externalVerdict, comment: spn });
        }
      }

      // Internal traffic from outside the pod network is masqueraded (ClusterCIDR detector).
      if (plan.hasInternalEndpoints) {
        rule(internalTrafficChain, `${ipX} daddr ${svc.clusterIP} ${ipX} saddr != ${cidrText(cluster.clusterCIDR)} jump mark-for-masquerade`);
      }

      if (plan.usesExternalTrafficChain) {
        if (!plan.externalPolicyLocal) {
          rule(externalChain, 'jump mark-for-masquerade');
        } else {
          rule(externalChain, `${ipX} saddr ${cidrText(cluster.clusterCIDR)} goto ${clusterPolicyChain} comment "short-circuit pod traffic"`);
          rule(externalChain, 'fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"');
          rule(externalChain, `fib saddr type local goto ${clusterPolicyChain} comment "short-circuit local traffic"`);
        }
        if (plan.hasExternalEndpoints) rule(externalChain, `goto ${externalPolicyChain}`);
      }

      if (affinity) {
        for (const ep of plan.cat.reachable) {
          const s: NftSet = { kind: 'set', name: named(ep, 'affinity'), type: addrType, flags: 'dynamic,timeout', timeout: svc.affinityTimeoutSeconds, elements: [] };
          affinitySets.push(s);
        }
      }

      const toEndpoints = (svcChain: string, endpoints: EndpointInfo[]): void => {
        if (affinity) {
          for (const ep of endpoints) rule(svcChain, `${ipX} saddr @${named(ep, 'affinity')} goto ${named(ep, 'endpoint')}`);
        }
        const branches = endpoints.map((ep, k) => `${k} : goto ${named(ep, 'endpoint')}`);
        rule(svcChain, `numgen random mod ${endpoints.length} vmap { ${branches.join(' , ')} }`);
      };
      if (plan.usesClusterPolicyChain) toEndpoints(clusterPolicyChain, plan.cat.cluster);
      if (plan.usesLocalPolicyChain) toEndpoints(localPolicyChain, plan.cat.local);

      for (const ep of plan.cat.reachable) {
        const name = named(ep, 'endpoint');
        // Hairpin: a pod reaching itself through the Service is masqueraded.
        rule(name, `${ipX} saddr ${ep.ip} jump mark-for-masquerade`);
        if (affinity) rule(name, `update @${named(ep, 'affinity')} { ${ipX} saddr }`);
        rule(name, `meta l4proto ${proto} dnat to ${ep.str}`);
      }
    }
  }

  return {
    family,
    name: 'kube-proxy',
    comment: COMMENTS.table,
    sets: [...sets.values(), ...affinitySets],
    chains: [...chains.values()],
  };
}

function quote(text: string): string {
  return `"${text}"`;
}

function elementText(e: NftElement): string {
  const comment = e.comment === undefined ? '' : ` comment ${quote(e.comment)}`;
  return e.value === undefined ? `${e.key}${comment}` : `${e.key}${comment} : ${e.value}`;
}

function setProperties(s: NftSet): string[] {
  const props = [`type ${s.type}`];
  if (s.flags !== undefined) props.push(`flags ${s.flags}`);
  if (s.timeout !== undefined) props.push(`timeout ${s.timeout}s`);
  if (s.comment !== undefined) props.push(`comment ${quote(s.comment)}`);
  return props;
}

function baseChainSpec(b: NftBaseChain): string {
  return `type ${b.type} hook ${b.hook} priority ${b.priority}`;
}

/**
 * The `nft -f` command form: the table, every set and map, every chain, every rule (in chain
 * order), then every element. Each `add chain` comes before any rule or element that names it,
 * as `nft -f` requires.
 */
function printCommands(t: NftTable): string {
  const where = `${t.family} ${t.name}`;
  const out = [`add table ${where} { comment ${quote(t.comment)} ; }`];
  for (const s of t.sets) out.push(`add ${s.kind} ${where} ${s.name} { ${setProperties(s).join(' ; ')} ; }`);
  for (const c of t.chains) {
    const props: string[] = [];
    if (c.base !== undefined) props.push(baseChainSpec(c.base));
    if (c.comment !== undefined) props.push(`comment ${quote(c.comment)}`);
    out.push(props.length === 0 ? `add chain ${where} ${c.name}` : `add chain ${where} ${c.name} { ${props.join(' ; ')} ; }`);
  }
  for (const c of t.chains) for (const r of c.rules) out.push(`add rule ${where} ${c.name} ${r}`);
  for (const s of t.sets) for (const e of s.elements) out.push(`add element ${where} ${s.name} { ${elementText(e)} }`);
  return `${out.join('\n')}\n`;
}

/** One `table <family> kube-proxy { … }` block, sets and maps with their elements inline. */
function printTable(t: NftTable): string {
  const out = [`table ${t.family} ${t.name} {`, `\tcomment ${quote(t.comment)}`];
  for (const s of t.sets) {
    out.push(`\t${s.kind} ${s.name} {`);
    for (const p of setProperties(s)) out.push(`\t\t${p}`);
    if (s.elements.length > 0) out.push(`\t\telements = { ${s.elements.map(elementText).join(',\n\t\t\t     ')} }`);
    out.push('\t}');
  }
  for (const c of t.chains) {
    out.push('', `\tchain ${c.name} {`);
    if (c.base !== undefined) out.push(`\t\t${baseChainSpec(c.base)}; policy accept;`);
    if (c.comment !== undefined) out.push(`\t\tcomment ${quote(c.comment)}`);
    for (const r of c.rules) out.push(`\t\t${r}`);
    out.push('\t}');
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}

/** What kube-proxy (nftables mode) on `node` writes for the cluster, as `nft -f` input. */
export function renderNftables(cluster: GenCluster, node?: FleetNode, opts: NftRenderOptions = {}): string {
  const table = buildNftables(cluster, node, opts);
  return opts.form === 'table' ? printTable(table) : printCommands(table);
}
