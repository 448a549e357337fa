/**
 * Parsers for rule dumps: `iptables-save` / `ip6tables-save` output (and the iptables-restore input
 * kube-proxy writes), and `iptables -S` output. Both produce the same Ruleset model.
 */
import type {
  Chain, Counters, Diagnostic, DumpFormat, Family, Policy, Rule, Ruleset, Table,
} from './ast.ts';
import { isBuiltinChain, TABLE_NAMES } from './ast.ts';
import { EngineError, syntaxError } from '../errors.ts';
import { tokenize } from './lexer.ts';
import { parseRuleBody } from './rule-parser.ts';
import { isKnownModule, isKnownTarget } from './modules.ts';

export type FormatOption = 'auto' | DumpFormat;

export interface ParseOptions {
  readonly format?: FormatOption;
  /** For iptables -S input: the table the lines came from (`-t nat`). Inferred when absent. */
  readonly table?: string;
}

interface RuleDraft {
  rule: Omit<Rule, 'index'> & { index: number };
}


interface ChainDraft {
  name: string;
  table: string;
  builtin: boolean;
  policy: Policy | null;
  counters?: Counters;
  line: number;
  rules: RuleDraft[];
}

interface TableDraft {
  name: string;
  line: number;
  chains: Map<string, ChainDraft>;
}

class RulesetBuilder {
  readonly tables = new Map<string, TableDraft>();
  readonly diagnostics: Diagnostic[] = [];
  readonly familyRef: { family: Family | null } = { family: null };
  private readonly unknownReported = new Set<string>();

  constructor(readonly format: DumpFormat) {}

  table(name: string, line: number): TableDraft {
    let t = this.tables.get(name);
    if (!t) {
      t = { name, line, chains: new Map() };
      this.tables.set(name, t);
    }
    return t;
  }

  chain(table: TableDraft, name: string, line: number): ChainDraft {
    let c = table.chains.get(name);
    if (!c) {
      const builtin = isBuiltinChain(table.name, name);
      c = { name, table: table.name, builtin, policy: builtin ? 'ACCEPT' : null, line, rules: [] };
      table.chains.set(name, c);
    }
    return c;
  }

  /** Parses `-A CHAIN …` / `-I CHAIN [n] …` words into a rule of `table`. */
  addRule(
    table: TableDraft,
    tokens: ReturnType<typeof tokenize>,
    line: number,
    text: string,
    ruleText: string,
    counters?: Counters,
  ): void {
    const verb = tokens[0];
    const chainTok = tokens[1];
    if (!chainTok) throw syntaxError(`${verb.text} needs a chain name`, line, verb.column, text);
    let start = 2;
    let insertAt = -1;
    const isInsert = verb.text === '-I' || verb.text === '--insert';
    if (isInsert) {
      insertAt = 0;
      if (tokens[2] && /^\d+$/.test(tokens[2].text)) {
        insertAt = Number(tokens[2].text) - 1;
        start = 3;
      }
    }
    const body = parseRuleBody(tokens, start, line, text, this.familyRef);
    const chain = this.chain(table, chainTok.text, 0);
    const rule = {
      table: table.name,
      chain: chain.name,
      index: 0,
      line,
      text: ruleText.trim(),
      ...body,
      counters: counters ?? body.counters,
    } as Omit<Rule, 'index'> & { index: number };
    if (rule.counters === undefined) delete (rule as { counters?: Counters }).counters;
    if (isInsert) chain.rules.splice(Math.min(insertAt, chain.rules.length), 0, { rule });
    else chain.rules.push({ rule });
    this.noteUnknown(rule, line);
  }

  private noteUnknown(rule: Omit<Rule, 'index'>, line: number): void {
    for (const m of rule.matches) {
      if (!isKnownModule(m.module) && !this.unknownReported.has(`m:${m.module}`)) {
        this.unknownReported.add(`m:${m.module}`);
        this.diagnostics.push({
          severity: 'warning',
          code: 'UNKNOWN_MATCH',
          message: `match module '${m.module}' is kept but not modelled: a trace through such a rule says so`,
          line,
          text: rule.text,
        });
      }
    }
  }

  build(assumptions: string[] = []): Ruleset {
    const tables = new Map<string, Table>();
    const declared = new Set<string>();
    for (const t of this.tables.values()) for (const c of t.chains.values()) declared.add(`${t.name}\u0000${c.name}`);
    for (const t of this.tables.values()) {
      const chains = new Map<string, Chain>();
      for (const c of t.chains.values()) {
        const rules: Rule[] = c.rules.map((d, k) => {
          d.rule.index = k + 1;
          return d.rule as Rule;
        });
        const chain: Chain = { table: t.name, name: c.name, builtin: c.builtin, policy: c.policy, line: c.line, rules };
        if (c.counters) (chain as { counters?: Counters }).counters = c.counters;
        chains.set(c.name, chain);
        for (const r of rules) {
          const target = r.target?.name;
          if (!target || isKnownTarget(target) || declared.has(`${t.name}\u0000${target}`)) continue;
          if (/^[A-Z][A-Z0-9_-]*$/.test(target) && !target.includes('-') && !this.unknownReported.has(`j:${target}`)) {
            this.unknownReported.add(`j:${target}`);
            this.diagnostics.push({
              severity: 'warning',
              code: 'UNKNOWN_TARGET',
              message: `target '${target}' is kept but not modelled (or is a chain missing from the dump)`,
              line: r.line,
              text: r.text,
            });
          }
        }
      }
      tables.set(t.name, { name: t.name, line: t.line, chains });
    }
    return {
      format: this.format,
      family: this.familyRef.family ?? 'ipv4',
      tables,
      diagnostics: this.diagnostics,
      assumptions,
    };
  }
}

function splitLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Leading blanks (markdown indentation, tab-indented pastes) are skipped; columns still count them. */
function leadingBlanks(line: string): number {
  let i = 0;
  while (i < line.length && (line.charCodeAt(i) === 0x20 || line.charCodeAt(i) === 0x09)) i++;
  return i;
}

const COUNTERS_PREFIX = /^\[(\d+):(\d+)\]\s+/;
const CHAIN_DECL = /^:(\S+)\s+(\S+)(?:\s+\[(\d+):(\d+)\])?\s*$/;

/**
 * dump    := { line }
 * line    := blank | '#' text | '*' table | ':' chain policy [ '[' p ':' b ']' ] | [ '[' p ':' b ']' ] rule | 'COMMIT'
 * rule    := ( '-A' | '-I' ) chain options
 * Also accepts the verbs kube-proxy writes into iptables-restore payloads: `-N`, `-X`, `-F`.
 */
export function parseIptablesSave(text: string): Ruleset {
  const b = new RulesetBuilder('iptables-save');
  const lines = splitLines(text);
  let table: TableDraft | null = null;
  let sawContent = false;
  for (let n = 0; n < lines.length; n++) {
    const lineNo = n + 1;
    let raw = lines[n];
    if (raw.endsWith('\r')) raw = raw.slice(0, -1);
    const indent = leadingBlanks(raw);
    let body = indent ? raw.slice(indent) : raw;
    if (body.length === 0) continue;
    const first = body.charCodeAt(0);
    if (first === 0x23 /* # */) {
      if (/ip6tables-save/.test(body)) b.familyRef.family = b.familyRef.family ?? 'ipv6';
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
      if (!table) throw syntaxError('COMMIT outside a table', lineNo, indent + 1, raw);
      table = null;
      continue;
    }
    if (first === 0x3a /* : */) {
      const m = CHAIN_DECL.exec(body);
      if (!m) throw syntaxError('malformed chain declaration: expected ":CHAIN POLICY [packets:bytes]"', lineNo, indent + 1, raw);
      if (!table) throw ruleOutsideTable(lineNo, indent + 1, raw);
      const chain = b.chain(table, m[1], lineNo);
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
    let counters: Counters | undefined;
    let column = indent;
    const cm = COUNTERS_PREFIX.exec(body);
    if (cm) {
      counters = { packets: cm[1], bytes: cm[2] };
      column += cm[0].length;
      body = body.slice(cm[0].length);
    }
    const tokens = tokenize(body, lineNo, column, raw);
    const verb = tokens[0];
    const verbText = verb?.text;
    const fullLine = raw;
    if (verbText === '-A' || verbText === '--append' || verbText === '-I' || verbText === '--insert') {
      if (!table) throw ruleOutsideTable(lineNo, verb.column, fullLine);
      b.addRule(table, tokens, lineNo, fullLine, body, counters);
      continue;
    }
    if (verbText === '-N' || verbText === '--new-chain' || verbText === '-X' || verbText === '--delete-chain' || verbText === '-F' || verbText === '--flush') {
      if (!table) throw ruleOutsideTable(lineNo, verb.column, fullLine);
      const nameTok = tokens[1];
      if (!nameTok) throw syntaxError(`${verbText} needs a chain name`, lineNo, verb.column, fullLine);
      if (verbText === '-N' || verbText === '--new-chain') b.chain(table, nameTok.text, lineNo);
      else if (verbText === '-F' || verbText === '--flush') {
        const c = table.chains.get(nameTok.text);
        if (c) c.rules.length = 0;
      } else {
        const c = table.chains.get(nameTok.text);
        if (c && !c.builtin) table.chains.delete(nameTok.text);
      }
      continue;
    }
    throw syntaxError(
      `unexpected '${verbText ?? body}': expected '*table', ':CHAIN POLICY', '-A CHAIN …' or COMMIT`,
      lineNo, verb ? verb.column : column + 1, fullLine,
    );
  }
  if (!sawContent) throw new EngineError('DUMP_EMPTY', 'the dump has no rules, chains or tables');
  if (table) {
    b.diagnostics.push({ severity: 'warning', code: 'MISSING_COMMIT', message: `table '${table.name}' has no COMMIT at the end of the dump` });
  }
  return b.build();
}

function ruleOutsideTable(line: number, column: number, text: string): EngineError {
  return syntaxError(
    "rule outside a table: iptables-save output starts each table with a '*nat' (or '*filter', …) line; for `iptables -S` output use format iptables-S",
    line, column, text,
  );
}

const NAT_TARGETS = new Set(['DNAT', 'SNAT', 'MASQUERADE', 'REDIRECT']);
const FILTER_TARGETS = new Set(['REJECT']);
const NAT_CHAIN = /^(KUBE-(SVC|SVL|SEP|EXT|FW|XLB|MARK-MASQ|POSTROUTING|PORTALS-|NODEPORT-)|CNI-HOSTPORT-|DOCKER$|FLANNEL-POSTRTG|cali-nat|cali-fip)/;
const FILTER_CHAIN = /^(KUBE-(FORWARD|FIREWALL|EXTERNAL-SERVICES|PROXY-FIREWALL|PROXY-CANARY)|DOCKER-(ISOLATION|USER)|FLANNEL-FWD|cali-(fw|tw|from|to|pro|pri|wl))/;

/** Guesses the table of an `iptables -S` listing from its chains and targets. */
export function inferTable(lines: readonly string[]): { table: string; reason: string } {
  let nat = 0;
  let filter = 0;
  let mangle = 0;
  const reasons: string[] = [];
  for (const line of lines) {
    const m = /^\s*-([APN])\s+(\S+)(.*)$/.exec(line);
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
      if (/^KUBE-(SVC|SVL|SEP|EXT|FW|XLB)-/.test(j[1])) nat += 2;
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
export function parseIptablesS(text: string, options: { table?: string } = {}): Ruleset {
  const b = new RulesetBuilder('iptables-S');
  const lines = splitLines(text);
  let tableName = options.table;
  if (tableName && !TABLE_NAMES.includes(tableName)) {
    throw new EngineError('DUMP_SYNTAX', `unknown table '${tableName}'`);
  }
  if (!tableName) {
    const inferred = inferTable(lines);
    tableName = inferred.table;
    b.diagnostics.push({
      severity: 'info', code: 'TABLE_INFERRED',
      message: `iptables -S output names no table: read as the ${inferred.table} table (${inferred.reason})`,
    });
  }
  const table = b.table(tableName, 0);
  let sawContent = false;
  for (let n = 0; n < lines.length; n++) {
    const lineNo = n + 1;
    let raw = lines[n];
    if (raw.endsWith('\r')) raw = raw.slice(0, -1);
    const indent = leadingBlanks(raw);
    let body = indent ? raw.slice(indent) : raw;
    if (body.length === 0 || body.charCodeAt(0) === 0x23) continue;
    sawContent = true;
    let counters: Counters | undefined;
    let column = indent;
    const cm = COUNTERS_PREFIX.exec(body);
    if (cm) {
      counters = { packets: cm[1], bytes: cm[2] };
      column += cm[0].length;
      body = body.slice(cm[0].length);
    }
    const tokens = tokenize(body, lineNo, column, raw);
    const verb = tokens[0];
    switch (verb.text) {
      case '-P':
      case '--policy': {
        const chainTok = tokens[1];
        const policyTok = tokens[2];
        if (!chainTok || !policyTok) throw syntaxError('-P needs a chain and a policy', lineNo, verb.column, raw);
        if (!isBuiltinChain(tableName, chainTok.text)) {
          throw syntaxError(`-P: ${chainTok.text} is not a built-in chain of the ${tableName} table`, lineNo, chainTok.column, raw);
        }
        if (policyTok.text !== 'ACCEPT' && policyTok.text !== 'DROP') {
          throw syntaxError(`policy must be ACCEPT or DROP, not '${policyTok.text}'`, lineNo, policyTok.column, raw);
        }
        const chain = b.chain(table, chainTok.text, lineNo);
        chain.line = lineNo;
        chain.policy = policyTok.text;
        if (tokens[3]?.text === '-c' && tokens[4] && tokens[5]) chain.counters = { packets: tokens[4].text, bytes: tokens[5].text };
        continue;
      }
      case '-N':
      case '--new-chain': {
        const chainTok = tokens[1];
        if (!chainTok) throw syntaxError('-N needs a chain name', lineNo, verb.column, raw);
        const chain = b.chain(table, chainTok.text, lineNo);
        chain.line = lineNo;
        continue;
      }
      case '-A':
      case '--append':
      case '-I':
      case '--insert':
        b.addRule(table, tokens, lineNo, raw, body, counters);
        continue;
      default:
        throw syntaxError(
          `unexpected '${verb.text}': iptables -S lines start with -P, -N or -A`,
          lineNo, verb.column, raw,
        );
    }
  }
  if (!sawContent) throw new EngineError('DUMP_EMPTY', 'the dump has no rules or chains');
  return b.build();
}

export interface DetectedFormat {
  readonly format: DumpFormat | 'iptables-L' | 'nft' | 'ipvsadm' | 'log-prefixed' | 'unknown';
  readonly line: number;
}

/** Recognises a dump by its first meaningful lines. */
export function detectFormat(text: string): DetectedFormat {
  const lines = text.split('\n');
  let firstRuleLike: DetectedFormat | null = null;
  let looked = 0;
  for (let n = 0; n < lines.length && looked < 5000; n++) {
    const line = lines[n].replace(/\r$/, '').trim();
    if (line === '') continue;
    if (/^#\s*(Generated|Completed) by ip6?tables-save/.test(line)) return { format: 'iptables-save', line: n + 1 };
    if (line.startsWith('#')) continue;
    looked++;
    if (/^\*(raw|mangle|nat|filter|security)\s*$/.test(line)) return { format: 'iptables-save', line: n + 1 };
    if (/^:\S+\s+(ACCEPT|DROP|-)\s*(\[\d+:\d+\])?\s*$/.test(line)) return { format: 'iptables-save', line: n + 1 };
    if (line === 'COMMIT') return { format: 'iptables-save', line: n + 1 };
    if (/^\\?Chain \S+ \((policy \w+|\d+ references)/.test(line)) return { format: 'iptables-L', line: n + 1 };
    if (/^\S+\s+(all|tcp|udp|sctp|icmp|\d+)\s+(--|-f|!f)\s+\S+\s+\S+/.test(line)) return { format: 'iptables-L', line: n + 1 };
    if (/^(table (ip|ip6|inet|arp|bridge|netdev) \S+ \{|(chain|map|set) \S+ \{)/.test(line)) return { format: 'nft', line: n + 1 };
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
  'iptables-L': '`iptables -L` listings lose rule options and cannot be traced exactly; send `iptables-save` (or `iptables -S`) output instead',
  nft: 'nftables rulesets are not supported yet; send `iptables-save` output (from iptables-nft: `iptables-nft-save`)',
  ipvsadm: 'IPVS tables (ipvsadm) are not supported yet; send `iptables-save` output',
  'log-prefixed': 'the lines carry a system-log prefix (date, host, process); remove it and send the rules alone',
  unknown: 'this does not look like `iptables-save` or `iptables -S` output',
};

/** Parses a dump in the given format, or the detected one for 'auto'. */
export function parseDump(text: string, options: ParseOptions = {}): Ruleset {
  const requested = options.format ?? 'auto';
  let format: DumpFormat;
  if (requested === 'auto') {
    const detected = detectFormat(text);
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
  return format === 'iptables-save' ? parseIptablesSave(text) : parseIptablesS(text, { table: options.table });
}
