/**
 * The analysis worker (piscina): audits and diffs (analysis.ts) off the main thread, within the
 * heap limit the pool sets. It reads the dumps from the database over its own connections.
 */
import { workerData } from 'node:worker_threads';
import pg from 'pg';
import { forgetSharedParses } from '../engine/index.ts';
import { analysisCaches, auditStored, diffStored } from './analysis.ts';
import type { AuditTask, DiffTask } from './analysis.ts';
import { prepared } from './prepared-diff.ts';
import { yieldToEventLoop } from './thread-priority.ts';

yieldToEventLoop();

const data = workerData as { connectionString: string; chunkCacheBytes: number };
const pool = new pg.Pool({ connectionString: data.connectionString, max: 2 });
/** Shared by this worker's tasks: successive versions of a cluster share most chunks and often their manifests. */
const caches = analysisCaches(data.chunkCacheBytes);
// A connection the server drops (a restart) fails the task that uses it, never the worker.
pool.on('error', () => {});
pool.on('connect', (client) => client.on('error', () => {}));

/**
 * The parses an audit or a diff shared between its nodes go when it ends: the next task is often
 * another cluster, or the next version, whose own nodes share them again; carried over, those of
 * 20 nodes of 10,000 Services left the next diff without room in the worker's heap.
 */
async function alone<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } finally {
    forgetSharedParses();
  }
}

export const audit = (task: AuditTask) => alone(() => auditStored(pool, task, caches));
export const diff = (task: DiffTask) => alone(async () => prepared(await diffStored(pool, task, caches)));
