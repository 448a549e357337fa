/**
 * A 53-bit hash of strings and numbers (two 32-bit multiply-xorshift lanes), for comparing chain
 * contents between snapshots without keeping or interning their text. Two different contents
 * share a hash with probability about 2^-53 per comparison: far below anything a diff reports.
 */
export class Hasher {
  private a = 0x811c9dc5;
  private b = 0x9747b28c;

  string(s: string): this {
    let a = this.a;
    let b = this.b;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
      b ^= b >>> 13;
    }
    // A separator, so that ["ab", "c"] and ["a", "bc"] differ.
    this.a = Math.imul(a ^ 0xff, 0x01000193);
    this.b = Math.imul(b ^ 0xff, 0x5bd1e995);
    return this;
  }

  number(n: number): this {
    const lo = n >>> 0;
    const hi = Math.floor(n / 4294967296) >>> 0;
    this.a = Math.imul(this.a ^ lo, 0x01000193);
    this.a = Math.imul(this.a ^ hi, 0x01000193);
    this.b = Math.imul(this.b ^ lo, 0x5bd1e995);
    this.b ^= this.b >>> 13;
    this.b = Math.imul(this.b ^ hi, 0x5bd1e995);
    this.b ^= this.b >>> 15;
    return this;
  }

  /** The hash as a non-negative integer below 2^53. */
  value(): number {
    let a = this.a;
    a ^= a >>> 16;
    a = Math.imul(a, 0x85ebca6b);
    a ^= a >>> 13;
    let b = this.b;
    b ^= b >>> 16;
    b = Math.imul(b, 0xc2b2ae35);
    b ^= b >>> 16;
    return (a >>> 0) * 2097152 + ((b >>> 0) & 0x1fffff);
  }
}

export function hashString(s: string): number {
  return new Hasher().string(s).value();
}
