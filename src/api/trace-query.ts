/**
 * A trace of a stored snapshot as REST's query string and GraphQL's arguments both ask for it,
 * checked here once: by Service (a port name or number) or to an address (a port number), the
 * ports against PORT_RANGE, the entry hook, the protocol (in any case) with the engine's readProtocol. What is refused
 * is an AppError VALIDATION, which each transport maps (problem+json, `extensions.code`).
 */
import { AppError } from '../app-error.ts';
import { clipMessage, EngineError } from '../engine/errors.ts';
import { readProtocol } from '../engine/index.ts';
import type { StoredTraceQuery } from '../services/snapshot-types.ts';
import { ENTRIES, PORT_RANGE } from './rest/schemas.ts';

/** Each may be absent (GraphQL gives null for an argument not given). */
export interface TraceArguments {
  readonly destination?: string | null;
  /** A number, or (with service) a Service port's name; digits are a number. */
  readonly port?: number | string | null;
  readonly service?: string | null;
  readonly protocol?: string | null;
  readonly source?: string | null;
  readonly node?: string | null;
  readonly entry?: string | null;
  readonly sourcePort?: number | null;
  readonly inInterface?: string | null;
}

/** A port number in PORT_RANGE, or refused naming the field. */
export function checkPort(value: number, what: string): number {
  if (!Number.isInteger(value) || value < PORT_RANGE.minimum || value > PORT_RANGE.maximum) {
    throw new AppError('VALIDATION', `${what} must be from ${PORT_RANGE.minimum} to ${PORT_RANGE.maximum} (got ${value})`);
  }
  return value;
}

/** One of the engine's protocols, in any case; refused with the engine's message. */
function checkProtocol(value: string): string {
  try {
    return readProtocol(value);
  } catch (e) {
    if (e instanceof EngineError) throw new AppError('VALIDATION', e.message);
    throw e;
  }
}

/** `value` when it is one of `allowed`, else refused naming the field and the values allowed. */
export function checkOneOf<T extends string>(value: string, allowed: readonly T[], what: string): T {
  const found = allowed.find((a) => a === value);
  if (found === undefined) throw new AppError('VALIDATION', `${what} must be one of ${allowed.join(', ')} (got '${clipMessage(value, 80)}')`);
  return found;
}

/** The service's query for a trace of a stored snapshot, from what the request said. */
export function storedTraceQuery(args: TraceArguments): StoredTraceQuery {
  const port = typeof args.port === 'string' && /^\d+$/.test(args.port) ? Number(args.port) : args.port ?? undefined;
  const common = {
    // In any case, read by the engine's readProtocol against its PROTOCOLS; refused as VALIDATION.
    ...(args.protocol != null ? { protocol: checkProtocol(args.protocol) } : {}),
    ...(args.source != null ? { source: args.source } : {}),
    ...(args.node != null ? { node: args.node } : {}),
    ...(args.entry != null ? { entry: checkOneOf(args.entry, ENTRIES, 'entry') } : {}),
    ...(args.sourcePort != null ? { sourcePort: checkPort(args.sourcePort, 'sourcePort') } : {}),
    ...(args.inInterface != null ? { inInterface: args.inInterface } : {}),
  };
  if (args.service != null) {
    if (port === undefined) throw new AppError('VALIDATION', "a trace by service needs port: the Service port's name or number");
    return { ...common, service: args.service, servicePort: typeof port === 'number' ? checkPort(port, 'port') : port };
  }
  if (args.destination == null) throw new AppError('VALIDATION', 'give destination (ip:port, or ip and port), or service and port');
  if (typeof port === 'string') {
    throw new AppError('VALIDATION', `port must be a number when tracing to a destination address (a port name goes with service; got '${clipMessage(port, 80)}')`);
  }
  return { ...common, destination: args.destination, ...(port !== undefined ? { port: checkPort(port, 'port') } : {}) };
}
