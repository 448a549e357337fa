import { test } from 'node:test';
import assert from 'node:assert/strict';
import { numgenCount, numgenCounts, timesNumgenShare } from '../../../src/engine/nftables/numgen.ts';
import { ONE, toText } from '../../../src/engine/trace/probability.ts';

const RANGE = 2n ** 32n;

/** The kernel's mapping, counted directly over the boundaries: v gives (v·N) >> 32. */
function firstValueGiving(k: bigint, n: bigint): bigint {
  // Smallest v with (v·n) >> 32 ≥ k, found by bisection over [0, 2^32].
  let lo = 0n;
  let hi = RANGE;
  while (lo < hi) {
    const mid = (lo + hi) / 2n;
    if ((mid * n) >> 32n >= k) hi = mid;
    else lo = mid + 1n;
  }
  return lo;
}

test('numgen random mod N: each value gets its count of u32s, for N = 1..7', () => {
  const expected: Record<number, string[]> = {
    1: ['1'],
    2: ['1/2', '1/2'],
    3: ['715827883/2147483648', '1431655765/4294967296', '1431655765/4294967296'],
    4: ['1/4', '1/4', '1/4', '1/4'],
    // Worked out apart from the code, with Python's fractions over ⌈(k+1)·2^32/N⌉ − ⌈k·2^32/N⌉.
    5: ['214748365/1073741824', '858993459/4294967296', '858993459/4294967296', '858993459/4294967296', '858993459/4294967296'],
    6: ['715827883/4294967296', '715827883/4294967296', '357913941/2147483648', '715827883/4294967296', '715827883/4294967296', '357913941/2147483648'],
    7: ['613566757/4294967296', '613566757/4294967296', '153391689/1073741824', '613566757/4294967296', '153391689/1073741824', '613566757/4294967296', '153391689/1073741824'],
  };
  for (let n = 1; n <= 7; n++) {
    const counts = numgenCounts(n);
    assert.equal(counts.reduce((a, b) => a + b, 0n), RANGE, `N=${n}: the counts cover every u32`);
    const N = BigInt(n);
    counts.forEach((c, k) => {
      const direct = firstValueGiving(BigInt(k + 1), N) - firstValueGiving(BigInt(k), N);
      assert.equal(c, direct, `N=${n} k=${k}`);
    });
    assert.deepEqual(counts.map((_, k) => toText(timesNumgenShare(ONE, k, n))), expected[n], `N=${n}`);
  }
});

test('numgen random mod 3: the counts netfilter-semantics.md states', () => {
  assert.deepEqual(numgenCounts(3), [1431655766n, 1431655765n, 1431655765n]);
});

test('numgen shares are exactly 1/N for powers of two only', () => {
  for (const n of [1, 2, 4, 8, 16, 1024]) assert.ok(numgenCounts(n).every((c) => c * BigInt(n) === RANGE), `N=${n}`);
  for (const n of [3, 5, 6, 7, 9, 1000]) assert.ok(numgenCounts(n).some((c) => c * BigInt(n) !== RANGE), `N=${n}`);
});

test('values outside 0..N−1 and impossible moduli have no share', () => {
  assert.equal(numgenCount(3, 3), 0n);
  assert.equal(numgenCount(-1, 3), 0n);
  assert.equal(numgenCount(0, 0), 0n);
});
