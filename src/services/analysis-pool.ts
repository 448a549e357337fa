/**
 * Where audits and diffs run. With threads, on worker threads whose heap is capped: a task that
 * needs more memory ends its worker (which piscina replaces), never the server, and is answered
 * 503. Tasks beyond the queue's length are answered 503 at once. Without threads, in place.
 */
import type { Pool } from 'pg';
import { Piscina } from 'piscina';
import { AppError } from '../app-error.ts';
import type { Finding } from '../engine/index.ts';
import { analysisCaches, auditStored, diffStored } from './analysis.ts';
import type { AuditTask, DiffTask } from './analysis.ts';
import { prepared } from './prepared-diff.ts';
import type { PreparedDiff } from './prepared-diff.ts';

export interface AnalysisPool {
  audit(task: AuditTask): Promise<Finding[] | { missing: 'manifests' }>;
  /** The diff with its lists as JSON texts, written where it was computed (prepared-diff.ts). */
  diff(task: DiffTask): Promise<PreparedDiff | { missing: 'node' }>;
  close(): Promise<void>;
}

export interface AnalysisPoolOptions {
  readonly connectionString: string;
  readonly threads: number;
  /** Heap of each worker, MiB. */
  readonly heapMb: number;
  /** Tasks that may wait for a worker; more are refused with 503. */
  readonly queue: number;
  /** Inflated chunks each worker keeps, bytes (config's analysisChunkCacheBytes). */
  readonly chunkCacheBytes?: number;
}

/** What SVCPATH_CHUNK_CACHE_MB is by default. */
const DEFAULT_CHUNK_CACHE_BYTES = 64 * 1024 * 1024;

export function inPlaceAnalysis(pool: Pick<Pool, 'query'>, chunkCacheBytes = DEFAULT_CHUNK_CACHE_BYTES): AnalysisPool {
  const caches = analysisCaches(chunkCacheBytes);
  return { audit: (t) => auditStored(pool, t, caches), diff: async (t) => prepared(await diffStored(pool, t, caches)), close: async () => {} };
}

const RETRY_AFTER_S = 30;

export function createAnalysisPool(options: AnalysisPoolOptions): AnalysisPool {
  const pool = new Piscina({
    filename: new URL('./analysis-worker.mjs', import.meta.url).href,
    minThreads: 0,
    maxThreads: options.threads,
    maxQueue: options.queue,
    idleTimeout: 60_000,
    workerData: { connectionString: options.connectionString, chunkCacheBytes: options.chunkCacheBytes ?? DEFAULT_CHUNK_CACHE_BYTES },
    resourceLimits: { maxOldGenerationSizeMb: options.heapMb },
  });
  const run = async <T>(name: string, task: unknown, what: string): Promise<T> => {
    try {
      return (await pool.run(task, { name })) as T;
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'ERR_WORKER_OUT_OF_MEMORY') {
        throw new AppError('UNAVAILABLE', `${what} needs more memory than its worker has (SVCPATH_ANALYSIS_HEAP_MB=${options.heapMb}); try one node, or raise the limit`, { retryAfter: RETRY_AFTER_S });
      }
      if (/queue is at limit/i.test((e as Error).message)) {
        throw new AppError('UNAVAILABLE', `too many audits and diffs are waiting (${options.queue}); try again shortly`, { retryAfter: RETRY_AFTER_S });
      }
      throw e;
    }
  };
  return {
    audit: (t) => run('audit', t, 'the audit'),
    diff: (t) => run('diff', t, 'the diff'),
    close: () => pool.destroy(),
  };
}
