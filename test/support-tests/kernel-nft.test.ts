// Tests of the nftables kernel oracle (test/support/kernel-nft.ts) with a small hand-written ruleset.
// Run: node --import tsx --test test/support-tests/kernel-nft.test.ts   (needs root; see kernel.ts for packages)
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { kernelSupport } from '../support/kernel.ts'
import { NftKernelNode, parseConntrackLine, parseListing, parseTraceLine, type NftProbe, type NftProbeResult } from '../support/kernel-nft.ts'

const NODE_IP = '192.168.49.2'
const CLIENT_IP = '192.168.49.100' // marked for masquerade by svc rule 1
const POD_IP = '10.244.3.7'

// A Service 10.96.0.10:80 split over two endpoints by numgen, ep2 sticky through a dynamic set,
// masquerade for packets marked 0x4000, and a forward chain that drops one address and rejects another.
const RULESET = `table ip demo {
  set sticky {
    type ipv4_addr
    flags dynamic,timeout
    timeout 1h
  }
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 10.96.0.10 tcp dport 80 jump svc
  }
  chain out {
    type nat hook output priority -100; policy accept;
    ip daddr 10.96.0.10 tcp dport 80 jump svc
  }
  chain svc {
    ip saddr ${CLIENT_IP} meta mark set 0x4000
    ip saddr @sticky goto ep2
    numgen random mod 2 vmap { 0 : goto ep1, 1 : goto ep2 }
  }
  chain ep1 {
    meta l4proto tcp dnat to 10.244.1.5:8080
  }
  chain ep2 {
    update @sticky { ip saddr }
    meta l4proto tcp dnat to 10.244.2.6:8080
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    meta mark & 0x00004000 == 0x00004000 masquerade
  }
  chain forward-check {
    type filter hook forward priority filter; policy accept;
    ip daddr 10.244.9.9 drop
    ip daddr 10.244.9.8 reject
  }
}
`

const steps = (r: NftProbeResult) => r.path.map((s) => `${s.chain}#${s.index}`)
const toService = (source: string, extra: Partial<NftProbe> = {}): NftProbe => ({
  source,
  destination: '10.96.0.10',
  port: 80,
  protocol: 'tcp',
  entry: source === NODE_IP ? 'OUTPUT' : 'PREROUTING',
  ...extra,
})

describe('parsers', () => {
  test('trace lines: rules with their text or by handle alone, policies, packets', () => {
    assert.deepEqual(parseTraceLine('trace id 5bab7574 ip kube-proxy services rule ip daddr . meta l4proto . th dport vmap @service-ips # handle 2990 (verdict goto service-X-a/b/tcp/)'), {
      id: '5bab7574', family: 'ip', table: 'kube-proxy', chain: 'services', kind: 'rule', handle: 2990,
      rule: 'ip daddr . meta l4proto . th dport vmap @service-ips', verdict: 'goto service-X-a/b/tcp/',
    })
    assert.deepEqual(parseTraceLine('trace id d8a9146b ip kube-proxy nat-prerouting unknown rule handle 2987 (verdict jump services)'), {
      id: 'd8a9146b', family: 'ip', table: 'kube-proxy', chain: 'nat-prerouting', kind: 'rule', handle: 2987, rule: '', verdict: 'jump services',
    })
    assert.deepEqual(parseTraceLine('trace id ad1c0715 ip kube-proxy filter-output policy accept meta mark 0x00004000 '), {
      id: 'ad1c0715', family: 'ip', table: 'kube-proxy', chain: 'filter-output', kind: 'policy', policy: 'accept',
    })
    assert.equal(parseTraceLine('trace id ad1c0715 inet t c packet: oif "lo" ip saddr 127.0.0.1')?.kind, 'packet')
    assert.equal(parseTraceLine('something else'), null)
  })

  test('conntrack lines: original and reply tuples', () => {
    const c = parseConntrackLine('tcp      6 119 SYN_SENT src=192.168.49.100 dst=10.96.0.10 sport=40000 dport=80 [UNREPLIED] src=10.244.1.5 dst=192.168.49.2 sport=8080 dport=61234 mark=16384 use=1')
    assert.deepEqual(c, {
      proto: 'tcp',
      orig: { src: '192.168.49.100', dst: '10.96.0.10', sport: 40000, dport: 80 },
      reply: { src: '10.244.1.5', dst: '192.168.49.2', sport: 8080, dport: 61234 },
    })
    assert.equal(parseConntrackLine('conntrack v1.4.7 (conntrack-tools): 1 flow entries have been shown.'), null)
  })

  test('listings: rules by chain in order, hooks, sets and chain comments skipped', () => {
    const chains = parseListing(`table ip kube-proxy { # handle 1
\tcomment "rules for kube-proxy"
\tset cluster-ips { # handle 2
\t\ttype ipv4_addr
\t\telements = { 10.96.0.1,
\t\t\t     10.96.0.10 }
\t}

\tchain nat-prerouting { # handle 3
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tjump services # handle 9
\t}

\tchain reject-chain { # handle 4
\t\tcomment "helper"
\t\treject # handle 10
\t\tip daddr 10.0.0.1 drop # handle 12
\t}
}
`)
    assert.deepEqual(chains, [
      { family: 'ip', table: 'kube-proxy', chain: 'nat-prerouting', hook: 'prerouting', rules: [{ handle: 9, rule: 'jump services' }] },
      { family: 'ip', table: 'kube-proxy', chain: 'reject-chain', rules: [{ handle: 10, rule: 'reject' }, { handle: 12, rule: 'ip daddr 10.0.0.1 drop' }] },
    ])
  })
})

describe('NftKernelNode', () => {
  let support: Awaited<ReturnType<typeof kernelSupport>>
  let node: NftKernelNode | null = null
  before(async () => {
    support = await kernelSupport()
    if (!support.ok) {
      process.stderr.write(`\nKERNEL TESTS SKIPPED: ${support.reason}\n\n`)
      return
    }
    node = await NftKernelNode.create({ nodeAddresses: [NODE_IP], name: 'nft-harness' })
    await node.load(RULESET)
  })
  after(async () => {
    await node?.close()
  })
  const skip = (t: { skip: (r: string) => void }) => {
    if (support.ok) return false
    t.skip(`KERNEL TESTS SKIPPED: ${support.reason}`)
    return true
  }

  test('a pod reaching the Service: the rules taken in order, the DNAT destination from conntrack, both endpoints seen', async (t) => {
    if (skip(t)) return
    const seen = new Set<string>()
    for (let i = 0; i < 30; i++) {
      const r = await node!.probe(toService(POD_IP))
      const ep = r.path.find((s) => s.chain === 'svc' && s.index === 3)?.verdict.replace('goto ', '')
      assert.ok(ep === 'ep1' || ep === 'ep2', `${steps(r)}`)
      const expected = ep === 'ep1'
        ? ['pre#1', 'svc#3', 'ep1#1']
        : ['pre#1', 'svc#3', 'ep2#1', 'ep2#2']
      assert.deepEqual(steps(r), expected)
      assert.deepEqual(r.destination, ep === 'ep1' ? { ip: '10.244.1.5', port: 8080 } : { ip: '10.244.2.6', port: 8080 })
      assert.equal(r.masquerade, false)
      assert.equal(r.verdict, 'accept')
      assert.deepEqual(r.chains, ['ip demo pre', 'ip demo forward-check', 'ip demo post'])
      assert.equal(r.path[0].rule, 'ip daddr 10.96.0.10 tcp dport 80 jump svc')
      seen.add(ep)
    }
    assert.equal(seen.size, 2)
  })

  test('a marked client is masqueraded: the mark rule, the masquerade rule and the rewritten reply tuple', async (t) => {
    if (skip(t)) return
    const r = await node!.probe(toService(CLIENT_IP))
    assert.deepEqual(steps(r).slice(0, 2), ['pre#1', 'svc#1'])
    assert.equal(r.path[1].verdict, 'continue')
    assert.deepEqual(steps(r).slice(-1), ['post#1'])
    assert.equal(r.masquerade, true)
    assert.ok(r.destination !== null)
  })

  test('traffic from the node itself starts in the output chain', async (t) => {
    if (skip(t)) return
    const r = await node!.probe(toService(NODE_IP))
    assert.equal(steps(r)[0], 'out#1')
    assert.ok(r.destination !== null)
  })

  test('drop and reject end the path with their verdicts and leave no connection', async (t) => {
    if (skip(t)) return
    const dropped = await node!.probe({ source: POD_IP, destination: '10.244.9.9', port: 80, protocol: 'tcp', entry: 'PREROUTING' })
    assert.deepEqual(steps(dropped), ['forward-check#1'])
    assert.equal(dropped.verdict, 'drop')
    assert.equal(dropped.destination, null)
    const rejected = await node!.probe({ source: POD_IP, destination: '10.244.9.8', port: 80, protocol: 'udp', entry: 'PREROUTING' })
    assert.deepEqual(steps(rejected), ['forward-check#2'])
    assert.equal(rejected.verdict, 'reject')
  })

  test('affinity: keepState lets the next connection find the client in the set; a fresh probe forgets it', async (t) => {
    if (skip(t)) return
    let first: NftProbeResult | null = null
    for (let i = 0; i < 40 && first === null; i++) {
      const r = await node!.probe(toService(POD_IP))
      if (r.destination?.ip === '10.244.2.6') first = r
    }
    assert.ok(first, 'numgen never chose ep2 in 40 probes')
    for (let i = 0; i < 5; i++) {
      const again = await node!.probe(toService(POD_IP, { keepState: true }))
      assert.deepEqual(steps(again), ['pre#1', 'svc#2', 'ep2#1', 'ep2#2'])
    }
    const fresh = await node!.probe(toService(POD_IP))
    assert.ok(!steps(fresh).includes('svc#2'), `${steps(fresh)}`)
  })
})
