/**
 * Tokens: made and revoked by an admin (REST, or `svcpath token` on the server's host). A secret
 * is `svcp_` and 32 random bytes in base64url; it is returned once, and only its sha256 is kept.
 */
import { randomBytes } from 'node:crypto';
import { AppError } from '../app-error.ts';
import type { StoredToken, TokenStore } from '../store/token-store.ts';
import { CLUSTER_PATTERN, SCOPES, sha256 } from './access.ts';
import type { Scope } from './access.ts';

export const SECRET_PREFIX = 'svcp_';
const NAME = /^[A-Za-z0-9][A-Za-z0-9 ._:@/-]{0,99}$/;
/** Characters of the secret kept to tell tokens apart in a listing (the prefix and 4 of 43). */
const HINT_LENGTH = SECRET_PREFIX.length + 4;

export interface TokenView {
  readonly id: string;
  readonly name: string;
  /** The secret's first characters, e.g. `svcp_Ab3x…`. */
  readonly hint: string;
  readonly scopes: readonly string[];
  readonly clusters: readonly string[];
  readonly createdAt: string;
  readonly lastUsedAt: string | null;
}

export interface CreatedToken extends TokenView {
  /** Shown once; only its sha256 is stored. */
  readonly secret: string;
}

export interface TokenRequest {
  readonly name: string;
  readonly scopes: readonly string[];
  /** Cluster patterns; every cluster (`*`) when absent. */
  readonly clusters?: readonly string[];
}

export interface TokenService {
  create(request: TokenRequest): Promise<CreatedToken>;
  list(): Promise<TokenView[]>;
  /** By id or name; throws NOT_FOUND. */
  revoke(idOrName: string): Promise<TokenView>;
}

function view(t: StoredToken): TokenView {
  return {
    id: t.id, name: t.name, hint: `${t.hint}…`, scopes: t.scopes, clusters: t.clusters,
    createdAt: t.createdAt.toISOString(), lastUsedAt: t.lastUsedAt?.toISOString() ?? null,
  };
}

export function newSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64url');
}

export function createTokenService(store: TokenStore): TokenService {
  return {
    async create(request) {
      const { name } = request;
      if (typeof name !== 'string' || !NAME.test(name)) {
        throw new AppError('VALIDATION', `token name '${String(name)}' is not valid (1 to 100 letters, digits, spaces and ._:@/-, starting with a letter or digit)`);
      }
      const scopes = [...new Set(request.scopes)];
      if (scopes.length === 0) throw new AppError('VALIDATION', `a token needs at least one scope (${SCOPES.join(', ')})`);
      for (const s of scopes) {
        if (!(SCOPES as readonly string[]).includes(s)) throw new AppError('VALIDATION', `scope '${s}' is not one of ${SCOPES.join(', ')}`);
      }
      const clusters = [...new Set(request.clusters ?? ['*'])];
      if (clusters.length === 0) throw new AppError('VALIDATION', 'a token needs at least one cluster pattern (`*` for every cluster)');
      for (const c of clusters) {
        if (typeof c !== 'string' || !CLUSTER_PATTERN.test(c)) {
          throw new AppError('VALIDATION', `cluster pattern '${String(c)}' is not valid (letters, digits, '.', '_', '-' and '*')`);
        }
      }
      const ordered = SCOPES.filter((s): s is Scope => scopes.includes(s));
      const secret = newSecret();
      const stored = await store.create({
        name, secretSha256: sha256(secret), hint: secret.slice(0, HINT_LENGTH), scopes: ordered,
        // An admin has every cluster: patterns would only mislead.
        clusters: ordered.includes('admin') ? ['*'] : clusters,
      });
      if (!stored) throw new AppError('CONFLICT', `a token named '${name}' exists; revoke it first or choose another name`);
      return { ...view(stored), secret };
    },

    async list() {
      return (await store.list()).map(view);
    },

    async revoke(idOrName) {
      const gone = await store.delete(idOrName);
      if (!gone) throw new AppError('NOT_FOUND', `token ${idOrName} not found`);
      return view(gone);
    },
  };
}
