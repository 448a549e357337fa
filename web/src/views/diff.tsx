/**
 * View 3: what changed between two snapshots (default: a cluster's latest and the one before):
 * the frontends whose behaviour changed, their shares before and after side by side, then the
 * rule and manifest changes. The lists are paginated together by the API (`cursor` in the URL).
 */
import { useEffect, useState } from 'preact/hooks';
import { graphql, rest } from '../api.ts';
import { endpointLabel, exactShare, percent } from '../format.ts';
import { href, navigate } from '../route.ts';
import type { DiffPage, FrontendChange, Outcome } from '../types.ts';
import { Show, SnapshotPicker, useAsync } from '../ui.tsx';
import { summaryText } from './clusters.tsx';

/** from/to as the URL gives them; without `from`, the version before `to` (default the cluster's latest). */
async function resolvePair(q: URLSearchParams): Promise<{ from: string; to: string } | null> {
  const to = q.get('to') ?? (q.get('cluster') ? `${q.get('cluster')}@latest` : null);
  if (!to) return null;
  const from = q.get('from');
  if (from) return { from, to };
  const s = (await graphql<{ snapshot: { cluster: string; version: number } | null }>('query($id: ID!) { snapshot(id: $id) { cluster version } }', { id: to })).snapshot;
  if (!s) throw new Error(`no snapshot ${to}`);
  if (s.version < 2) throw new Error(`${s.cluster}@${s.version} is the cluster's first version: there is nothing before it to compare with`);
  return { from: `${s.cluster}@${s.version - 1}`, to: `${s.cluster}@${s.version}` };
}

export function DiffView({ query }: { query: URLSearchParams }) {
  const pair = useAsync(query.toString() + '|pair', () => resolvePair(query));
  const [picked, setPicked] = useState<{ from: string | null; to: string | null }>({ from: null, to: null });
  useEffect(() => {
    if (pair.state === 'done') setPicked({ from: pair.value?.from ?? null, to: pair.value?.to ?? null });
  }, [pair.state === 'done' ? `${pair.value?.from}|${pair.value?.to}` : '']);
  const resolved = pair.state === 'done' ? pair.value : null;
  const cursor = query.get('cursor') ?? undefined;
  const diff = useAsync(resolved ? `${resolved.from}|${resolved.to}|${cursor ?? ''}` : null, () =>
    rest<DiffPage>('/v1/diff', { from: resolved!.from, to: resolved!.to, cursor, limit: 25 }));

  return (
    <section aria-labelledby="diff-title">
      <h1 id="diff-title">Diff</h1>
      <form
        class="form"
        aria-label="Snapshots to compare"
        onSubmit={(e) => {
          e.preventDefault();
          if (picked.from && picked.to) navigate(href('diff', { from: picked.from, to: picked.to }));
        }}
      >
        <SnapshotPicker id="diff-from" label="From" value={picked.from} onChange={(from) => setPicked({ ...picked, from })} />
        <SnapshotPicker id="diff-to" label="To" value={picked.to} onChange={(to) => setPicked({ ...picked, to })} />
        <button type="submit" class="primary" disabled={!picked.from || !picked.to}>Compare</button>
      </form>
      {pair.state === 'done' && pair.value === null ? (
        <p class="empty">Choose two snapshots (or open a cluster's Diff link: its latest version against the one before).</p>
      ) : (
        <Show result={pair} what="the snapshots">
          {() => <Show result={diff} what="the diff">{(d) => <DiffBody diff={d} query={query} />}</Show>}
        </Show>
      )}
    </section>
  );
}

function DiffBody({ diff, query }: { diff: DiffPage; query: URLSearchParams }) {
  const s = diff.summary;
  const from = query.get('from') ?? diff.from;
  const to = query.get('to') ?? diff.to;
  const cards: Array<[number | string, string]> = [
    [s.frontends.changed, 'frontends changed'],
    [s.frontends.added, 'frontends added'],
    [s.frontends.removed, 'frontends removed'],
    [s.frontends.unchanged, 'frontends unchanged'],
    [`+${s.endpoints.added} −${s.endpoints.removed}`, 'endpoints'],
    [`+${s.rules.rulesAdded} −${s.rules.rulesRemoved}`, 'rules'],
    [s.manifests.compared ? s.manifests.added + s.manifests.removed + s.manifests.changed : 'not compared', 'objects changed'],
  ];
  const next = diff.nextCursor ? href('diff', { from, to, cursor: diff.nextCursor }) : null;
  return (
    <div class="diff">
      <p class="muted" role="status">{summaryText(s)}</p>
      <div class="summary-cards">
        {cards.map(([n, what]) => <div class="card"><div class="big">{n}</div><div class="what">{what}</div></div>)}
      </div>
      <h2>Frontends whose behaviour changed <span class="muted">({diff.totals.frontends})</span></h2>
      {diff.frontends.length === 0 ? <p class="empty">None on this page.</p> : (
        <table class="grid" data-testid="frontend-changes">
          <thead><tr><th scope="col">Node</th><th scope="col">Service</th><th scope="col">Frontend</th><th scope="col">Change</th><th scope="col">Shares before and after</th></tr></thead>
          <tbody>
            {diff.frontends.map((f) => (
              <tr>
                <td>{f.node}</td>
                <td>{f.service ? <a href={href('trace', { snapshot: to, destination: f.frontend.ip, port: f.frontend.port, protocol: f.frontend.protocol === 'tcp' ? '' : f.frontend.protocol, node: f.node })}>{f.service}</a> : '—'}</td>
                <td class="mono">{f.frontend.kind} {f.frontend.ip}:{f.frontend.port}/{f.frontend.protocol}</td>
                <td>
                  <span class={`badge ${f.change}`}>{f.change}</span>
                  {f.known && <div class="muted" title={f.known.reason}>known: {f.known.code}</div>}
                </td>
                <td><Shares change={f} />{f.changes && f.changes.length > 0 && <ul class="changes-list">{f.changes.slice(0, 4).map((c) => <li>{c}</li>)}{f.changes.length > 4 && <li class="muted">and {f.changes.length - 4} more</li>}</ul>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Rule changes <span class="muted">({diff.totals.rules})</span></h2>
      {diff.rules.length === 0 ? <p class="empty">None on this page.</p> : (
        <table class="grid" data-testid="rule-changes">
          <thead><tr><th scope="col">Node</th><th scope="col">Table</th><th scope="col">Chain</th><th scope="col">Change</th><th scope="col">Rule</th></tr></thead>
          <tbody>
            {diff.rules.map((r) => (
              <tr>
                <td>{r.node}</td><td>{r.table}</td><td class="mono">{r.chain}</td>
                <td><span class={`badge ${r.change.endsWith('added') ? 'added' : r.change.endsWith('removed') ? 'removed' : 'changed'}`}>{r.change}</span></td>
                <td class="rule">{r.rule ?? (r.from && r.to ? `${r.from} → ${r.to}` : '')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Manifest changes <span class="muted">({diff.totals.manifests})</span></h2>
      {!s.manifests.compared ? <p class="empty">Not compared{s.manifests.reason ? `: ${s.manifests.reason}` : ''}.</p> : diff.manifests.length === 0 ? <p class="empty">None on this page.</p> : (
        <table class="grid" data-testid="manifest-changes">
          <thead><tr><th scope="col">Kind</th><th scope="col">Name</th><th scope="col">Change</th><th scope="col">Fields</th></tr></thead>
          <tbody>
            {diff.manifests.map((m) => (
              <tr>
                <td>{m.kind}</td><td class="mono">{m.name}</td><td><span class={`badge ${m.change}`}>{m.change}</span></td>
                <td class="rule">{(m.fields ?? []).map((f) => <div>{f.path}: {short(f.before)} → {short(f.after)}</div>)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {next && <nav class="pager" aria-label="Diff pages"><a href={next}>Next page of changes</a></nav>}
    </div>
  );
}

function short(v: unknown): string {
  if (v === undefined) return '∅';
  if (v !== null && typeof v === 'object') {
    const o = v as { ip?: string; targetRef?: { name?: string } };
    if (o.ip) return `${o.ip}${o.targetRef?.name ? ` (${o.targetRef.name})` : ''}`;
  }
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}…` : s;
}

const PALETTE = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#0891b2', '#db2777', '#65a30d', '#dc2626', '#4f46e5', '#0d9488', '#ca8a04', '#7c3aed'];

function colour(key: string): string {
  let h = 0;
  for (const c of key) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

/** Before and after as two stacked bars, an endpoint the same colour on both. */
function Shares({ change }: { change: FrontendChange }) {
  const bar = (outcomes: Outcome[] | undefined, side: string) => (
    <>
      <span class="side">{side}</span>
      <div class="bar" role="img" aria-label={`${side}: ${outcomes?.length ? outcomes.map((o) => `${endpointLabel(o)} ${percent(o.probability)}`).join(', ') : 'no frontend'}`}>
        {outcomes?.length ? outcomes.map((o) => {
          const stopped = ['DROP', 'REJECT'].includes(o.verdict.toUpperCase());
          // An object style is set through the DOM (CSSOM), which the page's Content-Security-Policy allows.
          return (
            <div class="seg" style={{ width: `${o.probability * 100}%`, background: stopped ? '#b91c1c' : colour(`${o.verdict} ${endpointLabel(o)}`) }} title={`${o.verdict} ${endpointLabel(o)}: ${percent(o.probability)} (${exactShare(o)})${o.masquerade ? ', masqueraded' : ''}`}>
              {o.probability >= 0.12 ? percent(o.probability) : ''}
            </div>
          );
        }) : <span class="none">none</span>}
      </div>
    </>
  );
  return <div class="shares">{bar(change.before, 'before')}{bar(change.after, 'after')}</div>;
}
