/**
 * Ports as iptables reads them (xtables_parse_port): first as a number the way C's strtoumax does
 * with base 0, which takes `0x50` as hexadecimal and `0120` as octal (both are port 80), allows
 * blanks and a '+' before it but not a '-', and must use the whole word; the number must be at
 * most 65535. Anything else is looked up as a service name in /etc/services of the machine that
 * loads the rules, which svcpath cannot see. iptables-save always prints decimal numbers.
 */

/** What a port word is: its number, a service name (kept, not resolved), or an error. */
export type PortWord = number | 'name' | 'invalid';

const C_BLANK = /^[ \t\n\v\f\r]*/;
/** Words only a number could be: iptables rejects them when they are not a valid port. */
const NUMERIC = /^[ \t\n\v\f\r]*[+-]?(0[xX][0-9a-fA-F]*|[0-9]+)$/;
/** Words that could be names in /etc/services. */
const SERVICE = /^[A-Za-z0-9][A-Za-z0-9._+/-]*$/;

/** The port a word names, read as iptables reads it. */
export function readPort(text: string): PortWord {
  const n = readUnsigned(text);
  if (n !== null) return n <= 65535 ? n : 'invalid';
  return SERVICE.test(text) && !NUMERIC.test(text) ? 'name' : 'invalid';
}

/**
 * C's strtoumax(text, &end, 0) when it reads the whole word and no '-' leads it (as iptables'
 * xtables_strtoul does), else null. Values past 2^32 come back as 2^32.
 */
export function readUnsigned(text: string): number | null {
  let i = C_BLANK.exec(text)![0].length;
  if (text.charCodeAt(i) === 0x2b /* + */) i++;
  let base = 10;
  if (text.charCodeAt(i) === 0x30 /* 0 */) {
    const x = text.charCodeAt(i + 1) | 0x20;
    if (x === 0x78 /* x */ && isDigit(text.charCodeAt(i + 2), 16)) {
      base = 16;
      i += 2;
    } else {
      base = 8;
    }
  }
  if (i >= text.length) return null;
  let v = 0;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (!isDigit(c, base)) return null;
    v = v * base + digitValue(c);
    // Anything past 65535 is out of range; stop before the number loses precision.
    if (v > 0xffffffff) v = 0xffffffff + 1;
  }
  return v;
}

function isDigit(c: number, base: number): boolean {
  const v = digitValue(c);
  return v >= 0 && v < base;
}

function digitValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

/**
 * A udp (or udplite) port as iptables 1.8.9 reads it, which differs from tcp and sctp: decimal only,
 * with a sign if any (leading zeros allowed: 0120 is 120), read as C's strtol into an int, refused
 * when that int is negative (2147483648 and -1 are), then cut to 16 bits (99999 is 34463,
 * 4294967376 is 80); else a service name.
 */
export function readUdpPort(text: string): PortWord {
  const m = /^[ \t\n\v\f\r]*([+-]?)(\d+)$/.exec(text);
  if (m) {
    // strtol: a long, saturated at its bounds; then an int, refused when negative; then 16 bits.
    let v = BigInt(m[2]) * (m[1] === '-' ? -1n : 1n);
    if (v > LONG_MAX) v = LONG_MAX;
    if (v < LONG_MIN) v = LONG_MIN;
    const int = BigInt.asIntN(32, v);
    return int < 0n ? 'invalid' : Number(int) & 0xffff;
  }
  return SERVICE.test(text) && !NUMERIC.test(text) ? 'name' : 'invalid';
}

const LONG_MAX = 2n ** 63n - 1n;
const LONG_MIN = -(2n ** 63n);

/**
 * A port or range of a tcp, udp, udplite or sctp match as iptables reads it: `80`, `80:90`,
 * `:90`, `1024:` (the word is split at its first colon). The range, or the error iptables gives;
 * null bounds are service names. tcp and sctp refuse a range whose minimum is above its maximum;
 * udp takes it (and matches nothing with it).
 */
export function readPortRange(text: string, module = 'tcp'): { range: [number | null, number | null] } | { error: string } {
  const udp = module === 'udp' || module === 'udplite';
  const read = udp ? readUdpPort : readPort;
  const invalid = (word: string) => ({ error: udp ? `Port "${word}" does not resolve to anything.` : `invalid port/service \`${word}' specified` });
  const colon = text.indexOf(':');
  if (colon < 0) {
    const p = read(text);
    if (p === 'invalid') return invalid(text);
    return { range: p === 'name' ? [null, null] : [p, p] };
  }
  const loText = text.slice(0, colon);
  const hiText = text.slice(colon + 1);
  const lo = loText === '' ? 0 : read(loText);
  const hi = hiText === '' ? 65535 : read(hiText);
  if (lo === 'invalid') return invalid(loText);
  if (hi === 'invalid') return invalid(hiText);
  if (!udp && typeof lo === 'number' && typeof hi === 'number' && lo > hi) return { error: 'invalid portrange (min > max)' };
  return { range: [lo === 'name' ? null : lo, hi === 'name' ? null : hi] };
}
