/**
 * Finding words of a large text by their characters, without making a string of each: a hash of
 * the characters, a table of hashes in typed arrays (open addressing), one comparison to confirm.
 * The fast rule reader and the rule store use it; a Map lookup per word costs more than the scan.
 */

/**
 * The hash the fast reader files words by. Each character is one rotation and one exclusive or,
 * so that a character costs one step of latency (a multiplication per character cost the
 * reader a tenth of its time); hashEnd then mixes the result once per word. Every place that
 * hashes a word steps it the same way: `h = ((h << 5) | (h >>> 27)) ^ c`.
 */
export function hashOf(s: string, from: number, to: number): number {
  let h = 0;
  for (let i = from; i < to; i++) h = ((h << 5) | (h >>> 27)) ^ s.charCodeAt(i);
  return hashEnd(h);
}

/** The last step of a word's hash: spreads every bit into the low ones, which index the tables. */
export function hashEnd(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  return h ^ (h >>> 15);
}

const encoder = new TextEncoder();

/**
 * The buffer the last parse's bytes were written to, kept for the next: writing 40 MB into memory
 * already in use is a quarter of the cost of fresh memory. Held weakly, so it is given back under
 * memory pressure. Parsing is synchronous, and nothing keeps the bytes past a parse.
 */
let scratch: WeakRef<Uint8Array> | null = null;

/**
 * The text as one byte per character, for the fast paths to scan (a typed array reads faster than
 * a string). ASCII stays itself; any other character becomes a tab, which every fast path
 * declines outside quotes, so such a line goes to the full reader. The bytes are valid until the
 * next call.
 */
export function asciiBytes(s: string): Uint8Array {
  let buffer = scratch?.deref();
  if (!buffer || buffer.length < s.length) {
    buffer = new Uint8Array(s.length);
    scratch = new WeakRef(buffer);
  }
  const out = buffer.subarray(0, s.length);
  // UTF-8 gives one byte per character exactly when every character is ASCII.
  const { read, written } = encoder.encodeInto(s, out);
  if (read === s.length && written === s.length) return out;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out[i] = c < 0x80 ? c : 0x09;
  }
  return out;
}

/** Does b[from, to) spell `t` (ASCII)? */
export function spellsAt(t: string, b: Uint8Array, from: number, to: number): boolean {
  const n = to - from;
  if (t.length !== n) return false;
  for (let k = 0; k < n; k++) if (t.charCodeAt(k) !== b[from + k]) return false;
  return true;
}

/** Are b[a, a + n) and b[c, c + n) the same bytes? */
export function sameBytes(b: Uint8Array, a: number, c: number, n: number): boolean {
  for (let k = 0; k < n; k++) if (b[a + k] !== b[c + k]) return false;
  return true;
}

/** Does s[from, to) spell `t`? */
export function spells(t: string, s: string, from: number, to: number): boolean {
  const n = to - from;
  if (t.length !== n) return false;
  for (let k = 0; k < n; k++) if (t.charCodeAt(k) !== s.charCodeAt(from + k)) return false;
  return true;
}

/**
 * Entries (numbers the caller gives meaning to) filed by hash in open addressing over one typed
 * array: a lookup is a few array reads and, on a hash hit, one comparison of characters. Each
 * slot is two numbers side by side, the entry (-1 for none) and its hash, so that a look at a
 * slot of a large table is one read from memory, not two.
 *
 *   for (let i = first(hash); cells[i] >= 0; i = (i + 2) & mask) if (cells[i + 1] === hash) …cells[i]…
 */
export class Slots {
  cells: Int32Array;
  /** Keeps a cell index in the table, and even: (i + 2) & mask is the next slot. */
  mask: number;
  count = 0;

  /** `size`: the number of slots, a power of two. */
  constructor(size = 1024) {
    this.cells = new Int32Array(size * 2).fill(-1);
    this.mask = size * 2 - 1;
  }

  /** The cell index of the first slot to look at for `hash`. */
  first(hash: number): number {
    return (hash << 1) & this.mask;
  }

  put(hash: number, entry: number): void {
    if (++this.count * 4 > this.cells.length) this.grow();
    const { cells, mask } = this;
    let i = (hash << 1) & mask;
    while (cells[i] >= 0) i = (i + 2) & mask;
    cells[i] = entry;
    cells[i + 1] = hash;
  }

  private grow(): void {
    const old = this.cells;
    const cells = new Int32Array(old.length * 2).fill(-1);
    const mask = cells.length - 1;
    for (let k = 0; k < old.length; k += 2) {
      if (old[k] < 0) continue;
      let i = (old[k + 1] << 1) & mask;
      while (cells[i] >= 0) i = (i + 2) & mask;
      cells[i] = old[k];
      cells[i + 1] = old[k + 1];
    }
    this.cells = cells;
    this.mask = mask;
  }
}
