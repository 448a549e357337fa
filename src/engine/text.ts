/**
 * Strings kept beyond the parse of their dump. V8 makes a substring of a long string a view into
 * it, so one kept word would keep a whole dump of tens of MB alive.
 */

/**
 * A copy of `s` that shares no memory with the string it was cut from: concatenation makes a
 * new string, which slicing flattens apart from the original.
 */
export function ownCopy(s: string): string {
  return ` ${s}`.slice(1);
}

/**
 * A deep copy of plain data (objects, arrays, strings, numbers) in which no string shares memory
 * with a dump: for answers kept while further nodes are read. Values JSON does not carry
 * (undefined, functions, Maps) must not be in `data`.
 */
export function detached<T>(data: T): T {
  return JSON.parse(JSON.stringify(data)) as T;
}
