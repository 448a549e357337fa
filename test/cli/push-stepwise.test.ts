/**
 * `svcpath push` against a fake server that keeps the step-wise upload contract
 * (POST /v1/clusters/{c}/uploads, PUT …/nodes/{node}, PUT …/manifests, POST …/commit, DELETE)
 * and records every request, so what the client sends, when and how often can be asserted.
 */
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import { main } from '../../src/cli/main.ts';

interface Recorded {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingMessage['headers'];
  body: string;
}

interface Answer {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body?: unknown;
}

/** What the fake server does differently in one test. */
interface Behaviour {
  /** false: an older server, without step-wise uploads. */
  uploads: boolean;
  /** The answer to the nth PUT (from 1) of a node, when not the usual 200; 'hang' never answers. */
  node?: (name: string, attempt: number) => Answer | 'hang' | undefined;
}

const requests: Recorded[] = [];
const nodePuts = new Map<string, number>();
let behaviour: Behaviour = { uploads: true };
let inFlight = 0;
let maxInFlight = 0;
let server: Server;
let url: string;
let dir: string;

function send(res: ServerResponse, a: Answer): void {
  const problem = a.status >= 400;
  res.writeHead(a.status, { 'content-type': problem ? 'application/problem+json' : 'application/json', ...a.headers });
  res.end(a.body === undefined ? undefined : JSON.stringify(a.body));
}

function problem(status: number, detail: string, extra: Record<string, unknown> = {}): Answer {
  return { status, body: { type: 'about:blank', title: status === 404 ? 'Not Found' : 'Error', status, detail, ...extra } };
}

const stored = new Map<string, { name: string; addresses: string[]; rules: number }>();

function snapshotAnswer(cluster: string, labels: unknown, nodes: { name: string; rules: number }[]): Answer {
  return {
    status: 201,
    body: {
      created: true,
      snapshot: { id: 'snap-1', cluster, version: 3, labels, nodes: nodes.map((n) => ({ ...n, diagnostics: [] })) },
      labels,
    },
  };
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const u = new URL(req.url!, 'http://x');
  const rec: Recorded = { method: req.method!, path: u.pathname, query: u.searchParams, headers: req.headers, body: '' };
  requests.push(rec);
  const nodeMatch = req.method === 'PUT' ? /^\/v1\/uploads\/([^/]+)\/nodes\/([^/]+)$/.exec(u.pathname) : null;
  if (nodeMatch) {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
  }
  try {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    rec.body = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
    let m: RegExpExecArray | null;
    if (req.method === 'POST' && /^\/v1\/clusters\/[^/]+\/uploads$/.test(u.pathname)) {
      if (!behaviour.uploads) return send(res, problem(404, `no route POST ${u.pathname}`, { code: 'NOT_FOUND' }));
      return send(res, { status: 201, body: { id: 'up-1', expiresAt: '2030-01-01T00:00:00Z' } });
    }
    if (nodeMatch) {
      const name = decodeURIComponent(nodeMatch[2]);
      const attempt = (nodePuts.get(name) ?? 0) + 1;
      nodePuts.set(name, attempt);
      // Long enough for the other nodes' PUTs to arrive meanwhile when they are sent at once.
      await sleep(25);
      const special = behaviour.node?.(name, attempt);
      if (special === 'hang') return await new Promise<void>((resolve) => req.socket.once('close', resolve));
      if (special) return send(res, special);
      const rules = rec.body.split('\n').filter((l) => l.startsWith('-A ')).length;
      stored.set(name, { name, addresses: (u.searchParams.get('addresses') ?? '').split(',').filter(Boolean), rules });
      return send(res, { status: 200, body: { node: { name, sha256: 'x', bytes: rec.body.length, rules }, parsed: true } });
    }
    if (req.method === 'PUT' && /^\/v1\/uploads\/[^/]+\/manifests$/.test(u.pathname)) return send(res, { status: 200, body: {} });
    if (req.method === 'POST' && /^\/v1\/uploads\/[^/]+\/commit$/.test(u.pathname)) {
      return send(res, snapshotAnswer('ci', (JSON.parse(rec.body) as { labels: unknown }).labels, [...stored.values()]));
    }
    if (req.method === 'DELETE' && /^\/v1\/uploads\/[^/]+$/.test(u.pathname)) return send(res, { status: 204 });
    if (req.method === 'POST' && (m = /^\/v1\/clusters\/([^/]+)\/snapshots$/.exec(u.pathname))) {
      const body = JSON.parse(rec.body) as { labels: unknown; nodes: { name: string; rules: string }[] };
      return send(res, snapshotAnswer(m[1], body.labels, body.nodes.map((n) => ({ name: n.name, rules: n.rules.split('\n').filter((l) => l.startsWith('-A ')).length }))));
    }
    send(res, problem(404, `no route ${req.method} ${u.pathname}`));
  } catch {
    // The client went away mid-request (an aborted push): nothing to answer.
  } finally {
    if (nodeMatch) inFlight--;
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'svcpath-push-'));
  server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address() as { port: number };
  url = `http://127.0.0.1:${addr.port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  requests.length = 0;
  nodePuts.clear();
  stored.clear();
  behaviour = { uploads: true };
  maxInFlight = 0;
});

function dumpText(name: string, rules: number): string {
  const lines = ['*nat', ':KUBE-SERVICES - [0:0]'];
  for (let i = 0; i < rules; i++) lines.push(`-A KUBE-SERVICES -d 10.43.${i >> 8}.${i & 255}/32 -p tcp -m comment --comment "${name} ${i}" -j KUBE-SVC-${i}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** Writes a dump of `rules` rules for node `name`; returns its path. */
function dump(name: string, rules: number): string {
  const file = join(dir, `${name}.iptables-save`);
  writeFileSync(file, dumpText(name, rules));
  return file;
}

async function run(argv: string[], isTTY = false) {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => void (out += s), err: (s) => void (err += s), isTTY });
  return { code, out, err };
}

function nodeArgs(n: number, rules = 3): string[] {
  const args: string[] = [];
  for (let i = 1; i <= n; i++) args.push('--node', `n${i}=${dump(`n${i}`, rules)}`, '--node-ip', `n${i}=10.0.0.${i},10.0.1.${i}`);
  return args;
}

const paths = () => requests.map((r) => `${r.method} ${r.path}`);

test('push sends nodes concurrently, streamed and gzip-compressed, with the token, and prints the commit answer', async () => {
  const manifests = join(dir, 'manifests.json');
  writeFileSync(manifests, '{"kind":"List","items":[]}');
  const previous = process.env.SVCPATH_TOKEN;
  process.env.SVCPATH_TOKEN = 'sekret';
  try {
    // One dump of several MB: gzip and the stream must hand it over in many chunks, intact.
    const big = dump('big', 40_000);
    const r = await run(['push', '--server', url, '--cluster', 'ci', ...nodeArgs(6), '--node', `big=${big}`,
      '--manifests', manifests, '--label', 'ci.job=9', '--concurrency', '3', '--format', 'iptables-save']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^created: ci version 3 \(snap-1\)\n/);
    assert.match(r.out, /^ {2}big: 40000 rules$/m);
    assert.match(r.out, /^ {2}n6: 3 rules$/m);
    assert.ok(maxInFlight >= 2 && maxInFlight <= 3, `node PUTs in flight at once: ${maxInFlight}`);
    for (const q of requests) assert.equal(q.headers.authorization, 'Bearer sekret', `${q.method} ${q.path}`);
    const puts = requests.filter((q) => q.method === 'PUT' && q.path.includes('/nodes/'));
    assert.equal(puts.length, 7);
    for (const q of puts) {
      assert.equal(q.headers['content-encoding'], 'gzip');
      assert.match(String(q.headers['content-type']), /^text\/plain/);
      assert.equal(q.query.get('format'), 'iptables-save');
    }
    const n2 = puts.find((q) => q.path.endsWith('/nodes/n2'))!;
    assert.equal(n2.query.get('addresses'), '10.0.0.2,10.0.1.2');
    assert.equal(n2.body, dumpText('n2', 3));
    assert.equal(puts.find((q) => q.path.endsWith('/nodes/big'))!.body, dumpText('big', 40_000));
    assert.equal(requests.find((q) => q.path.endsWith('/manifests'))!.body, '{"kind":"List","items":[]}');
    const p = paths();
    assert.equal(p[0], 'POST /v1/clusters/ci/uploads');
    assert.equal(p.at(-1), 'POST /v1/uploads/up-1/commit');
    assert.deepEqual(JSON.parse(requests.at(-1)!.body), { labels: { 'ci.job': '9' } });
    assert.ok(!p.includes('DELETE /v1/uploads/up-1'));
    // Off a terminal: a line per node, then the totals.
    assert.match(r.err, /^\[1\/7\] node n\d: 3 rules, /m);
    assert.match(r.err, /^nodes 7\/7 · [\d.]+ (kB|MB) sent · 0 retries$/m);
  } finally {
    if (previous === undefined) delete process.env.SVCPATH_TOKEN;
    else process.env.SVCPATH_TOKEN = previous;
  }
});

test('a node answered 503 once is sent again and the push succeeds', async () => {
  behaviour = {
    uploads: true,
    node: (name, attempt) => (name === 'n2' && attempt === 1 ? { ...problem(503, 'busy'), headers: { 'retry-after': '0' } } : undefined),
  };
  const r = await run(['push', '--server', url, '--cluster', 'ci', ...nodeArgs(3)]);
  assert.equal(r.code, 0, r.err);
  assert.equal(nodePuts.get('n2'), 2);
  assert.equal(nodePuts.get('n1'), 1);
  assert.match(r.err, /svcpath push: node n2: 503 busy; attempt 2 of 3 in 0\.0 s/);
  assert.match(r.err, /nodes 3\/3 · .* sent · 1 retry$/m);
  assert.match(r.out, /^created: ci version 3/);
  assert.equal(requests.at(-1)!.path, '/v1/uploads/up-1/commit');
});

test('a node that keeps failing fails the push after 3 attempts, and the upload is deleted', async () => {
  behaviour = { uploads: true, node: (name) => (name === 'n1' ? { ...problem(503, 'busy'), headers: { 'retry-after': '0' } } : undefined) };
  const r = await run(['push', '--server', url, '--cluster', 'ci', ...nodeArgs(2), '--concurrency', '1']);
  assert.equal(r.code, 1);
  assert.equal(nodePuts.get('n1'), 3);
  assert.match(r.err, /svcpath push: 503 node n1: busy\n/);
  assert.match(r.err, /nothing stored \(upload up-1 deleted\)/);
  assert.ok(paths().includes('DELETE /v1/uploads/up-1'));
  assert.ok(!paths().includes('POST /v1/uploads/up-1/commit'));
});

test('a dump the server cannot parse is reported with node, line and column, not retried, and the upload is deleted', async () => {
  behaviour = {
    uploads: true,
    node: (name) => (name === 'n2'
      ? problem(400, '-j needs a target', { code: 'DUMP_SYNTAX', line: 3, column: 7, excerpt: '3 | -A X -j\n  |       ^' })
      : undefined),
  };
  const r = await run(['push', '--server', url, '--cluster', 'ci', ...nodeArgs(4)]);
  assert.equal(r.code, 1);
  assert.match(r.err, /svcpath push: 400 node n2: -j needs a target \(line 3, column 7\)\n3 \| -A X -j\n {2}\| {7}\^\n/);
  assert.equal(nodePuts.get('n2'), 1);
  assert.equal(requests.at(-1)!.method, 'DELETE');
  assert.equal(requests.at(-1)!.path, '/v1/uploads/up-1');
  assert.ok(!paths().includes('POST /v1/uploads/up-1/commit'));
});

test('Ctrl-C during a push deletes the upload and exits 130', async () => {
  behaviour = {
    uploads: true,
    node: () => {
      setImmediate(() => process.emit('SIGINT', 'SIGINT'));
      return 'hang';
    },
  };
  const r = await run(['push', '--server', url, '--cluster', 'ci', ...nodeArgs(3)]);
  assert.equal(r.code, 130, r.err);
  assert.match(r.err, /svcpath push: interrupted\n/);
  assert.equal(requests.at(-1)!.method, 'DELETE');
  assert.ok(!paths().includes('POST /v1/uploads/up-1/commit'));
  assert.equal(process.listenerCount('SIGINT'), 0);
});

test('on a terminal, progress is one line drawn again in place', async () => {
  const r = await run(['push', '--server', url, '--cluster', 'ci', ...nodeArgs(3), '--json'], true);
  assert.equal(r.code, 0, r.err);
  assert.equal(JSON.parse(r.out).snapshot.id, 'snap-1');
  assert.ok(r.err.includes('\r\x1b[2Knodes 0/3 · '), JSON.stringify(r.err));
  // eslint-disable-next-line no-control-regex -- the progress line starts with a terminal escape (ESC [2K)
  assert.match(r.err, /\r\x1b\[2Knodes 3\/3 · [\d.]+ \S*B sent · 0 retries\n$/);
  assert.doesNotMatch(r.err, /\[1\/3\]/);
});

test('a server without step-wise uploads (404) gets everything in one request, with --token', async () => {
  behaviour = { uploads: false };
  const r = await run(['push', '--server', url, '--cluster', 'old', ...nodeArgs(2), '--token', 'flag-token', '--label', 'a=b']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /no step-wise upload .*404.*one request/);
  assert.deepEqual(paths(), ['POST /v1/clusters/old/uploads', 'POST /v1/clusters/old/snapshots']);
  const post = requests[1];
  assert.equal(post.headers.authorization, 'Bearer flag-token');
  assert.equal(post.headers['content-encoding'], 'gzip');
  const body = JSON.parse(post.body) as { labels: unknown; nodes: { name: string; addresses: string[]; rules: string }[] };
  assert.deepEqual(body.labels, { a: 'b' });
  assert.deepEqual(body.nodes.map((n) => [n.name, n.addresses]), [['n1', ['10.0.0.1', '10.0.1.1']], ['n2', ['10.0.0.2', '10.0.1.2']]]);
  assert.equal(body.nodes[0].rules, dumpText('n1', 3));
  assert.match(r.out, /^created: old version 3 \(snap-1\)\n {2}n1: 3 rules\n {2}n2: 3 rules\n$/);
});

test('without step-wise uploads, a dual-stack node\'s --node6 dump goes in the one request as rules6', async () => {
  behaviour = { uploads: false };
  const six = join(dir, 'n1.v6.txt');
  writeFileSync(six, '# Generated by ip6tables-save v1.8.9\n*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n');
  const r = await run(['push', '--server', url, '--cluster', 'old6', ...nodeArgs(1), '--node6', `n1=${six}`]);
  assert.equal(r.code, 0, r.err);
  const body = JSON.parse(requests[1].body) as { nodes: { name: string; rules: string; rules6?: string }[] };
  assert.equal(body.nodes[0].rules, dumpText('n1', 3));
  assert.equal(body.nodes[0].rules6, '# Generated by ip6tables-save v1.8.9\n*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n');
});

test('push refuses a bad --concurrency and a missing file before sending anything', async () => {
  const bad = await run(['push', '--server', url, '--cluster', 'ci', ...nodeArgs(1), '--concurrency', '0']);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /--concurrency must be a whole number from 1/);
  const missing = await run(['push', '--server', url, '--cluster', 'ci', '--node', `gone=${join(dir, 'gone.txt')}`]);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /ENOENT/);
  assert.equal(requests.length, 0);
});
