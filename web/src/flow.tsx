/**
 * A trace answer on one node drawn as a flow: the packet (frontend) on the left, the chains it
 * walks through, and one branch per outcome on the right (the endpoint, or DROP/REJECT), each
 * labelled with its share. Placement is dagre's (a layered DAG layout), not laid out by hand.
 */
import dagre from '@dagrejs/dagre';
import type { EdgeLabel, GraphLabel } from '@dagrejs/dagre';
import { endpointLabel, exactShare, percent } from './format.ts';
import type { NodeTrace, Outcome, TraceStep } from './types.ts';

const STOPS = new Set(['DROP', 'REJECT']);

/**
 * The chains that decided an outcome, in order: the hook it entered by (and, for a DROP or
 * REJECT, the hook that dropped it), without chains called and returned from (KUBE-MARK-MASQ:
 * the masquerade is drawn on the branch instead) or built-in policies the packet just passed.
 */
export function spine(o: Outcome): TraceStep[] {
  if (o.path.length === 0) return [];
  const last = o.path[o.path.length - 1];
  const stopped = STOPS.has(o.verdict.toUpperCase());
  const hooks = new Set([o.path[0].hook, stopped ? last.hook : o.path[0].hook]);
  const kept: TraceStep[] = [];
  for (const s of o.path) {
    if (!hooks.has(s.hook)) continue;
    if (s.action.startsWith('policy') && !(stopped && s === last)) continue;
    const at = kept.findIndex((k) => k.hook === s.hook && k.table === s.table && k.chain === s.chain);
    if (at >= 0) kept.splice(at);
    kept.push(s);
  }
  return kept;
}

const chainId = (s: TraceStep) => `${s.hook}|${s.table}|${s.chain}`;

interface Box { id: string; kind: 'frontend' | 'chain' | 'endpoint' | 'drop' | 'other'; lines: string[]; outcome?: number }

/** Widths of a character at the sizes the style sheet sets (13px; the first line bold), with room to spare. */
const CHAR = { sans: 8.1, mono: 8.3, sub: 7.0 };

function boxSize(b: Box): { width: number; height: number } {
  const per = b.kind === 'chain' ? CHAR.mono : CHAR.sans;
  const width = Math.max(...b.lines.map((l, i) => l.length * (i === 0 ? per : CHAR.sub))) + 26;
  return { width: Math.max(width, 90), height: 16 + b.lines.length * 17 };
}

function endpointBox(o: Outcome, i: number): Box {
  const verdict = o.verdict.toUpperCase();
  if (STOPS.has(verdict)) {
    const last = o.path[o.path.length - 1];
    return { id: `out-${i}`, kind: 'drop', outcome: i, lines: [verdict, last ? `${last.table}/${last.chain}${last.index > 0 ? ` #${last.index}` : ''}` : 'dropped'] };
  }
  const pod = o.endpoint?.pod;
  const node = o.endpoint?.node ?? pod?.node;
  if (verdict === 'DNAT' || o.endpoint) {
    const lines = [pod ? pod.name : endpointLabel(o)];
    if (pod) lines.push(endpointLabel(o));
    if (node) lines.push(`node ${node}`);
    return { id: `out-${i}`, kind: 'endpoint', outcome: i, lines };
  }
  return { id: `out-${i}`, kind: 'other', outcome: i, lines: [verdict, `${endpointLabel(o)}${o.delivery ? ` · ${o.delivery}` : ''}`] };
}

interface NodeLabel { box: Box; width: number; height: number; x?: number; y?: number }

export interface FlowProps {
  result: NodeTrace;
  selected: number | null;
  onSelect: (outcome: number) => void;
}

export function Flow({ result, selected, onSelect }: FlowProps) {
  const g = new dagre.graphlib.Graph<GraphLabel, NodeLabel, EdgeLabel>();
  g.setGraph({ rankdir: 'LR', nodesep: 16, ranksep: 56, edgesep: 12, marginx: 10, marginy: 10 });
  g.setDefaultEdgeLabel(() => ({}));
  const p = result.packet;
  const front: Box = {
    id: 'in', kind: 'frontend',
    lines: [`${p.protocol} ${p.source} → ${p.destination}${p.port ? `:${p.port}` : ''}`, `enters ${result.entry} on ${result.node}`],
  };
  const add = (b: Box) => {
    if (!g.hasNode(b.id)) g.setNode(b.id, { box: b, ...boxSize(b) });
  };
  add(front);
  const shares = new Map<string, number>();
  const finals = new Map<string, number>();
  result.outcomes.forEach((o, i) => {
    let from = front.id;
    for (const s of spine(o)) {
      const id = chainId(s);
      add({ id, kind: 'chain', lines: [s.chain, `${s.table} · ${s.hook}`] });
      const key = `${from}\u0000${id}`;
      shares.set(key, (shares.get(key) ?? 0) + o.probability);
      if (from !== id) g.setEdge(from, id, { width: 0, height: 0 });
      from = id;
    }
    const end = endpointBox(o, i);
    add(end);
    const label = `${percent(o.probability)}${o.masquerade ? ' · masq' : ''}`;
    g.setEdge(from, end.id, { width: label.length * 7.4 + 14, height: 22, labelpos: 'c' });
    finals.set(end.id, i);
  });
  dagre.layout(g);
  const { width = 0, height = 0 } = g.graph();

  const boxes = g.nodes().map((id) => g.node(id));
  const edges = g.edges().map((e) => ({ e, label: g.edge(e) as { points: Array<{ x: number; y: number }>; x?: number; y?: number; width: number; height: number } }));
  const path = (pts: Array<{ x: number; y: number }>) => pts.map((pt, k) => `${k === 0 ? 'M' : 'L'}${pt.x.toFixed(1)},${pt.y.toFixed(1)}`).join(' ');

  const nodeBox = (n: { box: Box; x?: number; y?: number; width: number; height: number }) => {
    const x = (n.x ?? 0) - n.width / 2;
    const y = (n.y ?? 0) - n.height / 2;
    return (
      <g class={`n ${n.box.kind}`} transform={`translate(${x.toFixed(1)},${y.toFixed(1)})`}>
        <rect width={n.width} height={n.height} rx={7} />
        {n.box.lines.map((l, k) => (
          <text x={12} y={21 + k * 17} class={k === 0 ? 'main' : 'sub'} font-weight={k === 0 ? 600 : 400}>{l}</text>
        ))}
      </g>
    );
  };

  return (
    <svg class="flow" role="group" aria-label={`Trace on ${result.node}: ${result.outcomes.length} branches`} viewBox={`0 0 ${Math.ceil(width)} ${Math.ceil(height)}`} style={{ width: '100%', maxWidth: `${Math.ceil(width * 1.3)}px` }}>
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
          <path d="M0,0 L10,5 L0,10 z" />
        </marker>
      </defs>
      {edges.filter(({ e }) => !finals.has(e.w)).map(({ label }) => (
        <g class="e"><path d={path(label.points)} marker-end="url(#arrow)" /></g>
      ))}
      {boxes.filter((n) => n.box.outcome === undefined).map(nodeBox)}
      {edges.filter(({ e }) => finals.has(e.w)).map(({ e, label }) => {
        const i = finals.get(e.w)!;
        const o = result.outcomes[i];
        const n = g.node(e.w);
        const stopped = STOPS.has(o.verdict.toUpperCase());
        const text = `${percent(o.probability)}${o.masquerade ? ' · masq' : ''}`;
        const who = n.box.lines.join(', ');
        return (
          <g
            class={`branch${selected === i ? ' selected' : ''}`}
            data-branch={i}
            role="button"
            tabindex={0}
            aria-pressed={selected === i}
            aria-label={`Branch ${i + 1}: ${percent(o.probability)} (${exactShare(o)}) to ${who}${o.masquerade ? ', masqueraded' : ''}. Show its rule path`}
            onClick={() => onSelect(i)}
            onKeyDown={(ev) => {
              if (ev.key === 'Enter' || ev.key === ' ') {
                ev.preventDefault();
                onSelect(i);
              }
            }}
          >
            <g class={`e${o.masquerade ? ' masq' : ''}${stopped ? ' drop' : ''}`}><path d={path(label.points)} marker-end="url(#arrow)" /></g>
            {nodeBox(n)}
            <g class={`e-label${o.masquerade ? ' masq' : ''}`} transform={`translate(${((label.x ?? 0) - label.width / 2).toFixed(1)},${((label.y ?? 0) - 11).toFixed(1)})`}>
              <title>{`${percent(o.probability)}: ${exactShare(o)}${o.masquerade ? `; masqueraded${o.masqueradeReason ? ` (${o.masqueradeReason})` : ''}` : ''}`}</title>
              <rect width={label.width} height={22} rx={11} />
              <text x={label.width / 2} y={15.5} text-anchor="middle" data-share>{text}</text>
            </g>
          </g>
        );
      })}
    </svg>
  );
}
