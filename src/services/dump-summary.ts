/**
 * Parsing a node's dump (or the manifests) for an upload: the checks every dump passes before it is
 * stored, and the summary kept with it. Runs on the parse workers (parse-worker.ts) or, without
 * them, in place.
 */
import type { AnyRuleset, FormatOption } from '../engine/index.ts';
import { EngineError, formatOf, isNftables, parseRules, tableCounts } from '../engine/index.ts';
import type { NodeSummary } from './snapshot-types.ts';
import { AppError } from '../app-error.ts';
import type { AppErrorCode } from '../app-error.ts';
import { readMeaning } from './kube-meaning.ts';
import type { ManifestLimits } from './manifests.ts';

export interface SummaryJson {
  bytes: number;
  rules: number;
  tables: NodeSummary['tables'];
  diagnostics: NodeSummary['diagnostics'];
  table?: string;
  /**
   * The format the upload asked for. 'auto' reads a dump as pasted (a table inferred, repairs, an
   * `iptables -L` listing), which the detected format alone would refuse: read it again the same way.
   */
  requested?: string;
  /**
   * The address family of an iptables dump (fixed by its first address, or an ip6tables-save
   * header); null for an nftables ruleset, which holds both. Absent in summaries kept before it was.
   */
  family?: 'ipv4' | 'ipv6' | null;
}

/** The format to read a stored dump again with: what its upload asked for when that was 'auto'. */
export function rereadFormat(format: string, summary: unknown): string {
  return (summary as SummaryJson | null)?.requested === 'auto' ? 'auto' : format;
}

export interface DumpCheck {
  readonly text: string;
  readonly format: FormatOption;
  readonly table?: string;
}

/** What a worker answers: the detected format and the summary, or the engine's error as data. */
export type DumpCheckResult =
  | { ok: true; format: string; summary: SummaryJson }
  | { ok: false; code: EngineError['code']; message: string; location?: EngineError['location'] };

export function summarise(rs: AnyRuleset, bytes: number, table?: string): SummaryJson {
  const tables = tableCounts(rs);
  return {
    bytes, rules: tables.reduce((n, t) => n + t.rules, 0), tables, diagnostics: rs.diagnostics.slice(0, 200),
    family: isNftables(rs) ? null : rs.family,
    ...(table ? { table } : {}),
  };
}

export function checkDump(job: DumpCheck, bytes: number): DumpCheckResult {
  try {
    const rs = parseRules(job.text, { format: job.format, table: job.table });
    return { ok: true, format: formatOf(rs), summary: { ...summarise(rs, bytes, job.table), requested: job.format } };
  } catch (e) {
    if (!(e instanceof EngineError)) throw e;
    // The message without the location EngineError appends, so that it can be made again.
    const message = e.location ? e.message.slice(0, e.message.lastIndexOf(' (line ')) : e.message;
    return { ok: false, code: e.code, message, ...(e.location ? { location: e.location } : {}) };
  }
}

/** The engine error a failed check stands for. */
export function checkError(r: Extract<DumpCheckResult, { ok: false }>): EngineError {
  return new EngineError(r.code, r.message, r.location);
}

/** What checking manifests gives: nothing, or the error as data (to be made again where it is answered). */
export type ManifestsCheckResult =
  | { ok: true }
  | { ok: false; code: AppErrorCode; message: string; details: Record<string, unknown> };

export function checkManifests(text: string, limits: ManifestLimits): ManifestsCheckResult {
  try {
    readMeaning(text, limits);
    return { ok: true };
  } catch (e) {
    if (!(e instanceof AppError)) throw e;
    return { ok: false, code: e.code, message: e.message, details: { ...e.details } };
  }
}
