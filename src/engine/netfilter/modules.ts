/**
 * The grammar of iptables' match modules and targets, declared once: every option a module or
 * target takes, how many arguments it reads, whether iptables lets it be negated, how its value
 * is checked, and what the owner requires or forbids (as iptables 1.8.9 checks them). Both rule
 * readers are driven from it: the full reader (rule-parser.ts) and the fast one (fast-rule.ts).
 * A new option or a new refusal is an entry here; unknown modules and targets are kept and
 * reported as "not modelled", never dropped.
 */

/**
 * How an option's argument is checked when it is read (rule-parser.ts `checkValue`; the fast
 * reader checks the kinds it knows in bytes and leaves the others to the full reader):
 *   port          one port or port range of the module's protocol (net/port.ts)
 *   port-list     multiport's list: at most 15 ports, a range counting two (needs `-p`)
 *   probability   a number from 0 to 1
 *   mode          statistic's mode: random or nth
 *   count         a 32-bit number
 *   count-from-1  a 32-bit number from 1
 *   mark          value[/mask], each a 32-bit number
 *   mark-value    one 32-bit number
 *   nat-to        DNAT's and SNAT's address[-address][:port[-port]]
 *   to-ports      REDIRECT's and MASQUERADE's port[-port]
 */
export type ValueKind = 'port' | 'port-list' | 'probability' | 'mode' | 'count' | 'count-from-1' | 'mark' | 'mark-value' | 'nat-to' | 'to-ports';

export interface OptionSpec {
  /** How many words it reads; 'words': one, and the words after it up to the next option. */
  readonly args: 0 | 1 | 2 | 'words';
  /** false: iptables refuses `! --option` ("cannot be inverted"). */
  readonly invert: boolean;
  readonly value?: ValueKind;
}

export interface OwnerSpec {
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Second names of an option (`dport` for `destination-port`): one option, given once. */
  readonly aliases?: Readonly<Record<string, string>>;
  /** The owner must be given at least one of these. */
  readonly oneOf?: readonly string[];
  /** What iptables says when none of `oneOf` is given, when it does not say the usual. */
  readonly missing?: string;
  /** Groups of options of which a rule may give only one (canonical names). */
  readonly exclusive?: readonly (readonly string[])[];
  /** An option that needs another beside it (`--reap` needs `--seconds`). */
  readonly needs?: Readonly<Record<string, string>>;
  /** Options may be given more than once (policy after `--next`; several NAT ranges). */
  readonly repeats?: boolean;
  /** The protocol (`-p`) whose implicit module this is: `-p tcp --dport 80` needs no `-m tcp`. */
  readonly protocol?: string;
  /** An explicit `-m` of it with options needs `-p` of its name (negated or not). */
  readonly needsProtocol?: boolean;
}

/** The rule's own options (not a match's or a target's), each under all its names, the short one first. */
export const RULE_OPTIONS = {
  source: ['-s', '--source', '--src'],
  destination: ['-d', '--destination', '--dst'],
  protocol: ['-p', '--protocol'],
  inInterface: ['-i', '--in-interface'],
  outInterface: ['-o', '--out-interface'],
  fragment: ['-f', '--fragment'],
  counters: ['-c', '--set-counters'],
  match: ['-m', '--match'],
  jump: ['-j', '--jump'],
  goto: ['-g', '--goto'],
} as const;
export type RuleOption = keyof typeof RULE_OPTIONS;
/** The rule options iptables takes once in a rule ("multiple -s flags not allowed"). */
export const ONCE_PER_RULE: readonly RuleOption[] = ['source', 'destination', 'protocol', 'inInterface', 'outInterface', 'fragment', 'counters'];

/** An option read as iptables reads the first argument: the next word, whatever it looks like. */
const ONE: OptionSpec = { args: 1, invert: true };
const FLAG: OptionSpec = { args: 0, invert: true };
const TWO: OptionSpec = { args: 2, invert: true };
const PORT: OptionSpec = { args: 1, invert: true, value: 'port' };
const PORTS: OptionSpec = { args: 1, invert: true, value: 'port-list' };

/** The same option, refused by iptables when negated. */
function fixed(o: OptionSpec): OptionSpec {
  return { ...o, invert: false };
}

function valued(value: ValueKind, o: OptionSpec = ONE): OptionSpec {
  return { ...o, value };
}

/** `names`, each taking one argument, negatable, unchecked. */
function ones(...names: string[]): Record<string, OptionSpec> {
  return Object.fromEntries(names.map((n) => [n, ONE]));
}

function flags(...names: string[]): Record<string, OptionSpec> {
  return Object.fromEntries(names.map((n) => [n, FLAG]));
}

/** A target none of whose options iptables lets be negated. */
function noneInverted(options: Record<string, OptionSpec>): Record<string, OptionSpec> {
  return Object.fromEntries(Object.entries(options).map(([n, o]) => [n, fixed(o)]));
}

const PORT_OPTIONS = { dport: PORT, 'destination-port': PORT, sport: PORT, 'source-port': PORT };
const PORT_ALIASES = { dport: 'destination-port', sport: 'source-port' };
const MARK_ACTIONS = ['set-xmark', 'set-mark', 'and-mark', 'or-mark', 'xor-mark'];
const MARK_OPTIONS = {
  'set-xmark': valued('mark'), 'set-mark': valued('mark'),
  'and-mark': valued('mark-value'), 'or-mark': valued('mark-value'), 'xor-mark': valued('mark-value'),
};
const RECENT_COMMANDS = ['set', 'rcheck', 'update', 'remove'];
const CONNTRACK = [
  'ctstate', 'ctproto', 'ctorigsrc', 'ctorigdst', 'ctreplsrc', 'ctrepldst', 'ctorigsrcport',
  'ctorigdstport', 'ctreplsrcport', 'ctrepldstport', 'ctstatus', 'ctexpire',
];
const PHYSDEV = { 'physdev-in': ONE, 'physdev-out': ONE, ...flags('physdev-is-in', 'physdev-is-out', 'physdev-is-bridged') };

export const MODULES: Readonly<Record<string, OwnerSpec>> = {
  tcp: {
    options: { ...PORT_OPTIONS, 'tcp-flags': TWO, syn: FLAG, 'tcp-option': ONE },
    aliases: PORT_ALIASES, exclusive: [['syn', 'tcp-flags']], protocol: 'tcp', needsProtocol: true,
  },
  udp: { options: PORT_OPTIONS, aliases: PORT_ALIASES, protocol: 'udp', needsProtocol: true },
  udplite: { options: PORT_OPTIONS, aliases: PORT_ALIASES, needsProtocol: true },
  sctp: { options: { ...PORT_OPTIONS, 'chunk-types': ONE }, aliases: PORT_ALIASES, protocol: 'sctp', needsProtocol: true },
  icmp: { options: ones('icmp-type'), oneOf: ['icmp-type'], protocol: 'icmp' },
  icmp6: { options: ones('icmpv6-type'), protocol: 'ipv6-icmp' },
  multiport: {
    options: { dports: PORTS, 'destination-ports': PORTS, sports: PORTS, 'source-ports': PORTS, ports: PORTS },
    aliases: { dports: 'destination-ports', sports: 'source-ports' }, exclusive: [['destination-ports', 'source-ports', 'ports']],
    oneOf: ['dports', 'destination-ports', 'sports', 'source-ports', 'ports'], missing: 'multiport needs --dports, --sports or --ports',
  },
  comment: { options: { comment: fixed({ args: 'words', invert: false }) }, oneOf: ['comment'] },
  addrtype: {
    options: { 'src-type': ONE, 'dst-type': ONE, 'limit-iface-in': fixed(FLAG), 'limit-iface-out': fixed(FLAG) },
    oneOf: ['src-type', 'dst-type'], exclusive: [['limit-iface-in', 'limit-iface-out']],
  },
  conntrack: { options: { ...ones(...CONNTRACK), ctdir: fixed(ONE) }, oneOf: [...CONNTRACK, 'ctdir'] },
  state: { options: ones('state'), oneOf: ['state'] },
  mark: { options: { mark: valued('mark') }, oneOf: ['mark'] },
  connmark: { options: { mark: valued('mark') }, oneOf: ['mark'] },
  statistic: {
    options: {
      mode: fixed(valued('mode')), probability: valued('probability'), every: valued('count-from-1'), packet: fixed(valued('count')),
    },
    oneOf: ['mode'], exclusive: [['probability', 'every'], ['probability', 'packet']],
  },
  recent: {
    options: {
      ...flags(...RECENT_COMMANDS), seconds: fixed(valued('count-from-1')), hitcount: fixed(ONE), reap: fixed(FLAG),
      rttl: fixed(FLAG), name: fixed(ONE), mask: fixed(ONE), rsource: fixed(FLAG), rdest: fixed(FLAG),
    },
    oneOf: RECENT_COMMANDS, exclusive: [RECENT_COMMANDS, ['set', 'rttl'], ['remove', 'rttl']], needs: { reap: 'seconds' },
  },
  set: {
    options: {
      'match-set': TWO, ...flags('return-nomatch', 'update-counters', 'update-subcounters'),
      ...ones('packets-eq', 'packets-lt', 'packets-gt', 'bytes-eq', 'bytes-lt', 'bytes-gt'),
    },
  },
  physdev: { options: PHYSDEV, oneOf: Object.keys(PHYSDEV) },
  socket: { options: flags('transparent', 'nowildcard', 'restore-skmark') },
  nfacct: { options: ones('nfacct-name') },
  limit: { options: { limit: fixed(ONE), 'limit-burst': fixed(ONE) } },
  iprange: { options: ones('src-range', 'dst-range'), oneOf: ['src-range', 'dst-range'] },
  owner: { options: { ...ones('uid-owner', 'gid-owner'), ...flags('socket-exists', 'suppl-groups') } },
  pkttype: { options: ones('pkt-type'), oneOf: ['pkt-type'] },
  length: { options: ones('length') },
  ttl: { options: ones('ttl-eq', 'ttl-gt', 'ttl-lt') },
  rpfilter: { options: flags('loose', 'validmark', 'accept-local', 'invert') },
  devgroup: { options: ones('src-group', 'dst-group') },
  cgroup: { options: ones('path', 'cgroup') },
  string: { options: { ...ones('algo', 'string', 'hex-string', 'from', 'to'), icase: FLAG } },
  hashlimit: {
    options: ones(
      'hashlimit', 'hashlimit-upto', 'hashlimit-above', 'hashlimit-burst', 'hashlimit-mode', 'hashlimit-srcmask',
      'hashlimit-dstmask', 'hashlimit-name', 'hashlimit-htable-size', 'hashlimit-htable-max', 'hashlimit-htable-expire',
      'hashlimit-htable-gcinterval',
    ),
  },
  bpf: { options: ones('bytecode', 'object-pinned') },
  policy: {
    options: { ...ones('dir', 'pol', 'reqid', 'spi', 'proto', 'mode', 'tunnel-src', 'tunnel-dst'), ...flags('strict', 'next') },
    repeats: true,
  },
  u32: { options: ones('u32') },
  helper: { options: ones('helper') },
  dscp: { options: ones('dscp', 'dscp-class') },
  tos: { options: ones('tos') },
  mac: { options: ones('mac-source'), oneOf: ['mac-source'] },
  connlimit: { options: { ...ones('connlimit-upto', 'connlimit-above', 'connlimit-mask'), ...flags('connlimit-saddr', 'connlimit-daddr') } },
};

const CONNMARK_ACTIONS = [...MARK_ACTIONS, 'save-mark', 'restore-mark'];

export const TARGETS: Readonly<Record<string, OwnerSpec>> = {
  ACCEPT: { options: {} },
  DROP: { options: {} },
  RETURN: { options: {} },
  QUEUE: { options: {} },
  REJECT: { options: noneInverted(ones('reject-with')) },
  // iptables-save prints a DNAT or SNAT with several ranges as several --to-destination
  // (--to-source), each with its own --random or --persistent: those repeat.
  DNAT: { options: noneInverted({ 'to-destination': valued('nat-to'), ...flags('random', 'persistent') }), oneOf: ['to-destination'], repeats: true },
  SNAT: {
    options: noneInverted({ 'to-source': valued('nat-to'), ...flags('random', 'random-fully', 'persistent') }), oneOf: ['to-source'], repeats: true,
  },
  MASQUERADE: { options: noneInverted({ 'to-ports': valued('to-ports'), ...flags('random', 'random-fully') }) },
  REDIRECT: { options: noneInverted({ 'to-ports': valued('to-ports'), random: FLAG }) },
  MARK: { options: noneInverted(MARK_OPTIONS), oneOf: MARK_ACTIONS, exclusive: [MARK_ACTIONS] },
  CONNMARK: {
    options: noneInverted({
      ...MARK_OPTIONS, ...flags('save-mark', 'restore-mark'),
      nfmask: valued('mark-value'), ctmask: valued('mark-value'), mask: valued('mark-value'),
    }),
    oneOf: CONNMARK_ACTIONS, exclusive: [CONNMARK_ACTIONS, ['mask', 'nfmask'], ['mask', 'ctmask']],
  },
  LOG: {
    options: noneInverted({ ...ones('log-level', 'log-prefix'), ...flags('log-tcp-sequence', 'log-tcp-options', 'log-ip-options', 'log-uid', 'log-macdecode') }),
  },
  NFLOG: { options: ones('nflog-group', 'nflog-prefix', 'nflog-range', 'nflog-size', 'nflog-threshold') },
  ULOG: { options: ones('ulog-nlgroup', 'ulog-prefix', 'ulog-cprange', 'ulog-qthreshold') },
  NOTRACK: { options: {} },
  CT: { options: { notrack: FLAG, ...ones('helper', 'ctevents', 'expevents', 'zone', 'zone-orig', 'zone-reply', 'timeout') } },
  CHECKSUM: { options: flags('checksum-fill') },
  TCPMSS: { options: { 'set-mss': ONE, 'clamp-mss-to-pmtu': FLAG } },
  NFQUEUE: { options: { ...ones('queue-num', 'queue-balance'), ...flags('queue-bypass', 'fail-open', 'queue-cpu-fanout') } },
  TPROXY: { options: ones('on-port', 'on-ip', 'tproxy-mark') },
  TOS: { options: ones('set-tos', 'and-tos', 'or-tos', 'xor-tos') },
  DSCP: { options: ones('set-dscp', 'set-dscp-class') },
};

/** The matches whose single, non-negated `--dport` (`--destination-port`) is a dispatch key (dispatch.ts). */
const DISPATCH_PORT_MATCHES: ReadonlySet<string> = new Set(['tcp', 'udp', 'sctp']);

/** Is option `name` of match `module`, not negated, a destination port the dispatch index keys rules by? */
export function isDispatchPortOption(module: string, name: string, negated: boolean): boolean {
  return !negated && DISPATCH_PORT_MATCHES.has(module) && canonicalOption(module, name) === 'destination-port';
}

function specOf(owners: Readonly<Record<string, OwnerSpec>>, name: string): OwnerSpec | undefined {
  return Object.hasOwn(owners, name) ? owners[name] : undefined;
}

/** The grammar of match module `name`, or undefined for one svcpath does not know. */
export function moduleSpec(name: string): OwnerSpec | undefined {
  return specOf(MODULES, name);
}

/** The grammar of target `name`, or undefined for a chain or an extension svcpath does not know. */
export function targetSpec(name: string): OwnerSpec | undefined {
  return specOf(TARGETS, name);
}

/** Option `name` of a module's or target's grammar, or undefined. */
export function optionSpec(owner: OwnerSpec, name: string): OptionSpec | undefined {
  return Object.hasOwn(owner.options, name) ? owner.options[name] : undefined;
}

const OPTION_SETS = (owners: Readonly<Record<string, OwnerSpec>>) =>
  new Map(Object.entries(owners).map(([k, v]) => [k, new Set(Object.keys(v.options))] as const));
const MODULE_SETS: ReadonlyMap<string, ReadonlySet<string>> = OPTION_SETS(MODULES);
const TARGET_SETS: ReadonlyMap<string, ReadonlySet<string>> = OPTION_SETS(TARGETS);

/** true: the module takes it; false: a known module that does not; 'unknown': we don't know the module. */
export function moduleTakesOption(module: string, option: string): boolean | 'unknown' {
  const options = MODULE_SETS.get(module);
  return options ? options.has(option) : 'unknown';
}

export function targetTakesOption(target: string, option: string): boolean | 'unknown' {
  const options = TARGET_SETS.get(target);
  return options ? options.has(option) : 'unknown';
}

export function isKnownTarget(name: string): boolean {
  return TARGET_SETS.has(name);
}

export function isKnownModule(name: string): boolean {
  return MODULE_SETS.has(name);
}

/** Every known match module with the options it takes. */
export function knownModules(): ReadonlyMap<string, ReadonlySet<string>> {
  return MODULE_SETS;
}

/** Every known target with the options it takes. */
export function knownTargets(): ReadonlyMap<string, ReadonlySet<string>> {
  return TARGET_SETS;
}

/** The options of the implicit module `-p NAME` brings (`-p tcp --dport 80`), by protocol. */
export const PROTOCOL_MODULE_OPTIONS: Readonly<Record<string, readonly string[]>> = Object.fromEntries(
  Object.values(MODULES).filter((m) => m.protocol !== undefined).map((m) => [m.protocol!, Object.keys(m.options)]),
);

/** The name option `name` of `owner` (a module or target) has when it has two (`--dport` is `--destination-port`). */
export function canonicalOption(owner: string, name: string): string {
  const aliases = (specOf(MODULES, owner) ?? specOf(TARGETS, owner))?.aliases;
  return (aliases && Object.hasOwn(aliases, name) ? aliases[name] : undefined) ?? name;
}

/** Do options a and b (canonical names) of `owner` exclude each other? */
export function excludeEachOther(owner: string, a: string, b: string): boolean {
  const groups = (specOf(MODULES, owner) ?? specOf(TARGETS, owner))?.exclusive;
  return groups !== undefined && groups.some((g) => g.includes(a) && g.includes(b));
}

/**
 * Every option name of any known module or target, with the options it may not stand beside in
 * the same match (itself, its other name, those it excludes), over all owners: what the fast
 * reader declines when it sees two of them in one match.
 */
export function clashingOptions(): ReadonlyMap<string, ReadonlySet<string>> {
  const out = new Map<string, Set<string>>();
  const clash = (a: string, b: string) => {
    if (!out.has(a)) out.set(a, new Set([a]));
    out.get(a)!.add(b);
  };
  for (const sets of [MODULE_SETS, TARGET_SETS]) {
    for (const [owner, names] of sets) {
      for (const a of names) {
        clash(a, a);
        for (const b of names) {
          const ca = canonicalOption(owner, a);
          const cb = canonicalOption(owner, b);
          if (ca === cb || excludeEachOther(owner, ca, cb)) clash(a, b);
        }
      }
    }
  }
  return out;
}

/**
 * How many arguments option `name` of `owner` (a known match or target) takes; null when svcpath
 * does not know the owner. 'words': one, and the words after it up to the next option: kube-proxy's
 * own test dumps write comments without quotes (`--comment kubernetes service portals`), which
 * iptables would refuse; svcpath reads them.
 */
export function optionArity(owner: string, name: string): 0 | 1 | 2 | 'words' | null {
  const spec = specOf(MODULES, owner) ?? specOf(TARGETS, owner);
  if (!spec) return null;
  return optionSpec(spec, name)?.args ?? 1;
}
