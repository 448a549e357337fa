/**
 * A node's rules of either backend: iptables dumps (iptables-save, iptables -S) and nftables
 * rulesets (`nft list ruleset`, `nft -j`, `nft -f` commands), read, traced and counted through one
 * door, so that the API, the CLI and stored snapshots answer both alike.
 */
import type { Ruleset } from './netfilter/ast.ts';
import type { ParseOptions } from './netfilter/parser.ts';
import { detectFormat, parseDump } from './netfilter/parser.ts';
import { ruleCount } from './netfilter/rule.ts';
import type { NftRuleset } from './nftables/ast.ts';
import { parseNftables } from './nftables/index.ts';
import { nftCompiledRuleCount, traceNftables } from './nftables/tracer.ts';
import { EngineError } from './errors.ts';
import { completeKubeProxy } from './trace/complete.ts';
import { compiledRuleCount } from './trace/compile.ts';
import type { TraceRequest, TraceResult } from './trace/tracer.ts';
import { trace } from './trace/tracer.ts';

export type AnyRuleset = Ruleset | NftRuleset;

/** Whether the rules are an nftables ruleset (else an iptables dump). */
export function isNftables(rs: AnyRuleset): rs is NftRuleset {
  return 'form' in rs;
}

/** Parses a dump in the given format, or the detected one for 'auto', as it stands. */
export function parseRules(text: string, options: ParseOptions = {}): AnyRuleset {
  const format: string = options.format ?? 'auto';
  if (format === 'nftables' || (format === 'auto' && detectFormat(text).format === 'nftables')) return parseNftables(text);
  return parseDump(text, options);
}

/**
 * The rules to trace: an nftables ruleset as it is, an iptables dump completed as kube-proxy
 * writes it (completeKubeProxy: fragments get the hook rules and chains they lack).
 */
export function readRules(text: string, options: ParseOptions = {}): AnyRuleset {
  const rs = parseRules(text, options);
  return isNftables(rs) ? rs : completeKubeProxy(rs);
}

/** Traces the first packet of a connection through either backend's rules. */
export function traceRules(rs: AnyRuleset, req: TraceRequest): TraceResult {
  return isNftables(rs) ? traceNftables(rs, req) : trace(rs, req);
}

/** How many rules traces have compiled for these rules (what a cache of rulesets weighs beyond the text). */
export function rulesCompiled(rs: AnyRuleset): number {
  return isNftables(rs) ? nftCompiledRuleCount(rs) : compiledRuleCount(rs);
}

/** The format to store with the dump: `nftables`, `iptables-save` or `iptables-S`. */
export function formatOf(rs: AnyRuleset): string {
  return isNftables(rs) ? 'nftables' : rs.format;
}

/** Tables with their chain and rule counts; nftables tables are named `family name`. */
export function tableCounts(rs: AnyRuleset): { name: string; chains: number; rules: number }[] {
  if (isNftables(rs)) {
    return [...rs.tables.values()].map((t) => {
      let rules = 0;
      for (const c of t.chains.values()) rules += c.rules.length;
      return { name: t.key, chains: t.chains.size, rules };
    });
  }
  return [...rs.tables.values()].map((t) => {
    let rules = 0;
    for (const c of t.chains.values()) rules += ruleCount(c);
    return { name: t.name, chains: t.chains.size, rules };
  });
}

/** The rules as an iptables dump, for what reads only those (the audit checks that read iptables chains); nftables is refused plainly. */
export function requireIptables(rs: AnyRuleset, what: string): Ruleset {
  if (isNftables(rs)) throw new EngineError('DUMP_FORMAT_UNSUPPORTED', `${what} of nftables rulesets are not supported yet; traces are`);
  return rs;
}
