/** The engine's public surface: parsing, printing and tracing, pure and synchronous. */
export { EngineError } from './errors.ts';
export { parseDump, parseIptablesSave, parseIptablesS, detectFormat, inferTable } from './netfilter/parser.ts';
export { printRuleset, printRule } from './netfilter/printer.ts';
export { parseNftables, printNftRuleset } from './nftables/index.ts';
export { completeKubeProxy } from './trace/complete.ts';
export { groupByCase, trace } from './trace/tracer.ts';
export { parseRoutes, RouteTable } from './net/routes.ts';
export { familyOf, hostPort } from './net/address.ts';
export { compiledRuleCount, sharedRuleCount } from './trace/compile.ts';
export { sharedBodyCount } from './netfilter/rule.ts';
export { forgetSharedParses } from './shared-parses.ts';
export { quantizeProbability } from './trace/probability.ts';
export { chainText, ruleCount, ruleLines, ruleTexts } from './netfilter/rule.ts';
export {
  ChainNameIndex, ClusterModel, describeTrace, kubeProxyChainName, readClusterModel, resolveServiceFrontends, serviceKey,
} from './kube/index.ts';
export { CHECKS, NodeByNodeAudit, runAudit } from './checks/index.ts';
export { formatOf, isNftables, parseRules, readRules, requireIptables, rulesCompiled, tableCounts, traceRules } from './rules.ts';
export { traceNftables } from './nftables/tracer.ts';
export { diffNodeByNode, diffSnapshots, KNOWN_DIFFERENCES, NodeByNodeDiff } from './diff/index.ts';

export type { EngineErrorCode, SourceLocation } from './errors.ts';
export type { Ruleset, Rule, Chain, Table, Diagnostic, DumpFormat, Family } from './netfilter/ast.ts';
export type { ParseOptions, FormatOption, DetectedFormat } from './netfilter/parser.ts';
export type {
  NftRuleset, NftTable, NftChain, NftRule, NftSet, NftSetElement, NftStatement, NftExpr, NftFamily, NftSourceForm, NftBaseChainSpec,
} from './nftables/ast.ts';
export type { PacketSpec, Protocol, Entry } from './trace/packet.ts';
export { defaultSource, PROTOCOLS, readDestination, readPacket, readProtocol, splitDestination } from './trace/packet-input.ts';
export type { PacketInput } from './trace/packet-input.ts';
export type { TraceResult, TraceOutcome, TraceStep, TraceWarning, NodeSpec, TraceRequest, Verdict, Delivery } from './trace/tracer.ts';
export type { DescribedOutcome, DescribedTrace, ServiceFrontend } from './kube/index.ts';
export type { AuditInput, Finding } from './checks/types.ts';
export type { AnyRuleset } from './rules.ts';
export type { DiffBackends, DiffResult, DiffSide, DiffSummary, FrontendDiff, KnownDifference, ManifestChange, RuleChange, SideBackend } from './diff/index.ts';
