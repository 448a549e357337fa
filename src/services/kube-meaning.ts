/**
 * Kubernetes meaning for trace answers: manifests text → cluster model and chain-name index, and
 * outcomes annotated with the Service, frontend, endpoint pod and masquerade reason.
 */
import type { ClusterModel as Model, TraceResult, TraceOutcome } from '../engine/index.ts';
import { ChainNameIndex, EngineError, describeTrace, readClusterModel } from '../engine/index.ts';
import { AppError } from '../app-error.ts';
import { DEFAULT_LIMITS } from './limits.ts';
import { readManifestDocuments } from './manifests.ts';
import type { ManifestLimits } from './manifests.ts';

export interface Meaning {
  readonly model: Model;
  readonly index: ChainNameIndex;
  readonly notes: readonly string[];
}

/** What manifests cost once read into a cluster model and its index, per byte of their text (measured on generated clusters of 2,000 and 10,000 Services: 0.9 to 1.1). */
export const BYTES_PER_MANIFEST_BYTE = 1.2;

/**
 * Parses manifests; errors are located (syntax) or name the document and field (content).
 * Manifests larger, deeper or holding more values than `limits` allow are refused before parsing.
 */
export function readMeaning(manifests: string, limits: ManifestLimits = DEFAULT_LIMITS): Meaning {
  const documents = readManifestDocuments(manifests, limits);
  try {
    const { model, notes } = readClusterModel(documents);
    return { model, index: ChainNameIndex.fromModel(model), notes };
  } catch (e) {
    if (e instanceof EngineError) throw new AppError('MANIFEST_SYNTAX', `manifests: ${e.message}`, { part: 'manifests' });
    throw e;
  }
}

export type AnnotatedOutcome = TraceOutcome & {
  readonly service?: unknown;
  readonly endpoint?: unknown;
  readonly masqueradeReason?: string;
};

/** The trace with each outcome named in Kubernetes terms (from rule comments and chain hashes even without manifests). */
export function annotate<T extends TraceResult>(result: T, meaning: Meaning | null, nodeAddresses: readonly string[]): T & { outcomes: AnnotatedOutcome[] } {
  const described = describeTrace(result, meaning?.model ?? null, meaning?.index ?? null, { nodeAddresses });
  const outcomes = result.outcomes.map((o, i) => {
    const d = described.outcomes[i];
    return {
      ...o,
      ...(d.service ? { service: d.service } : {}),
      ...(d.endpoint ? { endpoint: d.endpoint } : {}),
      ...(d.masqueradeReason ? { masqueradeReason: d.masqueradeReason } : {}),
      notes: [...o.notes, ...d.notes],
    };
  });
  return { ...result, outcomes };
}
