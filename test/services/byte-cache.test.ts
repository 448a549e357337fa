import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteCache, computeOnce, estimateBytes } from '../../src/services/byte-cache.ts';

test('entries are kept within the budget of bytes, the least recently used going first', () => {
  const cache = new ByteCache<string>({ budgetBytes: 100 });
  cache.set('a', 'A', 40);
  cache.set('b', 'B', 40);
  assert.equal(cache.bytes, 80);
  assert.equal(cache.get('a'), 'A', 'a is now the most recently used');
  cache.set('c', 'C', 40);
  assert.equal(cache.get('b'), undefined, 'b was the least recently used: it went to make room for c');
  assert.deepEqual([...cache.entries()].map(([k]) => k), ['a', 'c']);
  assert.equal(cache.bytes, 80);
  // One heavy entry evicts as many light ones as it needs, not more.
  cache.set('d', 'D', 10);
  cache.set('e', 'E', 60);
  assert.deepEqual([...cache.entries()].map(([k]) => k), ['d', 'e']);
  assert.ok(cache.bytes <= cache.budget);
});

test('an entry heavier than the budget is kept alone; replacing an entry counts it once', () => {
  const cache = new ByteCache<number>({ budgetBytes: 100 });
  cache.set('a', 1, 30);
  cache.set('huge', 2, 500);
  assert.deepEqual([...cache.entries()].map(([k]) => k), ['huge']);
  assert.equal(cache.bytes, 500);
  cache.set('a', 3, 30);
  assert.equal(cache.size, 1, 'the huge one went: it was no longer the newest');
  cache.set('a', 4, 50);
  assert.equal(cache.bytes, 50);
  assert.equal(cache.get('a'), 4);
  assert.equal(cache.delete('a'), true);
  assert.equal(cache.bytes, 0);
  assert.equal(cache.delete('a'), false);
});

test('weighing an entry again evicts others down to the budget, and overhead counts', () => {
  let shared = 0;
  const cache = new ByteCache<string>({ budgetBytes: 100, overhead: () => shared });
  cache.set('a', 'A', 20);
  cache.set('b', 'B', 20);
  cache.reweigh('a', 70);
  assert.equal(cache.bytes, 90);
  assert.equal(cache.size, 2, 'within budget, nothing goes');
  cache.reweigh('a', 90);
  assert.deepEqual([...cache.entries()].map(([k]) => k), ['b'], 'a, the least recently used, went');
  shared = 90;
  cache.set('c', 'C', 5);
  assert.deepEqual([...cache.entries()].map(([k]) => k), ['c'], 'what the entries share took the room');
  assert.equal(cache.bytes, 95);
  cache.makeRoom(10);
  assert.equal(cache.size, 1, 'the newest stays even when the room asked for is not there');
});

test('entries older than maxAgeMs are not served', () => {
  let now = 0;
  const cache = new ByteCache<string>({ budgetBytes: 100, maxAgeMs: 1000, now: () => now });
  cache.set('a', 'A', 10);
  now = 999;
  assert.equal(cache.get('a'), 'A');
  now = 1000;
  assert.equal(cache.get('a'), undefined);
  assert.equal(cache.bytes, 0, 'and it no longer counts');
});

test('a budget that is not a number of bytes is refused', () => {
  assert.throws(() => new ByteCache({ budgetBytes: Number.NaN }), RangeError);
  assert.throws(() => new ByteCache({ budgetBytes: -1 }), RangeError);
});

test('computeOnce: callers share one computation, its value is weighed when known, a failure is not kept', async () => {
  const cache = new ByteCache<Promise<string>>({ budgetBytes: 1000 });
  let runs = 0;
  let release!: (v: string) => void;
  const slow = () => {
    runs++;
    return new Promise<string>((resolve) => { release = resolve; });
  };
  const first = computeOnce(cache, 'k', slow, (v) => v.length * 10, 1);
  const second = computeOnce(cache, 'k', slow, (v) => v.length * 10, 1);
  assert.equal(runs, 1);
  assert.equal(cache.bytes, 1, 'weighed as pending');
  release('abcd');
  assert.equal(await first, 'abcd');
  assert.equal(await second, 'abcd');
  assert.equal(cache.bytes, 40, 'weighed by its value');

  await assert.rejects(computeOnce(cache, 'bad', () => Promise.reject(new Error('no')), () => 1), /no/);
  await Promise.resolve();
  assert.equal(cache.peek('bad'), undefined);
  assert.equal(await computeOnce(cache, 'bad', async () => 'yes', () => 1), 'yes', 'computed again after the failure');
});

test('estimateBytes grows with what a value holds', () => {
  const small = estimateBytes({ a: 'x', b: [1, 2] });
  const large = estimateBytes({ a: 'x'.repeat(1000), b: Array.from({ length: 100 }, (_, i) => ({ i })) });
  assert.ok(small > 0 && small < 200, `${small}`);
  assert.ok(large > 2000 + 100 * 8, `${large}`);
  assert.ok(estimateBytes(Buffer.alloc(4096)) >= 4096);
});
