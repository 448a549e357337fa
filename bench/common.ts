/** Shared bits of the benchmarks: percentiles, durations, the frontends of a generated node. */
import type { PacketSpec } from '../src/engine/index.ts';
import type { GenCluster } from '../test/support/kube-gen.ts';

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))];
}

export function ms(x: number): string {
  return x >= 100 ? `${x.toFixed(0)} ms` : x >= 1 ? `${x.toFixed(2)} ms` : `${(x * 1000).toFixed(0)} µs`;
}

/**
 * A full collection before a timed run (when node runs with --expose-gc, as `npm run bench` does),
 * so a run is not charged for the garbage the previous one left.
 */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

export function time<T>(fn: () => T): [T, number] {
  const t0 = performance.now();
  const v = fn();
  return [v, performance.now() - t0];
}

/** Every frontend of the generated node as a packet: ClusterIPs from a pod, NodePorts and LB IPs from outside. */
export function frontends(cluster: GenCluster): PacketSpec[] {
  const out: PacketSpec[] = [];
  const node = cluster.nodeIPs[0];
  for (const s of cluster.services) {
    if (s.clusterIP === 'None') continue;
    for (const p of s.ports) {
      const protocol = p.protocol.toLowerCase() as PacketSpec['protocol'];
      out.push({ source: '10.244.7.7', destination: s.clusterIP, port: p.port, protocol });
      if (p.nodePort) out.push({ source: '203.0.113.200', destination: node, port: p.nodePort, protocol });
      for (const ip of s.loadBalancerIPs) out.push({ source: '198.51.100.200', destination: ip, port: p.port, protocol });
    }
  }
  return out;
}


export interface WarmTraces {
  /** Milliseconds of each timed trace, sorted. */
  samples: number[];
  outcomesPerTrace: number;
  /** The very first trace, before any warm-up. */
  firstMs: number;
}

/**
 * Trace latency once every chain has been compiled, as a long-running server would have it: one
 * trace of every packet first, then 5000 timed traces of packets taken across the list.
 */
export function warmTraces(trace: (packet: PacketSpec) => { outcomes: readonly unknown[] }, packets: readonly PacketSpec[]): WarmTraces {
  const [, firstMs] = time(() => trace(packets[0]));
  for (const p of packets) trace(p);
  const samples: number[] = [];
  let outcomes = 0;
  for (let i = 0; i < 5000; i++) {
    const p = packets[(i * 7919) % packets.length];
    const [r, t] = time(() => trace(p));
    samples.push(t);
    outcomes += r.outcomes.length;
  }
  samples.sort((a, b) => a - b);
  return { samples, outcomesPerTrace: outcomes / 5000, firstMs };
}

/**
 * Each of the 5000 packets warmTraces times, traced three times in a row, the fastest kept; sorted.
 * A lower bound on a trace's cost: another process's time slice or a collection only ever adds
 * to a trace, and the second and third traces of a packet find its rules in the CPU's caches.
 * Beside the wall-clock figures it tells the tracer's own cost from a busy machine's.
 */
export function fastestOfThree(trace: (packet: PacketSpec) => unknown, packets: readonly PacketSpec[]): number[] {
  const samples: number[] = [];
  for (let i = 0; i < 5000; i++) {
    const p = packets[(i * 7919) % packets.length];
    let best = Infinity;
    for (let j = 0; j < 3; j++) best = Math.min(best, time(() => trace(p))[1]);
    samples.push(best);
  }
  return samples.sort((a, b) => a - b);
}

/** The cluster after a deploy that touched a hundred Services: an endpoint removed from half, one added to the others. */
export function editHundred(cluster: GenCluster): GenCluster {
  const edited = structuredClone(cluster);
  edited.services.filter((s) => s.endpoints.length > 1).slice(0, 100).forEach((s, i) => {
    if (i % 2 === 0) s.endpoints = s.endpoints.slice(1);
    else s.endpoints = [...s.endpoints, { ...s.endpoints[0], ip: `10.250.${Math.floor(i / 250)}.${i % 250}`, podName: `extra-${i}` }];
  });
  return edited;
}
