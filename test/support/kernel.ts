// Kernel oracle for differential tests: loads an iptables-save dump into a real netfilter inside two
// private network namespaces, sends exactly one probe packet (the first packet of a new connection)
// and reports which rules' packet counters moved.
//
// Debian packages it needs (all on the dev machines already; CI can `apt-get install -y` them):
//   iproute2 iptables nftables conntrack
// (scripts/kernel-test-deps.sh installs them). No python, nc, socat or hping3: the probe packets are
// sent by a tiny Node agent (the same `node` binary that runs the tests) running inside each namespace.
//
// Topology (nothing is ever created in, or sent to, the root network namespace):
//
//   node ns  "svcpath-<pid>-<n>-node"            peer ns  "svcpath-<pid>-<n>-peer"
//   eth0 02:5c:00:00:00:01  <—— veth ——>         eth0 02:5c:00:00:00:02
//   node addresses (/32 unless given)            probe source addresses (/32, added on demand)
//   default via 169.254.239.2 onlink             default via 169.254.239.1 onlink
//   (static neighbour entries: no ARP at all; the gateway addresses are assigned to nobody)
//
// - The node ns has ip_forward=1, rp_filter=0, route_localnet=1, IPv6 disabled, and an nft table
//   `inet svcpath_quiet` at `hook output priority -400` dropping the node's own TCP RSTs and ICMP
//   errors (answers to closed ports, REJECT), so that replies never move counters. Probes are SYNs or
//   UDP datagrams, which that table never matches. The same table holds an unhooked `ct` rule whose
//   only effect is to switch conntrack on in the namespace, as it is on any real node: without a
//   conntrack user (a DNAT/MASQUERADE target or a conntrack match) the kernel skips the nat table.
// - The peer ns drops everything that arrives (nft `inet svcpath_peer`, prerouting priority -500),
//   so it never answers: DNATed/forwarded probes end there.
// - PREROUTING probes are sent from the peer ns bound to the requested source (added to the peer's
//   eth0 as /32); OUTPUT probes are sent from the node ns bound to the source, which must be a node
//   address or in 127.0.0.0/8.
// - Before every probe: `conntrack -F` and all xt_recent lists cleared (a client never seen before),
//   then a baseline `iptables-save -c`; after the probe, a second one. A rule "moved" when its
//   packet counter grew: this is the same as zeroing the counters first, with one command fewer.
import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync, readlinkSync } from 'node:fs'
import { isIPv4 } from 'node:net'

export type ProbeEntry = 'PREROUTING' | 'OUTPUT'

export interface ProbePacket {
  source: string
  destination: string
  port: number
  protocol: 'tcp' | 'udp'
  entry: ProbeEntry
  sourcePort?: number
}

export interface MovedRule {
  table: string
  chain: string
  /** 1-based position in chain */
  index: number
  packets: number
  /** the -A line as iptables-save printed it */
  rule: string
}

export interface ProbeResult {
  /** rules whose packet counters moved, in iptables-save order (not traversal order) */
  moved: MovedRule[]
  /** built-in chain policy counters that moved */
  policies: Array<{ table: string; chain: string; packets: number }>
  /** errno the sending socket saw, if any: e.g. EPERM when a UDP probe was dropped in OUTPUT */
  sendError?: string
  /** the source port the probe was sent from */
  sourcePort?: number
}

export type KernelBackend = 'nft' | 'legacy'

export interface KernelNodeOptions {
  /** node addresses, IPv4, optionally with a prefix length ("192.168.1.10/24"); /32 by default */
  nodeAddresses: string[]
  /** a readable tag put into the namespace names */
  name?: string
  /** iptables backend; default: $SVCPATH_IPTABLES_BACKEND or 'nft' */
  backend?: KernelBackend
}

// ---------------------------------------------------------------------------------------------
// Counters

export interface RuleCounter {
  table: string
  chain: string
  index: number
  packets: number
  bytes: number
  rule: string
}

export interface ChainCounter {
  table: string
  chain: string
  policy: string
  packets: number
  bytes: number
}

export interface CounterSnapshot {
  rules: RuleCounter[]
  chains: ChainCounter[]
}

const BUILTIN_POLICY = new Set(['ACCEPT', 'DROP'])

/** Parse `iptables-save -c` output into per-rule and per-chain counters. */
export function parseCounters(save: string): CounterSnapshot {
  const rules: RuleCounter[] = []
  const chains: ChainCounter[] = []
  let table = ''
  const positions = new Map<string, number>()
  for (const raw of save.split('\n')) {
    const line = raw.trimEnd()
    if (line === '' || line.startsWith('#')) continue
    if (line.startsWith('*')) {
      table = line.slice(1).trim()
      continue
    }
    if (line === 'COMMIT') continue
    if (line.startsWith(':')) {
      const m = /^:(\S+)\s+(\S+)(?:\s+\[(\d+):(\d+)\])?/.exec(line)
      if (!m) throw new Error(`cannot parse chain line: ${line}`)
      chains.push({ table, chain: m[1], policy: m[2], packets: Number(m[3] ?? 0), bytes: Number(m[4] ?? 0) })
      continue
    }
    const m = /^(?:\[(\d+):(\d+)\]\s+)?(-A\s+(\S+).*)$/.exec(line)
    if (!m) throw new Error(`cannot parse rule line: ${line}`)
    const chain = m[4]
    const key = `${table}\0${chain}`
    const index = (positions.get(key) ?? 0) + 1
    positions.set(key, index)
    rules.push({ table, chain, index, packets: Number(m[1] ?? 0), bytes: Number(m[2] ?? 0), rule: m[3] })
  }
  return { rules, chains }
}

/** Rules and built-in policies whose packet counters grew between two snapshots. */
export function diffCounters(before: CounterSnapshot, after: CounterSnapshot): Pick<ProbeResult, 'moved' | 'policies'> {
  const key = (t: string, c: string, i: number) => `${t}\0${c}\0${i}`
  const beforeRules = new Map(before.rules.map((r) => [key(r.table, r.chain, r.index), r]))
  const beforeChains = new Map(before.chains.map((c) => [key(c.table, c.chain, 0), c]))
  const moved: MovedRule[] = []
  for (const r of after.rules) {
    const b = beforeRules.get(key(r.table, r.chain, r.index))
    const base = b && b.rule === r.rule ? b.packets : 0
    if (r.packets > base) moved.push({ table: r.table, chain: r.chain, index: r.index, packets: r.packets - base, rule: r.rule })
  }
  const policies: ProbeResult['policies'] = []
  for (const c of after.chains) {
    if (!BUILTIN_POLICY.has(c.policy)) continue
    const base = beforeChains.get(key(c.table, c.chain, 0))?.packets ?? 0
    if (c.packets > base) policies.push({ table: c.table, chain: c.chain, packets: c.packets - base })
  }
  return { moved, policies }
}

// ---------------------------------------------------------------------------------------------
// The agent: a small plain-JS program run with `ip netns exec NS node -e AGENT`. It speaks JSON
// lines on stdin/stdout and can run commands, write /proc/sys files, clear xt_recent lists and send
// one probe packet. Commands it runs inherit its network namespace, so there is no `ip netns exec`
// per command.

const AGENT = String.raw`
'use strict';
const net = require('net'), dgram = require('dgram'), fs = require('fs'), cp = require('child_process'), readline = require('readline');
const reply = (o) => process.stdout.write(JSON.stringify(o) + '\n');
function run(cmd, args, input, timeoutMs) {
  return new Promise((resolve) => {
    let so = '', se = '', done = false, child;
    const finish = (r) => { if (!done) { done = true; clearTimeout(timer); resolve(r); } };
    const timer = setTimeout(() => { se += '\n(killed: timed out after ' + timeoutMs + ' ms)'; try { child.kill('SIGKILL'); } catch {} }, timeoutMs);
    try { child = cp.spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] }); }
    catch (e) { finish({ code: -1, stdout: '', stderr: String(e) }); return; }
    child.stdout.on('data', (d) => { so += d; });
    child.stderr.on('data', (d) => { se += d; });
    child.on('error', (e) => finish({ code: -1, stdout: so, stderr: se + String(e) }));
    child.on('close', (code, sig) => finish({ code: code == null ? -1 : code, signal: sig, stdout: so, stderr: se }));
    child.stdin.on('error', () => {});
    child.stdin.end(input || '');
  });
}
function sendTcp(m) {
  return new Promise((resolve) => {
    const s = new net.Socket();
    let err = null;
    s.on('error', (e) => { err = e; });
    s.connect({ host: m.dst, port: m.port, localAddress: m.src, localPort: m.sport || undefined, family: 4 });
    // net.Socket.connect issues bind()+connect() on process.nextTick; the SYN has left the socket
    // (connect(2) transmits it synchronously) before any setImmediate callback runs.
    setImmediate(() => {
      let localPort;
      try { localPort = s.localPort; } catch {}
      s.destroy(); // closing a SYN_SENT socket sends nothing, and no retransmission will follow
      resolve({ error: err ? (err.code || String(err)) : null, localPort });
    });
  });
}
function sendUdp(m) {
  return new Promise((resolve) => {
    const s = dgram.createSocket({ type: 'udp4' });
    let settled = false;
    const done = (r) => { if (!settled) { settled = true; try { s.close(); } catch {} resolve(r); } };
    s.on('error', (e) => done({ error: e.code || String(e) }));
    s.bind({ address: m.src, port: m.sport || 0, exclusive: true }, () => {
      const localPort = s.address().port;
      s.send(Buffer.from('svcpath probe'), m.port, m.dst, (e) => done({ error: e ? (e.code || String(e)) : null, localPort }));
    });
  });
}
async function handle(m) {
  switch (m.op) {
    case 'ping': return { pid: process.pid, netns: fs.readlinkSync('/proc/self/ns/net') };
    case 'exec': return run(m.cmd, m.args || [], m.input, m.timeoutMs || 10000);
    case 'write': {
      const failed = [];
      for (const [p, v] of m.files) { try { fs.writeFileSync(p, v); } catch (e) { failed.push(p + ': ' + e.message); } }
      return { failed };
    }
    case 'clearRecent': {
      let names = [];
      try { names = fs.readdirSync('/proc/net/xt_recent'); } catch {}
      for (const n of names) { try { fs.writeFileSync('/proc/net/xt_recent/' + n, '/'); } catch {} }
      return { cleared: names.length };
    }
    case 'send': return m.proto === 'udp' ? sendUdp(m) : sendTcp(m);
    case 'sleep': await new Promise((r) => setTimeout(r, m.ms)); return {};
    default: throw new Error('unknown op ' + m.op);
  }
}
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let m;
  try { m = JSON.parse(line); } catch (e) { return; }
  handle(m).then((result) => reply({ id: m.id, ok: true, result }), (e) => reply({ id: m.id, ok: false, error: String(e && e.stack || e) }));
}).on('close', () => process.exit(0));
reply({ id: 0, ok: true, result: { ready: true } });
`

interface ExecResult {
  code: number
  signal?: string | null
  stdout: string
  stderr: string
}

const SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.NODE_OPTIONS
  delete env.NODE_TEST_CONTEXT
  delete env.NODE_EXTRA_CA_CERTS // makes every node start-up parse a CA bundle the agent never uses
  env.PATH = `${SAFE_PATH}:${process.env.PATH ?? ''}`
  env.LC_ALL = 'C'
  return env
}

/** Run a command in the current (root) namespace, bounded in time. Only `ip netns add/del` and
 *  `ip netns exec` are ever run this way. */
function runHost(cmd: string, args: string[], input = '', timeoutMs = 10_000): Promise<ExecResult> {
  return new Promise((resolve) => {
    let stdout = ''
    let stderr = ''
    let done = false
    const finish = (r: ExecResult) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resolve(r)
    }
    const child = spawn(cmd, args, { env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] })
    const timer = setTimeout(() => {
      stderr += `\n(killed: timed out after ${timeoutMs} ms)`
      child.kill('SIGKILL')
    }, timeoutMs)
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', (e) => finish({ code: -1, stdout, stderr: stderr + String(e) }))
    child.on('close', (code, signal) => finish({ code: code ?? -1, signal, stdout, stderr }))
    child.stdin.on('error', () => {})
    child.stdin.end(input)
  })
}

class Agent {
  private nextId = 1
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>()
  private buffer = ''
  private exited: Error | null = null
  private stderr = ''

  private constructor(
    readonly ns: string,
    private readonly child: ChildProcessWithoutNullStreams,
  ) {
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (d: string) => {
      this.buffer += d
      let nl: number
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl)
        this.buffer = this.buffer.slice(nl + 1)
        this.onLine(line)
      }
    })
    child.stderr.on('data', (d) => {
      this.stderr = (this.stderr + d).slice(-4000)
    })
    child.stdin.on('error', () => {})
    child.on('exit', (code, signal) => {
      this.exited = new Error(`agent in ${ns} exited (code ${code}, signal ${signal})${this.stderr ? `: ${this.stderr}` : ''}`)
      for (const p of this.pending.values()) {
        clearTimeout(p.timer)
        p.reject(this.exited)
      }
      this.pending.clear()
    })
    child.on('error', (e) => {
      this.exited = e
    })
  }

  get pid(): number | undefined {
    return this.child.pid
  }

  static async start(ns: string, timeoutMs = 5000): Promise<Agent> {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', AGENT], {
      env: childEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const agent = new Agent(ns, child)
    // id 0 is the unsolicited "ready" line
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        agent.kill()
        reject(new Error(`agent in ${ns} did not start within ${timeoutMs} ms: ${agent.stderr}`))
      }, timeoutMs)
      agent.pending.set(0, {
        resolve: () => resolve(),
        reject: (e) => reject(e),
        timer,
      })
    })
    // Safety belt: everything this agent does must happen outside the root network namespace.
    const { netns } = await agent.call<{ netns: string }>('ping', {}, timeoutMs)
    if (netns === readlinkSync('/proc/self/ns/net')) {
      agent.kill()
      throw new Error(`agent for ${ns} runs in the caller's own network namespace (${netns}); refusing to go on`)
    }
    return agent
  }

  private onLine(line: string) {
    let msg: { id: number; ok: boolean; result?: unknown; error?: string }
    try {
      msg = JSON.parse(line)
    } catch {
      return
    }
    const p = this.pending.get(msg.id)
    if (!p) return
    this.pending.delete(msg.id)
    clearTimeout(p.timer)
    if (msg.ok) p.resolve(msg.result)
    else p.reject(new Error(`agent in ${this.ns}: ${msg.error}`))
  }

  call<T = any>(op: string, args: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<T> {
    if (this.exited) return Promise.reject(this.exited)
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`agent in ${this.ns}: ${op} timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(id, { resolve, reject, timer })
      this.child.stdin.write(JSON.stringify({ id, op, ...args }) + '\n')
    })
  }

  /** Run a command inside the namespace; the agent kills it after timeoutMs. */
  exec(cmd: string, args: string[], input?: string, timeoutMs = 10_000): Promise<ExecResult> {
    return this.call<ExecResult>('exec', { cmd, args, input, timeoutMs }, timeoutMs + 2000)
  }

  async execOk(cmd: string, args: string[], input?: string, timeoutMs = 10_000): Promise<string> {
    const r = await this.exec(cmd, args, input, timeoutMs)
    if (r.code !== 0) {
      throw new Error(`${cmd} ${args.join(' ')} failed in ${this.ns} (exit ${r.code}${r.signal ? `, ${r.signal}` : ''}): ${r.stderr.trim() || r.stdout.trim()}`)
    }
    return r.stdout
  }

  kill() {
    try {
      this.child.stdin.end()
    } catch {}
    try {
      this.child.kill('SIGKILL')
    } catch {}
  }

  /** End the agent: close stdin, then SIGKILL if it has not exited within timeoutMs. */
  async stop(timeoutMs = 1000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        try {
          this.child.kill('SIGKILL')
        } catch {}
        resolve()
      }, timeoutMs)
      this.child.once('exit', () => {
        clearTimeout(timer)
        resolve()
      })
      try {
        this.child.stdin.end()
      } catch {}
    })
  }
}

// ---------------------------------------------------------------------------------------------
// Addresses

function parseIPv4(a: string): number {
  if (!isIPv4(a)) throw new Error(`not an IPv4 address: ${a}`)
  return a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0)
}

function isLoopback(a: string): boolean {
  return isIPv4(a) && a.startsWith('127.')
}

function parseNodeAddress(spec: string): { address: string; prefix: number } {
  const [address, prefixText] = spec.split('/')
  parseIPv4(address)
  const prefix = prefixText === undefined ? 32 : Number(prefixText)
  if (!Number.isInteger(prefix) || prefix < 1 || prefix > 32) throw new Error(`bad prefix length in node address ${spec}`)
  if (isLoopback(address)) throw new Error(`node address ${spec} is a loopback address (127.0.0.0/8 is always local)`)
  return { address, prefix }
}

const NODE_MAC = '02:5c:00:00:00:01'
const PEER_MAC = '02:5c:00:00:00:02'
const NODE_GW = '169.254.239.1' // next hop of the peer's default route; assigned to nobody
const PEER_GW = '169.254.239.2' // next hop of the node's default route; assigned to nobody

const QUIET_NFT = `table inet svcpath_quiet {
  chain out {
    type filter hook output priority -400; policy accept;
    tcp flags & rst == rst drop
    icmp type { destination-unreachable, time-exceeded, parameter-problem, source-quench } drop
  }
  chain conntrack_on {
    ct state new
  }
}
`

const PEER_NFT = `table inet svcpath_peer {
  chain in {
    type filter hook prerouting priority -500; policy drop;
  }
}
`

interface BackendTools {
  restore: string
  save: string
}

function backendTools(backend: KernelBackend): BackendTools {
  if (backend === 'legacy') return { restore: 'iptables-legacy-restore', save: 'iptables-legacy-save' }
  const has = (b: string) => SAFE_PATH.split(':').some((d) => existsSync(`${d}/${b}`))
  if (has('iptables-nft-restore') && has('iptables-nft-save')) return { restore: 'iptables-nft-restore', save: 'iptables-nft-save' }
  return { restore: 'iptables-restore', save: 'iptables-save' }
}

function defaultBackend(): KernelBackend {
  const env = process.env.SVCPATH_IPTABLES_BACKEND
  if (env === 'legacy' || env === 'nft') return env
  return 'nft'
}

// ---------------------------------------------------------------------------------------------
// Namespace bookkeeping: names are unique per process, and whatever is still open when the process
// exits (or is killed by SIGINT/SIGTERM) is deleted.

let nsCounter = 0
const openNodes = new Set<KernelNode>()
let exitHookInstalled = false

function installExitHook() {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const node of openNodes) node.closeSync()
  })
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = () => {
      for (const node of openNodes) node.closeSync()
      process.removeListener(sig, handler)
      process.kill(process.pid, sig)
    }
    process.on(sig, handler)
  }
}

function sanitize(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 24)
}

export class KernelNode {
  readonly nodeNs: string
  readonly peerNs: string
  readonly nodeAddresses: string[]
  readonly backend: KernelBackend
  private readonly tools: BackendTools
  private nodeAgent: Agent | null = null
  private peerAgent: Agent | null = null
  private readonly peerSources = new Set<string>()
  private readonly children = new Set<ChildProcessWithoutNullStreams>()
  private loadedTables = new Set<string>()
  private closed = false
  private nsCreated = false
  /** probes share the counters, so they run one at a time */
  private queue: Promise<unknown> = Promise.resolve()

  private constructor(opts: KernelNodeOptions) {
    const tag = opts.name ? `${sanitize(opts.name)}-` : ''
    const base = `svcpath-${tag}${process.pid}-${++nsCounter}`
    this.nodeNs = `${base}-node`
    this.peerNs = `${base}-peer`
    this.nodeAddresses = opts.nodeAddresses.map((a) => parseNodeAddress(a).address)
    this.backend = opts.backend ?? defaultBackend()
    this.tools = backendTools(this.backend)
  }

  /** Namespaces + veth + addresses + routes + sysctls + the nft tables that keep replies quiet. */
  static async create(opts: KernelNodeOptions): Promise<KernelNode> {
    if (!opts.nodeAddresses || opts.nodeAddresses.length === 0) throw new Error('KernelNode.create: nodeAddresses is empty')
    const node = new KernelNode(opts)
    installExitHook()
    openNodes.add(node)
    try {
      await node.setup(opts.nodeAddresses.map(parseNodeAddress))
    } catch (e) {
      await node.close().catch(() => {})
      throw e
    }
    return node
  }

  private async setup(addrs: Array<{ address: string; prefix: number }>) {
    const add = await runHost('ip', ['-batch', '-'], `netns add ${this.nodeNs}\nnetns add ${this.peerNs}\n`, 5000)
    this.nsCreated = true
    if (add.code !== 0) throw new Error(`ip netns add failed: ${add.stderr.trim()}`)
    const [nodeAgent, peerAgent] = await Promise.all([Agent.start(this.nodeNs), Agent.start(this.peerNs)])
    this.nodeAgent = nodeAgent
    this.peerAgent = peerAgent

    // Sysctls that must hold before the interfaces exist (inherited from "default").
    const v4 = '/proc/sys/net/ipv4'
    const v6 = '/proc/sys/net/ipv6'
    const early = (forward: boolean): Array<[string, string]> => [
      [`${v6}/conf/all/disable_ipv6`, '1'],
      [`${v6}/conf/default/disable_ipv6`, '1'],
      [`${v4}/conf/all/rp_filter`, '0'],
      [`${v4}/conf/default/rp_filter`, '0'],
      [`${v4}/ip_forward`, forward ? '1' : '0'],
    ]
    const nodeEarly = [...early(true), [`${v4}/conf/all/route_localnet`, '1'] as [string, string]]
    await Promise.all([this.writeSysctls(nodeAgent, nodeEarly), this.writeSysctls(peerAgent, early(false))])

    // veth pair created from inside the node ns, its other end born inside the peer ns.
    const nodeBatch = [
      `link add eth0 address ${NODE_MAC} type veth peer name eth0 address ${PEER_MAC} netns ${this.peerNs}`,
      ...addrs.map((a) => `addr add ${a.address}/${a.prefix} dev eth0`),
      'link set lo up',
      'link set eth0 up',
      `neigh replace ${PEER_GW} lladdr ${PEER_MAC} dev eth0 nud permanent`,
      `route add default via ${PEER_GW} dev eth0 onlink`,
    ]
    await nodeAgent.execOk('ip', ['-batch', '-'], nodeBatch.join('\n') + '\n', 5000)
    const peerBatch = [
      'link set lo up',
      'link set eth0 up',
      `neigh replace ${NODE_GW} lladdr ${NODE_MAC} dev eth0 nud permanent`,
      `route add default via ${NODE_GW} dev eth0 onlink`,
    ]
    await Promise.all([
      peerAgent.execOk('ip', ['-batch', '-'], peerBatch.join('\n') + '\n', 5000),
      this.writeSysctls(nodeAgent, [
        [`${v4}/conf/eth0/rp_filter`, '0'],
        [`${v4}/conf/lo/rp_filter`, '0'],
        [`${v4}/conf/eth0/route_localnet`, '1'],
      ]),
    ])
    await Promise.all([nodeAgent.execOk('nft', ['-f', '-'], QUIET_NFT, 5000), peerAgent.execOk('nft', ['-f', '-'], PEER_NFT, 5000)])
  }

  private async writeSysctls(agent: Agent, files: Array<[string, string]>) {
    const r = await agent.call<{ failed: string[] }>('write', { files }, 5000)
    if (r.failed.length) throw new Error(`sysctl in ${agent.ns} failed: ${r.failed.join('; ')}`)
  }

  private agents(): { node: Agent; peer: Agent } {
    if (this.closed || !this.nodeAgent || !this.peerAgent) throw new Error(`KernelNode ${this.nodeNs} is closed`)
    return { node: this.nodeAgent, peer: this.peerAgent }
  }

  /** iptables-restore the dump into the node namespace. Tables in the dump replace the ones loaded
   *  before; tables loaded before but absent from this dump are removed (nft backend) or flushed. */
  async load(dump: string): Promise<void> {
    const { node } = this.agents()
    const tables = new Set<string>()
    for (const line of dump.split('\n')) {
      const m = /^\*(\S+)/.exec(line.trim())
      if (m) tables.add(m[1])
    }
    for (const t of this.loadedTables) {
      if (tables.has(t)) continue
      if (this.backend === 'nft') await node.execOk('nft', ['delete', 'table', 'ip', t], undefined, 5000)
      else await node.execOk(this.tools.restore, [], emptyTable(t), 5000)
    }
    const text = dump.endsWith('\n') ? dump : dump + '\n'
    const r = await node.exec(this.tools.restore, [], text, 30_000)
    if (r.code !== 0) {
      throw new Error(`${this.tools.restore} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`)
    }
    this.loadedTables = tables
  }

  /** `iptables-restore --test` of the dump in the node namespace: whether iptables takes it, and what it said if not. */
  async restoreTest(dump: string): Promise<{ ok: boolean; message: string }> {
    const { node } = this.agents()
    const text = dump.endsWith('\n') ? dump : dump + '\n'
    const r = await node.exec(this.tools.restore, ['--test'], text, 30_000)
    return { ok: r.code === 0, message: (r.stderr || r.stdout).trim() }
  }

  /** Raw `iptables-save -c` of the node namespace. */
  async save(): Promise<string> {
    const { node } = this.agents()
    return node.execOk(this.tools.save, ['-c'], undefined, 30_000)
  }

  /** Send exactly one first packet of a new connection and report the counters that moved.
   *  Concurrent calls on one node are queued. */
  probe(p: ProbePacket): Promise<ProbeResult> {
    const run = this.queue.then(() => this.probeNow(p))
    this.queue = run.catch(() => {})
    return run
  }

  /** Check a probe and pick the namespace that sends it: the node itself (OUTPUT) or the peer
   *  (PREROUTING), whose eth0 gets the source address on first use. */
  private async senderFor(p: ProbePacket): Promise<Agent> {
    const { node, peer } = this.agents()
    parseIPv4(p.source)
    parseIPv4(p.destination)
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) throw new Error(`bad destination port ${p.port}`)
    if (p.sourcePort !== undefined && (!Number.isInteger(p.sourcePort) || p.sourcePort < 1 || p.sourcePort > 65535)) {
      throw new Error(`bad source port ${p.sourcePort}`)
    }
    if (p.protocol !== 'tcp' && p.protocol !== 'udp') throw new Error(`unsupported protocol ${p.protocol}`)

    let sender: Agent
    if (p.entry === 'OUTPUT') {
      if (!this.nodeAddresses.includes(p.source) && !isLoopback(p.source)) {
        throw new Error(
          `OUTPUT probe source ${p.source} is not local to the node (node addresses: ${this.nodeAddresses.join(', ')}, or 127.0.0.0/8): ` +
            'a packet generated on the node carries one of its own addresses; to trace traffic from a pod or client use entry PREROUTING',
        )
      }
      sender = node
    } else if (p.entry === 'PREROUTING') {
      if (this.nodeAddresses.includes(p.source) || isLoopback(p.source)) {
        throw new Error(
          `PREROUTING probe source ${p.source} is local to the node: the kernel would drop it as a martian after PREROUTING; use entry OUTPUT`,
        )
      }
      if (!this.peerSources.has(p.source)) {
        await peer.execOk('ip', ['addr', 'add', `${p.source}/32`, 'dev', 'eth0'], undefined, 5000)
        this.peerSources.add(p.source)
      }
      sender = peer
    } else {
      throw new Error(`unsupported entry ${String((p).entry)}`)
    }
    return sender
  }

  /** Send the probe's packet from the namespace its entry calls for; errors that mean the packet
   *  could not be sent at all are thrown, netfilter's answers (EPERM, ECONNREFUSED …) returned. */
  private async sendFrom(sender: Agent, p: ProbePacket): Promise<{ error: string | null; localPort?: number }> {
    const sent = await sender.call<{ error: string | null; localPort?: number }>(
      'send',
      { proto: p.protocol, src: p.source, dst: p.destination, port: p.port, sport: p.sourcePort },
      5000,
    )
    // EPERM: netfilter dropped it in OUTPUT; ECONNREFUSED: a REJECT answered. Anything else means
    // the packet could not be sent at all.
    if (sent.error && !['EPERM', 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH'].includes(sent.error)) {
      throw new Error(`probe ${p.protocol} ${p.source} -> ${p.destination}:${p.port} could not be sent: ${sent.error}`)
    }
    return sent
  }

  /** Send one probe packet, as `probe` does, without touching conntrack or any counter: the
   *  caller decides what state the kernel starts from and how it observes the packet. */
  async send(p: ProbePacket): Promise<{ error: string | null; localPort?: number }> {
    return this.sendFrom(await this.senderFor(p), p)
  }

  /** Run a command inside the node namespace (bounded in time); stdout, stderr and exit code. */
  exec(cmd: string, args: string[], input?: string, timeoutMs = 10_000): Promise<ExecResult> {
    return this.agents().node.exec(cmd, args, input, timeoutMs)
  }

  /** Like `exec`, but a non-zero exit is an error; returns stdout. */
  execOk(cmd: string, args: string[], input?: string, timeoutMs = 10_000): Promise<string> {
    return this.agents().node.execOk(cmd, args, input, timeoutMs)
  }

  /** A long-running command inside the node namespace (e.g. `nft monitor trace`); it is killed
   *  when the node closes. */
  spawnInNode(cmd: string, args: string[]): ChildProcessWithoutNullStreams {
    this.agents()
    const child = spawn('ip', ['netns', 'exec', this.nodeNs, cmd, ...args], { env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] })
    this.children.add(child)
    child.on('exit', () => this.children.delete(child))
    return child
  }

  private async probeNow(p: ProbePacket): Promise<ProbeResult> {
    const { node } = this.agents()
    const sender = await this.senderFor(p)

    // A new connection from a client the kernel has never seen.
    // (The three are independent; the baseline read and the flush run side by side.)
    const [flush, , beforeText] = await Promise.all([
      node.exec('conntrack', ['-F'], undefined, 5000),
      node.call('clearRecent', {}, 5000),
      node.execOk(this.tools.save, ['-c'], undefined, 30_000),
    ])
    if (flush.code !== 0 && !/emptied|0 flow entries/.test(flush.stderr + flush.stdout)) {
      throw new Error(`conntrack -F failed in ${this.nodeNs}: ${flush.stderr.trim()}`)
    }
    const before = parseCounters(beforeText)
    const sent = await this.sendFrom(sender, p)
    // No extra wait is needed: veth and loopback hand the packet to the receiving namespace's
    // softirq, which runs before the sender's syscall returns; the whole path (PREROUTING, routing,
    // FORWARD/INPUT, POSTROUTING, the peer's drop) is done by the time the agent answers (checked:
    // 600 back-to-back probes never showed a partial path).
    const after = parseCounters(await node.execOk(this.tools.save, ['-c'], undefined, 30_000))
    const { moved, policies } = diffCounters(before, after)
    // Tables emptied by an earlier load() (legacy backend cannot delete them) are not part of the dump.
    const inDump = (t: string) => this.loadedTables.size === 0 || this.loadedTables.has(t)
    const result: ProbeResult = {
      moved: moved.filter((m) => inDump(m.table)),
      policies: policies.filter((c) => inDump(c.table)),
      sourcePort: sent.localPort,
    }
    if (sent.error) result.sendError = sent.error
    return result
  }

  private killChildren(): void {
    for (const child of this.children) {
      try {
        child.kill('SIGKILL')
      } catch {}
    }
    this.children.clear()
  }

  /** Delete both namespaces; safe to call more than once. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    openNodes.delete(this)
    this.killChildren()
    await Promise.all([this.nodeAgent?.stop(), this.peerAgent?.stop()])
    if (!this.nsCreated) return
    const failed: string[] = []
    for (const ns of [this.nodeNs, this.peerNs]) {
      const r = await runHost('ip', ['netns', 'del', ns], '', 5000)
      if (r.code !== 0 && !/No such file/.test(r.stderr)) failed.push(`${ns}: ${r.stderr.trim()}`)
    }
    if (failed.length) throw new Error(`could not delete network namespaces: ${failed.join('; ')}`)
  }

  /** Synchronous last-resort cleanup for process exit. */
  closeSync(): void {
    if (this.closed) return
    this.closed = true
    openNodes.delete(this)
    this.killChildren()
    this.nodeAgent?.kill()
    this.peerAgent?.kill()
    if (!this.nsCreated) return
    for (const ns of [this.nodeNs, this.peerNs]) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 5000, env: childEnv() })
      } catch {}
    }
  }
}

const BUILTIN_CHAINS: Record<string, string[]> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
}

function emptyTable(t: string): string {
  return `*${t}\n${(BUILTIN_CHAINS[t] ?? []).map((c) => `:${c} ACCEPT [0:0]`).join('\n')}\nCOMMIT\n`
}

// ---------------------------------------------------------------------------------------------

const TRIVIAL_DUMP = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -d 10.255.0.1/32 -p udp -m udp --dport 9 -j ACCEPT
-A OUTPUT -d 10.255.0.1/32 -p udp -m udp --dport 9 -j ACCEPT
COMMIT
`

const supportCache = new Map<KernelBackend, Promise<{ ok: true; backend: string } | { ok: false; reason: string }>>()

/** Can this machine run kernel probes? Creates and deletes a namespace pair, loads a trivial
 *  ruleset and checks that one probe moves its counter. Never throws; the result is cached. */
export function kernelSupport(backend: KernelBackend = defaultBackend()): Promise<{ ok: true; backend: string } | { ok: false; reason: string }> {
  let p = supportCache.get(backend)
  if (!p) {
    p = checkSupport(backend)
    supportCache.set(backend, p)
  }
  return p
}

async function checkSupport(backend: KernelBackend): Promise<{ ok: true; backend: string } | { ok: false; reason: string }> {
  try {
    if (process.env.SVCPATH_SKIP_KERNEL && process.env.SVCPATH_SKIP_KERNEL !== '0') return { ok: false, reason: 'disabled by SVCPATH_SKIP_KERNEL' }
    if (process.platform !== 'linux') return { ok: false, reason: `not Linux (${process.platform})` }
    if (typeof process.getuid === 'function' && process.getuid() !== 0) return { ok: false, reason: 'not running as root' }
    const tools = backendTools(backend)
    const missing = ['ip', 'nft', 'conntrack', tools.restore, tools.save].filter((b) => !SAFE_PATH.split(':').some((d) => existsSync(`${d}/${b}`)))
    if (missing.length) {
      return { ok: false, reason: `missing commands: ${missing.join(', ')} (apt-get install -y iproute2 iptables nftables conntrack)` }
    }
    const version = await runHost(tools.restore, ['--version'], '', 5000)
    const versionText = (version.stdout + version.stderr).trim().split('\n')[0] ?? ''
    let node: KernelNode | undefined
    try {
      node = await KernelNode.create({ nodeAddresses: ['192.0.2.10'], name: 'support', backend })
      await node.load(TRIVIAL_DUMP)
      const expect = async (p: ProbePacket, chain: string) => {
        const r = await node!.probe(p)
        const keys = r.moved.map((m) => `${m.table}/${m.chain}#${m.index}`)
        if (keys.length !== 1 || keys[0] !== `filter/${chain}#1`) {
          throw new Error(`a ${p.entry} probe should move exactly filter/${chain}#1, but moved [${keys.join(', ')}]`)
        }
      }
      await expect({ source: '192.0.2.10', destination: '10.255.0.1', port: 9, protocol: 'udp', entry: 'OUTPUT' }, 'OUTPUT')
      await expect({ source: '198.51.100.7', destination: '10.255.0.1', port: 9, protocol: 'udp', entry: 'PREROUTING' }, 'FORWARD')
    } finally {
      await node?.close()
    }
    return { ok: true, backend: `${backend} (${versionText})` }
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : String(e) }
  }
}
