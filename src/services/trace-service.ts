/**
 * Stateless tracing: parse a dump of either backend (or reuse a recent parse of the same text),
 * complete a kube-proxy iptables fragment, and trace one packet.
 */
import { createHash } from 'node:crypto';
import type { AnyRuleset, FormatOption, PacketInput, PacketSpec, RouteTable, TraceResult } from '../engine/index.ts';
import { parseRoutes, readPacket, readRules, traceRules } from '../engine/index.ts';
import { toAppError } from '../app-error.ts';
import { annotate, readMeaning } from './kube-meaning.ts';
import type { ManifestLimits } from './manifests.ts';

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
  /** Parses (and, for iptables, completes) a dump, with a small cache keyed by the text's hash. */
  ruleset(rules: string, format?: FormatOption, table?: string): AnyRuleset;
  trace(input: TraceInput): TraceResult & { readonly node: { readonly name?: string; readonly addresses: readonly string[] } };
  traceRuleset(rs: AnyRuleset, node: TraceInput['node'], packet: PacketSpec, routes?: RouteTable): TraceResult;
}

export function createTraceService(options: { cacheSize?: number; limits?: ManifestLimits } = {}): TraceService {
  const cacheSize = options.cacheSize ?? 8;
  const cache = new Map<string, AnyRuleset>();
  const rethrow = (e: unknown): never => {
    throw toAppError(e) ?? e;
  };
  const service: TraceService = {
    ruleset(rules, format = 'auto', table) {
      const key = `${format}|${table ?? ''}|${createHash('sha256').update(rules).digest('hex')}`;
      const hit = cache.get(key);
      if (hit) {
        cache.delete(key);
        cache.set(key, hit);
        return hit;
      }
      let rs: AnyRuleset;
      try {
        rs = readRules(rules, { format, table });
      } catch (e) {
        return rethrow(e);
      }
      cache.set(key, rs);
      if (cache.size > cacheSize) cache.delete(cache.keys().next().value!);
      return rs;
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
      return { node: input.node, ...result };
    },
  };
  return service;
}
