/**
 * The tokenizer of nft's text syntax (what `nft list ruleset` prints and `nft -f` reads).
 *
 * Words run up to whitespace or one of `{ } ; , " #`, so chain names such as
 * `endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80`, prefixes, ranges and `addr:port` stay one
 * word; their meaning is decided by the parser from where they stand. Newlines are tokens because
 * they end rules. A `# handle N` comment is a token (nft -a prints it after tables, chains, sets and
 * rules); any other comment is skipped. It reads lazily, one token at a time, and can go back to a
 * saved place (the parser rereads an unknown statement as text).
 */

export const Tok = {
  Word: 1,
  String: 2,
  LBrace: 3,
  RBrace: 4,
  Semi: 5,
  Comma: 6,
  Newline: 7,
  Eof: 8,
  Handle: 9,
} as const;
export type Tok = (typeof Tok)[keyof typeof Tok];

/** A place in the input to come back to. */
export interface LexMark {
  readonly pos: number;
  readonly line: number;
  readonly lineStart: number;
  readonly type: Tok;
  readonly text: string;
  readonly start: number;
  readonly end: number;
  readonly tokLine: number;
  readonly tokLineStart: number;
}

const SPACE = 32;
const TAB = 9;
const CR = 13;
const LF = 10;
const QUOTE = 34;
const HASH = 35;
const COMMA = 44;
const SEMI = 59;
const LBRACE = 123;
const RBRACE = 125;
const BACKSLASH = 92;

/** Characters that end a word. */
const STOP = new Uint8Array(128);
for (const c of [SPACE, TAB, CR, LF, QUOTE, HASH, COMMA, SEMI, LBRACE, RBRACE]) STOP[c] = 1;

const HANDLE_COMMENT = /^#\s*handle\s+(\d+)\s*$/;

export class NftLexer {
  readonly src: string;
  /** The current token. */
  type: Tok = Tok.Eof;
  /** A word's text, a string's contents (no quotes), a handle's digits; '' for punctuation. */
  text = '';
  /** Offsets of the current token in `src` (a string's include its quotes). */
  start = 0;
  end = 0;
  /** 1-based line of the current token and the offset that line starts at. */
  tokLine = 1;
  tokLineStart = 0;

  #pos = 0;
  #line = 1;
  #lineStart = 0;

  constructor(src: string) {
    this.src = src;
  }

  /** 1-based column of the current token. */
  get column(): number {
    return this.start - this.tokLineStart + 1;
  }

  /** The input line the current token is on, without its line break. */
  lineText(lineStart = this.tokLineStart): string {
    let end = this.src.indexOf('\n', lineStart);
    if (end < 0) end = this.src.length;
    if (end > lineStart && this.src.charCodeAt(end - 1) === CR) end--;
    return this.src.slice(lineStart, end);
  }

  mark(): LexMark {
    return {
      pos: this.#pos, line: this.#line, lineStart: this.#lineStart, type: this.type, text: this.text,
      start: this.start, end: this.end, tokLine: this.tokLine, tokLineStart: this.tokLineStart,
    };
  }

  reset(m: LexMark): void {
    this.#pos = m.pos;
    this.#line = m.line;
    this.#lineStart = m.lineStart;
    this.type = m.type;
    this.text = m.text;
    this.start = m.start;
    this.end = m.end;
    this.tokLine = m.tokLine;
    this.tokLineStart = m.tokLineStart;
  }

  /** Moves to the next token and returns its type. */
  next(): Tok {
    const src = this.src;
    const n = src.length;
    let p = this.#pos;
    for (;;) {
      if (p >= n) {
        this.#set(Tok.Eof, '', p, p);
        return Tok.Eof;
      }
      const c = src.charCodeAt(p);
      if (c === SPACE || c === TAB || c === CR) {
        p++;
        continue;
      }
      // A backslash before the line break joins two lines, as in nft -f files.
      if (c === BACKSLASH && (src.charCodeAt(p + 1) === LF || (src.charCodeAt(p + 1) === CR && src.charCodeAt(p + 2) === LF))) {
        p += src.charCodeAt(p + 1) === LF ? 2 : 3;
        this.#line++;
        this.#lineStart = p;
        continue;
      }
      if (c === LF) {
        this.#set(Tok.Newline, '', p, p + 1);
        this.#pos = p + 1;
        this.#line++;
        this.#lineStart = p + 1;
        return Tok.Newline;
      }
      if (c === HASH) {
        let e = src.indexOf('\n', p);
        if (e < 0) e = n;
        const comment = src.slice(p, e).trimEnd();
        const m = HANDLE_COMMENT.exec(comment);
        if (m) {
          this.#set(Tok.Handle, m[1], p, p + comment.length);
          this.#pos = e;
          return Tok.Handle;
        }
        p = e;
        continue;
      }
      if (c === QUOTE) {
        let e = p + 1;
        while (e < n) {
          const d = src.charCodeAt(e);
          if (d === QUOTE || d === LF) break;
          e += d === BACKSLASH && e + 1 < n && src.charCodeAt(e + 1) !== LF ? 2 : 1;
        }
        if (e >= n || src.charCodeAt(e) !== QUOTE) {
          this.#set(Tok.String, '', p, e);
          this.#pos = p;
          throw new LexError('unterminated string', this.#line, p - this.#lineStart + 1, this.#lineStart);
        }
        this.#set(Tok.String, src.slice(p + 1, e).replace(/\\(.)/g, '$1'), p, e + 1);
        this.#pos = e + 1;
        return Tok.String;
      }
      if (c === LBRACE || c === RBRACE || c === SEMI || c === COMMA) {
        const type = c === LBRACE ? Tok.LBrace : c === RBRACE ? Tok.RBrace : c === SEMI ? Tok.Semi : Tok.Comma;
        this.#set(type, '', p, p + 1);
        this.#pos = p + 1;
        return type;
      }
      let e = p + 1;
      while (e < n) {
        const d = src.charCodeAt(e);
        if (d < 128 && STOP[d] === 1) break;
        e++;
      }
      this.#set(Tok.Word, src.slice(p, e), p, e);
      this.#pos = e;
      return Tok.Word;
    }
  }

  /**
   * Goes back to the token that starts at `start` (on `line`, which starts at `lineStart`) and reads
   * it again: cheaper than a saved mark where a parse is retried often.
   */
  rewind(start: number, line: number, lineStart: number): void {
    this.#pos = start;
    this.#line = line;
    this.#lineStart = lineStart;
    this.next();
  }

  /** The type of the token after the current one, without moving. */
  peek(): Tok {
    const { start, tokLine, tokLineStart } = this;
    const t = this.next();
    this.rewind(start, tokLine, tokLineStart);
    return t;
  }

  /** The text of the next token when it is a word, else undefined; does not move. */
  peekWord(): string | undefined {
    const { start, tokLine, tokLineStart } = this;
    const t = this.next();
    const text = this.text;
    this.rewind(start, tokLine, tokLineStart);
    return t === Tok.Word ? text : undefined;
  }

  #set(type: Tok, text: string, start: number, end: number): void {
    this.type = type;
    this.text = text;
    this.start = start;
    this.end = end;
    this.tokLine = this.#line;
    this.tokLineStart = this.#lineStart;
  }
}

/** A tokenizer failure, turned into a located EngineError by the parser. */
export class LexError extends Error {
  readonly line: number;
  readonly column: number;
  readonly lineStart: number;

  constructor(message: string, line: number, column: number, lineStart: number) {
    super(message);
    this.line = line;
    this.column = column;
    this.lineStart = lineStart;
  }
}
