/**
 * The audit: every check, one pass per file, over every node's rules and the manifests.
 * Add a check by writing its file and listing it in CHECKS; nothing else registers checks.
 */
import { affinityStale } from './affinity-stale.ts';
import { blackHoles } from './black-holes.ts';
import { endpointDrift } from './endpoint-drift.ts';
import { NodeDisagreementCheck, nodeDisagreement } from './node-disagreement.ts';
import { forgetProbes } from './probe.ts';
import { serviceRules } from './service-rules.ts';
import { unevenSplit } from './uneven-split.ts';
import { detached } from '../text.ts';
import { TraceMemo } from '../trace/memo.ts';
import { isNftables } from '../rules.ts';
import type { AuditInput, AuditNode, Check, Finding, FindingSeverity } from './types.ts';

/** Every check, in the order they run. */
export const CHECKS: readonly Check[] = Object.freeze([
  serviceRules,
  endpointDrift,
  nodeDisagreement,
  blackHoles,
  unevenSplit,
  affinityStale,
]);

/** The name each check puts in its findings, in CHECKS order. */
export const CHECK_NAMES: readonly string[] = Object.freeze([
  'service-rules',
  'endpoint-drift',
  'node-disagreement',
  'black-holes',
  'uneven-split',
  'affinity-stale',
]);

/**
 * The checks that judge behaviour by tracing, which read nodes of either backend. The others read
 * kube-proxy's iptables chains (KUBE-SVC-…, KUBE-SEP-…) and see only iptables nodes; on nftables
 * nodes they are skipped, and the audit says so (skippedOnNftables).
 */
const TRACING: ReadonlySet<Check> = new Set([blackHoles, nodeDisagreement]);

const RANK: Readonly<Record<FindingSeverity, number>> = { error: 0, warning: 1, info: 2 };

/** The nodes a check reads. */
function nodesFor<N extends AuditNode>(check: Check, nodes: readonly N[]): readonly N[] {
  return TRACING.has(check) ? nodes : nodes.filter((n) => !isNftables(n.ruleset));
}

/** One cluster-wide note per check that did not read the nftables nodes, naming them. */
export function skippedOnNftables(nftNodes: readonly string[], checks: readonly Check[] = CHECKS): Finding[] {
  if (nftNodes.length === 0) return [];
  const shown = nftNodes.slice(0, 10).join(', ') + (nftNodes.length > 10 ? `, … (${nftNodes.length} in all)` : '');
  return checks.filter((c) => !TRACING.has(c)).map((c) => ({
    check: CHECK_NAMES[CHECKS.indexOf(c)] ?? 'audit',
    severity: 'info' as const,
    message: `not checked on the nftables node${nftNodes.length === 1 ? '' : 's'} ${shown}: this check reads kube-proxy's iptables-mode chains; `
      + 'black-holes and node-disagreement, which trace the packets, cover them',
    rules: [],
  }));
}

function compareText(a: string | undefined, b: string | undefined): number {
  // Cluster-wide findings (no node, no service) after the others.
  if (a === b) return 0;
  if (a === undefined) return 1;
  if (b === undefined) return -1;
  return a < b ? -1 : 1;
}

/** Errors first, then warnings, then info; within each by node, Service, port, check and message. */
export function compareFindings(a: Finding, b: Finding): number {
  return RANK[a.severity] - RANK[b.severity]
    || compareText(a.node, b.node)
    || compareText(a.service, b.service)
    || compareText(a.port, b.port)
    || compareText(a.check, b.check)
    || compareText(a.message, b.message);
}

/** Runs the checks (every check by default) and returns their findings, sorted. */
export function runAudit(input: AuditInput, checks: readonly Check[] = CHECKS): Finding[] {
  const traces = new TraceMemo();
  const nodes = input.nodes.map((n) => ({ ...n, traces }));
  const findings: Finding[] = [];
  for (const check of checks) findings.push(...check({ ...input, nodes: nodesFor(check, nodes) }));
  findings.push(...skippedOnNftables(input.nodes.filter((n) => isNftables(n.ruleset)).map((n) => n.name), checks));
  return findings.sort(compareFindings);
}

/**
 * The whole audit (every check) one node at a time, for clusters whose rules do not fit in memory
 * together: `add` each node, then `report` each node that `disagreeing` names (given its rules
 * again), then `finish`. The findings equal runAudit's on the same nodes in the same order: every
 * check but node-disagreement looks at one node at a time, and that one keeps only what it compares.
 */
export class NodeByNodeAudit {
  private readonly findings: Finding[] = [];
  private readonly disagreement: NodeDisagreementCheck;
  private readonly perNode = CHECKS.filter((c) => c !== nodeDisagreement);
  /** Nodes trace alike where their chains are alike: each distinct case is traced once. */
  readonly traces = new TraceMemo();
  private readonly nftNodes: string[] = [];

  constructor(private readonly context: Omit<AuditInput, 'nodes'>) {
    this.disagreement = new NodeDisagreementCheck(context);
  }

  add(added: AuditNode): void {
    const node = { ...added, traces: this.traces };
    const input = { ...this.context, nodes: [node] };
    if (isNftables(node.ruleset)) this.nftNodes.push(node.name);
    for (const check of this.perNode) {
      if (nodesFor(check, input.nodes).length === 0) continue;
      // Findings quote rules, whose texts are slices of the node's dump: copies let the dump go.
      this.findings.push(...detached(check(input)));
    }
    // black-holes and node-disagreement probe many of the same packets. Their probes are mostly
    // answers the trace memo holds anyway (probe's `placed` false); they go with the node.
    this.disagreement.observe(node);
    forgetProbes(node.ruleset);
  }

  /** The nodes to `report` once every node was added. */
  disagreeing(): string[] {
    return this.disagreement.disagreeing();
  }

  report(node: AuditNode): void {
    this.findings.push(...detached(this.disagreement.report({ ...node, traces: this.traces })));
  }

  finish(): Finding[] {
    this.findings.push(...skippedOnNftables(this.nftNodes));
    return this.findings.sort(compareFindings);
  }
}

export { affinityStale, blackHoles, endpointDrift, nodeDisagreement, serviceRules, unevenSplit };
export type { AuditInput, AuditNode, Check, Finding, FindingRule, FindingSeverity } from './types.ts';
