/**
 * Stateless tracing: parse a dump of either backend (or reuse a kept parse of the same text),
 * complete a kube-proxy iptables fragment, and trace one packet.
 */
import { createHash } from 'node:crypto';
import type { AnyRuleset, FormatOption, PacketInput, PacketSpec, RouteTable, TraceResult } from '../engine/index.ts';
import { parseRoutes, readPacket, traceRules } from '../engine/index.ts';
import { toAppError } from '../app-error.ts';
import { annotate, readMeaning } from './kube-meaning.ts';
import type { ManifestLimits } from './manifests.ts';
import { createRulesetCache } from './ruleset-cache.ts';
import type { RulesetCache } from './ruleset-cache.ts';
import { DEFAULT_CACHE_BUDGETS } from '../config.ts';

export interface TraceInput {
  readonly rules: string;
  readonly format?: FormatOption;
  readonly table?: string;
  readonly node: { readonly name?: string; readonly addresses: readonly string[] };
  /** Protocol in any case; the port apart or in the destination (`ip:port`, `[ipv6]:port`); source optional. */
  readonly packet: PacketInput;
  /** `kubectl get … -o json|yaml` output: names pods (and Services without comments) in the answer. */
  readonly manifests?: string;
  /** `ip route` / `ip -6 route` output: names the interface a packet leaves through. */
  readonly routes?: string;
}

export interface TraceService {
  /** Parses (and, for iptables, completes) a dump, kept in the ruleset cache by the text's hash. */
  ruleset(rules: string, format?: FormatOption, table?: string): AnyRuleset;
  trace(input: TraceInput): TraceResult & { readonly node: { readonly name?: string; readonly addresses: readonly string[] } };
  traceRuleset(rs: AnyRuleset, node: TraceInput['node'], packet: PacketSpec, routes?: RouteTable): TraceResult;
}

export function createTraceService(options: {
  /** Where parsed dumps are kept (shared with the snapshot service's traces); by default its own, of the default budget. */
  rulesets?: RulesetCache;
  limits?: ManifestLimits;
} = {}): TraceService {
  const rulesets = options.rulesets ?? createRulesetCache({ budgetBytes: DEFAULT_CACHE_BUDGETS.rulesets });
  const rethrow = (e: unknown): never => {
    throw toAppError(e) ?? e;
  };
  const service: TraceService = {
    ruleset(rules, format = 'auto', table) {
      const sha256 = createHash('sha256').update(rules).digest('hex');
      try {
        return rulesets.parse({ sha256, format, ...(table !== undefined ? { table } : {}) }, rules);
      } catch (e) {
        return rethrow(e);
      }
    },
    traceRuleset(rs, node, packet, routes) {
      try {
        return traceRules(rs, { node, packet, ...(routes ? { routes } : {}) });
      } catch (e) {
        return rethrow(e);
      }
    },
    trace(input) {
      const meaning = input.manifests !== undefined ? readMeaning(input.manifests, options.limits) : null;
      const rs = service.ruleset(input.rules, input.format, input.table);
      let routes: RouteTable | undefined;
      let packet: PacketSpec;
      try {
        routes = input.routes !== undefined ? parseRoutes(input.routes) : undefined;
        packet = readPacket(input.packet);
      } catch (e) {
        return rethrow(e);
      }
      const result = annotate(service.traceRuleset(rs, input.node, packet, routes), meaning, input.node.addresses);
      // The trace compiled rules: count them, and keep the cache within its budget.
      rulesets.settle();
      return { node: input.node, ...result };
    },
  };
  return service;
}
