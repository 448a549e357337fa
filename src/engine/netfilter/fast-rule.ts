/**
 * The common shape of a rule line, read in one pass over its characters without making a string
 * per word:
 *
 *   fast-rule := '-A' CHAIN { [ '!' ] option }
 *
 * where every option is one iptables-save prints for kube-proxy's rules: `-s`/`-d` with an IPv4
 * address, `-p tcp|udp|sctp|icmp`, `-i`/`-o`, `-f`, `-m` with a known module, `-j`/`-g`, and
 * `--name args…` owned by a known module or the target; arguments may be double-quoted without
 * escapes. A 10,000-Service dump is a third of a million such lines.
 *
 * It accepts only lines it is sure of, and then says exactly what the full reader
 * (rule-parser.ts) would: the target, the dispatch keys, the address family. On anything else (an
 * error, a form it does not know: IPv6, `-c`, `--dport ! 80`, an unknown module or option) it
 * declines, and the full reader reads the line and reports any error with its column.
 */
import type { Family } from './ast.ts';
import type { OwnerSpec, RuleOption, ValueKind } from './modules.ts';
import {
  clashingOptions, isDispatchPortOption, knownModules, knownTargets, moduleSpec, optionSpec, PROTOCOL_MODULE_OPTIONS, RULE_OPTIONS,
  targetSpec,
} from './modules.ts';
import { NAT_PORT_PROTOCOLS } from './values.ts';
import { hashEnd, hashOf, Slots } from './char-index.ts';


const SPACE = 0x20;
const TAB = 0x09;
const CR = 0x0d;
const QUOTE = 0x22;
const DASH = 0x2d;
const BANG = 0x21;
const DOT = 0x2e;
const COLON = 0x3a;
const SLASH = 0x2f;
const ZERO = 0x30;
const NINE = 0x39;
/** More modules on one line than this are left to the full reader, and more module or target options than MAX_GIVEN. */
const MAX_MODULES = 32;
const MAX_GIVEN = 64;

/** Words found by the hash of their characters and one comparison, without making a string. */
class WordTable {
  private readonly slots = new Slots();
  /** The words' characters (ASCII), one after another: word e is chars[starts[e], starts[e + 1]). */
  private chars = new Uint8Array(0);
  private readonly starts: number[] = [0];
  private readonly ids: number[] = [];

  add(text: string, id: number): void {
    this.slots.put(hashOf(text, 0, text.length), this.ids.length);
    const chars = new Uint8Array(this.chars.length + text.length);
    chars.set(this.chars);
    for (let k = 0; k < text.length; k++) chars[this.chars.length + k] = text.charCodeAt(k);
    this.chars = chars;
    this.starts.push(chars.length);
    this.ids.push(id);
  }

  /** The id of b[from, to) whose hash is `hash`, or -1. */
  find(b: Uint8Array, from: number, to: number, hash: number): number {
    const { cells, mask } = this.slots;
    for (let i = this.slots.first(hash); ; i = (i + 2) & mask) {
      const e = cells[i];
      if (e < 0) return -1;
      if (cells[i + 1] !== hash) continue;
      const start = this.starts[e];
      const n = to - from;
      if (this.starts[e + 1] - start !== n) continue;
      const chars = this.chars;
      let k = 0;
      while (k < n && chars[start + k] === b[from + k]) k++;
      if (k === n) return this.ids[e];
    }
  }
}

/** Numbers for strings, one per distinct text, found from the characters (RuleStore). */
export interface StringTable {
  /**
   * The number of s[from, to), read from b (s as asciiBytes), whose hashOf is `hash`; a string
   * is made only for a new text.
   */
  internBytes(s: string, b: Uint8Array, from: number, to: number, hash: number): number;
}

// The rule options (modules.ts RULE_OPTIONS) by id, but -c (read by the full reader); `--name` options get ids from GENERIC up.
const SRC = 1;
const DST = 2;
const PROTO = 3;
const IN = 4;
const OUT = 5;
const FRAG = 6;
const MATCH = 7;
const JUMP = 8;
const GOTO = 9;
const GENERIC = 16;

const OPTIONS = new WordTable();
/**
 * The options of two characters (`-d`, `-m`, `-j`…), by their second: most option words of a
 * rule are these, found without the table. Every other option word is longer (`--name`).
 */
const SHORT_OPTIONS = new Int8Array(128).fill(-1);
const RULE_OPTION_IDS: Readonly<Record<Exclude<RuleOption, 'counters'>, number>> = {
  source: SRC, destination: DST, protocol: PROTO, inInterface: IN, outInterface: OUT, fragment: FRAG, match: MATCH, jump: JUMP, goto: GOTO,
};
for (const [option, id] of Object.entries(RULE_OPTION_IDS) as [Exclude<RuleOption, 'counters'>, number][]) {
  for (const w of RULE_OPTIONS[option]) {
    OPTIONS.add(w, id);
    if (w.length === 2) SHORT_OPTIONS[w.charCodeAt(1)] = id;
  }
}

// Option names of every known module and target, numbered.
const optionIds = new Map<string, number>();
for (const sets of [knownModules(), knownTargets()]) {
  for (const names of sets.values()) {
    for (const name of names) {
      if (!optionIds.has(name)) optionIds.set(name, GENERIC + optionIds.size);
    }
  }
}
for (const [name, id] of optionIds) OPTIONS.add(`--${name}`, id);
const OPTION_COUNT = GENERIC + optionIds.size;

/**
 * What the fast reader checks of an option's value, by the kind modules.ts declares: these it
 * reads in bytes, in the plain forms iptables-save prints; the other kinds are the full reader's
 * (a line with one is declined).
 */
const V_NONE = 0;
const V_PORT = 1;
const V_PROBABILITY = 2;
const V_MODE = 3;
const V_COUNT_FROM_1 = 4;
const V_NAT_TO = 5;
const V_FULL = 6;
const VALUE_CODES: Readonly<Record<ValueKind, number>> = {
  port: V_PORT, probability: V_PROBABILITY, mode: V_MODE, 'count-from-1': V_COUNT_FROM_1, 'nat-to': V_NAT_TO,
  'port-list': V_FULL, count: V_FULL, mark: V_FULL, 'mark-value': V_FULL, 'to-ports': V_FULL,
};
/** How many arguments an option takes (optionArity), WORDS for one or more. */
const WORDS = 3;
// What an owner (module or target) is, as flags.
const REQUIRES = 1;
const NEEDS_PROTOCOL = 2;
const NAT_PORT = 4;

/**
 * The grammar of the known modules (or targets) as tables by owner id and option id: the owner's
 * flags, and per option (at owner * OPTION_COUNT + option) whether the owner takes it, its arity,
 * whether it may be negated, its value check, whether it is one of those the owner requires, the
 * option it needs beside it (id + 1), and whether it is a dispatch port (dispatch.ts).
 */
function owners(sets: ReadonlyMap<string, ReadonlySet<string>>, spec: (name: string) => OwnerSpec | undefined) {
  const names = new WordTable();
  const list: string[] = [];
  const n = sets.size * OPTION_COUNT;
  const t = {
    names, list, flags: new Uint8Array(sets.size), takes: new Uint8Array(n), arity: new Uint8Array(n), fixed: new Uint8Array(n),
    value: new Uint8Array(n), required: new Uint8Array(n), needs: new Int32Array(n), dispatch: new Uint8Array(n),
  };
  for (const [name, options] of sets) {
    const k = list.length;
    const owner = spec(name)!;
    names.add(name, k);
    list.push(name);
    t.flags[k] = (owner.oneOf ? REQUIRES : 0) | (owner.needsProtocol ? NEEDS_PROTOCOL : 0) | (NAT_PORT_PROTOCOLS.has(name) ? NAT_PORT : 0);
    for (const o of options) {
      const cell = k * OPTION_COUNT + optionIds.get(o)!;
      const option = optionSpec(owner, o)!;
      t.takes[cell] = 1;
      t.arity[cell] = option.args === 'words' ? WORDS : option.args;
      t.fixed[cell] = option.invert ? 0 : 1;
      t.value[cell] = option.value ? VALUE_CODES[option.value] : V_NONE;
      t.required[cell] = owner.oneOf?.includes(o) ? 1 : 0;
      const needed = owner.needs && Object.hasOwn(owner.needs, o) ? owner.needs[o] : undefined;
      t.needs[cell] = needed === undefined ? 0 : optionIds.get(needed)! + 1;
      t.dispatch[cell] = isDispatchPortOption(name, o, false) ? 1 : 0;
    }
  }
  return t;
}

const MODULES = owners(knownModules(), moduleSpec);
const TARGETS = owners(knownTargets(), targetSpec);

/** Protocols read without help, each with its implicit module (the module of the same name). */
const PROTOCOLS = new WordTable();
for (const p of ['tcp', 'udp', 'sctp', 'icmp']) {
  const id = MODULES.list.indexOf(p);
  const implicit = PROTOCOL_MODULE_OPTIONS[p];
  const module = knownModules().get(p);
  // The implicit module must take exactly what the named module takes, or the tables would lie.
  if (id < 0 || !module || implicit.length !== module.size || !implicit.every((o) => module.has(o))) {
    throw new Error(`fast-rule: protocol ${p} has no matching module`);
  }
  PROTOCOLS.add(p, id);
}
const STATISTIC = MODULES.list.indexOf('statistic');
const PROBABILITY = optionIds.get('probability');
if (STATISTIC < 0 || PROBABILITY === undefined) throw new Error('fast-rule: statistic is missing from the known modules');

/**
 * Options that may not stand beside each other in one match or target (the same option twice,
 * under either name, or two that exclude each other; modules.ts), by option id: the fast reader
 * declines such a line and the full reader reports it. Taken over all owners, so it declines more
 * than it must, never less.
 */
const CLASH = new Uint8Array(OPTION_COUNT * OPTION_COUNT);
for (const [a, others] of clashingOptions()) {
  for (const b of others) CLASH[optionIds.get(a)! * OPTION_COUNT + optionIds.get(b)!] = 1;
}
// What a match on the line was, and was given (checked at the end of the line).
const EXPLICIT = 1;
const HAS_OPTION = 2;
const HAS_REQUIRED = 4;
const HAS_PROBABILITY = 8;
const RANDOM = [...'random'].map((c) => c.charCodeAt(0));

/** Does an option that takes `arity` arguments (WORDS: one or more) have `args`? */
function argsFit(arity: number, args: number): boolean {
  return arity === WORDS ? args >= 1 : args === arity;
}

/** Where the reader keeps the ruleset's address family (the full reader's, shared). */
export interface FamilyHolder {
  family: Family | null;
}

export class FastRuleReader {
  // What the last accepted line says.
  chainStart = 0;
  chainEnd = 0;
  chainHash = 0;
  /** The target's number in the string table, -1 for none. */
  target = -1;
  /** Where the target's name stands, and whether it is an extension svcpath models. */
  targetStart = 0;
  targetEnd = 0;
  knownTarget = false;
  /** The single-host destination's number in the string table, -1 for none. */
  dst = -1;
  dport = -1;
  /** Where the address word of a NAT target's `--to-destination` / `--to-source` (given once, unquoted) starts in the text; -1 for none. */
  natToAt = -1;

  /** The text being read, as asciiBytes: what the reader scans. */
  private b: Uint8Array = new Uint8Array(0);
  private s = '';
  /** The first backslash in s at or after the last quote looked at (s.length when none). */
  private backslashAt = 0;
  private backslashFrom = 0;
  private pos = 0;
  private end = 0;
  // The current word.
  private ws = 0;
  private we = 0;
  private wh = 0;
  private wq = false;
  /** The current word was read ahead (by arg()) and is the next one word() gives. */
  private pending = false;
  /** Set by ipv4(). */
  private hostEnd = -1;
  /** The line's modules so far (their ids), `-m` ones and implicit protocol ones. */
  private readonly modules = new Int32Array(MAX_MODULES);
  /** Per module of the line: what it was given of what it must be given (HAS_COMMENT…). */
  private readonly moduleFlags = new Int32Array(MAX_MODULES);
  /** The line's module and target options so far: the owner (a module's place, -1 the target) and the option id. */
  private readonly givenOwner = new Int32Array(MAX_GIVEN);
  private readonly givenId = new Int32Array(MAX_GIVEN);
  constructor(private readonly names: StringTable) {}

  /**
   * Reads the rule s[from, to) (no line break, no trailing blanks) from b, which is s as
   * asciiBytes. true: accepted, and the fields above describe it; false: the full reader must
   * read the line.
   */
  read(s: string, b: Uint8Array, from: number, to: number, holder: FamilyHolder): boolean {
    if (to - from < 4 || b[from] !== DASH || b[from + 1] !== 0x41 /* A */ || b[from + 2] !== SPACE) return false;
    this.b = b;
    if (s !== this.s) {
      this.s = s;
      this.backslashAt = -1;
    }
    this.pos = from + 3;
    this.end = to;
    this.pending = false;
    if (this.word() !== 1 || this.wq) return false;
    this.chainStart = this.ws;
    this.chainEnd = this.we;
    this.chainHash = this.wh;
    this.target = -1;
    this.dst = -1;
    this.dport = -1;
    this.natToAt = -1;
    const modules = this.modules;
    const moduleFlags = this.moduleFlags;
    let moduleCount = 0;
    let givenCount = 0;
    let basic = 0;
    let current = -1;
    let targetId = -2; // -2: no target yet; -1: a chain or an extension svcpath does not know
    let protocol = -1;
    let protocolNegated = false;
    let natTos = 0;
    let targetRequired = false;
    let negate = false;
    let r: number;
    while ((r = this.word()) === 1) {
      if (this.wq) return false;
      const ws = this.ws;
      const we = this.we;
      if (we - ws === 1 && b[ws] === BANG) {
        if (negate) return false;
        negate = true;
        continue;
      }
      if (!this.isOption()) return false;
      const id = we - ws === 2 ? SHORT_OPTIONS[b[ws + 1]] : OPTIONS.find(b, ws, we, this.wh);
      if (id < 0) return false;
      if (id <= FRAG) {
        // -s, -d, -p, -i, -o and -f are each allowed once.
        if ((basic & (1 << id)) !== 0) return false;
        basic |= 1 << id;
      }
      switch (id) {
        case SRC:
        case DST: {
          if (this.arg() !== 1 || this.wq) return false;
          if (!this.ipv4(holder)) return false;
          if (id === DST) this.dst = !negate && this.hostEnd >= 0 ? this.names.internBytes(s, b, this.ws, this.hostEnd, hashOf(s, this.ws, this.hostEnd)) : -1;
          negate = false;
          continue;
        }
        case PROTO: {
          if (this.word() !== 1 || this.wq) return false;
          protocol = PROTOCOLS.find(b, this.ws, this.we, this.wh);
          if (protocol < 0) return false;
          protocolNegated = negate;
          negate = false;
          continue;
        }
        case IN:
        case OUT:
          if (this.arg() !== 1) return false;
          negate = false;
          continue;
        case FRAG:
          negate = false;
          continue;
        case MATCH: {
          if (negate || this.word() !== 1 || this.wq) return false;
          const m = MODULES.names.find(b, this.ws, this.we, this.wh);
          if (m < 0) return false;
          if (moduleCount === MAX_MODULES) return false;
          modules[moduleCount] = m;
          moduleFlags[moduleCount] = EXPLICIT;
          current = moduleCount++;
          continue;
        }
        case JUMP:
        case GOTO: {
          if (negate || targetId !== -2 || this.word() !== 1 || this.wq || this.isOption() || this.isBang()) return false;
          targetId = TARGETS.names.find(b, this.ws, this.we, this.wh);
          this.target = this.names.internBytes(s, b, this.ws, this.we, this.wh);
          this.targetStart = this.ws;
          this.targetEnd = this.we;
          this.knownTarget = targetId >= 0;
          current = -1;
          continue;
        }
        default:
          break;
      }
      if (b[ws + 1] !== DASH) return false;
      // A module or target option: its arguments run until the next option word or '!'.
      const optionNegated = negate;
      negate = false;
      let args = 0;
      let firstStart = 0;
      let firstEnd = 0;
      let firstQuoted = false;
      for (;;) {
        const w = this.arg();
        if (w < 0) return false;
        if (w === 0) {
          // `--dport ! 80` (old iptables) is left to the full reader.
          if (args === 0 && this.pending && this.isBang()) return false;
          break;
        }
        if (args === 0) {
          firstStart = this.ws;
          firstEnd = this.we;
          firstQuoted = this.wq;
        }
        args++;
      }
      const targetTakes = targetId === -2 ? 0 : targetId === -1 ? 2 : TARGETS.takes[targetId * OPTION_COUNT + id];
      let owner = -1;
      let cell: number;
      let t: typeof MODULES;
      if (targetTakes === 1) {
        t = TARGETS;
        cell = targetId * OPTION_COUNT + id;
        if (!this.given(-1, id, givenCount++)) return false;
        if (t.required[cell] === 1) targetRequired = true;
      } else {
        if (current >= 0 && MODULES.takes[modules[current] * OPTION_COUNT + id] === 1) owner = current;
        else {
          for (let k = moduleCount - 1; k >= 0; k--) {
            if (MODULES.takes[modules[k] * OPTION_COUNT + id] === 1) {
              owner = k;
              break;
            }
          }
        }
        if (owner < 0) {
          if (targetTakes === 2) continue;
          if (protocol < 0 || MODULES.takes[protocol * OPTION_COUNT + id] !== 1) return false;
          if (moduleCount === MAX_MODULES) return false;
          modules[moduleCount] = protocol;
          moduleFlags[moduleCount] = 0;
          owner = moduleCount++;
          if (current < 0) current = owner;
        }
        t = MODULES;
        cell = modules[owner] * OPTION_COUNT + id;
        if (!this.given(owner, id, givenCount++)) return false;
        moduleFlags[owner] |= t.required[cell] === 1 ? HAS_OPTION | HAS_REQUIRED : HAS_OPTION;
        if (id === PROBABILITY) moduleFlags[owner] |= HAS_PROBABILITY;
      }
      if (!argsFit(t.arity[cell], args) || (optionNegated && t.fixed[cell] === 1)) return false;
      const value = t.value[cell];
      if (value === V_NONE) continue;
      if (value === V_FULL || args !== 1 || firstQuoted) return false;
      switch (value) {
        case V_PORT: {
          // One port in plain decimal; anything else (ranges, names, 0x50, 0120, errors) is the full reader's.
          const port = this.decimal(firstStart, firstEnd, 65535);
          if (port < 0) return false;
          if (t.dispatch[cell] === 1 && !optionNegated) this.dport = port;
          break;
        }
        case V_PROBABILITY:
          if (!this.plainProbability(firstStart, firstEnd)) return false;
          break;
        case V_MODE:
          // kube-proxy's statistic is `--mode random --probability p`; nth mode is the full reader's.
          if (!this.spells(firstStart, firstEnd, RANDOM)) return false;
          break;
        case V_COUNT_FROM_1:
          if (this.decimal(firstStart, firstEnd, 0xffffffff) < 1) return false;
          break;
        case V_NAT_TO: {
          // One address with an optional port, in plain form; anything else is the full reader's.
          if (++natTos > 1) return false;
          const ports = this.natTo(firstStart, firstEnd);
          if (ports < 0 || (ports === 1 && (protocolNegated || protocol < 0 || (MODULES.flags[protocol] & NAT_PORT) === 0))) return false;
          this.natToAt = firstStart;
          break;
        }
        default:
          return false;
      }
    }
    // A match or target without what it must be given is an error the full reader reports.
    if (targetId >= 0 && (TARGETS.flags[targetId] & REQUIRES) !== 0 && !targetRequired) return false;
    for (let k = 0; k < moduleCount; k++) {
      const m = modules[k];
      const f = moduleFlags[k];
      if ((MODULES.flags[m] & REQUIRES) !== 0 && (f & HAS_REQUIRED) === 0) return false;
      // Random mode needs a probability (the only mode read here).
      if (m === STATISTIC && (f & HAS_PROBABILITY) === 0) return false;
      // An explicit -m tcp (udp, sctp) with options needs -p of the same protocol.
      if ((f & (EXPLICIT | HAS_OPTION)) === (EXPLICIT | HAS_OPTION) && (MODULES.flags[m] & NEEDS_PROTOCOL) !== 0 && m !== protocol) return false;
    }
    if (!this.needsMet(givenCount)) return false;
    return r === 0 && !negate;
  }

  /**
   * Notes option `id` of `owner` (a module's place on the line, -1 for the target) as the line's
   * option number k: false when the same owner already has one it clashes with (CLASH), or the
   * line has more options than the reader keeps.
   */
  private given(owner: number, id: number, k: number): boolean {
    if (k >= MAX_GIVEN) return false;
    const owners = this.givenOwner;
    const ids = this.givenId;
    const row = id * OPTION_COUNT;
    for (let j = 0; j < k; j++) {
      if (owners[j] === owner && CLASH[row + ids[j]] === 1) return false;
    }
    owners[k] = owner;
    ids[k] = id;
    return true;
  }

  /**
   * Are the options an option needs beside it (modules.ts `needs`) given to the same owner, for
   * the line's first k options?
   */
  private needsMet(k: number): boolean {
    const owners = this.givenOwner;
    const ids = this.givenId;
    for (let j = 0; j < k; j++) {
      const owner = owners[j];
      if (owner < 0) continue;
      const needed = MODULES.needs[this.modules[owner] * OPTION_COUNT + ids[j]] - 1;
      if (needed < 0) continue;
      let found = false;
      for (let i = 0; i < k && !found; i++) found = owners[i] === owner && ids[i] === needed;
      if (!found) return false;
    }
    return true;
  }

  /** Does b[from, to) spell `word` (character codes)? */
  private spells(from: number, to: number, word: readonly number[]): boolean {
    if (to - from !== word.length) return false;
    for (let k = 0; k < word.length; k++) if (this.b[from + k] !== word[k]) return false;
    return true;
  }

  /**
   * The next word: 1 (ws/we/wh/wq set), 0 at the end of the line, -1 for something the full
   * lexer must read (a tab, a carriage return, an escape or an unterminated quote).
   */
  private word(): number {
    if (this.pending) {
      this.pending = false;
      return 1;
    }
    return this.scan(true);
  }

  /**
   * The next word when it is an argument: 1 (ws/we/wq set; wh is not), 0 at the end of the
   * line or when the next word is an option or '!' (then read, and pending for word()), -1 as
   * for word(). Arguments are most of a line's characters and are not hashed.
   */
  private arg(): number {
    const b = this.b;
    const end = this.end;
    let i = this.pos;
    while (i < end && b[i] === SPACE) i++;
    this.pos = i;
    if (i < end && (b[i] === DASH || b[i] === BANG)) {
      // Perhaps an option or '!': read as a word, which then is the line's next word.
      const r = this.scan(true);
      if (r === 1 && (this.isOption() || this.isBang())) {
        this.pending = true;
        return 0;
      }
      return r;
    }
    return this.scan(false);
  }

  /** Reads the word at `pos` as word() says; its hash only when `hashed`. */
  private scan(hashed: boolean): number {
    const b = this.b;
    const end = this.end;
    let i = this.pos;
    while (i < end && b[i] === SPACE) i++;
    if (i >= end) {
      this.pos = i;
      return 0;
    }
    const start = i;
    let h = 0;
    let quoted = false;
    while (i < end) {
      const c = b[i];
      // Most characters are above '"': one comparison decides them.
      if (c > QUOTE) {
        if (hashed) h = ((h << 5) | (h >>> 27)) ^ c;
        i++;
        continue;
      }
      if (c === SPACE) break;
      if (c === QUOTE) {
        i = this.afterQuote(i);
        if (i < 0) return -1;
        quoted = true;
        continue;
      }
      if (c === TAB || c === CR) return -1;
      if (hashed) h = ((h << 5) | (h >>> 27)) ^ c;
      i++;
    }
    this.ws = start;
    this.we = i;
    this.wh = hashed ? hashEnd(h) : 0;
    this.wq = quoted;
    this.pos = i;
    return 1;
  }

  /**
   * Where the quoted run opened at i ends (just past its closing quote), or -1 when the full
   * lexer must read it: no closing quote on the line, or a backslash inside.
   */
  private afterQuote(i: number): number {
    // Searched in the string: b has a quote and a backslash exactly where s has one.
    const s = this.s;
    const close = s.indexOf('"', i + 1);
    if (close < 0 || close >= this.end) return -1;
    if (this.backslashAt < i || i < this.backslashFrom) {
      const at = s.indexOf('\\', i);
      this.backslashFrom = i;
      this.backslashAt = at < 0 ? s.length : at;
    }
    return this.backslashAt < close ? -1 : close + 1;
  }

  /** An option name such as `-d`, `--dport` (the lexer's rule: not quoted, not `-` alone, not `-1`). */
  private isOption(): boolean {
    if (this.wq || this.we - this.ws < 2 || this.b[this.ws] !== DASH) return false;
    const c = this.b[this.ws + 1];
    return !(c >= ZERO && c <= NINE);
  }

  private isBang(): boolean {
    return !this.wq && this.we - this.ws === 1 && this.b[this.ws] === BANG;
  }

  /**
   * b[from, to) as a NAT address in plain form: a dotted IPv4 address without leading zeros,
   * optionally `:port` in plain decimal. 0: no port; 1: a port; -1: another form.
   */
  private natTo(from: number, to: number): number {
    const i = this.dottedQuad(from, to);
    if (i < 0) return -1;
    if (i === to) return 0;
    if (this.b[i] !== COLON) return -1;
    return this.decimal(i + 1, to, 65535) >= 0 ? 1 : -1;
  }

  /**
   * Four dotted decimal octets from b[from] (each 0 to 255, no leading zeros, as parseCidr and
   * iptables' NAT targets keep them): where they end, or -1.
   */
  private dottedQuad(from: number, to: number): number {
    const b = this.b;
    let i = from;
    for (let octet = 0; octet < 4; octet++) {
      if (octet > 0) {
        if (i >= to || b[i] !== DOT) return -1;
        i++;
      }
      const start = i;
      let v = 0;
      while (i < to && b[i] >= ZERO && b[i] <= NINE) v = v * 10 + (b[i++] - ZERO);
      const n = i - start;
      if (n === 0 || n > 3 || v > 255 || (n > 1 && b[start] === ZERO)) return -1;
    }
    return i;
  }

  /** b[from, to) as a probability in the form iptables-save prints: `0.` and digits, or 1 (`1.` and zeros). */
  private plainProbability(from: number, to: number): boolean {
    const b = this.b;
    if (to - from < 2 || b[from + 1] !== DOT) return to - from === 1 && (b[from] === ZERO || b[from] === ZERO + 1);
    const one = b[from] === ZERO + 1;
    if (!one && b[from] !== ZERO) return false;
    for (let i = from + 2; i < to; i++) {
      const c = b[i];
      if (one ? c !== ZERO : c < ZERO || c > NINE) return false;
    }
    return true;
  }

  /** b[from, to) as a number in plain decimal (no leading zero) up to `max`, else -1. */
  private decimal(from: number, to: number, max: number): number {
    const n = to - from;
    if (n < 1 || n > 10 || (n > 1 && this.b[from] === ZERO)) return -1;
    let v = 0;
    for (let i = from; i < to; i++) {
      const c = this.b[i];
      if (c < ZERO || c > NINE) return -1;
      v = v * 10 + (c - ZERO);
    }
    return v <= max ? v : -1;
  }

  /**
   * The word as an IPv4 address with an optional prefix length, in the forms parseCidr keeps as
   * written (no leading zeros, no dotted mask). false when the full reader must look; else
   * `hostEnd` is where the address ends if it names one host (no prefix, or /32), -1 if not.
   * Fixes or checks the ruleset's family.
   */
  private ipv4(holder: FamilyHolder): boolean {
    const s = this.b;
    const end = this.we;
    let i = this.dottedQuad(this.ws, end);
    if (i < 0) return false;
    let prefix = 32;
    const addressEnd = i;
    if (i < end) {
      if (s[i] !== SLASH) return false;
      i++;
      const from = i;
      prefix = 0;
      while (i < end) {
        const c = s[i];
        if (c < ZERO || c > NINE) return false;
        prefix = prefix * 10 + (c - ZERO);
        i++;
      }
      const n = i - from;
      if (n === 0 || n > 2 || prefix > 32 || (n > 1 && s[from] === ZERO)) return false;
    }
    if (holder.family === 'ipv6') return false;
    holder.family = 'ipv4';
    this.hostEnd = prefix === 32 ? addressEnd : -1;
    return true;
  }
}
