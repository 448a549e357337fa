/**
 * Turns parsed rules into what the tracer evaluates: a list of match tests (each answering
 * match / no match / unknown), the statistic draws, side effects, and the target's action.
 * Large chains get a dispatch index on exact destination address and destination port, so a
 * trace through a 10,000-Service KUBE-SERVICES touches only the rules that can match while
 * keeping the kernel's first-match order.
 */
import type { Chain, Cidr, MatchModule, ModuleOption, Rule, Ruleset } from '../netfilter/ast.ts';
import { targetOption } from '../netfilter/ast.ts';
import { parseIPv4, parseIPv6 } from '../net/address.ts';
import { quantizeProbability } from './probability.ts';
import type { Addr, PacketState } from './packet.ts';
import { parseAddr } from './packet.ts';
import { chainText, DumpChain, ruleAssumptionAt, ruleTextAt, TextRule } from '../netfilter/rule.ts';
import { Hasher } from '../hash.ts';
import { ownCopy } from '../text.ts';
import { readPortRange } from '../net/port.ts';
import { dispatchKeys } from '../netfilter/dispatch.ts';
import { probabilityValue, readMark, readNatAddress, readNatPortRange, readNumber32 } from '../netfilter/values.ts';

export const NO = 0;
export const YES = 1;
export const UNKNOWN = 2;
export type TestResult = 0 | 1 | 2;

export interface TestEnv {
  isLocal(a: Addr): boolean;
}

export interface Test {
  readonly eval: (s: PacketState, env: TestEnv) => TestResult;
  /** Why an UNKNOWN answer could not be decided, for the warning. */
  readonly unknownReason?: string;
  /** Set on `-i`/`-o` tests: an UNKNOWN answer is split into cases rather than warned about. */
  readonly iface?: InterfaceTest;
}

/** What an `-i`/`-o` test asks of an interface name: equal to `name`, or starting with it. */
export interface InterfaceTest {
  readonly dir: 'in' | 'out';
  readonly name: string;
  readonly prefix: boolean;
  readonly negated: boolean;
}

export interface RandomDraw {
  /** Probability of the statistic match succeeding, in units of 2^-31. */
  readonly k: number;
}

export type SideEffect = (s: PacketState) => boolean;

export type Action =
  | { readonly kind: 'accept' }
  | { readonly kind: 'drop' }
  | { readonly kind: 'reject'; readonly with: string }
  | { readonly kind: 'return' }
  | { readonly kind: 'jump' | 'goto'; readonly chain: string }
  | { readonly kind: 'missing-chain'; readonly chain: string; readonly goto: boolean }
  | { readonly kind: 'dnat'; readonly ip: Addr | null; readonly port: number | null; readonly note?: string }
  | { readonly kind: 'redirect'; readonly port: number | null }
  | { readonly kind: 'snat'; readonly ip: string | null; readonly port: number | null }
  | { readonly kind: 'masquerade'; readonly ports: string | null }
  | { readonly kind: 'mark'; readonly value: number; readonly mask: number }
  | { readonly kind: 'connmark'; readonly op: 'set' | 'save' | 'restore'; readonly value: number; readonly mask: number; readonly nfmask: number; readonly ctmask: number }
  | { readonly kind: 'notrack' }
  | { readonly kind: 'continue'; readonly note: string }
  | { readonly kind: 'unmodelled-target'; readonly name: string }
  | { readonly kind: 'none' };

export interface CompiledRule {
  readonly rule: Rule;
  readonly tests: readonly Test[];
  /** Match tests that draw random numbers or change state: run in order after all tests passed. */
  readonly late: readonly ({ kind: 'random'; k: number } | { kind: 'effect'; run: SideEffect; test?: Test })[];
  readonly action: Action;
  readonly notModelled: readonly string[];
  /** The list a `-m recent --set` of the rule adds the client to (session affinity); null without one. */
  readonly recentSet: string | null;
}

export interface CompiledChain {
  readonly chain: Chain;
  /** A number for the chain's policy and rules: equal numbers, equal chains (chainContentId). */
  readonly contentId: number;
  /** How many rules the chain has. */
  readonly length: number;
  /** The rule at 0-based position i, compiled the first time a trace reaches it. */
  rule(i: number): CompiledRule;
  /** A 53-bit hash of the text (and any assumption) of the rule at 0-based position i, kept once made. */
  ruleHash(i: number): number;
  /** The dispatch keys of every rule, as `index` has them, for any chain (made when first asked). */
  keys(): NonNullable<CompiledChain['index']>;
  /** Dispatch index, present on long chains: positions (0-based) of candidate rules. */
  readonly index?: {
    readonly byDst: ReadonlyMap<string, readonly number[]>;
    readonly byPort: ReadonlyMap<number, readonly number[]>;
    readonly rest: readonly number[];
  };
}

export interface CompiledRuleset {
  readonly ruleset: Ruleset;
  readonly tables: ReadonlyMap<string, ReadonlyMap<string, CompiledChain>>;
  /** How many rules traces have compiled so far (what the compiled form costs grows with it). */
  readonly stats: { rules: number };
}

const INDEX_THRESHOLD = 24;

/** A number as iptables reads marks and masks (values.ts); 0 for what it refuses, which parsing has reported. */
function num(text: string | undefined): number {
  return (text === undefined ? null : readNumber32(text)) ?? 0;
}

function valueMask(arg: string | undefined): { value: number; mask: number } {
  const read = readMark(arg ?? '0');
  return { value: read?.value ?? 0, mask: read?.mask ?? 0xffffffff };
}

function cidrContains(c: Cidr): (a: Addr) => boolean {
  if (c.family === 'ipv4') {
    const base = parseIPv4(c.address)!;
    const mask = c.prefix === 0 ? 0 : (0xffffffff << (32 - c.prefix)) >>> 0;
    return (a) => a.family === 'ipv4' && ((a.v4 & mask) >>> 0) === base;
  }
  const base = parseIPv6(c.address)!;
  const mask = c.prefix === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - c.prefix)) - 1n);
  return (a) => a.family === 'ipv6' && (a.v6 & mask) === base;
}

/** `80`, `80:90`, `:90`, `1024:` → inclusive range, numbers read as iptables reads them (net/port.ts); null for service names and errors. */
function portRange(text: string, module = 'tcp'): [number, number] | null {
  const read = readPortRange(text, module);
  if ('error' in read) return null;
  const [lo, hi] = read.range;
  return lo === null || hi === null ? null : [lo, hi];
}

function portList(text: string): [number, number][] | null {
  const out: [number, number][] = [];
  for (const p of text.split(',')) {
    const r = portRange(p);
    if (!r) return null;
    out.push(r);
  }
  return out;
}

const bool = (b: boolean): TestResult => (b ? YES : NO);
const unknown = (reason: string): Test => ({ eval: () => UNKNOWN, unknownReason: reason });

function negate(t: Test, negated: boolean): Test {
  if (!negated) return t;
  const inner = t.eval;
  return { eval: (s, e) => { const r = inner(s, e); return r === UNKNOWN ? UNKNOWN : r === YES ? NO : YES; }, unknownReason: t.unknownReason, iface: t.iface };
}

const ICMP_TYPES: Readonly<Record<string, number>> = {
  'echo-reply': 0, pong: 0, 'destination-unreachable': 3, 'echo-request': 8, ping: 8, 'time-exceeded': 11,
};

const CT_STATES = new Set(['INVALID', 'NEW', 'ESTABLISHED', 'RELATED', 'UNTRACKED', 'SNAT', 'DNAT']);

/** The first packet of a connection: NEW, plus the virtual DNAT/SNAT states once translated. */
function ctStateTest(list: string, negated: boolean, virtualStates: boolean): Test {
  const states = list.split(',').map((x) => x.trim().toUpperCase());
  const bad = states.find((x) => !CT_STATES.has(x));
  if (bad) return unknown(`conntrack state '${bad}'`);
  return negate({
    eval: (s) => {
      if (s.untracked) return bool(states.includes('UNTRACKED'));
      if (states.includes('NEW')) return YES;
      if (virtualStates && states.includes('DNAT') && s.dnatDone) return YES;
      if (virtualStates && states.includes('SNAT') && s.snatDone) return YES;
      return NO;
    },
  }, negated);
}

function tcpFlagsTest(mask: string, comp: string): Test {
  // The first packet of a TCP connection is a SYN: SYN set; ACK, RST, FIN (and the rest) clear.
  const names = (x: string) => (x === 'ALL' ? ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG'] : x === 'NONE' ? [] : x.split(','));
  const m = names(mask);
  const c = names(comp);
  const ok = m.every((f) => (f === 'SYN') === c.includes(f));
  return { eval: (s) => bool(s.proto === 'tcp' && ok) };
}

interface ModuleCompile {
  tests: Test[];
  late: CompiledRule['late'][number][];
  notModelled: string[];
  recentSet: string | null;
}

function compileModule(m: MatchModule, out: ModuleCompile): void {
  for (const o of m.options) compileOption(m.module, o, out);
  if (m.options.length === 0 && !['tcp', 'udp', 'sctp', 'icmp', 'comment', 'conntrack', 'state', 'addrtype', 'multiport', 'mark', 'connmark', 'statistic', 'recent'].includes(m.module)) {
    out.tests.push(unknown(`match module '${m.module}'`));
    out.notModelled.push(`-m ${m.module}`);
  }
}

function compileOption(module: string, o: ModuleOption, out: ModuleCompile): void {
  const a0 = o.args[0];
  const notModelled = (what: string) => {
    out.tests.push(unknown(what));
    out.notModelled.push(what);
  };
  switch (module) {
    case 'comment':
    case 'nfacct':
      return; // no effect on the packet
    case 'tcp':
    case 'udp':
    case 'sctp':
    case 'udplite': {
      const proto = module === 'udplite' ? 'udp' : module;
      if (o.name === 'dport' || o.name === 'destination-port' || o.name === 'sport' || o.name === 'source-port') {
        const r = portRange(a0 ?? '', module);
        if (!r) return notModelled(`--${o.name} ${a0 ?? ''}`);
        const dst = o.name === 'dport' || o.name === 'destination-port';
        if (dst) {
          out.tests.push(negate({ eval: (s) => bool(s.proto === proto && s.dport >= r[0] && s.dport <= r[1]) }, o.negated));
        } else {
          out.tests.push(negate({
            eval: (s) => (s.proto !== proto ? NO : s.sport === null ? UNKNOWN : bool(s.sport >= r[0] && s.sport <= r[1])),
            unknownReason: 'the source port (give packet.sourcePort)',
          }, o.negated));
        }
        return;
      }
      if (o.name === 'tcp-flags' && o.args.length === 2) return void out.tests.push(negate(tcpFlagsTest(o.args[0], o.args[1]), o.negated));
      if (o.name === 'syn') return void out.tests.push(negate(tcpFlagsTest('FIN,SYN,RST,ACK', 'SYN'), o.negated));
      return notModelled(`-m ${module} --${o.name}`);
    }
    case 'icmp': {
      if (o.name !== 'icmp-type') return notModelled(`-m icmp --${o.name}`);
      const type = (a0 ?? '').split('/')[0];
      const want = type === 'any' ? -1 : /^\d+$/.test(type) ? Number(type) : ICMP_TYPES[type];
      if (want === undefined) return notModelled(`--icmp-type ${a0}`);
      // svcpath traces an ICMP echo request (type 8) as the first packet.
      return void out.tests.push(negate({ eval: (s) => bool(s.proto === 'icmp' && (want === -1 || want === 8)) }, o.negated));
    }
    case 'multiport': {
      const list = portList(a0 ?? '');
      if (!list) return notModelled(`--${o.name} ${a0 ?? ''}`);
      const inList = (p: number) => list.some(([lo, hi]) => p >= lo && p <= hi);
      if (o.name === 'dports' || o.name === 'destination-ports') {
        return void out.tests.push(negate({ eval: (s) => bool(s.proto !== 'icmp' && inList(s.dport)) }, o.negated));
      }
      const sourceTest: Test = {
        eval: (s) => (s.proto === 'icmp' ? NO : s.sport === null ? (o.name === 'ports' && inList(s.dport) ? YES : UNKNOWN) : bool(inList(s.sport) || (o.name === 'ports' && inList(s.dport)))),
        unknownReason: 'the source port (give packet.sourcePort)',
      };
      return void out.tests.push(negate(sourceTest, o.negated));
    }
    case 'addrtype': {
      if (o.name === 'limit-iface-in' || o.name === 'limit-iface-out') return notModelled(`--${o.name}`);
      const types = (a0 ?? '').split(',').map((x) => x.toUpperCase());
      const typeOf = (a: Addr, env: TestEnv): string => {
        if (env.isLocal(a)) return 'LOCAL';
        if (a.family === 'ipv4' && a.v4 === 0xffffffff) return 'BROADCAST';
        if (a.family === 'ipv4' && a.v4 >>> 28 === 0xe) return 'MULTICAST';
        if (a.family === 'ipv6' && a.v6 >> 120n === 0xffn) return 'MULTICAST';
        return 'UNICAST';
      };
      const src = o.name === 'src-type';
      if (!src && o.name !== 'dst-type') return notModelled(`--${o.name}`);
      return void out.tests.push(negate({ eval: (s, env) => bool(types.includes(typeOf(src ? s.src : s.dst, env))) }, o.negated));
    }
    case 'conntrack':
    case 'state': {
      if (o.name === 'ctstate' || o.name === 'state') return void out.tests.push(ctStateTest(a0 ?? '', o.negated, module === 'conntrack'));
      if (o.name === 'ctorigdst' || o.name === 'ctorigsrc') {
        const c = a0 ? parseCidrLoose(a0) : null;
        if (!c) return notModelled(`--${o.name} ${a0 ?? ''}`);
        const contains = cidrContains(c);
        return void out.tests.push(negate({ eval: (s) => bool(contains(o.name === 'ctorigdst' ? s.origDst : s.src)) }, o.negated));
      }
      if (o.name === 'ctorigdstport') {
        const r = portRange(a0 ?? '');
        if (!r) return notModelled(`--ctorigdstport ${a0 ?? ''}`);
        return void out.tests.push(negate({ eval: (s) => bool(s.origDport >= r[0] && s.origDport <= r[1]) }, o.negated));
      }
      if (o.name === 'ctproto') {
        const p = (a0 ?? '').toLowerCase();
        return void out.tests.push(negate({ eval: (s) => bool(s.proto === p) }, o.negated));
      }
      if (o.name === 'ctdir') {
        // The first packet travels in the ORIGINAL direction.
        return void out.tests.push(negate({ eval: () => bool((a0 ?? '').toUpperCase() === 'ORIGINAL') }, o.negated));
      }
      return notModelled(`-m conntrack --${o.name}`);
    }
    case 'mark':
    case 'connmark': {
      if (o.name !== 'mark') return notModelled(`-m ${module} --${o.name}`);
      const { value, mask } = valueMask(a0);
      const ct = module === 'connmark';
      return void out.tests.push(negate({ eval: (s) => bool((((ct ? s.ctmark : s.mark) & mask) >>> 0) === value) }, o.negated));
    }
    case 'statistic': {
      if (o.name === 'mode') {
        if (a0 !== 'random') notModelled(`-m statistic --mode ${a0 ?? ''}`);
        return;
      }
      if (o.name === 'probability') {
        // As iptables reads it (hexadecimal floats too).
        const k = quantizeProbability(probabilityValue(a0 ?? ''));
        out.late.push({ kind: 'random', k: o.negated ? 2 ** 31 - k : k });
        return;
      }
      return notModelled(`-m statistic --${o.name}`);
    }
    case 'recent':
      return; // handled per module in compileRecent
    case 'limit':
      // The first packet is within any burst.
      return;
    case 'iprange': {
      const [lo, hi] = (a0 ?? '').split('-');
      const l = lo ? parseIPv4(lo) : null;
      const h = hi ? parseIPv4(hi) : l;
      if (l === null || h === null) return notModelled(`--${o.name} ${a0 ?? ''}`);
      const src = o.name === 'src-range';
      return void out.tests.push(negate({ eval: (s) => { const a = src ? s.src : s.dst; return bool(a.family === 'ipv4' && a.v4 >= l && a.v4 <= h); } }, o.negated));
    }
    case 'pkttype': {
      const t = (a0 ?? '').toLowerCase();
      return void out.tests.push(negate({ eval: (s) => bool(t === (s.dst.family === 'ipv4' && s.dst.v4 >>> 28 === 0xe ? 'multicast' : s.dst.v4 === 0xffffffff ? 'broadcast' : 'unicast')) }, o.negated));
    }
    case 'set':
      if (o.name === 'match-set') return notModelled(`ipset membership (--match-set ${o.args.join(' ')})`);
      return;
    default:
      return notModelled(`-m ${module} --${o.name}`);
  }
}

function parseCidrLoose(text: string): Cidr | null {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const prefix = slash < 0 ? undefined : Number(text.slice(slash + 1));
  if (parseIPv4(addr) !== null) return { family: 'ipv4', address: addr, prefix: prefix ?? 32 };
  if (parseIPv6(addr) !== null) return { family: 'ipv6', address: addr, prefix: prefix ?? 128 };
  return null;
}

/**
 * `-m recent`: svcpath answers for a client the kernel has not seen (no entries), so `--rcheck`
 * and `--update` only match what this very trace `--set` earlier.
 */
function compileRecent(m: MatchModule, out: ModuleCompile, rule: Rule): void {
  const opt = (n: string) => m.options.find((o) => o.name === n);
  const name = opt('name')?.args[0] ?? 'DEFAULT';
  const rdest = !!opt('rdest');
  const hitcount = opt('hitcount') ? Number(opt('hitcount')!.args[0]) : 0;
  const key = (s: PacketState) => `${name}|${rdest ? s.dst.text : s.src.text}`;
  const mode = opt('set') ? 'set' : opt('rcheck') ? 'rcheck' : opt('update') ? 'update' : opt('remove') ? 'remove' : null;
  const negated = m.options.some((o) => o.negated && ['set', 'rcheck', 'update', 'remove'].includes(o.name));
  if (!mode) {
    out.tests.push(unknown(`-m recent without --set/--rcheck/--update/--remove (${rule.text})`));
    return;
  }
  if (mode === 'set') {
    out.recentSet = name;
    out.late.push({ kind: 'effect', run: (s) => { s.recent.add(key(s)); return !negated; } });
    return;
  }
  if (mode === 'remove') {
    out.late.push({ kind: 'effect', run: (s) => { const had = s.recent.delete(key(s)); return had !== negated; } });
    return;
  }
  out.tests.push({ eval: (s) => bool((s.recent.has(key(s)) && hitcount <= 1) !== negated) });
}

function basicTests(rule: Rule, tests: Test[]): void {
  if (rule.source) {
    const c = cidrContains(rule.source.value);
    tests.push(negate({ eval: (s) => bool(c(s.src)) }, rule.source.negated));
  }
  if (rule.destination) {
    const c = cidrContains(rule.destination.value);
    tests.push(negate({ eval: (s) => bool(c(s.dst)) }, rule.destination.negated));
  }
  if (rule.protocol) {
    const p = rule.protocol.value;
    tests.push(negate({ eval: (s) => bool(p === 'all' || p === '0' || p === s.proto) }, rule.protocol.negated));
  }
  if (rule.inInterface) tests.push(interfaceTest(rule.inInterface.value, rule.inInterface.negated, 'in'));
  if (rule.outInterface) tests.push(interfaceTest(rule.outInterface.value, rule.outInterface.negated, 'out'));
  if (rule.fragment) tests.push(negate({ eval: () => NO }, rule.fragment.negated)); // the first packet is not a fragment
}

/**
 * `-i eth+` matches every interface whose name starts with `eth`. The empty name stands for a hook
 * that has no such interface (the kernel compares against it: `-i X` fails, `! -i X` holds); null is
 * an interface that exists but is not known, which the tracer splits into cases.
 */
function interfaceTest(name: string, negated: boolean, dir: 'in' | 'out'): Test {
  const prefix = name.endsWith('+') ? name.slice(0, -1) : null;
  return negate({
    eval: (s) => {
      const iface = dir === 'in' ? s.inIface : s.outIface;
      if (iface === null) return UNKNOWN;
      return bool(prefix !== null ? iface.startsWith(prefix) : iface === name);
    },
    iface: { dir, name: prefix ?? name, prefix: prefix !== null, negated },
  }, negated);
}

function compileAction(rule: Rule, chains: ReadonlyMap<string, Chain>): Action {
  const t = rule.target;
  if (!t) return { kind: 'none' };
  if (chains.has(t.name) && !['ACCEPT', 'DROP', 'RETURN'].includes(t.name)) return { kind: t.kind, chain: t.name };
  switch (t.name) {
    case 'ACCEPT':
      return { kind: 'accept' };
    case 'DROP':
      return { kind: 'drop' };
    case 'REJECT':
      return { kind: 'reject', with: targetOption(rule, 'reject-with')?.args[0] ?? 'icmp-port-unreachable' };
    case 'RETURN':
      return { kind: 'return' };
    case 'DNAT': {
      const to = readNatAddress(targetOption(rule, 'to-destination')?.args[0]);
      if (to.serviceName) return { kind: 'unmodelled-target', name: 'DNAT to a port named in /etc/services' };
      let ip: Addr | null;
      try {
        ip = to.ip ? parseAddr(to.ip, 'DNAT address') : null;
      } catch {
        ip = null;
      }
      const repeated = (rule.target?.options.filter((o) => o.name === 'to-destination').length ?? 0) > 1;
      const note = to.range || repeated
        ? 'DNAT to a range: the kernel picks one address/port per connection; the first is shown'
        : undefined;
      return note ? { kind: 'dnat', ip, port: to.port, note } : { kind: 'dnat', ip, port: to.port };
    }
    case 'REDIRECT': {
      // As iptables reads --to-ports (0120 and 0x50 are 80); a range redirects to its first port.
      const p = targetOption(rule, 'to-ports')?.args[0];
      const read = p === undefined ? null : readNatPortRange(p);
      if (read && 'error' in read) return { kind: 'unmodelled-target', name: `REDIRECT --to-ports ${p}` };
      if (read && read.lo === null) return { kind: 'unmodelled-target', name: 'REDIRECT to a port named in /etc/services' };
      return { kind: 'redirect', port: read ? read.lo : null };
    }
    case 'SNAT': {
      const to = readNatAddress(targetOption(rule, 'to-source')?.args[0]);
      if (to.serviceName) return { kind: 'unmodelled-target', name: 'SNAT to a port named in /etc/services' };
      return { kind: 'snat', ip: to.ip, port: to.port };
    }
    case 'MASQUERADE':
      return { kind: 'masquerade', ports: targetOption(rule, 'to-ports')?.args[0] ?? null };
    case 'MARK': {
      const o = t.options[0];
      if (!o) return { kind: 'unmodelled-target', name: 'MARK' };
      const { value, mask } = valueMask(o.args[0]);
      switch (o.name) {
        case 'set-xmark':
          return { kind: 'mark', value, mask };
        case 'set-mark':
          // iptables stores --set-mark value/mask as --set-xmark value/(mask | value).
          return { kind: 'mark', value, mask: o.args[0]?.includes('/') ? (mask | value) >>> 0 : 0xffffffff };
        case 'or-mark':
          return { kind: 'mark', value, mask: value };
        case 'xor-mark':
          return { kind: 'mark', value, mask: 0 };
        case 'and-mark':
          return { kind: 'mark', value: 0, mask: ~value >>> 0 };
        default:
          return { kind: 'unmodelled-target', name: `MARK --${o.name}` };
      }
    }
    case 'CONNMARK': {
      const get = (n: string, d: number) => {
        const o = targetOption(rule, n);
        return o ? num(o.args[0]) >>> 0 : d;
      };
      const save = targetOption(rule, 'save-mark');
      const restore = targetOption(rule, 'restore-mark');
      if (save || restore) {
        const mask = get('mask', 0xffffffff);
        return { kind: 'connmark', op: save ? 'save' : 'restore', value: 0, mask: 0, nfmask: get('nfmask', mask), ctmask: get('ctmask', mask) };
      }
      const o = t.options[0];
      if (!o) return { kind: 'unmodelled-target', name: 'CONNMARK' };
      const { value, mask } = valueMask(o.args[0]);
      if (o.name === 'set-xmark') return { kind: 'connmark', op: 'set', value, mask, nfmask: 0, ctmask: 0 };
      // As for MARK: --set-mark value/mask is --set-xmark value/(mask | value).
      if (o.name === 'set-mark') return { kind: 'connmark', op: 'set', value, mask: o.args[0]?.includes('/') ? (mask | value) >>> 0 : 0xffffffff, nfmask: 0, ctmask: 0 };
      if (o.name === 'or-mark') return { kind: 'connmark', op: 'set', value, mask: value, nfmask: 0, ctmask: 0 };
      return { kind: 'unmodelled-target', name: `CONNMARK --${o.name}` };
    }
    case 'NOTRACK':
      return { kind: 'notrack' };
    case 'CT':
      return targetOption(rule, 'notrack') ? { kind: 'notrack' } : { kind: 'continue', note: 'CT (conntrack settings; no effect on the first packet\'s path)' };
    case 'LOG':
    case 'NFLOG':
    case 'ULOG':
      return { kind: 'continue', note: `${t.name} (logs and continues)` };
    case 'CHECKSUM':
    case 'TCPMSS':
    case 'TOS':
    case 'DSCP':
      return { kind: 'continue', note: `${t.name} (rewrites a header field and continues)` };
    default:
      // A jump to a chain that is not in the dump: a fragment, or a target svcpath does not know.
      if (/^[A-Z0-9]+$/.test(t.name) && !t.name.startsWith('KUBE')) return { kind: 'unmodelled-target', name: t.name };
      return { kind: 'missing-chain', chain: t.name, goto: t.kind === 'goto' };
  }
}

export function compileRule(rule: Rule, chains: ReadonlyMap<string, Chain>): CompiledRule {
  const tests: Test[] = [];
  basicTests(rule, tests);
  const out: ModuleCompile = { tests, late: [], notModelled: [], recentSet: null };
  for (const m of rule.matches) {
    if (m.module === 'recent') compileRecent(m, out, rule);
    else compileModule(m, out);
  }
  return { rule, tests, late: out.late, action: compileAction(rule, chains), notModelled: out.notModelled, recentSet: out.recentSet };
}

type DispatchIndex = NonNullable<CompiledChain['index']>;

class LazyCompiledChain implements CompiledChain {
  private readonly compiled: (CompiledRule | undefined)[];
  private id: number | undefined;
  private keyed: DispatchIndex | undefined;
  private hashes: Float64Array | undefined;

  constructor(
    readonly chain: Chain,
    readonly length: number,
    private readonly ruleAt: (i: number) => Rule,
    private readonly chains: ReadonlyMap<string, Chain>,
    private readonly stats: { rules: number },
    readonly index?: DispatchIndex,
  ) {
    this.compiled = new Array<CompiledRule | undefined>(length);
  }

  get contentId(): number {
    return (this.id ??= chainContentId(this.chain));
  }

  ruleHash(i: number): number {
    const hashes = (this.hashes ??= new Float64Array(this.length).fill(-1));
    let h = hashes[i];
    if (h < 0) h = hashes[i] = new Hasher().string(ruleTextAt(this.chain, i)).string(ruleAssumptionAt(this.chain, i) ?? '').value();
    return h;
  }

  keys(): DispatchIndex {
    if (this.index) return this.index;
    const c = this.chain;
    return (this.keyed ??= buildIndex(this.length, c instanceof DumpChain ? (i) => c.dispatchAt(i) : (i) => dispatchKeys(c.rules[i])));
  }

  rule(i: number): CompiledRule {
    let r = this.compiled[i];
    if (r === undefined) {
      const rule = this.ruleAt(i);
      r = this.compiled[i] = rule instanceof TextRule ? compileShared(rule, this.chains) : compileRule(rule, this.chains);
      this.stats.rules++;
    }
    return r;
  }
}

/**
 * A 53-bit hash of a chain's policy and rule texts (and what svcpath assumed in adding any of
 * them): two chains with the same number act the same on every packet.
 */
function chainContentId(c: Chain): number {
  const h = new Hasher().string(c.policy ?? '-').string(chainText(c));
  if (!(c instanceof DumpChain)) for (const r of c.rules) h.string(r.synthesized ?? '');
  return h.value();
}

/** What a rule compiles to, apart from the rule itself: the same for every dump that has its text. */
interface SharedRule {
  readonly tests: readonly Test[];
  readonly late: CompiledRule['late'];
  readonly notModelled: readonly string[];
  readonly recentSet: string | null;
  /** The -j/-g target, whose action depends on whether the ruleset has a chain of that name. */
  readonly target: string | null;
  readonly toChain: Action;
  readonly otherwise: Action;
}

/**
 * Compiled rules by meaning (family, table, text), shared by every ruleset: the nodes of a cluster
 * and the versions of a node have almost every rule in common, and each is read and compiled
 * once. Entries are built from copies of the rule texts, so they keep no dump alive; the map is
 * emptied when full (rulesets keep what they compiled).
 */
const sharedRules = new Map<string, SharedRule>();
const SHARED_RULES_KEPT = 200_000;

const ANY_CHAIN: ReadonlyMap<string, Chain> = { has: () => true } as unknown as ReadonlyMap<string, Chain>;
const NO_CHAIN: ReadonlyMap<string, Chain> = new Map();

function compileShared(rule: TextRule, chains: ReadonlyMap<string, Chain>): CompiledRule {
  const key = rule.meaningKey();
  let s = sharedRules.get(key);
  if (s === undefined) {
    const own = rule.ownCopy();
    const c = compileRule(own, NO_CHAIN);
    const target = own.target?.name ?? null;
    s = {
      tests: c.tests, late: c.late, notModelled: c.notModelled, recentSet: c.recentSet, target,
      toChain: target === null ? c.action : compileAction(own, ANY_CHAIN), otherwise: c.action,
    };
    if (sharedRules.size >= SHARED_RULES_KEPT) sharedRules.clear();
    sharedRules.set(ownCopy(key), s);
  }
  const action = s.target !== null && chains.has(s.target) ? s.toChain : s.otherwise;
  return { rule, tests: s.tests, late: s.late, action, notModelled: s.notModelled, recentSet: s.recentSet };
}

/** Lets go of the shared compiled rules (compiled chains keep theirs). */
export function forgetSharedRules(): void {
  sharedRules.clear();
}

/** How many compiled rules all rulesets share (each costs about BYTES_PER_SHARED_RULE). */
export function sharedRuleCount(): number {
  return sharedRules.size;
}

function buildIndex(length: number, keys: (i: number) => { dst: string | null; port: number | null }): DispatchIndex {
  const byDst = new Map<string, number[]>();
  const byPort = new Map<number, number[]>();
  const rest: number[] = [];
  for (let i = 0; i < length; i++) {
    const { dst, port } = keys(i);
    if (dst !== null) {
      let list = byDst.get(dst);
      if (!list) byDst.set(dst, (list = []));
      list.push(i);
    } else if (port !== null) {
      let list = byPort.get(port);
      if (!list) byPort.set(port, (list = []));
      list.push(i);
    } else {
      rest.push(i);
    }
  }
  return { byDst, byPort, rest };
}

/**
 * A chain ready for the tracer. Rules are compiled when a trace first reaches them; a long chain
 * read from a dump is indexed from the keys the parser kept, so a trace through a 10,000-Service
 * KUBE-SERVICES compiles the handful of rules that can match, not all of them.
 */
export function compileChain(chain: Chain, chains: ReadonlyMap<string, Chain>, stats: { rules: number } = { rules: 0 }): CompiledChain {
  if (chain instanceof DumpChain) {
    const length = chain.ruleCount;
    const index = length < INDEX_THRESHOLD ? undefined : buildIndex(length, (i) => chain.dispatchAt(i));
    return new LazyCompiledChain(chain, length, (i) => chain.ruleAt(i), chains, stats, index);
  }
  const rules = chain.rules;
  const index = rules.length < INDEX_THRESHOLD ? undefined : buildIndex(rules.length, (i) => dispatchKeys(rules[i]));
  return new LazyCompiledChain(chain, rules.length, (i) => rules[i], chains, stats, index);
}

const cache = new WeakMap<Ruleset, CompiledRuleset>();

/** How many of the ruleset's rules traces have compiled (0 before the first trace). */
export function compiledRuleCount(rs: Ruleset): number {
  return cache.get(rs)?.stats.rules ?? 0;
}

/** Compiles lazily, chain by chain, and remembers the result for the ruleset. */
export function compileRuleset(rs: Ruleset): CompiledRuleset {
  const hit = cache.get(rs);
  if (hit) return hit;
  const tables = new Map<string, Map<string, CompiledChain>>();
  const stats = { rules: 0 };
  for (const t of rs.tables.values()) {
    const lazy = new LazyChains(t.chains, stats);
    tables.set(t.name, lazy as unknown as Map<string, CompiledChain>);
  }
  const compiled = { ruleset: rs, tables, stats };
  cache.set(rs, compiled);
  return compiled;
}

/** A read-only map that compiles a chain the first time a trace enters it. */
class LazyChains {
  private readonly done = new Map<string, CompiledChain>();
  constructor(private readonly chains: ReadonlyMap<string, Chain>, private readonly stats: { rules: number }) {}
  get(name: string): CompiledChain | undefined {
    let c = this.done.get(name);
    if (c) return c;
    const chain = this.chains.get(name);
    if (!chain) return undefined;
    c = compileChain(chain, this.chains, this.stats);
    this.done.set(name, c);
    return c;
  }
  has(name: string): boolean {
    return this.chains.has(name);
  }
}

