/**
 * svcpath benchmarks: `npm run bench`. Prints figures; asserts nothing.
 *
 *   parse      a generated node with 10,000 Services (~358,000 lines, ~41 MB), next to
 *              `iptables-restore --test` on the same file in a private network namespace
 *   trace      warm trace latency over random frontends (median, p99)
 *   diff       two generated nodes, B = A with a hundred Services edited
 *   service    ingest (parse + store) and traces through the stored snapshot over HTTP
 *
 *   nftables   the same node in kube-proxy's nftables mode, next to `nft -c -f` (bench/nftables.ts)
 *   fleet      the server in a child process and generated clusters of many nodes (bench/fleet.ts)
 *
 * Set BENCH_SERVICES to change the size, BENCH_SKIP_KERNEL=1 to skip iptables-restore and
 * `nft -c -f`, BENCH_SKIP_ENGINE=1 to skip the iptables sections (engine and service),
 * BENCH_SKIP_NFT=1 to skip the nftables section, BENCH_FLEET=20x2000,… to choose the fleet sizes
 * (0 to skip them). The nftables section alone, without nft -c -f:
 * BENCH_SKIP_ENGINE=1 BENCH_FLEET=0 BENCH_SKIP_KERNEL=1 npm run bench
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { completeKubeProxy, diffSnapshots, parseDump, trace } from '../src/engine/index.ts';
import { generateCluster, renderIptablesSave } from '../test/support/kube-gen.ts';
import type { GenCluster } from '../test/support/kube-gen.ts';
import { collectGarbage, editHundred, frontends, ms, percentile, time, warmTraces } from './common.ts';

const SERVICES = Number(process.env.BENCH_SERVICES ?? 10_000);
const OUT = join(process.cwd(), '.bench-out');

function restoreTest(file: string, command: string): number | string {
  const ns = `svcpath-bench-${process.pid}`;
  try {
    execFileSync('ip', ['netns', 'add', ns], { stdio: 'ignore' });
  } catch {
    return 'unavailable (cannot create a network namespace here)';
  }
  try {
    const t0 = performance.now();
    const r = spawnSync('ip', ['netns', 'exec', ns, command, '--test', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    const elapsed = performance.now() - t0;
    if (r.status !== 0) return `failed: ${String(r.stderr).trim().slice(0, 200) || r.error?.message}`;
    return elapsed;
  } finally {
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
}

/** The middle of sorted numbers (the mean of the two middle ones for an even count). */
function median(sorted: readonly number[]): number {
  const n = sorted.length;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

export interface EngineFigures {
  dump: string;
  cluster: GenCluster;
  parseMedian: number;
}


export function benchEngine(): EngineFigures {
  mkdirSync(OUT, { recursive: true });
  const [cluster, genMs] = time(() => generateCluster({ seed: 1, services: SERVICES }));
  const [dump, renderMs] = time(() => renderIptablesSave(cluster));
  const file = join(OUT, `node-${SERVICES}.iptables-save`);
  writeFileSync(file, dump);
  const lines = dump.split('\n').length - 1;
  console.log(`\n== engine: generated node, ${SERVICES} Services: ${lines} lines, ${(dump.length / 1e6).toFixed(1)} MB (generated in ${ms(genMs + renderMs)})`);

  // Parse runs and iptables-restore runs take turns, so that both are timed in the same minutes
  // (this machine's speed drifts by a factor of two over minutes). Each parse starts without the
  // last one's garbage, as the diff runs below do. The first parse of a round, right after
  // seconds of iptables-restore, runs a third slower here than the ones after it (a parse after
  // `sleep 3` does too): those are printed on their own as well.
  const kernel = process.env.BENCH_SKIP_KERNEL !== '1';
  const commands = ['iptables-restore', 'iptables-legacy-restore'];
  const restores = new Map<string, number[]>(commands.map((c) => [c, []]));
  const unavailable = new Map<string, string>();
  const parses: number[] = [];
  const firstOfRound: number[] = [];
  const rounds = 3;
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < 4; i++) {
      collectGarbage();
      parses.push(time(() => parseDump(dump))[1]);
      if (i === 0) firstOfRound.push(parses[parses.length - 1]);
    }
    if (!kernel) continue;
    for (const command of commands) {
      if (unavailable.has(command)) continue;
      const r = restoreTest(file, command);
      if (typeof r === 'number') restores.get(command)!.push(r);
      else unavailable.set(command, r);
    }
  }
  const sortedParses = [...parses].sort((a, b) => a - b);
  const parseMedian = median(sortedParses);
  console.log(`parse (iptables-save → ruleset), ${parses.length} runs: median ${ms(parseMedian)}, best ${ms(sortedParses[0])}, worst ${ms(sortedParses[sortedParses.length - 1])}, first ${ms(parses[0])}`);
  console.log(`  the first parse of each round (after the previous round's iptables-restore runs): ${firstOfRound.map(ms).join(', ')}`);
  if (kernel) {
    for (const command of commands) {
      const why = unavailable.get(command);
      if (why !== undefined) {
        console.log(`${command} --test: ${why}`);
        continue;
      }
      const runs = restores.get(command)!.sort((a, b) => a - b);
      const restoreMedian = median(runs);
      console.log(
        `${command} --test on the same file, ${runs.length} runs between the parses: median ${ms(restoreMedian)} (${runs.map(ms).join(', ')})`
        + `  → svcpath parse is ${(restoreMedian / parseMedian).toFixed(1)}× faster (target ≥ 10×;`
        + ` ${(restoreMedian / median([...firstOfRound].sort((x, y) => x - y))).toFixed(1)}× against the first parse of each round)`,
      );
    }
  }

  const rs = completeKubeProxy(parseDump(dump));
  const packets = frontends(cluster);
  const node = { addresses: cluster.nodeIPs };
  const { samples, outcomesPerTrace, firstMs } = warmTraces((packet) => trace(rs, { node, packet }), packets);
  console.log(
    `trace, warm, 5000 random frontends of ${packets.length} (ClusterIP, NodePort, LB): median ${ms(percentile(samples, 0.5))}, p99 ${ms(percentile(samples, 0.99))}, max ${ms(samples[samples.length - 1])} (target p99 < 1 ms); ${outcomesPerTrace.toFixed(1)} outcomes per trace`,
  );
  console.log(`first trace on a fresh parse (compiles the chains it enters): ${ms(firstMs)}`);

  // Diff: B is A with a hundred Services edited (an endpoint removed, or one added).
  const edited = editHundred(cluster);
  // Each run diffs freshly parsed snapshots, as a server does the first time a pair is asked for.
  const dumpB = renderIptablesSave(edited);
  const runs: number[] = [];
  const selfRuns: number[] = [];
  let diff: ReturnType<typeof diffSnapshots> | null = null;
  for (let i = 0; i < 3; i++) {
    const sideA = { nodes: [{ name: 'node', addresses: cluster.nodeIPs, ruleset: completeKubeProxy(parseDump(dump)) }] };
    const sideB = { nodes: [{ name: 'node', addresses: cluster.nodeIPs, ruleset: completeKubeProxy(parseDump(dumpB)) }] };
    const sideA2 = { nodes: [{ name: 'node', addresses: cluster.nodeIPs, ruleset: completeKubeProxy(parseDump(dump)) }] };
    collectGarbage();
    const [d, diffMs] = time(() => diffSnapshots(sideA, sideB));
    diff = d;
    runs.push(diffMs);
    collectGarbage();
    selfRuns.push(time(() => diffSnapshots(sideA, sideA2))[1]);
  }
  runs.sort((x, y) => x - y);
  selfRuns.sort((x, y) => x - y);
  console.log(
    `diff of two ${SERVICES}-Service nodes (100 Services edited), 3 runs: median ${ms(percentile(runs, 0.5))}, worst ${ms(runs[runs.length - 1])} (target < 2 s); `
      + `${diff!.summary.frontends.changed} frontends changed, ${diff!.summary.frontends.unchanged} unchanged, ${diff!.summary.rules.rulesAdded + diff!.summary.rules.rulesRemoved} rules added or removed`,
  );
  console.log(`diff of a node against a separately parsed copy of itself: median ${ms(percentile(selfRuns, 0.5))}, worst ${ms(selfRuns[selfRuns.length - 1])}`);
  return { dump, cluster, parseMedian };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  let status = 0;
  if (process.env.BENCH_SKIP_ENGINE !== '1') {
    benchEngine();
    // The service figures come from a fresh process, as a server would run.
    const child = spawnSync(process.execPath, ['--import', 'tsx', new URL('./service.ts', import.meta.url).pathname, String(SERVICES), join(OUT, `node-${SERVICES}.iptables-save`)], { stdio: 'inherit' });
    status = child.status ?? 1;
  }
  if (process.env.BENCH_SKIP_NFT !== '1') {
    // kube-proxy's nftables mode, in a process of its own too.
    const nft = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', new URL('./nftables.ts', import.meta.url).pathname], { stdio: 'inherit' });
    status ||= nft.status ?? 1;
  }
  if ((process.env.BENCH_FLEET ?? '').trim() !== '0') {
    // A process of its own too: it starts and restarts the server, and keeps little in memory.
    const fleet = spawnSync(process.execPath, ['--import', 'tsx', new URL('./fleet.ts', import.meta.url).pathname], { stdio: 'inherit' });
    status ||= fleet.status ?? 1;
  }
  process.exitCode = status;
}
