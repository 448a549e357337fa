/**
 * The service's configuration, read from the environment once at start and
 * validated as a whole: every problem is reported in one error, so a bad
 * deployment fails at boot with the full list rather than one variable at a time.
 */

import { availableParallelism } from 'node:os';
import { DEFAULT_LIMITS } from './services/limits.ts';
import type { Limits } from './services/limits.ts';

const MIB = 1024 * 1024;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  /** TCP port the HTTP server listens on. */
  readonly port: number;
  /** Address the HTTP server binds to (default 127.0.0.1: see authMode). */
  readonly host: string;
  /** PostgreSQL URL; when absent the embedded server is started in `dataDir`. */
  readonly databaseUrl: string | undefined;
  /**
   * Where the embedded PostgreSQL keeps its files: `./.svcpath-data`, or `/var/lib/svcpath/data`
   * when running as root (PostgreSQL then runs as the OS user postgres, which must reach it).
   */
  readonly dataDir: string;
  /** Largest accepted request body in MiB (BODY_LIMIT_MB) ... */
  readonly bodyLimitMb: number;
  /** ... and the same in bytes, as fastify's `bodyLimit` wants it. */
  readonly bodyLimitBytes: number;
  readonly logLevel: LogLevel;
  /** Largest node dump or manifests in an upload, inflated (SVCPATH_NODE_LIMIT_MB) ... */
  readonly nodeLimitBytes: number;
  /** ... and largest multipart upload in all, inflated (SVCPATH_UPLOAD_LIMIT_MB). */
  readonly uploadLimitBytes: number;
  /** Memory for what the services keep between requests, per cache (SVCPATH_CACHE_MB and SVCPATH_*_CACHE_MB). */
  readonly caches: CacheBudgets;
  /** Worker threads that parse uploaded dumps; 0 parses on the main thread (SVCPATH_PARSE_THREADS). */
  readonly parseThreads: number;
  /** How long an upload in steps may stay uncommitted (SVCPATH_UPLOAD_TTL: 24h, 30m, 90s). */
  readonly uploadTtlMs: number;
  /** How often expired uploads and unreferenced storage are swept (SVCPATH_SWEEP_INTERVAL, 10m). */
  readonly sweepIntervalMs: number;
  /** Worker threads for audits and diffs (SVCPATH_ANALYSIS_THREADS) ... */
  readonly analysisThreads: number;
  /** ... the heap of each, MiB (SVCPATH_ANALYSIS_HEAP_MB) ... */
  readonly analysisHeapMb: number;
  /** ... and how many may wait for one before 503 (SVCPATH_ANALYSIS_QUEUE). */
  readonly analysisQueue: number;
  /**
   * Inflated chunks of stored dumps kept by the server and by each analysis worker, bytes
   * (SVCPATH_CHUNK_CACHE_MB, 64; 0 keeps none): the nodes of a cluster share almost all their
   * chunks, so reading every node's dump (an audit, a diff, the first trace after a restart)
   * fetches and inflates little more than one dump. Outside the heap.
   */
  readonly chunkCacheBytes: number;
  /** A connection that sends nothing for this long is closed (SVCPATH_IDLE_TIMEOUT_S) ... */
  readonly idleTimeoutMs: number;
  /** ... a request whose headers and body take longer than this gets 408 (SVCPATH_REQUEST_TIMEOUT_S) ... */
  readonly requestTimeoutMs: number;
  /** ... and connections beyond this many are refused (SVCPATH_MAX_CONNECTIONS). */
  readonly maxConnections: number;
  /** Memory all request bodies being read may cost together; past it, 503 (SVCPATH_INFLIGHT_MB). */
  readonly inflightBytes: number;
  /** SVCPATH_ADMIN_TOKEN: a bearer token with every scope on every cluster. */
  readonly adminToken: string | undefined;
  /**
   * SVCPATH_AUTH. `auto`: tokens are required once one is configured (SVCPATH_ADMIN_TOKEN or a
   * stored token); until then requests are anonymous admins, and only a loopback HOST is allowed.
   * `on`: tokens always. `off`: no authentication, on any HOST.
   */
  readonly authMode: 'auto' | 'on' | 'off';
  /** SVCPATH_RETENTION (`keep=100`, `days=30`, or both): which old snapshots are deleted; null keeps all. */
  readonly retention: RetentionPolicy | null;
  /** What one request may hold (README "Limits"): labels, manifests, GraphQL operations. */
  readonly limits: Limits;
}

/**
 * What each cache of the services may hold, in bytes (services/byte-cache.ts: entries weighed by
 * an estimate, the least recently used going first). The defaults add up to about 2 GiB, which
 * fits a 4 GiB heap with room for requests in flight and one node's dump per parse thread.
 */
export interface CacheBudgets {
  /** Parsed dumps, for traces of snapshots and of pasted rules (SVCPATH_CACHE_MB, 1536). */
  readonly rulesets: number;
  /** Manifests read into cluster models, for traces of snapshots (SVCPATH_MANIFEST_CACHE_MB, 256). */
  readonly manifests: number;
  /** Parsed routes of nodes (SVCPATH_ROUTE_CACHE_MB, 16). */
  readonly routes: number;
  /** Audit reports (SVCPATH_AUDIT_CACHE_MB, 64). */
  readonly audits: number;
  /** Diffs of snapshot pairs, paged from memory (SVCPATH_DIFF_CACHE_MB, 128). */
  readonly diffs: number;
  /** Snapshots and their nodes, reused by traces for a minute (SVCPATH_METADATA_CACHE_MB, 16). */
  readonly metadata: number;
}

export const DEFAULT_CACHE_BUDGETS: CacheBudgets = Object.freeze({
  rulesets: 1536 * MIB,
  manifests: 256 * MIB,
  routes: 16 * MIB,
  audits: 64 * MIB,
  diffs: 128 * MIB,
  metadata: 16 * MIB,
});

/** SVCPATH_CACHE_MB (parsed dumps) and SVCPATH_<NAME>_CACHE_MB for the others, in MiB. */
function cacheBudgets(env: Env, problems: string[]): CacheBudgets {
  const d = DEFAULT_CACHE_BUDGETS;
  const mib = (name: string, bytes: number, min: number) => integer(env, name, bytes / MIB, min, 1024 * 1024, problems) * MIB;
  return Object.freeze({
    rulesets: mib('SVCPATH_CACHE_MB', d.rulesets, 16),
    manifests: mib('SVCPATH_MANIFEST_CACHE_MB', d.manifests, 1),
    routes: mib('SVCPATH_ROUTE_CACHE_MB', d.routes, 1),
    audits: mib('SVCPATH_AUDIT_CACHE_MB', d.audits, 1),
    diffs: mib('SVCPATH_DIFF_CACHE_MB', d.diffs, 1),
    metadata: mib('SVCPATH_METADATA_CACHE_MB', d.metadata, 1),
  });
}

/** A snapshot goes once it is not among its cluster's `keep` newest, or is older than `days`; a cluster's latest never goes. */
export interface RetentionPolicy {
  readonly keep: number | null;
  readonly days: number | null;
}

export class ConfigError extends Error {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = Object.freeze([...problems]);
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/** An unset variable and one set to the empty string both mean "use the default". */
function read(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function integer(
  env: Env,
  name: string,
  fallback: number,
  min: number,
  max: number,
  problems: string[],
): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) {
    problems.push(`${name} must be a whole number, got ${JSON.stringify(raw)}`);
    return fallback;
  }
  const value = Number(raw);
  if (value < min || value > max) {
    problems.push(`${name} must be between ${min} and ${max}, got ${value}`);
    return fallback;
  }
  return value;
}

/** The SVCPATH_MAX_* and SVCPATH_*_MAX_* variables, each defaulting to DEFAULT_LIMITS. */
function limits(env: Env, problems: string[]): Limits {
  const d = DEFAULT_LIMITS;
  const mb = (bytes: number) => bytes / (1024 * 1024);
  return Object.freeze({
    maxLabels: integer(env, 'SVCPATH_MAX_LABELS', d.maxLabels, 0, 10_000, problems),
    maxLabelValue: integer(env, 'SVCPATH_MAX_LABEL_VALUE', d.maxLabelValue, 0, 1_000_000, problems),
    manifestsMaxBytes: integer(env, 'SVCPATH_MANIFESTS_MAX_MB', mb(d.manifestsMaxBytes), 1, 4096, problems) * 1024 * 1024,
    // Past about a thousand levels the parsers run out of stack.
    manifestsMaxDepth: integer(env, 'SVCPATH_MANIFESTS_MAX_DEPTH', d.manifestsMaxDepth, 1, 500, problems),
    manifestsMaxValues: integer(env, 'SVCPATH_MANIFESTS_MAX_VALUES', d.manifestsMaxValues, 1, 1_000_000_000, problems),
    graphqlMaxDepth: integer(env, 'SVCPATH_GRAPHQL_MAX_DEPTH', d.graphqlMaxDepth, 1, 100, problems),
    graphqlMaxAliases: integer(env, 'SVCPATH_GRAPHQL_MAX_ALIASES', d.graphqlMaxAliases, 0, 10_000, problems),
    graphqlMaxCost: integer(env, 'SVCPATH_GRAPHQL_MAX_COST', d.graphqlMaxCost, 1, 100_000_000, problems),
    graphqlMaxTokens: integer(env, 'SVCPATH_GRAPHQL_MAX_TOKENS', d.graphqlMaxTokens, 100, 10_000_000, problems),
  });
}

const UNITS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 };

/** A duration such as `90s`, `30m`, `24h` or `7d` (a bare number is seconds), from 1 s to a year. */
function duration(env: Env, name: string, fallback: number, problems: string[]): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  const m = /^(\d+)\s*([smhd]?)$/i.exec(raw);
  const ms = m ? Number(m[1]) * UNITS[(m[2] || 's').toLowerCase()] : NaN;
  if (!(ms >= 1000 && ms <= 365 * UNITS.d)) {
    problems.push(`${name} must be a duration such as 90s, 30m, 24h or 7d (1 s to 365 d), got ${JSON.stringify(raw)}`);
    return fallback;
  }
  return ms;
}

function databaseUrl(env: Env, problems: string[]): string | undefined {
  const raw = read(env, 'DATABASE_URL');
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    problems.push('DATABASE_URL is not a valid URL');
    return undefined;
  }
  if (url.protocol !== 'postgresql:' && url.protocol !== 'postgres:') {
    problems.push(`DATABASE_URL must start with postgresql:// or postgres://, got ${url.protocol}//`);
    return undefined;
  }
  return raw;
}

function logLevel(env: Env, problems: string[]): LogLevel {
  const raw = read(env, 'LOG_LEVEL')?.toLowerCase();
  if (raw === undefined) return 'info';
  if ((LOG_LEVELS as readonly string[]).includes(raw)) return raw as LogLevel;
  problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(raw)}`);
  return 'info';
}

const AUTH_MODES = ['auto', 'on', 'off'] as const;

function authMode(env: Env, problems: string[]): Config['authMode'] {
  const raw = read(env, 'SVCPATH_AUTH')?.toLowerCase();
  if (raw === undefined) return 'auto';
  if ((AUTH_MODES as readonly string[]).includes(raw)) return raw as Config['authMode'];
  problems.push(`SVCPATH_AUTH must be one of ${AUTH_MODES.join(', ')}, got ${JSON.stringify(raw)}`);
  return 'auto';
}

/** `keep=N` and/or `days=D`, separated by commas or spaces; `off` (or unset) keeps every snapshot. */
export function parseRetention(text: string | undefined, problems: string[] = []): RetentionPolicy | null {
  const raw = text?.trim().toLowerCase();
  if (raw === undefined || raw === '' || raw === 'off') return null;
  const limits: { keep: number | null; days: number | null } = { keep: null, days: null };
  const bounds = { keep: 1_000_000, days: 36_500 };
  for (const part of raw.split(/[\s,]+/).filter(Boolean)) {
    const m = /^(keep|days)=(\d+)$/.exec(part);
    if (!m) {
      problems.push(`SVCPATH_RETENTION must be keep=N and/or days=N (e.g. "keep=100,days=30") or off, got ${JSON.stringify(part)}`);
      continue;
    }
    const key = m[1] as 'keep' | 'days';
    const value = Number(m[2]);
    if (value < 1 || value > bounds[key]) problems.push(`SVCPATH_RETENTION ${key} must be between 1 and ${bounds[key]}, got ${value}`);
    else limits[key] = value;
  }
  return limits.keep === null && limits.days === null ? null : limits;
}
/** The embedded PostgreSQL's data directory when SVCPATH_DATA_DIR is not set. */
export const DEFAULT_DATA_DIR = './.svcpath-data';
/**
 * ... and when running as root. The embedded PostgreSQL then runs as the OS user postgres, which
 * cannot enter a home directory of mode 0700 (root's, or a `mktemp -d` one) holding the clone.
 */
export const ROOT_DATA_DIR = '/var/lib/svcpath/data';

/**
 * Reads PORT, HOST, DATABASE_URL, SVCPATH_DATA_DIR, BODY_LIMIT_MB, LOG_LEVEL, SVCPATH_NODE_LIMIT_MB,
 * SVCPATH_UPLOAD_LIMIT_MB, SVCPATH_CACHE_MB and SVCPATH_*_CACHE_MB (see cacheBudgets), SVCPATH_PARSE_THREADS, SVCPATH_UPLOAD_TTL, SVCPATH_SWEEP_INTERVAL,
 * SVCPATH_ANALYSIS_THREADS / _HEAP_MB / _QUEUE, SVCPATH_IDLE_TIMEOUT_S, SVCPATH_REQUEST_TIMEOUT_S,
 * SVCPATH_MAX_CONNECTIONS, SVCPATH_INFLIGHT_MB, SVCPATH_ADMIN_TOKEN, SVCPATH_AUTH, SVCPATH_RETENTION and the limits
 * (SVCPATH_MAX_LABELS … SVCPATH_GRAPHQL_MAX_TOKENS; see `limits` above).
 * Throws a ConfigError listing every invalid value.
 */
export function loadConfig(env: Env = process.env, asRoot: boolean = process.getuid?.() === 0): Config {
  const problems: string[] = [];
  const bodyLimitMb = integer(env, 'BODY_LIMIT_MB', 200, 1, 4096, problems);
  const config: Config = {
    port: integer(env, 'PORT', 8080, 0, 65535, problems),
    host: read(env, 'HOST') ?? '127.0.0.1',
    databaseUrl: databaseUrl(env, problems),
    dataDir: read(env, 'SVCPATH_DATA_DIR') ?? (asRoot ? ROOT_DATA_DIR : DEFAULT_DATA_DIR),
    bodyLimitMb,
    bodyLimitBytes: bodyLimitMb * 1024 * 1024,
    logLevel: logLevel(env, problems),
    nodeLimitBytes: integer(env, 'SVCPATH_NODE_LIMIT_MB', 256, 1, 4096, problems) * MIB,
    uploadLimitBytes: integer(env, 'SVCPATH_UPLOAD_LIMIT_MB', 4096, 1, 1024 * 1024, problems) * MIB,
    caches: cacheBudgets(env, problems),
    parseThreads: integer(env, 'SVCPATH_PARSE_THREADS', Math.max(1, Math.min(4, availableParallelism() - 1)), 0, 64, problems),
    uploadTtlMs: duration(env, 'SVCPATH_UPLOAD_TTL', 24 * 3600_000, problems),
    sweepIntervalMs: duration(env, 'SVCPATH_SWEEP_INTERVAL', 10 * 60_000, problems),
    analysisThreads: integer(env, 'SVCPATH_ANALYSIS_THREADS', 1, 1, 64, problems),
    analysisHeapMb: integer(env, 'SVCPATH_ANALYSIS_HEAP_MB', 2048, 128, 1024 * 1024, problems),
    analysisQueue: integer(env, 'SVCPATH_ANALYSIS_QUEUE', 16, 0, 10_000, problems),
    chunkCacheBytes: integer(env, 'SVCPATH_CHUNK_CACHE_MB', 64, 0, 1024 * 1024, problems) * 1024 * 1024,
    idleTimeoutMs: integer(env, 'SVCPATH_IDLE_TIMEOUT_S', 30, 1, 3600, problems) * 1000,
    requestTimeoutMs: integer(env, 'SVCPATH_REQUEST_TIMEOUT_S', 600, 1, 24 * 3600, problems) * 1000,
    maxConnections: integer(env, 'SVCPATH_MAX_CONNECTIONS', 1000, 1, 1_000_000, problems),
    inflightBytes: integer(env, 'SVCPATH_INFLIGHT_MB', 1024, 1, 1024 * 1024, problems) * MIB,
    adminToken: read(env, 'SVCPATH_ADMIN_TOKEN'),
    authMode: authMode(env, problems),
    retention: parseRetention(env.SVCPATH_RETENTION, problems),
    limits: limits(env, problems),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}
