/**
 * The audit's vocabulary: what a check reads (every node's completed ruleset plus the cluster
 * model the rules should have been programmed from) and what it reports.
 *
 * A Finding is the REST/GraphQL contract as it is: `{ check, severity, node, service, port,
 * message, rules: [{ table, chain, index, rule }] }`. Expected behaviour (a traffic policy doing
 * what it says, a Service without endpoints rejecting) is `info`; a disagreement between the rules
 * and the manifests is `error` or `warning`.
 */
import type { ChainNameIndex } from '../kube/chain-names.ts';
import type { ClusterModel } from '../kube/model.ts';
import type { AnyRuleset } from '../rules.ts';
import type { TraceMemo } from '../trace/memo.ts';

export type FindingSeverity = 'error' | 'warning' | 'info';

/** One rule that shows the problem, as the dump has it. */
export interface FindingRule {
  readonly table: string;
  readonly chain: string;
  /** 1-based position in the chain; 0 stands for the chain itself (its declaration or policy). */
  readonly index: number;
  /** The rule's text as the dump had it (`-A CHAIN …`), or `-N CHAIN` / `-P CHAIN POLICY` for index 0. */
  readonly rule: string;
}

export interface Finding {
  /** The check's name, e.g. `endpoint-drift`. */
  readonly check: string;
  readonly severity: FindingSeverity;
  /** The node whose rules show the problem; absent for cluster-wide findings. */
  readonly node?: string;
  /** "ns/name". */
  readonly service?: string;
  /** The Service port's name, or its number when the port is unnamed. */
  readonly port?: string;
  readonly message: string;
  readonly rules: readonly FindingRule[];
}

export interface AuditNode {
  readonly name: string;
  /** The node's own addresses (where its NodePorts answer). */
  readonly addresses: readonly string[];
  /**
   * The node's rules: iptables completed with `completeKubeProxy`, or an nftables ruleset (read by
   * the checks that trace; the audit gives the others iptables nodes only).
   */
  readonly ruleset: AnyRuleset;
  /** Traces shared with the other nodes of the audit (the checks trace through it when set). */
  readonly traces?: TraceMemo;
}

export interface AuditInput {
  readonly nodes: readonly AuditNode[];
  readonly model: ClusterModel;
  /** `ChainNameIndex.fromModel(model)`: kube-proxy's chain names for every Service port and endpoint. */
  readonly index: ChainNameIndex;
}

/** A pass over the input: pure, independent of the other checks. */
export type Check = (input: AuditInput) => Finding[];
