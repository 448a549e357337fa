/**
 * Builds an NftRuleset from the commands any of the three readers finds: tables, chains, sets and
 * rules are added, inserted, deleted and flushed as `nft -f` would, and rule indexes are assigned
 * only at the end, once every insert and delete is known. Jump targets and set references are
 * checked after the whole input is read (a command file may name a chain before adding it).
 */
import type { Diagnostic } from '../netfilter/ast.ts';
import type {
  NftBaseChainSpec, NftChain, NftExpr, NftFamily, NftPolicy, NftRule, NftRuleset, NftSet, NftSetElement, NftSetType, NftSourceForm,
  NftStatement, NftTable, NftTableKey,
} from './ast.ts';
import { tableKey } from './ast.ts';

/** Where a failing command stands in the input, for its error. */
export interface Where {
  readonly line: number;
  readonly column: number;
}

/** Raised by the builder for a command nft would refuse (deleting a chain that is not there). */
export class BuildError extends Error {
  readonly where: Where;

  constructor(message: string, where: Where) {
    super(message);
    this.where = where;
  }
}

export interface TableDraft {
  family: NftFamily;
  name: string;
  key: NftTableKey;
  line: number;
  handle?: number;
  comment?: string;
  flags: string[];
  chains: Map<string, ChainDraft>;
  sets: Map<string, SetDraft>;
}

export interface ChainDraft {
  name: string;
  table: NftTableKey;
  base: NftBaseChainSpec | null;
  /** `policy X;` as read; it may come before or after the `type … hook …` it belongs to. */
  policy?: NftPolicy;
  line: number;
  handle?: number;
  comment?: string;
  rules: RuleDraft[];
}

/** A rule before its index is known: the finished rule itself, its table, chain and index set by the builder. */
export interface RuleDraft {
  kind: 'rule';
  table: NftTableKey;
  chain: string;
  index: number;
  handle: number | undefined;
  line: number;
  text: string;
  comment: string | undefined;
  statements: NftStatement[];
}

/** A new rule draft; every field is there from the start so all rules share one shape. */
export function ruleDraft(line: number, text: string, statements: NftStatement[], comment?: string, handle?: number): RuleDraft {
  return { kind: 'rule', table: '', chain: '', index: 0, handle, line, text, comment, statements };
}

export interface SetDraft {
  isMap: boolean;
  name: string;
  table: NftTableKey;
  line: number;
  handle?: number;
  key: NftSetType;
  data?: NftSetType;
  flags: string[];
  timeoutMs?: number;
  gcIntervalMs?: number;
  size?: number;
  policy?: string;
  comment?: string;
  autoMerge?: boolean;
  elements: NftSetElement[];
}

/** Where `add rule`/`insert rule` puts a rule. */
export type RulePlace =
  | { readonly at: 'end' }
  | { readonly at: 'start' }
  | { readonly at: 'after-handle' | 'before-handle'; readonly handle: number }
  | { readonly at: 'after-index' | 'before-index'; readonly index: number };

export class NftBuilder {
  readonly tables = new Map<NftTableKey, TableDraft>();
  readonly diagnostics: Diagnostic[] = [];
  hasHandles = false;
  #lastTable: TableDraft | undefined;

  /** The table, made (with line 0 unless given) when not there yet. */
  table(family: NftFamily, name: string, line = 0): TableDraft {
    // Command files name the same table on every line: the last one found is checked first.
    const last = this.#lastTable;
    if (last !== undefined && last.name === name && last.family === family && this.tables.get(last.key) === last) {
      if (last.line === 0 && line > 0) last.line = line;
      return last;
    }
    const key = tableKey(family, name);
    let t = this.tables.get(key);
    if (!t) {
      t = { family, name, key, line, flags: [], chains: new Map(), sets: new Map() };
      this.tables.set(key, t);
    } else if (t.line === 0 && line > 0) {
      t.line = line;
    }
    this.#lastTable = t;
    return t;
  }

  existingTable(family: NftFamily, name: string, where: Where): TableDraft {
    const t = this.tables.get(tableKey(family, name));
    if (!t) throw new BuildError(`no table ${family} ${name} has been added`, where);
    return t;
  }

  /** The chain, made as a regular chain when not there yet. */
  chain(table: TableDraft, name: string, line = 0): ChainDraft {
    let c = table.chains.get(name);
    if (!c) {
      c = { name, table: table.key, base: null, line, rules: [] };
      table.chains.set(name, c);
    } else if (c.line === 0 && line > 0) {
      c.line = line;
    }
    return c;
  }

  existingChain(table: TableDraft, name: string, where: Where): ChainDraft {
    const c = table.chains.get(name);
    if (!c) throw new BuildError(`table ${table.key} has no chain '${name}'`, where);
    return c;
  }

  /** The set or map, made when not there yet with the given declaration. */
  set(table: TableDraft, name: string, isMap: boolean, line: number): SetDraft {
    let s = table.sets.get(name);
    if (!s) {
      s = { isMap, name, table: table.key, line, key: { text: '' }, flags: [], elements: [] };
      table.sets.set(name, s);
    }
    return s;
  }

  existingSet(table: TableDraft, name: string, where: Where): SetDraft {
    const s = table.sets.get(name);
    if (!s) throw new BuildError(`table ${table.key} has no set or map '${name}'`, where);
    return s;
  }

  addRule(chain: ChainDraft, rule: RuleDraft, place: RulePlace, where: Where): void {
    if (rule.handle !== undefined) this.hasHandles = true;
    rule.table = chain.table;
    rule.chain = chain.name;
    const rules = chain.rules;
    switch (place.at) {
      case 'end':
        rules.push(rule);
        return;
      case 'start':
        rules.unshift(rule);
        return;
      case 'after-handle':
      case 'before-handle': {
        const i = positionOf(chain, place.handle, where);
        rules.splice(place.at === 'after-handle' ? i + 1 : i, 0, rule);
        return;
      }
      default: {
        // nft's `index N` counts rules from 0.
        if (place.index < 0 || place.index >= rules.length) {
          throw new BuildError(`chain '${chain.name}' has no rule at index ${place.index}`, where);
        }
        rules.splice(place.at === 'after-index' ? place.index + 1 : place.index, 0, rule);
      }
    }
  }

  deleteRule(chain: ChainDraft, handle: number, where: Where): void {
    chain.rules.splice(positionOf(chain, handle, where), 1);
  }

  replaceRule(chain: ChainDraft, handle: number, rule: RuleDraft, where: Where): void {
    rule.table = chain.table;
    rule.chain = chain.name;
    rule.handle = handle;
    chain.rules[positionOf(chain, handle, where)] = rule;
  }

  note(severity: Diagnostic['severity'], code: string, message: string, line?: number, column?: number, text?: string): void {
    this.diagnostics.push({ severity, code, message, line, column, text });
  }

  /** The finished ruleset: indexes assigned, references checked. */
  build(form: NftSourceForm): NftRuleset {
    const tables = new Map<NftTableKey, NftTable>();
    for (const t of this.tables.values()) {
      const chains = new Map<string, NftChain>();
      for (const c of t.chains.values()) {
        const rules: NftRule[] = c.rules;
        for (let i = 0; i < c.rules.length; i++) c.rules[i].index = i + 1;
        const base = c.base && c.policy && c.policy !== c.base.policy ? { ...c.base, policy: c.policy } : c.base;
        chains.set(c.name, {
          kind: 'chain', table: t.key, name: c.name, base, line: c.line, handle: c.handle, comment: c.comment, rules,
        });
      }
      const sets = new Map<string, NftSet>();
      for (const s of t.sets.values()) sets.set(s.name, { kind: 'set', ...s });
      tables.set(t.key, {
        kind: 'table', family: t.family, name: t.name, key: t.key, line: t.line, handle: t.handle, comment: t.comment,
        flags: t.flags, chains, sets,
      });
      this.#checkReferences(t, chains, sets);
    }
    return { form, tables, hasHandles: this.hasHandles, diagnostics: this.diagnostics };
  }

  /** A jump to a chain or a lookup in a set the table does not have: nft would refuse to load it. */
  #checkReferences(t: TableDraft, chains: ReadonlyMap<string, NftChain>, sets: ReadonlyMap<string, NftSet>): void {
    const missingChain = (name: string, line: number, from: string): void => {
      this.note('warning', 'NFT_UNKNOWN_CHAIN', `${from} names chain '${name}', which table ${t.key} does not have`, line || undefined);
    };
    const missingSet = (name: string, line: number): void => {
      if (!sets.has(name)) this.note('warning', 'NFT_UNKNOWN_SET', `@${name}: table ${t.key} has no such set or map`, line || undefined);
    };
    let rule: NftRule | undefined;
    const visit = (e: NftExpr | NftStatement | { kind: 'set-ref'; name: string }): void => {
      if (e.kind === 'verdict' && e.target !== undefined && !chains.has(e.target)) missingChain(e.target, rule!.line, `rule ${rule!.index} of chain '${rule!.chain}'`);
      else if (e.kind === 'set-ref') missingSet(e.name, rule!.line);
    };
    for (const c of chains.values()) {
      for (const r of c.rules) {
        rule = r;
        for (const s of r.statements) visitStatement(s, visit);
      }
    }
    for (const s of sets.values()) {
      for (const el of s.elements) {
        if (el.value?.kind === 'verdict' && el.value.target !== undefined && !chains.has(el.value.target)) missingChain(el.value.target, el.line, `an element of @${s.name}`);
      }
    }
  }
}

/** Where the rule with `handle` stands in its chain (0-based). */
function positionOf(chain: ChainDraft, handle: number, where: Where): number {
  const i = chain.rules.findIndex((r) => r.handle === handle);
  if (i < 0) throw new BuildError(`chain '${chain.name}' has no rule with handle ${handle}`, where);
  return i;
}

/** Calls `visit` on the statement (when it is a verdict, a set update's set) and on every expression in it. */
export function visitStatement(s: NftStatement, visit: (e: NftExpr | NftStatement | { kind: 'set-ref'; name: string }) => void): void {
  switch (s.kind) {
    case 'match':
      visitExpr(s.left, visit);
      visitExpr(s.right, visit);
      return;
    case 'verdict':
      visit(s);
      return;
    case 'vmap':
      visitExpr(s.key, visit);
      visitExpr(s.map, visit);
      return;
    case 'mangle':
      visitExpr(s.target, visit);
      visitExpr(s.value, visit);
      return;
    case 'nat':
      if (s.address) visitExpr(s.address, visit);
      if (s.port) visitExpr(s.port, visit);
      return;
    case 'set-update':
      visit({ kind: 'set-ref', name: s.set });
      visitExpr(s.key, visit);
      return;
    default:
      visit(s);
  }
}

function visitExpr(e: NftExpr, visit: (e: NftExpr) => void): void {
  visit(e);
  switch (e.kind) {
    case 'concat':
      for (const p of e.parts) visitExpr(p, visit);
      return;
    case 'binary':
      visitExpr(e.left, visit);
      visitExpr(e.right, visit);
      return;
    case 'range':
      visitExpr(e.low, visit);
      visitExpr(e.high, visit);
      return;
    case 'anonymous-set':
      for (const el of e.elements) {
        visitExpr(el.key, visit);
        if (el.value) visitExpr(el.value, visit);
      }
      return;
    case 'map':
      visitExpr(e.key, visit);
      visitExpr(e.map, visit);
      return;
    case 'list':
      for (const p of e.items) visitExpr(p, visit);
      return;
    default:
  }
}
