/**
 * The service's configuration, read from the environment once at start and
 * validated as a whole: every problem is reported in one error, so a bad
 * deployment fails at boot with the full list rather than one variable at a time.
 */

import { DEFAULT_LIMITS } from './services/limits.ts';
import type { Limits } from './services/limits.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  /** TCP port the HTTP server listens on. */
  readonly port: number;
  /** Address the HTTP server binds to. */
  readonly host: string;
  /** PostgreSQL URL; when absent the embedded server is started in `dataDir`. */
  readonly databaseUrl: string | undefined;
  /** Where the embedded PostgreSQL keeps its files. */
  readonly dataDir: string;
  /** Largest accepted request body in MiB (BODY_LIMIT_MB) ... */
  readonly bodyLimitMb: number;
  /** ... and the same in bytes, as fastify's `bodyLimit` wants it. */
  readonly bodyLimitBytes: number;
  readonly logLevel: LogLevel;
  /** What one request may hold (README "Limits"): labels, manifests, GraphQL operations. */
  readonly limits: Limits;
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

/**
 * Reads PORT, HOST, DATABASE_URL, SVCPATH_DATA_DIR, BODY_LIMIT_MB, LOG_LEVEL and the limits
 * (SVCPATH_MAX_LABELS … SVCPATH_GRAPHQL_MAX_TOKENS; see `limits` above).
 * Throws a ConfigError listing every invalid value.
 */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const bodyLimitMb = integer(env, 'BODY_LIMIT_MB', 200, 1, 4096, problems);
  const config: Config = {
    port: integer(env, 'PORT', 8080, 0, 65535, problems),
    host: read(env, 'HOST') ?? '0.0.0.0',
    databaseUrl: databaseUrl(env, problems),
    dataDir: read(env, 'SVCPATH_DATA_DIR') ?? './.svcpath-data',
    bodyLimitMb,
    bodyLimitBytes: bodyLimitMb * 1024 * 1024,
    logLevel: logLevel(env, problems),
    limits: limits(env, problems),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}
