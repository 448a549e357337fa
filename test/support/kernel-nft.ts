// Kernel oracle for nftables rulesets: loads a ruleset (`nft -f` input, either form) into the node
// namespace of a KernelNode (see kernel.ts for the two-namespace topology), sends one probe packet and
// reports the rules the kernel took, in the order it took them, as `nft monitor trace` prints them.
//
// How the path is read:
// - A table `inet svcpath_trace` hooks prerouting and output at priority -500 (before every other
//   base chain) and sets `meta nftrace set 1` on probe packets only: UDP datagrams and TCP SYNs
//   without ACK. The node's own answers (RSTs, ICMP errors) are never traced.
// - `nft -a monitor trace` runs in the node namespace for the node's lifetime and prints one line
//   per rule taken (`trace id … ip kube-proxy services rule … # handle 7 (verdict goto …)`), per
//   base-chain policy applied, and per base chain entered (`packet: …`).
// - The end of a probe's trace is found with a marker: after the probe, the node sends a UDP datagram
//   to 127.0.0.99:9, which the trace table traces and drops at once. Trace events reach the monitor in
//   the order the kernel emits them, and the probe's whole path has run by the time its send returns
//   (see kernel.ts), so every line before the marker's belongs to the probe.
// - Handles become positions with `nft -a list ruleset` after each load: a rule's index is its
//   1-based position in its chain as `nft list ruleset` lists it.
// - After the packet, `conntrack -L` gives the connection's reply tuple: its source is where DNAT
//   sent the packet, and a reply destination other than the probe's source means the source was
//   rewritten (masquerade). A packet dropped before conntrack confirms it leaves no entry.
//
// Before each probe (unless `keepState`), conntrack is flushed and every affinity set an earlier probe
// updated is emptied, so the kernel sees a client it has never seen.
import { KernelNode } from './kernel.ts'
import type { KernelNodeOptions, ProbePacket } from './kernel.ts'

export interface NftPathStep {
  /** `ip`, `ip6` or `inet` */
  family: string
  table: string
  chain: string
  handle: number
  /** 1-based position of the rule in its chain, as `nft list ruleset` lists it */
  index: number
  /** the rule as `nft list ruleset` prints it, without its handle */
  rule: string
  /** the verdict the trace printed for it: `continue`, `jump x`, `goto x`, `accept`, `drop`, `return` … */
  verdict: string
}

export interface NftPolicyStep {
  family: string
  table: string
  chain: string
  policy: string
}

export interface NftProbeResult {
  /** rules taken, in order (the harness' own tables left out) */
  path: NftPathStep[]
  /** base chains whose end the packet reached, and the policy applied there */
  policies: NftPolicyStep[]
  /** base chains entered, in order, as `family table chain` */
  chains: string[]
  /** what happened to the packet in the node */
  verdict: 'accept' | 'drop' | 'reject'
  /** where the connection goes after DNAT (conntrack's reply source); null when no entry was confirmed */
  destination: { ip: string; port: number } | null
  /** the source address or port was rewritten on the way out (conntrack's reply destination) */
  masquerade: boolean
  /** errno the sending socket saw, if any */
  sendError?: string
  sourcePort?: number
  /** the monitor's lines for this probe, for messages */
  trace: string[]
}

export interface NftProbe extends ProbePacket {
  /** keep conntrack and the affinity sets as the previous probes left them (default: start afresh) */
  keepState?: boolean
}

interface ListedRule {
  index: number
  rule: string
}

export interface ListedChain {
  family: string
  table: string
  chain: string
  hook?: string
  rules: Array<{ handle: number; rule: string }>
}

const MARKER = { address: '127.0.0.99', port: 9 }

const TRACE_NFT = `table inet svcpath_trace {
  chain pre {
    type filter hook prerouting priority -500; policy accept;
    meta l4proto udp meta nftrace set 1
    tcp flags & (syn | ack) == syn meta nftrace set 1
  }
  chain out {
    type filter hook output priority -500; policy accept;
    ip daddr ${MARKER.address} udp dport ${MARKER.port} meta nftrace set 1 drop
    meta l4proto udp meta nftrace set 1
    tcp flags & (syn | ack) == syn meta nftrace set 1
  }
}
`

/** The harness' own tables: never part of a probe's path. */
const OWN_TABLES = new Set(['inet svcpath_trace', 'inet svcpath_quiet'])

/** Parse `nft -a list ruleset`: every chain with its hook and its rules (handle and text) in order. */
export function parseListing(text: string): ListedChain[] {
  const chains: ListedChain[] = []
  let family = ''
  let table = ''
  let current: ListedChain | null = null
  let inSet = false
  let pending = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    const t = /^table (\S+) (\S+) \{/.exec(line)
    if (t) {
      family = t[1]
      table = t[2]
      continue
    }
    if (inSet) {
      if (line === '}') inSet = false
      continue
    }
    if (current === null) {
      if (/^(set|map|flowtable|counter|quota|limit|ct \S+|secmark|synproxy) \S+ \{/.test(line)) {
        inSet = true
        continue
      }
      const c = /^chain (\S+) \{/.exec(line)
      if (c) {
        current = { family, table, chain: c[1], rules: [] }
        chains.push(current)
      }
      continue
    }
    if (line === '}' && pending === '') {
      current = null
      continue
    }
    const base = /^type \S+ hook (\S+)/.exec(line)
    if (base && pending === '') {
      current.hook = base[1]
      continue
    }
    if (pending === '' && (line === '' || /^comment "[^"]*"$/.test(line) || /^policy \S+;$/.test(line))) continue
    pending = pending === '' ? line : `${pending} ${line}`
    const h = /^(.*?)\s*# handle (\d+)$/.exec(pending)
    if (h) {
      current.rules.push({ handle: Number(h[2]), rule: h[1] })
      pending = ''
    }
  }
  return chains
}

/** One line of `nft -a monitor trace`, or null for lines of another shape. */
export function parseTraceLine(line: string):
  | { id: string; family: string; table: string; chain: string; kind: 'packet' }
  | { id: string; family: string; table: string; chain: string; kind: 'rule'; handle: number; rule: string; verdict: string }
  | { id: string; family: string; table: string; chain: string; kind: 'policy'; policy: string }
  | { id: string; family: string; table: string; chain: string; kind: 'verdict'; verdict: string }
  | null {
  const m = /^trace id (\S+) (\S+) (\S+) (\S+) (packet: |rule |unknown rule |policy |verdict )(.*)$/.exec(line.trimEnd())
  if (!m) return null
  const [, id, family, table, chain, kind, rest] = m
  if (kind === 'packet: ') return { id, family, table, chain, kind: 'packet' }
  if (kind === 'policy ') return { id, family, table, chain, kind: 'policy', policy: rest.split(' ')[0] }
  if (kind === 'verdict ') return { id, family, table, chain, kind: 'verdict', verdict: rest.trim() }
  // The monitor reads the ruleset once, when it starts: a rule loaded after that is printed by
  // handle alone ("unknown rule handle 7"). The handle is all the harness uses.
  const r = kind === 'rule ' ? /^(.*?)\s*# handle (\d+) \(verdict (.*)\)$/.exec(rest) : /^()handle (\d+) \(verdict (.*)\)$/.exec(rest)
  if (!r) return null
  return { id, family, table, chain, kind: 'rule', handle: Number(r[2]), rule: r[1], verdict: r[3] }
}

/** The original and reply tuples of one `conntrack -L` line. */
export function parseConntrackLine(line: string): { proto: string; orig: Tuple; reply: Tuple } | null {
  const proto = /^(\w+)\s/.exec(line)?.[1]
  const pairs = [...line.matchAll(/\b(src|dst|sport|dport)=(\S+)/g)]
  if (!proto || pairs.length < 8) return null
  const tuple = (from: number): Tuple => {
    const t: Record<string, string> = {}
    for (const [, k, v] of pairs.slice(from, from + 4)) t[k] = v
    return { src: t.src, dst: t.dst, sport: Number(t.sport), dport: Number(t.dport) }
  }
  return { proto, orig: tuple(0), reply: tuple(4) }
}

interface Tuple {
  src: string
  dst: string
  sport: number
  dport: number
}

export class NftKernelNode {
  private lines: string[] = []
  private partial = ''
  private markersSeen = 0
  private waiters: Array<{ target: number; resolve: () => void }> = []
  private listed = new Map<string, ListedRule>()
  private loadedTables: string[] = []
  private dirtySets = new Set<string>()
  private monitorError = ''
  /** probes share the monitor and conntrack, so they run one at a time */
  private queue: Promise<unknown> = Promise.resolve()

  private constructor(readonly node: KernelNode) {}

  get nodeAddresses(): string[] {
    return this.node.nodeAddresses
  }

  /** A KernelNode with the trace table installed and `nft monitor trace` listening. */
  static async create(opts: KernelNodeOptions): Promise<NftKernelNode> {
    const node = await KernelNode.create(opts)
    const nft = new NftKernelNode(node)
    try {
      await node.execOk('nft', ['-f', '-'], TRACE_NFT, 5000)
      nft.startMonitor()
      await nft.waitUntilListening()
    } catch (e) {
      await node.close().catch(() => {})
      throw e
    }
    return nft
  }

  private startMonitor(): void {
    const child = this.node.spawnInNode('nft', ['-a', 'monitor', 'trace'])
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (d: string) => {
      const text = this.partial + d
      const parts = text.split('\n')
      this.partial = parts.pop() ?? ''
      for (const line of parts) this.onLine(line)
    })
    child.stderr.on('data', (d) => {
      this.monitorError = (this.monitorError + d).slice(-2000)
    })
  }

  private onLine(line: string): void {
    this.lines.push(line)
    const t = parseTraceLine(line)
    if (t && t.kind === 'rule' && t.table === 'svcpath_trace' && t.chain === 'out' && t.verdict === 'drop') {
      this.markersSeen++
      this.waiters = this.waiters.filter((w) => {
        if (this.markersSeen < w.target) return true
        w.resolve()
        return false
      })
    }
  }

  private sendMarker() {
    return this.node.send({ source: '127.0.0.1', destination: MARKER.address, port: MARKER.port, protocol: 'udp', entry: 'OUTPUT' })
  }

  private waitForMarker(target: number, timeoutMs: number): Promise<boolean> {
    if (this.markersSeen >= target) return Promise.resolve(true)
    return new Promise((resolve) => {
      const waiter = { target, resolve: () => resolve(true) }
      this.waiters.push(waiter)
      setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter)
        resolve(false)
      }, timeoutMs)
    })
  }

  /** The monitor subscribes some time after it starts: markers until one is seen (at most 5 s). */
  private async waitUntilListening(): Promise<void> {
    for (let i = 0; i < 50; i++) {
      const target = this.markersSeen + 1
      await this.sendMarker()
      if (await this.waitForMarker(target, 100)) return
    }
    throw new Error(`nft monitor trace in ${this.node.nodeNs} printed no trace within 5 s${this.monitorError ? `: ${this.monitorError}` : ''}`)
  }

  /** Load a ruleset with `nft -f`; tables loaded by an earlier call are deleted first. */
  async load(ruleset: string): Promise<void> {
    const tables = new Set<string>()
    for (const m of ruleset.matchAll(/^\s*(?:add )?table (ip6?|inet|arp|bridge|netdev) (\S+)/gm)) tables.add(`${m[1]} ${m[2]}`)
    for (const t of this.loadedTables) {
      await this.node.execOk('nft', ['delete', 'table', ...t.split(' ')], undefined, 30_000)
    }
    this.loadedTables = []
    const r = await this.node.exec('nft', ['-f', '-'], ruleset.endsWith('\n') ? ruleset : `${ruleset}\n`, 120_000)
    if (r.code !== 0) throw new Error(`nft -f failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 2000)}`)
    this.loadedTables = [...tables]
    this.dirtySets.clear()
    await this.relist()
  }

  /** `nft -c -f` of the ruleset in the node namespace: whether nft and the kernel take it, and what nft said if not. */
  async check(ruleset: string): Promise<{ ok: boolean; message: string }> {
    const r = await this.node.exec('nft', ['-c', '-f', '-'], ruleset.endsWith('\n') ? ruleset : `${ruleset}\n`, 120_000)
    return { ok: r.code === 0, message: (r.stderr || r.stdout).trim() }
  }

  /** `nft list ruleset` of the tables loaded (without handles), for comparing two loads. */
  async listLoaded(): Promise<string> {
    const out: string[] = []
    for (const t of this.loadedTables) out.push(await this.node.execOk('nft', ['list', 'table', ...t.split(' ')], undefined, 60_000))
    return out.join('')
  }

  /** Every chain of the loaded ruleset, as `nft -a list ruleset` shows it. */
  async chains(): Promise<ListedChain[]> {
    return parseListing(await this.node.execOk('nft', ['-a', 'list', 'ruleset'], undefined, 60_000))
  }

  private async relist(): Promise<void> {
    this.listed.clear()
    for (const c of await this.chains()) {
      c.rules.forEach((r, i) => this.listed.set(`${c.family} ${c.table} ${c.chain}#${r.handle}`, { index: i + 1, rule: r.rule }))
    }
  }

  /** Send one probe packet and report the path the kernel took. Concurrent calls are queued. */
  probe(p: NftProbe): Promise<NftProbeResult> {
    const run = this.queue.then(() => this.probeNow(p))
    this.queue = run.catch(() => {})
    return run
  }

  private async probeNow(p: NftProbe): Promise<NftProbeResult> {
    if (!p.keepState) await this.resetState()
    const start = this.lines.length
    const target = this.markersSeen + 1
    const sent = await this.node.send(p)
    await this.sendMarker()
    if (!(await this.waitForMarker(target, 5000))) {
      throw new Error(`the trace of a probe did not end within 5 s (monitor: ${this.monitorError || 'no error'})`)
    }
    const end = this.lines.findIndex((l, i) => {
      if (i < start) return false
      const t = parseTraceLine(l)
      return t?.kind === 'rule' && t.table === 'svcpath_trace' && t.chain === 'out' && t.verdict === 'drop'
    })
    const trace = this.lines.slice(start, end < 0 ? undefined : end)
    const markerId = end < 0 ? undefined : parseTraceLine(this.lines[end])?.id
    this.lines = this.lines.slice(end < 0 ? this.lines.length : end + 1)

    const path: NftPathStep[] = []
    const policies: NftPolicyStep[] = []
    const chains: string[] = []
    let verdict: NftProbeResult['verdict'] = 'accept'
    for (const line of trace) {
      const t = parseTraceLine(line)
      if (!t || t.id === markerId || OWN_TABLES.has(`${t.family} ${t.table}`)) continue
      if (t.kind === 'packet') chains.push(`${t.family} ${t.table} ${t.chain}`)
      else if (t.kind === 'policy') {
        policies.push({ family: t.family, table: t.table, chain: t.chain, policy: t.policy })
        if (t.policy === 'drop') verdict = 'drop'
      } else if (t.kind === 'rule') {
        const listed = this.listed.get(`${t.family} ${t.table} ${t.chain}#${t.handle}`)
        if (!listed) throw new Error(`the trace names rule handle ${t.handle} of ${t.family} ${t.table} ${t.chain}, which the listing does not have:\n${line}`)
        path.push({ family: t.family, table: t.table, chain: t.chain, handle: t.handle, index: listed.index, rule: listed.rule, verdict: t.verdict })
        const update = /\bupdate @(\S+)/.exec(listed.rule)
        if (update) this.dirtySets.add(`${t.family} ${t.table} ${update[1]}`)
        // reject answers the sender and then drops the packet: the trace prints it as drop.
        if (t.verdict === 'drop') verdict = /(^|\s)reject(\s|$)/.test(listed.rule) ? 'reject' : 'drop'
      }
    }

    const conntrack = await this.node.exec('conntrack', ['-L'], undefined, 5000)
    let destination: NftProbeResult['destination'] = null
    let masquerade = false
    for (const line of conntrack.stdout.split('\n')) {
      const c = parseConntrackLine(line)
      if (!c || c.proto !== p.protocol || c.orig.src !== p.source || c.orig.dst !== p.destination || c.orig.dport !== p.port) continue
      if (sent.localPort !== undefined && c.orig.sport !== sent.localPort) continue
      destination = { ip: c.reply.src, port: c.reply.sport }
      masquerade = c.reply.dst !== p.source || c.reply.dport !== c.orig.sport
    }

    const result: NftProbeResult = { path, policies, chains, verdict, destination, masquerade, sourcePort: sent.localPort, trace }
    if (sent.error) result.sendError = sent.error
    return result
  }

  /** A client the kernel has never seen: no connection entries, empty affinity sets. */
  async resetState(): Promise<void> {
    const flush = await this.node.exec('conntrack', ['-F'], undefined, 5000)
    if (flush.code !== 0 && !/emptied|0 flow entries/.test(flush.stderr + flush.stdout)) {
      throw new Error(`conntrack -F failed in ${this.node.nodeNs}: ${flush.stderr.trim()}`)
    }
    if (this.dirtySets.size === 0) return
    const commands = [...this.dirtySets].map((s) => `flush set ${s}`).join('\n')
    await this.node.execOk('nft', ['-f', '-'], `${commands}\n`, 10_000)
    this.dirtySets.clear()
  }

  /** Delete both namespaces (and end the monitor); safe to call more than once. */
  close(): Promise<void> {
    return this.node.close()
  }
}
