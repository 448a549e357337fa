/**
 * The audit of a snapshot: where its rules and its manifests disagree. It runs on the analysis
 * pool; snapshots never change, so a report is computed once and kept.
 */
import { AppError } from '../../app-error.ts';
import type { AnalysisPool } from '../analysis-pool.ts';
import type { ByteCache } from '../byte-cache.ts';
import { computeOnce, estimateBytes } from '../byte-cache.ts';
import type { AuditReport } from '../snapshot-types.ts';
import type { SnapshotLookup } from './lookup.ts';

export function createSnapshotAudit(deps: {
  readonly lookup: SnapshotLookup;
  readonly analysis: AnalysisPool;
  /** Reports by snapshot id; requests for one being computed share the computation. */
  readonly reports: ByteCache<Promise<AuditReport>>;
}): (ref: string) => Promise<AuditReport> {
  const { lookup, analysis, reports } = deps;
  return async function audit(ref) {
    const id = await lookup.resolveId(ref);
    return computeOnce(reports, id, async () => {
      const { snapshot: s } = await lookup.withStoredNodes(id);
      const noManifests = () => new AppError('VALIDATION', `snapshot ${id} has no manifests: the audit compares rules with them`);
      if (!s.manifestsSha256) throw noManifests();
      const findings = await analysis.audit({ snapshot: s.id });
      if (!Array.isArray(findings)) throw noManifests();
      return { snapshot: s.id, findings };
    }, estimateBytes);
  };
}
