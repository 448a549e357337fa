/**
 * Reads Kubernetes objects, already parsed from `kubectl get … -o json` or `-o yaml` (the service
 * layer turns text into values), into a ClusterModel.
 *
 *   documents := { document }            one value per JSON text or YAML document
 *   document  := object | list | array   a bare array holds documents
 *   list      := { kind: "List" | "<Kind>List", items: [ object ] }
 *   object    := Service | EndpointSlice | Endpoints | Pod | Node | Namespace | other
 *
 * Only the fields the model uses are read, and each of them is checked: a wrong type is an
 * EngineError('MANIFEST_SYNTAX') naming the document (1-based), the object and the field path,
 * e.g. `document 3 (Service default/web): spec.ports[0].port must be an integer from 1 to 65535`.
 * Objects of other kinds are kept in `model.others` and counted in a note.
 */
import { EngineError } from '../errors.ts';
import { parseCidr } from '../net/address.ts';
import type {
  EndpointPort, Namespace, Node, NodeAddress, OtherObject, Pod, Service, ServiceEndpoint, ServicePort,
  ServiceProtocol, ServiceType, SourceRef, TrafficPolicy,
} from './model.ts';
import { canonicalIP, ClusterModel } from './model.ts';

export interface ReadClusterModelResult {
  readonly model: ClusterModel;
  /** What the reader did that the user should know: kinds kept but not used, defaults, duplicates. */
  readonly notes: string[];
}

type Json = Record<string, unknown>;

const SERVICE_TYPES: readonly ServiceType[] = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];
const PROTOCOLS: readonly ServiceProtocol[] = ['TCP', 'UDP', 'SCTP'];
const POLICIES: readonly TrafficPolicy[] = ['Cluster', 'Local'];
/** The default of sessionAffinityConfig.clientIP.timeoutSeconds (3 hours). */
const DEFAULT_AFFINITY_TIMEOUT = 10800;
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A cursor on one object: reads fields by path and raises errors that say where.
 * `where` is the object's description, e.g. `document 2 items[0] (Service default/web)`.
 */
class Fields {
  constructor(
    private readonly where: string,
    private readonly root: Json,
  ) {}

  fail(path: string, message: string): never {
    throw new EngineError('MANIFEST_SYNTAX', `${this.where}: ${path} ${message}`);
  }

  /** The value at a dotted path (`spec.ports`), or undefined; a non-object on the way is an error. */
  get(path: string, from: Json = this.root, base = ''): unknown {
    let v: unknown = from;
    let walked = base;
    for (const key of path.split('.')) {
      if (v === undefined || v === null) return undefined;
      if (!isObject(v)) this.fail(walked, 'must be an object');
      v = v[key];
      walked = walked ? `${walked}.${key}` : key;
    }
    return v;
  }

  optString(v: unknown, path: string): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') this.fail(path, `must be a string, not ${describe(v)}`);
    return v;
  }

  string(v: unknown, path: string): string {
    const s = this.optString(v, path);
    if (s === undefined) this.fail(path, 'is required');
    return s;
  }

  optBoolean(v: unknown, path: string): boolean | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') this.fail(path, `must be true or false, not ${describe(v)}`);
    return v;
  }

  optInteger(v: unknown, path: string, min: number, max: number): number | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.fail(path, `must be an integer from ${min} to ${max}, not ${describe(v)}`);
    }
    return v;
  }

  integer(v: unknown, path: string, min: number, max: number): number {
    const n = this.optInteger(v, path, min, max);
    if (n === undefined) this.fail(path, 'is required');
    return n;
  }

  array(v: unknown, path: string): readonly unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(path, `must be a list, not ${describe(v)}`);
    return v;
  }

  object(v: unknown, path: string): Json {
    if (!isObject(v)) this.fail(path, `must be an object, not ${describe(v)}`);
    return v;
  }

  optObject(v: unknown, path: string): Json | undefined {
    if (v === undefined || v === null) return undefined;
    return this.object(v, path);
  }

  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[]): T | undefined {
    const s = this.optString(v, path);
    if (s === undefined) return undefined;
    if (!(allowed as readonly string[]).includes(s)) this.fail(path, `must be one of ${allowed.join(', ')}, not ${JSON.stringify(s)}`);
    return s as T;
  }

  ip(v: unknown, path: string): string {
    const s = this.string(v, path);
    if (parseCidr(s) === null || s.includes('/')) this.fail(path, `must be an IP address, not ${JSON.stringify(s)}`);
    return canonicalIP(s);
  }

  cidr(v: unknown, path: string, trim = false): string {
    let s = this.string(v, path);
    if (trim) s = s.trim();
    if (parseCidr(s) === null) this.fail(path, `must be an IP address or CIDR, not ${JSON.stringify(s)}`);
    return s;
  }

  /** A string → string map such as labels or a selector. */
  stringMap(v: unknown, path: string): Record<string, string> {
    if (v === undefined || v === null) return {};
    const o = this.object(v, path);
    const out: Record<string, string> = {};
    for (const [k, x] of Object.entries(o)) out[k] = this.string(x, `${path}.${k}`);
    return out;
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'object') return 'an object';
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- objects and arrays were answered above: what is left prints as itself
  return String(v);
}

/** An object found in the input, with where it was. */
interface Found {
  readonly object: Json;
  readonly source: SourceRef;
  /** kind/apiVersion inherited from a `<Kind>List` whose items omit them (raw API list responses). */
  readonly defaultKind?: string;
  readonly defaultApiVersion?: string;
}

function where(source: SourceRef): string {
  return source.path ? `document ${source.document} ${source.path}` : `document ${source.document}`;
}

/** Flattens documents, arrays and lists into objects, depth first, in input order. */
function collect(value: unknown, source: SourceRef, out: Found[], inherited?: { kind?: string; apiVersion?: string }): void {
  if (value === null || value === undefined) return; // An empty YAML document.
  if (Array.isArray(value)) {
    value.forEach((v, i) => collect(v, { document: source.document, path: `${source.path}[${i}]` }, out, inherited));
    return;
  }
  if (!isObject(value)) {
    throw new EngineError('MANIFEST_SYNTAX', `${where(source)}: must be a Kubernetes object or a List, not ${describe(value)}`);
  }
  const kind = value.kind ?? inherited?.kind;
  const isList = typeof kind === 'string' && kind.endsWith('List') && (Array.isArray(value.items) || value.items === null || value.items === undefined);
  if (isList) {
    const items = value.items;
    if (items === undefined || items === null) return;
    const itemKind = kind === 'List' ? undefined : kind.slice(0, -'List'.length);
    const apiVersion = typeof value.apiVersion === 'string' ? value.apiVersion : undefined;
    (items as unknown[]).forEach((v, i) =>
      collect(v, { document: source.document, path: `${source.path ? `${source.path}.` : ''}items[${i}]` }, out, itemKind ? { kind: itemKind, apiVersion } : undefined),
    );
    return;
  }
  out.push({ object: value, source, defaultKind: inherited?.kind, defaultApiVersion: inherited?.apiVersion });
}

interface Builder {
  services: Map<string, Service>;
  slices: Map<string, { endpoints: ServiceEndpoint[]; from: string[] }>;
  legacy: Map<string, { endpoints: ServiceEndpoint[]; from: string[] }>;
  pods: Map<string, Pod>;
  nodes: Map<string, Node>;
  namespaces: Map<string, Namespace>;
  others: OtherObject[];
  notes: string[];
  defaultedNamespace: number;
}

/**
 * Reads parsed manifests into a ClusterModel. Accepts any mix of single objects, `List` /
 * `<Kind>List` objects and arrays of either. Throws EngineError('MANIFEST_SYNTAX') on a field
 * of the wrong shape; never drops an object silently.
 */
export function readClusterModel(documents: readonly unknown[]): ReadClusterModelResult {
  const found: Found[] = [];
  documents.forEach((d, i) => collect(d, { document: i + 1, path: '' }, found));
  const b: Builder = {
    services: new Map(), slices: new Map(), legacy: new Map(), pods: new Map(), nodes: new Map(),
    namespaces: new Map(), others: [], notes: [], defaultedNamespace: 0,
  };
  for (const f of found) readObject(f, b);

  // kube-proxy reads EndpointSlices; core/v1 Endpoints are only a fallback for clusters without them.
  const endpoints = new Map<string, ServiceEndpoint[]>();
  for (const [key, s] of b.slices) endpoints.set(key, s.endpoints);
  for (const [key, e] of b.legacy) {
    if (endpoints.has(key)) {
      b.notes.push(`Endpoints ${key} not used: the Service has EndpointSlices, which kube-proxy reads instead`);
      continue;
    }
    endpoints.set(key, e.endpoints);
  }
  for (const key of endpoints.keys()) {
    if (!b.services.has(key)) b.notes.push(`endpoints for Service ${key}, which is not in the manifests`);
  }
  if (b.defaultedNamespace > 0) {
    b.notes.push(`${b.defaultedNamespace} object${b.defaultedNamespace === 1 ? '' : 's'} without metadata.namespace read as namespace "default"`);
  }
  if (b.others.length > 0) {
    const counts = new Map<string, number>();
    for (const o of b.others) counts.set(o.kind, (counts.get(o.kind) ?? 0) + 1);
    const list = [...counts].sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0])).map(([k, n]) => `${n} ${k}`);
    b.notes.push(`kept, not used: ${list.join(', ')}`);
  }
  const model = new ClusterModel({
    services: b.services, endpoints, pods: b.pods, nodes: b.nodes, namespaces: b.namespaces, others: b.others,
  });
  return { model, notes: b.notes };
}

function readObject(f: Found, b: Builder): void {
  const o = f.object;
  const pre: Fields = new Fields(where(f.source), o);
  const kind = pre.optString(o.kind, 'kind') ?? f.defaultKind;
  if (kind === undefined) pre.fail('kind', 'is required');
  const apiVersion = pre.optString(o.apiVersion, 'apiVersion') ?? f.defaultApiVersion ?? null;
  const metadata = pre.optObject(o.metadata, 'metadata') ?? {};
  const name = pre.optString(metadata.name, 'metadata.name') ?? null;
  const namespace = pre.optString(metadata.namespace, 'metadata.namespace') ?? null;
  const label = `${kind}${name !== null ? ` ${namespace !== null ? `${namespace}/` : ''}${name}` : ''}`;
  const fields: Fields = new Fields(`${where(f.source)} (${label})`, o);
  const core = (): void => {
    if (apiVersion !== null && apiVersion !== 'v1') fields.fail('apiVersion', `must be v1 for a ${kind}, not ${JSON.stringify(apiVersion)}`);
  };
  const ns = (): string => {
    if (namespace !== null) return namespace;
    b.defaultedNamespace++;
    return 'default';
  };
  switch (kind) {
    case 'Service':
      core();
      return addService(readService(fields, fields.string(name, 'metadata.name'), ns(), f.source), b);
    case 'EndpointSlice': {
      if (apiVersion !== null && apiVersion !== 'discovery.k8s.io/v1' && apiVersion !== 'discovery.k8s.io/v1beta1') {
        fields.fail('apiVersion', `must be discovery.k8s.io/v1 or discovery.k8s.io/v1beta1, not ${JSON.stringify(apiVersion)}`);
      }
      return readEndpointSlice(fields, fields.string(name, 'metadata.name'), ns(), b);
    }
    case 'Endpoints':
      core();
      return readEndpoints(fields, fields.string(name, 'metadata.name'), ns(), b);
    case 'Pod': {
      core();
      const pod = readPod(fields, fields.string(name, 'metadata.name'), ns(), f.source);
      if (b.pods.has(pod.key)) b.notes.push(`Pod ${pod.key} appears more than once; the last one (${where(f.source)}) is used`);
      b.pods.set(pod.key, pod);
      return;
    }
    case 'Node': {
      core();
      const node = readNode(fields, fields.string(name, 'metadata.name'), f.source);
      if (b.nodes.has(node.name)) b.notes.push(`Node ${node.name} appears more than once; the last one (${where(f.source)}) is used`);
      b.nodes.set(node.name, node);
      return;
    }
    case 'Namespace': {
      core();
      const n = fields.string(name, 'metadata.name');
      b.namespaces.set(n, {
        name: n,
        phase: fields.optString(fields.get('status.phase'), 'status.phase') ?? null,
        labels: fields.stringMap(metadata.labels, 'metadata.labels'),
      });
      return;
    }
    default:
      b.others.push({ apiVersion, kind, namespace, name, source: f.source, object: o });
  }
}

function addService(s: Service, b: Builder): void {
  if (b.services.has(s.key)) b.notes.push(`Service ${s.key} appears more than once; the last one (${where(s.source)}) is used`);
  b.services.set(s.key, s);
}

/** Service (core/v1): the fields kube-proxy's ServicePort info is built from. */
function readService(f: Fields, name: string, namespace: string, source: SourceRef): Service {
  const spec = f.optObject(f.get('spec'), 'spec') ?? {};
  const type = f.oneOf(spec.type, 'spec.type', SERVICE_TYPES) ?? null;
  const clusterIP = f.optString(spec.clusterIP, 'spec.clusterIP');
  const rawIPs = f.array(spec.clusterIPs, 'spec.clusterIPs');
  // "None" marks a headless Service: kube-proxy writes no rules for it; "" means not allocated.
  const headless = clusterIP === 'None' || rawIPs[0] === 'None';
  let clusterIPs: string[] = [];
  if (!headless && type !== 'ExternalName') {
    if (rawIPs.length > 0) clusterIPs = rawIPs.map((v, i) => f.ip(v, `spec.clusterIPs[${i}]`));
    else if (clusterIP) clusterIPs = [f.ip(clusterIP, 'spec.clusterIP')];
  }
  const ports: ServicePort[] = f.array(spec.ports, 'spec.ports').map((v, i) => {
    const path = `spec.ports[${i}]`;
    const p = f.object(v, path);
    const targetPort = p.targetPort;
    let target: number | string | null = null;
    if (typeof targetPort === 'string') target = /^\d+$/.test(targetPort) ? Number(targetPort) : targetPort;
    else if (targetPort !== undefined && targetPort !== null) target = f.integer(targetPort, `${path}.targetPort`, 1, 65535);
    const nodePort = f.optInteger(p.nodePort, `${path}.nodePort`, 1, 65535);
    return {
      name: f.optString(p.name, `${path}.name`) ?? '',
      port: f.integer(p.port, `${path}.port`, 1, 65535),
      protocol: f.oneOf(p.protocol, `${path}.protocol`, PROTOCOLS) ?? 'TCP',
      targetPort: target,
      ...(nodePort !== undefined && nodePort !== 0 ? { nodePort } : {}),
    };
  });
  const affinity = f.oneOf(spec.sessionAffinity, 'spec.sessionAffinity', ['None', 'ClientIP'] as const) ?? 'None';
  const timeout = f.optInteger(f.get('sessionAffinityConfig.clientIP.timeoutSeconds', spec, 'spec'), 'spec.sessionAffinityConfig.clientIP.timeoutSeconds', 1, 86400);
  const ingress = f.array(f.get('status.loadBalancer.ingress'), 'status.loadBalancer.ingress');
  const loadBalancerIPs: string[] = [];
  ingress.forEach((v, i) => {
    const path = `status.loadBalancer.ingress[${i}]`;
    const e = f.object(v, path);
    if (e.ip === undefined || e.ip === null || e.ip === '') return;
    const ip = f.ip(e.ip, `${path}.ip`);
    // ipMode Proxy: the load balancer proxies to the nodes itself, so kube-proxy writes no rule for the IP.
    if ((f.oneOf(e.ipMode, `${path}.ipMode`, ['VIP', 'Proxy'] as const) ?? 'VIP') === 'VIP') loadBalancerIPs.push(ip);
  });
  const selector = spec.selector === undefined || spec.selector === null ? null : f.stringMap(spec.selector, 'spec.selector');
  return {
    namespace, name, key: `${namespace}/${name}`, type, clusterIPs, headless, ports,
    externalIPs: f.array(spec.externalIPs, 'spec.externalIPs').map((v, i) => f.ip(v, `spec.externalIPs[${i}]`)),
    loadBalancerIPs,
    // kube-proxy trims each range before use (the API server would reject the whitespace).
    loadBalancerSourceRanges: f.array(spec.loadBalancerSourceRanges, 'spec.loadBalancerSourceRanges')
      .map((v, i) => f.cidr(v, `spec.loadBalancerSourceRanges[${i}]`, true)),
    externalTrafficPolicy: f.oneOf(spec.externalTrafficPolicy, 'spec.externalTrafficPolicy', POLICIES) ?? 'Cluster',
    internalTrafficPolicy: f.oneOf(spec.internalTrafficPolicy, 'spec.internalTrafficPolicy', POLICIES) ?? 'Cluster',
    sessionAffinity: affinity,
    sessionAffinityTimeoutSeconds: affinity === 'ClientIP' ? timeout ?? DEFAULT_AFFINITY_TIMEOUT : null,
    selector: selector && Object.keys(selector).length > 0 ? selector : null,
    healthCheckNodePort: f.optInteger(spec.healthCheckNodePort, 'spec.healthCheckNodePort', 1, 65535) ?? null,
    labels: f.stringMap(f.get('metadata.labels'), 'metadata.labels'),
    source,
  };
}

function endpointPorts(f: Fields, list: readonly unknown[], base: string, nullable: boolean): Record<string, EndpointPort> {
  const out: Record<string, EndpointPort> = {};
  list.forEach((v, i) => {
    const path = `${base}[${i}]`;
    const p = f.object(v, path);
    // In an EndpointSlice a null port means "all ports", which kube-proxy cannot program; skip it.
    if (nullable && (p.port === undefined || p.port === null)) return;
    const name = f.optString(p.name, `${path}.name`) ?? '';
    out[name] = {
      port: f.integer(p.port, `${path}.port`, nullable ? 0 : 1, 65535),
      protocol: f.oneOf(p.protocol, `${path}.protocol`, PROTOCOLS) ?? 'TCP',
    };
  });
  return out;
}

function targetRef(f: Fields, v: unknown, path: string, namespace: string): ServiceEndpoint['targetRef'] {
  const t = f.optObject(v, path);
  if (!t) return undefined;
  const name = f.optString(t.name, `${path}.name`);
  if (name === undefined) return undefined;
  return { kind: f.optString(t.kind, `${path}.kind`) ?? 'Pod', namespace: f.optString(t.namespace, `${path}.namespace`) ?? namespace, name };
}

/**
 * EndpointSlice (discovery.k8s.io/v1, or v1beta1 where the node and zone are `topology` labels).
 * kube-proxy reads `conditions` with defaults: ready absent → ready; serving absent → = ready;
 * terminating absent → false. FQDN slices are not programmed by kube-proxy.
 */
function readEndpointSlice(f: Fields, name: string, namespace: string, b: Builder): void {
  const addressType = f.oneOf(f.get('addressType'), 'addressType', ['IPv4', 'IPv6', 'FQDN'] as const);
  if (addressType === undefined) f.fail('addressType', 'is required');
  const labels = f.stringMap(f.get('metadata.labels'), 'metadata.labels');
  const service = labels[SERVICE_NAME_LABEL];
  const from = `EndpointSlice ${namespace}/${name}`;
  const ports = endpointPorts(f, f.array(f.get('ports'), 'ports'), 'ports', true);
  const endpoints: ServiceEndpoint[] = [];
  f.array(f.get('endpoints'), 'endpoints').forEach((v, i) => {
    const path = `endpoints[${i}]`;
    const e = f.object(v, path);
    const conditions = f.optObject(e.conditions, `${path}.conditions`) ?? {};
    const ready = f.optBoolean(conditions.ready, `${path}.conditions.ready`) ?? true;
    const serving = f.optBoolean(conditions.serving, `${path}.conditions.serving`) ?? ready;
    const terminating = f.optBoolean(conditions.terminating, `${path}.conditions.terminating`) ?? false;
    const topology = f.stringMap(e.topology, `${path}.topology`);
    const nodeName = f.optString(e.nodeName, `${path}.nodeName`) ?? topology['kubernetes.io/hostname'];
    const zone = f.optString(e.zone, `${path}.zone`) ?? topology['topology.kubernetes.io/zone'];
    const ref = targetRef(f, e.targetRef, `${path}.targetRef`, namespace);
    const addresses = f.array(e.addresses, `${path}.addresses`);
    if (addresses.length === 0) f.fail(`${path}.addresses`, 'must list at least one address');
    addresses.forEach((a, j) => {
      // kube-proxy uses only the first address of an endpoint (the API allows just one today).
      if (j > 0) return;
      const ip = addressType === 'FQDN' ? f.string(a, `${path}.addresses[${j}]`) : f.ip(a, `${path}.addresses[${j}]`);
      endpoints.push({
        ip, ports, ready, serving, terminating,
        ...(nodeName !== undefined ? { nodeName } : {}),
        ...(zone !== undefined ? { zone } : {}),
        ...(ref ? { targetRef: ref } : {}),
        from,
      });
    });
  });
  if (service === undefined) {
    b.notes.push(`${from} has no ${SERVICE_NAME_LABEL} label: its endpoints belong to no Service`);
    return;
  }
  if (addressType === 'FQDN') {
    b.notes.push(`${from} has addressType FQDN, which kube-proxy does not program`);
    return;
  }
  const key = `${namespace}/${service}`;
  const entry = b.slices.get(key) ?? { endpoints: [], from: [] };
  entry.endpoints.push(...endpoints);
  entry.from.push(from);
  b.slices.set(key, entry);
}

/**
 * Endpoints (core/v1), as older clusters publish them: `subsets[].addresses` are ready,
 * `notReadyAddresses` are not; both pair with the subset's ports by name.
 */
function readEndpoints(f: Fields, name: string, namespace: string, b: Builder): void {
  const from = `Endpoints ${namespace}/${name}`;
  const endpoints: ServiceEndpoint[] = [];
  f.array(f.get('subsets'), 'subsets').forEach((v, i) => {
    const path = `subsets[${i}]`;
    const subset = f.object(v, path);
    const ports = endpointPorts(f, f.array(subset.ports, `${path}.ports`), `${path}.ports`, false);
    for (const [field, ready] of [['addresses', true], ['notReadyAddresses', false]] as const) {
      f.array(subset[field], `${path}.${field}`).forEach((a, j) => {
        const ap = `${path}.${field}[${j}]`;
        const addr = f.object(a, ap);
        const nodeName = f.optString(addr.nodeName, `${ap}.nodeName`);
        const ref = targetRef(f, addr.targetRef, `${ap}.targetRef`, namespace);
        endpoints.push({
          ip: f.ip(addr.ip, `${ap}.ip`), ports, ready, serving: ready, terminating: false,
          ...(nodeName !== undefined ? { nodeName } : {}),
          ...(ref ? { targetRef: ref } : {}),
          from,
        });
      });
    }
  });
  // An Endpoints object has the Service's name.
  b.legacy.set(`${namespace}/${name}`, { endpoints, from: [from] });
}

function readPod(f: Fields, name: string, namespace: string, source: SourceRef): Pod {
  const ips: string[] = [];
  f.array(f.get('status.podIPs'), 'status.podIPs').forEach((v, i) => {
    const p = f.object(v, `status.podIPs[${i}]`);
    ips.push(f.ip(p.ip, `status.podIPs[${i}].ip`));
  });
  const podIP = f.get('status.podIP');
  if (podIP !== undefined && podIP !== null && podIP !== '') {
    const ip = f.ip(podIP, 'status.podIP');
    if (!ips.includes(ip)) ips.unshift(ip);
  }
  let ready: boolean | null = null;
  f.array(f.get('status.conditions'), 'status.conditions').forEach((v, i) => {
    const c = f.object(v, `status.conditions[${i}]`);
    if (f.optString(c.type, `status.conditions[${i}].type`) !== 'Ready') return;
    ready = f.oneOf(c.status, `status.conditions[${i}].status`, ['True', 'False', 'Unknown'] as const) === 'True';
  });
  return {
    namespace, name, key: `${namespace}/${name}`, podIPs: ips,
    nodeName: f.optString(f.get('spec.nodeName'), 'spec.nodeName') ?? null,
    phase: f.optString(f.get('status.phase'), 'status.phase') ?? null,
    ready,
    terminating: f.optString(f.get('metadata.deletionTimestamp'), 'metadata.deletionTimestamp') !== undefined,
    hostNetwork: f.optBoolean(f.get('spec.hostNetwork'), 'spec.hostNetwork') ?? false,
    labels: f.stringMap(f.get('metadata.labels'), 'metadata.labels'),
    source,
  };
}

function readNode(f: Fields, name: string, source: SourceRef): Node {
  const addresses: NodeAddress[] = f.array(f.get('status.addresses'), 'status.addresses').map((v, i) => {
    const a = f.object(v, `status.addresses[${i}]`);
    return { type: f.string(a.type, `status.addresses[${i}].type`), address: f.string(a.address, `status.addresses[${i}].address`) };
  });
  const ips: string[] = [];
  addresses.forEach((a, i) => {
    if (a.type !== 'InternalIP' && a.type !== 'ExternalIP') return;
    const ip = f.ip(a.address, `status.addresses[${i}].address`);
    if (!ips.includes(ip)) ips.push(ip);
  });
  const podCIDRs = f.array(f.get('spec.podCIDRs'), 'spec.podCIDRs').map((v, i) => f.cidr(v, `spec.podCIDRs[${i}]`));
  const single = f.get('spec.podCIDR');
  if (podCIDRs.length === 0 && single !== undefined && single !== null && single !== '') podCIDRs.push(f.cidr(single, 'spec.podCIDR'));
  return { name, addresses, ips, podCIDRs, labels: f.stringMap(f.get('metadata.labels'), 'metadata.labels'), source };
}
