import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.ts';

describe('loadConfig', () => {
  test('defaults', () => {
    const config = loadConfig({}, false);
    assert.deepEqual(
      { ...config },
      {
        port: 8080,
        host: '0.0.0.0',
        databaseUrl: undefined,
        dataDir: './.svcpath-data',
        bodyLimitMb: 200,
        bodyLimitBytes: 200 * 1024 * 1024,
        logLevel: 'info',
      },
    );
    assert.ok(Object.isFrozen(config));
  });

  test('as root, the embedded database lives where the OS user postgres can reach it', () => {
    assert.equal(loadConfig({}, true).dataDir, '/var/lib/svcpath/data');
    assert.equal(loadConfig({ SVCPATH_DATA_DIR: './mine' }, true).dataDir, './mine');
  });

  test('reads every variable', () => {
    const config = loadConfig({
      PORT: '3000',
      HOST: '127.0.0.1',
      DATABASE_URL: 'postgresql://u:p@db:5432/svcpath',
      SVCPATH_DATA_DIR: '/var/lib/svcpath',
      BODY_LIMIT_MB: '16',
      LOG_LEVEL: 'DEBUG',
    });
    assert.equal(config.port, 3000);
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.databaseUrl, 'postgresql://u:p@db:5432/svcpath');
    assert.equal(config.dataDir, '/var/lib/svcpath');
    assert.equal(config.bodyLimitBytes, 16 * 1024 * 1024);
    assert.equal(config.logLevel, 'debug');
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

  test('never echoes a DATABASE_URL, which may hold a password', () => {
    assert.throws(
      () => loadConfig({ DATABASE_URL: 'mysql://user:hunter2@db/x' }),
      (error: unknown) => error instanceof Error && !error.message.includes('hunter2'),
    );
  });
});
