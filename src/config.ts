/**
 * The service's configuration, read from the environment once at start and
 * validated as a whole: every problem is reported in one error, so a bad
 * deployment fails at boot with the full list rather than one variable at a time.
 */

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  /** TCP port the HTTP server listens on. */
  readonly port: number;
  /** Address the HTTP server binds to. */
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

/** The embedded PostgreSQL's data directory when SVCPATH_DATA_DIR is not set. */
export const DEFAULT_DATA_DIR = './.svcpath-data';
/**
 * ... and when running as root. The embedded PostgreSQL then runs as the OS user postgres, which
 * cannot enter a home directory of mode 0700 (root's, or a `mktemp -d` one) holding the clone.
 */
export const ROOT_DATA_DIR = '/var/lib/svcpath/data';

/**
 * Reads PORT, HOST, DATABASE_URL, SVCPATH_DATA_DIR, BODY_LIMIT_MB and LOG_LEVEL.
 * Throws a ConfigError listing every invalid value.
 */
export function loadConfig(env: Env = process.env, asRoot: boolean = process.getuid?.() === 0): Config {
  const problems: string[] = [];
  const bodyLimitMb = integer(env, 'BODY_LIMIT_MB', 200, 1, 4096, problems);
  const config: Config = {
    port: integer(env, 'PORT', 8080, 0, 65535, problems),
    host: read(env, 'HOST') ?? '0.0.0.0',
    databaseUrl: databaseUrl(env, problems),
    dataDir: read(env, 'SVCPATH_DATA_DIR') ?? (asRoot ? ROOT_DATA_DIR : DEFAULT_DATA_DIR),
    bodyLimitMb,
    bodyLimitBytes: bodyLimitMb * 1024 * 1024,
    logLevel: logLevel(env, problems),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}
