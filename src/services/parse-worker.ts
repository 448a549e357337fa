/** A parse worker (piscina): checks one node dump, or the manifests, off the event loop. See dump-summary.ts. */
import type { FormatOption } from '../engine/index.ts';
import { checkDump, checkManifests } from './dump-summary.ts';
import type { DumpCheckResult, ManifestsCheckResult } from './dump-summary.ts';
import type { ManifestLimits } from './manifests.ts';
import { planChunks } from '../store/chunking.ts';
import type { WirePlan } from './parse-pool.ts';
import { yieldToEventLoop } from './thread-priority.ts';

yieldToEventLoop();

const text = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');

export default function check(job: { bytes: Uint8Array; format: FormatOption; table?: string }): DumpCheckResult {
  return checkDump({ text: text(job.bytes), format: job.format, table: job.table }, job.bytes.byteLength);
}

export function manifests(job: { bytes: Uint8Array; limits: ManifestLimits }): ManifestsCheckResult {
  return checkManifests(text(job.bytes), job.limits);
}

/** The sha256 of the content and its chunks, as hex (they cross back to the main thread). */
export function plan(job: { bytes: Uint8Array }): WirePlan {
  const p = planChunks(job.bytes);
  return { sha256: p.sha256.toString('hex'), ends: [...p.ends], shas: p.shas.map((b) => b.toString('hex')) };
}
