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
  /** The whole offending input line. */
  readonly text: string;
}

export class EngineError extends Error {
  readonly code: EngineErrorCode;
  readonly location?: SourceLocation;

  constructor(code: EngineErrorCode, message: string, location?: SourceLocation) {
    super(location ? `${message} (line ${location.line}, column ${location.column})` : message);
    this.name = 'EngineError';
    this.code = code;
    this.location = location;
  }

  /** The offending line with a caret under the column, for terminals and problem details. */
  excerpt(): string | undefined {
    if (!this.location) return undefined;
    const { line, column, text } = this.location;
    const gutter = `${line} | `;
    return `${gutter}${text}\n${' '.repeat(gutter.length + Math.max(0, column - 1))}^`;
  }
}

export function syntaxError(message: string, line: number, column: number, text: string): EngineError {
  return new EngineError('DUMP_SYNTAX', message, { line, column, text });
}
