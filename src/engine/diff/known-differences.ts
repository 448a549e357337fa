/**
 * Where kube-proxy's nftables mode behaves differently from its iptables mode on purpose, for the
 * same Services and endpoints. A cross-backend diff reports a difference that matches one of these
 * as known, with its code and reason, instead of as an unexplained change.
 *
 * Sources: the Kubernetes documentation on migrating from iptables mode to nftables mode
 * (reference/networking/virtual-ips), KEP-3866, and kube-proxy's nftables proxier
 * (pkg/proxy/nftables/proxier.go: the `nodeport-ips` set, `cluster-ips-check`), checked here by
 * tracing the same generated cluster in both modes (test/engine/diff/backends.test.ts).
 *
 * Some are seen in a trace (a probe shows them: the diff sends the packet and compares), others
 * only in the rules (what a packet meets depends on other software on the node or on the kernel):
 * those are told per node when the rules show them.
 */
import { decodeNftChainName } from '../kube/nft-chain-names.ts';
import type { TraceOutcome, Verdict } from '../trace/tracer.ts';

export type KnownDifferenceCode =
  | 'NODEPORT_LOCALHOST'
  | 'CLUSTER_IP_OTHER_PORT'
  | 'SERVICE_CIDR_UNALLOCATED'
  | 'NODEPORT_ADDRESSES'
  | 'FORWARD_ACCEPT'
  | 'CONNTRACK_INVALID'
  | 'DROP_POINT'
  | 'FIREWALL_WITHOUT_ENDPOINTS';

export interface KnownDifferenceInfo {
  readonly code: KnownDifferenceCode;
  readonly reason: string;
}

export const KNOWN_DIFFERENCES: Readonly<Record<KnownDifferenceCode, string>> = Object.freeze({
  NODEPORT_LOCALHOST:
    'iptables mode accepts NodePort connections to 127.0.0.1 (kube-proxy sets net.ipv4.conf.all.route_localnet=1, '
    + '--iptables-localhost-nodeports, on by default); nftables mode has no equivalent and does not: clients on the node must use '
    + 'the node\'s address (recent kube-proxy versions offer an opt-in userspace proxy for this, which the rules do not show)',
  CLUSTER_IP_OTHER_PORT:
    'nftables mode rejects packets to a ClusterIP on a port that is not one of its Service ports (cluster-ips-check); '
    + 'iptables mode has no rule for them and lets the node route them',
  SERVICE_CIDR_UNALLOCATED:
    'nftables mode drops packets to addresses of the Service CIDR that no Service has (cluster-ips-check); '
    + 'iptables mode has no rule for them and lets the node route them',
  NODEPORT_ADDRESSES:
    'iptables mode here accepts NodePorts on every local address of the node (addrtype LOCAL); nftables mode only on the '
    + 'addresses in its nodeport-ips set (--nodeport-addresses, \'primary\' by default: the node\'s primary addresses). '
    + 'NodePorts on other addresses of the node (a second interface, a bridge, a virtual IP) stop answering',
  FORWARD_ACCEPT:
    'iptables mode accepts forwarded Service traffic in filter FORWARD (KUBE-FORWARD: marked packets and established '
    + 'connections), so that a host firewall with a DROP policy lets it through; nftables mode adds no accept rule: '
    + 'such a firewall must allow Service traffic itself',
  DROP_POINT:
    'both modes drop (or reject) the packet, at different points: nftables mode filters loadBalancerSourceRanges before '
    + 'DNAT, in prerouting (firewall-check, filter priority -110); iptables mode after routing, in filter FORWARD or INPUT '
    + '(KUBE-PROXY-FIREWALL), so the traces end in different hooks',
  FIREWALL_WITHOUT_ENDPOINTS:
    'a load balancer with loadBalancerSourceRanges and no endpoints: nftables mode still drops sources outside the ranges '
    + '(its firewall chain does not depend on endpoints) before the no-endpoint REJECT; iptables mode writes no firewall '
    + 'rules without endpoints, so every source is rejected',
  CONNTRACK_INVALID:
    'iptables mode drops forwarded packets conntrack calls INVALID (KUBE-FORWARD, a workaround for a kernel bug that reset '
    + 'long-lived connections); nftables mode installs no such rule: where the workaround is needed, run kube-proxy with '
    + '--conntrack-tcp-be-liberal',
});

export function known(code: KnownDifferenceCode): KnownDifferenceInfo {
  return { code, reason: KNOWN_DIFFERENCES[code] };
}

/** Outcomes whose packet is dropped or rejected are not delivered anywhere, whichever hook stopped them. */
function undelivered(outcomes: readonly TraceOutcome[]): TraceOutcome[] {
  return outcomes.map((o) => (o.verdict === 'DROP' || o.verdict === 'REJECT' ? { ...o, delivery: null } : o));
}

/**
 * The known difference a frontend's differing outcomes stand for, or null. `compare` is
 * compareOutcomes (DROP_POINT: the outcomes agree once a dropped packet's hook no longer counts).
 */
export function classifyFrontend(
  iptables: readonly TraceOutcome[], nftables: readonly TraceOutcome[],
  compare: (a: readonly TraceOutcome[], b: readonly TraceOutcome[]) => { readonly changes: readonly string[] },
): KnownDifferenceInfo | null {
  if (compare(undelivered(iptables), undelivered(nftables)).changes.length === 0) return known('DROP_POINT');
  const firewalled = nftables.every((o) => o.path.some((s) => decodeNftChainName(s.chain)?.kind === 'firewall'));
  if (only(iptables, 'REJECT') && only(nftables, 'DROP') && firewalled) return known('FIREWALL_WITHOUT_ENDPOINTS');
  return null;
}

/** Probes a cross-backend diff sends beside the frontends both modes list. */
export type ProbeKind = 'localhost-nodeport' | 'cluster-ip-other-port' | 'service-cidr-unallocated';

function verdictsOf(outcomes: readonly TraceOutcome[]): Set<Verdict> {
  return new Set(outcomes.map((o) => o.verdict));
}

function only(outcomes: readonly TraceOutcome[], v: Verdict): boolean {
  const s = verdictsOf(outcomes);
  return s.size === 1 && s.has(v);
}

/**
 * The known difference a probe's differing outcomes stand for, or null when they differ in
 * another way (then the change is reported as unexplained). `iptables` and `nftables` are the
 * outcomes on each side, whichever snapshot is A.
 */
export function classifyProbe(kind: ProbeKind, iptables: readonly TraceOutcome[], nftables: readonly TraceOutcome[]): KnownDifferenceInfo | null {
  const ipt = verdictsOf(iptables);
  switch (kind) {
    case 'localhost-nodeport':
      // iptables mode handles the packet as the NodePort's (DNAT, or the REJECT or DROP of a
      // Service without usable endpoints); nftables mode lets it through to whatever listens.
      return only(nftables, 'ACCEPT') && !only(iptables, 'ACCEPT') ? known('NODEPORT_LOCALHOST') : null;
    case 'cluster-ip-other-port':
      return only(nftables, 'REJECT') && !ipt.has('DNAT') && !ipt.has('REJECT') ? known('CLUSTER_IP_OTHER_PORT') : null;
    case 'service-cidr-unallocated':
      return only(nftables, 'DROP') && !ipt.has('DNAT') && !ipt.has('DROP') ? known('SERVICE_CIDR_UNALLOCATED') : null;
  }
}
