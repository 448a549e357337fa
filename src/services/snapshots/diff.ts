/**
 * The diff of two snapshots (of any clusters): where traffic goes differently, which rules and
 * manifests changed. Computed once per pair (and node) on the analysis pool and kept; pages are
 * slices of the kept answer, the same slice of each list.
 */
import type { DiffResult } from '../../engine/index.ts';
import { EngineError } from '../../engine/index.ts';
import { AppError } from '../../app-error.ts';
import type { AnalysisPool } from '../analysis-pool.ts';
import type { ByteCache } from '../byte-cache.ts';
import { computeOnce, estimateBytes } from '../byte-cache.ts';
import { decodeCursor, encodeCursor } from '../cursor.ts';
import type { DiffPage, DiffQuery } from '../snapshot-types.ts';
import type { SnapshotLookup } from './lookup.ts';

export const MAX_DIFF_PAGE = 1000;

export function createSnapshotDiff(deps: {
  readonly lookup: SnapshotLookup;
  readonly analysis: AnalysisPool;
  /** Diffs by pair and node; requests for one being computed share the computation. */
  readonly diffs: ByteCache<Promise<DiffResult>>;
}): (query: DiffQuery) => Promise<DiffPage> {
  const { lookup, analysis, diffs } = deps;

  async function compute(q: DiffQuery): Promise<DiffResult> {
    // Both exist (a missing one answers 404 before the work starts).
    await Promise.all([lookup.withStoredNodes(q.from), lookup.withStoredNodes(q.to)]);
    let result;
    try {
      result = await analysis.diff({ from: q.from, to: q.to, ...(q.node !== undefined ? { node: q.node } : {}) });
    } catch (e) {
      if (e instanceof EngineError) throw new AppError('NOT_FOUND', e.message);
      throw e;
    }
    if ('missing' in result) throw new AppError('NOT_FOUND', `node ${q.node} is not in both snapshots`);
    return result;
  }

  return async function diff(asked) {
    if (!Number.isInteger(asked.limit) || asked.limit < 1 || asked.limit > MAX_DIFF_PAGE) throw new AppError('VALIDATION', `limit must be from 1 to ${MAX_DIFF_PAGE}`);
    // Read before the work starts: a bad cursor is the caller's mistake, found at once.
    const offset = asked.cursor ? decodeCursor('diff', asked.cursor) : 0;
    const q = { ...asked, from: await lookup.resolveId(asked.from), to: await lookup.resolveId(asked.to) };
    const result = await computeOnce(diffs, `${q.from}|${q.to}|${q.node ?? ''}`, () => compute(q), estimateBytes);
    const [from, to] = await Promise.all([lookup.withStoredNodes(q.from), lookup.withStoredNodes(q.to)]);
    const end = offset + q.limit;
    const more = end < result.frontends.length || end < result.rules.length || end < result.manifests.length;
    return {
      from: q.from,
      to: q.to,
      summary: result.summary,
      clusters: { from: from.snapshot.cluster, to: to.snapshot.cluster, same: from.snapshot.cluster === to.snapshot.cluster },
      unpairedNodes: result.unpairedNodes,
      backends: result.backends,
      knownDifferences: result.knownDifferences,
      frontends: result.frontends.slice(offset, end),
      rules: result.rules.slice(offset, end),
      manifests: result.manifests.slice(offset, end),
      totals: { frontends: result.frontends.length, rules: result.rules.length, manifests: result.manifests.length },
      nextCursor: more ? encodeCursor('diff', end) : null,
    };
  };
}
