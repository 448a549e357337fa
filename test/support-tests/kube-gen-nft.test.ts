import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fixture } from '../helpers.ts';
import { blankService, generateCluster } from '../support/kube-gen.ts';
import type { GenCluster, GenEndpoint, GenService } from '../support/kube-gen.ts';
import { buildNftables, nftChainName, nftEndpointChainName, renderNftables } from '../support/kube-gen-nft.ts';
import { kernelSupport } from '../support/kernel.ts';
import { NftKernelNode } from '../support/kernel-nft.ts';

/** The statements of an `nft -f` file, sorted: blank lines and `#` comments left out, as kube-proxy's test compares. */
function statements(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .sort();
}

function endpoint(ip: string, nodeName = 'other-node'): GenEndpoint {
  return { ip, port: 80, ready: true, serving: true, terminating: false, nodeName, podName: '' };
}

function service(namespace: string, name: string, clusterIP: string, over: Partial<GenService> = {}): GenService {
  return { ...blankService(namespace, name), clusterIP, ports: [{ name: 'p80', port: 80, protocol: 'TCP', targetPort: 80 }], ...over };
}

/** TestOverallNFTablesRules' proxier and Services (see test/fixtures/kube-proxy-nftables/PROVENANCE.md). */
function overallCluster(): GenCluster {
  const withNodePort = (n: number) => [{ name: 'p80', port: 80, protocol: 'TCP' as const, targetPort: 80, nodePort: n }];
  return {
    nodeName: 'test-node',
    nodeIPs: ['192.168.0.2'],
    clusterCIDR: '10.0.0.0/8',
    serviceCIDR: '172.30.0.0/16',
    nodes: ['test-node'],
    masqueradeMark: '0x4000',
    services: [
      service('ns1', 'svc1', '172.30.0.41', { endpoints: [endpoint('10.180.0.1')] }),
      service('ns2', 'svc2', '172.30.0.42', {
        type: 'LoadBalancer',
        ports: withNodePort(3001),
        externalIPs: ['192.168.99.22'],
        loadBalancerIPs: ['1.2.3.4'],
        externalTrafficPolicy: 'Local',
        healthCheckNodePort: 30000,
        endpoints: [endpoint('10.180.0.2')],
      }),
      service('ns3', 'svc3', '172.30.0.43', { type: 'NodePort', ports: withNodePort(3003), endpoints: [endpoint('10.180.0.3')] }),
      service('ns4', 'svc4', '172.30.0.44', { externalIPs: ['192.168.99.33'], endpoints: [endpoint('10.180.0.4'), endpoint('10.180.0.5')] }),
      service('ns5', 'svc5', '172.30.0.45', {
        type: 'LoadBalancer',
        ports: withNodePort(3002),
        loadBalancerIPs: ['5.6.7.8'],
        loadBalancerSourceRanges: [' 203.0.113.0/25'],
        sessionAffinity: 'ClientIP',
        endpoints: [endpoint('10.180.0.3')],
      }),
      service('ns6', 'svc6', '172.30.0.46'),
    ],
  };
}

describe('renderNftables', () => {
  it("writes exactly kube-proxy's expected ruleset for TestOverallNFTablesRules' Services", () => {
    const expected = statements(fixture('kube-proxy-nftables', 'overall', 'expected.nft'));
    const actual = statements(renderNftables(overallCluster()));
    const missing = expected.filter((l) => !actual.includes(l));
    const extra = actual.filter((l) => !expected.includes(l));
    assert.deepEqual({ missing, extra }, { missing: [], extra: [] });
  });

  it("names chains as kube-proxy does (hash of the rest of the name, IPv6 colons as dots)", () => {
    assert.equal(nftChainName('service', 'ns1', 'svc1', 'p80', 'TCP'), 'service-ULMVA6XW-ns1/svc1/tcp/p80');
    assert.equal(nftEndpointChainName('endpoint', 'ns1', 'svc1', 'p80', 'tcp', '10.180.0.1:80'), 'endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80');
    assert.equal(nftEndpointChainName('affinity', 'ns5', 'svc5', 'p80', 'tcp', '10.180.0.3:80'), 'affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80');
    assert.match(nftEndpointChainName('endpoint', 'a', 'b', '', 'udp', '[fd00::1]:53'), /^endpoint-[A-Z2-7]{8}-a\/b\/udp\/__fd00..1\/53$/);
  });

  it('gives every load-balanced Service port a numgen over exactly its usable endpoints, and sends the others to reject or drop', () => {
    const cluster = generateCluster({ seed: 11, services: 400, noEndpointShare: 0.1, localPolicyShare: 0.5, loadBalancerShare: 0.2 });
    const table = buildNftables(cluster);
    const chains = new Map(table.chains.map((c) => [c.name, c]));
    const serviceIPs = new Map(table.sets.find((s) => s.name === 'service-ips')!.elements.map((e) => [e.key, e.value]));
    const noEndpoint = new Map(table.sets.find((s) => s.name === 'no-endpoint-services')!.elements.map((e) => [e.key, e.value]));
    let checked = 0;
    for (const svc of cluster.services) {
      if (svc.clusterIP === 'None') continue;
      svc.ports.forEach((p, i) => {
        const key = `${svc.clusterIP} . ${p.protocol.toLowerCase()} . ${p.port}`;
        const ready = new Set(svc.endpoints.filter((e) => e.ready).map((e) => `${e.ip}:${i === 0 ? e.port : p.targetPort}`));
        if (svc.internalTrafficPolicy === 'Cluster' && ready.size > 0) {
          const target = serviceIPs.get(key);
          assert.equal(target, `goto ${nftChainName('service', svc.namespace, svc.name, p.name, p.protocol)}`, key);
          const numgen = chains.get(target.slice(5))!.rules.find((r) => r.startsWith('numgen'))!;
          assert.equal(numgen.split(' goto ').length - 1, ready.size, `${key}: ${numgen}`);
          assert.ok(numgen.startsWith(`numgen random mod ${ready.size} vmap`), numgen);
          checked++;
        }
        if (svc.endpoints.every((e) => !e.ready && !(e.serving && e.terminating))) {
          assert.equal(noEndpoint.get(key), 'goto reject-chain', key);
          assert.equal(serviceIPs.has(key), false, key);
        }
      });
    }
    assert.ok(checked > 300, `only ${checked} Service ports checked`);
  });

  it('writes an ip6 table for an IPv6 cluster', () => {
    const cluster: GenCluster = {
      ...overallCluster(),
      nodeIPs: ['2001:db8::2'],
      clusterCIDR: 'fd00:10::/64',
      serviceCIDR: 'fd00:30::/112',
      services: [
        service('ns1', 'svc1', 'fd00:30::41', { sessionAffinity: 'ClientIP', endpoints: [{ ...endpoint('fd00:10::1'), port: 80 }] }),
        service('ns2', 'svc2', 'fd00:30::42', { type: 'NodePort', ports: [{ name: '', port: 53, protocol: 'UDP', targetPort: 53, nodePort: 30053 }] }),
      ],
    };
    const text = renderNftables(cluster);
    assert.match(text, /^add table ip6 kube-proxy /);
    assert.ok(text.includes('ip6 daddr fd00:30::41 ip6 saddr != fd00:10::/64 jump mark-for-masquerade'));
    assert.ok(text.includes('meta l4proto tcp dnat to [fd00:10::1]:80'));
    assert.ok(text.includes('add element ip6 kube-proxy nodeport-ips { 2001:db8::2 }'));
    assert.ok(text.includes('add element ip6 kube-proxy no-endpoint-nodeports { udp . 30053 comment "ns2/svc2" : goto reject-chain }'));
    assert.ok(!/\bip (saddr|daddr)\b/.test(text), 'an IPv4 match in the ip6 table');
  });
});

/**
 * `nft list table` output with the order of creation taken out: sets, maps and chains sorted by
 * name, and the elements of each set sorted; the rules of a chain keep their order.
 */
function canonicalListing(text: string): string[] {
  const blocks: string[] = [];
  let current: string[] | null = null;
  for (const line of text.split('\n')) {
    if (/^\t(set|map|chain) \S+ \{$/.test(line)) current = [line.trim()];
    else if (line === '\t}' && current !== null) {
      const inner = current.slice(1).join('\n');
      const elements = /elements = \{([^}]*)\}/.exec(inner.replace(/\n\s*/g, ' '));
      const body = elements
        ? inner.replace(/elements = \{[\s\S]*\}/, `elements = { ${elements[1].split(',').map((e) => e.trim()).sort().join(', ')} }`)
        : inner;
      blocks.push(`${current[0]}\n${body}`);
      current = null;
    } else if (current !== null) current.push(line.trim());
  }
  return blocks.sort();
}

describe('renderNftables in the kernel', () => {
  let support: Awaited<ReturnType<typeof kernelSupport>>;
  let node: NftKernelNode | null = null;
  before(async () => {
    support = await kernelSupport();
    if (!support.ok) process.stderr.write(`\nKERNEL TESTS SKIPPED: ${support.reason}\n\n`);
    else node = await NftKernelNode.create({ nodeAddresses: ['192.168.0.10'], name: 'gen-nft' });
  });
  after(async () => {
    await node?.close();
  });

  it('every rendered ruleset is accepted by nft -c -f, in both forms and with every nodePortAddresses', async (t) => {
    if (!support.ok) return t.skip(`KERNEL TESTS SKIPPED: ${support.reason}`);
    for (const seed of [1, 2, 3]) {
      const cluster = generateCluster({ seed, services: 250, affinityShare: 0.2, loadBalancerShare: 0.15, sourceRangeShare: 0.5, externalIPShare: 0.1 });
      for (const form of ['commands', 'table'] as const) {
        for (const nodePortAddresses of ['primary', 'all', ['192.168.0.0/16']] as const) {
          const r = await node!.check(renderNftables(cluster, undefined, { form, nodePortAddresses }));
          assert.ok(r.ok, `seed ${seed}, ${form}, ${JSON.stringify(nodePortAddresses)}: ${r.message}`);
        }
      }
    }
    const v6 = renderNftables({ ...overallCluster(), nodeIPs: ['2001:db8::2'], clusterCIDR: 'fd00:10::/64', serviceCIDR: 'fd00:30::/112', services: [service('a', 'b', 'fd00:30::1', { endpoints: [endpoint('fd00:10::1')] })] });
    const r6 = await node!.check(v6);
    assert.ok(r6.ok, r6.message);
  });

  it('the command form and the table form load into the same ruleset', async (t) => {
    if (!support.ok) return t.skip(`KERNEL TESTS SKIPPED: ${support.reason}`);
    const cluster = generateCluster({ seed: 5, services: 200, affinityShare: 0.2, loadBalancerShare: 0.15, sourceRangeShare: 0.5 });
    await node!.load(renderNftables(cluster));
    const fromCommands = await node!.listLoaded();
    await node!.load(renderNftables(cluster, undefined, { form: 'table' }));
    const fromTable = await node!.listLoaded();
    assert.ok(fromCommands.includes('numgen random mod'));
    assert.equal(fromTable, fromCommands);
  });

  it("kube-proxy's own expected ruleset and ours load into the same ruleset", async (t) => {
    if (!support.ok) return t.skip(`KERNEL TESTS SKIPPED: ${support.reason}`);
    // The expected file adds some chains after rules that jump to them; nft -f needs them first.
    const lines = fixture('kube-proxy-nftables', 'overall', 'expected.nft').split('\n');
    const reordered = [...lines.filter((l) => /^add (table|set|map|chain) /.test(l)), ...lines.filter((l) => !/^add (table|set|map|chain) /.test(l))];
    await node!.load(reordered.join('\n'));
    const theirs = await node!.listLoaded();
    await node!.load(renderNftables(overallCluster()));
    const ours = canonicalListing(await node!.listLoaded());
    assert.ok(ours.length > 30, `only ${ours.length} sets, maps and chains listed`);
    assert.deepEqual(ours, canonicalListing(theirs));
  });
});
