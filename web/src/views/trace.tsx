/**
 * View 2: the trace form and its answer drawn as a flow. The URL holds the snapshot, the packet
 * (or the Service and its port), the node asked for, and what is being looked at (frontend, the
 * node shown, the branch opened), so a link reloads to the same picture.
 */
import { useEffect, useState } from 'preact/hooks';
import { formatOutcome } from '../../../src/cli/format.ts';
import type { Described } from '../../../src/cli/format.ts';
import { graphql, rest } from '../api.ts';
import { Flow } from '../flow.tsx';
import { endpointLabel, exactShare, percent } from '../format.ts';
import { href, navigate } from '../route.ts';
import type { NodeTrace, Outcome, TraceAnswer } from '../types.ts';
import { Show, SnapshotPicker, useAsync } from '../ui.tsx';

/** The query parameters of the form, as the URL carries them. */
const FIELDS = ['snapshot', 'destination', 'port', 'protocol', 'source', 'node', 'service', 'servicePort'] as const;
type Field = (typeof FIELDS)[number];
type Form = Record<Field, string>;

function formFrom(q: URLSearchParams): Form {
  const f = Object.fromEntries(FIELDS.map((k) => [k, q.get(k) ?? ''])) as Form;
  if (!f.protocol) f.protocol = 'tcp';
  return f;
}

export function TraceView({ query }: { query: URLSearchParams }) {
  const asked = formFrom(query);
  const [form, setForm] = useState<Form>(asked);
  useEffect(() => setForm(formFrom(query)), [query.toString()]);
  const set = (k: Field) => (e: Event) => setForm({ ...form, [k]: (e.currentTarget as HTMLInputElement).value });
  const nodes = useAsync(form.snapshot || null, async () =>
    (await graphql<{ snapshot: { nodes: Array<{ name: string; addresses: string[] }> } | null }>('query($id: ID!) { snapshot(id: $id) { nodes { name addresses } } }', { id: form.snapshot })).snapshot?.nodes ?? []);

  const ready = asked.snapshot !== '' && (asked.destination !== '' || asked.service !== '');
  const key = ready ? FIELDS.map((k) => asked[k]).join('|') : null;
  const answer = useAsync(key, () =>
    rest<TraceAnswer>(`/v1/snapshots/${encodeURIComponent(asked.snapshot)}/trace`, asked.service
      ? { service: asked.service, port: asked.servicePort, source: asked.source, node: asked.node }
      : { destination: asked.destination, port: asked.port, protocol: asked.protocol, source: asked.source, node: asked.node }));

  const submit = (e: Event) => {
    e.preventDefault();
    const byService = form.service.trim() !== '';
    navigate(href('trace', {
      snapshot: form.snapshot,
      ...(byService
        ? { service: form.service.trim(), servicePort: form.servicePort.trim() }
        : { destination: form.destination.trim(), port: form.port.trim(), protocol: form.protocol === 'tcp' ? '' : form.protocol }),
      source: form.source.trim(),
      node: form.node,
    }));
  };

  return (
    <section aria-labelledby="trace-title">
      <h1 id="trace-title">Trace</h1>
      <form class="form" onSubmit={submit} aria-label="Packet to trace">
        <SnapshotPicker id="trace-snapshot" label="Snapshot" value={form.snapshot || null} onChange={(ref) => setForm({ ...form, snapshot: ref, node: '' })} />
        <div class="group" role="group" aria-label="Packet">
          <div class="field"><label for="f-destination">Destination</label><input id="f-destination" size={18} placeholder="10.43.62.130 or ip:port" value={form.destination} onInput={set('destination')} /></div>
          <div class="field"><label for="f-port">Port</label><input id="f-port" size={6} inputMode="numeric" value={form.port} onInput={set('port')} /></div>
          <div class="field">
            <label for="f-protocol">Protocol</label>
            <select id="f-protocol" value={form.protocol} onChange={set('protocol')}>
              {['tcp', 'udp', 'sctp', 'icmp'].map((p) => <option value={p}>{p}</option>)}
            </select>
          </div>
        </div>
        <span class="or">or</span>
        <div class="group" role="group" aria-label="Kubernetes object">
          <div class="field"><label for="f-service">Service</label><input id="f-service" size={22} placeholder="namespace/name" value={form.service} onInput={set('service')} /></div>
          <div class="field"><label for="f-service-port">Service port</label><input id="f-service-port" size={8} placeholder="80 or http" value={form.servicePort} onInput={set('servicePort')} /></div>
        </div>
        <div class="field"><label for="f-source">Source</label><input id="f-source" size={16} placeholder="203.0.113.10" value={form.source} onInput={set('source')} /></div>
        <div class="field">
          <label for="f-node">Node</label>
          <select id="f-node" value={form.node} onChange={set('node')}>
            <option value="">all nodes</option>
            {nodes.state === 'done' && nodes.value.map((n) => <option value={n.name}>{n.name} ({n.addresses.join(', ')})</option>)}
          </select>
        </div>
        <button type="submit" class="primary" disabled={!form.snapshot}>Trace</button>
      </form>
      {key === null ? (
        <p class="empty">Choose a snapshot and a destination (or a Service), then Trace.</p>
      ) : (
        <Show result={answer} what="the trace">{(a) => <Answer answer={a} query={query} />}</Show>
      )}
    </section>
  );
}

/** One frontend's results: one per node. */
interface Group { title: string; results: NodeTrace[] }

function groups(answer: TraceAnswer): Group[] {
  const byKey = new Map<string, Group>();
  for (const r of answer.results) {
    const f = r.frontend;
    // A NodePort is traced on each node's own address: one frontend, compared across nodes.
    const title = !f
      ? `${r.packet.protocol} ${r.packet.destination}${r.packet.port ? `:${r.packet.port}` : ''}`
      : f.kind === 'NodePort' ? `NodePort ${f.port}/${f.protocol} on each node` : `${f.kind} ${f.destination}:${f.port}/${f.protocol}`;
    const g = byKey.get(title) ?? { title, results: [] };
    g.results.push(r);
    byKey.set(title, g);
  }
  return [...byKey.values()];
}

/** What a node does with the packet, to compare nodes: endpoints, exact shares, verdicts, masquerade. */
function signature(r: NodeTrace): string {
  return r.outcomes.map((o) => `${o.verdict} ${endpointLabel(o)} ${o.exactProbability ?? o.probability} ${o.masquerade}`).sort().join('\n');
}

/** Nodes that do something other than most nodes do. */
function disagreeing(results: NodeTrace[]): Set<string> {
  const count = new Map<string, number>();
  for (const r of results) count.set(signature(r), (count.get(signature(r)) ?? 0) + 1);
  if (count.size <= 1) return new Set();
  const top = Math.max(...count.values());
  const majority = [...count.entries()].filter(([, n]) => n === top).map(([s]) => s);
  // A tie has no majority: every node is shown as disagreeing.
  return new Set(results.filter((r) => majority.length > 1 || signature(r) !== majority[0]).map((r) => r.node));
}

function Answer({ answer, query }: { answer: TraceAnswer; query: URLSearchParams }) {
  const all = groups(answer);
  if (all.length === 0) return <p class="empty">Nothing to trace: the Service has no frontend on these nodes.</p>;
  const pick = (name: string, value: string | number | null) => {
    const q = new URLSearchParams(query);
    if (value === null) q.delete(name);
    else q.set(name, String(value));
    if (name !== 'branch') q.delete('branch');
    navigate(`/ui/trace?${q.toString()}`, true);
  };
  const gi = Math.min(Number(query.get('frontend') ?? 0) || 0, all.length - 1);
  const group = all[gi];
  const differs = disagreeing(group.results);
  const shownNode = query.get('at');
  const result = group.results.find((r) => r.node === shownNode) ?? group.results[0];
  const branchParam = query.get('branch');
  const branch = branchParam !== null && Number(branchParam) < result.outcomes.length ? Number(branchParam) : null;

  return (
    <div class="answer">
      {all.length > 1 && (
        <div class="node-switch" role="group" aria-label="Frontends">
          <span class="muted">Frontend:</span>
          {all.map((g, i) => <button type="button" aria-pressed={i === gi} onClick={() => pick('frontend', i)}>{g.title}</button>)}
        </div>
      )}
      {group.results.length > 1 && (
        <>
          <div class="node-switch" role="group" aria-label="Shown on">
            <span class="muted">Shown on:</span>
            {group.results.map((r) => (
              <button type="button" class={differs.has(r.node) ? 'differs' : ''} aria-pressed={r === result} title={differs.has(r.node) ? 'this node disagrees with the others' : undefined} onClick={() => pick('at', r.node)}>
                {r.node}
              </button>
            ))}
          </div>
          {differs.size > 0 && (
            <p class="warnings" role="status">
              Nodes disagree: {[...differs].join(', ')}{' '}
              {differs.size === group.results.length
                ? 'send this packet to different places, with no majority.'
                : `${differs.size === 1 ? 'does' : 'do'} not send this packet where the other nodes do.`}
            </p>
          )}
          <NodeColumns results={group.results} differs={differs} />
        </>
      )}
      <p class="packet-line">{result.packet.protocol} {result.packet.source} → {result.packet.destination}{result.packet.port ? `:${result.packet.port}` : ''} on {result.node}, entering at {result.entry}</p>
      <div class="flow-wrap">
        <Flow result={result} selected={branch} onSelect={(i) => pick('branch', branch === i ? null : i)} />
      </div>
      <p class="legend"><span>Click a branch (or focus it and press Enter) for its rule path.</span><span>– – dashed: masqueraded</span><span>Hover a share for its exact fraction.</span></p>
      {branch !== null && <RulePath outcome={result.outcomes[branch]} index={branch} />}
      <Outcomes result={result} onSelect={(i) => pick('branch', i)} />
      {result.warnings.length > 0 && (
        <div class="warnings"><strong>Warnings</strong><ul>{result.warnings.map((w) => <li>{w.message}</li>)}</ul></div>
      )}
      {(result.assumptions?.length ?? 0) > 0 && (
        <details class="assumptions"><summary>Assumed (not in the dump): {result.assumptions!.length}</summary><ul>{result.assumptions!.map((a) => <li>{a}</li>)}</ul></details>
      )}
    </div>
  );
}

/** One column per node: each endpoint's share there, the disagreeing nodes marked. */
function NodeColumns({ results, differs }: { results: NodeTrace[]; differs: Set<string> }) {
  const rows = [...new Set(results.flatMap((r) => r.outcomes.map((o) => `${o.verdict} ${endpointLabel(o)}`)))].sort();
  const share = (r: NodeTrace, row: string) => {
    const hits = r.outcomes.filter((o) => `${o.verdict} ${endpointLabel(o)}` === row);
    if (hits.length === 0) return null;
    return hits.reduce((s, o) => s + o.probability, 0);
  };
  return (
    <table class="grid compare" aria-label="Shares per node">
      <thead><tr><th scope="col">Outcome</th>{results.map((r) => <th scope="col" class={differs.has(r.node) ? 'sev-warning' : ''}>{r.node}{differs.has(r.node) ? ' ≠' : ''}</th>)}</tr></thead>
      <tbody>
        {rows.map((row) => (
          <tr>
            <th scope="row" class="mono">{row}</th>
            {results.map((r) => {
              const s = share(r, row);
              return <td class={`num${differs.has(r.node) ? ' differs' : ''}`}>{s === null ? '—' : percent(s)}</td>;
            })}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Outcomes({ result, onSelect }: { result: NodeTrace; onSelect: (i: number) => void }) {
  return (
    <table class="grid outcomes">
      <caption class="sr-only">Outcomes</caption>
      <thead><tr><th scope="col">Share</th><th scope="col">Verdict</th><th scope="col">Destination</th><th scope="col">Masquerade</th><th scope="col">Delivery</th><th scope="col">Service</th><th scope="col">Pod (node)</th></tr></thead>
      <tbody>
        {result.outcomes.map((o, i) => (
          <tr>
            <td class="num" title={exactShare(o)}><button type="button" onClick={() => onSelect(i)} aria-label={`Rule path of outcome ${i + 1}`}>{percent(o.probability)}</button></td>
            <td><span class={`badge ${['DROP', 'REJECT'].includes(o.verdict.toUpperCase()) ? 'error' : 'added'}`}>{o.verdict}</span></td>
            <td class="mono">{endpointLabel(o)}</td>
            <td>{o.masquerade ? <span class="badge masq" title={o.masqueradeReason}>masquerade</span> : 'no'}</td>
            <td>{o.delivery ?? '—'}</td>
            <td>{o.service ? `${o.service.namespace}/${o.service.name}` : '—'}</td>
            <td>{o.endpoint?.pod ? `${o.endpoint.pod.name}${o.endpoint.pod.node ? ` (${o.endpoint.pod.node})` : ''}` : '—'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function RulePath({ outcome, index }: { outcome: Outcome; index: number }) {
  const lines = formatOutcome(outcome as unknown as Described, index);
  return (
    <section class="path-panel" aria-labelledby="path-title" data-testid="rule-path">
      <h2 id="path-title">Rule path of branch {index + 1}: {outcome.verdict} {endpointLabel(outcome)} ({percent(outcome.probability)}, {exactShare(outcome)})</h2>
      <table class="grid">
        <thead><tr><th scope="col">Hook</th><th scope="col">Table</th><th scope="col">Chain</th><th scope="col">Index</th><th scope="col">Action</th><th scope="col">Rule</th></tr></thead>
        <tbody>
          {outcome.path.map((s) => (
            <tr>
              <td>{s.hook}</td>
              <td>{s.table}</td>
              <td class="mono">{s.chain}</td>
              <td class="num">{s.index > 0 ? s.index : '—'}</td>
              <td>{s.action}</td>
              <td class="rule">{s.rule}{s.assumed && <div class="assumed">assumed: {s.assumed}</div>}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>As <code>svcpath trace</code> prints it</h3>
      <pre>{lines.join('\n')}</pre>
    </section>
  );
}
