/** A parse worker (piscina): checks one node dump off the event loop. See dump-summary.ts. */
import type { FormatOption } from '../engine/index.ts';
import { checkDump } from './dump-summary.ts';
import type { DumpCheckResult } from './dump-summary.ts';

export default function check(job: { bytes: Uint8Array; format: FormatOption; table?: string }): DumpCheckResult {
  const text = Buffer.from(job.bytes.buffer, job.bytes.byteOffset, job.bytes.byteLength).toString('utf8');
  return checkDump({ text, format: job.format, table: job.table }, job.bytes.byteLength);
}
