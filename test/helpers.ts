/** Small shared helpers for tests: fixture paths and a trace shortcut. */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { completeKubeProxy, parseDump, trace } from '../src/engine/index.ts';
import type { PacketSpec, TraceResult } from '../src/engine/index.ts';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

export function fixture(...parts: string[]): string {
  return readFileSync(join(FIXTURES, ...parts), 'utf8');
}

export function traceText(
  rules: string,
  packet: Partial<PacketSpec> & { destination: string; port: number },
  addresses: string[] = ['192.168.0.2'],
): TraceResult {
  const rs = completeKubeProxy(parseDump(rules));
  return trace(rs, { node: { addresses }, packet: { source: '203.0.113.7', protocol: 'tcp', ...packet } });
}

/** "ip:port" of every DNAT outcome, in outcome order. */
export function endpoints(r: TraceResult): string[] {
  return r.outcomes.filter((o) => o.verdict === 'DNAT').map((o) => `${o.destination.ip}:${o.destination.port}`);
}

export function steps(r: TraceResult, outcome = 0): string[] {
  return r.outcomes[outcome].path.map((s) => `${s.table}/${s.chain}#${s.index}:${s.action}`);
}
