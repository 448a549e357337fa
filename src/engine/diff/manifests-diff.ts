/**
 * What changed in the manifests: Services, their endpoints (from EndpointSlices or Endpoints,
 * per Service), Pods and Nodes added, removed and changed, with the changed fields.
 *
 * Lists whose items have an identity are compared by it, so a new endpoint is one change and not
 * a shift of every endpoint after it: Service ports by name (or number when unnamed), endpoints by
 * address. Where an object came from in the input (document and path) is not compared.
 */
import type { ClusterModel, Node, Pod, Service, ServiceEndpoint } from '../kube/model.ts';

export type ManifestKind = 'Service' | 'Endpoints' | 'Pod' | 'Node';

export interface FieldChange {
  /** e.g. `ports[http].targetPort`, `[10.244.1.5]`, `externalTrafficPolicy`. */
  readonly path: string;
  /** undefined when the field is new. */
  readonly before: unknown;
  /** undefined when the field is gone. */
  readonly after: unknown;
}

export interface ManifestChange {
  readonly kind: ManifestKind;
  /** "ns/name" (a Node's name alone; for Endpoints, the Service's). */
  readonly name: string;
  readonly change: 'added' | 'removed' | 'changed';
  readonly fields?: readonly FieldChange[];
}

export interface ManifestsDiff {
  readonly changes: readonly ManifestChange[];
  readonly counts: { readonly added: number; readonly removed: number; readonly changed: number };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Field-by-field differences of two plain values. */
function fields(before: unknown, after: unknown, path: string, out: FieldChange[]): void {
  if (before === after) return;
  if (isRecord(before) && isRecord(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    for (const k of keys) {
      const sub = /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? (path ? `${path}.${k}` : k) : `${path}[${k}]`;
      fields(before[k], after[k], sub, out);
    }
    return;
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    if (before.length === after.length) {
      before.forEach((x, i) => fields(x, after[i], `${path}[${i}]`, out));
      return;
    }
  }
  out.push({ path, before, after });
}

function serviceView(s: Service): Record<string, unknown> {
  const { source: _source, ports, ...rest } = s;
  const byName: Record<string, unknown> = {};
  for (const p of ports) byName[p.name || String(p.port)] = p;
  return { ...rest, ports: byName };
}

function endpointsView(list: readonly ServiceEndpoint[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  // `from` names the EndpointSlice, whose generated name says nothing about where traffic goes.
  for (const { from: _from, ...e } of list) out[e.ip] = e;
  return out;
}

function podView(p: Pod): Record<string, unknown> {
  const { source: _source, ...rest } = p;
  return rest;
}

function nodeView(n: Node): Record<string, unknown> {
  const { source: _source, ...rest } = n;
  return rest;
}

/** Compares the manifests of two snapshots; a missing model counts as empty. */
export function diffManifests(a: ClusterModel | null | undefined, b: ClusterModel | null | undefined): ManifestsDiff {
  const changes: ManifestChange[] = [];
  const counts = { added: 0, removed: 0, changed: 0 };
  const compare = <T>(kind: ManifestKind, ma: ReadonlyMap<string, T>, mb: ReadonlyMap<string, T>, view: (x: T) => unknown) => {
    const names = [...new Set([...ma.keys(), ...mb.keys()])].sort();
    for (const name of names) {
      const x = ma.get(name);
      const y = mb.get(name);
      if (x === undefined) {
        counts.added++;
        changes.push({ kind, name, change: 'added' });
      } else if (y === undefined) {
        counts.removed++;
        changes.push({ kind, name, change: 'removed' });
      } else {
        const out: FieldChange[] = [];
        fields(view(x), view(y), '', out);
        if (out.length === 0) continue;
        counts.changed++;
        changes.push({ kind, name, change: 'changed', fields: out });
      }
    }
  };
  const empty = new Map<string, never>();
  compare('Service', a?.services ?? empty, b?.services ?? empty, serviceView);
  compare('Endpoints', a?.endpoints ?? empty, b?.endpoints ?? empty, endpointsView);
  compare('Pod', a?.pods ?? empty, b?.pods ?? empty, podView);
  compare('Node', a?.nodes ?? empty, b?.nodes ?? empty, nodeView);
  return { changes, counts };
}
