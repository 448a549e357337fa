/**
 * Option values iptables checks when it reads a rule, read the way it reads them, so that svcpath
 * refuses what iptables-restore refuses and takes the numbers it takes (the expectations in
 * test/engine/netfilter/values.test.ts are what iptables-restore v1.8.9 said).
 */
import { parseIPv4 } from '../net/address.ts';
import { readPort, readUnsigned } from '../net/port.ts';

/**
 * `--probability`: C's strtod on the whole word (decimal with an exponent, `.5`, hexadecimal
 * floats such as 0x0.8p0, inf, nan), then at least 0 and at most 1. NaN passes iptables' range
 * check (it stores 0). 'invalid' for what iptables refuses.
 */
export function readProbability(text: string): number | 'invalid' {
  const v = strtod(text);
  if (v === null) return 'invalid';
  return Number.isNaN(v) || (v >= 0 && v <= 1) ? v : 'invalid';
}

/** readProbability as a number: NaN (which the kernel's quantisation makes 0) for what iptables refuses. */
export function probabilityValue(text: string): number {
  const p = readProbability(text);
  return p === 'invalid' ? NaN : p;
}

const DECIMAL = /^[ \t\n\v\f\r]*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const HEXADECIMAL = /^[ \t\n\v\f\r]*([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?\d+))?$/;
const SPECIAL = /^[ \t\n\v\f\r]*([+-]?)(inf|infinity|nan(\([0-9A-Za-z_]*\))?)$/i;

/** C's strtod when it reads the whole word; null when it does not. */
function strtod(text: string): number | null {
  if (DECIMAL.test(text)) return Number(text.trim());
  const hex = HEXADECIMAL.exec(text);
  if (hex) {
    const [, sign, whole, fraction = '', exponent = '0'] = hex;
    if (whole === '' && fraction === '') return null;
    let v = 0;
    for (const d of whole + fraction) v = v * 16 + parseInt(d, 16);
    v *= 2 ** (Number(exponent) - 4 * fraction.length);
    return sign === '-' ? -v : v;
  }
  const special = SPECIAL.exec(text);
  if (special) {
    if (special[2].toLowerCase().startsWith('nan')) return NaN;
    return special[1] === '-' ? -Infinity : Infinity;
  }
  return null;
}

/** What `--to-destination` / `--to-source` names: addresses and ports, or iptables' error. */
export interface NatTo {
  /** The first and last address ('' when the word names ports only, `:80`). */
  readonly ipLo: string;
  readonly ipHi: string;
  /** The port range; null bounds are service names (looked up where the rules are loaded); both null without ports. */
  readonly portLo: number | null;
  readonly portHi: number | null;
  readonly hasPorts: boolean;
}

/** `ip[-ip][:port[-port]]` for IPv4, as iptables' NAT targets read it. */
export function readNatTo(text: string): NatTo | { error: string } {
  const colon = text.indexOf(':');
  if (colon >= 0 && text.indexOf(':', colon + 1) >= 0) return { error: `Bad IP address "${text}"` };
  const ips = colon >= 0 ? text.slice(0, colon) : text;
  let ipLo = '';
  let ipHi = '';
  if (ips !== '') {
    const dash = ips.indexOf('-');
    ipLo = dash >= 0 ? ips.slice(0, dash) : ips;
    ipHi = dash >= 0 ? ips.slice(dash + 1) : ips;
    for (const ip of [ipLo, ipHi]) if (!canonicalIPv4(ip)) return { error: `Bad IP address "${ip}"` };
  }
  if (colon < 0) return { ipLo, ipHi, portLo: null, portHi: null, hasPorts: false };
  const ports = readNatPortRange(text.slice(colon + 1));
  if ('error' in ports) return ports;
  return { ipLo, ipHi, portLo: ports.lo, portHi: ports.hi, hasPorts: true };
}

/** The first address and port a NAT target's `--to-destination` / `--to-source` names, for either family. */
export interface NatAddress {
  readonly ip: string | null;
  readonly port: number | null;
  /** The word names more than one address or port (the kernel picks one per connection). */
  readonly range: boolean;
  /** A port is a service name (looked up in /etc/services where the rules are loaded). */
  readonly serviceName?: boolean;
}

/**
 * `--to-destination` / `--to-source` as the rule has it: IPv4 as iptables reads it (ports such as
 * 0x50 or 0120 are 80); IPv6 as `[addr]:port` or a bare address.
 */
export function readNatAddress(text: string | undefined): NatAddress {
  if (!text) return { ip: null, port: null, range: false };
  if (!text.includes('[') && text.indexOf(':') === text.lastIndexOf(':')) {
    const read = readNatTo(text);
    if (!('error' in read)) {
      return {
        ip: read.ipLo || null,
        port: read.portLo,
        range: read.ipHi !== read.ipLo || read.portHi !== read.portLo,
        serviceName: read.hasPorts && (read.portLo === null || read.portHi === null),
      };
    }
  }
  let addr = text;
  let port: string | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    addr = text.slice(1, close);
    port = text.slice(close + 1).replace(/^:/, '') || undefined;
  } else if ((text.match(/:/g) ?? []).length === 1) {
    [addr, port] = text.split(':');
  }
  const [ipLo, ipHi] = addr.split('-');
  const [pLo, pHi] = (port ?? '').split('-');
  return {
    ip: ipLo || null,
    port: pLo ? Number(pLo) : null,
    range: (ipHi !== undefined && ipHi !== ipLo) || (pHi !== undefined && pHi !== pLo),
  };
}

/**
 * The ports after the colon of a NAT address (and of `--to-ports`), as iptables 1.8.9 reads them: `p`, `p-q` or
 * `p-q/base`, each a number as strtoul reads it in base 0 (0120 and 0x50 are 80); a service name
 * only alone (null: looked up where the rules are loaded).
 */
export function readNatPortRange(text: string): { lo: number | null; hi: number | null } | { error: string } {
  const slash = text.indexOf('/');
  const range = slash < 0 ? text : text.slice(0, slash);
  const dash = range.indexOf('-');
  if (slash >= 0) {
    // A base follows a range only.
    if (dash < 0) return { error: natPort(range) !== null ? `Garbage after port value: \`${text.slice(slash)}'` : `Port \`${text}' not valid` };
    const base = text.slice(slash + 1);
    if (!natBase(base)) return { error: `Port \`${base}' not valid` };
  }
  if (dash < 0) {
    const port = natPort(range);
    if (port !== null) return { lo: port, hi: port };
    // A word that starts like a number is read as one (out of range, or with garbage after it).
    const number = /^[ \t\n\v\f\r]*\+?(0[xX][0-9a-fA-F]+|\d+)/.exec(range);
    if (number) {
      const rest = range.slice(number[0].length);
      return { error: rest === '' ? `Port \`${range}' not valid` : `Garbage after port value: \`${rest}'` };
    }
    return readPort(range) === 'name' ? { lo: null, hi: null } : { error: `Port \`${range}' not valid` };
  }
  const loText = range.slice(0, dash);
  const hiText = range.slice(dash + 1);
  const lo = natPort(loText);
  const hi = natPort(hiText);
  if (lo === null) return { error: `Port \`${range}' not valid` };
  if (hi === null) return { error: `Port \`${hiText}' not valid` };
  if (hi < lo) return { error: `Port range \`${hiText}' funky` };
  return { lo, hi };
}

/**
 * The base of a shifted NAT port range (`p-q/base`), as iptables 1.8.9 takes it: the number at
 * the start of the word as strtoul reads it in base 0, from 1 to 65535, whatever follows (`1x`
 * passes), or a service name.
 */
function natBase(text: string): boolean {
  const number = /^[ \t\n\v\f\r]*\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)/.exec(text);
  if (!number) return readPort(text) === 'name';
  const v = readUnsigned(number[0]);
  return v !== null && v >= 1 && v <= 65535;
}

/** A NAT port number: strtoul in base 0 on the whole word, at most 65535. */
function natPort(text: string): number | null {
  const v = readUnsigned(text);
  return v !== null && v <= 65535 ? v : null;
}

/** Dotted decimal with four parts and no leading zeros, as iptables' NAT targets take it. */
function canonicalIPv4(text: string): boolean {
  return parseIPv4(text) !== null && !/(^|\.)0\d/.test(text);
}

/** The protocols (-p) a NAT target may name ports with. */
export const NAT_PORT_PROTOCOLS: ReadonlySet<string> = new Set(['tcp', 'udp', 'sctp', 'dccp', 'icmp']);

/** A 32-bit number as iptables reads marks: decimal, 0x hexadecimal or 0 octal (xtables_strtoui); null for what it refuses. */
export function readNumber32(text: string): number | null {
  const v = readUnsigned(text);
  return v !== null && v <= 0xffffffff ? v : null;
}

/** `value[/mask]` of mark options (xtables_parse_mark_mask); mask null when not written; null for what iptables refuses. */
export function readMark(text: string): { value: number; mask: number | null } | null {
  const slash = text.indexOf('/');
  const value = readNumber32(slash < 0 ? text : text.slice(0, slash));
  if (value === null) return null;
  if (slash < 0) return { value, mask: null };
  const mask = readNumber32(text.slice(slash + 1));
  return mask === null ? null : { value, mask };
}
