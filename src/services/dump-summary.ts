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
   * Read as 'auto', the dump needed nothing that only 'auto' does (no repair, no inferred table,
   * no listing): its detected format reads it the same, without the repair pass over its text.
   */
  exact?: boolean;
  /**
   * The address family of an iptables dump (fixed by its first address, or an ip6tables-save
   * header); null for an nftables ruleset, which holds both. Absent in summaries kept before it was.
   */
  family?: 'ipv4' | 'ipv6' | null;
}

export { rereadFormat } from '../store/snapshot-reads.ts';

/** Diagnostics only the lenient 'auto' reading gives (what it changed or assumed). */
const AUTO_ONLY: ReadonlySet<string> = new Set(['INPUT_REPAIRED', 'TABLE_INFERRED']);

/** An 'auto' read that its detected format reads the same (see SummaryJson.exact). */
function readsExactly(rs: AnyRuleset, requested: FormatOption): boolean {
  return requested === 'auto' && !isNftables(rs) && rs.format === 'iptables-save' && !rs.diagnostics.some((d) => AUTO_ONLY.has(d.code));
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
    const exact = readsExactly(rs, job.format);
    return { ok: true, format: formatOf(rs), summary: { ...summarise(rs, bytes, job.table), requested: job.format, ...(exact ? { exact } : {}) } };
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
