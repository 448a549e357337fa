/**
 * The diff of two snapshots (of any clusters): where traffic goes differently, which rules and
 * manifests changed. Computed once per pair (and node) on the analysis pool and kept, its lists as
 * JSON texts (prepared-diff.ts); pages are the same slice of each list, as objects (GraphQL) or
 * written as JSON by joining the texts (REST).
 */
import type { FrontendDiff, ManifestChange, RuleChange } from '../../engine/index.ts';
import { EngineError } from '../../engine/index.ts';
import { AppError } from '../../app-error.ts';
import type { AnalysisPool } from '../analysis-pool.ts';
import type { ByteCache } from '../byte-cache.ts';
import { computeOnce } from '../byte-cache.ts';
import { decodeCursor, encodeCursor } from '../cursor.ts';
import type { PreparedDiff } from '../prepared-diff.ts';
import { listSlice, parsedSlice } from '../prepared-diff.ts';
import type { DiffPage, DiffQuery } from '../snapshot-types.ts';
import type { SnapshotLookup } from './lookup.ts';

export const MAX_DIFF_PAGE = 1000;

type Lists = 'frontends' | 'rules' | 'manifests';

export function createSnapshotDiff(deps: {
  readonly lookup: SnapshotLookup;
  readonly analysis: AnalysisPool;
  /** Diffs by pair and node; requests for one being computed share the computation. */
  readonly diffs: ByteCache<Promise<PreparedDiff>>;
}): { diff(query: DiffQuery): Promise<DiffPage>; diffJson(query: DiffQuery): Promise<Buffer> } {
  const { lookup, analysis, diffs } = deps;

  async function compute(q: DiffQuery): Promise<PreparedDiff> {
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

  /** The page asked for: everything but the lists, the lists' bounds, and the kept diff. */
  async function page(asked: DiffQuery): Promise<{ head: Omit<DiffPage, Lists>; from: number; to: number; kept: PreparedDiff }> {
    if (!Number.isInteger(asked.limit) || asked.limit < 1 || asked.limit > MAX_DIFF_PAGE) throw new AppError('VALIDATION', `limit must be from 1 to ${MAX_DIFF_PAGE}`);
    // Read before the work starts: a bad cursor is the caller's mistake, found at once.
    const offset = asked.cursor ? decodeCursor('diff', asked.cursor) : 0;
    const q = { ...asked, from: await lookup.resolveId(asked.from), to: await lookup.resolveId(asked.to) };
    const kept = await computeOnce(diffs, `${q.from}|${q.to}|${q.node ?? ''}`, () => compute(q), (d) => d.bytes);
    const [from, to] = await Promise.all([lookup.withStoredNodes(q.from), lookup.withStoredNodes(q.to)]);
    const end = offset + q.limit;
    const more = end < kept.frontends.ends.length || end < kept.rules.ends.length || end < kept.manifests.ends.length;
    const { summary, unpairedNodes, backends, knownDifferences } = kept.head;
    return {
      head: {
        from: q.from,
        to: q.to,
        summary,
        clusters: { from: from.snapshot.cluster, to: to.snapshot.cluster, same: from.snapshot.cluster === to.snapshot.cluster },
        unpairedNodes,
        backends,
        knownDifferences,
        totals: { frontends: kept.frontends.ends.length, rules: kept.rules.ends.length, manifests: kept.manifests.ends.length },
        nextCursor: more ? encodeCursor('diff', end) : null,
      },
      from: offset,
      to: end,
      kept,
    };
  }

  return {
    async diff(asked) {
      const { head, from, to, kept } = await page(asked);
      return {
        ...head,
        frontends: parsedSlice<FrontendDiff>(kept.frontends, from, to),
        rules: parsedSlice<RuleChange>(kept.rules, from, to),
        manifests: parsedSlice<ManifestChange>(kept.manifests, from, to),
      };
    },
    async diffJson(asked) {
      const { head, from, to, kept } = await page(asked);
      // The head's text without its closing brace, then each list's slice between brackets.
      const parts: Buffer[] = [Buffer.from(JSON.stringify(head).slice(0, -1))];
      for (const k of ['frontends', 'rules', 'manifests'] as const) {
        parts.push(Buffer.from(`,"${k}":[`), listSlice(kept[k], from, to), Buffer.from(']'));
      }
      parts.push(Buffer.from('}'));
      return Buffer.concat(parts);
    },
  };
}
