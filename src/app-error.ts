/**
 * The application's one error type, with a stable `code`. REST maps it to
 * `application/problem+json` with the status below; GraphQL puts the code in `extensions.code`.
 */
import { EngineError } from './engine/index.ts';

export const ERROR_STATUS = Object.freeze({
  VALIDATION: 400,
  DUMP_SYNTAX: 400,
  DUMP_FORMAT_UNSUPPORTED: 400,
  DUMP_EMPTY: 400,
  BAD_PACKET: 400,
  MANIFEST_SYNTAX: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INTERNAL: 500,
  UNAVAILABLE: 503,
} as const);

export type AppErrorCode = keyof typeof ERROR_STATUS;

export class AppError extends Error {
  readonly code: AppErrorCode;
  readonly status: number;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: AppErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'AppError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.details = details;
  }

  /** Wraps an engine error, keeping where in the input it happened; `prefix` says which input. */
  static fromEngine(e: EngineError, context: Record<string, unknown> = {}, prefix = ''): AppError {
    const loc = e.location;
    return new AppError(e.code, `${prefix}${e.message}`, {
      ...context,
      ...(loc ? { line: loc.line, column: loc.column, text: loc.text, excerpt: e.excerpt() } : {}),
    });
  }
}

/** Seconds a client is asked to wait (Retry-After) when the database is unavailable. */
export const RETRY_AFTER_SECONDS = 5;

export function toAppError(e: unknown): AppError | null {
  if (e instanceof AppError) return e;
  if (e instanceof EngineError) return AppError.fromEngine(e);
  if (isDatabaseUnavailable(e)) {
    return new AppError('UNAVAILABLE', 'the database is unavailable; try again shortly');
  }
  if (hasSqlState(e, UNSTORABLE_SQLSTATE)) {
    return new AppError('VALIDATION', 'the request contains text PostgreSQL cannot store (a NUL character or invalid UTF-8)');
  }
  return null;
}

/**
 * 22021 character_not_in_repertoire and 22P05 untranslatable_character: text sent by a client
 * (a NUL in a path parameter or a GraphQL argument) that reached a query without the checks of
 * services/limits.ts. The client's input, not the server, is at fault.
 */
const UNSTORABLE_SQLSTATE = /^(?:22021|22P05)$/;

/** Whether `e`, or what it wraps (as Prisma's pg adapter does), carries a SQLSTATE matching `pattern`. */
function hasSqlState(e: unknown, pattern: RegExp, depth = 0): boolean {
  if (typeof e !== 'object' || e === null || depth > 4) return false;
  const fields = e as { code?: unknown; originalCode?: unknown; cause?: unknown; meta?: unknown };
  if ([fields.code, fields.originalCode].some((c) => typeof c === 'string' && pattern.test(c))) return true;
  const adapterError = (fields.meta as { driverAdapterError?: unknown } | undefined)?.driverAdapterError;
  return hasSqlState(fields.cause, pattern, depth + 1) || hasSqlState(adapterError, pattern, depth + 1);
}

/**
 * PostgreSQL's codes for a server going away or not there: 57P01 admin shutdown (also
 * pg_terminate_backend), 57P02 crash shutdown, 57P03 cannot connect now (starting up, shutting
 * down, in recovery), 53300 too many connections; class 08 is "connection exception".
 */
const UNAVAILABLE_SQLSTATE = /^(?:57P0[123]|53300|08\w{3})$/;
/** Socket errors of node-postgres when the server cannot be reached or drops the connection. */
const UNAVAILABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/**
 * Prisma's codes: P1001 cannot reach the server, P1002 it timed out, P1008 an operation timed out,
 * P1017 the server closed the connection, P2024 no pooled connection within the timeout.
 */
const UNAVAILABLE_PRISMA = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024']);
/** @prisma/adapter-pg's names for the same (its DriverAdapterError `cause.kind`). */
const UNAVAILABLE_ADAPTER_KIND = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections']);
/** node-postgres says these in words only, without a code. */
const UNAVAILABLE_MESSAGE =
  /Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect|Client was closed and is not queryable|the database system is (?:starting up|shutting down|in recovery mode)/i;

/**
 * Whether `e` says the database cannot be reached or went away, as node-postgres, Prisma or
 * Prisma's pg adapter (which keeps PostgreSQL's code under `meta.driverAdapterError.cause`) put it.
 * Read by shape, not class: this module stays free of the database libraries.
 */
export function isDatabaseUnavailable(e: unknown, depth = 0): boolean {
  if (typeof e !== 'object' || e === null || depth > 4) return false;
  const fields = e as { code?: unknown; kind?: unknown; originalCode?: unknown; message?: unknown; cause?: unknown; meta?: unknown };
  for (const code of [fields.code, fields.originalCode]) {
    if (typeof code !== 'string') continue;
    if (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_ERRNO.has(code) || UNAVAILABLE_PRISMA.has(code)) return true;
  }
  if (typeof fields.kind === 'string' && UNAVAILABLE_ADAPTER_KIND.has(fields.kind)) return true;
  if (typeof fields.message === 'string' && UNAVAILABLE_MESSAGE.test(fields.message)) return true;
  const adapterError = (fields.meta as { driverAdapterError?: unknown } | undefined)?.driverAdapterError;
  return isDatabaseUnavailable(fields.cause, depth + 1) || isDatabaseUnavailable(adapterError, depth + 1);
}
