/**
 * IPv4/IPv6 address arithmetic for matching. IPv4 addresses are unsigned 32-bit numbers;
 * IPv6 addresses are bigints. Pure functions, no node:net.
 */
import type { Cidr, Family } from '../netfilter/ast.ts';

export function parseIPv4(text: string): number | null {
  let value = 0;
  let octets = 0;
  let current = -1;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (current < 0 || current > 255) return null;
      value = value * 256 + current;
      octets++;
      current = -1;
      continue;
    }
    if (c < 0x30 || c > 0x39) return null;
    current = current < 0 ? c - 0x30 : current * 10 + (c - 0x30);
    if (current > 255) return null;
  }
  return octets === 4 ? value : null;
}

export function formatIPv4(value: number): string {
  return `${(value >>> 24) & 255}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

export function parseIPv6(text: string): bigint | null {
  if (text.length < 2 || text.indexOf(':') < 0) return null;
  let head = text;
  let tailV4: number | null = null;
  const lastColon = text.lastIndexOf(':');
  if (text.indexOf('.', lastColon) > 0) {
    tailV4 = parseIPv4(text.slice(lastColon + 1));
    if (tailV4 === null) return null;
    head = text.slice(0, lastColon + 1) + '0:0';
  }
  const halves = head.split('::');
  if (halves.length > 2) return null;
  const parseGroups = (s: string): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = parseGroups(halves[0]);
  const right = halves.length === 2 ? parseGroups(halves[1]) : [];
  if (!left || !right) return null;
  const missing = 8 - left.length - right.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...left, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...right];
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  if (tailV4 !== null) value = (value & ~0xffffffffn) | BigInt(tailV4);
  return value;
}

export function formatIPv6(value: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function familyOf(address: string): Family | null {
  if (parseIPv4(address) !== null) return 'ipv4';
  if (parseIPv6(address) !== null) return 'ipv6';
  return null;
}

function maskToPrefix(mask: string, family: Family): number | null {
  if (/^\d+$/.test(mask)) {
    const p = Number(mask);
    return p <= (family === 'ipv4' ? 32 : 128) ? p : null;
  }
  if (family !== 'ipv4') return null;
  const m = parseIPv4(mask);
  if (m === null) return null;
  let prefix = 0;
  while (prefix < 32 && ((m >>> (31 - prefix)) & 1) === 1) prefix++;
  const expected = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return expected === m ? prefix : null;
}

/** `a.b.c.d`, `a.b.c.d/len`, `a.b.c.d/mask` or an IPv6 form; null if not an address. */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const v4 = parseIPv4(addr);
  const family: Family | null = v4 !== null ? 'ipv4' : parseIPv6(addr) !== null ? 'ipv6' : null;
  if (!family) return null;
  const prefix = slash < 0 ? (family === 'ipv4' ? 32 : 128) : maskToPrefix(text.slice(slash + 1), family);
  if (prefix === null) return null;
  if (family === 'ipv4') {
    const masked = prefix === 0 ? 0 : (v4! & ((0xffffffff << (32 - prefix)) >>> 0)) >>> 0;
    // Most addresses are already canonical network addresses: keep the text as written.
    const canonical = masked === v4 && !/(^|\.)0\d/.test(addr);
    return { family, address: canonical ? addr : formatIPv4(masked), prefix };
  }
  const bits = parseIPv6(addr)!;
  const mask = prefix === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - prefix)) - 1n);
  return { family, address: formatIPv6(bits & mask), prefix };
}

export function formatCidr(c: Cidr): string {
  return `${c.address}/${c.prefix}`;
}

/** A compiled CIDR test: does `address` (already parsed) fall inside? */
export interface CidrTest {
  readonly family: Family;
  contains(address: string): boolean;
}

export function cidrTest(c: Cidr): CidrTest {
  if (c.family === 'ipv4') {
    const base = parseIPv4(c.address)!;
    const mask = c.prefix === 0 ? 0 : (0xffffffff << (32 - c.prefix)) >>> 0;
    return {
      family: 'ipv4',
      contains(address: string) {
        const a = parseIPv4(address);
        return a !== null && ((a & mask) >>> 0) === base;
      },
    };
  }
  const base = parseIPv6(c.address)!;
  const mask = c.prefix === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - c.prefix)) - 1n);
  return {
    family: 'ipv6',
    contains(address: string) {
      const a = parseIPv6(address);
      return a !== null && (a & mask) === base;
    },
  };
}

/** Canonical text of a single address (IPv6 compressed, IPv4 as is); null if invalid. */
export function canonicalAddress(text: string): string | null {
  if (parseIPv4(text) !== null) return text;
  const v6 = parseIPv6(text);
  return v6 === null ? null : formatIPv6(v6);
}

/** An address and port as Go's net.JoinHostPort writes them: "ip:port", "[ip]:port" for IPv6. */
export function hostPort(ip: string, port: number | string): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
