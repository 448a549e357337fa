/**
 * Parsers for rule dumps: `iptables-save` / `ip6tables-save` output (and the iptables-restore input
 * kube-proxy writes), and `iptables -S` output. Both produce the same Ruleset model.
 */
import type { Chain, Counters, Diagnostic, DumpFormat, Ruleset, Table } from './ast.ts';
import { repairDump } from './repair.ts';
import { readListing } from './listing.ts';
import type { RuleBody } from './rule-parser.ts';
import { isBuiltinChain, TABLE_NAMES } from './ast.ts';
import { EngineError, syntaxError } from '../errors.ts';
import { lex, Words } from './lexer.ts';
import { RuleReader } from './rule-parser.ts';
import type { ChainHome } from './rule.ts';
import { DumpChain, RuleStore, ZERO_COUNTERS } from './rule.ts';
import { isKnownModule, isKnownTarget } from './modules.ts';
import { FastRuleReader } from './fast-rule.ts';
import { asciiBytes, hashEnd, hashOf } from './char-index.ts';
import { ChainIndex, named } from './chain-index.ts';
import type { NftSourceForm } from '../nftables/ast.ts';
import { nftFormOfLine } from '../nftables/index.ts';

/** What a caller may ask for: a format, or 'auto' to detect it; 'nftables' is read by engine/rules.ts. */
export type FormatOption = 'auto' | DumpFormat | 'nftables';

export interface ParseOptions {
  readonly format?: FormatOption;
  /** For iptables -S input: the table the lines came from (`-t nat`). Inferred when absent. */
  readonly table?: string;
  /**
   * false: read every line with the full reader, none with the fast one (fast-rule.ts). The
   * answer is the same either way; tests hold the fast reader to the full one with it.
   */
  readonly fastReader?: boolean;
}



interface TableDraft {
  name: string;
  line: number;
  /** The chains, in the order they were made, by name. */
  chains: ChainIndex;
  /** What the table's chains share. */
  home: ChainHome;
  /** Targets that are neither known extensions nor (yet) chains, with where each was first seen. */
  unknownTargets: Map<string, { line: number; text: string }>;
  /** Every -j/-g target named in the table (numbers in the RuleStore): 1 at their number. */
  notedTargets: Uint8Array;
}

/** Could this target be an extension (a single upper-case word such as DNAT or CHECKSUM)? A dash marks a chain name. */
const EXTENSION_LIKE = /^[A-Z][A-Z0-9_]*$/;

/** EXTENSION_LIKE for b[from, to), without making a string. */
function extensionLikeAt(b: Uint8Array, from: number, to: number): boolean {
  if (to <= from || b[from] < 0x41 || b[from] > 0x5a) return false;
  for (let i = from + 1; i < to; i++) {
    const c = b[i];
    if (!((c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f)) return false;
  }
  return true;
}

class RulesetBuilder {
  /** What keepShapes() keeps (below). */
  static kept: unknown[] = [];
  readonly tables = new Map<string, TableDraft>();
  readonly diagnostics: Diagnostic[] = [];
  readonly reader = new RuleReader();
  readonly words = new Words();
  readonly store: RuleStore;
  private readonly fast: FastRuleReader;
  private readonly unknownReported = new Set<string>();
  /** The source as asciiBytes, for the fast paths (empty when they are off). */
  private readonly bytes: Uint8Array;

  constructor(readonly format: DumpFormat, readonly source: string, private readonly useFast = true) {
    this.bytes = useFast ? asciiBytes(source) : new Uint8Array(0);
    // About one rule per 150 characters in kube-proxy's dumps: room for them from the start.
    this.store = new RuleStore(Math.min(1 << 22, Math.floor(source.length / 128)));
    this.fast = new FastRuleReader(this.store);
  }

  table(name: string, line: number): TableDraft {
    let t = this.tables.get(name);
    if (!t) {
      const home = { table: name, source: this.source, store: this.store };
      t = { name, line, chains: new ChainIndex(), home, unknownTargets: new Map(), notedTargets: new Uint8Array(1024) };
      this.tables.set(name, t);
    }
    return t;
  }

  lastChain: DumpChain | null = null;

  /**
   * The chain called `name`, made when new. `hash` is hashOf(name) when the caller has it, and
   * `nameAt` where the name stands in the source (so that lookups compare bytes), or -1.
   */
  chain(table: TableDraft, name: string, line: number, hash?: number, nameAt = -1): DumpChain {
    // iptables-save lists a chain's rules together: most lookups hit the previous chain.
    const last = this.lastChain;
    if (last !== null && last.name === name && last.table === table.name) return last;
    const h = hash ?? hashOf(name, 0, name.length);
    let c = table.chains.hashed(name, h);
    if (!c) {
      const builtin = isBuiltinChain(table.name, name);
      c = new DumpChain(table.home, name, builtin, line, nameAt);
      c.hash = h;
      table.chains.add(c);
    }
    this.lastChain = c;
    return c;
  }

  /** The chain named source[from, to) (whose hash is `hash`), made when new. For the fast paths. */
  chainAt(table: TableDraft, from: number, to: number, hash: number): DumpChain {
    const last = this.lastChain;
    const b = this.bytes;
    if (last !== null && last.table === table.name) {
      if (named(last, b, from, to, hash)) return last;
      // iptables-save lists the rules chain by chain, in the order it declared the chains: the
      // chain is one of the next few (those in between have no rules).
      const order = table.chains.order;
      const stop = Math.min(last.position + 5, order.length);
      for (let k = last.position + 1; k < stop; k++) {
        const c = order[k];
        if (named(c, b, from, to, hash) && !c.deleted) return (this.lastChain = c);
      }
    }
    const found = table.chains.at(b, from, to, hash);
    if (found) return (this.lastChain = found);
    return this.chain(table, this.source.slice(from, to), 0, hash, from);
  }

  deleteChain(table: TableDraft, name: string): void {
    const c = table.chains.get(name);
    if (!c || c.builtin) return;
    table.chains.remove(c);
    this.lastChain = null;
  }

  /**
   * Reads `-A CHAIN …` / `-I CHAIN [n] …` (the words in `this.words`, the verb first) into a rule
   * of `table`. `from`/`to` are the offsets of the rule's text in `source`.
   */
  addRule(table: TableDraft, line: number, errorText: string, from: number, to: number, counters?: Counters): void {
    const words = this.words;
    const verb = words.text(0);
    if (words.count < 2) throw syntaxError(`${verb} needs a chain name`, line, words.column(0), errorText);
    let start = 2;
    let insertAt = -1;
    if (verb === '-I' || verb === '--insert') {
      insertAt = 0;
      const pos = words.text(2);
      if (pos !== undefined && /^\d+$/.test(pos)) {
        insertAt = Number(pos) - 1;
        start = 3;
      }
    }
    const body = this.reader.read(words, start, line, errorText, false);
    // iptables-save lists a chain's rules together: compare in place before making a string.
    const last = this.lastChain;
    const chain = last !== null && last.table === table.name && words.is(1, last.name) ? last : this.chain(table, words.text(1)!, 0);
    if (body.matches.length > 0) this.noteUnknown(body, errorText, line);
    const target = body.target?.name ?? null;
    const store = this.store;
    const targetId = target === null ? -1 : store.intern(target);
    if (target !== null) this.noteTarget(table, targetId, line, from, to, !isKnownTarget(target) && EXTENSION_LIKE.test(target));
    const d = body.destination;
    const host = d !== undefined && !d.negated && d.value.prefix === (d.value.family === 'ipv4' ? 32 : 128) ? d.value.address : null;
    const natTo = body.natTo ?? null;
    const id = store.add(
      from, to, line, start, targetId, host === null ? -1 : store.intern(host),
      body.dispatchPort ?? -1, natTo === null ? -1 : RuleStore.natToString(store.intern(natTo)), counters ?? body.counters,
    );
    chain.addRule(id, insertAt);
  }

  /**
   * Notes target `id` (a number in the RuleStore) of the rule source[from, to) as one of the
   * table's jump targets. `unknown`: it may be an extension svcpath does not model (or a chain
   * missing from the dump), reported at the rule that names it first.
   */
  private noteTarget(table: TableDraft, id: number, line: number, from: number, to: number, unknown: boolean): void {
    if (id < table.notedTargets.length && table.notedTargets[id] === 1) return;
    if (id >= table.notedTargets.length) {
      const more = new Uint8Array(Math.max(id + 1, table.notedTargets.length * 2));
      more.set(table.notedTargets);
      table.notedTargets = more;
    }
    table.notedTargets[id] = 1;
    const name = this.store.strings[id];
    if (unknown && !table.unknownTargets.has(name)) table.unknownTargets.set(name, { line, text: this.source.slice(from, to) });
  }

  /**
   * The current line as a rule, when the fast reader is sure of it (fast-rule.ts): the same
   * columns the full reader would give, without making a string per word. false: read it fully.
   */
  fastRule(table: TableDraft, lines: LineReader): boolean {
    if (!this.useFast) return false;
    const fast = this.fast;
    const from = lines.offset + lines.indent;
    const to = lines.ruleEnd();
    if (!fast.read(this.source, this.bytes, from, to, this.reader)) return false;
    const chain = this.chainAt(table, fast.chainStart, fast.chainEnd, fast.chainHash);
    const store = this.store;
    const target = fast.target;
    if (target >= 0 && (target >= table.notedTargets.length || table.notedTargets[target] === 0)) {
      this.noteTarget(table, target, lines.number, from, to, !fast.knownTarget && extensionLikeAt(this.bytes, fast.targetStart, fast.targetEnd));
    }
    chain.addRule(store.add(from, to, lines.number, 2, target, fast.dst, fast.dport, fast.natToAt, undefined));
    return true;
  }

  /**
   * `:NAME POLICY [packets:bytes]` in its plain form (single spaces), read without a regular
   * expression; false for any other form, which the full reader reads (and reports).
   */
  fastDeclaration(table: TableDraft, lines: LineReader): boolean {
    if (!this.useFast) return false;
    const s = this.source;
    const b = this.bytes;
    const from = lines.offset + lines.indent + 1;
    const end = lines.ruleEnd();
    // The name and the policy: printable ASCII (anything else may be a blank to the full
    // reader's pattern), one space after each; the name is hashed on the way.
    let i = from;
    let hash = 0;
    let dash = false;
    for (; i < end; i++) {
      const c = b[i];
      if (c === 0x20) break;
      if (c < 0x21 || c > 0x7e) return false;
      if (c === 0x2d) dash = true;
      hash = ((hash << 5) | (hash >>> 27)) ^ c;
    }
    const nameEnd = i;
    if (nameEnd === from || nameEnd >= end) return false;
    hash = hashEnd(hash);
    for (i = nameEnd + 1; i < end; i++) {
      const c = b[i];
      if (c === 0x20) break;
      if (c < 0x21 || c > 0x7e) return false;
    }
    const policyEnd = i;
    if (policyEnd === nameEnd + 1) return false;
    let packets: string | undefined;
    let bytes: string | undefined;
    let zero = false;
    if (end - policyEnd === 6 && s.startsWith(' [0:0]', policyEnd)) {
      // What iptables-save prints for almost every chain: no strings made for it.
      zero = true;
    } else if (policyEnd < end) {
      const colon = s.indexOf(':', policyEnd);
      if (s.charCodeAt(policyEnd + 1) !== 0x5b || s.charCodeAt(end - 1) !== 0x5d || colon < 0 || colon > end) return false;
      packets = s.slice(policyEnd + 2, colon);
      bytes = s.slice(colon + 1, end - 1);
      if (!DIGITS.test(packets) || !DIGITS.test(bytes)) return false;
    }
    const keep = policyEnd === nameEnd + 2 && b[nameEnd + 1] === 0x2d;
    // Built-in chains have no dash in their names; other names are not made into strings here.
    const builtin = !dash && isBuiltinChain(table.name, s.slice(from, nameEnd));
    // Decide before making the chain: a line declined here is read again by the full reader.
    let policy: 'ACCEPT' | 'DROP' | null = null;
    if (builtin) {
      if (!keep) {
        const p = s.slice(nameEnd + 1, policyEnd);
        if (p !== 'ACCEPT' && p !== 'DROP') return false;
        policy = p;
      }
    } else if (!keep) {
      return false;
    }
    let chain = table.chains.at(b, from, nameEnd, hash);
    if (!chain) {
      chain = new DumpChain(table.home, null, builtin, 0, from, nameEnd - from);
      chain.hash = hash;
      table.chains.add(chain);
    }
    this.lastChain = chain;
    chain.line = lines.number;
    // iptables-restore reads '-' on a built-in chain as "leave the policy as it is", counters too.
    if (chain.builtin && keep) return true;
    if (policy !== null) chain.policy = policy;
    if (zero) chain.counters = ZERO_COUNTERS;
    else if (packets !== undefined) chain.counters = { packets, bytes: bytes! };
    return true;
  }

  private noteUnknown(rule: RuleBody, text: string, line: number): void {
    for (const m of rule.matches) {
      if (!isKnownModule(m.module) && !this.unknownReported.has(`m:${m.module}`)) {
        this.unknownReported.add(`m:${m.module}`);
        this.diagnostics.push({
          severity: 'warning',
          code: 'UNKNOWN_MATCH',
          message: `match module '${m.module}' is kept but not modelled: a trace through such a rule says so`,
          line,
          text,
        });
      }
    }
  }

  build(assumptions: string[] = []): Ruleset {
    const tables = new Map<string, Table>();
    this.store.family = this.reader.family ?? 'ipv4';
    this.store.trim();
    for (const t of this.tables.values()) {
      const chains: ReadonlyMap<string, Chain> = t.chains;
      for (const [target, where] of t.unknownTargets) {
        if (t.chains.has(target)) continue;
        this.diagnostics.push({
          severity: 'warning',
          code: 'UNKNOWN_TARGET',
          message: `target '${target}' is kept but not modelled (or is a chain missing from the dump)`,
          line: where.line,
          text: where.text,
        });
      }
      tables.set(t.name, tableOf(t.name, t.line, chains, t.notedTargets, this.store.strings));
    }
    return {
      format: this.format,
      family: this.reader.family ?? 'ipv4',
      tables,
      diagnostics: this.diagnostics,
      assumptions,
    };
  }
}

/** A table whose jump targets (strings[i] for every i noted in `noted`) are a set made when first asked for. */
function tableOf(name: string, line: number, chains: ReadonlyMap<string, Chain>, noted: Uint8Array, strings: readonly string[]): Table {
  let made: Set<string> | null = null;
  return {
    name,
    line,
    chains,
    get jumpTargets(): ReadonlySet<string> {
      if (made) return made;
      made = new Set();
      for (let i = 0; i < noted.length; i++) if (noted[i] === 1) made.add(strings[i]);
      return made;
    },
  };
}

/**
 * Walks the lines of a dump without splitting it. A line is a pair of offsets; its text is a
 * slice of the dump (V8 keeps a slice as a reference into the original) made only when asked for,
 * so lines the fast rule reader accepts are never made into strings.
 */
export class LineReader {
  private pos = 0;
  private made: string | null = null;
  private madeBody: string | null = null;
  /** Leading blanks of the line (markdown indentation, tab-indented pastes); columns still count them. */
  indent = 0;
  /** 1-based number of the current line. */
  number = 0;
  /** Offset of the current line's first character in the text. */
  offset = 0;
  /** Offset just past the line's last character (before the line break and a trailing CR). */
  stop = 0;

  constructor(private readonly text: string) {}

  charCodeAt(i: number): number {
    return this.text.charCodeAt(i);
  }

  /** The current line without its line break (and without a trailing CR). */
  get line(): string {
    return (this.made ??= this.text.slice(this.offset, this.stop));
  }

  /** The line without its leading blanks. */
  get body(): string {
    return (this.madeBody ??= this.indent ? this.line.slice(this.indent) : this.line);
  }

  /** Length of the body, without making it. */
  get bodyLength(): number {
    return this.stop - this.offset - this.indent;
  }

  /** Character code of the body's first character (NaN for an empty body). */
  get first(): number {
    return this.text.charCodeAt(this.offset + this.indent);
  }

  next(): boolean {
    const text = this.text;
    if (this.pos >= text.length) return false;
    let end = text.indexOf('\n', this.pos);
    if (end < 0) end = text.length;
    const cr = end > this.pos && text.charCodeAt(end - 1) === 0x0d;
    this.offset = this.pos;
    this.stop = cr ? end - 1 : end;
    this.made = null;
    this.madeBody = null;
    let i = this.offset;
    while (i < this.stop && (text.charCodeAt(i) === 0x20 || text.charCodeAt(i) === 0x09)) i++;
    this.indent = i - this.offset;
    this.pos = end + 1;
    this.number++;
    return true;
  }

  /** Where the rule text of a `-A` line sits: the body without trailing blanks. */
  ruleEnd(): number {
    let to = this.stop;
    const from = this.offset + this.indent;
    while (to > from && isBlank(this.text.charCodeAt(to - 1))) to--;
    return to;
  }
}

const COUNTERS_PREFIX = /^\[(\d+):(\d+)\]\s+/;
const DIGITS = /^\d+$/;
const CHAIN_DECL = /^:(\S+)\s+(\S+)(?:\s+\[(\d+):(\d+)\])?\s*$/;

/**
 * dump    := { line }
 * line    := blank | '#' text | '*' table | ':' chain policy [ '[' p ':' b ']' ] | [ '[' p ':' b ']' ] rule | 'COMMIT'
 * rule    := ( '-A' | '-I' ) chain options
 * Also accepts the verbs kube-proxy writes into iptables-restore payloads: `-N`, `-X`, `-F`.
 */
export function parseIptablesSave(text: string, options: { fastReader?: boolean } = {}): Ruleset {
  return readIptablesSave(text, options.fastReader ?? true).builder.build();
}

/** parseIptablesSave up to the ruleset: the builder, and the line reader it read with. */
function readIptablesSave(text: string, fastReader: boolean, lenient = false): { builder: RulesetBuilder; lines: LineReader } {
  const b = new RulesetBuilder('iptables-save', text, fastReader);
  const lines = new LineReader(text);
  let table: TableDraft | null = null;
  let sawContent = false;
  // Lines before any '*table' header (a pasted fragment): lenient reading puts each in the table
  // its chain belongs to, or the one the fragment's rules point to.
  let loose: string | null = null;
  const elsewhere = new Map<string, string>();
  const headerless = (lineNo: number, chain: string | undefined, column: number, raw: string): TableDraft => {
    if (!lenient) throw ruleOutsideTable(lineNo, column, raw);
    if (loose === null) {
      const end = /\n[ \t]*(\*|COMMIT)/.exec(text.slice(lines.offset));
      const inferred = inferTable(end ? text.slice(lines.offset, lines.offset + end.index) : text.slice(lines.offset));
      loose = inferred.table;
      b.diagnostics.push({
        severity: 'warning', code: 'TABLE_INFERRED', line: lineNo, column, text: raw,
        message: `no '*table' line above this one: the lines from here were read as the ${loose} table (${inferred.reason}); put '*${loose}' (or the right table) above them if that is wrong`,
      });
    }
    const own = chain !== undefined ? chainTable(chain) : null;
    if (own && own !== loose) elsewhere.set(chain!, own);
    return b.table(own ?? loose, 0);
  };
  while (lines.next()) {
    if (lines.bodyLength === 0) continue;
    const first = lines.first;
    if (table && ((first === 0x2d /* - */ && b.fastRule(table, lines)) || (first === 0x3a /* : */ && b.fastDeclaration(table, lines)))) {
      sawContent = true;
      continue;
    }
    const { number: lineNo, line: raw, indent } = lines;
    let body = lines.body;
    if (first === 0x23 /* # */) {
      if (/ip6tables-save/.test(body)) b.reader.family = b.reader.family ?? 'ipv6';
      continue;
    }
    sawContent = true;
    if (first === 0x2a /* * */) {
      const name = body.slice(1).trim();
      if (!TABLE_NAMES.includes(name)) throw syntaxError(`unknown table '${name}'`, lineNo, indent + 2, raw);
      if (table) {
        b.diagnostics.push({
          severity: 'warning', code: 'MISSING_COMMIT', line: lineNo, text: raw,
          message: `table '${table.name}' has no COMMIT before '*${name}'`,
        });
      }
      table = b.table(name, lineNo);
      continue;
    }
    if (body === 'COMMIT' || body.startsWith('COMMIT ')) {
      if (!table && loose !== null) {
        loose = null;
        continue;
      }
      if (!table) throw syntaxError('COMMIT outside a table', lineNo, indent + 1, raw);
      table = null;
      continue;
    }
    if (first === 0x3a /* : */) {
      const m = CHAIN_DECL.exec(body);
      if (!m) throw syntaxError('malformed chain declaration: expected ":CHAIN POLICY [packets:bytes]"', lineNo, indent + 1, raw);
      const chain = b.chain(table ?? headerless(lineNo, m[1], indent + 1, raw), m[1], lineNo);
      chain.line = lineNo;
      if (chain.builtin) {
        // iptables-restore reads '-' on a built-in chain as "leave the policy as it is" (ACCEPT on a fresh table).
        if (m[2] === '-') continue;
        if (m[2] !== 'ACCEPT' && m[2] !== 'DROP') {
          throw syntaxError(`policy of built-in chain ${m[1]} must be ACCEPT or DROP, not '${m[2]}'`, lineNo, indent + m[1].length + 3, raw);
        }
        chain.policy = m[2];
      } else if (m[2] !== '-') {
        throw syntaxError(`user chain ${m[1]} cannot have policy '${m[2]}'`, lineNo, indent + m[1].length + 3, raw);
      }
      if (m[3] !== undefined) chain.counters = { packets: m[3], bytes: m[4] };
      continue;
    }
    let column = indent;
    let counters: Counters | undefined;
    if (first === 0x5b /* [ */) ({ body, column, counters } = stripCounters(body, column));
    const words = lex(body, lineNo, column, raw, b.words);
    const verbText = words.text(0);
    const verbColumn = words.count > 0 ? words.column(0) : column + 1;
    if (verbText === '-A' || verbText === '--append' || verbText === '-I' || verbText === '--insert') {
      b.addRule(table ?? headerless(lineNo, words.text(1), verbColumn, raw), lineNo, raw, ...ruleSpan(lines, raw, body), counters);
      continue;
    }
    if (verbText === '-N' || verbText === '--new-chain' || verbText === '-X' || verbText === '--delete-chain' || verbText === '-F' || verbText === '--flush') {
      const name = words.text(1);
      const t = table ?? headerless(lineNo, name, verbColumn, raw);
      if (name === undefined) throw syntaxError(`${verbText} needs a chain name`, lineNo, verbColumn, raw);
      if (verbText === '-N' || verbText === '--new-chain') b.chain(t, name, lineNo);
      else if (verbText === '-F' || verbText === '--flush') {
        const c = t.chains.get(name);
        if (c) c.clearRules();
      } else {
        b.deleteChain(t, name);
      }
      continue;
    }
    throw syntaxError(
      `unexpected '${verbText ?? body}': expected '*table', ':CHAIN POLICY', '-A CHAIN …' or COMMIT`,
      lineNo, verbColumn, raw,
    );
  }
  if (!sawContent) throw new EngineError('DUMP_EMPTY', 'the dump has no rules, chains or tables');
  if (elsewhere.size > 0) {
    const listed = [...elsewhere].slice(0, 10).map(([chain, t]) => `${chain} in ${t}`).join(', ');
    b.diagnostics.push({
      severity: 'warning', code: 'TABLE_INFERRED',
      message: `chains outside any '*table' section read in the table their name belongs to: ${listed}${elsewhere.size > 10 ? ` and ${elsewhere.size - 10} more` : ''}`,
    });
  }
  if (table) {
    b.diagnostics.push({ severity: 'warning', code: 'MISSING_COMMIT', message: `table '${table.name}' has no COMMIT at the end of the dump` });
  }
  return { builder: b, lines };
}

/** `[packets:bytes] -A …` (iptables-save -c): the counters, and the rule after them. */
function stripCounters(body: string, column: number): { body: string; column: number; counters: Counters | undefined } {
  const m = COUNTERS_PREFIX.exec(body);
  if (!m) return { body, column, counters: undefined };
  return { body: body.slice(m[0].length), column: column + m[0].length, counters: { packets: m[1], bytes: m[2] } };
}

/**
 * The characters the lexer separates words with. Trailing ones are not part of a rule's text;
 * any other control character is, as the lexer reads it.
 */
function isBlank(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d;
}

/** Where a rule's text (the line less indentation, counters and trailing blanks) sits in the dump. */
function ruleSpan(lines: LineReader, raw: string, body: string): [number, number] {
  const from = lines.offset + raw.length - body.length;
  let to = lines.offset + raw.length;
  while (to > from && isBlank(lines.charCodeAt(to - 1))) to--;
  return [from, to];
}

function ruleOutsideTable(line: number, column: number, text: string): EngineError {
  return syntaxError(
    "rule outside a table: iptables-save output starts each table with a '*nat' (or '*filter', …) line; for `iptables -S` output use format iptables-S",
    line, column, text,
  );
}

const NAT_TARGETS = new Set(['DNAT', 'SNAT', 'MASQUERADE', 'REDIRECT']);
const FILTER_TARGETS = new Set(['REJECT']);
const NAT_CHAIN = /^(KUBE-(SVC|SVL|SEP|EXT|FW|XLB|MARK-MASQ|POSTROUTING|PORTALS-|NODEPORT-|LOAD-BALANCER)|CNI-HOSTPORT-|DOCKER$|FLANNEL-POSTRTG|cali-nat|cali-fip)/;
const FILTER_CHAIN = /^(KUBE-(FORWARD|FIREWALL|EXTERNAL-SERVICES|PROXY-FIREWALL|PROXY-CANARY)|DOCKER-(ISOLATION|USER)|FLANNEL-FWD|cali-(fw|tw|from|to|pro|pri|wl))/;

/** The table a chain's name says it is in (kube-proxy's, Docker's, CNI plugins'), or null. */
function chainTable(chain: string): string | null {
  if (NAT_CHAIN.test(chain)) return 'nat';
  if (FILTER_CHAIN.test(chain)) return 'filter';
  return null;
}

/** Guesses the table of an `iptables -S` listing from its chains and targets. */
export function inferTable(text: string): { table: string; reason: string } {
  let nat = 0;
  let filter = 0;
  let mangle = 0;
  const reasons: string[] = [];
  const lines = new LineReader(text);
  while (lines.next()) {
    const line = lines.line;
    const m = /^\s*(?:\[\d+:\d+\]\s+)?-([APN])\s+(\S+)(.*)$/.exec(line) ?? /^\s*:()(\S+)()/.exec(line);
    if (!m) continue;
    const chain = m[2];
    const rest = m[3];
    if (m[1] === 'P') {
      if (chain === 'PREROUTING' || chain === 'POSTROUTING') nat += 1;
      if (chain === 'FORWARD') filter += 3;
    }
    if (NAT_CHAIN.test(chain)) nat += 2;
    if (FILTER_CHAIN.test(chain)) filter += 2;
    const j = /\s-[jg]\s+(\S+)/.exec(rest);
    if (j) {
      if (NAT_TARGETS.has(j[1])) {
        nat += 5;
        if (reasons.length < 1) reasons.push(`target ${j[1]}`);
      }
      if (FILTER_TARGETS.has(j[1])) filter += 5;
      if (j[1] === 'MARK' && !/KUBE-MARK/.test(chain)) mangle += 1;
      // A jump to a chain only nat has (kube-proxy's IPVS chains jump to KUBE-MARK-MASQ).
      if (/^KUBE-(SVC|SVL|SEP|EXT|FW|XLB)-/.test(j[1])) nat += 2;
      if (j[1] === 'KUBE-MARK-MASQ') {
        nat += 2;
        if (reasons.length < 1) reasons.push('jumps to KUBE-MARK-MASQ');
      }
    }
  }
  if (nat > filter && nat >= mangle) return { table: 'nat', reason: `nat chains and targets (${reasons[0] ?? 'KUBE-SVC/SEP chains'})` };
  if (filter > 0 && filter >= mangle) return { table: 'filter', reason: 'filter chains and targets' };
  if (mangle > 0) return { table: 'mangle', reason: 'MARK rules outside kube-proxy chains' };
  return { table: 'filter', reason: 'nothing names a table, and `iptables -S` lists filter by default' };
}

/**
 * listing := { '-P' CHAIN POLICY | '-N' CHAIN | '-A' CHAIN options }     (one table; no headers)
 */
export function parseIptablesS(text: string, options: { table?: string; fastReader?: boolean } = {}): Ruleset {
  const b = new RulesetBuilder('iptables-S', text, options.fastReader ?? true);
  let tableName = options.table;
  if (tableName && !TABLE_NAMES.includes(tableName)) {
    throw new EngineError('DUMP_SYNTAX', `unknown table '${tableName}'`);
  }
  if (!tableName) {
    const inferred = inferTable(text);
    tableName = inferred.table;
    b.diagnostics.push({
      severity: 'info', code: 'TABLE_INFERRED',
      message: `iptables -S output names no table: read as the ${inferred.table} table (${inferred.reason})`,
    });
  }
  const table = b.table(tableName, 0);
  let sawContent = false;
  const lines = new LineReader(text);
  while (lines.next()) {
    if (lines.bodyLength === 0 || lines.first === 0x23) continue;
    sawContent = true;
    if (lines.first === 0x2d /* - */ && b.fastRule(table, lines)) continue;
    const { number: lineNo, line: raw, indent } = lines;
    let body = lines.body;
    let column = indent;
    let counters: Counters | undefined;
    if (body.charCodeAt(0) === 0x5b /* [ */) ({ body, column, counters } = stripCounters(body, column));
    const words = lex(body, lineNo, column, raw, b.words);
    const verb = words.text(0);
    switch (verb) {
      case '-P':
      case '--policy': {
        const chainName = words.text(1);
        const policy = words.text(2);
        if (chainName === undefined || policy === undefined) throw syntaxError('-P needs a chain and a policy', lineNo, words.column(0), raw);
        if (!isBuiltinChain(tableName, chainName)) {
          throw syntaxError(`-P: ${chainName} is not a built-in chain of the ${tableName} table`, lineNo, words.column(1), raw);
        }
        if (policy !== 'ACCEPT' && policy !== 'DROP') {
          throw syntaxError(`policy must be ACCEPT or DROP, not '${policy}'`, lineNo, words.column(2), raw);
        }
        const chain = b.chain(table, chainName, lineNo);
        chain.line = lineNo;
        chain.policy = policy;
        if (words.text(3) === '-c' && words.count >= 6) chain.counters = { packets: words.text(4)!, bytes: words.text(5)! };
        continue;
      }
      case '-N':
      case '--new-chain': {
        const chainName = words.text(1);
        if (chainName === undefined) throw syntaxError('-N needs a chain name', lineNo, words.column(0), raw);
        const chain = b.chain(table, chainName, lineNo);
        chain.line = lineNo;
        continue;
      }
      case '-A':
      case '--append':
      case '-I':
      case '--insert':
        b.addRule(table, lineNo, raw, ...ruleSpan(lines, raw, body), counters);
        continue;
      default:
        throw syntaxError(`unexpected '${verb}': iptables -S lines start with -P, -N or -A`, lineNo, words.column(0), raw);
    }
  }
  if (!sawContent) throw new EngineError('DUMP_EMPTY', 'the dump has no rules or chains');
  return b.build();
}

export interface DetectedFormat {
  readonly format: DumpFormat | 'iptables-L' | 'nftables' | 'ipvsadm' | 'log-prefixed' | 'unknown';
  readonly line: number;
  /** For `nftables`: which of nft's forms the dump is in (`nft list`, `nft -j`, or `nft -f` commands). */
  readonly nftForm?: NftSourceForm;
}

/** Recognises a dump by its first meaningful lines. */
export function detectFormat(text: string): DetectedFormat {
  const lines = new LineReader(text);
  let firstRuleLike: DetectedFormat | null = null;
  let looked = 0;
  // `nft -j` output is one long line: known from its start, without reading the line whole.
  if (nftFormOfLine(text.slice(0, 100)) === 'json') return { format: 'nftables', line: 1, nftForm: 'json' };
  while (looked < 5000 && lines.next()) {
    const n = lines.number - 1;
    const line = lines.line.trim();
    if (line === '') continue;
    if (/^#\s*(Generated|Completed) by ip6?tables-save/.test(line)) return { format: 'iptables-save', line: n + 1 };
    if (line.startsWith('#')) continue;
    looked++;
    if (/^\*(raw|mangle|nat|filter|security)\s*$/.test(line)) return { format: 'iptables-save', line: n + 1 };
    if (/^:\S+\s+(ACCEPT|DROP|-)\s*(\[\d+:\d+\])?\s*$/.test(line)) return { format: 'iptables-save', line: n + 1 };
    if (line === 'COMMIT') return { format: 'iptables-save', line: n + 1 };
    if (/^\\?Chain \S+ \((policy \w+|\d+ references)/.test(line)) return { format: 'iptables-L', line: n + 1 };
    if (/^\S+\s+(all|tcp|udp|sctp|icmp|\d+)\s+(--|-f|!f)\s+\S+\s+\S+/.test(line)) return { format: 'iptables-L', line: n + 1 };
    const nftForm = nftFormOfLine(line);
    if (nftForm) return { format: 'nftables', line: n + 1, nftForm };
    if (/^IP Virtual Server version/.test(line) || /^Prot LocalAddress:Port/.test(line)) return { format: 'ipvsadm', line: n + 1 };
    if (/^[A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d \S+ [^:\s]+(\[\d+\])?: /.test(line)) return { format: 'log-prefixed', line: n + 1 };
    if (!firstRuleLike) {
      if (/^(\[\d+:\d+\]\s+)?-[APNI]\s/.test(line)) firstRuleLike = { format: 'iptables-S', line: n + 1 };
      else if (/^target\s+prot\s+opt/.test(line)) return { format: 'iptables-L', line: n + 1 };
      else return { format: 'unknown', line: n + 1 };
    }
  }
  return firstRuleLike ?? { format: 'unknown', line: 1 };
}

const UNSUPPORTED: Readonly<Record<string, string>> = {
  nftables: 'nftables rulesets are not supported yet; send `iptables-save` output (from iptables-nft: `iptables-nft-save`)',
  ipvsadm: 'IPVS tables (ipvsadm) are not supported yet; send `iptables-save` output',
  'log-prefixed': 'the lines carry a system-log prefix (date, host, process); remove it and send the rules alone',
  unknown: 'this does not look like `iptables-save` or `iptables -S` output',
};

/**
 * Parses a dump in the given format, or the detected one for 'auto'. With 'auto' the dump may be
 * as people paste it: what pasting changed is undone (repair.ts), lines without a '*table' header
 * are read in the table they belong to, and a last rule cut short is left out; each with a
 * located warning in the ruleset's diagnostics.
 */
export function parseDump(text: string, options: ParseOptions = {}): Ruleset {
  if ((options.format ?? 'auto') !== 'auto') return parseExactly(text, options);
  const repaired = repairDump(text);
  let source = repaired.text;
  const notes = repaired.diagnostics;
  let rs: Ruleset;
  try {
    rs = parseExactly(source, options, true);
  } catch (e) {
    const where = e instanceof EngineError && e.code === 'DUMP_SYNTAX' ? e.location : undefined;
    const cut = where ? lastRuleCut(source, where.line, where.column) : null;
    if (!cut || !where) throw e;
    notes.push({
      severity: 'warning', code: 'INPUT_REPAIRED', line: cut.line, column: where.column, text: where.text,
      message: `the last rule looks cut short (${(e as EngineError).message.replace(/ \(line \d+, column \d+\)$/, '')}): it was left out; paste it whole to include it`,
    });
    source = cut.text;
    rs = parseExactly(source, options, true);
  }
  return notes.length === 0 ? rs : { ...rs, diagnostics: [...notes, ...rs.diagnostics] };
}

const RULE_LINE = /^\s*(\[\d+:\d+\]\s+)?(-A|--append|-I|--insert)\s/;

/**
 * The text without its last rule, when the error at (`line`, `column`) is in that rule's last word
 * (the paste ended inside it) and other rules come before it; otherwise null: a dump whose only
 * rule is wrong, or whose last rule is wrong before its end, is refused.
 */
function lastRuleCut(text: string, line: number, column: number): { text: string; line: number } | null {
  const lines = text.split('\n');
  let last = lines.length - 1;
  while (last >= 0 && (lines[last].trim() === '' || lines[last].trim() === 'COMMIT' || lines[last].trim().startsWith('#'))) last--;
  if (last + 1 !== line || !RULE_LINE.test(lines[last]) || !lines.slice(0, last).some((l) => RULE_LINE.test(l))) return null;
  const body = lines[last].replace(/\s+$/, '');
  if (column < body.search(/\S+$/) + 1) return null;
  lines[last] = '';
  return { text: lines.join('\n'), line };
}

function parseExactly(text: string, options: ParseOptions, lenient = false): Ruleset {
  const requested = options.format ?? 'auto';
  let format: DumpFormat;
  if (requested === 'auto') {
    const detected = detectFormat(text);
    if (detected.format === 'iptables-L') {
      const listing = readListing(text);
      const rs = parseIptablesS(listing.text, { table: options.table ?? listing.table, fastReader: options.fastReader ?? true });
      return { ...rs, diagnostics: [...listing.diagnostics, ...rs.diagnostics] };
    }
    if (detected.format !== 'iptables-save' && detected.format !== 'iptables-S') {
      if (text.trim() === '') throw new EngineError('DUMP_EMPTY', 'the dump is empty');
      const lineText = text.split('\n')[detected.line - 1]?.replace(/\r$/, '') ?? '';
      throw new EngineError('DUMP_FORMAT_UNSUPPORTED', UNSUPPORTED[detected.format], {
        line: detected.line, column: 1, text: lineText,
      });
    }
    format = detected.format;
  } else if (requested === 'iptables-save' || requested === 'iptables-S') {
    format = requested;
  } else {
    throw new EngineError('DUMP_FORMAT_UNSUPPORTED', `unknown format '${String(requested)}'`);
  }
  const fastReader = options.fastReader ?? true;
  if (format === 'iptables-S') return parseIptablesS(text, { table: options.table, fastReader });
  return readIptablesSave(text, fastReader, lenient).builder.build();
}

/**
 * V8 keeps a hidden class (the shape optimized code checks an object against) only while some
 * object has it. Once a parse's objects are garbage, the next parse makes new hidden classes, and
 * every optimized function of the parser that checked the old ones is thrown away and compiled
 * again. A small dump, read once when this module loads and kept with the objects that read it,
 * keeps those classes alive.
 * It takes both readers' paths and makes the rules a trace makes.
 */
function keepShapes(): unknown[] {
  const sample = [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':KUBE-SERVICES - [0:0]',
    ':KUBE-SVC-SAMPLE - [0:0]',
    // Two blanks: a declaration the full reader reads.
    ':KUBE-SEP-SAMPLE  -  [0:0]',
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A KUBE-SERVICES -d 10.0.0.1/32 -p tcp -m comment --comment "sample" -m tcp --dport 80 -j KUBE-SVC-SAMPLE',
    '-A KUBE-SVC-SAMPLE -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-SAMPLE',
    '-A KUBE-SEP-SAMPLE -p tcp -m tcp -j DNAT --to-destination 10.1.0.1:8080',
    '-A KUBE-SEP-SAMPLE -m mark --mark 0x4000/0x4000 -j RETURN',
    'COMMIT',
    '',
  ].join('\n');
  const kept: unknown[] = [];
  for (const fast of [true, false]) {
    const { builder, lines } = readIptablesSave(sample, fast);
    const ruleset = builder.build();
    for (const table of ruleset.tables.values()) {
      for (const chain of table.chains.values()) for (const rule of chain.rules) kept.push(rule.target, rule.matches);
    }
    kept.push(builder, lines, ruleset, parseIptablesS(sample.split('\n').filter((l) => l.startsWith('-A')).join('\n'), { table: 'nat', fastReader: fast }));
  }
  return kept;
}

RulesetBuilder.kept = keepShapes();
