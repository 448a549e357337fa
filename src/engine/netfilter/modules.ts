/**
 * What svcpath knows about match modules and targets: which options each takes (to give each
 * `--option` to its owner) and which ones the tracer models. Unknown modules and targets are kept
 * and reported as "not modelled", never dropped.
 */

const MODULE_OPTIONS: Readonly<Record<string, readonly string[]>> = {
  tcp: ['dport', 'destination-port', 'sport', 'source-port', 'tcp-flags', 'syn', 'tcp-option'],
  udp: ['dport', 'destination-port', 'sport', 'source-port'],
  udplite: ['dport', 'destination-port', 'sport', 'source-port'],
  sctp: ['dport', 'destination-port', 'sport', 'source-port', 'chunk-types'],
  icmp: ['icmp-type'],
  icmp6: ['icmpv6-type'],
  multiport: ['dports', 'destination-ports', 'sports', 'source-ports', 'ports'],
  comment: ['comment'],
  addrtype: ['src-type', 'dst-type', 'limit-iface-in', 'limit-iface-out'],
  conntrack: [
    'ctstate', 'ctproto', 'ctorigsrc', 'ctorigdst', 'ctreplsrc', 'ctrepldst', 'ctorigsrcport',
    'ctorigdstport', 'ctreplsrcport', 'ctrepldstport', 'ctstatus', 'ctexpire', 'ctdir',
  ],
  state: ['state'],
  mark: ['mark'],
  connmark: ['mark'],
  statistic: ['mode', 'probability', 'every', 'packet'],
  recent: ['set', 'rcheck', 'update', 'remove', 'seconds', 'hitcount', 'reap', 'rttl', 'name', 'mask', 'rsource', 'rdest'],
  set: ['match-set', 'return-nomatch', 'update-counters', 'update-subcounters', 'packets-eq', 'packets-lt', 'packets-gt', 'bytes-eq', 'bytes-lt', 'bytes-gt'],
  physdev: ['physdev-in', 'physdev-out', 'physdev-is-in', 'physdev-is-out', 'physdev-is-bridged'],
  socket: ['transparent', 'nowildcard', 'restore-skmark'],
  nfacct: ['nfacct-name'],
  limit: ['limit', 'limit-burst'],
  iprange: ['src-range', 'dst-range'],
  owner: ['uid-owner', 'gid-owner', 'socket-exists', 'suppl-groups'],
  pkttype: ['pkt-type'],
  length: ['length'],
  ttl: ['ttl-eq', 'ttl-gt', 'ttl-lt'],
  rpfilter: ['loose', 'validmark', 'accept-local', 'invert'],
  devgroup: ['src-group', 'dst-group'],
  cgroup: ['path', 'cgroup'],
  string: ['algo', 'string', 'hex-string', 'from', 'to', 'icase'],
  hashlimit: [
    'hashlimit', 'hashlimit-upto', 'hashlimit-above', 'hashlimit-burst', 'hashlimit-mode', 'hashlimit-srcmask',
    'hashlimit-dstmask', 'hashlimit-name', 'hashlimit-htable-size', 'hashlimit-htable-max', 'hashlimit-htable-expire',
    'hashlimit-htable-gcinterval',
  ],
  bpf: ['bytecode', 'object-pinned'],
  policy: ['dir', 'pol', 'strict', 'reqid', 'spi', 'proto', 'mode', 'tunnel-src', 'tunnel-dst', 'next'],
  u32: ['u32'],
  helper: ['helper'],
  dscp: ['dscp', 'dscp-class'],
  tos: ['tos'],
  mac: ['mac-source'],
  connlimit: ['connlimit-upto', 'connlimit-above', 'connlimit-mask', 'connlimit-saddr', 'connlimit-daddr'],
};

/** The matches whose port options iptables checks when it reads them (net/port.ts). */
export const PORT_MATCHES: ReadonlySet<string> = new Set(['tcp', 'udp', 'udplite', 'sctp']);
/** The matches whose single `--dport` is a dispatch key for tracing (compile.ts). */
export const DISPATCH_PORT_MATCHES: ReadonlySet<string> = new Set(['tcp', 'udp', 'sctp']);

export const PROTOCOL_MODULE_OPTIONS: Readonly<Record<string, readonly string[]>> = {
  tcp: MODULE_OPTIONS.tcp,
  udp: MODULE_OPTIONS.udp,
  sctp: MODULE_OPTIONS.sctp,
  icmp: MODULE_OPTIONS.icmp,
  'ipv6-icmp': MODULE_OPTIONS.icmp6,
};

const TARGET_OPTIONS: Readonly<Record<string, readonly string[]>> = {
  ACCEPT: [],
  DROP: [],
  RETURN: [],
  QUEUE: [],
  REJECT: ['reject-with'],
  DNAT: ['to-destination', 'random', 'persistent'],
  SNAT: ['to-source', 'random', 'random-fully', 'persistent'],
  MASQUERADE: ['to-ports', 'random', 'random-fully'],
  REDIRECT: ['to-ports', 'random'],
  MARK: ['set-xmark', 'set-mark', 'and-mark', 'or-mark', 'xor-mark'],
  CONNMARK: ['set-xmark', 'set-mark', 'and-mark', 'or-mark', 'xor-mark', 'save-mark', 'restore-mark', 'nfmask', 'ctmask', 'mask'],
  LOG: ['log-level', 'log-prefix', 'log-tcp-sequence', 'log-tcp-options', 'log-ip-options', 'log-uid', 'log-macdecode'],
  NFLOG: ['nflog-group', 'nflog-prefix', 'nflog-range', 'nflog-size', 'nflog-threshold'],
  ULOG: ['ulog-nlgroup', 'ulog-prefix', 'ulog-cprange', 'ulog-qthreshold'],
  NOTRACK: [],
  CT: ['notrack', 'helper', 'ctevents', 'expevents', 'zone', 'zone-orig', 'zone-reply', 'timeout'],
  CHECKSUM: ['checksum-fill'],
  TCPMSS: ['set-mss', 'clamp-mss-to-pmtu'],
  NFQUEUE: ['queue-num', 'queue-balance', 'queue-bypass', 'fail-open', 'queue-cpu-fanout'],
  TPROXY: ['on-port', 'on-ip', 'tproxy-mark'],
  TOS: ['set-tos', 'and-tos', 'or-tos', 'xor-tos'],
  DSCP: ['set-dscp', 'set-dscp-class'],
};

/** true: the module takes it; false: a known module that does not; 'unknown': we don't know the module. */
const MODULE_SETS = new Map(Object.entries(MODULE_OPTIONS).map(([k, v]) => [k, new Set(v)]));
const TARGET_SETS = new Map(Object.entries(TARGET_OPTIONS).map(([k, v]) => [k, new Set(v)]));

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

/**
 * iptables takes each option of a match or target once per `-m` (or target), as checked in
 * iptables 1.8.9 ("option --x can only be used once"). Some options are one option under two
 * names, and some exclude each other; `policy` repeats its options after `--next`.
 */
export const REPEATABLE_MODULES: ReadonlySet<string> = new Set(['policy']);

const PORT_ALIASES = { dport: 'destination-port', sport: 'source-port' };
const OPTION_ALIASES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  tcp: PORT_ALIASES,
  udp: PORT_ALIASES,
  udplite: PORT_ALIASES,
  sctp: PORT_ALIASES,
  multiport: { dports: 'destination-ports', sports: 'source-ports' },
};

const MARK_ACTIONS = ['set-xmark', 'set-mark', 'and-mark', 'or-mark', 'xor-mark'];
/** What -m recent does: a rule gives exactly one of these. */
export const RECENT_COMMANDS: readonly string[] = ['set', 'rcheck', 'update', 'remove'];
/** Options iptables refuses to negate, by module, and the targets none of whose options it negates (checked in iptables 1.8.9). */
export const NOT_INVERTIBLE: Readonly<Record<string, ReadonlySet<string>>> = {
  comment: new Set(['comment']),
  statistic: new Set(['mode', 'packet']),
  recent: new Set(['name', 'seconds', 'hitcount', 'reap', 'rttl', 'rsource', 'rdest', 'mask']),
  limit: new Set(['limit', 'limit-burst']),
  addrtype: new Set(['limit-iface-in', 'limit-iface-out']),
  conntrack: new Set(['ctdir']),
};
export const NOT_INVERTIBLE_TARGETS: ReadonlySet<string> = new Set(['REJECT', 'LOG', 'MASQUERADE', 'REDIRECT', 'MARK', 'CONNMARK', 'DNAT', 'SNAT']);

/**
 * Matches and targets that must be given at least one of some options (checked in iptables
 * 1.8.9: "option --state must be specified", "At least one option is required"…).
 */
export const REQUIRED_OPTIONS: Readonly<Record<string, readonly string[]>> = {
  comment: ['comment'],
  recent: RECENT_COMMANDS,
  state: ['state'],
  mark: ['mark'],
  connmark: ['mark'],
  conntrack: MODULE_OPTIONS.conntrack,
  addrtype: ['src-type', 'dst-type'],
  icmp: ['icmp-type'],
  pkttype: ['pkt-type'],
  iprange: ['src-range', 'dst-range'],
  physdev: MODULE_OPTIONS.physdev,
  mac: ['mac-source'],
  MARK: MARK_ACTIONS,
  CONNMARK: [...MARK_ACTIONS, 'save-mark', 'restore-mark'],
};
/** Options of one match or target of which a rule may give only one (after aliases). */
const EXCLUSIVE_OPTIONS: Readonly<Record<string, readonly (readonly string[])[]>> = {
  tcp: [['syn', 'tcp-flags']],
  multiport: [['destination-ports', 'source-ports', 'ports']],
  recent: [RECENT_COMMANDS, ['set', 'rttl'], ['remove', 'rttl']],
  addrtype: [['limit-iface-in', 'limit-iface-out']],
  statistic: [['probability', 'every'], ['probability', 'packet']],
  MARK: [MARK_ACTIONS],
  CONNMARK: [[...MARK_ACTIONS, 'save-mark', 'restore-mark'], ['mask', 'nfmask'], ['mask', 'ctmask']],
};

/** The name option `name` of `owner` (a module or target) has when it has two (`--dport` is `--destination-port`). */
export function canonicalOption(owner: string, name: string): string {
  const aliases = OPTION_ALIASES[owner];
  return (aliases && Object.hasOwn(aliases, name) ? aliases[name] : undefined) ?? name;
}

/** Do options a and b (canonical names) of `owner` exclude each other? */
export function excludeEachOther(owner: string, a: string, b: string): boolean {
  const groups = Object.hasOwn(EXCLUSIVE_OPTIONS, owner) ? EXCLUSIVE_OPTIONS[owner] : undefined;
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
 * Options of known matches and targets that take no argument, or two (iptables reads the first
 * argument of an option as getopt does: the next word, whatever it looks like, so that
 * `--log-prefix -x` and `--comment -j` are what iptables-save prints for those values). Every
 * other option of a known match or target takes one.
 */
const NO_ARGUMENT: Readonly<Record<string, readonly string[]>> = {
  tcp: ['syn'],
  recent: ['set', 'rcheck', 'update', 'remove', 'reap', 'rttl', 'rsource', 'rdest'],
  set: ['return-nomatch', 'update-counters', 'update-subcounters'],
  physdev: ['physdev-is-in', 'physdev-is-out', 'physdev-is-bridged'],
  socket: ['transparent', 'nowildcard', 'restore-skmark'],
  owner: ['socket-exists', 'suppl-groups'],
  rpfilter: ['loose', 'validmark', 'accept-local', 'invert'],
  string: ['icase'],
  policy: ['strict', 'next'],
  connlimit: ['connlimit-saddr', 'connlimit-daddr'],
  addrtype: ['limit-iface-in', 'limit-iface-out'],
  DNAT: ['random', 'persistent'],
  SNAT: ['random', 'random-fully', 'persistent'],
  MASQUERADE: ['random', 'random-fully'],
  REDIRECT: ['random'],
  CONNMARK: ['save-mark', 'restore-mark'],
  LOG: ['log-tcp-sequence', 'log-tcp-options', 'log-ip-options', 'log-uid', 'log-macdecode'],
  CT: ['notrack'],
  CHECKSUM: ['checksum-fill'],
  TCPMSS: ['clamp-mss-to-pmtu'],
  NFQUEUE: ['queue-bypass', 'fail-open', 'queue-cpu-fanout'],
};
const TWO_ARGUMENTS: Readonly<Record<string, readonly string[]>> = {
  tcp: ['tcp-flags'],
  set: ['match-set'],
};

/**
 * How many arguments option `name` of `owner` (a known match or target) takes; null when svcpath
 * does not know the owner. 'words': one, and the words after it up to the next option: kube-proxy's
 * own test dumps write comments without quotes (`--comment kubernetes service portals`), which
 * iptables would refuse; svcpath reads them.
 */
export function optionArity(owner: string, name: string): 0 | 1 | 2 | 'words' | null {
  if (!MODULE_SETS.has(owner) && !TARGET_SETS.has(owner)) return null;
  if (owner === 'comment' && name === 'comment') return 'words';
  if (Object.hasOwn(NO_ARGUMENT, owner) && NO_ARGUMENT[owner].includes(name)) return 0;
  if (Object.hasOwn(TWO_ARGUMENTS, owner) && TWO_ARGUMENTS[owner].includes(name)) return 2;
  return 1;
}
