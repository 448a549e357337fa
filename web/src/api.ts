/**
 * The page's only way to the server: the public REST API under /v1 and GraphQL at /graphql,
 * exactly as a dashboard would call them. A token pasted by the user is kept for the tab
 * (sessionStorage) and sent as `Authorization: Bearer`.
 */
const TOKEN_KEY = 'svcpath.token';

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** A refusal from the server: status, the problem's `code` and its message. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
  /** The server wants a token (none was sent, or the one sent is unknown or lacks a scope). */
  get needsToken(): boolean {
    return this.status === 401 || (this.status === 403 && this.code === 'FORBIDDEN' && /token/.test(this.message));
  }
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const token = getToken();
  return { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...extra };
}

async function problem(res: Response): Promise<ApiError> {
  const text = await res.text();
  try {
    const body = JSON.parse(text) as { code?: string; detail?: string; title?: string; errors?: Array<{ message: string; extensions?: { code?: string } }> };
    if (body.errors?.length) return new ApiError(res.status, body.errors[0].extensions?.code ?? 'ERROR', body.errors[0].message);
    return new ApiError(res.status, body.code ?? 'ERROR', body.detail ?? body.title ?? text);
  } catch {
    return new ApiError(res.status, 'ERROR', `${res.status} ${res.statusText}`);
  }
}

/** GET a REST path with query parameters (empty ones left out). */
export async function rest<T>(path: string, query: Record<string, string | number | undefined> = {}): Promise<T> {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') params.set(k, String(v));
  const qs = params.toString();
  const res = await fetch(`${path}${qs ? `?${qs}` : ''}`, { headers: headers() });
  if (!res.ok) throw await problem(res);
  return (await res.json()) as T;
}

/** A GraphQL query; the first error becomes an ApiError. */
export async function graphql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const res = await fetch('/graphql', { method: 'POST', headers: headers({ 'content-type': 'application/json' }), body: JSON.stringify({ query, variables }) });
  if (!res.ok) throw await problem(res);
  const body = (await res.json()) as { data?: T; errors?: Array<{ message: string; extensions?: { code?: string } }> };
  if (body.errors?.length) throw new ApiError(200, body.errors[0].extensions?.code ?? 'ERROR', body.errors[0].message);
  return body.data as T;
}
