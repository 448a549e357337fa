/**
 * Turns an nftables ruleset (ast.ts) into what the walker runs: each rule as the ordered list of its
 * expressions, each a closure over the packet state that answers go on / stop / cannot decide /
 * verdict (state.ts), and sets and maps as indexes (exact keys in a hash map, intervals in a
 * list). Chains, rules and sets are compiled the first time a trace reaches them, so a trace
 * through a 10,000-Service ruleset compiles the few chains it passes.
 */
import type {
  NftAnonymousSet, NftChain, NftExpr, NftMatch, NftNatStatement, NftRejectStatement, NftRule, NftRuleset, NftSet,
  NftSetElement, NftSetReference, NftStatement, NftTable, NftVerdictExpr,
} from './ast.ts';
import { parseAddr } from '../trace/packet.ts';
import type { Addr } from '../trace/packet.ts';
import type { BaseChainRegistration, NftHook } from './hooks.ts';
import type { ChainTarget, CompiledNftChain, CompiledNftRule, Flow, Item, NftVerdict, RuleContext, RuleRef } from './state.ts';
import type { DataType, Scalar, Value } from './trace-values.ts';
import { CT_STATE, formatValue, prefixRange, protocolNumber, readConstant, RTN_LOCAL, RTN_UNICAST } from './trace-values.ts';
import type { NftProgram } from './walk.ts';
import type { TakenElement } from '../trace/step-rule.ts';
import { verdictText } from './walk.ts';

/** What an expression gives: a value, `null` when the packet has no such field (the match fails), or why it cannot be known. */
type Got = Value | null | { readonly unknown: string };
type Getter = (ctx: RuleContext) => Got;

interface Typed {
  readonly get: Getter;
  /** The datatype of each part (one for a scalar). */
  readonly types: readonly DataType[];
}

function isUnknown(g: Got): g is { readonly unknown: string } {
  return g !== null && typeof g === 'object' && !Array.isArray(g);
}

const unknown = (why: string): Typed => ({ get: () => ({ unknown: why }), types: ['unknown'] });

const IP_HOOKS: ReadonlySet<string> = new Set<NftHook>(['prerouting', 'input', 'forward', 'output', 'postrouting']);

/** TCP flag bits; the first packet of a connection is a SYN. */
const TCP_FLAGS: Readonly<Record<string, number>> = { fin: 1, syn: 2, rst: 4, psh: 8, ack: 16, urg: 32, ecn: 64, cwr: 128 };
/** Transport protocols whose header has ports at the place `th dport` reads. */
const PORTED = new Set(['tcp', 'udp', 'sctp']);

// ---------------------------------------------------------------------------------------------
// Expressions the packet answers

function payload(protocol: string, field: string): Typed {
  if (protocol === 'ip' || protocol === 'ip6') {
    const family = protocol === 'ip' ? 'ipv4' : 'ipv6';
    const type: DataType = protocol === 'ip' ? 'ipv4_addr' : 'ipv6_addr';
    const addr = (a: Addr): bigint => (a.family === 'ipv4' ? BigInt(a.v4) : a.v6);
    // An `ip …` match on an IPv6 packet (in an inet table) finds no IPv4 header and fails.
    if (field === 'saddr') return { get: ({ s }) => (s.src.family === family ? addr(s.src) : null), types: [type] };
    if (field === 'daddr') return { get: ({ s }) => (s.dst.family === family ? addr(s.dst) : null), types: [type] };
    if (field === 'protocol' || field === 'nexthdr') {
      return { get: ({ s }) => (s.dst.family === family ? protocolNumber(s.proto) : null), types: ['inet_proto'] };
    }
    return unknown(`${protocol} ${field}`);
  }
  if (PORTED.has(protocol) || protocol === 'th') {
    // `tcp dport` carries an implicit `meta l4proto tcp`; `th dport` reads any ported transport.
    const applies = (p: string) => (protocol === 'th' ? PORTED.has(p) : p === protocol);
    if (field === 'dport') return { get: ({ s }) => (applies(s.proto) ? BigInt(s.dport) : null), types: ['inet_service'] };
    if (field === 'sport') {
      return {
        get: ({ s }) => (!applies(s.proto) ? null : s.sport === null ? { unknown: 'the source port (give packet.sourcePort)' } : BigInt(s.sport)),
        types: ['inet_service'],
      };
    }
    // The first packet of a TCP connection is a SYN: SYN set, ACK, RST and FIN clear.
    if (protocol === 'tcp' && field === 'flags') return { get: ({ s }) => (s.proto === 'tcp' ? BigInt(TCP_FLAGS.syn) : null), types: ['integer'] };
  }
  return unknown(`${protocol} ${field}`);
}

function meta(key: string): Typed {
  switch (key) {
    case 'l4proto':
      return { get: ({ s }) => protocolNumber(s.proto), types: ['inet_proto'] };
    case 'nfproto':
      return { get: ({ s }) => (s.dst.family === 'ipv4' ? 2n : 10n), types: ['nf_proto'] };
    case 'protocol':
      return { get: ({ s }) => (s.dst.family === 'ipv4' ? 0x0800n : 0x86ddn), types: ['ether_type'] };
    case 'mark':
      return { get: ({ s }) => BigInt(s.mark), types: ['mark'] };
    // '' on hooks where the packet has no such interface (set by the walker), null when not told.
    case 'iifname':
      return { get: ({ s }) => s.iif ?? { unknown: 'the input interface (give packet.inInterface)' }, types: ['ifname'] };
    case 'oifname':
      return { get: ({ s }) => s.oif ?? { unknown: 'the output interface, known only after routing (give packet.outInterface)' }, types: ['ifname'] };
    case 'nftrace':
      return { get: () => 0n, types: ['integer'] };
    default:
      return unknown(`meta ${key}`);
  }
}

function ct(key: string, direction: string | undefined): Typed {
  if (direction) return unknown(`ct ${direction} ${key}`);
  // The traced packet is the first of its connection: state new once conntrack has seen it.
  if (key === 'state') return { get: ({ s }) => BigInt(CT_STATE[s.ctState]), types: ['ct_state'] };
  if (key === 'mark') return { get: ({ s }) => BigInt(s.ctmark), types: ['mark'] };
  return unknown(`ct ${key}`);
}

/**
 * `fib saddr type` / `fib daddr type`: the route type of the address, `local` for the node's own
 * addresses and 127.0.0.0/8 (::1), unicast otherwise (broadcast and multicast are not modelled).
 */
function fib(flags: readonly string[], result: string): Typed {
  if (result !== 'type' || flags.length !== 1 || (flags[0] !== 'saddr' && flags[0] !== 'daddr')) {
    return unknown(`fib ${flags.join(' . ')} ${result}`);
  }
  const which = flags[0];
  return { get: ({ s, env }) => (env.isLocal(which === 'saddr' ? s.src : s.dst) ? RTN_LOCAL : RTN_UNICAST), types: ['fib_addrtype'] };
}

const MASK32 = 0xffffffffn;

function compileExpr(e: NftExpr, sets: SetLookup): Typed {
  switch (e.kind) {
    case 'payload':
      return payload(e.protocol, e.field);
    case 'meta':
      return meta(e.key);
    case 'ct':
      return ct(e.key, e.direction);
    case 'fib':
      return fib(e.flags, e.result);
    case 'numgen':
      if (e.mode !== 'random') return unknown('numgen inc, a counter whose value the dump does not show');
      // One random draw per evaluation: value k has count(k)/2^32 (numgen.ts), plus the offset.
      return { get: (ctx) => BigInt(ctx.draw(e.modulus) + e.offset), types: ['integer'] };
    case 'concat': {
      const parts = e.parts.map((p) => compileExpr(p, sets));
      return {
        get: (ctx) => {
          const out = new Array<Scalar>(parts.length);
          for (let i = 0; i < parts.length; i++) {
            const v = parts[i].get(ctx);
            if (v === null || isUnknown(v)) return v;
            out[i] = v as Scalar;
          }
          return out;
        },
        types: parts.map((p) => p.types[0]),
      };
    }
    case 'binary': {
      const left = compileExpr(e.left, sets);
      const right = constantOf(e.right, left.types[0]);
      if (typeof right !== 'bigint') return unknown(`the expression ${e.op} on ${describeExpr(e.left)}`);
      const op = e.op;
      return {
        get: (ctx) => {
          const v = left.get(ctx);
          if (typeof v !== 'bigint') return v;
          switch (op) {
            case '&': return v & right;
            case '|': return v | right;
            case '^': return v ^ right;
            case '<<': return (v << right) & MASK32;
            case '>>': return v >> right;
          }
        },
        types: left.types,
      };
    }
    case 'map': {
      const key = compileExpr(e.key, sets);
      const map = sets.matcher(e.map, key.types);
      if (!map) return unknown(`a map svcpath cannot read (${describeExpr(e)})`);
      return {
        get: (ctx) => {
          const v = key.get(ctx);
          if (v === null || isUnknown(v)) return v;
          const el = map.lookup(v, ctx);
          // No element for the key: the lookup breaks the rule, as a failed match does.
          return el?.data ?? null;
        },
        types: map.dataTypes,
      };
    }
    default:
      return unknown(describeExpr(e));
  }
}

function describeExpr(e: NftExpr): string {
  switch (e.kind) {
    case 'unmodelled': return `"${e.text}"`;
    case 'payload': return `${e.protocol} ${e.field}`;
    case 'meta': return `meta ${e.key}`;
    case 'ct': return `ct ${e.key}`;
    case 'literal': return e.text;
    default: return e.kind;
  }
}

// ---------------------------------------------------------------------------------------------
// Constants, sets and maps

/** One part of a set key: an exact value, an inclusive interval, or an interface-name wildcard (`eth*`). */
type Part = { readonly low: Scalar; readonly high: Scalar } | { readonly prefix: string };

function constantOf(e: NftExpr, type: DataType): Scalar | null {
  return e.kind === 'literal' ? readConstant(e.text, type) : null;
}

function partOf(e: NftExpr, type: DataType): Part | null {
  switch (e.kind) {
    case 'literal': {
      // Interface names in sets may end in `*`: every name with that prefix.
      if (type === 'ifname' && e.text.endsWith('*')) return { prefix: e.text.slice(0, -1) };
      const v = readConstant(e.text, type);
      return v === null ? null : { low: v, high: v };
    }
    case 'prefix': {
      const r = prefixRange(e.address, e.length);
      return r ? { low: r[0], high: r[1] } : null;
    }
    case 'range': {
      const low = constantOf(e.low, type);
      const high = constantOf(e.high, type);
      return low === null || high === null ? null : { low, high };
    }
    default:
      return null;
  }
}

function partMatches(p: Part, v: Scalar): boolean {
  if ('prefix' in p) return typeof v === 'string' && v.startsWith(p.prefix);
  return v >= p.low && v <= p.high;
}

interface Element {
  readonly parts: readonly Part[];
  /** A map element's data: a verdict, or a value (dnat to … map). */
  readonly verdict?: NftVerdict;
  readonly data?: Value;
  readonly comment?: string;
}

function valueKey(v: Value): string {
  if (!Array.isArray(v)) return String(v);
  let key = String(v[0]);
  for (let i = 1; i < v.length; i++) key += `|${v[i]}`;
  return key;
}

/**
 * One part of an exact key as a Map key. Map compares numbers by value without building a string,
 * so the integers that fit a double (addresses of IPv4, ports, protocols, marks) are numbers;
 * IPv6 addresses stay bigints and names strings (a Map tells a number from a bigint or string).
 */
function keyPart(x: Scalar): number | Scalar {
  return typeof x === 'bigint' && x <= MAX_EXACT && x >= -MAX_EXACT ? Number(x) : x;
}
const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

/** Exact keys of one length, one Map level per part of a concatenation. */
type KeyTrie = Map<number | Scalar, Element | KeyTrie>;

/** A set's elements: exact keys hashed, intervals and wildcards in a list (the kernel keeps them disjoint). */
class Matcher {
  private readonly exact: KeyTrie = new Map();
  /** How many parts the exact keys have (every element of a set has the set's key length). */
  private arity = 0;
  private readonly ranged: Element[] = [];

  constructor(
    readonly name: string,
    readonly dataTypes: readonly DataType[],
    /** Dynamic sets are written by `add`/`update @set` statements during the trace too. */
    readonly dynamic: boolean,
  ) {}

  add(el: Element): void {
    const exact = el.parts.every((p) => !('prefix' in p) && p.low === p.high);
    if (!exact) {
      this.ranged.push(el);
      return;
    }
    const n = el.parts.length;
    if (this.exact.size === 0) this.arity = n;
    else if (n !== this.arity) return;
    let level = this.exact;
    for (let i = 0; i < n - 1; i++) {
      const k = keyPart((el.parts[i] as { low: Scalar }).low);
      let next = level.get(k) as KeyTrie | undefined;
      if (!next) level.set(k, (next = new Map()));
      level = next;
    }
    // The first of two equal keys is the one kept.
    const last = keyPart((el.parts[n - 1] as { low: Scalar }).low);
    if (!level.has(last)) level.set(last, el);
  }

  private exactHit(v: Value): Element | undefined {
    if (!Array.isArray(v)) return this.arity === 1 ? (this.exact.get(keyPart(v as Scalar)) as Element | undefined) : undefined;
    if (v.length !== this.arity) return undefined;
    let level = this.exact;
    for (let i = 0; i < v.length - 1; i++) {
      const next = level.get(keyPart(v[i])) as KeyTrie | undefined;
      if (!next) return undefined;
      level = next;
    }
    return level.get(keyPart(v[v.length - 1])) as Element | undefined;
  }

  lookup(v: Value, ctx: RuleContext): Element | null {
    const hit = this.exactHit(v);
    if (hit) return hit;
    if (this.ranged.length > 0) {
      const parts = Array.isArray(v) ? v : [v as Scalar];
      for (const el of this.ranged) {
        if (el.parts.length === parts.length && el.parts.every((p, i) => partMatches(p, parts[i]))) return el;
      }
    }
    if (this.dynamic && ctx.s.added.has(`${this.name}|${valueKey(v)}`)) return { parts: [] };
    return null;
  }
}

function verdictOf(e: NftVerdictExpr | NftVerdictStatementLike, sets: SetLookup): NftVerdict | null {
  switch (e.verdict) {
    case 'accept':
    case 'drop':
    case 'return':
    case 'continue':
      return { kind: e.verdict };
    case 'jump':
    case 'goto':
      return e.target ? { kind: e.verdict, chain: e.target, target: sets.jumpTarget(e.target) } : null;
    default:
      return null;
  }
}

interface NftVerdictStatementLike {
  readonly verdict: NftVerdictExpr['verdict'];
  readonly target?: string;
}

/** Datatypes of a named set's key or data, from `type …` or `typeof …`. */
function declaredTypes(spec: NftSet['key'] | undefined, sets: SetLookup): DataType[] {
  if (!spec) return [];
  if (spec.types) return spec.types.map((t) => (KNOWN_TYPES.has(t) ? (t as DataType) : 'unknown'));
  return (spec.typeof ?? []).map((e) => compileExpr(e, sets).types[0]);
}

const KNOWN_TYPES: ReadonlySet<string> = new Set([
  'ipv4_addr', 'ipv6_addr', 'inet_proto', 'inet_service', 'mark', 'ifname', 'ct_state', 'fib_addrtype', 'nf_proto', 'ether_type', 'integer', 'verdict',
]);

function elementOf(el: NftSetElement, keyTypes: readonly DataType[], dataTypes: readonly DataType[], sets: SetLookup): Element | null {
  const keyParts = el.key.kind === 'concat' ? el.key.parts : [el.key];
  if (keyParts.length !== keyTypes.length) return null;
  const parts: Part[] = [];
  for (let i = 0; i < keyParts.length; i++) {
    const p = partOf(keyParts[i], keyTypes[i]);
    if (!p) return null;
    parts.push(p);
  }
  const out: { parts: Part[]; verdict?: NftVerdict; data?: Value; comment?: string } = { parts, ...(el.comment ? { comment: el.comment } : {}) };
  if (el.value) {
    if (el.value.kind === 'verdict') {
      const v = verdictOf(el.value, sets);
      if (!v) return null;
      out.verdict = v;
    } else {
      const dataParts = el.value.kind === 'concat' ? el.value.parts : [el.value];
      const values: Scalar[] = [];
      for (let i = 0; i < dataParts.length; i++) {
        const c = constantOf(dataParts[i], dataTypes[i] ?? 'unknown');
        if (c === null) return null;
        values.push(c);
      }
      out.data = values.length === 1 ? values[0] : values;
    }
  }
  return out;
}

/**
 * A chain a jump or goto names, looked up the first time a trace takes it and kept, so that a
 * trace's jumps look up no names.
 */
class JumpTarget implements ChainTarget {
  private found: CompiledNftChain | null | undefined;

  constructor(
    private readonly name: string,
    private readonly find: (name: string) => CompiledNftChain | null,
  ) {}

  chain(): CompiledNftChain | null {
    if (this.found === undefined) this.found = this.find(this.name);
    return this.found;
  }
}

/** Finds and compiles what a table's rules name: its sets, each once, and the chains they jump to. */
class SetLookup {
  private readonly named = new Map<string, Matcher | null>();

  constructor(
    private readonly table: NftTable,
    /** The table's chain of a name, compiled on first use. */
    private readonly chainNamed: (name: string) => CompiledNftChain | null,
  ) {}

  jumpTarget(name: string): ChainTarget {
    return new JumpTarget(name, this.chainNamed);
  }

  /** A named set (`@name`) or an anonymous one, read with the key's datatypes; null when it cannot be read. */
  matcher(ref: NftSetReference | NftAnonymousSet, keyTypes: readonly DataType[]): Matcher | null {
    if (ref.kind === 'set-ref') {
      if (this.named.has(ref.name)) return this.named.get(ref.name)!;
      const set = this.table.sets.get(ref.name);
      let m: Matcher | null = null;
      if (set) {
        const declared = declaredTypes(set.key, this);
        const types = declared.length === keyTypes.length && declared.every((t) => t !== 'unknown') ? declared : keyTypes;
        const dataTypes = declaredTypes(set.data, this);
        m = new Matcher(set.name, dataTypes, set.flags.includes('dynamic') || set.flags.includes('timeout'));
        for (const el of set.elements) {
          const e = elementOf(el, types, dataTypes, this);
          if (e) m.add(e);
        }
      }
      this.named.set(ref.name, m);
      return m;
    }
    const m = new Matcher('', inferDataTypes(ref), false);
    for (const el of ref.elements) {
      const e = elementOf(el, keyTypes, m.dataTypes, this);
      if (e) m.add(e);
    }
    return m;
  }
}

/** An anonymous map's data types, from what its first element holds (addresses and ports for dnat maps). */
function inferDataTypes(set: NftAnonymousSet): DataType[] {
  const v = set.elements[0]?.value;
  if (!v || v.kind === 'verdict') return ['verdict'];
  const parts = v.kind === 'concat' ? v.parts : [v];
  return parts.map((p) => {
    const text = p.kind === 'literal' ? p.text : '';
    if (readConstant(text, 'ipv4_addr') !== null) return 'ipv4_addr';
    if (text.includes(':') && readConstant(text, 'ipv6_addr') !== null) return 'ipv6_addr';
    return 'inet_service';
  });
}

// ---------------------------------------------------------------------------------------------
// Statements

function matchItem(m: NftMatch, sets: SetLookup): Item {
  const left = compileExpr(m.left, sets);
  const type = left.types[0];
  const r = m.right;
  let test: ((v: Value, ctx: RuleContext) => boolean) | null = null;
  if (r.kind === 'set-ref' || r.kind === 'anonymous-set') {
    const set = sets.matcher(r, left.types);
    if (set) test = (v, ctx) => set.lookup(v, ctx) !== null;
  } else if (m.op === 'in' || r.kind === 'list') {
    // A flag test: true when any of the listed bits is set (`ct state established,related`).
    const items = r.kind === 'list' ? r.items : [r];
    let bits = 0n;
    let ok = true;
    for (const it of items) {
      const c = constantOf(it, type);
      if (typeof c !== 'bigint') ok = false;
      else bits |= c;
    }
    if (ok) test = (v) => typeof v === 'bigint' && (v & bits) !== 0n;
  } else if (r.kind === 'concat') {
    const parts = r.parts.map((p, i) => partOf(p, left.types[i] ?? 'unknown'));
    if (parts.every((p) => p !== null)) {
      test = (v) => Array.isArray(v) && v.length === parts.length && parts.every((p, i) => partMatches(p, v[i]));
    }
  } else {
    const part = partOf(r, type);
    if (part) {
      const ordered = m.op === '<' || m.op === '>' || m.op === '<=' || m.op === '>=';
      if (!ordered) test = (v) => !Array.isArray(v) && partMatches(part, v as Scalar);
      else if (!('prefix' in part)) {
        const c = part.low;
        test = (v) => {
          const x = v as Scalar;
          return m.op === '<' ? x < c : m.op === '>' ? x > c : m.op === '<=' ? x <= c : x >= c;
        };
        return evalMatch(left, test, false);
      }
    }
  }
  if (!test) return () => ({ unknown: `"${describeExpr(m.left)} ${m.op} …", a comparison svcpath cannot read` });
  return evalMatch(left, test, m.op === '!=');
}

function evalMatch(left: Typed, test: (v: Value, ctx: RuleContext) => boolean, negated: boolean): Item {
  return (ctx) => {
    const v = left.get(ctx);
    // A field the packet does not have fails the match, negated or not (the payload load breaks).
    if (v === null) return 'break';
    if (isUnknown(v)) return v;
    return test(v, ctx) !== negated ? 'next' : 'break';
  };
}

function vmapItem(key: Typed, set: Matcher): Item {
  // What taking an element does, kept for the elements whose key is exact: every packet that takes
  // one has that key, so the step reads the same each time.
  const taken = new Map<Element, { readonly text: string; readonly flow: Flow; readonly element: TakenElement }>();
  return (ctx) => {
    const v = key.get(ctx);
    if (v === null) return 'break';
    if (isUnknown(v)) return v;
    const el = set.lookup(v, ctx);
    // No element for the key: the lookup breaks the rule.
    if (!el?.verdict) return 'break';
    let t = taken.get(el);
    if (!t) {
      const comment = el.comment ? ` (comment "${el.comment}")` : '';
      const element: TakenElement = {
        verdict: el.verdict.kind,
        ...(el.verdict.kind === 'jump' || el.verdict.kind === 'goto' ? { chain: el.verdict.chain } : {}),
        ...(el.comment !== undefined ? { comment: el.comment } : {}),
      };
      t = { text: `vmap: ${formatValue(v, key.types)} → ${verdictText(el.verdict)}${comment}`, flow: { verdict: el.verdict, quiet: true }, element };
      if (el.parts.every((p) => !('prefix' in p) && p.low === p.high)) taken.set(el, t);
    }
    ctx.act(t.text);
    ctx.took(t.element);
    return t.flow;
  };
}

function addrOf(v: Scalar, family: 'ipv4' | 'ipv6'): Addr | null {
  if (typeof v !== 'bigint') return null;
  return parseAddr(formatValue(v, [family === 'ipv4' ? 'ipv4_addr' : 'ipv6_addr']), 'address');
}

/** A NAT statement ends the rule with accept once the binding is made. */
const NAT_ACCEPT: Flow = { verdict: { kind: 'accept' }, quiet: true };

function natItem(st: NftNatStatement, sets: SetLookup, tableFamily: string): Item {
  const family = (ctxFamily: 'ipv4' | 'ipv6') => (st.family === 'ip' ? 'ipv4' : st.family === 'ip6' ? 'ipv6' : tableFamily === 'ip6' ? 'ipv6' : tableFamily === 'ip' ? 'ipv4' : ctxFamily);
  const addrType = (f: 'ipv4' | 'ipv6'): DataType => (f === 'ipv4' ? 'ipv4_addr' : 'ipv6_addr');
  const port = st.port ? (st.port.kind === 'range' ? constantOf(st.port.low, 'inet_service') : constantOf(st.port, 'inet_service')) : null;
  const portRange = st.port?.kind === 'range';
  const address = st.address;
  const mapped = address?.kind === 'map' ? compileExpr(address, sets) : null;
  // A constant address, read once for each IP family (a rule of an inet table serves both).
  const constant: { ipv4?: Addr | null; ipv6?: Addr | null } = {};
  const constantAddress = (f: 'ipv4' | 'ipv6'): Addr | null => {
    const known = constant[f];
    if (known !== undefined) return known;
    let raw: Scalar | null = null;
    if (address?.kind === 'literal') raw = readConstant(address.text, addrType(f));
    else if (address?.kind === 'range' || address?.kind === 'prefix') {
      const p = partOf(address, addrType(f));
      if (p && !('prefix' in p)) raw = p.low;
    }
    return (constant[f] = raw === null ? null : addrOf(raw, f));
  };
  return (ctx) => {
    const { s } = ctx;
    const f = family(s.dst.family);
    let ip: Addr | null = null;
    let dataPort: bigint | null = null;
    if (address) {
      if (mapped) {
        let got = mapped.get(ctx);
        if (got === null) return 'break';
        if (isUnknown(got)) return got;
        if (Array.isArray(got)) {
          dataPort = typeof got[1] === 'bigint' ? got[1] : null;
          got = got[0];
        }
        ip = addrOf(got as Scalar, f);
      } else {
        if (address.kind === 'range' || address.kind === 'prefix') {
          ctx.note(`${st.type} to an address range: the kernel picks one address of it (the trace shows the first)`);
        }
        ip = constantAddress(f);
      }
      if (!ip) return { unknown: `the address of "${st.type}", which svcpath cannot read` };
    }
    const toPort = dataPort ?? port;
    if (portRange) ctx.note(`${st.type} to a port range: the kernel picks one port of it (the trace shows the first)`);
    switch (st.type) {
      case 'dnat':
        if (ip) s.dst = ip;
        if (toPort !== null) s.dport = Number(toPort);
        ctx.act(`dnat to ${s.dst.family === 'ipv6' ? `[${s.dst.text}]` : s.dst.text}:${s.dport}`);
        ctx.nat('dnat');
        break;
      case 'redirect': {
        // REDIRECT sends to the node itself: the loopback address for a packet the node made, else
        // the address of the interface it came in on (the node's first address here).
        const local = ctx.hook === 'output' ? parseAddr(s.dst.family === 'ipv6' ? '::1' : '127.0.0.1', 'address') : ctx.env.primary;
        if (local) s.dst = local;
        if (toPort !== null) s.dport = Number(toPort);
        ctx.act(`redirect to ${s.dst.text}:${s.dport}`);
        ctx.nat('redirect');
        break;
      }
      case 'snat':
        ctx.act(`snat to ${ip?.text ?? ''}${toPort !== null ? `:${toPort}` : ''}`);
        ctx.nat('snat', { ip: ip?.text ?? null, port: toPort === null ? null : Number(toPort) });
        break;
      case 'masquerade':
        ctx.act(st.flags.length > 0 ? `masquerade ${st.flags.join(',')}` : 'masquerade');
        ctx.nat('masquerade');
        break;
    }
    return NAT_ACCEPT;
  };
}

function rejectWith(st: NftRejectStatement): string {
  if (st.with === 'tcp reset') return 'tcp-reset';
  if (st.with) return `${st.with} ${st.code ?? 'port-unreachable'}`;
  return 'icmp-port-unreachable';
}

function statementItem(st: NftStatement, sets: SetLookup, table: NftTable): Item {
  switch (st.kind) {
    case 'match':
      return matchItem(st, sets);
    case 'verdict': {
      const v = verdictOf(st, sets);
      if (!v) return () => ({ unknown: `the verdict "${st.verdict}", which hands the packet to a program outside the kernel` });
      const flow: Flow = { verdict: v };
      return () => flow;
    }
    case 'vmap': {
      const key = compileExpr(st.key, sets);
      const set = sets.matcher(st.map, key.types);
      if (!set) return () => ({ unknown: `verdict map ${st.map.kind === 'set-ref' ? `@${st.map.name}` : ''}, which is not in the dump` });
      return vmapItem(key, set);
    }
    case 'counter':
      return () => 'next';
    case 'log':
      return (ctx) => {
        ctx.act(`log${st.prefix ? ` prefix "${st.prefix}"` : ''}`);
        return 'next';
      };
    case 'limit':
      // The rate's token bucket is kernel state the dump does not show; a first packet is taken to find it full.
      return (ctx) => {
        ctx.note(`limit rate ${st.over ? 'over ' : ''}${st.rate}/${st.per}: assumed within the rate for this packet`);
        return st.over ? 'break' : 'next';
      };
    case 'notrack':
      // notrack only acts before conntrack has seen the packet (priority −300 in raw); after that the connection is tracked.
      return (ctx) => {
        if (ctx.s.ctState === 'invalid') {
          ctx.s.ctState = 'untracked';
          ctx.note('notrack: the connection is not tracked, so no nat chain runs for it');
        }
        ctx.act('notrack');
        return 'next';
      };
    case 'mangle':
      return mangleItem(st.target, st.value, sets);
    case 'nat':
      return natItem(st, sets, table.family);
    case 'reject': {
      const flow: Flow = { verdict: { kind: 'reject', with: rejectWith(st) } };
      return () => flow;
    }
    case 'set-update': {
      const key = compileExpr(st.key, sets);
      const set = table.sets.get(st.set);
      const timeout = st.timeoutMs ?? set?.timeoutMs;
      return (ctx) => {
        const v = key.get(ctx);
        if (v === null) return 'break';
        if (isUnknown(v)) return v;
        if (st.op !== 'delete') ctx.s.added.add(`${st.set}|${valueKey(v)}`);
        ctx.act(`${st.op} @${st.set} { ${formatValue(v, key.types)} }`);
        if (st.set.startsWith('affinity-') && st.op !== 'delete') {
          ctx.note(`session affinity: later connections from this client go to the same endpoint${timeout ? ` for ${Math.round(timeout / 1000)} seconds` : ''} (set ${st.set})`);
        }
        return 'next';
      };
    }
    case 'unmodelled':
      return () => ({ unknown: `"${st.text}", which svcpath does not model` });
  }
}

function mangleItem(target: NftExpr, value: NftExpr, sets: SetLookup): Item {
  const isMeta = (k: string) => target.kind === 'meta' && target.key === k;
  const ctMark = target.kind === 'ct' && target.key === 'mark' && !target.direction;
  if (isMeta('nftrace')) return () => 'next';
  if (!isMeta('mark') && !ctMark) return () => ({ unknown: `"${describeExpr(target)} set …", which svcpath does not model` });
  const v = compileExpr(value, sets);
  const constant = value.kind === 'literal' ? readConstant(value.text, 'mark') : null;
  return (ctx) => {
    const got = constant ?? v.get(ctx);
    if (typeof got !== 'bigint') return got === null ? 'break' : isUnknown(got) ? got : { unknown: 'a mark value svcpath cannot read' };
    const n = Number(got & MASK32);
    if (ctMark) ctx.s.ctmark = n;
    else ctx.s.mark = n;
    ctx.act(`${ctMark ? 'ct mark' : 'mark'} set 0x${n.toString(16)}`);
    return 'next';
  };
}

// ---------------------------------------------------------------------------------------------
// Chains and the program

function compileRule(rule: NftRule, sets: SetLookup, table: NftTable): CompiledNftRule {
  const ref: RuleRef = {
    table: rule.table, chain: rule.chain, index: rule.index, line: rule.line, text: rule.text,
    ...(rule.handle !== undefined ? { handle: rule.handle } : {}),
  };
  return { ref, rule, items: rule.statements.map((st) => statementItem(st, sets, table)) };
}

function compileChain(chain: NftChain, sets: SetLookup, table: NftTable, stats: { rules: number }): CompiledNftChain {
  const compiled: (CompiledNftRule | undefined)[] = new Array(chain.rules.length);
  return {
    table: chain.table,
    name: chain.name,
    length: chain.rules.length,
    rule: (i) => {
      let r = compiled[i];
      if (!r) {
        r = compiled[i] = compileRule(chain.rules[i], sets, table);
        stats.rules++;
      }
      return r;
    },
    policy: chain.base ? chain.base.policy : null,
    line: chain.line,
  };
}

export interface CompiledNftProgram extends NftProgram {
  /** Base chains the tracer does not run (ingress/egress), to say so in the answer. */
  readonly skipped: readonly string[];
  /** How many rules traces have compiled so far (what a cache of programs weighs). */
  readonly stats: { readonly rules: number };
}

/** Compiles a ruleset for tracing; chains, rules and sets are compiled when first reached. */
export function compileNftables(rs: NftRuleset): CompiledNftProgram {
  const lookups = new Map<string, SetLookup>();
  const stats = { rules: 0 };
  // By table, then by chain name, so that a lookup builds no key string.
  const chains = new Map<string, Map<string, CompiledNftChain | null>>();
  const chainOf = (tableKey: string, name: string): CompiledNftChain | null => {
    let inTable = chains.get(tableKey);
    if (!inTable) chains.set(tableKey, (inTable = new Map()));
    const known = inTable.get(name);
    if (known !== undefined) return known;
    const table = rs.tables.get(tableKey);
    const chain = table?.chains.get(name);
    let c: CompiledNftChain | null = null;
    if (table && chain) {
      let sets = lookups.get(tableKey);
      if (!sets) lookups.set(tableKey, (sets = new SetLookup(table, (target) => chainOf(tableKey, target))));
      c = compileChain(chain, sets, table, stats);
    }
    inTable.set(name, c);
    return c;
  };
  const baseChains: BaseChainRegistration<CompiledNftChain>[] = [];
  const skipped: string[] = [];
  let order = 0;
  for (const table of rs.tables.values()) {
    for (const chain of table.chains.values()) {
      if (!chain.base) continue;
      if (table.family !== 'ip' && table.family !== 'ip6' && table.family !== 'inet') {
        if (table.family === 'netdev') skipped.push(`${table.key} ${chain.name} (hook ${chain.base.hook})`);
        continue;
      }
      if (!IP_HOOKS.has(chain.base.hook)) {
        skipped.push(`${table.key} ${chain.name} (hook ${chain.base.hook})`);
        continue;
      }
      baseChains.push({
        family: table.family, type: chain.base.type, hook: chain.base.hook, priority: chain.base.priority,
        order: order++, chain: chainOf(table.key, chain.name)!,
      });
    }
  }
  return { baseChains, chain: chainOf, skipped, stats };
}
