/**
 * The order in which the kernel runs nftables base chains on a hook, across tables.
 *
 * Every base chain registers a netfilter hook function at its priority; the kernel keeps a hook's
 * functions sorted by priority (lower first) and runs them all (checked with `nft monitor trace`,
 * see netfilter-semantics.md, nftables section). Three rules shape the order:
 *  - Of two chains with the same priority, the one registered later runs first:
 *    nf_hook_entries_grow inserts a new entry before the first existing one whose priority is not
 *    lower than its own.
 *  - `type nat` chains do not register on the hook themselves. The NAT core registers one hook
 *    function per hook at its own place (NF_IP_PRI_NAT_DST −100 in prerouting and output,
 *    NF_IP_PRI_NAT_SRC +100 in input and postrouting) when the first nat chain of that hook
 *    appears, and runs the nat chains from there, ordered among themselves by priority
 *    (net/netfilter/nf_nat_core.c, nf_nat_inet_fn). So a nat chain at −150 still runs after a
 *    filter chain at −110.
 *  - A table of family `ip` sees IPv4 packets only, `ip6` IPv6 only, `inet` both; `arp`,
 *    `bridge` and `netdev` tables never see routed IP traffic on these hooks.
 */

export type NftHook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
export type IpFamily = 'ipv4' | 'ipv6';

/** What the ordering needs to know of a base chain. */
export interface BaseChainRegistration<C> {
  /** The table's family: ip, ip6, inet, arp, bridge, netdev. */
  readonly family: string;
  readonly type: string;
  readonly hook: string;
  readonly priority: number;
  /** Registration order: the chain's position among all base chains as the input created them. */
  readonly order: number;
  readonly chain: C;
}

/** One stop on a hook: a base chain, or the NAT core running every nat chain of the hook. */
export type HookSlot<C> =
  | { readonly kind: 'chain'; readonly priority: number; readonly chain: C }
  | { readonly kind: 'nat'; readonly priority: number; readonly chains: readonly C[] };

/** The priority of the NAT core's own hook function on each hook (nat chains are refused on forward). */
export const NAT_HOOK_PRIORITY: Readonly<Record<NftHook, number | null>> = {
  prerouting: -100,
  output: -100,
  input: 100,
  postrouting: 100,
  forward: null,
};

/** conntrack's hook priority (NF_IP_PRI_CONNTRACK): chains below it see packets before conntrack does. */
export const CONNTRACK_PRIORITY = -200;

/** Whether a table of this family sees packets of this IP family on the IP hooks. */
export function familySees(tableFamily: string, family: IpFamily): boolean {
  if (tableFamily === 'inet') return true;
  return family === 'ipv4' ? tableFamily === 'ip' : tableFamily === 'ip6';
}

/** Lower priority first; of equal priorities, the later registration first. */
function byKernelOrder(a: { priority: number; order: number }, b: { priority: number; order: number }): number {
  return a.priority - b.priority || b.order - a.order;
}

/** The base chains that run on `hook` for a packet of `family`, in the kernel's order. */
export function hookSchedule<C>(chains: readonly BaseChainRegistration<C>[], hook: NftHook, family: IpFamily): HookSlot<C>[] {
  const mine = chains.filter((c) => c.hook === hook && familySees(c.family, family));
  const nat = mine.filter((c) => c.type === 'nat').sort(byKernelOrder);
  const entries: { priority: number; order: number; slot: HookSlot<C> }[] = [];
  for (const c of mine) {
    if (c.type !== 'nat') entries.push({ priority: c.priority, order: c.order, slot: { kind: 'chain', priority: c.priority, chain: c.chain } });
  }
  const natPriority = NAT_HOOK_PRIORITY[hook];
  if (nat.length > 0 && natPriority !== null) {
    // The NAT core's hook function was registered with the hook's first nat chain.
    const order = Math.min(...nat.map((c) => c.order));
    entries.push({ priority: natPriority, order, slot: { kind: 'nat', priority: natPriority, chains: nat.map((c) => c.chain) } });
  }
  return entries.sort(byKernelOrder).map((e) => e.slot);
}
