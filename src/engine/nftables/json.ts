/**
 * The reader of `nft -j list ruleset` output (libnftables' JSON schema: `{"nftables": [{"table":
 * …}, {"chain": …}, {"set": …}, {"map": …}, {"rule": …}]}`) into the same model the text reader
 * makes. Where nft's JSON and text differ only in how they write the same thing (`"op": "=="` for
 * a match the text writes without operator, `16384` for `0x00004000`, a default reject or burst
 * spelled out), the model follows the text form, so both read the same.
 *
 * Errors name the JSON path of what is wrong, such as `nftables[12].rule.expr[3]`.
 */
import { EngineError } from '../errors.ts';
import type {
  NftExpr, NftFamily, NftHook, NftOperator, NftRuleset, NftSetElement, NftSetType, NftStatement,
  NftVerdictName, NftAnonymousSet, NftSetReference, NftNatStatement, NftLimitStatement, NftLogStatement,
} from './ast.ts';
import { NFT_FAMILIES } from './ast.ts';
import type { SetDraft, TableDraft } from './builder.ts';
import { BuildError, NftBuilder, ruleDraft } from './builder.ts';
import { printRule } from './printer.ts';
import { literal, setBurst, valueWord } from './values.ts';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const FAMILIES: ReadonlySet<string> = new Set(NFT_FAMILIES);
const OPERATORS: ReadonlySet<string> = new Set(['==', '!=', '<', '>', '<=', '>=', 'in']);
const VERDICTS: ReadonlySet<string> = new Set(['accept', 'drop', 'return', 'continue', 'queue']);
const HOOKS: ReadonlySet<string> = new Set(['prerouting', 'input', 'forward', 'output', 'postrouting', 'ingress', 'egress']);
const BINARY: ReadonlySet<string> = new Set(['&', '|', '^', '<<', '>>']);
/** Selectors whose values nft's text form quotes (interface names and the like). */
const STRING_META: ReadonlySet<string> = new Set(['iifname', 'oifname', 'ibrname', 'obrname', 'ibriport', 'obriport', 'sdifname']);

/** Failure at a JSON path; becomes a located EngineError. */
class JsonPathError extends Error {
  readonly path: string;

  constructor(path: string, message: string) {
    super(message);
    this.path = path;
  }
}

/** Reads `nft -j list ruleset` (or `nft -j list table …`) output. */
export function parseNftJson(text: string): NftRuleset {
  let doc: Json;
  try {
    doc = JSON.parse(text) as Json;
  } catch (e) {
    throw jsonSyntaxError(text, e instanceof Error ? e.message : String(e));
  }
  try {
    return new JsonReader().read(doc);
  } catch (e) {
    if (e instanceof JsonPathError) throw new EngineError('DUMP_SYNTAX', `${e.path}: ${e.message}`);
    if (e instanceof BuildError) throw new EngineError('DUMP_SYNTAX', e.message);
    // Expressions nested thousands deep: the reader's recursion runs out before the input does.
    if (e instanceof RangeError) throw new EngineError('DUMP_SYNTAX', 'the JSON nests expressions too deeply to be an nft ruleset');
    throw e;
  }
}

/** JSON.parse's complaint, placed at the line and column where the JSON goes wrong. */
function jsonSyntaxError(text: string, message: string): EngineError {
  let pos: number;
  try {
    pos = Math.min(jsonErrorOffset(text), text.length);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    return new EngineError('DUMP_SYNTAX', `not valid JSON: ${message}`);
  }
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < pos; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  let end = text.indexOf('\n', lineStart);
  if (end < 0) end = text.length;
  return new EngineError('DUMP_SYNTAX', `not valid JSON: ${message}`, { line, column: pos - lineStart + 1, text: text.slice(lineStart, end) });
}

/**
 * Where JSON text stops being JSON (an offset), found by walking its grammar; Node's JSON.parse
 * says what is wrong but not where. Only run on text JSON.parse refused.
 */
function jsonErrorOffset(text: string): number {
  let p = 0;
  const fail = (): never => {
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- the offset is thrown as a value to unwind the scan, and caught below
    throw p;
  };
  const ws = (): void => {
    while (p < text.length && (text[p] === ' ' || text[p] === '\n' || text[p] === '\t' || text[p] === '\r')) p++;
  };
  const str = (): void => {
    if (text[p] !== '"') fail();
    p++;
    while (p < text.length && text[p] !== '"') {
      if (text.charCodeAt(p) < 0x20) fail();
      p += text[p] === '\\' ? 2 : 1;
    }
    if (p >= text.length) fail();
    p++;
  };
  const value = (): void => {
    ws();
    const c = text[p];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      p++;
      ws();
      if (text[p] === close) {
        p++;
        return;
      }
      for (;;) {
        if (c === '{') {
          ws();
          str();
          ws();
          if (text[p] !== ':') fail();
          p++;
        }
        value();
        ws();
        if (text[p] === ',') {
          p++;
          continue;
        }
        if (text[p] !== close) fail();
        p++;
        return;
      }
    }
    if (c === '"') return str();
    const m = /^(-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(p, p + 400));
    if (!m) fail();
    p += m![0].length;
  };
  try {
    value();
    ws();
    if (p < text.length) fail();
  } catch (at) {
    if (typeof at === 'number') return at;
    throw at;
  }
  return p;
}

function isObject(j: Json | undefined): j is JsonObject {
  return typeof j === 'object' && j !== null && !Array.isArray(j);
}

/** The one key of `{"key": value}`, as nft's JSON writes every expression and statement. */
function single(j: Json, path: string): [string, Json] {
  if (!isObject(j)) throw new JsonPathError(path, `expected an object, found ${describe(j)}`);
  const keys = Object.keys(j);
  if (keys.length !== 1) throw new JsonPathError(path, `expected an object with one key, found ${keys.length} (${keys.slice(0, 4).join(', ')})`);
  return [keys[0], j[keys[0]]!];
}

function describe(j: Json | undefined): string {
  if (j === undefined) return 'nothing';
  if (j === null) return 'null';
  if (Array.isArray(j)) return 'an array';
  return typeof j === 'object' ? 'an object' : `${typeof j} ${JSON.stringify(j).slice(0, 40)}`;
}

function str(o: JsonObject, key: string, path: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw new JsonPathError(`${path}.${key}`, `expected a string, found ${describe(v)}`);
  return v;
}

function optStr(o: JsonObject, key: string, path: string): string | undefined {
  return o[key] === undefined ? undefined : str(o, key, path);
}

function optNum(o: JsonObject, key: string, path: string): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number') throw new JsonPathError(`${path}.${key}`, `expected a number, found ${describe(v)}`);
  return v;
}

function strings(j: Json | undefined, path: string): string[] {
  if (j === undefined) return [];
  if (typeof j === 'string') return [j];
  if (Array.isArray(j) && j.every((x) => typeof x === 'string')) return j;
  throw new JsonPathError(path, `expected a string or a list of strings, found ${describe(j)}`);
}

class JsonReader {
  readonly #b = new NftBuilder();

  read(doc: Json): NftRuleset {
    if (!isObject(doc) || !Array.isArray(doc.nftables)) {
      throw new JsonPathError('(top)', 'expected {"nftables": [ … ]} as `nft -j list ruleset` prints it');
    }
    const items = doc.nftables;
    let content = false;
    for (let i = 0; i < items.length; i++) {
      const path = `nftables[${i}]`;
      const [kind, body] = single(items[i], path);
      if (kind === 'metainfo') continue;
      if (!isObject(body)) throw new JsonPathError(`${path}.${kind}`, `expected an object, found ${describe(body)}`);
      const at = `${path}.${kind}`;
      content = true;
      switch (kind) {
        case 'table':
          this.#table(body, at);
          break;
        case 'chain':
          this.#chain(body, at);
          break;
        case 'set':
        case 'map':
          this.#set(body, kind === 'map', at);
          break;
        case 'rule':
          this.#rule(body, at);
          break;
        case 'add':
        case 'insert':
        case 'delete':
        case 'flush':
        case 'replace':
        case 'create':
          throw new JsonPathError(path, `JSON commands ('${kind}') are not read: send \`nft -j list ruleset\` output`);
        default:
          this.#b.note('info', 'NFT_OBJECT_SKIPPED', `${path}: ${kind} objects are not modelled; skipped`);
      }
    }
    if (!content) throw new EngineError('DUMP_EMPTY', 'the JSON ruleset has no tables');
    return this.#b.build('json');
  }

  #family(o: JsonObject, path: string): NftFamily {
    const f = str(o, 'family', path);
    if (!FAMILIES.has(f)) throw new JsonPathError(`${path}.family`, `unknown family '${f}'`);
    return f as NftFamily;
  }

  #tableOf(o: JsonObject, path: string): TableDraft {
    return this.#b.table(this.#family(o, path), str(o, 'table', path));
  }

  #table(o: JsonObject, path: string): void {
    const t = this.#b.table(this.#family(o, path), str(o, 'name', path));
    const handle = optNum(o, 'handle', path);
    if (handle !== undefined) t.handle = handle;
    const comment = optStr(o, 'comment', path);
    if (comment !== undefined) t.comment = comment;
    t.flags = strings(o.flags, `${path}.flags`);
  }

  #chain(o: JsonObject, path: string): void {
    const table = this.#tableOf(o, path);
    const chain = this.#b.chain(table, str(o, 'name', path));
    const handle = optNum(o, 'handle', path);
    if (handle !== undefined) chain.handle = handle;
    const comment = optStr(o, 'comment', path);
    if (comment !== undefined) chain.comment = comment;
    if (o.hook === undefined) return;
    const type = str(o, 'type', path);
    const hook = str(o, 'hook', path);
    if (type !== 'filter' && type !== 'nat' && type !== 'route') throw new JsonPathError(`${path}.type`, `unknown chain type '${type}'`);
    if (!HOOKS.has(hook)) throw new JsonPathError(`${path}.hook`, `unknown hook '${hook}'`);
    const prio = optNum(o, 'prio', path) ?? 0;
    const policy = optStr(o, 'policy', path) ?? 'accept';
    if (policy !== 'accept' && policy !== 'drop') throw new JsonPathError(`${path}.policy`, `unknown policy '${policy}'`);
    chain.base = {
      type, hook: hook as NftHook, priority: prio, priorityText: String(prio), policy,
      devices: strings(o.dev, `${path}.dev`),
    };
  }

  #set(o: JsonObject, isMap: boolean, path: string): void {
    const table = this.#tableOf(o, path);
    const set: SetDraft = this.#b.set(table, str(o, 'name', path), isMap, 0);
    const handle = optNum(o, 'handle', path);
    if (handle !== undefined) set.handle = handle;
    set.key = setType(o.type, `${path}.type`);
    if (isMap) set.data = setType(o.map, `${path}.map`);
    set.flags = strings(o.flags, `${path}.flags`);
    const timeout = optNum(o, 'timeout', path);
    if (timeout !== undefined) set.timeoutMs = timeout * 1000;
    const gc = optNum(o, 'gc-interval', path);
    if (gc !== undefined) set.gcIntervalMs = gc * 1000;
    const size = optNum(o, 'size', path);
    if (size !== undefined) set.size = size;
    const policy = optStr(o, 'policy', path);
    if (policy !== undefined) set.policy = policy;
    const comment = optStr(o, 'comment', path);
    if (comment !== undefined) set.comment = comment;
    if (o['auto-merge'] === true) set.autoMerge = true;
    const quoted = (set.key.types ?? []).includes('ifname');
    const elem = o.elem;
    if (elem === undefined) return;
    if (!Array.isArray(elem)) throw new JsonPathError(`${path}.elem`, `expected a list, found ${describe(elem)}`);
    for (let i = 0; i < elem.length; i++) set.elements.push(this.#element(elem[i], isMap, quoted, `${path}.elem[${i}]`));
  }

  /** A set element (`expr` or `{"elem": {…}}`), or for maps `[key, value]`. */
  #element(j: Json, isMap: boolean, quoted: boolean, path: string): NftSetElement {
    let keyJson = j;
    let valueJson: Json | undefined;
    if (isMap) {
      if (!Array.isArray(j) || j.length !== 2) throw new JsonPathError(path, `expected [key, value], found ${describe(j)}`);
      keyJson = j[0]!;
      valueJson = j[1]!;
    }
    let key: NftExpr;
    let timeout: number | undefined;
    let expires: number | undefined;
    let comment: string | undefined;
    if (isObject(keyJson) && isObject(keyJson.elem)) {
      const e = keyJson.elem;
      const at = `${path}.elem`;
      key = this.#expr(e.val ?? null, `${at}.val`, quoted);
      timeout = optNum(e, 'timeout', at);
      expires = optNum(e, 'expires', at);
      comment = optStr(e, 'comment', at);
    } else {
      key = this.#expr(keyJson, isMap ? `${path}[0]` : path, quoted);
    }
    // Fields in the order the text reader sets them, so elements from either reader share a shape.
    const el: { -readonly [K in keyof NftSetElement]: NftSetElement[K] } = { key, line: 0 };
    if (valueJson !== undefined) el.value = this.#expr(valueJson, `${path}[1]`, false);
    if (timeout !== undefined) el.timeoutMs = timeout * 1000;
    if (expires !== undefined) el.expiresMs = expires * 1000;
    if (comment !== undefined) el.comment = comment;
    return el;
  }

  #rule(o: JsonObject, path: string): void {
    const table = this.#tableOf(o, path);
    const chain = this.#b.chain(table, str(o, 'chain', path));
    const exprs = o.expr;
    if (!Array.isArray(exprs)) throw new JsonPathError(`${path}.expr`, `expected a list of statements, found ${describe(exprs)}`);
    const statements: NftStatement[] = [];
    for (let i = 0; i < exprs.length; i++) statements.push(this.#statement(exprs[i], table, `${path}.expr[${i}]`));
    const comment = optStr(o, 'comment', path);
    const rule = ruleDraft(0, '', statements, comment, optNum(o, 'handle', path));
    rule.text = printRule(rule);
    this.#b.addRule(chain, rule, { at: 'end' }, { line: 0, column: 0 });
  }

  #statement(j: Json, table: TableDraft, path: string): NftStatement {
    const [kind, body] = single(j, path);
    const at = `${path}.${kind}`;
    const o = isObject(body) ? body : undefined;
    switch (kind) {
      case 'match': {
        if (!o) break;
        const op = str(o, 'op', at);
        if (!OPERATORS.has(op)) throw new JsonPathError(`${at}.op`, `unknown operator '${op}'`);
        const left = this.#expr(o.left ?? null, `${at}.left`, false);
        const right = this.#expr(o.right ?? null, `${at}.right`, isStringSelector(left));
        return { kind: 'match', left, op: op as NftOperator, right };
      }
      case 'accept':
      case 'drop':
      case 'return':
      case 'continue':
        return { kind: 'verdict', verdict: kind };
      case 'jump':
      case 'goto':
        if (!o) break;
        return { kind: 'verdict', verdict: kind, target: str(o, 'target', at) };
      case 'counter':
        if (body === null) return { kind: 'counter' };
        if (!o) break;
        return { kind: 'counter', packets: String(optNum(o, 'packets', at) ?? 0), bytes: String(optNum(o, 'bytes', at) ?? 0) };
      case 'notrack':
        return { kind: 'notrack' };
      case 'vmap':
        if (!o) break;
        return { kind: 'vmap', key: this.#expr(o.key ?? null, `${at}.key`, false), map: this.#mapOperand(o.data, `${at}.data`) };
      case 'mangle':
        if (!o) break;
        return { kind: 'mangle', target: this.#expr(o.key ?? null, `${at}.key`, false), value: this.#expr(o.value ?? null, `${at}.value`, false) };
      case 'dnat':
      case 'snat':
      case 'masquerade':
      case 'redirect': {
        const s: { -readonly [K in keyof NftNatStatement]: NftNatStatement[K] } = {
          kind: 'nat', type: kind, flags: o ? strings(o.flags, `${at}.flags`) : [],
        };
        if (o) {
          const family = optStr(o, 'family', at);
          if (family === 'ip' || family === 'ip6') s.family = family;
          if (o.addr !== undefined) s.address = this.#expr(o.addr, `${at}.addr`, false);
          if (o.port !== undefined) s.port = this.#expr(o.port, `${at}.port`, false);
        }
        return s;
      }
      case 'reject': {
        if (!o) return { kind: 'reject' };
        const type = optStr(o, 'type', at);
        if (type === 'tcp reset') return { kind: 'reject', with: 'tcp reset' };
        if (type !== 'icmp' && type !== 'icmpv6' && type !== 'icmpx') return { kind: 'reject' };
        const code = optStr(o, 'expr', at) ?? 'port-unreachable';
        // nft's text form leaves out the family's default reject (port unreachable of its own ICMP).
        const natural = table.family === 'ip' ? 'icmp' : table.family === 'ip6' ? 'icmpv6' : 'icmpx';
        if (type === natural && code === 'port-unreachable') return { kind: 'reject' };
        return { kind: 'reject', with: type, code };
      }
      case 'set': {
        if (!o) break;
        const op = str(o, 'op', at);
        if (op !== 'add' && op !== 'update' && op !== 'delete') break;
        const set = str(o, 'set', at).replace(/^@/, '');
        const elem = o.elem ?? null;
        if (isObject(elem) && isObject(elem.elem)) {
          const key = this.#expr(elem.elem.val ?? null, `${at}.elem.elem.val`, false);
          const timeout = optNum(elem.elem, 'timeout', `${at}.elem.elem`);
          return timeout === undefined ? { kind: 'set-update', op, set, key } : { kind: 'set-update', op, set, key, timeoutMs: timeout * 1000 };
        }
        return { kind: 'set-update', op, set, key: this.#expr(elem, `${at}.elem`, false) };
      }
      case 'limit': {
        if (!o) break;
        const rate = optNum(o, 'rate', at);
        if (rate === undefined) break;
        const limit: { -readonly [K in keyof NftLimitStatement]: NftLimitStatement[K] } = {
          kind: 'limit', rate, unit: optStr(o, 'rate_unit', at) ?? 'packets', per: optStr(o, 'per', at) ?? 'second', over: o.inv === true,
        };
        setBurst(limit, optNum(o, 'burst', at) ?? 0, optStr(o, 'burst_unit', at));
        return limit;
      }
      case 'log': {
        const log: { -readonly [K in keyof NftLogStatement]: NftLogStatement[K] } = { kind: 'log' };
        if (o) {
          const prefix = optStr(o, 'prefix', at);
          if (prefix !== undefined) log.prefix = prefix;
          const level = optStr(o, 'level', at);
          if (level !== undefined) log.level = level;
          const group = optNum(o, 'group', at);
          if (group !== undefined) log.group = group;
          const more: string[] = [];
          const snaplen = optNum(o, 'snaplen', at);
          if (snaplen !== undefined) more.push(`snaplen ${snaplen}`);
          const qt = optNum(o, 'queue-threshold', at);
          if (qt !== undefined) more.push(`queue-threshold ${qt}`);
          const flags = strings(o.flags, `${at}.flags`);
          if (flags.length > 0) more.push(`flags ${flags.join(',')}`);
          if (more.length > 0) log.more = more.join(' ');
        }
        return log;
      }
      default:
    }
    const text = JSON.stringify(j);
    this.#b.note('warning', 'NFT_UNMODELLED', `${path}: ${text.slice(0, 200)} is not modelled; kept as text`);
    return { kind: 'unmodelled', text };
  }

  #mapOperand(j: Json | undefined, path: string): NftSetReference | NftAnonymousSet {
    if (typeof j === 'string' && j.startsWith('@')) return { kind: 'set-ref', name: j.slice(1) };
    if (isObject(j) && Array.isArray(j.set)) {
      const items = j.set;
      return { kind: 'anonymous-set', elements: items.map((x, i) => this.#element(x, Array.isArray(x), false, `${path}.set[${i}]`)) };
    }
    throw new JsonPathError(path, `expected "@name" or {"set": […]}, found ${describe(j)}`);
  }

  /** An expression; `quoted` marks string constants the text form would quote. */
  #expr(j: Json, path: string, quoted: boolean): NftExpr {
    if (typeof j === 'string') {
      if (j.startsWith('@')) return { kind: 'set-ref', name: j.slice(1) };
      return quoted ? literal(j, true) : valueWord(j);
    }
    if (typeof j === 'number') return literal(String(j));
    if (typeof j === 'boolean') return literal(j ? '1' : '0');
    if (Array.isArray(j)) return { kind: 'list', items: j.map((x, i) => this.#expr(x, `${path}[${i}]`, quoted)) };
    const [kind, body] = single(j, path);
    const at = `${path}.${kind}`;
    const o = isObject(body) ? body : undefined;
    switch (kind) {
      case 'payload':
        if (o && typeof o.protocol === 'string' && typeof o.field === 'string') return { kind: 'payload', protocol: o.protocol, field: o.field };
        break;
      case 'meta':
        if (o) return { kind: 'meta', key: str(o, 'key', at) };
        break;
      case 'ct': {
        if (!o) break;
        const key = str(o, 'key', at);
        const family = optStr(o, 'family', at);
        const dir = optStr(o, 'dir', at);
        const full = family ? `${family} ${key}` : key;
        return dir === 'original' || dir === 'reply' ? { kind: 'ct', key: full, direction: dir } : { kind: 'ct', key: full };
      }
      case 'fib':
        if (o) return { kind: 'fib', flags: strings(o.flags, `${at}.flags`), result: str(o, 'result', at) };
        break;
      case 'numgen':
        if (o) {
          const mode = str(o, 'mode', at);
          if (mode !== 'random' && mode !== 'inc') break;
          return { kind: 'numgen', mode, modulus: optNum(o, 'mod', at) ?? 0, offset: optNum(o, 'offset', at) ?? 0 };
        }
        break;
      case 'concat':
        if (Array.isArray(body)) return { kind: 'concat', parts: body.map((x, i) => this.#expr(x, `${at}[${i}]`, quoted)) };
        break;
      case 'prefix':
        if (o) return { kind: 'prefix', address: str(o, 'addr', at), length: optNum(o, 'len', at) ?? 0 };
        break;
      case 'range':
        if (Array.isArray(body) && body.length === 2) {
          return { kind: 'range', low: this.#expr(body[0], `${at}[0]`, quoted), high: this.#expr(body[1], `${at}[1]`, quoted) };
        }
        break;
      case 'set':
        if (Array.isArray(body)) {
          return { kind: 'anonymous-set', elements: body.map((x, i) => this.#element(x, Array.isArray(x), quoted, `${at}[${i}]`)) };
        }
        break;
      case 'map':
        if (o) return { kind: 'map', key: this.#expr(o.key ?? null, `${at}.key`, false), map: this.#mapOperand(o.data, `${at}.data`) };
        break;
      case 'jump':
      case 'goto':
        if (o) return { kind: 'verdict', verdict: kind, target: str(o, 'target', at) };
        break;
      default:
        if (VERDICTS.has(kind)) return { kind: 'verdict', verdict: kind as NftVerdictName };
        if (BINARY.has(kind) && Array.isArray(body) && body.length === 2) {
          return {
            kind: 'binary', op: kind as '&' | '|' | '^' | '<<' | '>>',
            left: this.#expr(body[0], `${at}[0]`, false), right: this.#expr(body[1], `${at}[1]`, false),
          };
        }
    }
    return { kind: 'unmodelled', text: JSON.stringify(j) };
  }
}

function setType(j: Json | undefined, path: string): NftSetType {
  const types = typeof j === 'string' ? j.split(' . ') : strings(j, path);
  if (types.length === 0) throw new JsonPathError(path, 'expected the set\'s data type');
  return { types, text: types.join(' . ') };
}

function isStringSelector(e: NftExpr): boolean {
  return (e.kind === 'meta' && STRING_META.has(e.key)) || (e.kind === 'ct' && e.key === 'helper');
}
