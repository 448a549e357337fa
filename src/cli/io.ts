/** Where the command line writes, and how it reads a FILE argument ('-' is standard input). */
import { readFileSync } from 'node:fs';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Whether `err` is a terminal: live progress lines are drawn only there. */
  readonly isTTY?: boolean;
}

export const stdio: Io = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
  get isTTY() {
    return process.stderr.isTTY === true;
  },
};

export function readInput(file: string): Buffer {
  return file === '-' ? readFileSync(0) : readFileSync(file);
}
