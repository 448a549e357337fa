/**
 * Completes a fragmentary kube-proxy dump (`iptables -S -t nat | grep …`, kube-proxy's own
 * iptables-restore payloads) with the standard pieces kube-proxy writes, so that a trace can run:
 * the hook rules into KUBE-SERVICES / KUBE-POSTROUTING / the filter chains, KUBE-MARK-MASQ, the
 * masquerade rules, the KUBE-NODEPORTS jump, and KUBE-SEP chains named by their endpoint in the
 * jumping rule's comment. Everything added is marked `synthesized` and listed in `assumptions`.
 *
 * Only pieces that the dump does not show at all are added: a chain the dump declares is traced
 * exactly as it stands, so a complete node dump is never changed.
 */
import type { Chain, Rule, Ruleset, Table } from '../netfilter/ast.ts';
import { isBuiltinChain } from '../netfilter/ast.ts';
import { lex } from '../netfilter/lexer.ts';
import { RuleReader } from '../netfilter/rule-parser.ts';
import { ruleCount, TextRule } from '../netfilter/rule.ts';

/** A table being completed: chains are copied only when svcpath adds rules to them. */
interface MutableTable {
  name: string;
  line: number;
  source: Table;
  changed: Map<string, { chain: Chain; rules: Rule[] }>;
}

function reindex(r: Rule, index: number): Rule {
  return r instanceof TextRule ? r.at(index) : { ...r, index };
}

function synthRule(table: string, chain: string, text: string, reason: string): Rule {
  const body = new RuleReader().read(lex(text, 0), 2, 0, text);
  return { table, chain, index: 0, line: 0, text, ...body, synthesized: reason } as Rule;
}

function chainOf(t: MutableTable | undefined, name: string): Chain | undefined {
  return t?.changed.get(name)?.chain ?? t?.source.chains.get(name);
}

function rulesOf(t: MutableTable | undefined, name: string): readonly Rule[] {
  return t?.changed.get(name)?.rules ?? t?.source.chains.get(name)?.rules ?? [];
}

function sizeOf(t: MutableTable | undefined, name: string): number {
  const changed = t?.changed.get(name);
  if (changed) return changed.rules.length;
  const c = t?.source.chains.get(name);
  return c ? ruleCount(c) : 0;
}

/** A chain is "shown" when the dump declares it (`:X`, `-N X`, `-P X`). */
function shown(t: MutableTable | undefined, name: string): boolean {
  const c = chainOf(t, name);
  return !!c && c.line > 0;
}

function exists(t: MutableTable | undefined, name: string): boolean {
  return shown(t, name) || sizeOf(t, name) > 0;
}

function jumpsTo(t: MutableTable | undefined, from: string, to: string): boolean {
  return rulesOf(t, from).some((r) => r.target?.name === to);
}

function anyJumpTo(t: MutableTable, to: string): boolean {
  if (t.source.jumpTargets) return t.source.jumpTargets.has(to);
  for (const c of t.source.chains.values()) if (c.rules.some((x) => x.target?.name === to)) return true;
  return false;
}

function editable(t: MutableTable, name: string, reason: string): { chain: Chain; rules: Rule[] } {
  let c = t.changed.get(name);
  if (!c) {
    const existing = t.source.chains.get(name);
    const builtin = isBuiltinChain(t.name, name);
    c = existing
      ? { chain: existing, rules: [...existing.rules] }
      : { chain: { table: t.name, name, builtin, policy: builtin ? 'ACCEPT' : null, line: 0, rules: [], synthesized: reason }, rules: [] };
    t.changed.set(name, c);
  }
  return c;
}

const SEP_COMMENT = /--comment\s+"?([^"]*?)\s+->\s+(\[?[0-9a-fA-F.:]+\]?):(\d+)"?/;

export function completeKubeProxy(rs: Ruleset): Ruleset {
  const tables = new Map<string, MutableTable>();
  for (const t of rs.tables.values()) tables.set(t.name, { name: t.name, line: t.line, source: t, changed: new Map() });
  const assumptions: string[] = [];
  const add = (t: MutableTable, chain: string, text: string, reason: string, position: 'first' | 'last') => {
    const c = editable(t, chain, reason);
    const r = synthRule(t.name, chain, text, reason);
    if (position === 'first') c.rules.unshift(r);
    else c.rules.push(r);
    assumptions.push(`${reason}: assumed ${t.name === 'nat' ? '' : `(${t.name}) `}${text}`);
  };

  const nat = tables.get('nat');
  if (nat) {
    const markRule = rulesOf(nat, 'KUBE-MARK-MASQ').find((r) => r.target?.name === 'MARK');
    const mark = /0x[0-9a-fA-F]+/.exec(markRule?.text ?? '')?.[0] ?? '0x4000';
    const usesServices = exists(nat, 'KUBE-SERVICES');
    for (const hook of ['PREROUTING', 'OUTPUT']) {
      if (usesServices && !shown(nat, hook) && !jumpsTo(nat, hook, 'KUBE-SERVICES')) {
        add(nat, hook, `-A ${hook} -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
          `the dump does not show nat ${hook}; kube-proxy hooks KUBE-SERVICES there`, 'first');
      }
    }
    const marksMasq = anyJumpTo(nat, 'KUBE-MARK-MASQ');
    if (marksMasq && !shown(nat, 'KUBE-MARK-MASQ') && sizeOf(nat, 'KUBE-MARK-MASQ') === 0) {
      add(nat, 'KUBE-MARK-MASQ', `-A KUBE-MARK-MASQ -j MARK --set-xmark ${mark}/${mark}`,
        'KUBE-MARK-MASQ is jumped to but not shown', 'last');
    }
    if ((marksMasq || exists(nat, 'KUBE-POSTROUTING')) && !shown(nat, 'KUBE-POSTROUTING') && sizeOf(nat, 'KUBE-POSTROUTING') === 0) {
      const why = 'KUBE-POSTROUTING (which masquerades marked packets) is not shown';
      add(nat, 'KUBE-POSTROUTING', `-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`, why, 'last');
      add(nat, 'KUBE-POSTROUTING', `-A KUBE-POSTROUTING -j MARK --set-xmark 0x0/${mark}`, why, 'last');
      add(nat, 'KUBE-POSTROUTING', '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE', why, 'last');
    }
    if (exists(nat, 'KUBE-POSTROUTING') && !shown(nat, 'POSTROUTING') && !jumpsTo(nat, 'POSTROUTING', 'KUBE-POSTROUTING')) {
      add(nat, 'POSTROUTING', '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        'the dump does not show nat POSTROUTING; kube-proxy hooks KUBE-POSTROUTING there', 'first');
    }
    if (sizeOf(nat, 'KUBE-NODEPORTS') > 0 && !anyJumpTo(nat, 'KUBE-NODEPORTS') && !shown(nat, 'KUBE-SERVICES')) {
      add(nat, 'KUBE-SERVICES',
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
        'KUBE-NODEPORTS has rules but the jump to it is not shown', 'last');
    }
    completeEndpoints(nat, add);
  }

  const filter = tables.get('filter');
  if (filter) {
    // The order kube-proxy's prepended hook rules end up in on a real host.
    const hooks: [string, string, string][] = [
      ['INPUT', 'KUBE-PROXY-FIREWALL', '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall"'],
      ['INPUT', 'KUBE-NODEPORTS', '-m comment --comment "kubernetes health check service ports"'],
      ['INPUT', 'KUBE-EXTERNAL-SERVICES', '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals"'],
      ['INPUT', 'KUBE-FIREWALL', ''],
      ['FORWARD', 'KUBE-PROXY-FIREWALL', '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall"'],
      ['FORWARD', 'KUBE-FORWARD', '-m comment --comment "kubernetes forwarding rules"'],
      ['FORWARD', 'KUBE-SERVICES', '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals"'],
      ['FORWARD', 'KUBE-EXTERNAL-SERVICES', '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals"'],
      ['OUTPUT', 'KUBE-PROXY-FIREWALL', '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall"'],
      ['OUTPUT', 'KUBE-SERVICES', '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals"'],
      ['OUTPUT', 'KUBE-FIREWALL', ''],
    ];
    for (const [hook, chain, matches] of hooks) {
      if (!exists(filter, chain) || shown(filter, hook) || jumpsTo(filter, hook, chain)) continue;
      add(filter, hook, `-A ${hook} ${matches ? matches + ' ' : ''}-j ${chain}`,
        `the dump does not show filter ${hook}; kube-proxy hooks ${chain} there`, 'last');
    }
  }

  if (assumptions.length === 0) return rs;
  const out = new Map<string, Table>();
  for (const t of tables.values()) {
    const chains = new Map<string, Chain>(t.source.chains);
    for (const [name, { chain, rules }] of t.changed) {
      chains.set(name, { ...chainFields(chain), rules: rules.map((r, i) => (r.index === i + 1 ? r : reindex(r, i + 1))) });
    }
    const jumpTargets = new Set(t.source.jumpTargets ?? []);
    for (const { rules } of t.changed.values()) for (const r of rules) if (r.target) jumpTargets.add(r.target.name);
    out.set(t.name, { name: t.name, line: t.line, chains, jumpTargets });
  }
  return { ...rs, tables: out, assumptions: [...rs.assumptions, ...assumptions] };
}

/** A chain's own fields, without its rules (a parsed chain keeps its rules behind a getter). */
function chainFields(c: Chain): Omit<Chain, 'rules'> {
  return {
    table: c.table, name: c.name, builtin: c.builtin, policy: c.policy, line: c.line,
    ...(c.counters ? { counters: c.counters } : {}),
    ...(c.synthesized ? { synthesized: c.synthesized } : {}),
  };
}

/** KUBE-SEP chains missing from the dump, rebuilt from "ns/svc:port -> ip:port" comments. */
function completeEndpoints(
  nat: MutableTable,
  add: (t: MutableTable, chain: string, text: string, reason: string, position: 'first' | 'last') => void,
): void {
  const missing = new Set<string>();
  for (const target of nat.source.jumpTargets ?? allTargets(nat.source)) {
    if (target.startsWith('KUBE-SEP-') && !exists(nat, target)) missing.add(target);
  }
  if (missing.size === 0) return;
  const protocolOf = (svcChain: string): string => {
    for (const c of nat.source.chains.values()) {
      for (const r of c.rules) {
        if ((r.target?.name === svcChain || r.chain === svcChain) && r.protocol && !r.protocol.negated) return r.protocol.value;
      }
    }
    return 'tcp';
  };
  for (const c of [...nat.source.chains.values()]) {
    for (const r of c.rules) {
      const target = r.target?.name;
      if (!target || !missing.has(target) || exists(nat, target)) continue;
      const m = SEP_COMMENT.exec(r.text);
      if (!m) continue;
      const ip = m[2].replace(/^\[|\]$/g, '');
      const port = m[3];
      const proto = protocolOf(c.name);
      const why = `chain ${target} is not shown; its endpoint ${ip}:${port} comes from the comment of ${c.name} rule ${r.index}`;
      const comment = `"${m[1]}"`;
      const affinity = c.rules.find((x) => x.text.includes('--rcheck') && x.text.includes(`--name ${target}`));
      const family = ip.includes(':') ? 'ipv6' : 'ipv4';
      const host = family === 'ipv6' ? `${ip}/128` : `${ip}/32`;
      const to = family === 'ipv6' ? `[${ip}]:${port}` : `${ip}:${port}`;
      add(nat, target, `-A ${target} -s ${host} -m comment --comment ${comment} -j KUBE-MARK-MASQ`, why, 'last');
      const recent = affinity ? ` -m recent --set --name ${target} --mask ${family === 'ipv6' ? 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff' : '255.255.255.255'} --rsource` : '';
      add(nat, target, `-A ${target} -p ${proto} -m comment --comment ${comment}${recent} -m ${proto} -j DNAT --to-destination ${to}`, why, 'last');
    }
  }
}

function allTargets(t: Table): Set<string> {
  const out = new Set<string>();
  for (const c of t.chains.values()) for (const r of c.rules) if (r.target) out.add(r.target.name);
  return out;
}
