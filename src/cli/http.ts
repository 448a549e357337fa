/**
 * Requests from the command line to a svcpath server: the bearer token on every request,
 * problem+json answers read into errors, and retries for what waiting can fix
 * (5xx, 429, a dropped connection), honouring `Retry-After`.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** An `application/problem+json` answer, as the server's error handler writes it. */
export interface Problem {
  readonly title?: string;
  readonly detail?: string;
  readonly code?: string;
  readonly line?: number;
  readonly column?: number;
  readonly excerpt?: string;
}

/** The server answered with a status a retry will not change (or retries ran out). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem | null,
    readonly text: string,
  ) {
    super(`${status} ${problem?.detail ?? problem?.title ?? text}`);
  }
}

/** The server could not be reached, every attempt. */
export class NetworkError extends Error {
  constructor(
    message: string,
    readonly attempts: number,
  ) {
    super(message);
  }
}

export type Body = string | Uint8Array | AsyncIterable<Uint8Array>;

export interface Request {
  /** What the request is for, in retry notes: `node n1`, `commit`. */
  readonly label?: string;
  readonly method: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  /** Called once per attempt: a stream cannot be sent twice. */
  readonly body?: () => Body;
}

export interface Retry {
  /** The attempt that failed, from 1. */
  readonly attempt: number;
  readonly attempts: number;
  readonly delayMs: number;
  readonly reason: string;
}

export interface ClientOptions {
  readonly server: string;
  readonly token?: string;
  /** Aborting it stops requests in flight and waits between attempts. */
  readonly signal: AbortSignal;
  readonly attempts: number;
  /** The wait after the first failure when the server gives no `Retry-After`; doubled each time. */
  readonly baseDelayMs: number;
  readonly onRetry?: (request: Request, retry: Retry) => void;
}

export interface Answer {
  readonly status: number;
  readonly text: string;
}

/** A `Retry-After` longer than this is cut short: a CI job should rather fail than hang. */
const MAX_DELAY_MS = 60_000;

function retryAfterMs(header: string | null): number | undefined {
  if (header === null) return undefined;
  const s = header.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const at = Date.parse(s);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function parseProblem(text: string): Problem | null {
  try {
    const p = JSON.parse(text) as unknown;
    return p !== null && typeof p === 'object' && !Array.isArray(p) ? p : null;
  } catch {
    return null;
  }
}

/** undici reports every network failure as `TypeError: fetch failed`; the cause says which. */
function networkReason(e: unknown): string {
  const cause = (e as { cause?: unknown }).cause;
  if (cause instanceof Error) return cause.message || (cause as NodeJS.ErrnoException).code || 'connection failed';
  return e instanceof Error ? e.message : String(e);
}

function retryable(status: number): boolean {
  return status >= 500 || status === 429;
}

export interface Client {
  send(request: Request): Promise<Answer>;
}

export function createClient(o: ClientOptions): Client {
  const base = o.server.replace(/\/+$/, '');
  const auth: Record<string, string> = o.token ? { authorization: `Bearer ${o.token}` } : {};

  async function wait(request: Request, attempt: number, delayMs: number | undefined, reason: string): Promise<void> {
    // Jitter, so that many nodes refused at once do not come back at once.
    const ms = Math.min(MAX_DELAY_MS, delayMs ?? o.baseDelayMs * 2 ** (attempt - 1) * (0.75 + Math.random() / 2));
    o.onRetry?.(request, { attempt, attempts: o.attempts, delayMs: ms, reason });
    try {
      await sleep(ms, undefined, { signal: o.signal });
    } catch {
      throw o.signal.reason;
    }
  }

  return {
    async send(request) {
      for (let attempt = 1; ; attempt++) {
        let status: number;
        let text: string;
        let retryAfter: string | null;
        try {
          const body = request.body?.();
          const res = await fetch(base + request.path, {
            method: request.method,
            headers: { accept: 'application/json', ...auth, ...request.headers },
            ...(body !== undefined ? { body, duplex: 'half' } : {}),
            signal: o.signal,
          });
          status = res.status;
          retryAfter = res.headers.get('retry-after');
          text = await res.text();
        } catch (e) {
          if (o.signal.aborted) throw o.signal.reason;
          const reason = networkReason(e);
          if (attempt >= o.attempts) throw new NetworkError(reason, attempt);
          await wait(request, attempt, undefined, reason);
          continue;
        }
        if (status < 300) return { status, text };
        const problem = parseProblem(text);
        if (retryable(status) && attempt < o.attempts) {
          await wait(request, attempt, retryAfterMs(retryAfter), `${status} ${problem?.detail ?? problem?.title ?? ''}`.trim());
          continue;
        }
        throw new HttpError(status, problem, text);
      }
    },
  };
}
