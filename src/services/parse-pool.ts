/**
 * Node dumps are parsed for upload on worker threads, so that a 40 MB dump (a quarter of a second
 * of parsing) never holds up /health or a small trace. With `threads: 0` they are parsed in place.
 */
import { Piscina } from 'piscina';
import type { FormatOption } from '../engine/index.ts';
import { checkDump } from './dump-summary.ts';
import type { DumpCheckResult } from './dump-summary.ts';

export interface ParsePool {
  check(bytes: Buffer, format: FormatOption, table?: string): Promise<DumpCheckResult>;
  close(): Promise<void>;
}

export function createParsePool(options: { threads: number }): ParsePool {
  if (options.threads <= 0) {
    return {
      check: async (bytes, format, table) => checkDump({ text: bytes.toString('utf8'), format, table }, bytes.length),
      close: async () => {},
    };
  }
  const pool = new Piscina({
    filename: new URL('./parse-worker.mjs', import.meta.url).href,
    minThreads: 0,
    maxThreads: options.threads,
    idleTimeout: 30_000,
  });
  return {
    check: (bytes, format, table) => pool.run({ bytes, format, table }),
    close: () => pool.destroy(),
  };
}
