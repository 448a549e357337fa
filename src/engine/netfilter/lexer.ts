/**
 * Splits one rule line into words the way iptables-restore does: words are separated by blanks,
 * a double-quoted run is one word (a backslash inside takes the next character literally), and
 * quotes may sit in the middle of a word (`foo"bar baz"` is `foobar baz`).
 *
 * Words go into a reusable buffer rather than one object each: a 10,000-Service dump has millions.
 */
import { syntaxError } from '../errors.ts';

export class Words {
  texts: string[] = [];
  /** 1-based column of each word's first character in the line. */
  columns: number[] = [];
  /** 1 when any part of the word was quoted: such a word is never an option name. */
  quoted: number[] = [];
  count = 0;

  text(i: number): string | undefined {
    return i < this.count ? this.texts[i] : undefined;
  }

  /** Is word i an option name such as `-A`, `--dport` (not `-` alone, not a quoted word, not `-1`)? */
  isOption(i: number): boolean {
    if (i >= this.count || this.quoted[i] === 1) return false;
    const t = this.texts[i];
    if (t.length < 2 || t.charCodeAt(0) !== 0x2d) return false;
    const c = t.charCodeAt(1);
    return !(c >= 0x30 && c <= 0x39);
  }

  /** Is word i an unquoted `!`? */
  isBang(i: number): boolean {
    return i < this.count && this.quoted[i] === 0 && this.texts[i] === '!';
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
  let count = 0;
  if (text.indexOf('"') < 0 && text.indexOf('\t') < 0 && text.indexOf('\r') < 0) {
    // No quotes and only spaces between words (what iptables-save prints): split on spaces.
    let from = 0;
    while (from < n) {
      let to = text.indexOf(' ', from);
      if (to < 0) to = n;
      if (to > from) {
        out.texts[count] = text.slice(from, to);
        out.columns[count] = columnOffset + from + 1;
        out.quoted[count] = 0;
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
    let quoted = 0;
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
      quoted = 1;
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
    out.texts[count] = quoted ? word + text.slice(plainFrom, i) : text.slice(start, i);
    out.columns[count] = columnOffset + start + 1;
    out.quoted[count] = quoted;
    count++;
  }
  out.count = count;
  return out;
}
