/**
 * The one cache of the services: entries weighed in bytes (an estimate given with each), held
 * within a budget, the least recently used going first. Whatever is kept in memory between
 * requests — parsed dumps, read manifests, audit reports, diffs, snapshot metadata, inflated
 * chunks — is kept in one of these, so that every cache is bounded by what it costs rather than by
 * how many it holds.
 */

import type { ChunkCache } from '../store/blob-store.ts';

export interface ByteCacheOptions {
  /** Bytes the entries may weigh together (with `overhead`). */
  readonly budgetBytes: number;
  /** Memory the entries cost beyond their own weights (e.g. what they share), counted in the budget. */
  readonly overhead?: () => number;
  /** Entries older than this are not served (for what another process may change); none by default. */
  readonly maxAgeMs?: number;
  /** The clock for `maxAgeMs`, in milliseconds. */
  readonly now?: () => number;
}

interface Entry<V> {
  value: V;
  bytes: number;
  at: number;
}

export class ByteCache<V> {
  readonly budget: number;
  // A Map iterates in insertion order: an entry used is moved to the end, so the first is the least recently used.
  readonly #entries = new Map<string, Entry<V>>();
  readonly #overhead: () => number;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  #held = 0;

  constructor(options: ByteCacheOptions) {
    if (!(options.budgetBytes >= 0)) throw new RangeError(`a cache budget is a number of bytes, got ${options.budgetBytes}`);
    this.budget = options.budgetBytes;
    this.#overhead = options.overhead ?? (() => 0);
    this.#maxAgeMs = options.maxAgeMs ?? Infinity;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Bytes held by the estimates, the overhead included. */
  get bytes(): number {
    return this.#held + this.#overhead();
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The value kept under `key`, now the most recently used; undefined when none (or too old). */
  get(key: string): V | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (this.#now() - e.at >= this.#maxAgeMs) {
      this.delete(key);
      return undefined;
    }
    this.#entries.delete(key);
    this.#entries.set(key, e);
    return e.value;
  }

  /** The value kept under `key`, leaving its recency (and age) alone. */
  peek(key: string): V | undefined {
    return this.#entries.get(key)?.value;
  }

  /**
   * Keeps `value` as the most recently used, weighing `bytes`, and evicts the least recently used
   * others until the budget holds. An entry heavier than the whole budget is kept alone: it was
   * just made, and is about to be used.
   */
  set(key: string, value: V, bytes: number): void {
    this.delete(key);
    const weight = Math.max(0, Math.ceil(bytes));
    this.#entries.set(key, { value, bytes: weight, at: this.#now() });
    this.#held += weight;
    this.#evict(key);
  }

  /** Weighs an entry again (what it holds grew or became known) without making it recently used. */
  reweigh(key: string, bytes: number): void {
    const e = this.#entries.get(key);
    if (!e) return;
    const weight = Math.max(0, Math.ceil(bytes));
    this.#held += weight - e.bytes;
    e.bytes = weight;
    this.#evict(this.#newest());
  }

  /** Evicts the least recently used entries until `room` more bytes fit in the budget; the newest stays. */
  makeRoom(room: number): void {
    this.#evict(this.#newest(), room);
  }

  delete(key: string): boolean {
    const e = this.#entries.get(key);
    if (!e) return false;
    this.#entries.delete(key);
    this.#held -= e.bytes;
    return true;
  }

  /** Every entry, least recently used first (reading them does not change their order). */
  *entries(): IterableIterator<[string, V]> {
    for (const [k, e] of this.#entries) yield [k, e.value];
  }

  #newest(): string | undefined {
    let last: string | undefined;
    for (const k of this.#entries.keys()) last = k;
    return last;
  }

  #evict(keep: string | undefined, room = 0): void {
    const overhead = this.#overhead();
    for (const [k, e] of this.#entries) {
      if (this.#held + overhead + room <= this.budget) return;
      if (k === keep) continue;
      this.#entries.delete(k);
      this.#held -= e.bytes;
    }
  }
}

/**
 * A value computed once per key and kept in `cache`: callers that ask while it is being computed
 * share the computation; a failure is not kept. The entry weighs `pendingBytes` until the value is
 * there, then what `weigh` says.
 */
export function computeOnce<T>(
  cache: ByteCache<Promise<T>>,
  key: string,
  compute: () => Promise<T>,
  weigh: (value: T) => number,
  pendingBytes = 0,
): Promise<T> {
  const hit = cache.get(key);
  if (hit) return hit;
  const pending = compute();
  cache.set(key, pending, pendingBytes);
  pending.then(
    (value) => {
      // Only if the entry is still this computation's (it may have been evicted or replaced).
      if (cache.peek(key) === pending) cache.reweigh(key, weigh(value));
    },
    () => {
      if (cache.peek(key) === pending) cache.delete(key);
    },
  );
  return pending;
}

const STRING_BYTES = 16;
const OBJECT_BYTES = 24;
const SLOT_BYTES = 8;

/**
 * What a plain value (JSON-like: objects, arrays, strings, numbers) costs on the heap, roughly:
 * V8 spends a header per object and string, a slot per property or element, and a byte or two per
 * character. Shared parts are counted each time they are reached, so the estimate errs high.
 */
export function estimateBytes(value: unknown): number {
  let bytes = 0;
  const todo: unknown[] = [value];
  while (todo.length > 0) {
    const v = todo.pop();
    if (typeof v === 'string') bytes += STRING_BYTES + v.length * 2;
    else if (v instanceof Date) bytes += OBJECT_BYTES;
    else if (Buffer.isBuffer(v)) bytes += OBJECT_BYTES + v.length;
    else if (Array.isArray(v)) {
      bytes += OBJECT_BYTES + v.length * SLOT_BYTES;
      for (const x of v) todo.push(x);
    } else if (typeof v === 'object' && v !== null) {
      const values = Object.values(v);
      bytes += OBJECT_BYTES + values.length * SLOT_BYTES;
      for (const x of values) todo.push(x);
    } else bytes += SLOT_BYTES;
  }
  return bytes;
}

/** Inflated chunks within a byte budget, the least recently used going first; none kept for a budget of 0. */
export function chunkCache(budgetBytes: number): ChunkCache | undefined {
  if (budgetBytes <= 0) return undefined;
  const cache = new ByteCache<Buffer>({ budgetBytes });
  return { get: (id) => cache.get(id), set: (id, data) => cache.set(id, data, data.length) };
}
