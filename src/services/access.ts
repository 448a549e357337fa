/**
 * Who is asking, and what they may do. A request is made by a principal: a token's holder, the
 * holder of SVCPATH_ADMIN_TOKEN, or (only while no token is configured and the server listens on
 * loopback, or with SVCPATH_AUTH=off) an anonymous admin.
 *
 * Scopes: `read` — every GET and GraphQL query on the token's clusters; `write` — uploads to its
 * clusters; `admin` — everything, every cluster (deletes, tokens). `read` and `write` are
 * independent: a CI token may hold only `write`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { AppError } from '../app-error.ts';
import type { TokenStore } from '../store/token-store.ts';

export const SCOPES = ['read', 'write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** `auto`: tokens once configured, anonymous admins on loopback until then; `on`: tokens always; `off`: no authentication. */
export const AUTH_MODES = ['auto', 'on', 'off'] as const;
export type AuthMode = (typeof AUTH_MODES)[number];

export interface Principal {
  readonly kind: 'anonymous' | 'admin-token' | 'token';
  /** The token's name, `SVCPATH_ADMIN_TOKEN`, or `anonymous`. */
  readonly name: string;
  readonly tokenId?: string;
  readonly scopes: readonly Scope[];
  /** Cluster name patterns; `*` matches any run of characters. Ignored for admins. */
  readonly clusters: readonly string[];
  /** Whether the request carried a bearer token (a browser cannot add one to a cross-site request). */
  readonly bearer: boolean;
}

export const ANONYMOUS_ADMIN: Principal = Object.freeze<Principal>({
  kind: 'anonymous', name: 'anonymous', scopes: ['admin'], clusters: ['*'], bearer: false,
});

/** A cluster pattern: the characters of a cluster name, and `*`. */
export const CLUSTER_PATTERN = /^[A-Za-z0-9._*-]{1,253}$/;

const compiled = new Map<string, RegExp>();

/** Whether `cluster` matches the glob `pattern` (`*` is any run of characters, the rest literal). */
export function matchCluster(pattern: string, cluster: string): boolean {
  let re = compiled.get(pattern);
  if (!re) {
    re = new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.\\^$+?()[\]{}|-]/g, '\\$&')).join('.*')}$`, 's');
    if (compiled.size > 1000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re.test(cluster);
}

export function isAdmin(p: Principal): boolean {
  return p.scopes.includes('admin');
}

/** Whether `p` holds `scope` (admin holds all), on `cluster` when one is named. */
export function allows(p: Principal, scope: Scope, cluster?: string): boolean {
  if (isAdmin(p)) return true;
  if (!p.scopes.includes(scope)) return false;
  return cluster === undefined || p.clusters.some((pattern) => matchCluster(pattern, cluster));
}

/** Throws FORBIDDEN unless `p` holds `scope` on `cluster`. */
export function demand(p: Principal, scope: Scope, cluster?: string): void {
  if (allows(p, scope, cluster)) return;
  if (!isAdmin(p) && !p.scopes.includes(scope)) {
    throw new AppError('FORBIDDEN', `this needs the '${scope}' scope; token '${p.name}' has ${p.scopes.join(', ') || 'none'}`, { scope });
  }
  throw new AppError('FORBIDDEN', `token '${p.name}' may not ${scope === 'read' ? 'read' : 'write to'} cluster '${cluster}' (its clusters: ${p.clusters.join(', ')})`, { scope, cluster });
}

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Whether HOST (the address the server binds) is a loopback address or name. */
export function isLoopbackAddress(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./.test(h);
  return false;
}

/**
 * Whether a Host header names this machine by a loopback name or address. A page on another
 * site that rebinds its own name to 127.0.0.1 (DNS rebinding) sends its own name here.
 */
export function isLoopbackHostHeader(hostHeader: string): boolean {
  const m = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(hostHeader.trim());
  if (!m) return false;
  const name = m[1].toLowerCase();
  return name === 'localhost' || name.endsWith('.localhost') || isLoopbackAddress(name);
}

export interface AccessPolicy {
  readonly mode: AuthMode;
  /** SVCPATH_ADMIN_TOKEN. */
  readonly adminToken?: string;
  /** Whether the server listens only on a loopback address. */
  readonly loopback: boolean;
}

export interface Authenticator {
  /** The principal of a request with this Authorization header (or none); throws UNAUTHENTICATED. */
  authenticate(authorization: string | undefined): Promise<Principal>;
  /** Whether requests without a token are anonymous admins now. */
  open(): Promise<boolean>;
  readonly policy: AccessPolicy;
}

export const UNAUTHENTICATED_HINT = 'send Authorization: Bearer <token> (the svcpath CLI sends $SVCPATH_TOKEN)';

/**
 * Checks bearer tokens against SVCPATH_ADMIN_TOKEN and the stored tokens. Every request looks its
 * token up (one indexed read), so a revoked token is refused from the next request on, whichever
 * process revoked it.
 */
export function createAuthenticator(policy: AccessPolicy, tokens: TokenStore): Authenticator {
  const adminSha = policy.adminToken ? sha256(policy.adminToken) : null;
  /** last_used_at is written at most once a minute per token. */
  const touched = new Map<string, number>();

  async function open(): Promise<boolean> {
    if (policy.mode === 'off') return true;
    if (policy.mode === 'on' || adminSha || !policy.loopback) return false;
    return !(await tokens.any());
  }

  return {
    policy,
    open,
    async authenticate(authorization) {
      if (policy.mode === 'off') return ANONYMOUS_ADMIN;
      if (authorization === undefined || authorization.trim() === '') {
        if (await open()) return ANONYMOUS_ADMIN;
        throw new AppError('UNAUTHENTICATED', `a token is required: ${UNAUTHENTICATED_HINT}`);
      }
      const m = /^Bearer +([!-~]+) *$/i.exec(authorization);
      if (!m) throw new AppError('UNAUTHENTICATED', `the Authorization header is not a bearer token: ${UNAUTHENTICATED_HINT}`);
      const sha = sha256(m[1]);
      if (adminSha && timingSafeEqual(sha, adminSha)) {
        return { kind: 'admin-token', name: 'SVCPATH_ADMIN_TOKEN', scopes: ['admin'], clusters: ['*'], bearer: true };
      }
      const token = await tokens.bySecret(sha);
      // The row was found by its hash; comparing it again in constant time keeps the check
      // independent of how the index compares.
      if (!token || token.secretSha256.length !== sha.length || !timingSafeEqual(token.secretSha256, sha)) {
        throw new AppError('UNAUTHENTICATED', 'the token is not valid (unknown, mistyped or revoked)');
      }
      const now = Date.now();
      if ((touched.get(token.id) ?? 0) < now - 60_000) {
        touched.set(token.id, now);
        if (touched.size > 10_000) touched.clear();
        tokens.touch(token.id).catch(() => {});
      }
      return {
        kind: 'token', name: token.name, tokenId: token.id, bearer: true,
        scopes: token.scopes.filter((s): s is Scope => (SCOPES as readonly string[]).includes(s)),
        clusters: token.clusters,
      };
    },
  };
}

export interface StartupAccess {
  /** Why the server must not start, and what to do; absent when it may. */
  readonly refusal?: string;
  /** What the start-up line says about authentication. */
  readonly summary: string;
}

/**
 * Whether the server may listen as configured. With no token configured (no SVCPATH_ADMIN_TOKEN,
 * no stored token), only a loopback address is allowed: anyone who reaches it would be an admin.
 */
export function startupAccess(o: { host: string; port: number; mode: AuthMode; adminToken?: string; tokenCount: number }): StartupAccess {
  if (o.mode === 'off') return { summary: 'authentication OFF (SVCPATH_AUTH=off): every request is an anonymous admin' };
  const configured = [
    ...(o.adminToken ? ['SVCPATH_ADMIN_TOKEN'] : []),
    ...(o.tokenCount > 0 ? [`${o.tokenCount} token${o.tokenCount === 1 ? '' : 's'}`] : []),
  ];
  if (configured.length > 0) return { summary: `tokens required (${configured.join(', ')})` };
  if (o.mode === 'on') return { summary: 'tokens required (SVCPATH_AUTH=on), none exists yet: create one with `svcpath token create`' };
  if (isLoopbackAddress(o.host)) {
    return { summary: `no token configured: requests are anonymous admins (listening on loopback ${o.host} only; once a token exists every request needs one)` };
  }
  return {
    summary: 'refused',
    refusal: [
      `svcpath: refusing to listen on ${o.host}:${o.port} with no token configured: anyone who can reach it would be an admin.`,
      '  Set an admin token:      SVCPATH_ADMIN_TOKEN=$(openssl rand -base64 32)   (clients send it as SVCPATH_TOKEN)',
      '  or create a token:       npm run -s svcpath -- token create --name NAME --scope admin',
      '  or listen on loopback:   HOST=127.0.0.1 (the default)',
      '  or serve without authentication, explicitly: SVCPATH_AUTH=off',
    ].join('\n'),
  };
}

/**
 * What an operation needs: a scope, and, for `read` and `write`, that scope on every cluster the
 * operation touches. Clusters are named by a parameter or argument (`cluster`), or are those of
 * the snapshots (`snapshots`) or the upload in steps (`upload`) whose ids a parameter holds.
 */
export interface AccessRule {
  readonly scope: Scope;
  readonly cluster?: string;
  readonly snapshots?: readonly string[];
  readonly upload?: string;
  /** The answer is a list of clusters: only those the principal may read are shown. */
  readonly filter?: 'clusters';
}

/** Which cluster a snapshot or an upload belongs to (store/token-store.ts). */
export interface ClusterOwners {
  ofSnapshots(ids: readonly string[]): Promise<Map<string, string>>;
  ofUpload(id: string): Promise<string | null>;
}

/**
 * Throws FORBIDDEN unless `p` may do what `rule` describes with these parameters. An id that names
 * nothing is let through: the operation itself answers 404 (or null).
 */
export async function authorize(p: Principal, rule: AccessRule, values: Readonly<Record<string, unknown>>, owners: ClusterOwners): Promise<void> {
  demand(p, rule.scope);
  if (isAdmin(p)) return;
  const clusters: string[] = [];
  if (rule.cluster !== undefined && typeof values[rule.cluster] === 'string') clusters.push(values[rule.cluster] as string);
  if (rule.snapshots) {
    const given = rule.snapshots.map((k) => values[k]).filter((v): v is string => typeof v === 'string');
    // A reference (`cluster@latest`, `cluster@12`, `cluster@TIME`) names its cluster itself.
    const ids = given.filter((v) => !v.includes('@'));
    for (const ref of given) if (ref.includes('@')) clusters.push(ref.slice(0, ref.lastIndexOf('@')));
    clusters.push(...(await owners.ofSnapshots(ids)).values());
  }
  if (rule.upload !== undefined && typeof values[rule.upload] === 'string') {
    const cluster = await owners.ofUpload(values[rule.upload] as string);
    if (cluster !== null) clusters.push(cluster);
  }
  for (const c of clusters) demand(p, rule.scope, c);
}
