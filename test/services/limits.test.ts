import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '../../src/app-error.ts';
import {
  checkLabels, checkManifestsShape, checkStorableJson, checkStorableText, DEFAULT_LIMITS, locate,
} from '../../src/services/limits.ts';
import { readManifestDocuments } from '../../src/services/manifests.ts';

function refusal(fn: () => unknown): AppError {
  try {
    fn();
  } catch (e) {
    if (e instanceof AppError) return e;
    throw e;
  }
  assert.fail('expected an AppError');
}

describe('checkLabels', () => {
  test('accepts Kubernetes label keys and short values', () => {
    checkLabels({});
    checkLabels({ env: 'prod', 'app.kubernetes.io/name': 'web', 'example.com/Tier_1.a-b': '', a: 'x'.repeat(256), A9: 'ünïcödé 😀' });
    checkLabels({ [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}/${'n'.repeat(63)}`]: 'v' });
  });

  test('refuses more than 64 labels', () => {
    const labels = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v']));
    const e = refusal(() => checkLabels(labels));
    assert.equal(e.code, 'VALIDATION');
    assert.equal(e.status, 400);
    assert.match(e.message, /too many labels: 65, at most 64/);
    checkLabels(labels, { maxLabels: 65, maxLabelValue: 256 });
  });

  for (const [key, why] of [
    ['', /empty name/],
    ['-a', /not letters/],
    ['a-', /not letters/],
    ['a b', /not letters/],
    ['a'.repeat(64), /longer than 63/],
    ['/a', /empty prefix/],
    ['Example.com/a', /DNS subdomain/],
    ['exa_mple.com/a', /DNS subdomain/],
    ['example..com/a', /DNS subdomain/],
    [`${'p'.repeat(254)}/a`, /prefix longer than 253/],
    ['example.com/', /empty name/],
    ['a/b/c', /not letters/],
    ['a\0b', /not letters/],
  ] as const) {
    test(`refuses the key ${JSON.stringify(key.length > 20 ? `${key.slice(0, 20)}…` : key)}, naming it`, () => {
      const e = refusal(() => checkLabels({ [key]: 'v' }));
      assert.equal(e.code, 'VALIDATION');
      assert.match(e.message, why);
      assert.ok(e.message.startsWith('label "'));
      assert.ok(e.message.length < 300);
    });
  }

  test('refuses a value over 256 characters, and a 100 MB one quickly, naming the label', () => {
    assert.match(refusal(() => checkLabels({ team: 'x'.repeat(257) })).message, /label "team" has a value of 257 characters, at most 256/);
    const started = performance.now();
    const e = refusal(() => checkLabels({ big: 'x'.repeat(100 * 1024 * 1024) }));
    assert.ok(performance.now() - started < 1000);
    assert.ok(e.message.length < 200);
  });

  test('refuses a value PostgreSQL cannot store', () => {
    assert.match(refusal(() => checkLabels({ team: 'a\0b' })).message, /label "team" contains a NUL character/);
  });
});

describe('checkStorableText', () => {
  test('accepts any well-formed text without NUL', () => {
    checkStorableText('', 'rules');
    checkStorableText('-A X -m comment --comment "ünïcödé 😀 \\x00"\n', 'rules');
  });

  test('refuses NUL with line, column and a bounded excerpt', () => {
    const text = `*filter\n-A INPUT -m comment --comment "a\0b" -j ACCEPT\nCOMMIT\n`;
    const e = refusal(() => checkStorableText(text, 'node a: rules'));
    assert.equal(e.code, 'VALIDATION');
    assert.match(e.message, /^node a: rules contains a NUL character \(0x00\), which PostgreSQL cannot store in text \(line 2, column 33\)$/);
    assert.equal(e.details.line, 2);
    assert.equal(e.details.column, 33);
    assert.equal(e.details.text, '-A INPUT -m comment --comment "a␀b" -j ACCEPT');
    assert.match(String(e.details.excerpt), /^2 \| -A INPUT.*\n {36}\^$/);
  });

  test('refuses NUL in a 10 MB line with a 200-character excerpt', () => {
    const line = `${'x'.repeat(5_000_000)}\0${'y'.repeat(5_000_000)}`;
    const e = refusal(() => checkStorableText(`first\n${line}\n`, 'manifests'));
    assert.equal(e.details.line, 2);
    assert.equal(e.details.column, 5_000_001);
    assert.ok(String(e.details.text).length <= 200);
    assert.ok(String(e.details.excerpt).length < 450);
  });

  test('refuses a lone surrogate, not a pair', () => {
    checkStorableText('😀', 'x');
    const e = refusal(() => checkStorableText('ab\ud800c', 'cluster name'));
    assert.match(e.message, /^cluster name contains a lone UTF-16 surrogate \(U\+D800\), which has no UTF-8 form \(line 1, column 3\)$/);
    assert.match(refusal(() => checkStorableText('\udc00', 'x')).message, /U\+DC00/);
  });
});

describe('checkStorableJson', () => {
  test('accepts plain values and refuses NUL or a lone surrogate anywhere, saying where', () => {
    checkStorableJson({ services: 3, notes: ['Pod default/a appears more than once'], nested: [{ a: null, b: true }] }, 'manifests summary');
    assert.match(refusal(() => checkStorableJson({ notes: ['ok', 'Pod default/a\0b appears more than once'] }, 'manifests summary')).message,
      /^manifests summary at notes\[1\] contains a NUL character/);
    assert.match(refusal(() => checkStorableJson({ tables: [{ name: 'x\ud800' }] }, 'node a: summary')).message, /^node a: summary at tables\[0\]\.name contains a lone UTF-16 surrogate/);
    assert.match(refusal(() => checkStorableJson({ 'k\0': 1 }, 'labels')).message, /^labels: a key contains a NUL/);
  });
});

describe('manifests limits', () => {
  test('YAML nested 12,000 levels (27 KB) is refused before parsing, with where', () => {
    const text = `kind: List\nitems:\n- ${'- '.repeat(12_000)}x\n`;
    const started = performance.now();
    const e = refusal(() => readManifestDocuments(text));
    assert.ok(performance.now() - started < 200, 'refused without parsing');
    assert.equal(e.code, 'VALIDATION');
    assert.match(e.message, /^manifests: nested more than 100 levels deep \(SVCPATH_MANIFESTS_MAX_DEPTH\) \(line 3, column \d+\)$/);
    assert.equal(e.details.line, 3);
    assert.ok(String(e.details.text).length <= 200);
  });

  test('JSON nested 100,000 levels is refused, brackets inside strings are not counted', () => {
    const e = refusal(() => readManifestDocuments(`{"a": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`));
    assert.match(e.message, /nested more than 100 levels deep.*\(line 1, column 106\)/);
    checkManifestsShape(`{"a": "${'['.repeat(1000)}", "b": "\\"[[["}`);
  });

  test('flow collections and compact sequences count; block scalars, quotes and comments do not', () => {
    const limits = { ...DEFAULT_LIMITS, manifestsMaxDepth: 5 };
    assert.throws(() => checkManifestsShape('a: [[[[[[1]]]]]]\n', limits), /nested more than 5/);
    assert.throws(() => checkManifestsShape('a:\n  b:\n    c:\n      d:\n        e:\n          f: 1\n', limits), /nested more than 5/);
    assert.throws(() => checkManifestsShape('- - - - - - x\n', limits), /nested more than 5/);
    checkManifestsShape(`a: |\n  ${'['.repeat(50)}\n  ${'- '.repeat(50)}\nb: "${'{'.repeat(50)}"\nc: '[[''[[' # ${'['.repeat(50)}\nd: x[[[[[[[[\n`, limits);
  });

  test('every manifest of the test corpus passes, in JSON and as YAML', async () => {
    const { stringify } = await import('yaml');
    const { readdirSync, readFileSync, statSync } = await import('node:fs');
    // eslint-disable-next-line @typescript-eslint/unbound-method -- node:path's join uses no `this`
    const { join } = await import('node:path');
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const f of readdirSync(dir)) {
        const p = join(dir, f);
        if (statSync(p).isDirectory()) walk(p);
        else if (f === 'manifests.json') files.push(p);
      }
    };
    walk('test/fixtures');
    assert.ok(files.length > 20);
    for (const f of files) {
      const json = readFileSync(f, 'utf8');
      readManifestDocuments(json);
      readManifestDocuments(stringify(JSON.parse(json)));
    }
  });

  test('manifests over the size limit are refused', () => {
    const limits = { ...DEFAULT_LIMITS, manifestsMaxBytes: 1000 };
    assert.match(refusal(() => readManifestDocuments(`kind: List\nitems: []\n# ${'x'.repeat(1000)}\n`, limits)).message, /larger than 1000 bytes/);
    // Bytes of UTF-8, not characters.
    assert.match(refusal(() => readManifestDocuments(`# ${'é'.repeat(600)}\n`, limits)).message, /larger than 1000 bytes/);
  });

  test('more values than the limit are refused before parsing: 10 MB of [a,a,… is five million', () => {
    const started = performance.now();
    const e = refusal(() => readManifestDocuments(`kind: List\nitems: [${'a,'.repeat(5_000_000)}a]\n`));
    assert.ok(performance.now() - started < 500, 'refused without parsing');
    assert.match(e.message, /^manifests: more than 2000000 values \(SVCPATH_MANIFESTS_MAX_VALUES\) \(line 2, column \d+\)$/);
    const limits = { ...DEFAULT_LIMITS, manifestsMaxValues: 10 };
    checkManifestsShape('a: 1\nb: [1, 2]\nc:\n- x\n', limits);
    assert.throws(() => checkManifestsShape('a: 1\nb: [1, 2, 3, 4, 5, 6, 7, 8, 9]\n', limits), /more than 10 values/);
    // JSON counts its objects and lists only.
    checkManifestsShape(`{"a": [${'1,'.repeat(100)}1]}`, limits);
    assert.throws(() => checkManifestsShape(`[${'{},'.repeat(10)}{}]`, limits), /more than 10 objects and lists/);
  });

  test('YAML aliases that expand a billion times are a 400, not a 500', () => {
    let yaml = 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n';
    for (let i = 1; i < 9; i++) yaml += `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]\n`;
    const e = refusal(() => readManifestDocuments(yaml));
    assert.equal(e.code, 'VALIDATION');
    assert.match(e.message, /^manifests: document 1: YAML aliases expand too much/);
    // A few aliases are fine.
    readManifestDocuments('a: &x {k: v}\nb: *x\nc: *x\n');
  });

  test('a syntax error in a 10 MB line quotes 200 characters of it', () => {
    const e = refusal(() => readManifestDocuments(`kind: List\nitems: ["${'a'.repeat(10_000_000)}\n`));
    assert.equal(e.code, 'MANIFEST_SYNTAX');
    assert.ok(String(e.details.text).length <= 200, String(e.details.text).length.toString());
    assert.ok(String(e.details.excerpt).length < 450);
    assert.ok(e.message.length < 600);
  });
});

test('locate cuts long lines around the offset', () => {
  const at = locate(`a\n${'b'.repeat(1000)}X${'c'.repeat(1000)}\n`, 2 + 1000);
  assert.equal(at.line, 2);
  assert.equal(at.column, 1001);
  assert.ok(at.text.length <= 200);
  const [line, caret] = at.excerpt.split('\n');
  assert.equal(line[caret.indexOf('^')], 'X');
});
