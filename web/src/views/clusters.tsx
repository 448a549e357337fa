/** View 1: the clusters, and a cluster's snapshots with what changed from the version before. */
import { graphql, rest } from '../api.ts';
import { when } from '../format.ts';
import { href } from '../route.ts';
import type { ClusterRow, DiffPage, DiffSummary, SnapshotRow } from '../types.ts';
import { Labels, Show, SNAPSHOT_FIELDS, useAsync } from '../ui.tsx';

export function ClustersView() {
  const clusters = useAsync('clusters', async () =>
    (await graphql<{ clusters: ClusterRow[] }>(`{ clusters { name createdAt snapshotCount latest { ${SNAPSHOT_FIELDS} } } }`)).clusters);
  return (
    <section aria-labelledby="clusters-title">
      <h1 id="clusters-title">Clusters</h1>
      <Show result={clusters} what="clusters">
        {(list) =>
          list.length === 0 ? (
            <p class="empty">No snapshots yet. Upload one: <code>POST /v1/clusters/NAME/snapshots</code> (see the README's tour).</p>
          ) : (
            <table class="grid" data-testid="clusters">
              <thead>
                <tr><th scope="col">Cluster</th><th scope="col">Latest version</th><th scope="col">Nodes</th><th scope="col">Taken</th><th scope="col">Snapshots</th><th scope="col"><span class="sr-only">Actions</span></th></tr>
              </thead>
              <tbody>
                {list.map((c) => (
                  <tr>
                    <th scope="row"><a href={href(`clusters/${encodeURIComponent(c.name)}`)}>{c.name}</a></th>
                    <td class="num">{c.latest ? `v${c.latest.version}` : '—'}</td>
                    <td class="num">{c.latest?.nodes.length ?? '—'}</td>
                    <td class="nowrap">{c.latest ? when(c.latest.createdAt) : "—"}</td>
                    <td class="num">{c.snapshotCount}</td>
                    <td class="actions">
                      {c.latest && (
                        <>
                          <a href={href('trace', { snapshot: `${c.name}@${c.latest.version}` })}>Trace</a>
                          <a href={href('audit', { snapshot: `${c.name}@${c.latest.version}` })}>Audit</a>
                          {c.latest.version > 1 && <a href={href('diff', { from: `${c.name}@${c.latest.version - 1}`, to: `${c.name}@${c.latest.version}` })}>Diff</a>}
                        </>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Show>
    </section>
  );
}

const PAGE = 20;

export function SnapshotsView({ cluster, after }: { cluster: string; after: string | null }) {
  const page = useAsync(`${cluster}|${after ?? ''}`, async () =>
    (await graphql<{ snapshots: { edges: Array<{ node: SnapshotRow }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } } }>(
      `query Page($cluster: String!, $after: String) { snapshots(cluster: $cluster, first: ${PAGE}, after: $after) { edges { node { ${SNAPSHOT_FIELDS} } } pageInfo { hasNextPage endCursor } } }`,
      { cluster, after },
    )).snapshots);
  return (
    <section aria-labelledby="snapshots-title">
      <p class="crumbs"><a href={href('')}>Clusters</a> / {cluster}</p>
      <h1 id="snapshots-title">Snapshots of {cluster}</h1>
      <Show result={page} what="snapshots">
        {(p) => (
          <>
            <table class="grid" data-testid="snapshots">
              <thead>
                <tr><th scope="col">Version</th><th scope="col">Taken</th><th scope="col">Nodes</th><th scope="col">Labels</th><th scope="col">Change from the version before</th><th scope="col"><span class="sr-only">Actions</span></th></tr>
              </thead>
              <tbody>
                {p.edges.map(({ node: s }) => (
                  <tr>
                    <th scope="row" class="num">v{s.version}</th>
                    <td class="nowrap">{when(s.createdAt)}</td>
                    <td class="num">{s.nodes.length}</td>
                    <td><Labels labels={s.labels} /></td>
                    <td>{s.version > 1 ? <ChangeSummary cluster={cluster} snapshot={s} /> : <span class="muted">first version</span>}</td>
                    <td class="actions">
                      <a href={href('trace', { snapshot: `${cluster}@${s.version}` })}>Trace</a>
                      <a href={href('audit', { snapshot: `${cluster}@${s.version}` })}>Audit</a>
                      {s.version > 1 && <a href={href('diff', { from: `${cluster}@${s.version - 1}`, to: `${cluster}@${s.version}` })}>Diff</a>}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            <nav class="pager" aria-label="Snapshot pages">
              {after && <a href={href(`clusters/${encodeURIComponent(cluster)}`)}>Newest</a>}
              {p.pageInfo.hasNextPage && p.pageInfo.endCursor && (
                <a href={href(`clusters/${encodeURIComponent(cluster)}`, { after: p.pageInfo.endCursor })}>Older snapshots</a>
              )}
            </nav>
          </>
        )}
      </Show>
    </section>
  );
}

/** The diff's summary against the previous version (the server computes each pair once and keeps it). */
function ChangeSummary({ cluster, snapshot }: { cluster: string; snapshot: SnapshotRow }) {
  const diff = useAsync(snapshot.id, () => rest<DiffPage>('/v1/diff', { from: `${cluster}@${snapshot.version - 1}`, to: snapshot.id, limit: 1 }));
  if (diff.state === 'loading') return <span class="muted">comparing…</span>;
  if (diff.state === 'error') return <span class="muted">not compared: {diff.error.message}</span>;
  return <span class="change-summary">{summaryText(diff.value.summary)}</span>;
}

export function summaryText(s: DiffSummary): string {
  const f = s.frontends;
  const parts: string[] = [];
  if (f.changed + f.added + f.removed === 0) parts.push('no frontend changed');
  else parts.push(`frontends: ${[f.changed && `${f.changed} changed`, f.added && `${f.added} added`, f.removed && `${f.removed} removed`].filter(Boolean).join(', ')}`);
  if (f.known) parts.push(`${f.known} known differences`);
  const r = s.rules;
  if (r.rulesAdded + r.rulesRemoved + r.rulesMoved + r.chainsAdded + r.chainsRemoved > 0) parts.push(`rules +${r.rulesAdded} −${r.rulesRemoved}`);
  const m = s.manifests;
  if (m.compared && m.added + m.removed + m.changed > 0) parts.push(`objects: ${m.changed + m.added + m.removed}`);
  if (s.nodes.added + s.nodes.removed > 0) parts.push(`nodes +${s.nodes.added} −${s.nodes.removed}`);
  return parts.join(' · ');
}
