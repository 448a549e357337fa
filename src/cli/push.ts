/**
 * `svcpath push`: one snapshot of a cluster to a svcpath server.
 *
 * The step-wise upload: POST /v1/clusters/{cluster}/uploads opens an upload, each node's dump is
 * PUT on its own (several at once, each streamed from disk through gzip, retried when the
 * server or the network fails), the manifests likewise, and POST …/commit makes the snapshot.
 * A push that fails or is interrupted DELETEs its upload. A server without step-wise uploads
 * (404) gets everything in one request, as before.
 */
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { createGzip, gzipSync } from 'node:zlib';
import { AppError } from '../app-error.ts';
import { createClient, HttpError, NetworkError } from './http.ts';
import type { Client, ClientOptions, Request } from './http.ts';
import type { Io } from './io.ts';
import { createProgress, formatBytes } from './progress.ts';
import type { Progress } from './progress.ts';

export interface PushNode {
  readonly name: string;
  readonly addresses: readonly string[];
  /** A path, or '-' for standard input. */
  readonly file: string;
  /** A file of the node's `ip route` output, sent with its rules. */
  readonly routes?: string;
  /** A dual-stack node's IPv6 dump (ip6tables-save output), sent after its rules. */
  readonly file6?: string;
}

export interface PushOptions {
  readonly server: string;
  readonly token?: string;
  readonly cluster: string;
  readonly nodes: readonly PushNode[];
  readonly manifests?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly format?: string;
  /** Nodes sent at once. */
  readonly concurrency: number;
  readonly json: boolean;
  /** Attempts per request, the first included. */
  readonly attempts?: number;
  readonly baseDelayMs?: number;
}

/** Exit status of a push stopped by Ctrl-C, as shells report a SIGINT. */
const EXIT_INTERRUPTED = 130;
const ATTEMPTS = 3;
const BASE_DELAY_MS = 250;
/** How long cleaning up after a failed push may take before the server's expiry is left to do it. */
const DISCARD_TIMEOUT_MS = 10_000;

const GZIP_TEXT = { 'content-type': 'text/plain', 'content-encoding': 'gzip' };
const JSON_BODY = { 'content-type': 'application/json' };

class Interrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

/** A node the server refused, or could not be sent. */
class NodeFailure extends Error {
  constructor(
    readonly node: string,
    override readonly cause: unknown,
  ) {
    super(`node ${node}`);
  }
}

/** A dump or manifests file, opened afresh for each attempt. */
interface Source {
  readonly size: number;
  open(): Readable;
  read(): Buffer;
}

/**
 * Every file is looked at before anything is sent, so a typo fails the push at once.
 * Standard input cannot be read twice (a retry reads the dump again), so it is held in memory, and
 * can stand for one file only.
 */
function openSources(files: readonly string[]): Map<string, Source> {
  const out = new Map<string, Source>();
  if (files.filter((f) => f === '-').length > 1) throw new AppError('VALIDATION', "standard input ('-') can stand for one file only");
  for (const file of files) {
    if (file === '-') {
      const data = readFileSync(0);
      out.set(file, { size: data.length, open: () => Readable.from([data]), read: () => data });
    } else {
      const stat = statSync(file);
      if (!stat.isFile()) throw new AppError('VALIDATION', `${file} is not a file`);
      out.set(file, { size: stat.size, open: () => createReadStream(file), read: () => readFileSync(file) });
    }
  }
  return out;
}

/** The file compressed as it is read: a 40 MB dump is never held whole, in either form. */
async function* gzipped(source: Source, progress: Progress): AsyncGenerator<Uint8Array> {
  const input = source.open();
  const gzip = createGzip();
  input.on('error', (e) => gzip.destroy(e));
  input.pipe(gzip);
  try {
    for await (const chunk of gzip as AsyncIterable<Buffer>) {
      progress.sent(chunk.length);
      yield chunk;
    }
  } finally {
    // A failed attempt stops reading here; the next one opens the file again.
    input.destroy();
    gzip.destroy();
  }
}

/** Runs `fn` on every item, at most `limit` at a time; the first failure aborts the rest. */
async function forEachConcurrently<T>(items: readonly T[], limit: number, controller: AbortController, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (!controller.signal.aborted && next < items.length) await fn(items[next++]);
  };
  const workers = Array.from({ length: Math.min(limit, items.length) }, () => worker().catch((e: unknown) => controller.abort(e)));
  await Promise.all(workers);
  if (controller.signal.aborted) throw controller.signal.reason;
}

/** One line (and the server's excerpt) for a failure, naming the node and where its dump is wrong. */
function describe(e: unknown, node?: string): string {
  const prefix = node ? `node ${node}: ` : '';
  if (e instanceof HttpError) {
    const p = e.problem;
    let detail = p?.detail ?? p?.title ?? e.text;
    // The one-request upload already names the node; the step-wise one need not.
    if (prefix && !detail.startsWith(prefix)) detail = prefix + detail;
    if (p?.line !== undefined && !detail.includes(`(line ${p.line}`)) {
      detail += ` (line ${p.line}${p.column !== undefined ? `, column ${p.column}` : ''})`;
    }
    return `${e.status} ${detail}${p?.excerpt ? `\n${p.excerpt}` : ''}`;
  }
  if (e instanceof NetworkError) return `${prefix}cannot reach the server: ${e.message} (${e.attempts} ${e.attempts === 1 ? 'attempt' : 'attempts'})`;
  return `${prefix}${e instanceof Error ? e.message : String(e)}`;
}

function report(e: unknown, io: Io): number {
  if (e instanceof Interrupted) {
    io.err('svcpath push: interrupted\n');
    return EXIT_INTERRUPTED;
  }
  if (e instanceof NodeFailure) {
    io.err(`svcpath push: ${describe(e.cause, e.node)}\n`);
    return 1;
  }
  if (e instanceof HttpError || e instanceof NetworkError) {
    io.err(`svcpath push: ${describe(e)}\n`);
    return 1;
  }
  throw e;
}

/** The answer of a commit, or of the one-request upload: the same shape. */
interface SnapshotAnswer {
  readonly created: boolean;
  readonly snapshot: {
    readonly id: string;
    readonly cluster: string;
    readonly version: number;
    readonly nodes: readonly { readonly name: string; readonly rules: number; readonly diagnostics?: readonly Diagnostic[] }[];
  };
}

interface Diagnostic {
  readonly severity?: string;
  readonly code?: string;
  readonly message?: string;
  readonly line?: number;
}

/** The notes the server made on a node's dump, shown rather than counted (the first ten). */
const NOTES_SHOWN = 10;

function printSnapshot(text: string, json: boolean, io: Io): void {
  if (json) {
    io.out(text.endsWith('\n') ? text : text + '\n');
    return;
  }
  const { created, snapshot: s } = JSON.parse(text) as SnapshotAnswer;
  io.out(`${created ? 'created' : 'already stored'}: ${s.cluster} version ${s.version} (${s.id})\n`);
  for (const n of s.nodes) {
    const notes = n.diagnostics ?? [];
    io.out(`  ${n.name}: ${n.rules} rules${notes.length ? `, ${notes.length} note${notes.length === 1 ? '' : 's'}:` : ''}\n`);
    for (const d of notes.slice(0, NOTES_SHOWN)) {
      io.out(`    ${d.severity ?? 'note'}${d.line ? ` (line ${d.line})` : ''}: ${d.message ?? d.code ?? ''}\n`);
    }
    if (notes.length > NOTES_SHOWN) io.out(`    … and ${notes.length - NOTES_SHOWN} more (--json lists them all)\n`);
  }
}

interface Upload {
  readonly id: string;
  readonly expiresAt?: string;
}

interface NodeAnswer {
  readonly node: { readonly name: string; readonly rules: number; readonly bytes?: number };
  /** False when the server already held a dump with this sha256 and did not parse it again. */
  readonly parsed?: boolean;
}

export async function push(o: PushOptions, io: Io): Promise<number> {
  for (const n of o.nodes) {
    if (n.addresses.length === 0) {
      io.err(`svcpath: warning: node ${n.name} has no address (--node-ip ${n.name}=IP): only 127.0.0.0/8 will count as its own, so traces will not recognise its NodePorts on its addresses\n`);
    }
  }
  const sources = openSources([
    ...o.nodes.map((n) => n.file), ...o.nodes.flatMap((n) => [...(n.routes !== undefined ? [n.routes] : []), ...(n.file6 !== undefined ? [n.file6] : [])]), ...(o.manifests !== undefined ? [o.manifests] : []),
  ]);
  const controller = new AbortController();
  const interrupt = () => controller.abort(new Interrupted());
  // Only the first Ctrl-C is ours (to delete the upload); a second one ends the process as usual.
  process.once('SIGINT', interrupt);
  let progress: Progress | undefined;
  const clientOptions: ClientOptions = {
    server: o.server,
    ...(o.token ? { token: o.token } : {}),
    signal: controller.signal,
    attempts: o.attempts ?? ATTEMPTS,
    baseDelayMs: o.baseDelayMs ?? BASE_DELAY_MS,
    onRetry: (request: Request, r) => {
      progress?.retried();
      const what = request.label ?? `${request.method} ${request.path}`;
      (progress?.note ?? ((l: string) => io.err(`${l}\n`)))(
        `svcpath push: ${what}: ${r.reason}; attempt ${r.attempt + 1} of ${r.attempts} in ${(r.delayMs / 1000).toFixed(1)} s`,
      );
    },
  };
  const client = createClient(clientOptions);
  try {
    let upload: Upload;
    try {
      const answer = await client.send({ label: 'open upload', method: 'POST', path: `/v1/clusters/${encodeURIComponent(o.cluster)}/uploads`, headers: JSON_BODY, body: () => '{}' });
      upload = JSON.parse(answer.text) as Upload;
    } catch (e) {
      if (!(e instanceof HttpError && e.status === 404)) throw e;
      io.err('svcpath push: this server has no step-wise upload (POST …/uploads answered 404); sending every node in one request\n');
      return await pushInOneRequest(o, sources, client, io);
    }
    progress = createProgress(io, o.nodes.length);
    return await pushStepwise(o, sources, client, controller, upload, progress, io);
  } catch (e) {
    return report(e, io);
  } finally {
    progress?.finish();
    process.off('SIGINT', interrupt);
  }
}

async function pushStepwise(
  o: PushOptions,
  sources: Map<string, Source>,
  client: Client,
  controller: AbortController,
  upload: Upload,
  progress: Progress,
  io: Io,
): Promise<number> {
  const base = `/v1/uploads/${encodeURIComponent(upload.id)}`;
  try {
    if (o.manifests !== undefined) {
      const source = sources.get(o.manifests)!;
      await client.send({ label: 'manifests', method: 'PUT', path: `${base}/manifests`, headers: GZIP_TEXT, body: () => gzipped(source, progress) });
    }
    await forEachConcurrently(o.nodes, o.concurrency, controller, async (node) => {
      const source = sources.get(node.file)!;
      const query = new URLSearchParams();
      if (node.addresses.length) query.set('addresses', node.addresses.join(','));
      if (o.format) query.set('format', o.format);
      const qs = query.toString() ? `?${query.toString()}` : '';
      try {
        const answer = await client.send({
          label: `node ${node.name}`,
          method: 'PUT',
          path: `${base}/nodes/${encodeURIComponent(node.name)}${qs}`,
          headers: GZIP_TEXT,
          body: () => gzipped(source, progress),
        });
        const r = JSON.parse(answer.text) as NodeAnswer;
        let v6 = '';
        if (node.file6 !== undefined) {
          const source6 = sources.get(node.file6)!;
          // The IPv6 dump is read with the format asked for, unless that is nftables (one ruleset holds both families).
          const format6 = o.format && o.format !== 'nftables' ? `?format=${encodeURIComponent(o.format)}` : '';
          const a6 = JSON.parse((await client.send({
            label: `IPv6 dump of node ${node.name}`, method: 'PUT', path: `${base}/nodes/${encodeURIComponent(node.name)}/rules6${format6}`,
            headers: GZIP_TEXT, body: () => gzipped(source6, progress),
          })).text) as { ipv6: { rules: number } };
          v6 = ` + ${a6.ipv6.rules} IPv6 rules, ${formatBytes(source6.size)}`;
        }
        if (node.routes !== undefined) {
          const routes = sources.get(node.routes)!;
          await client.send({
            label: `routes of node ${node.name}`, method: 'PUT', path: `${base}/nodes/${encodeURIComponent(node.name)}/routes`,
            headers: { 'content-type': 'text/plain' }, body: () => routes.read(),
          });
        }
        progress.nodeDone(`node ${node.name}: ${r.node.rules} rules, ${formatBytes(source.size)}${v6}${r.parsed === false ? ', known dump (not parsed again)' : ''}`);
      } catch (e) {
        // Stopped because another node failed or Ctrl-C: that is the failure to report, not this.
        throw controller.signal.aborted ? e : new NodeFailure(node.name, e);
      }
    });
    const answer = await client.send({ label: 'commit', method: 'POST', path: `${base}/commit`, headers: JSON_BODY, body: () => JSON.stringify({ labels: o.labels }) });
    progress.finish();
    printSnapshot(answer.text, o.json, io);
    return 0;
  } catch (e) {
    progress.finish();
    try {
      return report(e, io);
    } finally {
      await discard(o, upload, io);
    }
  }
}

/** Deletes an upload that will not be committed, on a signal of its own: the push's may be aborted. */
async function discard(o: PushOptions, upload: Upload, io: Io): Promise<void> {
  const client = createClient({
    server: o.server,
    ...(o.token ? { token: o.token } : {}),
    signal: AbortSignal.timeout(DISCARD_TIMEOUT_MS),
    attempts: 2,
    baseDelayMs: o.baseDelayMs ?? BASE_DELAY_MS,
  });
  try {
    await client.send({ method: 'DELETE', path: `/v1/uploads/${encodeURIComponent(upload.id)}` });
    io.err(`svcpath push: nothing stored (upload ${upload.id} deleted)\n`);
  } catch (e) {
    if (e instanceof HttpError && e.status === 404) return;
    const why = e instanceof HttpError || e instanceof NetworkError ? describe(e) : e instanceof Error ? e.message : String(e);
    io.err(`svcpath push: could not delete upload ${upload.id} (${why}); the server drops it ${upload.expiresAt ? `at ${upload.expiresAt}` : 'when it expires'}\n`);
  }
}

/** For a server without step-wise uploads: every dump in one gzip-compressed JSON body, held in memory. */
async function pushInOneRequest(o: PushOptions, sources: Map<string, Source>, client: Client, io: Io): Promise<number> {
  const body = gzipSync(
    JSON.stringify({
      labels: o.labels,
      nodes: o.nodes.map((n) => ({
        name: n.name,
        addresses: n.addresses,
        rules: sources.get(n.file)!.read().toString('utf8'),
        ...(n.file6 !== undefined ? { rules6: sources.get(n.file6)!.read().toString('utf8') } : {}),
        ...(n.routes !== undefined ? { routes: sources.get(n.routes)!.read().toString('utf8') } : {}),
        ...(o.format ? { format: o.format } : {}),
      })),
      ...(o.manifests !== undefined ? { manifests: sources.get(o.manifests)!.read().toString('utf8') } : {}),
    }),
  );
  const answer = await client.send({
    label: 'upload',
    method: 'POST',
    path: `/v1/clusters/${encodeURIComponent(o.cluster)}/snapshots`,
    headers: { ...JSON_BODY, 'content-encoding': 'gzip' },
    body: () => body,
  });
  printSnapshot(answer.text, o.json, io);
  return 0;
}
