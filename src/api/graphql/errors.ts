/**
 * GraphQL's half of convention 6: an AppError or EngineError leaves as an `ErrorWithProps` with its
 * code in `extensions.code` (and, for bad input, where in the input: line, column, text). Anything
 * else is INTERNAL, logged with its cause and sent with a fixed message, as REST does for 5xx.
 */
import { GraphQLError } from 'graphql';
import type { ExecutionResult } from 'graphql';
import mercurius from 'mercurius';
import type { MercuriusContext } from 'mercurius';
import { toAppError } from '../../app-error.ts';
import type { AppErrorCode } from '../../app-error.ts';

const { ErrorWithProps, defaultErrorFormatter } = mercurius;
type ErrorWithProps = InstanceType<typeof ErrorWithProps>;

/** Details that point at the uploaded input; the rest (excerpts, node names) is already in the message. */
const LOCATION_KEYS = ['line', 'column', 'text'] as const;

const HIDDEN_MESSAGES: Partial<Record<AppErrorCode, string>> = {
  UNAVAILABLE: 'the service is unavailable; try again later',
};
const INTERNAL_MESSAGE = 'an unexpected error occurred';

/**
 * The error a client may see for `cause`, or null when it is already a GraphQL or mercurius error
 * (syntax, validation, variable coercion), which the default formatter handles as it is.
 * `internal` is set when the cause must be logged because its message is withheld.
 */
export function toClientError(cause: unknown): { error: ErrorWithProps; internal: boolean } | null {
  if (cause instanceof ErrorWithProps || cause instanceof GraphQLError) return null;
  const app = toAppError(cause);
  if (app && app.status < 500) {
    const extensions: Record<string, unknown> = { code: app.code };
    for (const key of LOCATION_KEYS) if (app.details[key] !== undefined) extensions[key] = app.details[key];
    return { error: new ErrorWithProps(app.message, extensions), internal: false };
  }
  if (app) return { error: new ErrorWithProps(HIDDEN_MESSAGES[app.code] ?? INTERNAL_MESSAGE, { code: app.code }), internal: true };
  // mercurius's own request errors (a query that does not parse or validate, a CSRF refusal) carry
  // a 4xx status and their GraphQL errors; the default formatter unpacks them.
  const status = (cause as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === 'number' && status < 500) return null;
  return { error: new ErrorWithProps(INTERNAL_MESSAGE, { code: 'INTERNAL' }), internal: true };
}

type Execution = ExecutionResult & Required<Pick<ExecutionResult, 'errors'>>;

export function errorFormatter(execution: Execution, context: MercuriusContext): ReturnType<typeof defaultErrorFormatter> {
  const log = context.reply?.log ?? context.app.log;
  const errors = execution.errors.map((e) => {
    const mapped = toClientError(e.originalError ?? e);
    if (!mapped) return e;
    if (mapped.internal) log.error({ err: e.originalError ?? e, path: e.path }, 'graphql request failed');
    return new GraphQLError(mapped.error.message, {
      nodes: e.nodes,
      source: e.source,
      positions: e.positions,
      path: e.path,
      originalError: mapped.error,
      extensions: mapped.error.extensions as Record<string, unknown>,
    });
  });
  return defaultErrorFormatter({ ...execution, errors }, context);
}
