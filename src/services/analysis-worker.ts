/**
 * The analysis worker (piscina): audits and diffs (analysis.ts) off the main thread, within the
 * heap limit the pool sets. It reads the dumps from the database over its own connections, and
 * keeps the dumps it parsed, by content, in a quarter of its heap: an audit of a version, then
 * the diff to the next one, parse the first version once.
 */
import { workerData } from 'node:worker_threads';
import pg from 'pg';
import { auditStored, diffStored } from './analysis.ts';
import { createRulesetCache } from './ruleset-cache.ts';
import type { AuditTask, DiffTask } from './analysis.ts';

const data = workerData as { connectionString: string; heapMb: number };
const pool = new pg.Pool({ connectionString: data.connectionString, max: 2 });
const rulesets = createRulesetCache({ budgetBytes: Math.floor((data.heapMb * 1024 * 1024) / 4) });
// A connection the server drops (a restart) fails the task that uses it, never the worker.
pool.on('error', () => {});
pool.on('connect', (client) => client.on('error', () => {}));

export const audit = (task: AuditTask) => auditStored(pool, task, rulesets);
export const diff = (task: DiffTask) => diffStored(pool, task, rulesets);
