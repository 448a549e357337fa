/**
 * Splits one rule line into words the way iptables-restore does: words are separated by blanks,
 * a double-quoted run is one word (a backslash inside takes the next character literally), and
 * quotes may sit in the middle of a word (`foo"bar baz"` is `foobar baz`).
 *
 * A 10,000-Service dump has millions of words, so words are kept as offsets into the line in a
 * reusable buffer and turned into strings only when asked for.
 */
import { syntaxError } from '../errors.ts';

export class Words {
  /** The text the offsets point into. */
  source = '';
  starts: number[] = [];
  ends: number[] = [];
  /** Unescaped text of quoted words (undefined for plain words). */
  unquoted: (string | undefined)[] = [];
  /** Added to an offset to give the 1-based column in the whole input line. */
  columnBase = 1;
  count = 0;

  /** The text of word i, or undefined past the last word. */
  text(i: number): string | undefined {
    if (i >= this.count) return undefined;
    return this.unquoted[i] ?? this.source.slice(this.starts[i], this.ends[i]);
  }

  /** 1-based column of word i's first character in the line. */
  column(i: number): number {
    return this.columnBase + this.starts[i];
  }

  quoted(i: number): boolean {
    return this.unquoted[i] !== undefined;
  }

  /** Is word i an option name such as `-A`, `--dport` (not `-` alone, not a quoted word, not `-1`)? */
  isOption(i: number): boolean {
    if (i >= this.count || this.unquoted[i] !== undefined) return false;
    const start = this.starts[i];
    if (this.ends[i] - start < 2 || this.source.charCodeAt(start) !== 0x2d) return false;
    const c = this.source.charCodeAt(start + 1);
    return !(c >= 0x30 && c <= 0x39);
  }

  /** Is word i an unquoted `!`? */
  isBang(i: number): boolean {
    return i < this.count && this.unquoted[i] === undefined && this.ends[i] - this.starts[i] === 1 && this.source.charCodeAt(this.starts[i]) === 0x21;
  }

  /** Does word i equal `s` (without making a string of it)? */
  is(i: number, s: string): boolean {
    if (i >= this.count) return false;
    const u = this.unquoted[i];
    if (u !== undefined) return u === s;
    const start = this.starts[i];
    return this.ends[i] - start === s.length && this.source.startsWith(s, start);
  }

  /** Texts of words [from, to). */
  slice(from: number, to: number): string[] {
    const out: string[] = [];
    for (let i = from; i < to; i++) out.push(this.text(i)!);
    return out;
  }
}

const SPACE = 0x20;
const TAB = 0x09;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Word := { plain-char | '"' { char | '\' char } '"' }
 * Fills `out` and returns it. Throws a located syntax error for an unterminated quote.
 */
export function lex(text: string, line: number, columnOffset = 0, wholeLine = text, out: Words = new Words()): Words {
  const n = text.length;
  out.source = text;
  out.columnBase = columnOffset + 1;
  let count = 0;
  if (text.indexOf('"') < 0 && text.indexOf('\t') < 0 && text.indexOf('\r') < 0) {
    // No quotes and only spaces between words (what iptables-save prints): split on spaces.
    let from = 0;
    while (from < n) {
      let to = text.indexOf(' ', from);
      if (to < 0) to = n;
      if (to > from) {
        out.starts[count] = from;
        out.ends[count] = to;
        out.unquoted[count] = undefined;
        count++;
      }
      from = to + 1;
    }
    out.count = count;
    return out;
  }
  let i = 0;
  while (i < n) {
    let c = text.charCodeAt(i);
    if (c === SPACE || c === TAB || c === CR) {
      i++;
      continue;
    }
    const start = i;
    let quoted = false;
    let plainFrom = i;
    let word = '';
    while (i < n) {
      c = text.charCodeAt(i);
      if (c === SPACE || c === TAB || c === CR) break;
      if (c !== QUOTE) {
        i++;
        continue;
      }
      word += text.slice(plainFrom, i);
      quoted = true;
      const open = i;
      i++;
      let closed = false;
      let chunkFrom = i;
      while (i < n) {
        c = text.charCodeAt(i);
        if (c === BACKSLASH && i + 1 < n) {
          word += text.slice(chunkFrom, i);
          chunkFrom = i + 1;
          i += 2;
          continue;
        }
        if (c === QUOTE) {
          closed = true;
          break;
        }
        i++;
      }
      if (!closed) throw syntaxError('unterminated quoted string', line, columnOffset + open + 1, wholeLine);
      word += text.slice(chunkFrom, i);
      i++;
      plainFrom = i;
    }
    out.starts[count] = start;
    out.ends[count] = i;
    out.unquoted[count] = quoted ? word + text.slice(plainFrom, i) : undefined;
    count++;
  }
  out.count = count;
  return out;
}
