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
