/** Descriptions for a trace of either backend: the nftables tracer's answers name their chains differently. */
import type { TraceResult } from '../trace/tracer.ts';
import type { ChainNameIndex } from './chain-names.ts';
import type { DescribedTrace, DescribeOptions } from './describe.ts';
import { describeTrace as describeIptablesTrace } from './describe.ts';
import type { ClusterModel } from './model.ts';
import { describeNftTrace } from './nft-describe.ts';

/**
 * Names the Service, endpoint, pod and masquerade reason of every outcome of a trace, from the
 * rules on its path and the manifests (`model`, `index`: optional; iptables chain hashes need `index`).
 */
export function describeTrace(result: TraceResult, model: ClusterModel | null, index: ChainNameIndex | null, options: DescribeOptions = {}): DescribedTrace {
  return result.backend === 'nftables' ? describeNftTrace(result, model, options) : describeIptablesTrace(result, model, index, options);
}
