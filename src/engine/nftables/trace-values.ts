/**
 * Values as the nftables tracer compares them. The kernel compares registers of bytes; here every
 * scalar is a bigint (addresses, ports, protocols, marks, state bits) or a string (interface
 * names), and a concatenation is a list of them. What a constant means depends on the datatype
 * of the expression it is compared with (`tcp` is 6 against `meta l4proto`), so constants are
 * read with that datatype.
 */
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from '../net/address.ts';

export type Scalar = bigint | string;
export type Value = Scalar | readonly Scalar[];

export type DataType =
  | 'ipv4_addr' | 'ipv6_addr' | 'inet_proto' | 'inet_service' | 'mark' | 'ifname' | 'ct_state'
  | 'fib_addrtype' | 'nf_proto' | 'ether_type' | 'integer' | 'verdict' | 'unknown';

/** Protocol numbers nft knows by name (/etc/protocols). */
const PROTOCOLS: Readonly<Record<string, number>> = { icmp: 1, igmp: 2, tcp: 6, udp: 17, gre: 47, esp: 50, ah: 51, icmpv6: 58, 'ipv6-icmp': 58, sctp: 132, udplite: 136 };
const PROTOCOL_NAMES = new Map(Object.entries(PROTOCOLS).map(([k, v]) => [v, k]));

/** Service names nft resolves for ports (a few; numbers are what kube-proxy writes). */
const SERVICES: Readonly<Record<string, number>> = { ssh: 22, domain: 53, http: 80, https: 443, 'kube-dns': 53, ntp: 123, snmp: 161, bgp: 179 };

/** conntrack state bits (nf_conntrack_common.h: NF_CT_STATE_BIT(ctinfo), INVALID and UNTRACKED). */
export const CT_STATE: Readonly<Record<string, number>> = { invalid: 1, established: 2, related: 4, new: 8, untracked: 64 };

/** fib address types (RTN_*): `fib daddr type local`. */
const FIB_TYPES: Readonly<Record<string, number>> = {
  unspec: 0, unicast: 1, local: 2, broadcast: 3, anycast: 4, multicast: 5, blackhole: 6, unreachable: 7, prohibit: 8,
};
export const RTN_UNICAST = 1n;
export const RTN_LOCAL = 2n;

const NF_PROTO: Readonly<Record<string, number>> = { ipv4: 2, ipv6: 10 };
const ETHER_TYPE: Readonly<Record<string, number>> = { ip: 0x0800, ip6: 0x86dd, arp: 0x0806, vlan: 0x8100 };

function integer(text: string): bigint | null {
  if (/^\d+$/.test(text)) return BigInt(text);
  if (/^0x[0-9a-f]+$/i.test(text)) return BigInt(text);
  return null;
}

function named(table: Readonly<Record<string, number>>, text: string): bigint | null {
  const n = table[text];
  return n === undefined ? integer(text) : BigInt(n);
}

/** A constant read as `type`; null when it is not a value of that type. */
export function readConstant(text: string, type: DataType): Scalar | null {
  switch (type) {
    case 'ipv4_addr': {
      const v = parseIPv4(text);
      return v === null ? null : BigInt(v);
    }
    case 'ipv6_addr':
      return parseIPv6(text);
    case 'inet_proto':
      return named(PROTOCOLS, text);
    case 'inet_service':
      return named(SERVICES, text);
    case 'ct_state':
      return named(CT_STATE, text);
    case 'fib_addrtype':
      return named(FIB_TYPES, text);
    case 'nf_proto':
      return named(NF_PROTO, text);
    case 'ether_type':
      return named(ETHER_TYPE, text);
    case 'ifname':
      return text;
    case 'mark':
    case 'integer':
      return integer(text);
    default:
      return integer(text) ?? text;
  }
}

/** A value as nft prints it, for the action text of a verdict-map step. */
export function formatValue(v: Value, types: readonly DataType[]): string {
  if (Array.isArray(v)) return v.map((part, i) => formatValue(part, [types[i] ?? 'unknown'])).join(' . ');
  const s = v as Scalar;
  if (typeof s === 'string') return `"${s}"`;
  switch (types[0]) {
    case 'ipv4_addr':
      return formatIPv4(Number(s));
    case 'ipv6_addr':
      return formatIPv6(s);
    case 'inet_proto':
      return PROTOCOL_NAMES.get(Number(s)) ?? s.toString();
    case 'mark':
      return `0x${s.toString(16).padStart(8, '0')}`;
    default:
      return s.toString();
  }
}

const PROTOCOL_NUMBERS = new Map(Object.entries(PROTOCOLS).map(([k, v]) => [k, BigInt(v)]));

/** The protocol number of the tracer's protocol names. */
export function protocolNumber(p: string): bigint {
  return PROTOCOL_NUMBERS.get(p) ?? 0n;
}

/** The inclusive range a prefix stands for. */
export function prefixRange(address: string, length: number): [bigint, bigint] | null {
  const v4 = parseIPv4(address);
  const bits = v4 !== null ? 32 : 128;
  const base = v4 !== null ? BigInt(v4) : parseIPv6(address);
  if (base === null || length < 0 || length > bits) return null;
  const host = (1n << BigInt(bits - length)) - 1n;
  const low = base & ~host & ((1n << BigInt(bits)) - 1n);
  return [low, low | host];
}
