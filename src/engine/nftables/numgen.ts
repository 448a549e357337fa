/**
 * Exact probabilities of nftables' `numgen random mod N [offset O]`.
 *
 * The kernel (net/netfilter/nft_numgen.c, nft_ng_random_eval) draws a random u32 v and answers
 * `reciprocal_scale(v, N) + O`, where reciprocal_scale(v, N) is `(v × N) >> 32`. So value k
 * (before the offset) comes from the u32s v with k·2^32 ≤ v·N < (k+1)·2^32, that is from
 * v = ⌈k·2^32/N⌉ up to ⌈(k+1)·2^32/N⌉ − 1. Its probability is that count over 2^32: exactly 1/N
 * only when N is a power of two (for N = 3 the counts are 1431655766, 1431655765, 1431655765).
 */
import type { Fraction } from '../trace/probability.ts';
import { timesShare } from '../trace/probability.ts';

/** The width of the random value numgen draws. */
export const NUMGEN_BITS = 32n;
const RANGE = 1n << NUMGEN_BITS;

function ceilDiv(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b;
}

/**
 * How many of the 2^32 random values give `k` (0 ≤ k < modulus, before any offset). A modulus of
 * 0 or above 2^32 is refused by nft; here it yields 0 for every k.
 */
export function numgenCount(k: number, modulus: number): bigint {
  if (!Number.isInteger(modulus) || modulus < 1 || BigInt(modulus) > RANGE || !Number.isInteger(k) || k < 0 || k >= modulus) return 0n;
  const n = BigInt(modulus);
  return ceilDiv(BigInt(k + 1) * RANGE, n) - ceilDiv(BigInt(k) * RANGE, n);
}

/** The count of every value 0 … modulus−1; they sum to 2^32. */
export function numgenCounts(modulus: number): bigint[] {
  const out: bigint[] = [];
  for (let k = 0; k < modulus; k++) out.push(numgenCount(k, modulus));
  return out;
}

/** `f` times the probability that numgen gives `k`: f × count(k) / 2^32, exact. */
export function timesNumgenShare(f: Fraction, k: number, modulus: number): Fraction {
  return timesShare(f, numgenCount(k, modulus), NUMGEN_BITS);
}
