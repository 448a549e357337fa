/**
 * The nftables section of `npm run bench`, in a process of its own: a generated node with
 * BENCH_SERVICES Services (10,000 by default) as kube-proxy's nftables proxier writes it
 * (test/support/kube-gen-nft.ts), next to `nft -c -f` on the same file in a private network
 * namespace, and svcpath's parse time and warm trace latency on it.
 *
 * Set BENCH_SKIP_KERNEL=1 to skip `nft -c -f`. One run of it only: on the machines this was
 * written on it takes almost five minutes for 10,000 Services (nearly all of it kernel time).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNftables, traceNftables } from '../src/engine/index.ts';
import { generateCluster } from '../test/support/kube-gen.ts';
import { renderNftables } from '../test/support/kube-gen-nft.ts';
import { collectGarbage, fastestOfThree, frontends, ms, percentile, time, warmTraces } from './common.ts';

const SERVICES = Number(process.env.BENCH_SERVICES ?? 10_000);
const OUT = join(process.cwd(), '.bench-out');

/** The middle of sorted numbers (the mean of the two middle ones for an even count). */
function median(sorted: readonly number[]): number {
  const n = sorted.length;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

/** `nft -c -f file` in a fresh network namespace, `runs` times: milliseconds each, or why not. */
function nftCheck(file: string, runs: number): number[] | string {
  const ns = `svcpath-bench-nft-${process.pid}`;
  const add = spawnSync('ip', ['netns', 'add', ns], { stdio: 'ignore' });
  if (add.status !== 0) return 'unavailable (cannot create a network namespace here)';
  try {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', '-c', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
      const elapsed = performance.now() - t0;
      if (r.status !== 0) return `failed: ${String(r.stderr).trim().slice(0, 200) || r.error?.message}`;
      times.push(elapsed);
    }
    return times;
  } finally {
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
}

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  const [cluster, genMs] = time(() => generateCluster({ seed: 1, services: SERVICES }));
  const [ruleset, renderMs] = time(() => renderNftables(cluster));
  const file = join(OUT, `node-${SERVICES}.nft`);
  writeFileSync(file, ruleset);
  const lines = ruleset.split('\n').length - 1;
  console.log(`\n== nftables: generated node, ${SERVICES} Services in kube-proxy's nftables mode: ${lines} lines, ${(ruleset.length / 1e6).toFixed(1)} MB (generated in ${ms(genMs + renderMs)})`);

  const parses: number[] = [];
  let parsed = parseNftables(ruleset);
  for (let i = 0; i < 5; i++) {
    collectGarbage();
    const [rs, t] = time(() => parseNftables(ruleset));
    parsed = rs;
    parses.push(t);
  }
  parses.sort((a, b) => a - b);
  console.log(`svcpath parse (nft -f text → ruleset), ${parses.length} runs: median ${ms(median(parses))}, best ${ms(parses[0])}, worst ${ms(parses[parses.length - 1])}`);

  if (process.env.BENCH_SKIP_KERNEL !== '1') {
    const checks = nftCheck(file, 1);
    if (typeof checks === 'string') console.log(`nft -c -f: ${checks}`);
    else {
      checks.sort((a, b) => a - b);
      const ratio = `  → svcpath parse is ${(median(checks) / median(parses)).toFixed(1)}× faster (target ≥ 10×)`;
      console.log(`nft -c -f on the same file in a network namespace, ${checks.length} run: ${ms(median(checks))}${ratio}`);
    }
  }

  const packets = frontends(cluster);
  const node = { addresses: cluster.nodeIPs };
  const { samples, outcomesPerTrace, firstMs } = warmTraces((packet) => traceNftables(parsed, { node, packet }), packets);
  console.log(
    `trace, warm, 5000 random frontends of ${packets.length}: median ${ms(percentile(samples, 0.5))}, p99 ${ms(percentile(samples, 0.99))}, max ${ms(samples[samples.length - 1])} (target p99 < 1 ms); ${outcomesPerTrace.toFixed(1)} outcomes per trace; first trace ${ms(firstMs)}`,
  );
  const own = fastestOfThree((packet) => traceNftables(parsed, { node, packet }), packets);
  console.log(`  the same packets, each the fastest of three traces in a row (a lower bound: no other process's time slices, no collections, warm CPU caches): median ${ms(percentile(own, 0.5))}, p99 ${ms(percentile(own, 0.99))}, max ${ms(own[own.length - 1])}`);
}

await main();
