/**
 * Prints a ruleset as canonical `iptables-save` text: the option order, address forms, mark and
 * probability spellings that iptables-save itself prints, whatever form the input used
 * (kube-proxy's restore payloads, `iptables -S`).
 */
import type { Chain, MatchModule, ModuleOption, Rule, Ruleset, TargetSpec } from './ast.ts';
import { formatCidr } from '../net/address.ts';
import { quantizeProbability } from '../trace/probability.ts';
import { probabilityValue, readMark, readNatTo, readNumber32 } from './values.ts';
import { readPortRange } from '../net/port.ts';

function quote(arg: string, always = false): string {
  if (!always && arg !== '' && !/[\s"\\']/.test(arg)) return arg;
  // iptables-save escapes backslashes and both quote characters inside a quoted word.
  return `"${arg.replace(/[\\"']/g, (c) => `\\${c}`)}"`;
}

function neg(negated: boolean): string {
  return negated ? '! ' : '';
}

/** `0x00004000/0x00004000` → `0x4000/0x4000`; a full mask is left out, as iptables-save does. */
export function canonicalMark(text: string): string {
  const read = readMark(text);
  if (!read) return text;
  const { value, mask } = read;
  return mask === null || mask === 0xffffffff ? `0x${value.toString(16)}` : `0x${value.toString(16)}/0x${mask.toString(16)}`;
}

function option(o: ModuleOption, alwaysQuote = false): string {
  const args = o.args.map((a) => ' ' + quote(a, alwaysQuote)).join('');
  return `${neg(o.negated)}--${o.name}${args}`;
}

const RECENT_ORDER = ['set', 'rcheck', 'update', 'remove', 'seconds', 'hitcount', 'reap', 'rttl', 'name', 'mask', 'rsource', 'rdest'];
const TCP_ORDER = ['sport', 'source-port', 'dport', 'destination-port', 'tcp-option', 'tcp-flags', 'syn'];

function sortBy(options: readonly ModuleOption[], order: readonly string[]): ModuleOption[] {
  const rank = (o: ModuleOption) => {
    const k = order.indexOf(o.name);
    return k < 0 ? order.length : k;
  };
  return [...options].sort((a, b) => rank(a) - rank(b));
}

function printModule(m: MatchModule, family: string): string {
  let options: ModuleOption[] = [...m.options];
  switch (m.module) {
    case 'comment':
      // An unquoted multi-word comment (`--comment kubernetes service portals`) is one comment.
      return `-m comment ${options.map((o) => option({ ...o, args: [o.args.join(' ')] }, true)).join(' ')}`;
    case 'tcp':
    case 'udp':
    case 'sctp':
      options = sortBy(options, TCP_ORDER).map((o) => {
        if (o.name === 'source-port' || o.name === 'sport') return { ...o, name: 'sport', args: o.args.map((a) => canonicalPort(a, m.module)) };
        if (o.name === 'destination-port' || o.name === 'dport') return { ...o, name: 'dport', args: o.args.map((a) => canonicalPort(a, m.module)) };
        if (o.name === 'syn') return { name: 'tcp-flags', negated: o.negated, args: ['FIN,SYN,RST,ACK', 'SYN'] };
        return o;
      });
      break;
    case 'mark':
    case 'connmark':
      options = options.map((o) => (o.name === 'mark' && o.args[0] ? { ...o, args: [canonicalMark(o.args[0])] } : o));
      break;
    case 'statistic':
      options = options.map((o) =>
        o.name === 'probability' && o.args[0] !== undefined
          ? { ...o, args: [(quantizeProbability(probabilityValue(o.args[0])) / 2 ** 31).toFixed(11)] }
          : o,
      );
      break;
    case 'recent': {
      const names = new Set(options.map((o) => o.name));
      if (!names.has('name')) options.push({ name: 'name', negated: false, args: ['DEFAULT'] });
      if (!names.has('mask')) options.push({ name: 'mask', negated: false, args: [family === 'ipv6' ? 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff' : '255.255.255.255'] });
      if (!names.has('rsource') && !names.has('rdest')) options.push({ name: 'rsource', negated: false, args: [] });
      options = sortBy(options, RECENT_ORDER);
      break;
    }
    default:
      break;
  }
  const rendered = options.map((o) => option(o)).join(' ');
  return rendered ? `-m ${m.module} ${rendered}` : `-m ${m.module}`;
}

/** A port or range as iptables-save prints it: decimal, one number when both ends are equal; names and errors as written. */
function canonicalPort(text: string, module: string): string {
  const read = readPortRange(text, module);
  if ('error' in read) return text;
  const [lo, hi] = read.range;
  if (lo === null || hi === null) return text;
  return lo === hi ? `${lo}` : `${lo}:${hi}`;
}

/** A NAT address as iptables-save prints it (IPv4: one address or a range, ports in decimal); other forms as written. */
function canonicalNatTo(text: string): string {
  if (text.includes('[') || text.includes('/') || text.indexOf(':') !== text.lastIndexOf(':')) return text;
  const read = readNatTo(text);
  if ('error' in read || (read.hasPorts && (read.portLo === null || read.portHi === null))) return text;
  const ips = read.ipLo === read.ipHi ? read.ipLo : `${read.ipLo}-${read.ipHi}`;
  if (!read.hasPorts) return ips;
  return `${ips}:${read.portLo === read.portHi ? read.portLo : `${read.portLo}-${read.portHi}`}`;
}

/** MARK's shorthands as the kernel stores them: everything is `--set-xmark value/mask`. */
function markToXmark(o: ModuleOption): ModuleOption {
  const arg = o.args[0] ?? '0';
  const [v, m] = arg.split('/');
  const num = (s: string) => readNumber32(s) ?? 0;
  const value = num(v);
  const hex = (n: number) => `0x${(n >>> 0).toString(16)}`;
  switch (o.name) {
    case 'set-mark':
      // iptables stores value/mask as value/(mask | value).
      return { name: 'set-xmark', negated: false, args: [`${hex(value)}/${hex(m === undefined ? 0xffffffff : num(m) | value)}`] };
    case 'or-mark':
      return { name: 'set-xmark', negated: false, args: [`${hex(value)}/${hex(value)}`] };
    case 'xor-mark':
      return { name: 'set-xmark', negated: false, args: [`${hex(value)}/0x0`] };
    case 'and-mark':
      return { name: 'set-xmark', negated: false, args: [`0x0/${hex(~value)}`] };
    case 'set-xmark':
      return { name: 'set-xmark', negated: false, args: [`${hex(value)}/${hex(m === undefined ? 0xffffffff : num(m))}`] };
    default:
      return o;
  }
}

function printTarget(t: TargetSpec, family: string): string {
  const verb = t.kind === 'goto' ? '-g' : '-j';
  let options: ModuleOption[] = [...t.options];
  if (t.name === 'MARK') options = options.map(markToXmark);
  if (t.name === 'DNAT' || t.name === 'SNAT') {
    options = options.map((o) => (o.name === 'to-destination' || o.name === 'to-source' ? { ...o, args: o.args.map(canonicalNatTo) } : o));
  }
  if (t.name === 'REJECT' && !options.some((o) => o.name === 'reject-with')) {
    options.push({ name: 'reject-with', negated: false, args: [family === 'ipv6' ? 'icmp6-port-unreachable' : 'icmp-port-unreachable'] });
  }
  const rendered = options.map((o) => option(o)).join(' ');
  return rendered ? `${verb} ${t.name} ${rendered}` : `${verb} ${t.name}`;
}

/** One rule in iptables-save's canonical option order. */
export function printRule(rule: Rule, family = 'ipv4'): string {
  const parts: string[] = [`-A ${rule.chain}`];
  if (rule.source) parts.push(`${neg(rule.source.negated)}-s ${formatCidr(rule.source.value)}`);
  if (rule.destination) parts.push(`${neg(rule.destination.negated)}-d ${formatCidr(rule.destination.value)}`);
  if (rule.inInterface) parts.push(`${neg(rule.inInterface.negated)}-i ${rule.inInterface.value}`);
  if (rule.outInterface) parts.push(`${neg(rule.outInterface.negated)}-o ${rule.outInterface.value}`);
  if (rule.protocol) parts.push(`${neg(rule.protocol.negated)}-p ${rule.protocol.value}`);
  if (rule.fragment) parts.push(`${neg(rule.fragment.negated)}-f`);
  for (const m of rule.matches) parts.push(printModule(m, family));
  if (rule.target) parts.push(printTarget(rule.target, family));
  return parts.join(' ');
}

function chainDeclaration(c: Chain, withCounters: boolean): string {
  const counters = withCounters && c.counters ? `[${c.counters.packets}:${c.counters.bytes}]` : '[0:0]';
  return `:${c.name} ${c.builtin ? c.policy ?? 'ACCEPT' : '-'} ${counters}`;
}

export interface PrintOptions {
  /** Print `[packets:bytes]` before rules and in chain declarations (`iptables-save -c`). */
  readonly counters?: boolean;
  /** Leave out rules and chains svcpath synthesised to complete a fragment (default: leave out). */
  readonly includeSynthesized?: boolean;
}

/** The whole ruleset as `iptables-save` prints it (without the `# Generated` comment lines). */
export function printRuleset(rs: Ruleset, options: PrintOptions = {}): string {
  const out: string[] = [];
  for (const table of rs.tables.values()) {
    out.push(`*${table.name}`);
    const chains = [...table.chains.values()].filter((c) => options.includeSynthesized || !c.synthesized);
    for (const c of chains) out.push(chainDeclaration(c, options.counters ?? false));
    for (const c of chains) {
      for (const r of c.rules) {
        if (r.synthesized && !options.includeSynthesized) continue;
        const text = printRule(r, rs.family);
        out.push(options.counters && r.counters ? `[${r.counters.packets}:${r.counters.bytes}] ${text}` : text);
      }
    }
    out.push('COMMIT');
  }
  return out.length ? out.join('\n') + '\n' : '';
}
