// Tests of the kernel oracle (test/support/kernel.ts) against a small hand-written kube-proxy dump.
// Run: node --import tsx --test test/support-tests/kernel.test.ts   (needs root; see kernel.ts for packages)
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { KernelNode, kernelSupport, parseCounters, diffCounters, type ProbeResult, type ProbePacket } from '../support/kernel.ts'

const NODE_IP = '192.168.49.2'
const CLIENT_IP = '192.168.49.100' // outside the cluster CIDR: gets masqueraded
const POD_IP = '10.244.3.7' // inside the cluster CIDR: not masqueraded
const SVC_IP = '10.96.0.10'
const EMPTY_SVC_IP = '10.96.0.99'
const DNS_IP = '10.96.0.53'

// What kube-proxy (iptables mode) writes for: default/web (ClusterIP 10.96.0.10:80/TCP → 10.244.1.5:8080,
// 10.244.2.6:8080), default/empty (10.96.0.99:80/TCP, no endpoints) and kube-system/dns (10.96.0.53:53/UDP
// → 10.244.1.9:53). Cluster CIDR 10.244.0.0/16.
const DUMP = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SERVICES - [0:0]
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A INPUT -j KUBE-FIREWALL
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-SERVICES -d 10.96.0.99/32 -p tcp -m comment --comment "default/empty:http has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-DNS0000000000000 - [0:0]
:KUBE-SEP-WEBA00000000000A - [0:0]
:KUBE-SEP-WEBB00000000000B - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-DNS0000000000000 - [0:0]
:KUBE-SVC-WEB0000000000000 - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-DNS0000000000000 -s 10.244.1.9/32 -m comment --comment "kube-system/dns:dns" -j KUBE-MARK-MASQ
-A KUBE-SEP-DNS0000000000000 -p udp -m comment --comment "kube-system/dns:dns" -m udp -j DNAT --to-destination 10.244.1.9:53
-A KUBE-SEP-WEBA00000000000A -s 10.244.1.5/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-WEBA00000000000A -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.1.5:8080
-A KUBE-SEP-WEBB00000000000B -s 10.244.2.6/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-WEBB00000000000B -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.2.6:8080
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-WEB0000000000000
-A KUBE-SERVICES -d 10.96.0.53/32 -p udp -m comment --comment "kube-system/dns:dns cluster IP" -m udp --dport 53 -j KUBE-SVC-DNS0000000000000
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-DNS0000000000000 ! -s 10.244.0.0/16 -d 10.96.0.53/32 -p udp -m comment --comment "kube-system/dns:dns cluster IP" -m udp --dport 53 -j KUBE-MARK-MASQ
-A KUBE-SVC-DNS0000000000000 -m comment --comment "kube-system/dns:dns -> 10.244.1.9:53" -j KUBE-SEP-DNS0000000000000
-A KUBE-SVC-WEB0000000000000 ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-WEB0000000000000 -m comment --comment "default/web:http -> 10.244.1.5:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-WEBA00000000000A
-A KUBE-SVC-WEB0000000000000 -m comment --comment "default/web:http -> 10.244.2.6:8080" -j KUBE-SEP-WEBB00000000000B
COMMIT
`

type Key = string // "table/chain#index"
const keysOf = (r: ProbeResult): Key[] => r.moved.map((m) => `${m.table}/${m.chain}#${m.index}`).sort()
const policiesOf = (r: ProbeResult): Key[] => r.policies.map((p) => `${p.table}/${p.chain}`).sort()
const sorted = (k: Key[]) => [...k].sort()

const SVC = 'nat/KUBE-SVC-WEB0000000000000'
const SEP_A = 'nat/KUBE-SEP-WEBA00000000000A'
const SEP_B = 'nat/KUBE-SEP-WEBB00000000000B'
const ENDPOINT_A = [`${SVC}#2`, `${SEP_A}#2`]
const ENDPOINT_B = [`${SVC}#3`, `${SEP_B}#2`]
const MASQ_POSTROUTING = ['nat/POSTROUTING#1', 'nat/KUBE-POSTROUTING#2', 'nat/KUBE-POSTROUTING#3']

/** Which endpoint the trace went to, after checking that it is exactly one of the two expected paths. */
function matchPath(r: ProbeResult, common: Key[], policies: Key[]): 'A' | 'B' {
  const got = keysOf(r)
  const a = sorted([...common, ...ENDPOINT_A])
  const b = sorted([...common, ...ENDPOINT_B])
  const which = JSON.stringify(got) === JSON.stringify(a) ? 'A' : JSON.stringify(got) === JSON.stringify(b) ? 'B' : null
  assert.ok(which, `moved rules are neither expected path:\n got ${got.join(' ')}\n A   ${a.join(' ')}\n B   ${b.join(' ')}`)
  assert.deepEqual(policiesOf(r), sorted(policies))
  for (const m of r.moved) assert.equal(m.packets, 1, `${m.table}/${m.chain}#${m.index} moved by ${m.packets}`)
  return which
}

const nftSupport = await kernelSupport('nft') // the default backend
if (!nftSupport.ok) process.stderr.write(`KERNEL TESTS SKIPPED: ${nftSupport.reason}\n`)
// The same checks against the legacy backend, when this kernel still has it.
const legacySupport = nftSupport.ok ? await kernelSupport('legacy') : nftSupport
if (nftSupport.ok && !legacySupport.ok) process.stderr.write(`KERNEL TESTS SKIPPED (legacy backend only): ${legacySupport.reason}\n`)

describe('parseCounters / diffCounters', () => {
  test('numbers rules per chain and reads policy counters', () => {
    const before = parseCounters(
      '# Generated\n*nat\n:PREROUTING ACCEPT [3:180]\n:KUBE-X - [0:0]\n[1:60] -A PREROUTING -j KUBE-X\n[0:0] -A KUBE-X -j RETURN\n[2:120] -A PREROUTING -p tcp -j ACCEPT\nCOMMIT\n',
    )
    assert.deepEqual(
      before.rules.map((r) => [r.table, r.chain, r.index, r.packets, r.rule]),
      [
        ['nat', 'PREROUTING', 1, 1, '-A PREROUTING -j KUBE-X'],
        ['nat', 'KUBE-X', 1, 0, '-A KUBE-X -j RETURN'],
        ['nat', 'PREROUTING', 2, 2, '-A PREROUTING -p tcp -j ACCEPT'],
      ],
    )
    assert.deepEqual(before.chains[0], { table: 'nat', chain: 'PREROUTING', policy: 'ACCEPT', packets: 3, bytes: 180 })
    const after = parseCounters(
      '*nat\n:PREROUTING ACCEPT [4:240]\n:KUBE-X - [0:0]\n[2:120] -A PREROUTING -j KUBE-X\n[1:60] -A KUBE-X -j RETURN\n[2:120] -A PREROUTING -p tcp -j ACCEPT\nCOMMIT\n',
    )
    const d = diffCounters(before, after)
    assert.deepEqual(
      d.moved.map((m) => [m.chain, m.index, m.packets]),
      [
        ['PREROUTING', 1, 1],
        ['KUBE-X', 1, 1],
      ],
    )
    assert.deepEqual(d.policies, [{ table: 'nat', chain: 'PREROUTING', packets: 1 }])
  })
})

for (const [backend, support] of [
  ['nft', nftSupport],
  ['legacy', legacySupport],
] as const) describe(`kernel oracle, ${backend} backend (real netfilter in network namespaces)`, () => {
  let node: KernelNode | undefined
  const timings = { create: 0, load: 0, probes: [] as number[] }

  async function timedProbe(node: KernelNode, p: ProbePacket): Promise<ProbeResult> {
    const t0 = performance.now()
    const r = await node.probe(p)
    timings.probes.push(performance.now() - t0)
    return r
  }

  before(async () => {
    if (!support.ok) return
    let t0 = performance.now()
    node = await KernelNode.create({ nodeAddresses: [NODE_IP], name: 'kernel-test', backend })
    timings.create = performance.now() - t0
    t0 = performance.now()
    await node.load(DUMP)
    timings.load = performance.now() - t0
  })

  after(async () => {
    if (!node) return
    const names = [node.nodeNs, node.peerNs]
    await node.close()
    await node.close() // twice is fine
    const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    for (const n of names) assert.ok(!left.includes(n), `namespace ${n} still exists after close()`)
    const n = timings.probes.length
    if (n) {
      const ps = [...timings.probes].sort((a, b) => a - b)
      const line =
        `kernel oracle timings (${support.ok ? support.backend : backend}): node setup ${timings.create.toFixed(0)} ms, load ${timings.load.toFixed(0)} ms, ` +
        `${n} probes: mean ${(ps.reduce((a, b) => a + b, 0) / n).toFixed(1)} ms, median ${ps[Math.floor(n / 2)].toFixed(1)} ms, max ${ps[n - 1].toFixed(1)} ms`
      process.stderr.write(line + '\n')
    }
  })

  const seen = { A: 0, B: 0 }

  test('ClusterIP from outside the cluster (PREROUTING): masquerade, DNAT to one endpoint, forwarded', async (t) => {
    if (!support.ok) return t.skip(support.reason)
    const common = [
      'nat/PREROUTING#1',
      'nat/KUBE-SERVICES#1',
      `${SVC}#1`,
      'nat/KUBE-MARK-MASQ#1',
      'filter/FORWARD#1',
      'filter/FORWARD#2',
      'filter/KUBE-FORWARD#2',
      ...MASQ_POSTROUTING,
    ]
    for (let i = 0; i < 20; i++) {
      const r = await timedProbe(node!, { source: CLIENT_IP, destination: SVC_IP, port: 80, protocol: 'tcp', entry: 'PREROUTING' })
      seen[matchPath(r, common, [])]++
    }
  })

  test('ClusterIP from the node itself (OUTPUT): masquerade, DNAT, filter OUTPUT policy', async (t) => {
    if (!support.ok) return t.skip(support.reason)
    const common = [
      'nat/OUTPUT#1',
      'nat/KUBE-SERVICES#1',
      `${SVC}#1`,
      'nat/KUBE-MARK-MASQ#1',
      'filter/OUTPUT#1',
      'filter/OUTPUT#2',
      'filter/OUTPUT#3',
      ...MASQ_POSTROUTING,
    ]
    for (let i = 0; i < 20; i++) {
      const r = await timedProbe(node!, { source: NODE_IP, destination: SVC_IP, port: 80, protocol: 'tcp', entry: 'OUTPUT' })
      seen[matchPath(r, common, ['filter/OUTPUT'])]++
    }
  })

  test('both endpoints are chosen over 40 probes', (t) => {
    if (!support.ok) return t.skip(support.reason)
    t.diagnostic(`endpoint A ${seen.A}, endpoint B ${seen.B}`)
    assert.equal(seen.A + seen.B, 40)
    assert.ok(seen.A > 0 && seen.B > 0, `one endpoint never chosen: ${JSON.stringify(seen)}`)
  })

  test('ClusterIP from a pod (PREROUTING): no masquerade, forwarded by the FORWARD policy', async (t) => {
    if (!support.ok) return t.skip(support.reason)
    const common = [
      'nat/PREROUTING#1',
      'nat/KUBE-SERVICES#1',
      'filter/FORWARD#1',
      'filter/FORWARD#2',
      'filter/FORWARD#3',
      'filter/FORWARD#4',
      'nat/POSTROUTING#1',
      'nat/KUBE-POSTROUTING#1',
    ]
    for (let i = 0; i < 4; i++) {
      const r = await timedProbe(node!, { source: POD_IP, destination: SVC_IP, port: 80, protocol: 'tcp', entry: 'PREROUTING' })
      // KUBE-POSTROUTING RETURNs (no 0x4000 mark): nat POSTROUTING falls through to its policy.
      matchPath(r, common, ['filter/FORWARD', 'nat/POSTROUTING'])
    }
  })

  test('UDP ClusterIP with one endpoint', async (t) => {
    if (!support.ok) return t.skip(support.reason)
    const r = await timedProbe(node!, { source: CLIENT_IP, destination: DNS_IP, port: 53, protocol: 'udp', entry: 'PREROUTING' })
    assert.deepEqual(
      keysOf(r),
      sorted([
        'nat/PREROUTING#1',
        'nat/KUBE-SERVICES#2',
        'nat/KUBE-SVC-DNS0000000000000#1',
        'nat/KUBE-MARK-MASQ#1',
        'nat/KUBE-SVC-DNS0000000000000#2',
        'nat/KUBE-SEP-DNS0000000000000#2',
        'filter/FORWARD#1',
        'filter/FORWARD#2',
        'filter/KUBE-FORWARD#2',
        ...MASQ_POSTROUTING,
      ]),
    )
    assert.deepEqual(r.policies, [])
  })

  test('service without endpoints: filter REJECT moves, forwarded (PREROUTING) and local (OUTPUT)', async (t) => {
    if (!support.ok) return t.skip(support.reason)
    for (let i = 0; i < 3; i++) {
      const fwd = await timedProbe(node!, { source: CLIENT_IP, destination: EMPTY_SVC_IP, port: 80, protocol: 'tcp', entry: 'PREROUTING' })
      assert.deepEqual(
        keysOf(fwd),
        sorted(['nat/PREROUTING#1', 'filter/FORWARD#1', 'filter/FORWARD#2', 'filter/FORWARD#3', 'filter/KUBE-SERVICES#1']),
      )
      // nat KUBE-SERVICES has no rule for it: nat PREROUTING falls through to its policy; the REJECT
      // ends the walk before nat POSTROUTING, and its ICMP error moves nothing.
      assert.deepEqual(policiesOf(fwd), ['nat/PREROUTING'])
      assert.match(fwd.moved.find((m) => m.chain === 'KUBE-SERVICES' && m.table === 'filter')!.rule, /-j REJECT/)

      const out = await timedProbe(node!, { source: NODE_IP, destination: EMPTY_SVC_IP, port: 80, protocol: 'tcp', entry: 'OUTPUT' })
      assert.deepEqual(keysOf(out), sorted(['nat/OUTPUT#1', 'filter/OUTPUT#1', 'filter/OUTPUT#2', 'filter/KUBE-SERVICES#1']))
      assert.deepEqual(policiesOf(out), ['nat/OUTPUT'])
    }
  })

  test('node port on the node address: local delivery, the RST answer moves nothing', async (t) => {
    if (!support.ok) return t.skip(support.reason)
    // A closed port on the node: the node answers with a RST, which the quiet table drops.
    const r = await timedProbe(node!, { source: CLIENT_IP, destination: NODE_IP, port: 31999, protocol: 'tcp', entry: 'PREROUTING' })
    assert.deepEqual(
      keysOf(r),
      sorted(['nat/PREROUTING#1', 'nat/KUBE-SERVICES#3', 'filter/INPUT#1', 'filter/INPUT#2', 'filter/INPUT#3', 'filter/INPUT#4']),
    )
    assert.deepEqual(policiesOf(r), ['filter/INPUT', 'nat/INPUT', 'nat/PREROUTING'])
  })

  test('a nat table with no NAT target is still walked (conntrack is on, as on any real node)', async (t) => {
    if (!support.ok) return t.skip(support.reason)
    // Without a conntrack user in the namespace the kernel skips the nat hooks entirely; the harness
    // switches conntrack on itself. This also checks that load() replaces the previous dump.
    await node!.load(`*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A OUTPUT -p udp -j RETURN
-A POSTROUTING -p tcp -j ACCEPT
COMMIT
`)
    const r = await timedProbe(node!, { source: NODE_IP, destination: '10.96.0.1', port: 53, protocol: 'udp', entry: 'OUTPUT' })
    assert.deepEqual(keysOf(r), ['nat/OUTPUT#1'])
    assert.deepEqual(policiesOf(r), ['nat/OUTPUT', 'nat/POSTROUTING'])
  })

  test('OUTPUT probes need a local source', async (t) => {
    if (!support.ok) return t.skip(support.reason)
    await assert.rejects(
      node!.probe({ source: CLIENT_IP, destination: SVC_IP, port: 80, protocol: 'tcp', entry: 'OUTPUT' }),
      /not local to the node/,
    )
  })
})
