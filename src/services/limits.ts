/**
 * Limits on what one request may hold, and the checks that apply them. Pure: no I/O, no state;
 * the numbers come from the configuration (config.ts reads them, README "Limits" lists them),
 * with the defaults below where a caller has none.
 *
 * Each check throws AppError('VALIDATION') naming what is wrong and where, never quoting more
 * than a bounded excerpt of the input.
 */
import { AppError } from '../app-error.ts';
import { clipLine } from '../engine/errors.ts';

export interface Limits {
  /** Labels on one snapshot (SVCPATH_MAX_LABELS). */
  readonly maxLabels: number;
  /** Characters in one label value (SVCPATH_MAX_LABEL_VALUE). */
  readonly maxLabelValue: number;
  /** Manifests text, in bytes of UTF-8 (SVCPATH_MANIFESTS_MAX_MB, in MiB). */
  readonly manifestsMaxBytes: number;
  /** Nesting of objects and lists in the manifests, counted before they are parsed (SVCPATH_MANIFESTS_MAX_DEPTH). */
  readonly manifestsMaxDepth: number;
  /**
   * Values (objects, lists, keys and scalars) in YAML manifests, counted before they are parsed
   * (SVCPATH_MANIFESTS_MAX_VALUES). The YAML parser takes about 9 µs and 0.8 KB of memory at its
   * peak per value. JSON, fifty times faster and ten times smaller, counts its objects and lists only.
   */
  readonly manifestsMaxValues: number;
  /** Nesting of fields in a GraphQL operation, fragments included (SVCPATH_GRAPHQL_MAX_DEPTH). */
  readonly graphqlMaxDepth: number;
  /** Aliases in a GraphQL document (SVCPATH_GRAPHQL_MAX_ALIASES). */
  readonly graphqlMaxAliases: number;
  /** The cost of a GraphQL operation, as api/graphql/limits.ts counts it (SVCPATH_GRAPHQL_MAX_COST). */
  readonly graphqlMaxCost: number;
  /** Lexical tokens in a GraphQL document: bounds the work done before any other check (SVCPATH_GRAPHQL_MAX_TOKENS). */
  readonly graphqlMaxTokens: number;
}

export const DEFAULT_LIMITS: Limits = Object.freeze({
  maxLabels: 64,
  maxLabelValue: 256,
  // The manifests of a 10,000-Service cluster (Services, EndpointSlices, pods, nodes) are about 70 MB.
  manifestsMaxBytes: 256 * 1024 * 1024,
  manifestsMaxDepth: 100,
  manifestsMaxValues: 2_000_000,
  graphqlMaxDepth: 12,
  graphqlMaxAliases: 30,
  graphqlMaxCost: 5000,
  graphqlMaxTokens: 10_000,
});

/**
 * The line `offset` falls on in `text`: 1-based line and column, and the whole line (a slice,
 * which V8 keeps as a view of `text` rather than a copy).
 */
export function lineAt(text: string, offset: number): { line: number; column: number; text: string } {
  let line = 1;
  let start = 0;
  for (let nl = text.indexOf('\n'); nl !== -1 && nl < offset; nl = text.indexOf('\n', nl + 1)) {
    line++;
    start = nl + 1;
  }
  let end = text.indexOf('\n', start);
  if (end < 0) end = text.length;
  if (end > start && text.charCodeAt(end - 1) === 13) end--;
  return { line, column: offset - start + 1, text: text.slice(start, end) };
}

/** Where `offset` falls in `text`, for an error: line, column, the line cut around the column, and an excerpt with a caret. */
export function locate(text: string, offset: number): { line: number; column: number; text: string; excerpt: string } {
  const at = lineAt(text, offset);
  const clipped = clipLine(at.text, at.column);
  const gutter = `${at.line} | `;
  return {
    line: at.line,
    column: at.column,
    text: clipped.text,
    excerpt: `${gutter}${clipped.text}\n${' '.repeat(gutter.length + clipped.caret)}^`,
  };
}

/*
 * Label keys as Kubernetes validates them (apimachinery IsQualifiedName): an optional prefix that
 * is a DNS subdomain (RFC 1123, at most 253 characters) and a '/', then a name of at most 63
 * characters, alphanumeric at both ends with '-', '_' and '.' inside.
 */
const LABEL_NAME = /^[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/;

function labelKeyProblem(key: string): string | null {
  const slash = key.indexOf('/');
  const prefix = slash === -1 ? null : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== null) {
    if (prefix.length === 0) return 'has an empty prefix before /';
    if (prefix.length > 253) return 'has a prefix longer than 253 characters';
    if (!prefix.split('.').every((part) => DNS_LABEL.test(part))) {
      return 'has a prefix that is not a DNS subdomain (lower-case letters, digits, - and ., alphanumeric at each end of each part)';
    }
  }
  if (name.length === 0) return 'has an empty name';
  if (name.length > 63) return 'has a name longer than 63 characters';
  if (!LABEL_NAME.test(name)) return 'has a name that is not letters, digits, -, _ and . (alphanumeric at both ends)';
  return null;
}

/** A label key for a message: short keys as they are, long ones cut. */
function quoteKey(key: string): string {
  return JSON.stringify(key.length > 80 ? `${key.slice(0, 80)}…` : key);
}

/**
 * Refuses labels Kubernetes-style keys could not hold, or that are too many or too long:
 * at most `maxLabels` labels, keys `[prefix/]name` as Kubernetes validates them, values of at
 * most `maxLabelValue` characters that PostgreSQL can store.
 */
export function checkLabels(labels: Readonly<Record<string, string>>, limits: Pick<Limits, 'maxLabels' | 'maxLabelValue'> = DEFAULT_LIMITS): void {
  const keys = Object.keys(labels);
  if (keys.length > limits.maxLabels) {
    throw new AppError('VALIDATION', `too many labels: ${keys.length}, at most ${limits.maxLabels} (SVCPATH_MAX_LABELS)`, { labels: keys.length, limit: limits.maxLabels });
  }
  for (const key of keys) {
    const problem = labelKeyProblem(key);
    if (problem) throw new AppError('VALIDATION', `label ${quoteKey(key)} ${problem}`, { label: key.slice(0, 320) });
    const value = labels[key];
    if (typeof value !== 'string') throw new AppError('VALIDATION', `label ${quoteKey(key)} must have a string value`, { label: key });
    if (value.length > limits.maxLabelValue) {
      throw new AppError('VALIDATION', `label ${quoteKey(key)} has a value of ${value.length} characters, at most ${limits.maxLabelValue} (SVCPATH_MAX_LABEL_VALUE)`, { label: key });
    }
    checkStorableText(value, `label ${quoteKey(key)}`);
  }
}

/**
 * Refuses an input that is binary data rather than text (control bytes make 5% of its first
 * kilobyte), saying what it begins with in hex instead of echoing it. `what` names the input.
 */
export function refuseBinary(bytes: Buffer, what: string, hint: string): void {
  const head = bytes.subarray(0, 1024);
  let control = 0;
  for (const b of head) if (b === 0 || (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x1b)) control++;
  // A stray NUL in a comment is text with a flaw (refused with its line); binary is full of them.
  if (control * 20 < head.length) return;
  const begins = [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new AppError('VALIDATION', `${what} is binary data (it begins with bytes ${begins}), not text: ${hint}`);
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Refuses text PostgreSQL cannot store as it is: a NUL character (a `text` value cannot hold
 * 0x00) or a lone UTF-16 surrogate (it has no UTF-8 form; the driver would store U+FFFD in its
 * place, silently changing the text). `what` names the input in the message ("node a: rules").
 * The excerpt shows the NUL as ␀ (U+2400).
 * Invalid UTF-8 bytes never get this far: they were decoded as U+FFFD when the request was read.
 */
export function checkStorableText(text: string, what: string): void {
  const nul = text.indexOf('\0');
  let offset = nul;
  let problem = 'contains a NUL character (0x00), which PostgreSQL cannot store in text';
  if (!isWellFormed(text)) {
    const lone = LONE_SURROGATE.exec(text)?.index ?? -1;
    if (lone !== -1 && (nul === -1 || lone < nul)) {
      offset = lone;
      problem = `contains a lone UTF-16 surrogate (U+${text.charCodeAt(lone).toString(16).toUpperCase()}), which has no UTF-8 form`;
    }
  }
  if (offset === -1) return;
  const at = locate(text, offset);
  throw new AppError('VALIDATION', `${what} ${problem} (line ${at.line}, column ${at.column})`, {
    line: at.line, column: at.column, text: at.text.replaceAll('\0', '␀'), excerpt: at.excerpt.replaceAll('\0', '␀'),
  });
}

/**
 * Refuses a value bound for a PostgreSQL jsonb column that holds a string jsonb cannot store: a
 * NUL (jsonb refuses even the escaped `\u0000`) or a lone surrogate. Such strings come from input
 * that was stored fine as text, e.g. a Pod named `"a\u0000b"` in JSON manifests, quoted in a note.
 * `what` names the value; the message adds where in it (`notes[2]`).
 */
export function checkStorableJson(value: unknown, what: string): void {
  const pending: Array<[unknown, string]> = [[value, '']];
  while (pending.length > 0) {
    const [v, path] = pending.pop()!;
    if (typeof v === 'string') {
      const bad = badCharacter(v);
      if (bad) throw new AppError('VALIDATION', `${what}${path ? ` at ${path}` : ''} ${bad} (it comes from the input)`, { path });
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => pending.push([x, `${path}[${i}]`]));
    } else if (typeof v === 'object' && v !== null) {
      for (const [k, x] of Object.entries(v)) {
        const bad = badCharacter(k);
        if (bad) throw new AppError('VALIDATION', `${what}${path ? ` at ${path}` : ''}: a key ${bad}`, { path });
        pending.push([x, path ? `${path}.${k}` : k]);
      }
    }
  }
}

function badCharacter(s: string): string | null {
  if (s.includes('\0')) return 'contains a NUL character (0x00), which PostgreSQL cannot store';
  if (!isWellFormed(s)) return 'contains a lone UTF-16 surrogate, which has no UTF-8 form';
  return null;
}

/** String.prototype.isWellFormed (Node 20); the lib typings this project compiles against predate it. */
function isWellFormed(text: string): boolean {
  return (text as string & { isWellFormed(): boolean }).isWellFormed();
}

/**
 * Checks the shape of manifests before they are parsed: their size, how deeply objects and lists
 * nest, and how many values they hold. The YAML and JSON readers recurse once per level:
 * 12,000 levels of `- - - x` (27 KB) exhaust the stack, and at the wrong moment V8 takes that as
 * fatal and the process dies. And the YAML parser peaks at about 0.8 KB of memory per value: 10 MB
 * of `[a,a,…` is five million values, more heap than the process has.
 *
 * JSON (text starting with `{` or `[`): the nesting of brackets outside strings, and their number
 * (objects and lists; scalars cost JSON.parse little). YAML: an upper
 * bound found line by line without parsing: the open indentation levels, the indicators (`- `,
 * `? `, `key: `) that open a collection on the line itself (`- - - x` is three levels), and flow
 * brackets; values are lines, indicators, flow brackets and commas. Comments, quoted scalars and
 * block scalars (`|`, `>`) are skipped.
 */
export function checkManifestsShape(
  text: string,
  limits: Pick<Limits, 'manifestsMaxBytes' | 'manifestsMaxDepth' | 'manifestsMaxValues'> = DEFAULT_LIMITS,
): void {
  // A UTF-16 length over the limit is over it in UTF-8 too; count bytes only when it may matter.
  if (text.length > limits.manifestsMaxBytes || (text.length * 3 > limits.manifestsMaxBytes && Buffer.byteLength(text) > limits.manifestsMaxBytes)) {
    throw new AppError('VALIDATION', `manifests: larger than ${limits.manifestsMaxBytes} bytes (SVCPATH_MANIFESTS_MAX_MB)`, { part: 'manifests', limit: limits.manifestsMaxBytes });
  }
  const shape = { maxDepth: limits.manifestsMaxDepth, maxValues: limits.manifestsMaxValues, values: 0 };
  const json = looksLikeJson(text);
  const at = json ? jsonShape(text, shape) : yamlShape(text, shape);
  if (at === -1) return;
  const where = locate(text, at);
  const [problem, variable, limit] = shape.values > shape.maxValues
    ? [`more than ${shape.maxValues} ${json ? 'objects and lists' : 'values'}`, 'SVCPATH_MANIFESTS_MAX_VALUES', shape.maxValues]
    : [`nested more than ${shape.maxDepth} levels deep`, 'SVCPATH_MANIFESTS_MAX_DEPTH', shape.maxDepth];
  throw new AppError('VALIDATION', `manifests: ${problem} (${variable}) (line ${where.line}, column ${where.column})`, {
    part: 'manifests', limit, ...where,
  });
}

interface Shape {
  readonly maxDepth: number;
  readonly maxValues: number;
  /** Values counted so far; past `maxValues` the scan stops. */
  values: number;
}

function looksLikeJson(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 32 || c === 9 || c === 10 || c === 13 || c === 0xfeff) continue;
    return c === 0x7b || c === 0x5b; // { [
  }
  return false;
}

/**
 * The offset where the JSON text nests deeper than allowed or holds too many objects and lists,
 * or -1. Only objects and lists count: JSON.parse reads scalars cheaply, but `{}{}{}…` or
 * `[[],[],…]` make millions of values for the readers after it.
 */
function jsonShape(text: string, shape: Shape): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > shape.maxDepth || ++shape.values > shape.maxValues) return i;
    } else if (c === 0x7d || c === 0x5d) {
      if (depth > 0) depth--;
    }
  }
  return -1;
}

const SPACE = 32;
const TAB = 9;
const CR = 13;
const BLOCK_SCALAR_HEADER = /^[|>][-+1-9]{0,2}[ \t]*(?:#.*)?\r?$/;

function isBlank(c: number): boolean {
  return c === SPACE || c === TAB || c === CR;
}

/**
 * The offset where the YAML text nests deeper than allowed or holds too many values, or -1.
 * `columns` holds the columns of the block collections open at that point, with whether each is
 * a sequence: a `- ` line at the column of a mapping key is that key's value, one level deeper.
 */
function yamlShape(text: string, shape: Shape): number {
  const max = shape.maxDepth;
  const columns: number[] = [];
  const sequence: boolean[] = [];
  let flow = 0; // depth inside [ ] and { }
  let quote = 0; // the quote of a quoted scalar still open at the end of the last line
  let blockScalar = -1; // while in a | or > scalar: the indentation of the line that opened it
  const open = (column: number, isSequence: boolean): boolean => {
    columns.push(column);
    sequence.push(isSequence);
    return columns.length + flow > max || ++shape.values > shape.maxValues;
  };
  for (let lineStart = 0; lineStart < text.length;) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd === -1) lineEnd = text.length;
    let i = lineStart;
    while (i < lineEnd && text.charCodeAt(i) === SPACE) i++;
    const indent = i - lineStart;
    const blank = i === lineEnd || text.charCodeAt(i) === CR || text.charCodeAt(i) === 0x23;
    if (blockScalar !== -1 && (blank || indent > blockScalar)) {
      lineStart = lineEnd + 1;
      continue;
    }
    blockScalar = -1;
    if (blank && quote === 0) {
      lineStart = lineEnd + 1;
      continue;
    }
    let valueStart = true;
    if (quote === 0 && flow === 0) {
      if ((text.startsWith('---', i) || text.startsWith('...', i)) && (i + 3 === lineEnd || isBlank(text.charCodeAt(i + 3)))) {
        columns.length = 0; // a new document
        sequence.length = 0;
        i += 3;
      } else {
        const dash = text.charCodeAt(i) === 0x2d && (i + 1 === lineEnd || isBlank(text.charCodeAt(i + 1)));
        while (columns.length > 0) {
          const top = columns[columns.length - 1];
          if (top < indent || (top === indent && dash && !sequence[sequence.length - 1])) break;
          columns.pop();
          sequence.pop();
        }
        if (open(indent, dash)) return i;
      }
    }
    for (; i < lineEnd; i++) {
      const c = text.charCodeAt(i);
      if (quote !== 0) {
        if (c === quote) {
          if (quote === 0x27 && text.charCodeAt(i + 1) === 0x27) i++; // '' inside '…'
          else quote = 0;
        } else if (c === 0x5c && quote === 0x22) i++;
        continue;
      }
      if (isBlank(c)) continue;
      if (c === 0x23 && isBlank(text.charCodeAt(i - 1))) break; // a comment
      const spaced = i + 1 === lineEnd || isBlank(text.charCodeAt(i + 1));
      if (flow === 0 && spaced && (c === 0x2d || c === 0x3f || c === 0x3a)) {
        // `- `, `? `, `: `: what follows on this line may open another collection, at its column.
        let j = i + 1;
        while (j < lineEnd && isBlank(text.charCodeAt(j))) j++;
        if (j < lineEnd && text.charCodeAt(j) !== 0x23 && open(j - lineStart, text.charCodeAt(j) === 0x2d)) return j;
        valueStart = true;
        continue;
      }
      if (c === 0x22 || c === 0x27) {
        if (valueStart || flow > 0) quote = c;
        valueStart = false;
        continue;
      }
      if (c === 0x5b || c === 0x7b) {
        if (valueStart || flow > 0) {
          flow++;
          if (columns.length + flow > max || ++shape.values > shape.maxValues) return i;
          continue;
        }
      } else if (flow > 0) {
        if (c === 0x5d || c === 0x7d) flow--;
        valueStart = c === 0x2c || c === 0x3a; // after , or : a value starts
        if (valueStart && ++shape.values > shape.maxValues) return i;
        continue;
      } else if ((c === 0x7c || c === 0x3e) && valueStart && BLOCK_SCALAR_HEADER.test(text.slice(i, Math.min(lineEnd, i + 200)))) {
        blockScalar = indent; // | or >: the lines below, indented more, are text
        break;
      }
      // A plain scalar in block context, maybe a key: up to its `: `, a comment or the end of the line.
      let j = i + 1;
      while (j < lineEnd) {
        const d = text.charCodeAt(j);
        if (d === 0x3a && (j + 1 === lineEnd || isBlank(text.charCodeAt(j + 1)))) break;
        if (d === 0x23 && isBlank(text.charCodeAt(j - 1))) break;
        j++;
      }
      i = j - 1;
      valueStart = false;
    }
    lineStart = lineEnd + 1;
  }
  return -1;
}
