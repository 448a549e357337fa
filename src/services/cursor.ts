/**
 * The one cursor format of every paginated list: base64url of a small JSON object naming the list
 * and the position to continue from. Clients pass cursors back as they got them; anything else —
 * a cursor of another list, an older format, an edited one — is refused as a bad request.
 */
import { AppError } from '../app-error.ts';
import { clipMessage } from '../engine/errors.ts';

/**
 * The lists, and what their position is: `snapshots` continues with the versions below the
 * position (newest first); `diff` with the entries from the position on (an offset).
 */
export type CursorList = 'snapshots' | 'diff';

interface CursorJson {
  readonly list: CursorList;
  readonly at: number;
}

export function encodeCursor(list: CursorList, at: number): string {
  const json: CursorJson = { list, at };
  return Buffer.from(JSON.stringify(json), 'utf8').toString('base64url');
}

/** The position `cursor` continues from; AppError VALIDATION (400) when it is not a cursor of `list`. */
export function decodeCursor(list: CursorList, cursor: string): number {
  const refuse = (why: string) => new AppError('VALIDATION', `invalid cursor '${clipMessage(cursor, 80)}': ${why}; pass nextCursor of the previous page as it came, or no cursor for the first page`, { cursor: clipMessage(cursor, 80) });
  // Buffer.from(…, 'base64url') skips what is not base64url: check the alphabet first.
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw refuse('not a cursor this server gave');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw refuse('not a cursor this server gave');
  }
  const { list: named, at } = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Partial<Record<keyof CursorJson, unknown>>;
  if (typeof named !== 'string' || !Number.isSafeInteger(at) || (at as number) < 0) throw refuse('not a cursor this server gave');
  if (named !== list) throw refuse(`a cursor of the ${clipMessage(named, 20)} list, not of the ${list} list`);
  return at as number;
}
