/**
 * Fleet benchmark: the real server (src/server.ts in a child process, on a database of its own)
 * and a generated cluster of N nodes, each node's dump as kube-proxy on that node writes it.
 * For each size it prints upload times (one streamed multipart request for v1, step-wise for v2),
 * database growth, the server's peak RSS, the first all-node trace after a restart, warm
 * all-node traces, the audit, the diff v1 → v2 and /health latency while uploads and the diff run,
 * each next to its target with ✓ or ✗.
 *
 *   BENCH_FLEET=20x2000,100x2000,20x10000   sizes, nodes x Services (the default); 0 skips
 *   BENCH_FLEET_TRACES=1000                 timed warm traces per size…
 *   BENCH_FLEET_TRACE_BUDGET_S=120          …or as many as fit in this time (and as many
 *                                           warm-up traces as fit in half of it)
 *   BENCH_FLEET_RSS_LIMIT_MB=12288          the server is killed above this (the step fails)
 *   BENCH_FLEET_TIMEOUT_S=1800              the longest any one step may take
 *   BENCH_FLEET_SERVER=<dir>                run the server of another checkout (default this one)
 *   SVCPATH_BENCH_ADMIN_URL                 where to create the throwaway database
 *                                           (default postgresql://postgres@127.0.0.1:5432/postgres)
 *
 * Missed targets are figures, not failures. The process exits non-zero when a step fails: an
 * error answer, the server exiting or killed, a timeout. Dumps are written to .bench-out/fleet-*
 * (kept between runs, rendered again when the generator changes) and streamed from there.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { Rng, editFiveServices, fleetNodes, generateCluster, renderFleetNode, renderManifests } from '../test/support/kube-gen.ts';
import type { FleetNode, GenCluster, RenderOptions } from '../test/support/kube-gen.ts';
import { ms, percentile } from './common.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SERVER_ROOT = process.env.BENCH_FLEET_SERVER ?? ROOT;
const OUT = join(ROOT, '.bench-out');
const GENERATOR = join(ROOT, 'test/support/kube-gen.ts');
const ADMIN_URL = process.env.SVCPATH_BENCH_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const TRACES = Number(process.env.BENCH_FLEET_TRACES ?? 1000);
const TRACE_BUDGET_MS = Number(process.env.BENCH_FLEET_TRACE_BUDGET_S ?? 120) * 1000;
const STEP_TIMEOUT_MS = Number(process.env.BENCH_FLEET_TIMEOUT_S ?? 1800) * 1000;
const GiB = 1024 ** 3;
const MB = 1e6;
/** kube-proxy with --nodeport-addresses: each node's NodePort rule names its own address. */
const RENDER: RenderOptions = { nodePortAddresses: ['192.168.0.0/16'] };
/** The one cluster every node belongs to, and the seed it is generated from. */
const CLUSTER = 'fleet';
const SEED = 1;

// ---------------------------------------------------------------------------------------
// Sizes and targets
// ---------------------------------------------------------------------------------------

interface Size {
  nodes: number;
  services: number;
}

/** The issue's targets: tight ones for 20 × 2,000, "it works, within 3 GiB" for the larger fleets. */
interface Targets {
  /** v1's database growth, as a multiple of one node's raw dump. */
  v1GrowthPerDump?: number;
  /** v2's database growth, as a share of v2's raw upload (all dumps and manifests). */
  v2GrowthShare?: number;
  warmP99Ms: number;
  auditMs?: number;
  diffMs?: number;
  rssBytes?: number;
  healthP99Ms: number;
}

const SMALL: Targets = { v1GrowthPerDump: 3, v2GrowthShare: 0.01, warmP99Ms: 30, auditMs: 10_000, diffMs: 3_000, healthP99Ms: 100 };
const LARGE: Targets = { warmP99Ms: 100, rssBytes: 3 * GiB, healthP99Ms: 100 };

function parseSizes(text: string): Size[] {
  return text.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s);
    if (!m) throw new Error(`BENCH_FLEET: '${s}' is not <nodes>x<services> (e.g. 20x2000)`);
    return { nodes: Number(m[1]), services: Number(m[2]) };
  });
}

// ---------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------

let failures = 0;

function mb(bytes: number): string {
  return bytes >= 10 * MB ? `${(bytes / MB).toFixed(0)} MB` : `${(bytes / MB).toFixed(1)} MB`;
}

function seconds(x: number): string {
  return x >= 1000 ? `${(x / 1000).toFixed(1)} s` : ms(x);
}

/** A figure, and its target with ✓/✗ when it has one. */
function figure(label: string, value: string, target?: { ok: boolean; text: string }): void {
  console.log(`  ${label}: ${value}${target ? `   [target ${target.text} ${target.ok ? '✓' : '✗'}]` : ''}`);
}

function failed(step: string, error: unknown): void {
  failures++;
  console.log(`  ✗ ${step}: FAILED: ${error instanceof Error ? error.message : String(error)}`);
}

// ---------------------------------------------------------------------------------------
// The fleet's files
// ---------------------------------------------------------------------------------------

interface NodeFiles extends FleetNode {
  v1: string;
  v2: string;
}

interface Fleet {
  size: Size;
  cluster: GenCluster;
  nodes: NodeFiles[];
  manifests: { v1: string; v2: string };
  changed: string[];
}

function fileBytes(file: string): number {
  return statSync(file).size;
}

/**
 * Generates the cluster, and renders every node's dump (v1 and v2) and both manifests to files,
 * one dump in memory at a time. Files of an earlier run are kept when the generator is unchanged.
 */
function prepareFleet(size: Size): Fleet {
  const dir = join(OUT, `fleet-${size.nodes}x${size.services}`);
  const cluster = generateCluster({ seed: SEED, services: size.services, nodes: size.nodes });
  const edit = editFiveServices(cluster);
  const nodes = fleetNodes(cluster, size.nodes).map((n) => ({
    ...n,
    v1: join(dir, 'v1', `${n.name}.iptables-save`),
    v2: join(dir, 'v2', `${n.name}.iptables-save`),
  }));
  const manifests = { v1: join(dir, 'v1', 'manifests.json'), v2: join(dir, 'v2', 'manifests.json') };
  const stamp = join(dir, 'stamp');
  const fingerprint = createHash('sha256')
    .update(readFileSync(GENERATOR))
    .update(JSON.stringify({ size, SEED, RENDER }))
    .digest('hex');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === fingerprint) {
    console.log(`  dumps: ${dir} (rendered by an earlier run with this generator)`);
  } else {
    const t0 = performance.now();
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, 'v1'), { recursive: true });
    mkdirSync(join(dir, 'v2'), { recursive: true });
    for (const n of nodes) {
      writeFileSync(n.v1, renderFleetNode(cluster, n, RENDER));
      writeFileSync(n.v2, renderFleetNode(edit.cluster, n, RENDER));
    }
    writeFileSync(manifests.v1, renderManifests(cluster));
    writeFileSync(manifests.v2, renderManifests(edit.cluster));
    writeFileSync(stamp, fingerprint);
    console.log(`  dumps: rendered to ${dir} in ${seconds(performance.now() - t0)}`);
  }
  return { size, cluster, nodes, manifests, changed: edit.changed };
}

/** The ClusterIP frontends of the cluster: what an all-node trace asks about. */
function clusterIPFrontends(cluster: GenCluster): { destination: string; port: number; protocol: string }[] {
  const out: { destination: string; port: number; protocol: string }[] = [];
  for (const s of cluster.services) {
    if (s.clusterIP === '' || s.clusterIP === 'None') continue;
    for (const p of s.ports) out.push({ destination: s.clusterIP, port: p.port, protocol: p.protocol.toLowerCase() });
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function statusField(pid: number, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `node --import tsx src/server.ts` on the given database. Samples VmRSS every 100 ms (the peak
 * of the current phase and of its life) and reads VmHWM; kills the server above `rssLimit` so a
 * runaway cannot take the machine down. `exited` rejects when the server ends without being stopped.
 */
class ServerProcess {
  readonly base: string;
  private child: ChildProcess;
  private sampler: NodeJS.Timeout;
  private stopping = false;
  private stderrTail: string[] = [];
  private notable: string[] = [];
  private killedWhy: string | undefined;
  peakRss = 0;
  phasePeakRss = 0;
  hwm = 0;
  readonly exited: Promise<never>;

  private constructor(port: number, databaseUrl: string, log: string, private readonly rssLimit: number) {
    this.base = `http://127.0.0.1:${port}`;
    // BENCH_FLEET_NODE_ARGS: extra flags for the server's node (e.g. --trace-gc), which NODE_OPTIONS refuses.
    const extra = (process.env.BENCH_FLEET_NODE_ARGS ?? '').split(' ').filter(Boolean);
    this.child = spawn(process.execPath, [...extra, '--import', 'tsx', 'src/server.ts'], {
      cwd: SERVER_ROOT,
      env: { ...process.env, DATABASE_URL: databaseUrl, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', SVCPATH_AUTH: 'off' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const logStream = createWriteStream(log, { flags: 'a' });
    this.child.stdout!.pipe(logStream, { end: false });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      logStream.write(chunk);
      for (const line of chunk.toString('utf8').split('\n')) {
        // V8's out-of-memory report ends in a native stack: its FATAL line says more than its tail.
        if (/FATAL ERROR|Error:/.test(line) && this.notable.length < 3) this.notable.push(line.trim());
        if (line.trim()) this.stderrTail.push(line.trim());
      }
      this.stderrTail = this.stderrTail.slice(-3);
    });
    this.exited = new Promise<never>((_resolve, reject) => {
      this.child.once('exit', (code, signal) => {
        clearInterval(this.sampler);
        if (this.stopping) return;
        const why = this.killedWhy ?? `the server exited (${signal ?? `code ${code}`})`;
        reject(new Error(`${why}; peak RSS ${mb(Math.max(this.peakRss, this.hwm))}${this.notable.length ? `; it said: ${this.notable.join(' | ').slice(0, 600)}` : this.stderrTail.length ? `; its last words: ${this.stderrTail.join(' | ').slice(-600)}` : ''}`));
      });
    });
    this.exited.catch(() => {});
    this.sampler = setInterval(() => this.sample(), 100);
  }

  static async start(databaseUrl: string, log: string, rssLimit: number): Promise<ServerProcess> {
    const server = new ServerProcess(await freePort(), databaseUrl, log, rssLimit);
    const deadline = Date.now() + 180_000;
    for (;;) {
      try {
        const r = await race(request(server.base, 'GET', '/health', { timeoutMs: 2000 }), server.exited);
        if (r.status === 200) return server;
      } catch (e) {
        if (server.child.exitCode !== null || server.child.signalCode !== null) throw e;
      }
      if (Date.now() > deadline) {
        await server.stop();
        throw new Error('the server did not answer /health within 180 s');
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Ended, and not because it was stopped. */
  get died(): boolean {
    return !this.alive && !this.stopping;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number {
    return this.child.pid!;
  }

  private sample(): void {
    const rss = statusField(this.pid, 'VmRSS');
    const hwm = statusField(this.pid, 'VmHWM');
    if (rss !== undefined) {
      this.peakRss = Math.max(this.peakRss, rss);
      this.phasePeakRss = Math.max(this.phasePeakRss, rss);
      if (rss > this.rssLimit && this.killedWhy === undefined) {
        this.killedWhy = `killed by the bench: RSS ${mb(rss)} above BENCH_FLEET_RSS_LIMIT_MB (${mb(this.rssLimit)})`;
        this.child.kill('SIGKILL');
      }
    }
    if (hwm !== undefined) this.hwm = Math.max(this.hwm, hwm);
  }

  /** Starts a phase: its peak RSS is counted from now. */
  phase(): void {
    this.sample();
    this.phasePeakRss = 0;
  }

  /** The phase's peak (sampled VmRSS; VmHWM covers what the samples miss over the server's life). */
  phasePeak(): number {
    this.sample();
    return this.phasePeakRss;
  }

  /** At once, for a bench that is going away. */
  kill(): void {
    this.stopping = true;
    this.child.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.sample();
    this.stopping = true;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 60_000);
    await gone;
    clearTimeout(timer);
    clearInterval(this.sampler);
  }
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

interface Answer {
  status: number;
  body: Buffer;
}

interface RequestOptions {
  headers?: Record<string, string | number>;
  /** A buffer, or a stream with its length given in the headers (never all in memory). */
  body?: Buffer | string | Readable;
  timeoutMs?: number;
}

function request(base: string, method: string, path: string, opts: RequestOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method, agent, headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const timeoutMs = opts.timeoutMs ?? STEP_TIMEOUT_MS;
    const timer = setTimeout(() => req.destroy(new Error(`${method} ${path} timed out after ${seconds(timeoutMs)}`)), timeoutMs);
    req.on('close', () => clearTimeout(timer));
    const body = opts.body;
    if (body instanceof Readable) {
      body.on('error', (e) => req.destroy(e));
      body.pipe(req);
    } else req.end(body);
  });
}

/** The answer as JSON, or an error quoting it when its status is not one of `ok`. */
function json<T>(answer: Answer, what: string, ok: readonly number[] = [200, 201]): T {
  if (!ok.includes(answer.status)) {
    throw new Error(`${what} answered ${answer.status}: ${answer.body.toString('utf8').slice(0, 600)}`);
  }
  return JSON.parse(answer.body.toString('utf8')) as T;
}

function race<T>(work: Promise<T>, exited: Promise<never>, timeoutMs = STEP_TIMEOUT_MS, what = 'the step'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_r, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${seconds(timeoutMs)} (BENCH_FLEET_TIMEOUT_S)`)), timeoutMs);
  });
  return Promise.race([work, exited, timeout]).finally(() => clearTimeout(timer));
}

interface Part {
  name: string;
  file?: string;
  value?: string;
}

/** multipart/form-data as a stream over the files, with its length known up front. */
function multipart(parts: readonly Part[]): { boundary: string; length: number; stream: Readable } {
  const boundary = `svcpath-bench-${randomBytes(12).toString('hex')}`;
  const head = (p: Part) =>
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.file ? `; filename="${p.name}"\r\nContent-Type: text/plain` : ''}\r\n\r\n`,
    );
  const crlf = Buffer.from('\r\n');
  const end = Buffer.from(`--${boundary}--\r\n`);
  let length = end.length;
  for (const p of parts) length += head(p).length + (p.file ? fileBytes(p.file) : Buffer.byteLength(p.value ?? '')) + crlf.length;
  async function* generate(): AsyncGenerator<Buffer> {
    for (const p of parts) {
      yield head(p);
      if (p.file) yield* createReadStream(p.file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>;
      else yield Buffer.from(p.value ?? '');
      yield crlf;
    }
    yield end;
  }
  return { boundary, length, stream: Readable.from(generate(), { objectMode: false }) };
}

interface CreateResult {
  created: boolean;
  snapshot: { id: string; version: number; nodes: unknown[] };
}

async function uploadOneRequest(server: ServerProcess, fleet: Fleet, version: 'v1' | 'v2'): Promise<{ result: CreateResult; bytes: number }> {
  const parts: Part[] = [];
  for (const n of fleet.nodes) {
    parts.push({ name: n.name, file: n[version] });
    parts.push({ name: `addresses.${n.name}`, value: n.addresses.join(',') });
  }
  parts.push({ name: 'manifests', file: fleet.manifests[version] }, { name: 'label.bench', value: `fleet ${version}` });
  const body = multipart(parts);
  const answer = await request(server.base, 'POST', `/v1/clusters/${CLUSTER}/snapshots`, {
    headers: { 'content-type': `multipart/form-data; boundary=${body.boundary}`, 'content-length': body.length },
    body: body.stream,
  });
  const result = json<CreateResult>(answer, `POST /v1/clusters/${CLUSTER}/snapshots (multipart, ${mb(body.length)})`, [201]);
  if (result.snapshot.nodes.length !== fleet.nodes.length) {
    throw new Error(`the snapshot has ${result.snapshot.nodes.length} nodes, not ${fleet.nodes.length}`);
  }
  return { result, bytes: body.length };
}

/** The step-wise upload, or null when the server has no such routes (404 to the first step). */
async function uploadStepwise(server: ServerProcess, fleet: Fleet, version: 'v1' | 'v2'): Promise<{ result: CreateResult; perNode: number[]; manifestsMs: number; commitMs: number } | null> {
  const begin = await request(server.base, 'POST', `/v1/clusters/${CLUSTER}/uploads`);
  if (begin.status === 404) return null;
  const { id } = json<{ id: string }>(begin, `POST /v1/clusters/${CLUSTER}/uploads`, [201]);
  try {
    const perNode: number[] = [];
    for (const n of fleet.nodes) {
      const t = performance.now();
      const path = `/v1/uploads/${id}/nodes/${encodeURIComponent(n.name)}?addresses=${n.addresses.join(',')}`;
      const put = await request(server.base, 'PUT', path, {
        headers: { 'content-type': 'text/plain', 'content-length': fileBytes(n[version]) },
        body: createReadStream(n[version], { highWaterMark: 1 << 20 }),
      });
      json(put, `PUT ${path}`, [200]);
      perNode.push(performance.now() - t);
    }
    let t = performance.now();
    const manifests = await request(server.base, 'PUT', `/v1/uploads/${id}/manifests`, {
      headers: { 'content-type': 'text/plain', 'content-length': fileBytes(fleet.manifests[version]) },
      body: createReadStream(fleet.manifests[version], { highWaterMark: 1 << 20 }),
    });
    json(manifests, `PUT /v1/uploads/${id}/manifests`, [200]);
    const manifestsMs = performance.now() - t;
    t = performance.now();
    const commit = await request(server.base, 'POST', `/v1/uploads/${id}/commit`, {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ labels: { bench: `fleet ${version} step-wise` } }),
    });
    const result = json<CreateResult>(commit, `POST /v1/uploads/${id}/commit`, [201]);
    return { result, perNode, manifestsMs, commitMs: performance.now() - t };
  } catch (e) {
    await request(server.base, 'DELETE', `/v1/uploads/${id}`, { timeoutMs: 60_000 }).catch(() => {});
    throw e;
  }
}

// ---------------------------------------------------------------------------------------
// /health, probed from a thread of its own
// ---------------------------------------------------------------------------------------

/**
 * Sends GET /health every 20 ms whether or not the last one has answered (so a server that
 * stalls for a second is charged fifty slow answers, not one), from a worker thread so the
 * bench's own work does not delay the probes. A probe unanswered after 30 s counts as 30 s.
 */
const PROBER = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const agent = new http.Agent({ keepAlive: true });
const samples = [];
let errors = 0;
let inFlight = new Set();
function probe() {
  const t0 = performance.now();
  const entry = { t0 };
  inFlight.add(entry);
  const done = (ok) => {
    if (!inFlight.delete(entry)) return;
    samples.push(performance.now() - t0);
    if (!ok) errors++;
  };
  const req = http.get(workerData.url, { agent, timeout: 30000 }, (res) => {
    res.resume();
    res.on('end', () => done(res.statusCode === 200));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', () => done(false));
}
const timer = setInterval(probe, 20);
parentPort.on('message', () => {
  clearInterval(timer);
  // Probes still out are counted with the time they have waited so far.
  for (const e of inFlight) samples.push(performance.now() - e.t0);
  inFlight.clear();
  agent.destroy();
  parentPort.postMessage({ samples, errors });
});
`;

class HealthProber {
  private worker: Worker;

  constructor(base: string) {
    this.worker = new Worker(PROBER, { eval: true, workerData: { url: `${base}/health` } });
  }

  async stop(): Promise<{ samples: number[]; errors: number }> {
    const result = new Promise<{ samples: number[]; errors: number }>((resolve) => this.worker.once('message', resolve));
    this.worker.postMessage('stop');
    const r = await result;
    await this.worker.terminate();
    r.samples.sort((a, b) => a - b);
    return r;
  }
}

// ---------------------------------------------------------------------------------------
// The database
// ---------------------------------------------------------------------------------------

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Heap, TOAST and indexes of every table in the public schema (no VACUUM first), and the whole database. */
async function databaseSize(url: string): Promise<{ tables: number; database: number }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ tables: string; database: string }>(
      `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS tables, pg_database_size(current_database()) AS database
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'm')`,
    );
    return { tables: Number(r.rows[0].tables), database: Number(r.rows[0].database) };
  } finally {
    await c.end();
  }
}

// ---------------------------------------------------------------------------------------
// One fleet size
// ---------------------------------------------------------------------------------------

function healthFigure(label: string, probes: { samples: number[]; errors: number }, t: Targets, worst: { p99: number }): void {
  if (probes.samples.length === 0) {
    figure(`/health p99 during ${label}`, 'no probe sent (the step ended at once)');
    return;
  }
  const p99 = percentile(probes.samples, 0.99);
  worst.p99 = Math.max(worst.p99, p99);
  figure(
    `/health p99 during ${label}`,
    `${ms(p99)} (median ${ms(percentile(probes.samples, 0.5))}, max ${ms(probes.samples[probes.samples.length - 1] ?? 0)}, ${probes.samples.length} probes${probes.errors ? `, ${probes.errors} failed` : ''})`,
    { ok: p99 < t.healthP99Ms && probes.errors === 0, text: `< ${t.healthP99Ms} ms` },
  );
}

async function benchSize(size: Size, rssLimit: number): Promise<void> {
  const label = `${size.nodes} nodes × ${size.services} Services`;
  console.log(`\n== fleet: ${label}`);
  const t = size.nodes === 20 && size.services === 2000 ? SMALL : LARGE;
  const fleet = prepareFleet(size);
  const v1Dumps = fleet.nodes.map((n) => fileBytes(n.v1));
  const v2Raw = fleet.nodes.reduce((s, n) => s + fileBytes(n.v2), 0) + fileBytes(fleet.manifests.v2);
  const oneDump = v1Dumps.reduce((a, b) => a + b, 0) / v1Dumps.length;
  console.log(
    `  generated: ${fleet.cluster.nodes.length} nodes, one node's dump ${mb(oneDump)} (mean), all ${fleet.nodes.length} ${mb(v1Dumps.reduce((a, b) => a + b, 0))}, `
      + `manifests ${mb(fileBytes(fleet.manifests.v1))}; v2 changes ${fleet.changed.join(', ')}`,
  );

  const dbName = `svcpath_bench_${randomBytes(5).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(dbName)}`));
  live.database = dbName;
  const dbUrl = withDatabase(ADMIN_URL, dbName);
  const log = join(OUT, `fleet-server-${size.nodes}x${size.services}.log`);
  rmSync(log, { force: true });
  let server: ServerProcess | undefined;
  const hwms: number[] = [];
  const phasePeaks: string[] = [];
  const worstHealth = { p99: 0 };
  const start = async () => {
    if (server) hwms.push(server.hwm);
    if (server?.died) console.log('  (the server is started again for the next steps)');
    server = live.server = await ServerProcess.start(dbUrl, log, rssLimit);
    return server;
  };
  /**
   * Runs one step against the server. A failure is printed and answers undefined; the steps that
   * do not need what it should have made still run, on a server started again if this one died.
   */
  const step = async <T>(name: string, work: (s: ServerProcess) => Promise<T>, timeoutMs = STEP_TIMEOUT_MS): Promise<T | undefined> => {
    const s = server!.alive ? server! : await start();
    s.phase();
    try {
      return await race(work(s), s.exited, timeoutMs, name);
    } catch (e) {
      // A request cut short by the server's death says "socket hang up": say why it died.
      const death = await Promise.race([s.exited.catch((d: unknown) => d), new Promise((r) => setTimeout(r, 1000))]);
      failed(name, death instanceof Error && death !== e ? new Error(`${death.message} (the request: ${(e as Error).message})`) : e);
      return undefined;
    } finally {
      phasePeaks.push(`${name} ${mb(s.phasePeak())}`);
    }
  };
  /** The step, with /health probed while it runs. */
  const probed = async <T>(name: string, what: string, work: (s: ServerProcess) => Promise<T>): Promise<T | undefined> => {
    const prober = new HealthProber(server!.alive ? server!.base : (await start()).base);
    try {
      return await step(name, work);
    } finally {
      healthFigure(what, await prober.stop(), t, worstHealth);
    }
  };
  try {
    await start();
    const empty = await databaseSize(dbUrl);

    // v1: every node and the manifests in one streamed multipart request.
    const v1 = await probed('upload v1 (one request)', 'the v1 upload', async (s) => {
      const t0 = performance.now();
      const r = await uploadOneRequest(s, fleet, 'v1');
      figure('upload v1, one streamed multipart request', `${seconds(performance.now() - t0)} for ${mb(r.bytes)} (snapshot version ${r.result.snapshot.version})`);
      return r.result;
    });
    if (v1 === undefined) return;
    const afterV1 = await databaseSize(dbUrl);
    const growV1 = afterV1.tables - empty.tables;
    figure(
      'database growth of v1 (Σ pg_total_relation_size of the public tables)',
      `${mb(growV1)} = ${(growV1 / oneDump).toFixed(2)}× one node's dump (pg_database_size: +${mb(afterV1.database - empty.database)})`,
      t.v1GrowthPerDump === undefined ? undefined : { ok: growV1 <= t.v1GrowthPerDump * oneDump, text: `≤ ${t.v1GrowthPerDump}×` },
    );

    // A restart: the first trace reads every node back from the database.
    await server!.stop();
    await start();
    const id = v1.snapshot.id;
    const frontends = clusterIPFrontends(fleet.cluster);
    const traceUrl = (f: { destination: string; port: number; protocol: string }) =>
      `/v1/snapshots/${id}/trace?destination=${f.destination}&port=${f.port}&protocol=${f.protocol}`;
    const traceOnce = async (s: ServerProcess, f: (typeof frontends)[number]): Promise<{ ms: number; bytes: number }> => {
      const t0 = performance.now();
      const answer = await request(s.base, 'GET', traceUrl(f));
      const elapsed = performance.now() - t0;
      const body = json<{ results: unknown[] }>(answer, `GET ${traceUrl(f)}`, [200]);
      if (body.results.length !== fleet.nodes.length) throw new Error(`GET ${traceUrl(f)}: results for ${body.results.length} nodes, not ${fleet.nodes.length}`);
      return { ms: elapsed, bytes: answer.body.length };
    };
    await step('first all-node trace after a restart', async (s) => {
      const first = await traceOnce(s, frontends[0]);
      figure('first all-node trace after a restart', `${seconds(first.ms)} (${fleet.nodes.length} nodes, ${frontends[0].destination}:${frontends[0].port})`);
    });

    // Warm: a pass over 300 random frontends, then TRACES requests among them (each within its time budget).
    const rng = new Rng(7);
    const sample = Array.from({ length: Math.min(300, frontends.length) }, () => frontends[rng.int(frontends.length)]);
    await step('warm all-node traces', async (s) => {
      const firstTouch: number[] = [];
      let until = performance.now() + TRACE_BUDGET_MS / 2;
      for (const f of sample) {
        if (performance.now() > until) break;
        firstTouch.push((await traceOnce(s, f)).ms);
      }
      const timed: number[] = [];
      let bytes = 0;
      until = performance.now() + TRACE_BUDGET_MS;
      for (let i = 0; i < TRACES && performance.now() < until; i++) {
        const r = await traceOnce(s, sample[rng.int(sample.length)]);
        timed.push(r.ms);
        bytes += r.bytes;
      }
      firstTouch.sort((a, b) => a - b);
      timed.sort((a, b) => a - b);
      const p99 = percentile(timed, 0.99);
      const cut = (n: number, of: number) => (n < of ? ` (${n} of ${of}: the time budget, BENCH_FLEET_TRACE_BUDGET_S, ran out)` : '');
      figure(
        `warm all-node trace, ${timed.length} requests over ${sample.length} random ClusterIP frontends${cut(timed.length, TRACES)}`,
        `median ${seconds(percentile(timed, 0.5))}, p99 ${seconds(p99)}, max ${seconds(timed[timed.length - 1])}; answers of ${(bytes / timed.length / 1e3).toFixed(0)} kB`,
        { ok: p99 < t.warmP99Ms, text: `p99 < ${t.warmP99Ms} ms` },
      );
      figure(
        `  before them, the first trace of each frontend${cut(firstTouch.length, sample.length)}`,
        `median ${seconds(percentile(firstTouch, 0.5))}, p99 ${seconds(percentile(firstTouch, 0.99))}`,
      );
    });

    await step('audit', async (s) => {
      const t0 = performance.now();
      const answer = await request(s.base, 'GET', `/v1/snapshots/${id}/audit`);
      const elapsed = performance.now() - t0;
      const body = json<{ findings: { severity: string }[] }>(answer, `GET /v1/snapshots/${id}/audit`, [200]);
      const bySeverity = new Map<string, number>();
      for (const f of body.findings) bySeverity.set(f.severity, (bySeverity.get(f.severity) ?? 0) + 1);
      figure(
        'audit',
        `${seconds(elapsed)} (${[...bySeverity].map(([k, v]) => `${v} ${k}`).join(', ') || 'no findings'}; ${mb(answer.body.length)})`,
        t.auditMs === undefined ? undefined : { ok: elapsed < t.auditMs, text: `< ${seconds(t.auditMs)}` },
      );
    });

    // v2: five Services changed, uploaded step-wise (or in one request where the server cannot).
    const v2 = await probed('upload v2', 'the v2 upload', async (s) => {
      const t0 = performance.now();
      const stepwise = await uploadStepwise(s, fleet, 'v2');
      let result: CreateResult;
      if (stepwise === null) {
        figure('step-wise upload', 'unavailable (404): v2 goes in one request instead');
        const one = await uploadOneRequest(s, fleet, 'v2');
        figure('upload v2, one streamed multipart request', `${seconds(performance.now() - t0)} for ${mb(one.bytes)}`);
        result = one.result;
      } else {
        const sorted = [...stepwise.perNode].sort((a, b) => a - b);
        figure(
          'upload v2, step-wise',
          `${seconds(performance.now() - t0)} in all: ${stepwise.perNode.length} PUTs of a node (median ${seconds(percentile(sorted, 0.5))}, max ${seconds(sorted[sorted.length - 1])}), manifests ${seconds(stepwise.manifestsMs)}, commit ${seconds(stepwise.commitMs)}`,
        );
        result = stepwise.result;
      }
      if (!result.created) throw new Error(`answered 200 (unchanged): snapshot ${result.snapshot.id} version ${result.snapshot.version}`);
      return result;
    });
    if (v2 === undefined) return;
    const afterV2 = await databaseSize(dbUrl);
    const growV2 = afterV2.tables - afterV1.tables;
    figure(
      'database growth of v2 (5 Services changed)',
      `${mb(growV2)} = ${((100 * growV2) / v2Raw).toFixed(2)}% of its raw upload (${mb(v2Raw)}) (pg_database_size: +${mb(afterV2.database - afterV1.database)})`,
      t.v2GrowthShare === undefined ? undefined : { ok: growV2 <= t.v2GrowthShare * v2Raw, text: `≤ ${t.v2GrowthShare * 100}%` },
    );

    await probed('diff v1 → v2', 'the diff', async (s) => {
      const t0 = performance.now();
      const path = `/v1/diff?from=${id}&to=${v2.snapshot.id}`;
      const body = json<{ summary: unknown }>(await request(s.base, 'GET', path), `GET ${path}`, [200]);
      const elapsed = performance.now() - t0;
      figure(
        'diff v1 → v2 (right after the v2 upload)',
        `${seconds(elapsed)}; summary ${JSON.stringify(body.summary)}`,
        t.diffMs === undefined ? undefined : { ok: elapsed < t.diffMs, text: `< ${seconds(t.diffMs)}` },
      );
    });
  } catch (e) {
    failed(label, e);
  } finally {
    if (server) {
      await server.stop().catch(() => {});
      hwms.push(server.hwm);
    }
    live.server = undefined;
    const peak = Math.max(0, ...hwms);
    figure(
      `server peak RSS (VmHWM over ${hwms.length} server runs)`,
      `${mb(peak)}; sampled VmRSS peak per step: ${phasePeaks.join(', ') || 'none'}`,
      t.rssBytes === undefined ? undefined : { ok: peak <= t.rssBytes, text: `≤ ${(t.rssBytes / GiB).toFixed(0)} GiB` },
    );
    if (worstHealth.p99 > 0) figure('/health p99, worst of the above', ms(worstHealth.p99), { ok: worstHealth.p99 < t.healthP99Ms, text: `< ${t.healthP99Ms} ms` });
    console.log(`  server log: ${log}`);
    await admin((c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(dbName)} WITH (FORCE)`)).catch((e) => failed(`drop database ${dbName}`, e));
    live.database = undefined;
  }
}

/** What a signal or an early exit must not leave behind: the running server and its database. */
const live: { server?: ServerProcess; database?: string } = {};

process.once('exit', () => live.server?.kill());
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.log(`\nfleet: ${signal}: stopping the server and dropping its database`);
    live.server?.kill();
    const database = live.database;
    const drop = database ? admin((c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(database)} WITH (FORCE)`)) : Promise.resolve();
    void drop.catch(() => {}).finally(() => process.exit(130));
  });
}

export async function benchFleet(sizes: readonly Size[]): Promise<number> {
  mkdirSync(OUT, { recursive: true });
  const memTotal = Number(/^MemTotal:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 16 * 2 ** 20) * 1024;
  const rssLimit = Number(process.env.BENCH_FLEET_RSS_LIMIT_MB ?? Math.min(12_288, Math.floor((memTotal * 0.6) / 2 ** 20))) * 2 ** 20;
  console.log(`\n== fleet: the server as a child process (node --import tsx src/server.ts in ${SERVER_ROOT}) on a throwaway database at ${ADMIN_URL.replace(/\/\/[^@]*@/, '//')}; killed above ${(rssLimit / 2 ** 20).toFixed(0)} MiB RSS (BENCH_FLEET_RSS_LIMIT_MB)`);
  for (const size of sizes) await benchSize(size, rssLimit);
  if (failures > 0) console.log(`\nfleet: ${failures} step(s) failed`);
  return failures > 0 ? 1 : 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const text = process.env.BENCH_FLEET ?? '20x2000,100x2000,20x10000';
  if (text.trim() === '0') process.exit(0);
  process.exitCode = await benchFleet(parseSizes(text));
}
