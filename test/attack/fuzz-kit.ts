/**
 * The fuzz test's kit: a seeded random source, the app's routes read from printRoutes() (so a new
 * route is attacked without editing the test), seed bodies taken from the examples and fixtures,
 * and mutations of them. Everything here is deterministic given the seed.
 */
import { gzipSync } from 'node:zlib';
import type { InjectOptions } from 'fastify';

/** mulberry32: small, fast, and the same sequence for the same seed on every platform. */
export function random(seed: number): Rng {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const rng: Rng = {
    next,
    int: (n) => Math.floor(next() * n),
    chance: (p) => next() < p,
    pick: (xs) => xs[Math.floor(next() * xs.length)],
  };
  return rng;
}

export interface Rng {
  next(): number;
  /** 0 ≤ i < n. */
  int(n: number): number;
  chance(p: number): boolean;
  pick<T>(xs: readonly T[]): T;
}

/** The seed of request `i` of a run: each request can be made again on its own. */
export function requestSeed(seed: number, i: number): number {
  return (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(i + 1, 0xc2b2ae35)) >>> 0;
}

export interface Route {
  readonly method: string;
  /** fastify's form: `/v1/snapshots/:id/trace`. */
  readonly url: string;
}

/**
 * Routes from `printRoutes({ commonPrefix: false })`: a tree whose lines are
 * `<indent>├── <segment> (<METHOD>, …)`, four columns per level, each segment continuing its parent's path.
 */
export function routesFromTree(tree: string): Route[] {
  const stack: string[] = [];
  const routes: Route[] = [];
  for (const line of tree.split('\n')) {
    const m = /^([│ ]*)[├└]── (.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1].length / 4;
    const path = (depth > 0 ? stack[depth - 1] : '') + m[2];
    stack[depth] = path;
    stack.length = depth + 1;
    if (m[3]) for (const method of m[3].split(', ')) routes.push({ method, url: path });
  }
  return routes;
}

/** Bytes and strings that break parsers: NUL, lone surrogates, invalid UTF-8, huge numbers, prototype keys. */
export const NASTY_STRINGS: readonly string[] = [
  '', '\0', 'a\0b', '\ud800', '\udfff', '😀', 'ü', '\r\n', '\\', '"', "'", '%', '%00', '%ff', '..', '../..', '/',
  '__proto__', 'constructor', 'prototype', 'toString', 'NaN', 'Infinity', '-0', '1e309', '-1', '0', '4294967296',
  '99999999999999999999999', '0x10', '010', ' ', '\t', '*', '?', '#', '&', '=', '+', 'null', 'true', '[]', '{}',
  'x'.repeat(5000), '<script>', '${x}', '\u2028', '\ufeff', '10.43.62.130', '10.43.62.130/32', '::1', 'fe80::1%eth0',
  '255.255.255.255', '999.1.1.1', 'default/service-test', 'ns/', '/name', 'KUBE-SERVICES', '-A', '--dport',
];

export const NASTY_VALUES: readonly unknown[] = [
  null, true, false, 0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 1, Number.MAX_SAFE_INTEGER, '', [], {}, [[]], [null], { '': '' },
  ...NASTY_STRINGS.slice(0, 30),
];

const INSERTS: readonly Buffer[] = [
  Buffer.from([0]), Buffer.from([0xff]), Buffer.from([0xc3]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf4, 0x90, 0x80, 0x80]),
  Buffer.from('{'), Buffer.from('['), Buffer.from('"'), Buffer.from('\\'), Buffer.from('\\u0000'), Buffer.from('\\ud800'),
  Buffer.from(','), Buffer.from(':'), Buffer.from('\n'), Buffer.from('\r\n'), Buffer.from('--'), Buffer.from('1e999'),
  Buffer.from('-99999999999999999999'), Buffer.from('"__proto__":{"x":1},'), Buffer.from('- - - - - - - - x\n'),
  Buffer.from('*nat\n'), Buffer.from('COMMIT\n'), Buffer.from('-A KUBE-SERVICES -j KUBE-SERVICES\n'), Buffer.from(':X - [0:0]\n'),
];

/** A byte-level mutation of `b`: flips, inserts, deletes, truncation, repetition, deep nesting. */
export function mutateBytes(rng: Rng, input: Buffer): Buffer {
  let b = Buffer.from(input);
  const rounds = 1 + rng.int(rng.chance(0.2) ? 20 : 3);
  for (let r = 0; r < rounds; r++) {
    const at = rng.int(b.length + 1);
    switch (rng.int(9)) {
      case 0: { // flip bits
        if (b.length === 0) break;
        const i = Math.min(at, b.length - 1);
        b[i] ^= 1 << rng.int(8);
        break;
      }
      case 1: // insert a nasty byte sequence
        b = Buffer.concat([b.subarray(0, at), rng.pick(INSERTS), b.subarray(at)]);
        break;
      case 2: // insert random bytes
        b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + rng.int(16) }, () => rng.int(256))), b.subarray(at)]);
        break;
      case 3: // delete a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.int(64)))]);
        break;
      case 4: // truncate
        b = b.subarray(0, at);
        break;
      case 5: { // repeat a range
        const len = 1 + rng.int(200);
        const piece = b.subarray(at, at + len);
        b = Buffer.concat([b.subarray(0, at), ...Array(1 + rng.int(50)).fill(piece), b.subarray(at)]);
        break;
      }
      case 6: { // deep nesting
        const depth = rng.pick([100, 1000, 20_000]);
        const [open, close] = rng.pick([['[', ']'], ['{"a":', '}'], ['- ', ''], ['(', ')'], ['{', '}']]);
        b = Buffer.concat([b.subarray(0, at), Buffer.from(open.repeat(depth) + (rng.chance(0.5) ? close.repeat(depth) : '')), b.subarray(at)]);
        break;
      }
      case 7: // a long line
        b = Buffer.concat([b.subarray(0, at), Buffer.alloc(1 + rng.int(200_000), rng.pick(['x', ' ', '[', '"', '\\'])), b.subarray(at)]);
        break;
      default: { // swap two ranges
        const other = rng.int(b.length + 1);
        const [lo, hi] = at < other ? [at, other] : [other, at];
        b = Buffer.concat([b.subarray(0, lo), b.subarray(hi), b.subarray(lo, hi)]);
        break;
      }
    }
  }
  return b;
}

/** A structural mutation of a JSON value: a node replaced by a value of another type, a key dropped or added. */
export function mutateJson(rng: Rng, value: unknown): unknown {
  const copy = JSON.parse(JSON.stringify(value)) as unknown;
  // A fresh copy each time: a shared [] inserted twice and then mutated would make a cycle.
  const nasty = () => structuredClone(rng.pick(NASTY_VALUES));
  const rounds = 1 + rng.int(3);
  let root = copy;
  for (let r = 0; r < rounds; r++) {
    // Walk to a random node.
    const path: Array<{ parent: Record<string, unknown> | unknown[]; key: string | number }> = [];
    let node: unknown = root;
    while (node && typeof node === 'object' && rng.chance(0.7)) {
      const keys = Object.keys(node);
      if (keys.length === 0) break;
      const key = rng.pick(keys);
      path.push({ parent: node as Record<string, unknown>, key: Array.isArray(node) ? Number(key) : key });
      node = (node as Record<string, unknown>)[key];
    }
    const replacement = (() => {
      switch (rng.int(6)) {
        case 0: return nasty();
        case 1: return Array.from({ length: rng.pick([2, 100, 10_000]) }, nasty);
        case 2: return Object.fromEntries(Array.from({ length: rng.pick([1, 100, 5000]) }, (_, i) => [`${rng.pick(NASTY_STRINGS).slice(0, 50)}${i}`, nasty()]));
        case 3: { // deep nesting
          let v: unknown = 'x';
          for (let i = 0, n = rng.pick([50, 500, 1000]); i < n; i++) v = rng.chance(0.5) ? [v] : { a: v };
          return v;
        }
        case 4: return typeof node === 'string' ? node + rng.pick(NASTY_STRINGS) : String(node);
        default: return undefined;
      }
    })();
    const last = path.at(-1);
    if (!last) {
      root = replacement;
      continue;
    }
    if (replacement === undefined) {
      if (Array.isArray(last.parent)) last.parent.splice(last.key as number, 1);
      else delete last.parent[last.key as string];
    } else if (rng.chance(0.2) && !Array.isArray(last.parent)) {
      last.parent[rng.pick(NASTY_STRINGS)] = replacement;
    } else {
      (last.parent as Record<string | number, unknown>)[last.key] = replacement;
    }
  }
  return root;
}

export interface Seeds {
  /** examples/k3s/snapshot.json, parsed. */
  readonly snapshot: { nodes: Array<{ name: string; addresses: string[]; rules: string; format?: string; table?: string }>; manifests?: string; labels?: Record<string, string> };
  /** Dumps from test/fixtures. */
  readonly dumps: readonly string[];
  readonly manifests: readonly string[];
  readonly queries: readonly string[];
}

export interface Known {
  cluster: string;
  snapshotIds: string[];
  uploadIds: string[];
  node: string;
}

const CONTENT_TYPES = [
  'application/json', 'application/json; charset=utf-8', 'text/plain', 'application/octet-stream', 'application/x-www-form-urlencoded',
  'multipart/form-data', 'multipart/form-data; boundary=', 'multipart/form-data; boundary=zz', 'application/graphql',
  'application/problem+json', 'text/html', 'application/json; charset=latin1', '*/*', ';;;', 'application/json\0', 'x',
];

/** A path segment: a known name or id, or something that is not. */
function segment(rng: Rng, name: string, known: Known): string {
  if (rng.chance(0.55)) {
    switch (name) {
      case 'cluster': return rng.pick([known.cluster, 'fuzz', 'k3s-blog', `c${rng.int(5)}`]);
      case 'id': return rng.pick([...known.snapshotIds, ...known.uploadIds, '00000000-0000-0000-0000-000000000000']);
      case 'node': return rng.pick([known.node, 'node-a', 'n']);
      case 'file': return rng.pick(['graphiql.min.js', 'graphiql.min.css', 'react.production.min.js', 'nope.js']);
      default: return 'x';
    }
  }
  return rng.pick([
    encode(rng.pick(NASTY_STRINGS)), '%00', '%ED%A0%80', '%C3', '%FF%FE', '%2F', '%2e%2e', 'a'.repeat(rng.pick([64, 300, 5000])),
    String(rng.int(1e9)), '-1', '1e400', encode('ünïcödé'), '%25', 'x%20y', '%u0000',
  ]);
}

const QUERY_VALUES: Record<string, readonly string[]> = {
  destination: ['10.43.62.130', '10.42.0.7', '::1', '1.2.3.4'],
  port: ['80', '30080', '0', '65535', '65536', 'http', 'HTTP', '-1', '99999999999999999999'],
  protocol: ['tcp', 'udp', 'sctp', 'icmp', 'TCP', 'igmp'],
  source: ['10.42.0.7', '10.32.11.62', '203.0.113.10', '10.42.0.0/16'],
  node: ['ip-10-32-11-62', 'node-a', 'missing'],
  entry: ['PREROUTING', 'OUTPUT', 'INPUT'],
  sourcePort: ['0', '1024', '65535', '65536', '-1', '1.5'],
  inInterface: ['eth0', 'lo', '+', 'cni0'],
  service: ['default/service-test', 'default/service-test-nodeport', 'ns/', '/', 'a/b/c'],
  limit: ['1', '20', '500', '501', '0', '-1', '1e3', '1.5'],
  cursor: ['', 'x', 'eyJ9', 'MTA=', '%00'],
  from: [], to: [],
  addresses: ['10.0.0.1', '10.0.0.1,10.0.0.2', '::1', 'not-an-ip', ',,,', '10.0.0.1 10.0.0.2'],
  format: ['auto', 'iptables-save', 'iptables-S', 'nft'],
  table: ['nat', 'filter', 'mangle', 'raw', 'security', 'broute'],
  query: [], variables: ['{}', '{"id":"x"}', 'null', '[', '{"__proto__":{"a":1}}'], operationName: ['', 'A', 'x'],
};

function queryString(rng: Rng, url: string, known: Known, seeds: Seeds): string {
  const pairs: Array<[string, string]> = [];
  let keys: string[] = [];
  if (url === '/v1/snapshots/:id/trace') keys = ['destination', 'port', 'protocol', 'source', 'node', 'entry', 'sourcePort', 'inInterface', 'service'];
  else if (url === '/v1/diff') keys = ['from', 'to', 'node', 'limit', 'cursor'];
  else if (url === '/v1/clusters/:cluster/snapshots') keys = ['limit', 'cursor'];
  else if (url === '/v1/uploads/:id/nodes/:node') keys = ['addresses', 'format', 'table'];
  else if (url === '/graphql') keys = ['query', 'variables', 'operationName'];
  for (const key of keys) {
    if (!rng.chance(0.6)) continue;
    let values = QUERY_VALUES[key] ?? ['x'];
    if (key === 'from' || key === 'to') values = [...known.snapshotIds, 'missing'];
    if (key === 'query') values = seeds.queries;
    let value = rng.pick(values);
    if (key === 'query' && rng.chance(0.4)) value = mutateBytes(rng, Buffer.from(value)).toString('latin1');
    else if (rng.chance(0.15)) value = rng.pick(NASTY_STRINGS);
    pairs.push([key, value]);
    if (rng.chance(0.05)) pairs.push([key, rng.pick(values.length ? values : ['y'])]);
  }
  if (rng.chance(0.1)) pairs.push([rng.pick(NASTY_STRINGS).slice(0, 20) || 'k', rng.pick(NASTY_STRINGS).slice(0, 40)]);
  let qs = pairs.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&');
  if (rng.chance(0.05)) qs += rng.pick(['&', '&&=', '%', '%zz', '=', 'a[b]=c', 'a[]=1&a[]=2', '%00=%00', `x=${'%ff'.repeat(100)}`]);
  return qs ? `?${qs}` : '';
}

function multipart(rng: Rng, seeds: Seeds): { body: Buffer; boundary: string } {
  const boundary = rng.chance(0.9) ? `----fuzz${rng.int(1e6)}` : rng.pick(['', '-', 'a'.repeat(100), '"quoted"', ' ']);
  const parts: Buffer[] = [];
  const snap = seeds.snapshot;
  const field = (name: string, value: Buffer, file: boolean) => Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"${file ? `; filename="${name}.txt"` : ''}\r\n${file ? 'Content-Type: application/octet-stream\r\n' : ''}\r\n`),
    value, Buffer.from('\r\n'),
  ]);
  for (const node of snap.nodes) {
    if (rng.chance(0.8)) parts.push(field(`addresses.${node.name}`, Buffer.from(node.addresses.join(',')), false));
    if (node.format && rng.chance(0.8)) parts.push(field(`format.${node.name}`, Buffer.from(node.format), false));
    if (node.table && rng.chance(0.8)) parts.push(field(`table.${node.name}`, Buffer.from(node.table), false));
    let rules: Buffer = Buffer.from(node.rules);
    if (rng.chance(0.3)) rules = mutateBytes(rng, rules);
    if (rng.chance(0.2)) rules = rng.chance(0.7) ? gzipSync(rules) : Buffer.concat([Buffer.from([0x1f, 0x8b]), mutateBytes(rng, gzipSync(rules)).subarray(2)]);
    parts.push(field(rng.chance(0.95) ? node.name : rng.pick(NASTY_STRINGS), rules, rng.chance(0.7)));
  }
  if (snap.manifests && rng.chance(0.6)) parts.push(field('manifests', rng.chance(0.3) ? mutateBytes(rng, Buffer.from(snap.manifests)) : Buffer.from(snap.manifests), rng.chance(0.5)));
  if (rng.chance(0.4)) parts.push(field('labels', Buffer.from(JSON.stringify(rng.chance(0.5) ? snap.labels ?? {} : mutateJson(rng, snap.labels ?? {})) ?? 'undefined'), false));
  if (rng.chance(0.2)) parts.push(field(`label.${rng.pick(NASTY_STRINGS).slice(0, 30)}`, Buffer.from(rng.pick(NASTY_STRINGS)), false));
  if (rng.chance(0.05)) for (let i = 0; i < 12_000; i++) parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="label.k${i}"\r\n\r\nv\r\n`));
  for (let i = parts.length - 1; i > 0 && rng.chance(0.1); i--) {
    const j = rng.int(i + 1);
    [parts[i], parts[j]] = [parts[j], parts[i]];
  }
  let body: Buffer = Buffer.concat([...parts, Buffer.from(rng.chance(0.9) ? `--${boundary}--\r\n` : '')]);
  if (rng.chance(0.25)) body = mutateBytes(rng, body);
  return { body, boundary };
}

/** The natural body of a route, before mutation, and its content type. */
function naturalBody(rng: Rng, route: Route, known: Known, seeds: Seeds): { body?: Buffer; type?: string } {
  const { url, method } = route;
  if (method === 'GET' || method === 'HEAD' || method === 'DELETE') return {};
  if (url === '/v1/trace') {
    const dump = rng.pick([seeds.snapshot.nodes[0].rules, ...seeds.dumps]);
    const value: Record<string, unknown> = {
      rules: dump, node: { addresses: ['10.32.11.62'] },
      packet: { source: '10.42.0.7', destination: '10.43.62.130', port: 80, protocol: 'tcp' },
    };
    if (rng.chance(0.3)) value.manifests = rng.pick(seeds.manifests);
    if (seeds.snapshot.nodes[0].rules === dump) Object.assign(value, { format: 'iptables-S', table: 'nat' });
    return json(rng, value);
  }
  if (url === '/v1/clusters/:cluster/snapshots') {
    if (rng.chance(0.3)) {
      const m = multipart(rng, seeds);
      return { body: m.body, type: `multipart/form-data; boundary=${m.boundary}` };
    }
    const snap = rng.chance(0.5) ? { ...seeds.snapshot, labels: { ...seeds.snapshot.labels, run: String(rng.int(1e9)) } } : seeds.snapshot;
    return json(rng, snap);
  }
  if (url === '/v1/uploads/:id/nodes/:node') return raw(rng, rng.pick([seeds.snapshot.nodes[0].rules, ...seeds.dumps]));
  if (url === '/v1/uploads/:id/manifests') return raw(rng, rng.pick(seeds.manifests));
  if (url === '/v1/uploads/:id/commit') return json(rng, rng.chance(0.5) ? {} : { labels: { a: 'b', ...(rng.chance(0.5) ? { run: String(rng.int(1e9)) } : {}) } });
  if (url === '/graphql') {
    const query = rng.pick(seeds.queries);
    const mutated = rng.chance(0.3) ? mutateBytes(rng, Buffer.from(query)).toString('latin1') : query;
    const value: Record<string, unknown> = { query: mutated };
    if (query.includes('$input')) value.variables = { input: rng.chance(0.5) ? seeds.snapshot : mutateJson(rng, seeds.snapshot) };
    else if (query.includes('$')) value.variables = mutateJson(rng, { id: known.snapshotIds[0], first: 2, after: null, from: known.snapshotIds[0], to: known.snapshotIds.at(-1) });
    if (rng.chance(0.03)) return json(rng, [value, value]);
    if (rng.chance(0.1)) return { body: Buffer.from(mutated), type: 'application/graphql' };
    return json(rng, value);
  }
  return json(rng, rng.chance(0.5) ? {} : rng.pick(NASTY_VALUES));
}

function json(rng: Rng, value: unknown): { body: Buffer; type: string } {
  const v = rng.chance(0.35) ? mutateJson(rng, value) : value;
  let body: Buffer = Buffer.from(JSON.stringify(v) ?? 'undefined');
  if (rng.chance(0.3)) body = mutateBytes(rng, body);
  return { body, type: 'application/json' };
}

function raw(rng: Rng, text: string): { body: Buffer; type: string } {
  let body: Buffer = Buffer.from(text);
  if (rng.chance(0.5)) body = mutateBytes(rng, body);
  return { body, type: rng.pick(['text/plain', 'application/octet-stream', 'application/x-www-form-urlencoded']) };
}

/** encodeURIComponent, with a lone surrogate sent as the bytes it would have in CESU-8 (not UTF-8). */
function encode(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return [...s].map((c) => (/[\ud800-\udfff]/.test(c) ? '%ED%A0%80' : encodeURIComponent(c))).join('');
  }
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

/** One request at a route of the app (or, rarely, a method or path it does not have). */
export function makeRequest(rng: Rng, routes: readonly Route[], known: Known, seeds: Seeds): { route: Route; request: InjectOptions & { headers: Record<string, string>; payload?: Buffer } } {
  let route = rng.pick(routes);
  if (rng.chance(0.05)) route = { ...route, method: rng.pick(METHODS) };
  const path = route.url.replace(/:(\w+)/g, (_, name: string) => segment(rng, name, known)).replace('*', () => rng.pick(['index.css', 'x', '%2e%2e/%2e%2e/etc/passwd', '']));
  const url = path + queryString(rng, route.url, known, seeds);
  const headers: Record<string, string> = {};
  let { body, type } = naturalBody(rng, route, known, seeds);
  if (!body && rng.chance(0.1)) {
    body = mutateBytes(rng, Buffer.from('{"a":1}'));
    type = 'application/json';
  }
  if (type) headers['content-type'] = rng.chance(0.88) ? type : rng.pick(CONTENT_TYPES);
  if (body && rng.chance(0.12)) {
    headers['content-encoding'] = rng.pick(['gzip', 'gzip', 'x-gzip', 'GZIP', 'br', 'deflate', 'gzip, gzip', '']);
    if (headers['content-encoding'].toLowerCase().includes('gzip')) body = rng.chance(0.7) ? gzipSync(body) : mutateBytes(rng, gzipSync(body));
  }
  if (rng.chance(0.03)) headers.accept = rng.pick(['text/html', 'application/xml', '*/*', '']);
  if (rng.chance(0.02)) headers['content-length'] = rng.pick(['0', '-1', 'abc', '99999999999']);
  return { route, request: { method: route.method, url, headers, ...(body ? { payload: body } : {}) } };
}

/** A request as text that can be pasted into a replay (the body as base64 when it is not UTF-8). */
export function describeRequest(r: { method?: string; url?: string; headers: Record<string, string>; payload?: Buffer }): string {
  const body = r.payload;
  let shown = '';
  if (body) {
    const text = body.toString('utf8');
    const clean = Buffer.from(text, 'utf8').equals(body);
    shown = clean ? `body (${body.length} bytes, utf8): ${JSON.stringify(text.slice(0, 1500))}${text.length > 1500 ? '…' : ''}`
      : `body (${body.length} bytes, base64): ${body.subarray(0, 1500).toString('base64')}${body.length > 1500 ? '…' : ''}`;
  }
  const url = String(r.url);
  return `${r.method} ${url.length > 500 ? `${url.slice(0, 500)}…` : url}\nheaders: ${JSON.stringify(r.headers)}\n${shown}`;
}
