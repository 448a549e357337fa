/**
 * The reader of nft's text syntax, which covers two of its forms: `nft list ruleset` output (blocks:
 * `table ip t { chain c { … } }`, with or without `-a` handles; also one `nft list table`) and the
 * `nft -f` command form (`add table …`, `add rule …`, `flush …`, `delete …`). nft reads both with
 * one grammar, and so does this: a file is a list of commands, where a bare `table … { … }` block
 * is one of them.
 *
 * A statement inside a rule that this reader does not model is kept as `unmodelled` text with a
 * diagnostic; only what breaks the structure (an unclosed brace, a command that does not exist, a
 * rule outside a chain) is a syntax error.
 */
import { EngineError, syntaxError } from '../errors.ts';
import type {
  NftAnonymousSet, NftLimitStatement, NftLogStatement, NftNatStatement, NftBaseChainSpec, NftChainType, NftExpr, NftFamily, NftHook, NftOperator, NftPolicy, NftRuleset,
  NftSetElement, NftSetReference, NftSetType, NftStatement, NftVerdictName,
} from './ast.ts';
import { NFT_FAMILIES, standardPriority } from './ast.ts';
import type { ChainDraft, RuleDraft, RulePlace, SetDraft, TableDraft } from './builder.ts';
import { BuildError, NftBuilder, ruleDraft } from './builder.ts';
import { LexError, NftLexer, Tok } from './lexer.ts';
import { implicitOperator, literal, parseTime, setBurst, valueWord } from './values.ts';

/** Thrown inside a rule when a statement is not one this reader models; the statement is kept as text. */
const BAIL = new Error('not modelled');

const FAMILIES: ReadonlySet<string> = new Set(NFT_FAMILIES);

const PAYLOAD_PROTOCOLS: ReadonlySet<string> = new Set([
  'ip', 'ip6', 'tcp', 'udp', 'udplite', 'sctp', 'dccp', 'th', 'icmp', 'icmpv6', 'igmp', 'ether', 'vlan', 'arp', 'ah', 'esp',
  'comp', 'gre',
]);

/** Meta keys nft accepts without the `meta` keyword. */
const BARE_META: ReadonlySet<string> = new Set([
  'mark', 'iif', 'iifname', 'iiftype', 'oif', 'oifname', 'oiftype', 'skuid', 'skgid', 'nftrace', 'rtclassid', 'ibriport',
  'obriport', 'ibrname', 'obrname', 'pkttype', 'cpu', 'iifgroup', 'oifgroup', 'cgroup',
]);

const VERDICTS: ReadonlySet<string> = new Set(['accept', 'drop', 'return', 'continue']);

const OPERATORS: Readonly<Record<string, NftOperator>> = {
  '==': '==', eq: '==', '!=': '!=', ne: '!=', '<': '<', lt: '<', '>': '>', gt: '>', '<=': '<=', le: '<=', '>=': '>=', ge: '>=',
};

const BINARY_OPS: Readonly<Record<string, '&' | '|' | '^' | '<<' | '>>'>> = {
  '&': '&', and: '&', '|': '|', or: '|', '^': '^', xor: '^', '<<': '<<', lshift: '<<', '>>': '>>', rshift: '>>',
};

const NAT_FLAGS: ReadonlySet<string> = new Set(['random', 'fully-random', 'persistent']);

const CHAIN_TYPES: ReadonlySet<string> = new Set(['filter', 'nat', 'route']);
const HOOKS: ReadonlySet<string> = new Set(['prerouting', 'input', 'forward', 'output', 'postrouting', 'ingress', 'egress']);

/** Table-level objects the model does not describe: read past, with a diagnostic. */
const OTHER_OBJECTS: ReadonlySet<string> = new Set(['flowtable', 'counter', 'quota', 'ct', 'limit', 'secmark', 'synproxy']);

/**
 * Reads `nft list ruleset` text or an `nft -f` command file.
 *
 * file := { command | table-block } ; commands end at a line break or `;`.
 */
export function parseNftText(text: string): NftRuleset {
  return new TextReader(text).read();
}

class TextReader {
  readonly #lx: NftLexer;
  readonly #b = new NftBuilder();
  /** Offsets of the last token consumed. */
  #prevStart = 0;
  #prevEnd = 0;
  #sawBlock = false;
  #sawCommand = false;
  readonly #interned = new Map<string, NftExpr>();

  constructor(text: string) {
    this.#lx = new NftLexer(text);
  }

  read(): NftRuleset {
    try {
      this.#advance();
      this.#file();
    } catch (e) {
      if (e instanceof LexError) throw syntaxError(e.message, e.line, e.column, this.#lx.lineText(e.lineStart));
      if (e instanceof BuildError) throw syntaxError(e.message, e.where.line, e.where.column, this.#lineAt(e.where.line));
      throw e;
    }
    if (!this.#sawBlock && !this.#sawCommand) throw new EngineError('DUMP_EMPTY', 'the ruleset has no tables or commands');
    return this.#b.build(this.#sawCommand ? 'commands' : 'list');
  }

  // ---- tokens

  /**
   * One object for each distinct selector or value: nodes are readonly, and a large ruleset
   * repeats `ip daddr`, `tcp` and its addresses many times over.
   */
  #shared(key: string, make: () => NftExpr): NftExpr {
    let e = this.#interned.get(key);
    if (e === undefined) {
      e = make();
      this.#interned.set(key, e);
    }
    return e;
  }

  /** The current token's type (a call, so that checks after an advance are not narrowed away). */
  #type(): Tok {
    return this.#lx.type;
  }

  #advance(): void {
    this.#prevStart = this.#lx.start;
    this.#prevEnd = this.#lx.end;
    this.#lx.next();
  }

  #is(word: string): boolean {
    return this.#type() === Tok.Word && this.#lx.text === word;
  }

  #err(message: string): EngineError {
    const lx = this.#lx;
    return syntaxError(message, lx.tokLine, lx.column, lx.lineText());
  }

  #lineAt(line: number): string {
    let start = 0;
    const src = this.#lx.src;
    for (let i = 1; i < line && start >= 0; i++) {
      start = src.indexOf('\n', start);
      if (start >= 0) start++;
    }
    return start < 0 ? '' : this.#lx.lineText(start);
  }

  #where(): { line: number; column: number } {
    return { line: this.#lx.tokLine, column: this.#lx.column };
  }

  /** What the current token is, for messages. */
  #found(): string {
    const lx = this.#lx;
    switch (this.#type()) {
      case Tok.Word: return `'${lx.text}'`;
      case Tok.String: return `"${lx.text}"`;
      case Tok.LBrace: return "'{'";
      case Tok.RBrace: return "'}'";
      case Tok.Semi: return "';'";
      case Tok.Comma: return "','";
      case Tok.Newline: return 'the end of the line';
      case Tok.Handle: return `'# handle ${lx.text}'`;
      default: return 'the end of the input';
    }
  }

  #expectWord(what: string): string {
    if (this.#type() !== Tok.Word) throw this.#err(`expected ${what}, found ${this.#found()}`);
    const t = this.#lx.text;
    this.#advance();
    return t;
  }

  /** A name: a word, or a quoted string. */
  #name(what: string): string {
    const lx = this.#lx;
    if (this.#type() !== Tok.Word && this.#type() !== Tok.String) throw this.#err(`expected ${what}, found ${this.#found()}`);
    const t = lx.text;
    this.#advance();
    return t;
  }

  #expect(type: Tok, what: string): void {
    if (this.#type() !== type) throw this.#err(`expected ${what}, found ${this.#found()}`);
    this.#advance();
  }

  #number(what: string): number {
    const lx = this.#lx;
    if (this.#type() !== Tok.Word || !/^(\d+|0x[0-9a-f]+)$/i.test(lx.text)) throw this.#err(`expected ${what}, found ${this.#found()}`);
    const n = Number(lx.text);
    this.#advance();
    return n;
  }

  #time(what: string): number {
    const lx = this.#lx;
    const ms = this.#type() === Tok.Word ? parseTime(lx.text) : undefined;
    if (ms === undefined) throw this.#err(`expected ${what} (such as 10800s or 3h), found ${this.#found()}`);
    this.#advance();
    return ms;
  }

  #skipBreaks(): void {
    while (this.#type() === Tok.Newline || this.#type() === Tok.Semi) this.#advance();
  }

  /** A command is over: a line break, `;` or the end must follow. */
  #endOfCommand(): void {
    const t = this.#type();
    if (t === Tok.Newline || t === Tok.Semi) {
      this.#advance();
      return;
    }
    if (t !== Tok.Eof) throw this.#err(`unexpected ${this.#found()} after the end of the command`);
  }

  // ---- file and commands

  /** file := { command } */
  #file(): void {
    for (;;) {
      this.#skipBreaks();
      const lx = this.#lx;
      if (this.#type() === Tok.Eof) return;
      if (this.#type() === Tok.Handle) {
        this.#advance();
        continue;
      }
      if (this.#type() === Tok.RBrace) throw this.#err("'}' closes nothing: the braces before it are balanced already");
      if (this.#type() !== Tok.Word) throw this.#err(`expected a command (add, insert, delete, flush, …) or 'table', found ${this.#found()}`);
      const verb = lx.text;
      switch (verb) {
        case 'table':
          this.#sawBlock = true;
          this.#advance();
          this.#tableCommand(true);
          break;
        case 'add':
        case 'create':
          this.#sawCommand = true;
          this.#advance();
          this.#add();
          break;
        case 'insert':
        case 'replace':
          this.#sawCommand = true;
          this.#advance();
          if (!this.#is('rule')) throw this.#err(`expected 'rule' after '${verb}', found ${this.#found()}`);
          this.#advance();
          this.#ruleCommand(verb);
          break;
        case 'delete':
        case 'destroy':
          this.#sawCommand = true;
          this.#advance();
          this.#delete(verb === 'destroy');
          break;
        case 'flush':
          this.#sawCommand = true;
          this.#advance();
          this.#flush();
          break;
        case 'chain':
        case 'set':
        case 'map':
          throw this.#err(`a ${verb} outside any table: this looks like part of \`nft list ruleset\` output; include the \`table FAMILY NAME {\` line it belongs to`);
        case 'define':
        case 'include':
          throw this.#err(`'${verb}' is not supported: send the ruleset as \`nft list ruleset\` prints it`);
        default:
          throw this.#err(`expected a command (add, insert, delete, flush, …) or 'table', found ${this.#found()}`);
      }
      this.#endOfCommand();
    }
  }

  /** The optional family and `count` names of a command: `[family] table [chain|set]`. */
  #target(count: number): { family: NftFamily; names: string[]; where: { line: number; column: number } } {
    const lx = this.#lx;
    let family: NftFamily = 'ip';
    if (this.#type() === Tok.Word && FAMILIES.has(lx.text)) {
      const after = lx.peek();
      if (after === Tok.Word || after === Tok.String) {
        family = lx.text as NftFamily;
        this.#advance();
      }
    }
    const names: string[] = [];
    let where = this.#where();
    for (let i = 0; i < count; i++) {
      where = this.#where();
      names.push(this.#name(i === 0 ? 'a table name' : 'a name'));
    }
    // `where` is the last name's place: what an error about the object points at.
    return { family, names, where };
  }

  /** `add|create` table | chain | rule | set | map | element … */
  #add(): void {
    const obj = this.#expectWord("what to add ('table', 'chain', 'rule', 'set', 'map' or 'element')");
    switch (obj) {
      case 'table':
        this.#tableCommand(false);
        return;
      case 'chain': {
        const line = this.#lx.tokLine;
        const { family, names } = this.#target(2);
        const table = this.#b.table(family, names[0]);
        const chain = this.#b.chain(table, names[1], line);
        if (this.#type() === Tok.LBrace) {
          this.#advance();
          this.#chainBody(table, chain);
        }
        return;
      }
      case 'rule':
        this.#ruleCommand('add');
        return;
      case 'set':
      case 'map': {
        const line = this.#lx.tokLine;
        const { family, names } = this.#target(2);
        const table = this.#b.table(family, names[0]);
        const set = this.#b.set(table, names[1], obj === 'map', line);
        this.#expect(Tok.LBrace, `'{' to open the ${obj}'s declaration`);
        this.#setBody(set);
        return;
      }
      case 'element': {
        const { family, names, where } = this.#target(2);
        const set = this.#b.existingSet(this.#b.existingTable(family, names[0], where), names[1], where);
        this.#expect(Tok.LBrace, "'{' to open the elements");
        set.elements.push(...this.#elementList());
        return;
      }
      default:
        if (OTHER_OBJECTS.has(obj)) {
          this.#skipObject(obj);
          return;
        }
        throw this.#err(`cannot add '${obj}': expected table, chain, rule, set, map or element`);
    }
  }

  /** `table [family] name [{ body }]`; a bare `table` block (list form) must have its body. */
  #tableCommand(block: boolean): void {
    const line = this.#lx.tokLine;
    const { family, names } = this.#target(1);
    const table = this.#b.table(family, names[0], line);
    if (this.#type() === Tok.LBrace) {
      this.#advance();
      this.#tableBody(table, line);
    } else if (block) {
      throw this.#err(`expected '{' to open table ${table.key}, found ${this.#found()}`);
    }
  }

  /** `add rule`, `insert rule`, `replace rule`: `[family] table chain [handle N | position N | index N] statements`. */
  #ruleCommand(verb: 'add' | 'insert' | 'replace'): void {
    const { family, names } = this.#target(2);
    const where = this.#where();
    const table = this.#b.table(family, names[0]);
    const chain = this.#b.chain(table, names[1]);
    let place: RulePlace = verb === 'insert' ? { at: 'start' } : { at: 'end' };
    let handle: number | undefined;
    if (this.#is('handle') || this.#is('position')) {
      this.#advance();
      handle = this.#number('a rule handle');
      place = { at: verb === 'insert' ? 'before-handle' : 'after-handle', handle };
    } else if (this.#is('index')) {
      this.#advance();
      const index = this.#number('a rule index');
      place = { at: verb === 'insert' ? 'before-index' : 'after-index', index };
    }
    const rule = this.#rule(table);
    if (verb === 'replace') {
      if (handle === undefined) throw this.#err("'replace rule' needs 'handle N'");
      this.#b.replaceRule(chain, handle, rule, where);
    } else {
      this.#b.addRule(chain, rule, place, where);
    }
  }

  /** `delete|destroy` table | chain | rule | set | map | element … */
  #delete(quiet: boolean): void {
    const obj = this.#expectWord("what to delete ('table', 'chain', 'rule', 'set', 'map' or 'element')");
    const b = this.#b;
    switch (obj) {
      case 'table': {
        const { family, names, where } = this.#target(1);
        const key = `${family} ${names[0]}`;
        if (!b.tables.delete(key) && !quiet) throw new BuildError(`no table ${key} to delete`, where);
        return;
      }
      case 'chain':
      case 'set':
      case 'map': {
        const { family, names, where } = this.#target(2);
        const table = b.tables.get(`${family} ${names[0]}`);
        const from = obj === 'chain' ? table?.chains : table?.sets;
        if (!from?.delete(names[1]) && !quiet) throw new BuildError(`no ${obj} '${names[1]}' in table ${family} ${names[0]} to delete`, where);
        return;
      }
      case 'rule': {
        const { family, names, where } = this.#target(2);
        if (!this.#is('handle')) throw this.#err(`expected 'handle N' after the chain, found ${this.#found()}`);
        this.#advance();
        const handle = this.#number('a rule handle');
        const table = b.tables.get(`${family} ${names[0]}`);
        const chain = table?.chains.get(names[1]);
        if (!chain) {
          if (!quiet) throw new BuildError(`no chain '${names[1]}' in table ${family} ${names[0]}`, where);
          return;
        }
        if (!quiet || chain.rules.some((r) => r.handle === handle)) b.deleteRule(chain, handle, where);
        return;
      }
      case 'element': {
        const { family, names, where } = this.#target(2);
        const set = b.existingSet(b.existingTable(family, names[0], where), names[1], where);
        this.#expect(Tok.LBrace, "'{' to open the elements");
        const gone = new Set(this.#elementList().map((e) => elementKeyText(e.key)));
        set.elements = set.elements.filter((e) => !gone.has(elementKeyText(e.key)));
        return;
      }
      default:
        if (OTHER_OBJECTS.has(obj)) {
          this.#skipObject(obj);
          return;
        }
        throw this.#err(`cannot delete '${obj}': expected table, chain, rule, set, map or element`);
    }
  }

  /** `flush ruleset [family]`, `flush table …`, `flush chain …`, `flush set|map …`. */
  #flush(): void {
    const obj = this.#expectWord("what to flush ('ruleset', 'table', 'chain', 'set' or 'map')");
    const b = this.#b;
    switch (obj) {
      case 'ruleset': {
        const family = this.#type() === Tok.Word && FAMILIES.has(this.#lx.text) ? this.#expectWord('a family') : undefined;
        for (const [key, t] of b.tables) if (family === undefined || t.family === family) b.tables.delete(key);
        return;
      }
      case 'table': {
        const { family, names, where } = this.#target(1);
        const table = b.existingTable(family, names[0], where);
        // Flushing a table empties its chains and sets but keeps them.
        for (const c of table.chains.values()) c.rules = [];
        for (const s of table.sets.values()) s.elements = [];
        return;
      }
      case 'chain': {
        const { family, names, where } = this.#target(2);
        b.existingChain(b.existingTable(family, names[0], where), names[1], where).rules = [];
        return;
      }
      case 'set':
      case 'map': {
        const { family, names, where } = this.#target(2);
        b.existingSet(b.existingTable(family, names[0], where), names[1], where).elements = [];
        return;
      }
      default:
        throw this.#err(`cannot flush '${obj}': expected ruleset, table, chain, set or map`);
    }
  }

  /** Reads past an object the model does not keep (a flowtable, a named counter …), with a diagnostic. */
  #skipObject(obj: string): void {
    const lx = this.#lx;
    const line = lx.tokLine;
    const column = lx.column;
    const text = lx.lineText();
    let depth = 0;
    while (this.#type() !== Tok.Eof && (depth > 0 || (this.#type() !== Tok.Newline && this.#type() !== Tok.Semi && this.#type() !== Tok.RBrace))) {
      if (this.#type() === Tok.LBrace) depth++;
      else if (this.#type() === Tok.RBrace) depth--;
      this.#advance();
    }
    if (depth > 0) throw this.#err(`the input ends inside the ${obj} opened at line ${line}`);
    this.#b.note('info', 'NFT_OBJECT_SKIPPED', `${obj} objects are not modelled; skipped`, line, column, text);
  }

  // ---- blocks

  /** table-body := { 'comment' STRING | 'flags' list | 'chain' NAME '{' chain-body '}' | ('set'|'map') NAME '{' set-body '}' } '}' */
  #tableBody(table: TableDraft, openLine: number): void {
    const lx = this.#lx;
    if (this.#type() === Tok.Handle) {
      table.handle = Number(lx.text);
      this.#advance();
    }
    for (;;) {
      this.#skipBreaks();
      if (this.#type() === Tok.RBrace) {
        this.#advance();
        return;
      }
      if (this.#type() === Tok.Eof) throw this.#err(`the input ends inside table ${table.key} (opened at line ${openLine}): the dump looks cut short`);
      const line = lx.tokLine;
      const word = this.#expectWord(`a chain, set or map of table ${table.key}`);
      switch (word) {
        case 'comment':
          table.comment = this.#string('the comment');
          break;
        case 'flags':
          table.flags = this.#wordList('a table flag');
          break;
        case 'chain': {
          const chain = this.#b.chain(table, this.#name('a chain name'), line);
          this.#expect(Tok.LBrace, `'{' to open chain '${chain.name}'`);
          this.#chainBody(table, chain);
          break;
        }
        case 'set':
        case 'map': {
          const set = this.#b.set(table, this.#name(`a ${word} name`), word === 'map', line);
          this.#expect(Tok.LBrace, `'{' to open ${word} '${set.name}'`);
          this.#setBody(set);
          break;
        }
        default:
          if (OTHER_OBJECTS.has(word)) {
            this.#skipObject(word);
            break;
          }
          throw syntaxError(`expected a chain, set or map of table ${table.key}, found '${word}'`, line, this.#columnOf(line), this.#lineAt(line));
      }
    }
  }

  #columnOf(line: number): number {
    const text = this.#lineAt(line);
    return text.length - text.trimStart().length + 1;
  }

  /** chain-body := { base-spec | 'policy' P | 'comment' STRING | rule [handle] } '}' */
  #chainBody(table: TableDraft, chain: ChainDraft): void {
    const lx = this.#lx;
    const openLine = lx.tokLine;
    if (this.#type() === Tok.Handle) {
      chain.handle = Number(lx.text);
      this.#advance();
    }
    for (;;) {
      this.#skipBreaks();
      switch (this.#type()) {
        case Tok.RBrace:
          this.#advance();
          return;
        case Tok.Eof:
          throw this.#err(`the input ends inside chain '${chain.name}' (opened at line ${openLine}): the dump looks cut short`);
        case Tok.Word:
          break;
        default:
          throw this.#err(`expected a rule of chain '${chain.name}', found ${this.#found()}`);
      }
      // No statement starts with these words, so they describe the chain.
      if (this.#is('type')) {
        this.#advance();
        chain.base = this.#baseSpec(table.family);
      } else if (this.#is('policy')) {
        this.#advance();
        chain.policy = this.#policy();
      } else if (this.#is('comment')) {
        this.#advance();
        chain.comment = this.#string('the comment');
      } else if (this.#is('devices') || this.#is('device')) {
        const devices = this.#devices();
        if (chain.base) chain.base = { ...chain.base, devices };
      } else {
        const where = this.#where();
        this.#b.addRule(chain, this.#rule(table), { at: 'end' }, where);
      }
      const t = this.#type();
      if (t !== Tok.Newline && t !== Tok.Semi && t !== Tok.RBrace) throw this.#err(`unexpected ${this.#found()} in chain '${chain.name}'`);
    }
  }

  /** base-spec := 'type' TYPE 'hook' HOOK [device] 'priority' PRIORITY */
  #baseSpec(family: NftFamily): NftBaseChainSpec {
    const type = this.#expectWord('a chain type (filter, nat or route)');
    if (!CHAIN_TYPES.has(type)) throw this.#errBefore(`unknown chain type '${type}': expected filter, nat or route`);
    if (!this.#is('hook')) throw this.#err(`expected 'hook' after the chain type, found ${this.#found()}`);
    this.#advance();
    const hook = this.#expectWord('a hook');
    if (!HOOKS.has(hook)) throw this.#errBefore(`unknown hook '${hook}'`);
    let devices: string[] = [];
    if (this.#is('device') || this.#is('devices')) devices = this.#devices();
    if (!this.#is('priority')) throw this.#err(`expected 'priority' after the hook, found ${this.#found()}`);
    this.#advance();
    const { priority, priorityText } = this.#priority(family);
    return { type: type as NftChainType, hook: hook as NftHook, priority, priorityText, policy: 'accept', devices };
  }

  /** An error at the word just read. */
  #errBefore(message: string): EngineError {
    const lx = this.#lx;
    const col = this.#prevStart - lx.tokLineStart + 1;
    return syntaxError(message, lx.tokLine, Math.max(1, col), lx.lineText());
  }

  /** `device NAME` or `devices = { a, b }`. */
  #devices(): string[] {
    if (this.#is('device')) {
      this.#advance();
      return [this.#name('a device name')];
    }
    this.#advance();
    if (this.#is('=')) this.#advance();
    this.#expect(Tok.LBrace, "'{' to open the devices");
    const out: string[] = [];
    for (;;) {
      this.#skipBreaks();
      if (this.#type() === Tok.RBrace) break;
      out.push(this.#name('a device name'));
      this.#skipBreaks();
      if (this.#type() === Tok.Comma) this.#advance();
    }
    this.#advance();
    return out;
  }

  /** PRIORITY := NUMBER | NAME [('+'|'-') NUMBER], names resolved for the family. */
  #priority(family: NftFamily): { priority: number; priorityText: string } {
    const lx = this.#lx;
    const words: string[] = [];
    const line = lx.tokLine;
    const column = lx.column;
    while (this.#type() === Tok.Word) {
      words.push(lx.text);
      this.#advance();
    }
    const joined = words.join('');
    const priorityText = words.join(' ');
    if (/^[+-]?\d+$/.test(joined)) return { priority: Number(joined), priorityText };
    const m = /^([a-z]+)(?:([+-])(\d+))?$/.exec(joined);
    const base = m ? standardPriority(family, m[1]) : undefined;
    if (!m || base === undefined) {
      throw syntaxError(`unknown priority '${priorityText}': expected a number or a name such as dstnat, filter, srcnat (± N)`, line, column, lx.lineText());
    }
    const offset = m[3] ? Number(m[3]) * (m[2] === '-' ? -1 : 1) : 0;
    return { priority: base + offset, priorityText };
  }

  #policy(): NftPolicy {
    const p = this.#expectWord('a policy (accept or drop)');
    if (p !== 'accept' && p !== 'drop') throw this.#errBefore(`unknown policy '${p}': expected accept or drop`);
    return p;
  }

  #string(what: string): string {
    if (this.#type() !== Tok.String && this.#type() !== Tok.Word) throw this.#err(`expected ${what}, found ${this.#found()}`);
    const t = this.#lx.text;
    this.#advance();
    return t;
  }

  /** `a,b,c` (commas with or without spaces). */
  #wordList(what: string): string[] {
    const out = [this.#expectWord(what)];
    while (this.#type() === Tok.Comma) {
      this.#advance();
      out.push(this.#expectWord(what));
    }
    return out;
  }

  /**
   * set-body := { 'type' TYPES [':' TYPES] | 'typeof' EXPRS [':' EXPRS] | 'flags' list | 'timeout' T
   *   | 'gc-interval' T | 'size' N | 'policy' P | 'comment' S | 'auto-merge' | 'elements' '=' '{' elements '}' } '}'
   */
  #setBody(set: SetDraft): void {
    const lx = this.#lx;
    const openLine = lx.tokLine;
    if (this.#type() === Tok.Handle) {
      set.handle = Number(lx.text);
      this.#advance();
    }
    for (;;) {
      this.#skipBreaks();
      if (this.#type() === Tok.RBrace) {
        this.#advance();
        return;
      }
      if (this.#type() === Tok.Eof) throw this.#err(`the input ends inside set '${set.name}' (opened at line ${openLine}): the dump looks cut short`);
      const word = this.#expectWord(`a declaration of set '${set.name}'`);
      switch (word) {
        case 'type':
        case 'typeof': {
          const [key, data] = this.#setType(word === 'typeof');
          set.key = key;
          if (data) {
            set.data = data;
            set.isMap = true;
          }
          break;
        }
        case 'flags':
          set.flags = this.#wordList('a set flag');
          break;
        case 'timeout':
          set.timeoutMs = this.#time('a timeout');
          break;
        case 'gc-interval':
          set.gcIntervalMs = this.#time('a gc interval');
          break;
        case 'size':
          set.size = this.#number('a size');
          break;
        case 'policy':
          set.policy = this.#expectWord('a set policy');
          break;
        case 'comment':
          set.comment = this.#string('the comment');
          break;
        case 'auto-merge':
          set.autoMerge = true;
          break;
        case 'elements':
          if (this.#is('=')) this.#advance();
          this.#expect(Tok.LBrace, "'{' to open the elements");
          set.elements.push(...this.#elementList());
          break;
        default: {
          // A declaration the model does not keep (counter, stateful objects …): skipped, noted.
          const line = lx.tokLine;
          while (this.#type() === Tok.Word || this.#type() === Tok.String || this.#type() === Tok.Comma) this.#advance();
          this.#b.note('info', 'NFT_SET_OPTION_SKIPPED', `set option '${word}' is not modelled; skipped`, line);
        }
      }
      const t = this.#type();
      if (t !== Tok.Newline && t !== Tok.Semi && t !== Tok.RBrace) throw this.#err(`unexpected ${this.#found()} in set '${set.name}'`);
    }
  }

  /** TYPES := NAME { '.' NAME } or, for typeof, EXPR { '.' EXPR }; then optionally ':' and the data. */
  #setType(isTypeof: boolean): [NftSetType, NftSetType | undefined] {
    const part = (typeofPart: boolean): NftSetType => {
      const start = this.#lx.start;
      if (typeofPart) {
        const e = this.#guard(() => this.#selector());
        const parts = e.kind === 'concat' ? e.parts : [e];
        return { typeof: parts, text: this.#lx.src.slice(start, this.#prevEnd) };
      }
      const types = [this.#expectWord('a data type')];
      while (this.#is('.')) {
        this.#advance();
        types.push(this.#expectWord('a data type'));
      }
      if (this.#is('flags')) {
        // `type ipv4_addr flags interval` in some versions' typeof output.
        this.#advance();
        this.#wordList('a flag');
      }
      return { types, text: this.#lx.src.slice(start, this.#prevEnd) };
    };
    const key = part(isTypeof);
    if (!this.#is(':')) return [key, undefined];
    this.#advance();
    const dataIsTypeof = isTypeof && this.#type() === Tok.Word && this.#startsSelector(this.#lx.text);
    return [key, part(dataIsTypeof)];
  }

  /** Runs a rule-level parse outside a rule: a statement this reader does not model is a syntax error here. */
  #guard<T>(f: () => T): T {
    const before = this.#lx.mark();
    try {
      return f();
    } catch (e) {
      if (e !== BAIL) throw e;
      this.#lx.reset(before);
      throw this.#err(`expression not understood: ${this.#found()}`);
    }
  }

  /** elements := { element (',' | line break) } '}' — the opening '{' already read. */
  #elementList(): NftSetElement[] {
    const out: NftSetElement[] = [];
    for (;;) {
      while (this.#type() === Tok.Newline) this.#advance();
      if (this.#type() === Tok.RBrace) {
        this.#advance();
        return out;
      }
      if (this.#type() === Tok.Eof) throw this.#err("the input ends inside '{ … }': a '}' is missing");
      out.push(this.#element());
      while (this.#type() === Tok.Newline) this.#advance();
      if (this.#type() === Tok.Comma) this.#advance();
      else if (this.#type() !== Tok.RBrace) throw this.#err(`expected ',' or '}' after an element, found ${this.#found()}`);
    }
  }

  /** element := KEY { 'timeout' T | 'expires' T | 'comment' S | 'counter' … } [':' VALUE] */
  #element(): NftSetElement {
    const line = this.#lx.tokLine;
    const key = this.#valueConcat();
    let timeoutMs: number | undefined;
    let expiresMs: number | undefined;
    let comment: string | undefined;
    for (;;) {
      if (this.#is('timeout')) {
        this.#advance();
        timeoutMs = this.#time('a timeout');
      } else if (this.#is('expires')) {
        this.#advance();
        expiresMs = this.#time('an expiry');
      } else if (this.#is('comment')) {
        this.#advance();
        comment = this.#string('the comment');
      } else if (this.#is('counter')) {
        this.#advance();
        this.#counterNumbers();
      } else {
        break;
      }
    }
    let value: NftExpr | undefined;
    if (this.#is(':')) {
      this.#advance();
      value = this.#elementValue();
    }
    const el: { -readonly [K in keyof NftSetElement]: NftSetElement[K] } = { key, line };
    if (value) el.value = value;
    if (timeoutMs !== undefined) el.timeoutMs = timeoutMs;
    if (expiresMs !== undefined) el.expiresMs = expiresMs;
    if (comment !== undefined) el.comment = comment;
    return el;
  }

  #elementValue(): NftExpr {
    const lx = this.#lx;
    if (this.#type() === Tok.Word) {
      const w = lx.text;
      if (VERDICTS.has(w)) {
        this.#advance();
        return { kind: 'verdict', verdict: w as NftVerdictName };
      }
      if (w === 'jump' || w === 'goto') {
        this.#advance();
        return { kind: 'verdict', verdict: w, target: this.#name('a chain name') };
      }
    }
    return this.#valueConcat();
  }

  /** VALUE { '.' VALUE } */
  #valueConcat(): NftExpr {
    const first = this.#value();
    if (!this.#is('.')) return first;
    const parts = [first];
    while (this.#is('.')) {
      this.#advance();
      parts.push(this.#value());
    }
    return { kind: 'concat', parts };
  }

  /** VALUE := WORD (literal, prefix or range) | STRING */
  #value(): NftExpr {
    const lx = this.#lx;
    if (this.#type() === Tok.String) {
      const t = lx.text;
      this.#advance();
      return literal(t, true);
    }
    if (this.#type() !== Tok.Word) throw this.#err(`expected a value, found ${this.#found()}`);
    const t = lx.text;
    this.#advance();
    return valueWord(t);
  }

  // ---- rules

  /** rule := statement { statement } ['comment' STRING] [# handle N] — up to a line break, ';' or '}'. */
  #rule(table: TableDraft): RuleDraft {
    const lx = this.#lx;
    const start = lx.start;
    const line = lx.tokLine;
    const statements: NftStatement[] = [];
    let comment: string | undefined;
    while (!this.#atRuleEnd()) {
      if (this.#is('comment')) {
        this.#advance();
        comment = this.#string('the comment');
        continue;
      }
      const { start: from, tokLine, tokLineStart } = lx;
      const prevEnd = this.#prevEnd;
      try {
        statements.push(this.#statement());
      } catch (e) {
        if (e !== BAIL) throw e;
        lx.rewind(from, tokLine, tokLineStart);
        this.#prevEnd = prevEnd;
        const rest = this.#unmodelledRest(table);
        statements.push(...rest.statements);
        if (rest.comment !== undefined) comment = rest.comment;
      }
    }
    if (statements.length === 0) throw this.#err(`expected a rule, found ${this.#found()}`);
    const rule = ruleDraft(line, lx.src.slice(start, this.#prevEnd), statements, comment);
    if (this.#type() === Tok.Handle) {
      rule.handle = Number(lx.text);
      this.#advance();
    }
    return rule;
  }

  #atRuleEnd(): boolean {
    const t = this.#type();
    return t === Tok.Newline || t === Tok.Semi || t === Tok.RBrace || t === Tok.Eof || t === Tok.Handle;
  }

  /**
   * The rest of a rule from a statement this reader does not model: kept as one `unmodelled`
   * statement, except a trailing verdict and comment, which are read (so a jump still counts).
   */
  #unmodelledRest(table: TableDraft): { statements: NftStatement[]; comment?: string } {
    const lx = this.#lx;
    const line = lx.tokLine;
    const column = lx.column;
    const lineText = lx.lineText();
    const toks: { type: Tok; text: string; start: number; end: number }[] = [];
    let depth = 0;
    while (depth > 0 || !this.#atRuleEnd()) {
      if (this.#type() === Tok.Eof) throw this.#err("the input ends inside '{ … }': a '}' is missing");
      if (this.#type() === Tok.LBrace) depth++;
      else if (this.#type() === Tok.RBrace) depth--;
      toks.push({ type: this.#type(), text: lx.text, start: lx.start, end: lx.end });
      this.#advance();
    }
    let comment: string | undefined;
    let n = toks.length;
    if (n >= 2 && toks[n - 2].type === Tok.Word && toks[n - 2].text === 'comment' && toks[n - 1].type === Tok.String) {
      comment = toks[n - 1].text;
      n -= 2;
    }
    let verdict: NftStatement | undefined;
    if (n >= 2 && toks[n - 2].type === Tok.Word && (toks[n - 2].text === 'jump' || toks[n - 2].text === 'goto')
      && (toks[n - 1].type === Tok.Word || toks[n - 1].type === Tok.String)) {
      verdict = { kind: 'verdict', verdict: toks[n - 2].text as NftVerdictName, target: toks[n - 1].text };
      n -= 2;
    } else if (n >= 2 && toks[n - 1].type === Tok.Word && VERDICTS.has(toks[n - 1].text)) {
      verdict = { kind: 'verdict', verdict: toks[n - 1].text as NftVerdictName };
      n -= 1;
    }
    const statements: NftStatement[] = [];
    if (n > 0) {
      const text = lx.src.slice(toks[0].start, toks[n - 1].end);
      statements.push({ kind: 'unmodelled', text });
      this.#b.note('warning', 'NFT_UNMODELLED', `table ${table.key}: '${text}' is not modelled; kept as text`, line, column, lineText);
    }
    if (verdict) statements.push(verdict);
    return comment === undefined ? { statements } : { statements, comment };
  }

  /** One statement of a rule. Bails (BAIL) on anything not modelled. */
  #statement(): NftStatement {
    const lx = this.#lx;
    if (this.#type() !== Tok.Word) throw BAIL;
    const w = lx.text;
    switch (w) {
      case 'accept':
      case 'drop':
      case 'return':
      case 'continue':
        this.#advance();
        return { kind: 'verdict', verdict: w };
      case 'jump':
      case 'goto':
        this.#advance();
        if (this.#type() !== Tok.Word && this.#type() !== Tok.String) throw BAIL;
        return { kind: 'verdict', verdict: w, target: this.#name('a chain name') };
      case 'counter': {
        this.#advance();
        return { kind: 'counter', ...this.#counterNumbers() };
      }
      case 'notrack':
        this.#advance();
        return { kind: 'notrack' };
      case 'limit':
        return this.#limit();
      case 'log':
        return this.#log();
      case 'reject':
        return this.#reject();
      case 'dnat':
      case 'snat':
      case 'masquerade':
      case 'redirect':
        return this.#nat(w);
      case 'update':
      case 'add':
      case 'delete':
        return this.#setUpdate(w);
      default:
        return this.#selectorStatement();
    }
  }

  /** ['packets' N 'bytes' N] */
  #counterNumbers(): { packets?: string; bytes?: string } {
    const out: { packets?: string; bytes?: string } = {};
    if (this.#is('packets')) {
      this.#advance();
      out.packets = this.#digits();
    }
    if (this.#is('bytes')) {
      this.#advance();
      out.bytes = this.#digits();
    }
    return out;
  }

  #digits(): string {
    const lx = this.#lx;
    if (this.#type() !== Tok.Word || !/^\d+$/.test(lx.text)) throw BAIL;
    const t = lx.text;
    this.#advance();
    return t;
  }

  /** 'limit' 'rate' ['over'] N[/UNIT | UNIT/PER] ['burst' N [UNIT]] */
  #limit(): NftStatement {
    const lx = this.#lx;
    this.#advance();
    if (!this.#is('rate')) throw BAIL;
    this.#advance();
    let over = false;
    if (this.#is('over')) {
      over = true;
      this.#advance();
    }
    if (this.#type() !== Tok.Word) throw BAIL;
    let rate: number;
    let unit = 'packets';
    let per: string;
    const m = /^(\d+)\/(\w+)$/.exec(lx.text);
    if (m) {
      rate = Number(m[1]);
      per = m[2]!;
      this.#advance();
    } else {
      if (!/^\d+$/.test(lx.text)) throw BAIL;
      rate = Number(lx.text);
      this.#advance();
      const u = this.#type() === Tok.Word ? /^(\w+)\/(\w+)$/.exec(lx.text) : null;
      if (!u) throw BAIL;
      unit = u[1]!;
      per = u[2]!;
      this.#advance();
    }
    const out: { -readonly [K in keyof NftLimitStatement]: NftLimitStatement[K] } = {
      kind: 'limit', rate, unit, per, over,
    };
    if (this.#is('burst')) {
      this.#advance();
      const burst = Number(this.#digits());
      let burstUnit: string | undefined;
      if (this.#type() === Tok.Word && /^(packets|bytes|kbytes|mbytes)$/.test(lx.text)) {
        burstUnit = lx.text;
        this.#advance();
      }
      setBurst(out, burst, burstUnit);
    }
    return out;
  }

  /** 'log' { 'prefix' S | 'level' L | 'group' N | other options } */
  #log(): NftStatement {
    const lx = this.#lx;
    this.#advance();
    const out: { -readonly [K in keyof NftLogStatement]: NftLogStatement[K] } = { kind: 'log' };
    const more: string[] = [];
    for (;;) {
      if (this.#is('prefix')) {
        this.#advance();
        out.prefix = this.#string('a log prefix');
      } else if (this.#is('level')) {
        this.#advance();
        out.level = this.#expectWord('a log level');
      } else if (this.#is('group')) {
        this.#advance();
        out.group = Number(this.#digits());
      } else if (this.#is('snaplen') || this.#is('queue-threshold')) {
        const start = lx.start;
        this.#advance();
        this.#digits();
        more.push(lx.src.slice(start, this.#prevEnd));
      } else if (this.#is('flags')) {
        const start = lx.start;
        this.#advance();
        this.#wordList('a log flag');
        more.push(lx.src.slice(start, this.#prevEnd));
      } else {
        break;
      }
    }
    if (more.length > 0) out.more = more.join(' ');
    return out;
  }

  /** 'reject' ['with' ('icmp'|'icmpv6'|'icmpx') ['type'] CODE | 'with' 'tcp' 'reset'] */
  #reject(): NftStatement {
    this.#advance();
    if (!this.#is('with')) return { kind: 'reject' };
    this.#advance();
    const lx = this.#lx;
    if (this.#is('tcp')) {
      this.#advance();
      if (!this.#is('reset')) throw BAIL;
      this.#advance();
      return { kind: 'reject', with: 'tcp reset' };
    }
    if (!this.#is('icmp') && !this.#is('icmpv6') && !this.#is('icmpx')) throw BAIL;
    const kind = lx.text as 'icmp' | 'icmpv6' | 'icmpx';
    this.#advance();
    if (this.#is('type')) this.#advance();
    if (this.#type() !== Tok.Word) throw BAIL;
    const code = lx.text;
    this.#advance();
    return { kind: 'reject', with: kind, code };
  }

  /**
   * ('dnat'|'snat') [ip|ip6] 'to' ADDRESS[:PORT] [flags]; ('masquerade'|'redirect') ['to' :PORT] [flags];
   * ADDRESS may be `EXPR map …`.
   */
  #nat(type: 'dnat' | 'snat' | 'masquerade' | 'redirect'): NftStatement {
    const lx = this.#lx;
    this.#advance();
    let family: 'ip' | 'ip6' | undefined;
    if ((type === 'dnat' || type === 'snat') && (this.#is('ip') || this.#is('ip6')) && lx.peekWord() === 'to') {
      family = lx.text as 'ip' | 'ip6';
      this.#advance();
    }
    let address: NftExpr | undefined;
    let port: NftExpr | undefined;
    if (this.#is('to')) {
      this.#advance();
      if (this.#type() !== Tok.Word) throw BAIL;
      if (this.#startsSelector(lx.text)) {
        const key = this.#selector();
        if (!this.#is('map')) throw BAIL;
        this.#advance();
        address = { kind: 'map', key, map: this.#mapOperand() };
      } else {
        ({ address, port } = splitAddressPort(lx.text));
        this.#advance();
        if (address === undefined && port === undefined) throw BAIL;
      }
    } else if (type === 'dnat' || type === 'snat') {
      throw BAIL;
    }
    const flags: string[] = [];
    while (this.#type() === Tok.Word && NAT_FLAGS.has(lx.text)) {
      flags.push(lx.text);
      this.#advance();
      if (this.#type() === Tok.Comma) this.#advance();
    }
    const out: { -readonly [K in keyof NftNatStatement]: NftNatStatement[K] } = { kind: 'nat', type, flags };
    if (family) out.family = family;
    if (address) out.address = address;
    if (port) out.port = port;
    return out;
  }

  /** ('update'|'add'|'delete') '@'SET '{' EXPR ['timeout' T] '}' */
  #setUpdate(op: 'update' | 'add' | 'delete'): NftStatement {
    const lx = this.#lx;
    this.#advance();
    if (this.#type() !== Tok.Word || !lx.text.startsWith('@')) throw BAIL;
    const set = lx.text.slice(1);
    this.#advance();
    if (this.#type() !== Tok.LBrace) throw BAIL;
    this.#advance();
    const key = this.#selector();
    let timeoutMs: number | undefined;
    if (this.#is('timeout')) {
      this.#advance();
      timeoutMs = this.#type() === Tok.Word ? parseTime(lx.text) : undefined;
      if (timeoutMs === undefined) throw BAIL;
      this.#advance();
    }
    if (this.#type() !== Tok.RBrace) throw BAIL;
    this.#advance();
    return timeoutMs === undefined ? { kind: 'set-update', op, set, key } : { kind: 'set-update', op, set, key, timeoutMs };
  }

  #startsSelector(w: string): boolean {
    return PAYLOAD_PROTOCOLS.has(w) || BARE_META.has(w) || w === 'meta' || w === 'ct' || w === 'fib' || w === 'numgen';
  }

  /** SELECTOR ('set' VALUE | 'vmap' MAP | [OP] RIGHT) */
  #selectorStatement(): NftStatement {
    const left = this.#selector();
    const lx = this.#lx;
    if (this.#type() === Tok.Word) {
      if (lx.text === 'set') {
        this.#advance();
        const value = this.#type() === Tok.Word && this.#startsSelector(lx.text) ? this.#selector() : this.#right();
        return { kind: 'mangle', target: left, value };
      }
      if (lx.text === 'vmap') {
        this.#advance();
        return { kind: 'vmap', key: left, map: this.#mapOperand() };
      }
      const op = OPERATORS[lx.text];
      if (op) {
        this.#advance();
        return { kind: 'match', left, op, right: this.#right() };
      }
    }
    const right = this.#right();
    // `tcp flags syn / syn,ack` (a mask after the value) is not modelled: the whole match is kept as text.
    if (this.#is('/')) throw BAIL;
    return { kind: 'match', left, op: implicitOperator(left, right), right };
  }

  /** '@'NAME | '{' elements '}' */
  #mapOperand(): NftSetReference | NftAnonymousSet {
    const lx = this.#lx;
    if (this.#type() === Tok.Word && lx.text.startsWith('@') && lx.text.length > 1) {
      const name = lx.text.slice(1);
      this.#advance();
      return { kind: 'set-ref', name };
    }
    if (this.#type() !== Tok.LBrace) throw BAIL;
    this.#advance();
    return { kind: 'anonymous-set', elements: this.#elementList() };
  }

  /** RIGHT := '{' elements '}' | '@'NAME | VALUE { ',' VALUE } | VALUE { '.' VALUE } */
  #right(): NftExpr {
    const lx = this.#lx;
    if (this.#type() === Tok.LBrace || (this.#type() === Tok.Word && lx.text.startsWith('@') && lx.text.length > 1)) return this.#mapOperand();
    if (this.#type() !== Tok.Word && this.#type() !== Tok.String) throw BAIL;
    // `tcp` after `meta l4proto` is a value although `tcp` also starts a selector.
    if (this.#type() === Tok.Word && (lx.text === 'map' || lx.text === 'vmap' || lx.text === 'set')) throw BAIL;
    const first = this.#valueConcat();
    if (this.#type() !== Tok.Comma) return first;
    const items = [first];
    while (this.#type() === Tok.Comma) {
      this.#advance();
      items.push(this.#value());
    }
    return { kind: 'list', items };
  }

  /** SELECTOR := PRIMARY { BINOP VALUE } { '.' PRIMARY { BINOP VALUE } } */
  #selector(): NftExpr {
    const first = this.#operand();
    if (!this.#is('.')) return first;
    const parts = [first];
    while (this.#is('.')) {
      this.#advance();
      parts.push(this.#operand());
    }
    return { kind: 'concat', parts };
  }

  #operand(): NftExpr {
    let e = this.#primary();
    const lx = this.#lx;
    while (this.#type() === Tok.Word) {
      const op = BINARY_OPS[lx.text];
      if (!op) break;
      this.#advance();
      e = { kind: 'binary', op, left: e, right: this.#value() };
    }
    return e;
  }

  /** PRIMARY := payload | meta | ct | fib | numgen */
  #primary(): NftExpr {
    const lx = this.#lx;
    if (this.#type() !== Tok.Word) throw BAIL;
    const w = lx.text;
    if (PAYLOAD_PROTOCOLS.has(w)) {
      this.#advance();
      if (this.#type() !== Tok.Word || !/^[a-z][a-z0-9-]*$/.test(lx.text) || lx.text === 'option' || lx.text === 'set') throw BAIL;
      const field = lx.text;
      this.#advance();
      return this.#shared(`${w} ${field}`, () => ({ kind: 'payload', protocol: w, field }));
    }
    if (w === 'meta') {
      this.#advance();
      if (this.#type() !== Tok.Word) throw BAIL;
      const key = lx.text;
      this.#advance();
      return this.#shared(`meta ${key}`, () => ({ kind: 'meta', key }));
    }
    if (BARE_META.has(w)) {
      this.#advance();
      return this.#shared(`meta ${w}`, () => ({ kind: 'meta', key: w }));
    }
    if (w === 'ct') return this.#ct();
    if (w === 'fib') return this.#fib();
    if (w === 'numgen') return this.#numgen();
    throw BAIL;
  }

  /** 'ct' ['original'|'reply'] KEY, KEY possibly `ip saddr` */
  #ct(): NftExpr {
    const lx = this.#lx;
    this.#advance();
    let direction: 'original' | 'reply' | undefined;
    if (this.#is('original') || this.#is('reply')) {
      direction = lx.text as 'original' | 'reply';
      this.#advance();
    }
    if (this.#type() !== Tok.Word || lx.text === 'count' || lx.text === 'expectation') throw BAIL;
    let key = lx.text;
    this.#advance();
    if ((key === 'ip' || key === 'ip6') && this.#type() === Tok.Word) {
      key = `${key} ${lx.text}`;
      this.#advance();
    }
    return direction ? { kind: 'ct', key, direction } : { kind: 'ct', key };
  }

  /** 'fib' FLAG { '.' FLAG } RESULT */
  #fib(): NftExpr {
    const lx = this.#lx;
    this.#advance();
    const flags: string[] = [];
    for (;;) {
      if (this.#type() !== Tok.Word) throw BAIL;
      flags.push(lx.text);
      this.#advance();
      if (!this.#is('.')) break;
      this.#advance();
    }
    if (this.#type() !== Tok.Word || !/^(type|oif|oifname)$/.test(lx.text)) throw BAIL;
    const result = lx.text;
    this.#advance();
    return { kind: 'fib', flags, result };
  }

  /** 'numgen' ('random'|'inc') 'mod' N ['offset' N] */
  #numgen(): NftExpr {
    const lx = this.#lx;
    this.#advance();
    if (!this.#is('random') && !this.#is('inc')) throw BAIL;
    const mode = lx.text as 'random' | 'inc';
    this.#advance();
    if (!this.#is('mod')) throw BAIL;
    this.#advance();
    const modulus = Number(this.#digits());
    let offset = 0;
    if (this.#is('offset')) {
      this.#advance();
      offset = Number(this.#digits());
    }
    return { kind: 'numgen', mode, modulus, offset };
  }
}

/** `10.0.0.1:80`, `[2001:db8::1]:80`, `:1162`, `10.0.0.1`, `2001:db8::1`, ranges in either part. */
export function splitAddressPort(text: string): { address?: NftExpr; port?: NftExpr } {
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return {};
    const address = valueWord(text.slice(1, close));
    const rest = text.slice(close + 1);
    if (rest === '') return { address };
    return rest.startsWith(':') && rest.length > 1 ? { address, port: valueWord(rest.slice(1)) } : {};
  }
  if (text.startsWith(':')) return text.length > 1 ? { port: valueWord(text.slice(1)) } : {};
  const colon = text.indexOf(':');
  if (colon < 0 || text.indexOf(':', colon + 1) >= 0) return { address: valueWord(text) };
  return { address: valueWord(text.slice(0, colon)), port: valueWord(text.slice(colon + 1)) };
}

/** A key's identity, for deleting elements: the same text nft would print. */
export function elementKeyText(e: NftExpr): string {
  switch (e.kind) {
    case 'literal': return e.text;
    case 'prefix': return `${e.address}/${e.length}`;
    case 'range': return `${elementKeyText(e.low)}-${elementKeyText(e.high)}`;
    case 'concat': return e.parts.map(elementKeyText).join(' . ');
    default: return JSON.stringify(e);
  }
}

