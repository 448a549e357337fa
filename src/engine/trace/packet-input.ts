/**
 * A packet as people write it: the protocol in any case (Kubernetes writes TCP), the destination
 * as `ip`, `ip:port`, `[ipv6]:port` or a bare IPv6 address, with the port there or given apart.
 * Every edge (REST, GraphQL, CLI) reads what it is given through these, so they agree.
 */
import { EngineError } from '../errors.ts';
import type { PacketSpec, Protocol } from './packet.ts';

/** The protocols a trace takes, as the tracer names them. */
export const PROTOCOLS: readonly Protocol[] = Object.freeze(['tcp', 'udp', 'sctp', 'icmp']);

/** `TCP`, `tcp`, `Tcp` → tcp; absent → tcp. */
export function readProtocol(text: string | null | undefined): Protocol {
  if (text === undefined || text === null || text === '') return 'tcp';
  const p = text.trim().toLowerCase() as Protocol;
  if (!PROTOCOLS.includes(p)) throw new EngineError('BAD_PACKET', `protocol '${text}' is not one of ${PROTOCOLS.join(', ')} (any case)`);
  return p;
}

function readPort(text: string, what: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) throw new EngineError('BAD_PACKET', `${what} '${text}' is not a port (0 to 65535)`);
  return Number(text);
}

/** The address and, when it names one, the port of `ip`, `ip:port`, `[ipv6]`, `[ipv6]:port` or a bare IPv6 address. */
export function splitDestination(text: string): { ip: string; port: number | null } {
  const t = text.trim();
  if (t.startsWith('[')) {
    const m = /^\[([^\]]*)\](?::(.*))?$/.exec(t);
    if (!m) throw new EngineError('BAD_PACKET', `destination '${text}' is not ip, ip:port or [ipv6]:port`);
    return { ip: m[1], port: m[2] === undefined ? null : readPort(m[2], `the port of destination '${text}'`) };
  }
  const colons = t.split(':').length - 1;
  if (colons === 1) {
    const [ip, port] = t.split(':');
    return { ip, port: readPort(port, `the port of destination '${text}'`) };
  }
  return { ip: t, port: null };
}

/**
 * The destination address and port from a destination that may name the port and a port that
 * may be given apart; both given, they must agree.
 */
export function readDestination(destination: string, port?: number | null): { destination: string; port: number } {
  const d = splitDestination(destination);
  if (d.port !== null && port !== undefined && port !== null && port !== d.port) {
    throw new EngineError('BAD_PACKET', `destination '${destination}' names port ${d.port} but port ${port} was given: give one of them`);
  }
  const p = d.port ?? port;
  if (p === undefined || p === null) {
    throw new EngineError('BAD_PACKET', `no destination port: give port, or write the destination as ip:port or [ipv6]:port (got '${destination}')`);
  }
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw new EngineError('BAD_PACKET', `port ${p} is not from 0 to 65535`);
  return { destination: d.ip, port: p };
}

/** Where a packet comes from when the caller does not say: outside any cluster, in the destination's family. */
export function defaultSource(destination: string): string {
  return destination.includes(':') ? '2001:db8::10' : '203.0.113.10';
}

/** A packet as a caller may write it: protocol in any case, port in the destination or apart, source optional. */
export type PacketInput = Omit<PacketSpec, 'protocol' | 'port' | 'source'> & {
  readonly protocol?: string | null;
  readonly port?: number | null;
  readonly source?: string | null;
};

/** The packet the tracer takes, read from what the caller wrote (see PacketInput). */
export function readPacket(p: PacketInput): PacketSpec {
  const { destination, port } = readDestination(p.destination, p.port);
  return { ...p, destination, port, protocol: readProtocol(p.protocol), source: p.source ?? defaultSource(destination) };
}
