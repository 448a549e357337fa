/**
 * The packet as the tracer carries it through the hooks: addresses parsed once, the fields
 * targets rewrite (destination, mark, conntrack state), and what is known about interfaces.
 */
import type { Family } from '../netfilter/ast.ts';
import { EngineError } from '../errors.ts';
import { formatIPv6, parseIPv4, parseIPv6 } from '../net/address.ts';

export type Protocol = 'tcp' | 'udp' | 'sctp' | 'icmp';
export type Entry = 'PREROUTING' | 'OUTPUT';
export type Hook = 'PREROUTING' | 'INPUT' | 'FORWARD' | 'OUTPUT' | 'POSTROUTING';

export interface Addr {
  readonly text: string;
  readonly family: Family;
  readonly v4: number;
  readonly v6: bigint;
}

export function parseAddr(text: string, what: string): Addr {
  const v4 = parseIPv4(text);
  if (v4 !== null) return { text, family: 'ipv4', v4, v6: 0n };
  const v6 = parseIPv6(text);
  if (v6 !== null) return { text: formatIPv6(v6), family: 'ipv6', v4: 0, v6 };
  throw new EngineError('BAD_PACKET', `${what} '${text}' is not an IP address`);
}

/** What the caller asks about: the first packet of a new connection. */
export interface PacketSpec {
  readonly source: string;
  readonly destination: string;
  readonly port: number;
  readonly sourcePort?: number;
  readonly protocol: Protocol;
  readonly entry?: Entry;
  readonly inInterface?: string;
  readonly outInterface?: string;
}

/** Mutable per-run state. */
export interface PacketState {
  src: Addr;
  dst: Addr;
  sport: number | null;
  dport: number;
  readonly proto: Protocol;
  readonly origDst: Addr;
  readonly origDport: number;
  mark: number;
  ctmark: number;
  /** conntrack status bits the virtual ctstates DNAT/SNAT read. */
  dnatDone: boolean;
  snatDone: boolean;
  untracked: boolean;
  inIface: string | null;
  outIface: string | null;
  /** recent lists written during this trace: "name|address". */
  readonly recent: Set<string>;
}
