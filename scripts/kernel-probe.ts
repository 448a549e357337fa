// Ask the kernel: load an iptables-save dump into private network namespaces, send probe packets and
// print which rules' counters moved (see test/support/kernel.ts). Needs root.
//
//   npx tsx scripts/kernel-probe.ts DUMP --node 192.168.49.2 --src 192.168.49.100 --dst 10.96.0.10 \
//       --port 80 [--proto tcp|udp] [--entry PREROUTING|OUTPUT] [--sport N] [--count N] [--backend nft|legacy]
//
// With --count > 1 it also prints how often each distinct path was taken.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { KernelNode, kernelSupport, type KernelBackend, type ProbeEntry } from '../test/support/kernel.ts'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    node: { type: 'string', multiple: true },
    src: { type: 'string' },
    dst: { type: 'string' },
    port: { type: 'string' },
    sport: { type: 'string' },
    proto: { type: 'string', default: 'tcp' },
    entry: { type: 'string', default: 'PREROUTING' },
    count: { type: 'string', default: '1' },
    backend: { type: 'string' },
  },
})

if (positionals.length !== 1 || !values.node || !values.src || !values.dst || !values.port) {
  process.stderr.write('usage: kernel-probe.ts DUMP --node IP [--node IP…] --src IP --dst IP --port N [--proto tcp|udp] [--entry PREROUTING|OUTPUT] [--sport N] [--count N] [--backend nft|legacy]\n')
  process.exit(2)
}

const backend = values.backend as KernelBackend | undefined
const support = await kernelSupport(backend)
if (!support.ok) {
  process.stderr.write(`kernel probes unavailable: ${support.reason}\n`)
  process.exit(1)
}

const node = await KernelNode.create({ nodeAddresses: values.node, name: 'cli', backend })
try {
  await node.load(readFileSync(positionals[0], 'utf8'))
  const count = Number(values.count)
  const paths = new Map<string, number>()
  for (let i = 0; i < count; i++) {
    const r = await node.probe({
      source: values.src,
      destination: values.dst,
      port: Number(values.port),
      protocol: values.proto as 'tcp' | 'udp',
      entry: values.entry as ProbeEntry,
      sourcePort: values.sport ? Number(values.sport) : undefined,
    })
    const text = [
      ...r.moved.map((m) => `[${m.packets}] ${m.table.padEnd(7)} #${m.index} ${m.rule}`),
      ...r.policies.map((p) => `[${p.packets}] ${p.table.padEnd(7)} ${p.chain} policy`),
      ...(r.sendError ? [`(socket saw ${r.sendError})`] : []),
    ].join('\n')
    paths.set(text, (paths.get(text) ?? 0) + 1)
  }
  let n = 0
  for (const [text, times] of paths) {
    process.stdout.write(`${count > 1 ? `path ${++n}: ${times}/${count}\n` : ''}${text}\n\n`)
  }
} finally {
  await node.close()
}
