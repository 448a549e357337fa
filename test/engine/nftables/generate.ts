/**
 * A quick kube-proxy-shaped nftables ruleset of any size, in the `nft -f` command form, for timing
 * the reader (the proper generator, written from kube-proxy's proxier, is test/support/kube-gen.ts).
 * Every Service has a ClusterIP, two endpoints and (the first 2,768) a NodePort, with the chains, maps and rules
 * kube-proxy's nftables mode writes for such a Service.
 */
export function kubeProxyCommands(services: number): string {
  const t = 'ip kube-proxy';
  const out: string[] = [
    `add table ${t} { comment "rules for kube-proxy" ; }`,
    `add set ${t} cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }`,
    `add map ${t} service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }`,
    `add map ${t} service-nodeports { type inet_proto . inet_service : verdict ; }`,
    `add chain ${t} mark-for-masquerade`,
    `add chain ${t} services`,
    `add chain ${t} nat-prerouting { type nat hook prerouting priority -100 ; }`,
    `add rule ${t} mark-for-masquerade mark set mark or 0x4000`,
    `add rule ${t} nat-prerouting jump services`,
    `add rule ${t} services ip daddr . meta l4proto . th dport vmap @service-ips`,
    `add rule ${t} services fib daddr type local meta l4proto . th dport vmap @service-nodeports`,
  ];
  for (let i = 0; i < services; i++) {
    const ip = `172.30.${i >> 8}.${i & 255}`;
    const name = `ns${i % 50}/svc${i}/tcp/p80`;
    const svc = `service-${hash(i)}-${name}`;
    const eps = [`10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`];
    const epChains = eps.map((ep) => `endpoint-${hash(i + 7)}-${name}__${ep}/8080`);
    out.push(`add chain ${t} ${svc}`);
    for (const c of epChains) out.push(`add chain ${t} ${c}`);
    out.push(`add rule ${t} ${svc} ip daddr ${ip} ip saddr != 10.0.0.0/8 jump mark-for-masquerade`);
    out.push(`add rule ${t} ${svc} numgen random mod 2 vmap { 0 : goto ${epChains[0]} , 1 : goto ${epChains[1]} }`);
    eps.forEach((ep, k) => {
      out.push(`add rule ${t} ${epChains[k]} ip saddr ${ep} jump mark-for-masquerade`);
      out.push(`add rule ${t} ${epChains[k]} meta l4proto tcp dnat to ${ep}:8080`);
    });
    out.push(`add element ${t} cluster-ips { ${ip} }`);
    out.push(`add element ${t} service-ips { ${ip} . tcp . 80 : goto ${svc} }`);
    // The NodePort range (30000-32767) has room for the first 2,768 Services only.
    if (i < 2768) out.push(`add element ${t} service-nodeports { tcp . ${30000 + i} : goto ${svc} }`);
  }
  return out.join('\n') + '\n';
}

function hash(i: number): string {
  return (i * 2654435761 >>> 0).toString(36).toUpperCase().padStart(8, 'A').slice(0, 8);
}
