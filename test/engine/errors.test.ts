import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineError, parseDump } from '../../src/engine/index.ts';
import { clipLine, clipMessage, EXCERPT_WIDTH, MAX_MESSAGE, syntaxError } from '../../src/engine/errors.ts';

function thrown(fn: () => unknown): EngineError {
  try {
    fn();
  } catch (e) {
    if (e instanceof EngineError) return e;
    throw e;
  }
  assert.fail('expected an EngineError');
}

test('a short line is quoted whole, with the caret under the column', () => {
  const e = syntaxError('bad', 3, 5, '-A X --bogus');
  assert.equal(e.location?.text, '-A X --bogus');
  assert.equal(e.excerpt(), '3 | -A X --bogus\n        ^');
});

test('a 10 MB line is quoted as 200 characters around the column, the caret still under it', () => {
  const line = `${'a'.repeat(5_000_000)}X${'b'.repeat(5_000_000)}`;
  const e = syntaxError('bad', 7, 5_000_001, line);
  const text = e.location!.text;
  assert.ok(text.length <= EXCERPT_WIDTH, `${text.length} characters`);
  assert.ok(text.startsWith('…') && text.endsWith('…'));
  assert.equal(e.location!.column, 5_000_001);
  const [quoted, caret] = e.excerpt()!.split('\n');
  assert.equal(quoted[caret.indexOf('^')], 'X');
  assert.ok(e.excerpt()!.length < 2 * EXCERPT_WIDTH + 20);
});

test('near either end of a long line the cut is on one side only', () => {
  const line = 'x'.repeat(1000);
  assert.deepEqual(clipLine(line, 1), { text: `${'x'.repeat(198)}…`, caret: 0 });
  const end = clipLine(line, 1000);
  assert.equal(end.text, `…${'x'.repeat(198)}`);
  assert.equal(end.caret, 198);
});

test('a cut never splits a surrogate pair', () => {
  const line = '😀'.repeat(500);
  for (const column of [1, 2, 101, 102, 500, 999, 1000]) {
    const { text } = clipLine(line, column);
    assert.ok(text.length <= EXCERPT_WIDTH);
    assert.doesNotMatch(text, /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/, `column ${column}`);
  }
});

test('a message quoting a huge word keeps its start and end', () => {
  const m = clipMessage(`unknown table '${'t'.repeat(1_000_000)}': expected filter, nat, mangle, raw or security`);
  assert.ok(m.length <= MAX_MESSAGE);
  assert.match(m, /^unknown table 'ttt/);
  assert.match(m, /…t+': expected filter, nat, mangle, raw or security$/);
});

test('a dump whose 10 MB line does not parse fails with a bounded error', () => {
  const dump = `*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment "${'c'.repeat(10 * 1024 * 1024)}\nCOMMIT\n`;
  const e = thrown(() => parseDump(dump, { format: 'iptables-save' }));
  assert.equal(e.code, 'DUMP_SYNTAX');
  assert.equal(e.location?.line, 3);
  assert.ok(e.location.text.length <= EXCERPT_WIDTH);
  assert.ok(e.message.length <= MAX_MESSAGE + 40, `${e.message.length} characters`);
  assert.ok(e.excerpt()!.length < 500);
});
