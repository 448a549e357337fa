/**
 * The snapshot service that REST, GraphQL and the CLI call: a composition of the operations in
 * ./snapshots/ (upload, listing, raw dumps, trace, audit, diff, deletion), each a small factory
 * with explicit dependencies, over one store and caches bounded by bytes (./byte-cache.ts), whose
 * budgets are named in ../config.ts.
 */
import type { RouteTable } from '../engine/index.ts';
import type { CacheBudgets } from '../config.ts';
import { DEFAULT_CACHE_BUDGETS } from '../config.ts';
import type { SnapshotStore } from '../store/snapshot-store.ts';
import type { AnalysisPool } from './analysis-pool.ts';
import { ByteCache } from './byte-cache.ts';
import type { Meaning } from './kube-meaning.ts';
import { DEFAULT_LIMITS } from './limits.ts';
import type { Limits } from './limits.ts';
import type { ParsePool } from './parse-pool.ts';
import type { PreparedDiff } from './prepared-diff.ts';
import { createParsePool } from './parse-pool.ts';
import { createRulesetCache } from './ruleset-cache.ts';
import type { RulesetCache } from './ruleset-cache.ts';
import type { AuditReport, SnapshotService } from './snapshot-types.ts';
import type { TraceService } from './trace-service.ts';
import { createSnapshotAudit } from './snapshots/audit.ts';
import { createDeletion } from './snapshots/deletion.ts';
import { createSnapshotDiff } from './snapshots/diff.ts';
import { createListing } from './snapshots/listing.ts';
import { createSnapshotLookup } from './snapshots/lookup.ts';
import type { SnapshotMetadata } from './snapshots/lookup.ts';
import { createRawDumps } from './snapshots/raw-dumps.ts';
import { createSnapshotTrace } from './snapshots/trace.ts';
import { createUploadChecks } from './snapshots/upload-checks.ts';
import { createUploadOperations } from './snapshots/upload.ts';

export interface SnapshotServiceDeps {
  readonly store: SnapshotStore;
  readonly traceService: TraceService;
  /** What each cache may hold (default: DEFAULT_CACHE_BUDGETS); `rulesets` is unused when `rulesets` is given. */
  readonly caches?: Partial<CacheBudgets>;
  /** Parsed dumps, shared with the trace service of pasted rules (default: one of `caches.rulesets`). */
  readonly rulesets?: RulesetCache;
  /** Where uploaded dumps are parsed (default: in place, no worker threads). */
  readonly parsePool?: ParsePool;
  /** How long an upload in steps may stay uncommitted (default 24 h). */
  readonly uploadTtlMs?: number;
  /** Where audits and diffs run (analysis-pool.ts: worker threads, or in place). */
  readonly analysis: AnalysisPool;
  /** What one upload may hold: labels, manifests (default: DEFAULT_LIMITS). */
  readonly limits?: Limits;
  /** Told about background work that failed (the sweep). */
  readonly log?: (message: string) => void;
  /** How long a snapshot's metadata is reused by traces (default 60 s). */
  readonly metadataTtlMs?: number;
}

export function createSnapshotService(deps: SnapshotServiceDeps): SnapshotService & { ping(): Promise<void>; sweep(): Promise<void> } {
  const { store } = deps;
  const budgets = { ...DEFAULT_CACHE_BUDGETS, ...deps.caches };
  const parsePool = deps.parsePool ?? createParsePool({ threads: 0 });
  const rulesets = deps.rulesets ?? createRulesetCache({ budgetBytes: budgets.rulesets });
  const reports = new ByteCache<Promise<AuditReport>>({ budgetBytes: budgets.audits });
  // Snapshots never change: only a delete (here, or on another instance within the time to live) makes metadata stale.
  const metadata = new ByteCache<Promise<SnapshotMetadata>>({ budgetBytes: budgets.metadata, maxAgeMs: deps.metadataTtlMs ?? 60_000 });
  const lookup = createSnapshotLookup({ store, metadata });
  const deletion = createDeletion({ store, lookup, forget: (id) => reports.delete(id), log: deps.log });
  const checks = createUploadChecks({ store, parsePool, limits: deps.limits ?? DEFAULT_LIMITS });
  return {
    ...createUploadOperations({ store, checks, lookup, parsePool, uploadTtlMs: deps.uploadTtlMs ?? 24 * 3600_000, sweep: deletion.sweep }),
    ...createListing({ store, lookup }),
    ...createRawDumps({ store, lookup }),
    trace: createSnapshotTrace({
      store, lookup, traceService: deps.traceService, rulesets,
      manifests: new ByteCache<Promise<Meaning | null>>({ budgetBytes: budgets.manifests }),
      routes: new ByteCache<Promise<RouteTable | undefined>>({ budgetBytes: budgets.routes }),
    }),
    audit: createSnapshotAudit({ lookup, analysis: deps.analysis, reports }),
    ...createSnapshotDiff({ lookup, analysis: deps.analysis, diffs: new ByteCache<Promise<PreparedDiff>>({ budgetBytes: budgets.diffs }) }),
    delete: deletion.delete,
    sweep: deletion.sweep,
    ping: () => store.ping(),
  };
}
