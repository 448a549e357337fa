/**
 * View 4: where the rules and the manifests disagree, grouped by severity and check; each finding
 * links to its Service's trace and to the rules it names (view 'rules': the node's dump, the rule
 * marked).
 */
import { useEffect, useRef } from 'preact/hooks';
import { rest, getToken, ApiError } from '../api.ts';
import { href, navigate } from '../route.ts';
import type { AuditReport, Finding } from '../types.ts';
import { Show, SnapshotPicker, useAsync } from '../ui.tsx';

const SEVERITIES = ['error', 'warning', 'info'] as const;
const TITLES: Record<Finding['severity'], string> = { error: 'Errors', warning: 'Warnings', info: 'Information' };

export function AuditView({ query }: { query: URLSearchParams }) {
  const snapshot = query.get('snapshot');
  const report = useAsync(snapshot, () => rest<AuditReport>(`/v1/snapshots/${encodeURIComponent(snapshot!)}/audit`));
  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit</h1>
      <form class="form" aria-label="Snapshot to audit" onSubmit={(e) => e.preventDefault()}>
        <SnapshotPicker id="audit-snapshot" label="Snapshot" value={snapshot} onChange={(ref) => navigate(href('audit', { snapshot: ref }))} />
      </form>
      {!snapshot ? <p class="empty">Choose a snapshot.</p> : (
        <Show result={report} what="the audit (every check on every node)">{(r) => <Findings findings={r.findings} snapshot={snapshot} />}</Show>
      )}
    </section>
  );
}

function Findings({ findings, snapshot }: { findings: Finding[]; snapshot: string }) {
  if (findings.length === 0) return <p class="empty" role="status">No findings: the rules and the manifests agree.</p>;
  const counts = SEVERITIES.map((s) => {
    const n = findings.filter((f) => f.severity === s).length;
    return `${n} ${s === 'info' || n === 1 ? s : `${s}s`}`;
  }).join(' · ');
  return (
    <div class="findings">
      <p class="muted" role="status">{findings.length} {findings.length === 1 ? 'finding' : 'findings'}: {counts}</p>
      {SEVERITIES.map((severity) => {
        const of = findings.filter((f) => f.severity === severity);
        if (of.length === 0) return null;
        const checks = [...new Set(of.map((f) => f.check))].sort();
        return (
          <section class="sev-group" aria-labelledby={`sev-${severity}`} data-severity={severity}>
            <h2 id={`sev-${severity}`}><span class={`badge ${severity}`}>{severity}</span> {TITLES[severity]} <span class="muted">({of.length})</span></h2>
            {checks.map((check) => (
              <section class="check-group" aria-label={`${severity} findings of ${check}`} data-check={check}>
                <h3>{check}</h3>
                {of.filter((f) => f.check === check).map((f) => <FindingItem finding={f} snapshot={snapshot} />)}
              </section>
            ))}
          </section>
        );
      })}
    </div>
  );
}

function FindingItem({ finding: f, snapshot }: { finding: Finding; snapshot: string }) {
  return (
    <article class="finding">
      <div>{f.message}</div>
      <div class="meta">
        {f.node && <span>node {f.node}</span>}
        {f.service && (
          <a href={href('trace', { snapshot, service: f.service, servicePort: f.port ?? '', node: f.node ?? '' })}>
            Trace {f.service}{f.port ? `:${f.port}` : ''}
          </a>
        )}
      </div>
      {f.rules.length > 0 && <RuleLinks rules={f.rules.slice(0, SHOWN)} node={f.node} snapshot={snapshot} />}
      {f.rules.length > SHOWN && (
        <details>
          <summary>{f.rules.length - SHOWN} more rules</summary>
          <RuleLinks rules={f.rules.slice(SHOWN)} node={f.node} snapshot={snapshot} />
        </details>
      )}
    </article>
  );
}

/** Rules shown with a finding before the rest are folded away. */
const SHOWN = 3;

function RuleLinks({ rules, node, snapshot }: { rules: Finding['rules']; node?: string | null; snapshot: string }) {
  return (
    <ul aria-label="Rules named">
      {rules.map((r) => (
        <li>
          <a href={href('rules', { snapshot, node: node ?? '', table: r.table, chain: r.chain, index: r.index })}>{r.table}/{r.chain} #{r.index}</a> {r.rule}
        </li>
      ))}
    </ul>
  );
}

/** The rules view: a node's dump as uploaded, the rule a link names marked and scrolled to. */
export function RulesView({ query }: { query: URLSearchParams }) {
  const snapshot = query.get('snapshot') ?? '';
  const node = query.get('node') ?? '';
  const table = query.get('table') ?? '';
  const chain = query.get('chain') ?? '';
  const index = Number(query.get('index') ?? 0);
  const dump = useAsync(snapshot && node ? `${snapshot}|${node}` : null, async () => {
    const token = getToken();
    const res = await fetch(`/v1/snapshots/${encodeURIComponent(snapshot)}/nodes/${encodeURIComponent(node)}/rules`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    if (!res.ok) {
      const body = await res.json().catch(() => ({})) as { code?: string; detail?: string };
      throw new ApiError(res.status, body.code ?? 'ERROR', body.detail ?? res.statusText);
    }
    return res.text();
  });
  return (
    <section aria-labelledby="rules-title">
      <h1 id="rules-title">Rules of {node || 'a node'}</h1>
      <p class="muted">{snapshot}{chain ? ` · ${table}/${chain}${index ? ` #${index}` : ''}` : ''} · <a href={href('audit', { snapshot })}>back to the audit</a></p>
      {!snapshot || !node ? <p class="empty">A link from a finding names the snapshot, the node and the rule.</p> : (
        <Show result={dump} what="the dump">{(text) => <Dump text={text} table={table} chain={chain} index={index} />}</Show>
      )}
    </section>
  );
}

/**
 * Marks the `index`-th rule of `chain` in `table` (iptables-save sections, or the whole text for
 * iptables -S), or the whole chain when the index cannot be placed.
 */
function markedLines(lines: string[], table: string, chain: string, index: number): Set<number> {
  const inTable: number[] = [];
  let current = '';
  const sections = lines.some((l) => l.startsWith('*'));
  lines.forEach((l, i) => {
    if (l.startsWith('*')) current = l.slice(1).trim();
    if ((!sections || current === table) && l.startsWith(`-A ${chain} `)) inTable.push(i);
  });
  if (index > 0 && index <= inTable.length) return new Set([inTable[index - 1]]);
  return new Set(inTable);
}

function Dump({ text, table, chain, index }: { text: string; table: string; chain: string; index: number }) {
  const lines = text.split('\n');
  const marked = chain ? markedLines(lines, table, chain, index) : new Set<number>();
  const first = useRef<HTMLDivElement>(null);
  useEffect(() => first.current?.scrollIntoView({ block: 'center' }), [text, chain, index]);
  const firstMarked = Math.min(...marked);
  return (
    <div class="dump" role="region" aria-label="Node dump" tabindex={0}>
      {lines.map((l, i) => (
        <div class={marked.has(i) ? 'hit' : ''} ref={i === firstMarked ? first : undefined} aria-current={marked.has(i) ? 'true' : undefined}><span class="ln">{i + 1}</span>{l}</div>
      ))}
    </div>
  );
}
