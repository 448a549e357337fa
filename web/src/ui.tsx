/** Pieces every view uses: loading answers, errors (with the token prompt), the snapshot picker. */
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, getToken, graphql, setToken } from './api.ts';
import type { SnapshotRow } from './types.ts';

export type Async<T> = { state: 'loading' } | { state: 'error'; error: Error } | { state: 'done'; value: T };

/** Runs `load` whenever `key` changes (and when a token is saved); the last answer wins. */
export function useAsync<T>(key: string | null, load: () => Promise<T>): Async<T> {
  const [result, setResult] = useState<Async<T>>({ state: 'loading' });
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    const again = () => setGeneration((g) => g + 1);
    window.addEventListener(TOKEN_CHANGED, again);
    return () => window.removeEventListener(TOKEN_CHANGED, again);
  }, []);
  useEffect(() => {
    if (key === null) return;
    let live = true;
    setResult({ state: 'loading' });
    load().then(
      (value) => live && setResult({ state: 'done', value }),
      (error: Error) => live && setResult({ state: 'error', error }),
    );
    return () => {
      live = false;
    };
  }, [key, generation]);
  return result;
}

const TOKEN_CHANGED = 'svcpath:token';

export function TokenForm({ onDone }: { onDone?: () => void }) {
  const [value, setValue] = useState('');
  const saved = getToken() !== null;
  return (
    <form
      class="token-form"
      onSubmit={(e) => {
        e.preventDefault();
        setToken(value.trim() || null);
        setValue('');
        window.dispatchEvent(new Event(TOKEN_CHANGED));
        onDone?.();
      }}
    >
      <label>
        API token
        <input type="password" autocomplete="off" placeholder={saved ? 'saved for this tab' : 'svcp_…'} value={value} onInput={(e) => setValue(e.currentTarget.value)} />
      </label>
      <button type="submit">{value ? 'Use token' : saved ? 'Forget token' : 'Use token'}</button>
    </form>
  );
}

export function ErrorBox({ error }: { error: Error }) {
  const api = error instanceof ApiError ? error : null;
  return (
    <div class="error" role="alert">
      <strong>{api ? `${api.status} ${api.code}` : 'Error'}</strong> {error.message}
      {api?.needsToken && (
        <div class="error-token">
          <p>This server needs an API token with the <code>read</code> scope. It is kept for this tab only and sent as <code>Authorization: Bearer</code>.</p>
          <TokenForm />
        </div>
      )}
    </div>
  );
}

/** Loading text, the error, or the content. */
export function Show<T>({ result, children, what }: { result: Async<T>; what: string; children: (value: T) => ComponentChildren }) {
  if (result.state === 'loading') return <p class="loading" role="status">Loading {what}…</p>;
  if (result.state === 'error') return <ErrorBox error={result.error} />;
  return <>{children(result.value)}</>;
}

export const SNAPSHOT_FIELDS = 'id version createdAt labels { key value } nodes { name }';

/** The snapshots of a cluster, newest first (one page of up to 100, for pickers). */
export function useSnapshots(cluster: string | null): Async<SnapshotRow[]> {
  return useAsync(cluster, async () => {
    const data = await graphql<{ snapshots: { edges: Array<{ node: SnapshotRow }> } }>(
      `query Snapshots($cluster: String!) { snapshots(cluster: $cluster, first: 100) { edges { node { ${SNAPSHOT_FIELDS} } } } }`,
      { cluster },
    );
    return data.snapshots.edges.map((e) => e.node);
  });
}

export function useClusterNames(): Async<string[]> {
  return useAsync('clusters', async () => (await graphql<{ clusters: Array<{ name: string }> }>('{ clusters { name } }')).clusters.map((c) => c.name));
}

/** `cluster@version` into its parts; a bare cluster name is its latest. */
export function splitRef(ref: string | null): { cluster: string; version: string } | null {
  if (!ref) return null;
  const at = ref.lastIndexOf('@');
  return at < 0 ? { cluster: ref, version: 'latest' } : { cluster: ref.slice(0, at), version: ref.slice(at + 1) };
}

/** A cluster select and a version select (newest first), labelled, for `cluster@version`. */
export function SnapshotPicker({ label, value, onChange, id }: { label: string; value: string | null; onChange: (ref: string) => void; id: string }) {
  const parts = splitRef(value);
  const clusters = useClusterNames();
  const snapshots = useSnapshots(parts?.cluster ?? null);
  const names = clusters.state === 'done' ? clusters.value : parts ? [parts.cluster] : [];
  return (
    <fieldset class="picker">
      <legend>{label}</legend>
      <label for={`${id}-cluster`}>Cluster</label>
      <select id={`${id}-cluster`} value={parts?.cluster ?? ''} onChange={(e) => onChange(`${e.currentTarget.value}@latest`)}>
        {!parts && <option value="">choose…</option>}
        {names.map((n) => <option value={n}>{n}</option>)}
      </select>
      <label for={`${id}-version`}>Version</label>
      <select id={`${id}-version`} value={parts?.version ?? 'latest'} disabled={!parts} onChange={(e) => parts && onChange(`${parts.cluster}@${e.currentTarget.value}`)}>
        <option value="latest">latest</option>
        {snapshots.state === 'done' && snapshots.value.map((s) => <option value={String(s.version)}>v{s.version} · {s.createdAt.slice(0, 16).replace('T', ' ')}</option>)}
      </select>
    </fieldset>
  );
}

export function Labels({ labels }: { labels: Array<{ key: string; value: string }> }) {
  if (labels.length === 0) return <span class="muted">none</span>;
  return <span class="labels">{labels.map((l) => <span class="label-chip"><span class="label-key">{l.key}=</span>{l.value}</span>)}</span>;
}
