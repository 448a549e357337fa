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
import type { Chain, Family, MatchModule, ModuleOption, Rule, Ruleset, Table, TargetSpec } from '../netfilter/ast.ts';
import { commentOf, isBuiltinChain, matchOf, optionArg } from '../netfilter/ast.ts';
import { printRule } from '../netfilter/printer.ts';
import { ruleCount, TextRule } from '../netfilter/rule.ts';
import { parseCidr } from '../net/address.ts';
import { readMark } from '../netfilter/values.ts';

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

/** What a rule svcpath adds says, apart from where it stands. */
type RuleParts = Pick<Rule, 'source' | 'protocol' | 'matches' | 'target'>;

const option = (name: string, ...args: string[]): ModuleOption => ({ name, negated: false, args });
const match = (module: string, ...options: ModuleOption[]): MatchModule => ({ module, options, implicit: false });
const jump = (name: string, ...options: ModuleOption[]): TargetSpec => ({ kind: 'jump', name, options });
const comment = (text: string): MatchModule => match('comment', option('comment', text));
const CT_NEW = match('conntrack', option('ctstate', 'NEW'));

/** A rule svcpath adds, its text printed as iptables-save prints it. */
function synthRule(family: Family, table: string, chain: string, parts: RuleParts, reason: string): Rule {
  const rule = { table, chain, index: 0, line: 0, ...parts };
  return { ...rule, text: printRule({ ...rule, text: '' }, family), synthesized: reason };
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

/** "ns/svc:port -> ip:port", as kube-proxy comments the rule that jumps to an endpoint's chain. */
const ENDPOINT_COMMENT = /^(.*?)\s+->\s+(\[?[0-9a-fA-F.:]+\]?):(\d+)/;

/** The masquerade mark kube-proxy's KUBE-MARK-MASQ rule sets (`--set-xmark`, `--or-mark`, `--set-mark`), in hex; 0x4000 when it does not say. */
function masqueradeMark(r: Rule | undefined): string {
  const options = r?.target?.options ?? [];
  const arg = optionArg(options, 'set-xmark') ?? optionArg(options, 'or-mark') ?? optionArg(options, 'set-mark');
  const value = arg === undefined ? null : readMark(arg)?.value ?? null;
  return value ? `0x${value.toString(16)}` : '0x4000';
}

export function completeKubeProxy(rs: Ruleset): Ruleset {
  const tables = new Map<string, MutableTable>();
  for (const t of rs.tables.values()) tables.set(t.name, { name: t.name, line: t.line, source: t, changed: new Map() });
  const assumptions: string[] = [];
  const add = (t: MutableTable, chain: string, parts: RuleParts, reason: string, position: 'first' | 'last') => {
    const c = editable(t, chain, reason);
    const r = synthRule(rs.family, t.name, chain, parts, reason);
    if (position === 'first') c.rules.unshift(r);
    else c.rules.push(r);
    assumptions.push(`${reason}: assumed ${t.name === 'nat' ? '' : `(${t.name}) `}${r.text}`);
  };

  const nat = tables.get('nat');
  if (nat) {
    const mark = masqueradeMark(rulesOf(nat, 'KUBE-MARK-MASQ').find((r) => r.target?.name === 'MARK'));
    const masked = `${mark}/${mark}`;
    const usesServices = exists(nat, 'KUBE-SERVICES');
    for (const hook of ['PREROUTING', 'OUTPUT']) {
      if (usesServices && !shown(nat, hook) && !jumpsTo(nat, hook, 'KUBE-SERVICES')) {
        add(nat, hook, { matches: [comment('kubernetes service portals')], target: jump('KUBE-SERVICES') },
          `the dump does not show nat ${hook}; kube-proxy hooks KUBE-SERVICES there`, 'first');
      }
    }
    const marksMasq = anyJumpTo(nat, 'KUBE-MARK-MASQ');
    if (marksMasq && !shown(nat, 'KUBE-MARK-MASQ') && sizeOf(nat, 'KUBE-MARK-MASQ') === 0) {
      add(nat, 'KUBE-MARK-MASQ', { matches: [], target: jump('MARK', option('set-xmark', masked)) },
        'KUBE-MARK-MASQ is jumped to but not shown', 'last');
    }
    if ((marksMasq || exists(nat, 'KUBE-POSTROUTING')) && !shown(nat, 'KUBE-POSTROUTING') && sizeOf(nat, 'KUBE-POSTROUTING') === 0) {
      const why = 'KUBE-POSTROUTING (which masquerades marked packets) is not shown';
      add(nat, 'KUBE-POSTROUTING', { matches: [match('mark', { name: 'mark', negated: true, args: [masked] })], target: jump('RETURN') }, why, 'last');
      add(nat, 'KUBE-POSTROUTING', { matches: [], target: jump('MARK', option('set-xmark', `0x0/${mark}`)) }, why, 'last');
      add(nat, 'KUBE-POSTROUTING', { matches: [comment('kubernetes service traffic requiring SNAT')], target: jump('MASQUERADE') }, why, 'last');
    }
    if (exists(nat, 'KUBE-POSTROUTING') && !shown(nat, 'POSTROUTING') && !jumpsTo(nat, 'POSTROUTING', 'KUBE-POSTROUTING')) {
      add(nat, 'POSTROUTING', { matches: [comment('kubernetes postrouting rules')], target: jump('KUBE-POSTROUTING') },
        'the dump does not show nat POSTROUTING; kube-proxy hooks KUBE-POSTROUTING there', 'first');
    }
    if (sizeOf(nat, 'KUBE-NODEPORTS') > 0 && !anyJumpTo(nat, 'KUBE-NODEPORTS') && !shown(nat, 'KUBE-SERVICES')) {
      add(nat, 'KUBE-SERVICES', {
        matches: [comment('kubernetes service nodeports; NOTE: this must be the last rule in this chain'), match('addrtype', option('dst-type', 'LOCAL'))],
        target: jump('KUBE-NODEPORTS'),
      }, 'KUBE-NODEPORTS has rules but the jump to it is not shown', 'last');
    }
    completeEndpoints(nat, add);
  }

  const filter = tables.get('filter');
  if (filter) {
    // The order kube-proxy's prepended hook rules end up in on a real host.
    const hooks: [string, string, MatchModule[]][] = [
      ['INPUT', 'KUBE-PROXY-FIREWALL', [CT_NEW, comment('kubernetes load balancer firewall')]],
      ['INPUT', 'KUBE-NODEPORTS', [comment('kubernetes health check service ports')]],
      ['INPUT', 'KUBE-EXTERNAL-SERVICES', [CT_NEW, comment('kubernetes externally-visible service portals')]],
      ['INPUT', 'KUBE-FIREWALL', []],
      ['FORWARD', 'KUBE-PROXY-FIREWALL', [CT_NEW, comment('kubernetes load balancer firewall')]],
      ['FORWARD', 'KUBE-FORWARD', [comment('kubernetes forwarding rules')]],
      ['FORWARD', 'KUBE-SERVICES', [CT_NEW, comment('kubernetes service portals')]],
      ['FORWARD', 'KUBE-EXTERNAL-SERVICES', [CT_NEW, comment('kubernetes externally-visible service portals')]],
      ['OUTPUT', 'KUBE-PROXY-FIREWALL', [CT_NEW, comment('kubernetes load balancer firewall')]],
      ['OUTPUT', 'KUBE-SERVICES', [CT_NEW, comment('kubernetes service portals')]],
      ['OUTPUT', 'KUBE-FIREWALL', []],
    ];
    for (const [hook, chain, matches] of hooks) {
      if (!exists(filter, chain) || shown(filter, hook) || jumpsTo(filter, hook, chain)) continue;
      add(filter, hook, { matches, target: jump(chain) }, `the dump does not show filter ${hook}; kube-proxy hooks ${chain} there`, 'last');
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
  add: (t: MutableTable, chain: string, parts: RuleParts, reason: string, position: 'first' | 'last') => void,
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
      const m = ENDPOINT_COMMENT.exec(commentOf(r) ?? '');
      if (!m) continue;
      const ip = m[2].replace(/^\[|\]$/g, '');
      const host = parseCidr(ip);
      if (!host) continue;
      const port = m[3];
      const proto = protocolOf(c.name);
      const why = `chain ${target} is not shown; its endpoint ${ip}:${port} comes from the comment of ${c.name} rule ${r.index}`;
      const said = comment(m[1]);
      const affinity = c.rules.some((x) => {
        const recent = matchOf(x, 'recent')?.options;
        return !!recent && optionArg(recent, 'name') === target && recent.some((o) => o.name === 'rcheck');
      });
      const v6 = host.family === 'ipv6';
      const to = v6 ? `[${ip}]:${port}` : `${ip}:${port}`;
      add(nat, target, { source: { negated: false, value: host }, matches: [said], target: jump('KUBE-MARK-MASQ') }, why, 'last');
      const recent = affinity
        ? [match('recent', option('set'), option('name', target), option('mask', v6 ? 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff' : '255.255.255.255'), option('rsource'))]
        : [];
      add(nat, target, {
        protocol: { negated: false, value: proto },
        matches: [said, ...recent, match(proto)],
        target: jump('DNAT', option('to-destination', to)),
      }, why, 'last');
    }
  }
}

function allTargets(t: Table): Set<string> {
  const out = new Set<string>();
  for (const c of t.chains.values()) for (const r of c.rules) if (r.target) out.add(r.target.name);
  return out;
}
