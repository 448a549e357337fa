/**
 * Node dumps are parsed for upload on worker threads, so that a 40 MB dump (a quarter of a second
 * of parsing) never holds up /health or a small trace. With `threads: 0` they are parsed in place.
 */
import { Piscina } from 'piscina';
import { AppError } from '../app-error.ts';
import type { FormatOption } from '../engine/index.ts';
import { checkDump, checkManifests } from './dump-summary.ts';
import type { DumpCheckResult, ManifestsCheckResult } from './dump-summary.ts';
import type { ManifestLimits } from './manifests.ts';
import { planChunks } from '../store/chunking.ts';
import type { ChunkPlan } from '../store/chunking.ts';

/** A chunk plan as it crosses between threads. */
export interface WirePlan {
  readonly sha256: string;
  readonly ends: number[];
  readonly shas: string[];
}

export interface ParsePool {
  check(bytes: Buffer, format: FormatOption, table?: string): Promise<DumpCheckResult>;
  /** Hashes the content and cuts it into chunks for storage (planChunks). */
  plan(bytes: Buffer): Promise<ChunkPlan>;
  /** Reads the manifests as a trace would, to refuse them before they are stored. */
  checkManifests(bytes: Buffer, limits: ManifestLimits): Promise<ManifestsCheckResult>;
  close(): Promise<void>;
}

/** From this size on, bytes go to the workers in shared memory (sharedView; request bodies are read into it: api/rest/raw-body.ts). */
export const SHARED_FROM_BYTES = 1024 * 1024;
const sharedViews = new WeakMap<Buffer, Uint8Array>();

/**
 * The bytes in memory the workers share. A Buffer posted to a worker is copied by the event loop
 * (some 25 ms for a 40 MB dump), and a dump is posted twice (its plan and its check): one copy
 * into shared memory instead, and each post passes a view of it.
 */
function sharedView(bytes: Buffer): Uint8Array {
  if (bytes.length < SHARED_FROM_BYTES || bytes.buffer instanceof SharedArrayBuffer) return bytes;
  let view = sharedViews.get(bytes);
  if (!view) {
    view = new Uint8Array(new SharedArrayBuffer(bytes.length));
    view.set(bytes);
    sharedViews.set(bytes, view);
  }
  return view;
}

export function createParsePool(options: { threads: number; heapMb?: number }): ParsePool {
  if (options.threads <= 0) {
    return {
      check: async (bytes, format, table) => checkDump({ text: bytes.toString('utf8'), format, table }, bytes.length),
      checkManifests: async (bytes, limits) => checkManifests(bytes.toString('utf8'), limits),
      plan: async (bytes) => planChunks(bytes),
      close: async () => {},
    };
  }
  const pool = new Piscina({
    filename: new URL('./parse-worker.mjs', import.meta.url).href,
    minThreads: 0,
    maxThreads: options.threads,
    idleTimeout: 30_000,
    // A dump too large to parse ends its worker, not the server.
    resourceLimits: { maxOldGenerationSizeMb: options.heapMb ?? 2048 },
  });
  const run = async <T>(task: unknown, name?: string): Promise<T> => {
    try {
      return (await pool.run(task, name ? { name } : {})) as T;
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY' || /Terminating worker thread/.test((e as Error).message)) {
        throw new AppError('PAYLOAD_TOO_LARGE', `the ${name ?? 'dump'} needs more memory to read than a parse worker has (${options.heapMb ?? 2048} MiB)`);
      }
      throw e;
    }
  };
  return {
    check: (bytes, format, table) => run({ bytes: sharedView(bytes), format, table }),
    checkManifests: (bytes, limits) => run({ bytes: sharedView(bytes), limits }, 'manifests'),
    plan: async (bytes) => {
      const p = await run<WirePlan>({ bytes: sharedView(bytes) }, 'plan');
      return { sha256: Buffer.from(p.sha256, 'hex'), ends: p.ends, shas: p.shas.map((h) => Buffer.from(h, 'hex')) };
    },
    close: () => pool.destroy(),
  };
}
