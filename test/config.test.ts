import { availableParallelism } from 'node:os';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, DEFAULT_CACHE_BUDGETS, loadConfig } from '../src/config.ts';
import { DEFAULT_LIMITS } from '../src/services/limits.ts';

describe('loadConfig', () => {
  test('defaults', () => {
    const config = loadConfig({}, false);
    assert.deepEqual(
      { ...config },
      {
        port: 8080,
        host: '127.0.0.1',
        databaseUrl: undefined,
        dataDir: './.svcpath-data',
        bodyLimitMb: 200,
        bodyLimitBytes: 200 * 1024 * 1024,
        logLevel: 'info',
        nodeLimitBytes: 256 * 1024 * 1024,
        uploadLimitBytes: 4096 * 1024 * 1024,
        caches: DEFAULT_CACHE_BUDGETS,
        parseThreads: Math.max(1, Math.min(4, availableParallelism() - 1)),
        uploadTtlMs: 24 * 3600_000,
        sweepIntervalMs: 600_000,
        analysisThreads: 1,
        analysisHeapMb: 2048,
        analysisQueue: 16,
        chunkCacheBytes: 64 * 1024 * 1024,
        idleTimeoutMs: 30_000,
        requestTimeoutMs: 600_000,
        maxConnections: 1000,
        inflightBytes: 1024 * 1024 * 1024,
        adminToken: undefined,
        authMode: 'auto',
        retention: null,
        limits: DEFAULT_LIMITS,
      },
    );
    assert.ok(Object.isFrozen(config));
  });

  test('every cache has a budget of bytes; together the defaults leave half of a 4 GiB heap free', () => {
    const MIB = 1024 * 1024;
    const caches = loadConfig({ SVCPATH_CACHE_MB: '512', SVCPATH_DIFF_CACHE_MB: '32', SVCPATH_METADATA_CACHE_MB: '' }, false).caches;
    assert.deepEqual(caches, { ...DEFAULT_CACHE_BUDGETS, rulesets: 512 * MIB, diffs: 32 * MIB });
    const total = Object.values(DEFAULT_CACHE_BUDGETS).reduce((a, b) => a + b, 0);
    assert.ok(total <= 2 * 1024 * MIB, `${total / MIB} MiB`);
    assert.throws(() => loadConfig({ SVCPATH_AUDIT_CACHE_MB: 'lots', SVCPATH_CACHE_MB: '8' }, false), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.deepEqual(e.problems, [
        'SVCPATH_CACHE_MB must be between 16 and 1048576, got 8',
        'SVCPATH_AUDIT_CACHE_MB must be a whole number, got "lots"',
      ]);
      return true;
    });
  });

  test('as root, the embedded database lives where the OS user postgres can reach it', () => {
    assert.equal(loadConfig({}, true).dataDir, '/var/lib/svcpath/data');
    assert.equal(loadConfig({ SVCPATH_DATA_DIR: './mine' }, true).dataDir, './mine');
  });

  test('reads every variable', () => {
    const config = loadConfig({
      PORT: '3000',
      HOST: '0.0.0.0',
      DATABASE_URL: 'postgresql://u:p@db:5432/svcpath',
      SVCPATH_DATA_DIR: '/var/lib/svcpath',
      BODY_LIMIT_MB: '16',
      LOG_LEVEL: 'DEBUG',
    });
    assert.equal(config.port, 3000);
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.databaseUrl, 'postgresql://u:p@db:5432/svcpath');
    assert.equal(config.dataDir, '/var/lib/svcpath');
    assert.equal(config.bodyLimitBytes, 16 * 1024 * 1024);
    assert.equal(config.logLevel, 'debug');
  });

  test('reads the limits', () => {
    const { limits } = loadConfig({
      SVCPATH_MAX_LABELS: '8', SVCPATH_MAX_LABEL_VALUE: '63', SVCPATH_MANIFESTS_MAX_MB: '16', SVCPATH_MANIFESTS_MAX_DEPTH: '50',
      SVCPATH_MANIFESTS_MAX_VALUES: '1000', SVCPATH_GRAPHQL_MAX_DEPTH: '8', SVCPATH_GRAPHQL_MAX_ALIASES: '5',
      SVCPATH_GRAPHQL_MAX_COST: '500', SVCPATH_GRAPHQL_MAX_TOKENS: '2000',
    });
    assert.deepEqual({ ...limits }, {
      maxLabels: 8, maxLabelValue: 63, manifestsMaxBytes: 16 * 1024 * 1024, manifestsMaxDepth: 50, manifestsMaxValues: 1000,
      graphqlMaxDepth: 8, graphqlMaxAliases: 5, graphqlMaxCost: 500, graphqlMaxTokens: 2000,
    });
    assert.throws(() => loadConfig({ SVCPATH_MANIFESTS_MAX_DEPTH: '5000', SVCPATH_GRAPHQL_MAX_COST: 'lots' }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.deepEqual(error.problems, [
        'SVCPATH_MANIFESTS_MAX_DEPTH must be between 1 and 500, got 5000',
        'SVCPATH_GRAPHQL_MAX_COST must be a whole number, got "lots"',
      ]);
      return true;
    });
  });

  test('SVCPATH_CHUNK_CACHE_MB: the analysis workers\' chunk cache, 0 for none', () => {
    assert.equal(loadConfig({ SVCPATH_CHUNK_CACHE_MB: '0' }).chunkCacheBytes, 0);
    assert.equal(loadConfig({ SVCPATH_CHUNK_CACHE_MB: '200' }).chunkCacheBytes, 200 * 1024 * 1024);
    assert.throws(() => loadConfig({ SVCPATH_CHUNK_CACHE_MB: '-1' }), ConfigError);
  });

  test('empty values mean the default', () => {
    assert.equal(loadConfig({ PORT: '', DATABASE_URL: ' ' }).port, 8080);
    assert.equal(loadConfig({ DATABASE_URL: '' }).databaseUrl, undefined);
  });

  test('invalid values are all reported in one clear error', () => {
    assert.throws(
      () => loadConfig({ PORT: '80a', BODY_LIMIT_MB: '0', DATABASE_URL: 'mysql://x/y', LOG_LEVEL: 'loud' }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.equal(error.problems.length, 4);
        assert.match(error.message, /PORT must be a whole number, got "80a"/);
        assert.match(error.message, /BODY_LIMIT_MB must be between 1 and 4096, got 0/);
        assert.match(error.message, /DATABASE_URL must start with postgresql:\/\//);
        assert.match(error.message, /LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent/);
        return true;
      },
    );
    assert.throws(() => loadConfig({ PORT: '70000' }), /PORT must be between 0 and 65535/);
    assert.throws(() => loadConfig({ DATABASE_URL: 'not a url' }), /DATABASE_URL is not a valid URL/);
  });

  test('tokens, authentication and retention', () => {
    const config = loadConfig({ SVCPATH_ADMIN_TOKEN: ' s3cret-admin ', SVCPATH_AUTH: 'OFF', SVCPATH_RETENTION: 'keep=100, days=30' });
    assert.equal(config.adminToken, 's3cret-admin');
    assert.equal(config.authMode, 'off');
    assert.deepEqual(config.retention, { keep: 100, days: 30 });
    assert.deepEqual(loadConfig({ SVCPATH_RETENTION: 'days=7' }).retention, { keep: null, days: 7 });
    assert.deepEqual(loadConfig({ SVCPATH_RETENTION: 'keep=5' }).retention, { keep: 5, days: null });
    assert.equal(loadConfig({ SVCPATH_RETENTION: 'off' }).retention, null);
    assert.equal(loadConfig({ SVCPATH_AUTH: 'on' }).authMode, 'on');
    assert.throws(
      () => loadConfig({ SVCPATH_AUTH: 'maybe', SVCPATH_RETENTION: 'keep=0,weeks=2', SVCPATH_ADMIN_TOKEN: 'hunter2' }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.deepEqual(error.problems, [
          'SVCPATH_AUTH must be one of auto, on, off, got "maybe"',
          'SVCPATH_RETENTION keep must be between 1 and 1000000, got 0',
          'SVCPATH_RETENTION must be keep=N and/or days=N (e.g. "keep=100,days=30") or off, got "weeks=2"',
        ]);
        assert.ok(!error.message.includes('hunter2'));
        return true;
      },
    );
  });

  test('never echoes a DATABASE_URL, which may hold a password', () => {
    assert.throws(
      () => loadConfig({ DATABASE_URL: 'mysql://user:hunter2@db/x' }),
      (error: unknown) => error instanceof Error && !error.message.includes('hunter2'),
    );
  });
});

describe('durations', () => {
  test('SVCPATH_UPLOAD_TTL and SVCPATH_SWEEP_INTERVAL read 90s, 30m, 24h, 7d and bare seconds', () => {
    assert.equal(loadConfig({ SVCPATH_UPLOAD_TTL: '90s' }).uploadTtlMs, 90_000);
    assert.equal(loadConfig({ SVCPATH_UPLOAD_TTL: '30m' }).uploadTtlMs, 1_800_000);
    assert.equal(loadConfig({ SVCPATH_UPLOAD_TTL: '7d' }).uploadTtlMs, 7 * 86_400_000);
    assert.equal(loadConfig({ SVCPATH_SWEEP_INTERVAL: '5' }).sweepIntervalMs, 5000);
    for (const bad of ['0s', '10x', '-1m', '400d']) {
      assert.throws(() => loadConfig({ SVCPATH_UPLOAD_TTL: bad }), /SVCPATH_UPLOAD_TTL must be a duration/);
    }
  });
});
