/** Human-readable rendering of trace answers for the terminal. */
import type { DescribedOutcome, TraceOutcome, TraceResult } from '../engine/index.ts';
// From its own module: the web page bundles this file, and should not bundle the whole engine.
import { hostPort } from '../engine/net/address.ts';

export type Described = TraceOutcome & Partial<Pick<DescribedOutcome, 'service' | 'endpoint' | 'masqueradeReason'>>;

function pct(p: number): string {
  return `${(p * 100).toFixed(p === 1 || p === 0 ? 0 : 3)}%`;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

export function formatTrace(result: TraceResult, node: { name?: string; addresses: readonly string[] }): string {
  const out: string[] = [];
  const p = result.packet;
  out.push(
    `${p.protocol} ${p.source} -> ${hostPort(p.destination, p.port)} on ${node.name ?? 'the node'} (${node.addresses.join(', ')}), entering at ${result.entry}`,
  );
  out.push('');
  const outcomes = result.outcomes as readonly Described[];
  const rows = outcomes.map((o) => [
    pct(o.probability),
    o.verdict,
    hostPort(o.destination.ip, o.destination.port),
    o.masquerade ? 'yes' : o.snat ? `SNAT ${o.snat.ip ?? ''}` : 'no',
    `${o.delivery ?? '-'}${o.outInterface ? ` via ${o.outInterface}` : ''}`,
    o.service ? `${o.service.namespace}/${o.service.name}` : '-',
    o.endpoint?.pod ? `${o.endpoint.pod.name}${o.endpoint.pod.node ? ` (${o.endpoint.pod.node})` : ''}` : '-',
  ]);
  const header = ['SHARE', 'VERDICT', 'DESTINATION', 'MASQUERADE', 'DELIVERY', 'SERVICE', 'POD (NODE)'];
  // Shares are per case when the answer depends on an interface nobody named.
  if (outcomes.some((o) => o.conditions?.length)) {
    header.push('CASE');
    rows.forEach((r, i) => r.push(outcomes[i].conditions?.join(' and ') ?? 'in every case'));
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)) + 2);
  out.push('  ' + header.map((h, i) => pad(h, widths[i])).join('').trimEnd());
  for (const r of rows) out.push('  ' + r.map((c, i) => pad(c, widths[i])).join('').trimEnd());
  result.outcomes.forEach((o, k) => {
    out.push('');
    out.push(...formatOutcome(o, k));
  });
  if (result.warnings.length) {
    out.push('');
    out.push('Warnings:');
    for (const w of result.warnings) {
      out.push(`  - ${w.message}${w.rule ? ` [${w.rule.table}/${w.rule.chain} #${w.rule.index}, line ${w.rule.line}]` : ''}`);
    }
  }
  if (result.assumptions.length) {
    out.push('');
    out.push('Assumed (not in the dump):');
    for (const a of result.assumptions) out.push(`  - ${a}`);
  }
  return out.join('\n') + '\n';
}

/**
 * One outcome's heading and rule path, as `svcpath trace` prints it (the web page shows the same
 * lines for the branch clicked).
 */
export function formatOutcome(o: Described, k: number): string[] {
  const out: string[] = [];
  const given = o.conditions?.length ? ` ${o.conditions.join(' and ')}` : '';
  out.push(`Outcome ${k + 1}: ${o.verdict} ${hostPort(o.destination.ip, o.destination.port)} (${pct(o.probability)}, exactly ${o.exactProbability}${given})`);
  for (const s of o.path) {
    const where = `${s.table}/${s.chain}${s.index > 0 ? ` #${s.index}` : ''}`;
    out.push(`  ${pad(s.hook, 12)} ${pad(where, 40)} ${pad(s.action, 10)} ${s.rule}${s.assumed ? '   [assumed]' : ''}`);
  }
  if (o.masqueradeReason) out.push(`  masquerade: ${o.masqueradeReason}`);
  for (const n of o.notes) out.push(`  note: ${n}`);
  return out;
}
