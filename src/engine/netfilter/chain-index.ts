/**
 * A table's chains by name: the parser's index while it reads a dump, and the map the ruleset
 * hands out afterwards. A 10,000-Service dump declares 90,000 chains, and filling a Map with them
 * costs more than reading the declarations, so the chains stay in one array in the order they
 * were made and are found by the hash of their name (char-index.ts).
 */
import { hashOf, sameBytes, Slots, spellsAt } from './char-index.ts';
import type { DumpChain } from './rule.ts';

export class ChainIndex implements ReadonlyMap<string, DumpChain> {
  /** Every chain made, in order; deleted ones (`-X`) stay, marked, so that positions hold. */
  readonly order: DumpChain[] = [];
  private readonly slots = new Slots(1024);
  private live = 0;

  get size(): number {
    return this.live;
  }

  /** Files a new chain under its hash (set on the chain), at the end of the order. */
  add(c: DumpChain): void {
    c.position = this.order.length;
    this.order.push(c);
    this.slots.put(c.hash, c.position);
    this.live++;
  }

  /** Takes a chain out: lookups and iteration no longer see it. */
  remove(c: DumpChain): void {
    if (c.deleted) return;
    c.deleted = true;
    this.live--;
  }

  get(name: string): DumpChain | undefined {
    return this.hashed(name, hashOf(name, 0, name.length));
  }

  /** get(name) for a caller that has hashOf(name). */
  hashed(name: string, hash: number): DumpChain | undefined {
    const { cells, mask } = this.slots;
    for (let i = this.slots.first(hash); cells[i] >= 0; i = (i + 2) & mask) {
      if (cells[i + 1] !== hash) continue;
      const c = this.order[cells[i]];
      if (!c.deleted && c.name === name) return c;
    }
    return undefined;
  }

  /** The chain named source[from, to), read from b (the source as asciiBytes), whose hash is `hash`. */
  at(b: Uint8Array, from: number, to: number, hash: number): DumpChain | undefined {
    const { cells, mask } = this.slots;
    for (let i = this.slots.first(hash); cells[i] >= 0; i = (i + 2) & mask) {
      if (cells[i + 1] !== hash) continue;
      const c = this.order[cells[i]];
      if (!c.deleted && named(c, b, from, to, hash)) return c;
    }
    return undefined;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  *values(): MapIterator<DumpChain> {
    for (const c of this.order) if (!c.deleted) yield c;
  }

  *keys(): MapIterator<string> {
    for (const c of this.order) if (!c.deleted) yield c.name;
  }

  *entries(): MapIterator<[string, DumpChain]> {
    for (const c of this.order) if (!c.deleted) yield [c.name, c];
  }

  [Symbol.iterator](): MapIterator<[string, DumpChain]> {
    return this.entries();
  }

  forEach(f: (value: DumpChain, key: string, map: ReadonlyMap<string, DumpChain>) => void, self?: unknown): void {
    for (const c of this.order) if (!c.deleted) f.call(self, c, c.name, this);
  }
}

/** Is `c` named source[from, to), whose hash is `hash`? Compared in b, the source as asciiBytes. */
export function named(c: DumpChain, b: Uint8Array, from: number, to: number, hash: number): boolean {
  if (c.hash !== hash) return false;
  const n = to - from;
  if (c.nameLength !== n) return false;
  return c.nameAt >= 0 ? sameBytes(b, c.nameAt, from, n) : spellsAt(c.name, b, from, to);
}
