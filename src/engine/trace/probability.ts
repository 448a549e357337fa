/**
 * Exact probabilities of `-m statistic --mode random`. iptables stores p as the 31-bit integer
 * round(p × 2^31) and the kernel matches when (random u32 & 0x7fffffff) < that integer, so a
 * rule matches with probability k / 2^31 exactly. Outcome probabilities are products of such
 * factors; they are kept as exact fractions (bigint numerator over a power of two).
 */

export const SCALE = 2 ** 31;
const SCALE_BITS = 31n;

/** The integer the kernel stores for a written probability (lround, clamped to [0, 2^31]). */
export function quantizeProbability(p: number): number {
  if (!Number.isFinite(p) || p <= 0) return 0;
  if (p >= 1) return SCALE;
  return Math.round(p * SCALE);
}

/** numerator / 2^exponent, exact. */
export interface Fraction {
  readonly numerator: bigint;
  readonly exponent: bigint;
}

export const ONE: Fraction = { numerator: 1n, exponent: 0n };

/** Multiplies by k / 2^31. */
export function times(f: Fraction, k: number): Fraction {
  return { numerator: f.numerator * BigInt(k), exponent: f.exponent + SCALE_BITS };
}

/**
 * Multiplies by count / 2^bits: a share of a random `bits`-bit value, as nftables' `numgen random`
 * draws one u32 per rule (see nftables/numgen.ts).
 */
export function timesShare(f: Fraction, count: bigint, bits: bigint): Fraction {
  return { numerator: f.numerator * count, exponent: f.exponent + bits };
}

export function toNumber(f: Fraction): number {
  if (f.exponent <= 1000n) {
    let n = f.numerator;
    let e = f.exponent;
    // Keep 64 significant bits, then scale: exact enough for a double.
    const bits = n.toString(2).length;
    if (bits > 64) {
      const shift = BigInt(bits - 64);
      n >>= shift;
      e -= shift;
    }
    return Number(n) / 2 ** Number(e);
  }
  return 0;
}

/** Lowest-terms text, e.g. "1/4" or "715827883/2147483648". */
export function toText(f: Fraction): string {
  let n = f.numerator;
  let e = f.exponent;
  while (e > 0n && (n & 1n) === 0n) {
    n >>= 1n;
    e -= 1n;
  }
  return e === 0n ? n.toString() : `${n}/${(1n << e).toString()}`;
}

export function add(a: Fraction, b: Fraction): Fraction {
  const e = a.exponent > b.exponent ? a.exponent : b.exponent;
  return { numerator: (a.numerator << (e - a.exponent)) + (b.numerator << (e - b.exponent)), exponent: e };
}

/** a − 1/n as an exact signed fraction over 2^e·n, returned as a double (for "differs by" reports). */
export function deviationFromUniform(f: Fraction, n: number): number {
  const scaled = f.numerator * BigInt(n) - (1n << f.exponent);
  const sign = scaled < 0n ? -1 : 1;
  return (sign * toNumber({ numerator: scaled < 0n ? -scaled : scaled, exponent: f.exponent })) / n;
}

export function isExactlyUniform(f: Fraction, n: number): boolean {
  return f.numerator * BigInt(n) === 1n << f.exponent;
}
