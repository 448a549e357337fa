import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError } from '../../src/app-error.ts';
import { decodeCursor, encodeCursor } from '../../src/services/cursor.ts';

const refused = (message: RegExp) => (e: unknown) => {
  assert.ok(e instanceof AppError);
  assert.equal(e.code, 'VALIDATION');
  assert.equal(e.status, 400);
  assert.match(e.message, message);
  return true;
};

test('a cursor gives back its position, in its own list only', () => {
  for (const at of [0, 1, 41, 999_999, Number.MAX_SAFE_INTEGER]) {
    const c = encodeCursor('snapshots', at);
    assert.match(c, /^[A-Za-z0-9_-]+$/, 'base64url: safe in a query string');
    assert.equal(decodeCursor('snapshots', c), at);
    assert.equal(decodeCursor('diff', encodeCursor('diff', at)), at);
  }
  assert.throws(() => decodeCursor('diff', encodeCursor('snapshots', 3)), refused(/a cursor of the snapshots list, not of the diff list/));
});

test('anything else is a clear 400', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64url');
  const garbage = [
    'x', '%00', 'not a cursor', 'eyJ9', 'MTA=',
    b64('v12'), b64('o100'), // the formats before this one
    b64('{"list":"snapshots"}'), b64('{"list":"snapshots","at":-1}'), b64('{"list":"snapshots","at":1.5}'),
    b64('{"list":"snapshots","at":"3"}'), b64('[1,2]'), b64('null'), b64('{"list":7,"at":3}'),
  ];
  for (const g of garbage) {
    assert.throws(() => decodeCursor('snapshots', g), refused(/invalid cursor .*pass nextCursor of the previous page/), g);
  }
  const long = 'A'.repeat(10_000);
  assert.throws(() => decodeCursor('snapshots', long), (e: unknown) => e instanceof AppError && e.message.length < 300);
});
