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

export function toAppError(e: unknown): AppError | null {
  if (e instanceof AppError) return e;
  if (e instanceof EngineError) return AppError.fromEngine(e);
  return null;
}
