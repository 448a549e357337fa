/**
 * The engine's one error type. Transports (REST, GraphQL, CLI) map `code` to their own shape;
 * the engine never knows about HTTP.
 */
export type EngineErrorCode =
  | 'DUMP_SYNTAX'
  | 'DUMP_FORMAT_UNSUPPORTED'
  | 'DUMP_EMPTY'
  | 'BAD_PACKET'
  | 'MANIFEST_SYNTAX';

export interface SourceLocation {
  readonly line: number;
  readonly column: number;
  /**
   * The offending input line; a line longer than EXCERPT_WIDTH is cut to that many characters
   * around the column, with `…` where it was cut.
   */
  readonly text: string;
}

/**
 * How much of an input line an error quotes. Errors are sent back to the client and logged: a
 * 150 MB line that does not parse must not come back as a 300 MB answer.
 */
export const EXCERPT_WIDTH = 200;
/** The longest error message; longer ones (a huge word quoted in one) lose their middle. */
export const MAX_MESSAGE = 500;

const ELLIPSIS = '…';

function isHigh(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLow(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/**
 * At most `width` characters of `text` around `column` (1-based), with `…` standing for what was
 * cut, and where the column falls in what is kept (`caret`, 0-based). Never splits a surrogate pair.
 */
export function clipLine(text: string, column: number, width = EXCERPT_WIDTH): { text: string; caret: number } {
  const at = Math.min(Math.max(0, column - 1), text.length);
  if (text.length <= width) return { text, caret: at };
  const room = width - 2; // an ellipsis on each side at most
  let start = Math.min(Math.max(0, at - Math.floor(room / 2)), text.length - room);
  let end = start + room;
  if (start > 0 && isLow(text.charCodeAt(start))) start++;
  if (end < text.length && isHigh(text.charCodeAt(end - 1))) end--;
  const head = start > 0 ? ELLIPSIS : '';
  const tail = end < text.length ? ELLIPSIS : '';
  return { text: `${head}${text.slice(start, end)}${tail}`, caret: at - start + head.length };
}

/** `message` if it is at most `max` characters, else its start and end around `…`. */
export function clipMessage(message: string, max = MAX_MESSAGE): string {
  if (message.length <= max) return message;
  const half = Math.floor((max - 1) / 2);
  let head = half;
  let tail = message.length - (max - 1 - half);
  if (isHigh(message.charCodeAt(head - 1))) head--;
  if (isLow(message.charCodeAt(tail))) tail++;
  return `${message.slice(0, head)}${ELLIPSIS}${message.slice(tail)}`;
}

export class EngineError extends Error {
  readonly code: EngineErrorCode;
  readonly location?: SourceLocation;
  /** Where `location.column` falls in `location.text` (0-based), which may be cut. */
  readonly #caret: number;

  constructor(code: EngineErrorCode, message: string, location?: SourceLocation) {
    const clipped = location ? clipLine(location.text, location.column) : undefined;
    const short = clipMessage(message);
    super(location ? `${short} (line ${location.line}, column ${location.column})` : short);
    this.name = 'EngineError';
    this.code = code;
    this.location = location && clipped ? { line: location.line, column: location.column, text: clipped.text } : undefined;
    this.#caret = clipped?.caret ?? 0;
  }

  /** The offending line (or its part around the column) with a caret under the column. */
  excerpt(): string | undefined {
    if (!this.location) return undefined;
    const { line, text } = this.location;
    const gutter = `${line} | `;
    return `${gutter}${text}\n${' '.repeat(gutter.length + this.#caret)}^`;
  }
}

export function syntaxError(message: string, line: number, column: number, text: string): EngineError {
  return new EngineError('DUMP_SYNTAX', message, { line, column, text });
}
