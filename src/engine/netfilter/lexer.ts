/**
 * Splits one rule line into words the way iptables-restore does: words are separated by blanks,
 * a double-quoted run is one word (a backslash inside takes the next character literally), and quotes may sit in the
 * middle of a word (`foo"bar baz"` is `foobar baz`).
 */
import { syntaxError } from '../errors.ts';

export interface Token {
  readonly text: string;
  /** 1-based column of the token's first character in the line. */
  readonly column: number;
  /** True when any part of the word was quoted: such a word is never an option name. */
  readonly quoted: boolean;
}

const SPACE = 0x20;
const TAB = 0x09;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Word := { plain-char | '"' { char | '\"' | '\\' } '"' }
 * Throws a located syntax error for an unterminated quote.
 */
export function tokenize(text: string, line: number, columnOffset = 0, wholeLine = text): Token[] {
  const tokens: Token[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    let c = text.charCodeAt(i);
    if (c === SPACE || c === TAB || c === 0x0d) {
      i++;
      continue;
    }
    const start = i;
    let quoted = false;
    let plainFrom = i;
    let word = '';
    while (i < n) {
      c = text.charCodeAt(i);
      if (c === SPACE || c === TAB || c === 0x0d) break;
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
          // iptables-restore: a backslash inside quotes takes the next character literally.
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
      if (!closed) {
        throw syntaxError('unterminated quoted string', line, columnOffset + open + 1, wholeLine);
      }
      word += text.slice(chunkFrom, i);
      i++;
      plainFrom = i;
    }
    word = quoted ? word + text.slice(plainFrom, i) : text.slice(start, i);
    tokens.push({ text: word, column: columnOffset + start + 1, quoted });
  }
  return tokens;
}
