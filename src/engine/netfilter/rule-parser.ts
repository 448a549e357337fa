/**
 * The grammar of one rule's options, shared by iptables-save and iptables -S:
 *
 *   rule     := { option } [ target ] { target-option }
 *   option   := [ '!' ] basic arg | '-m' module { [ '!' ] '--' name { arg } } | '-c' packets bytes
 *   basic    := -s | -d | -i | -o | -p | -f  (and their long names)
 *   target   := ( '-j' | '-g' ) NAME
 *
 * `--name` options belong to the most recent `-m` module that takes them, else to the protocol's
 * implicit module (`-p tcp --dport 80`), else to the target (`-j DNAT --to-destination …`).
 */
import type { Cidr, Counters, Family, MatchModule, ModuleOption, Negatable, TargetSpec } from './ast.ts';
import type { Words } from './lexer.ts';
import { syntaxError } from '../errors.ts';
import { ownCopy } from '../text.ts';
import { parseCidr } from '../net/address.ts';
import { readPort, readPortRange, readUnsigned } from '../net/port.ts';
import { NAT_PORT_PROTOCOLS, readMark, readNatPortRange, readNatTo, readNumber32, readProbability } from './values.ts';
import type { OwnerSpec, RuleOption, ValueKind } from './modules.ts';
import {
  canonicalOption, excludeEachOther, moduleSpec, moduleTakesOption, ONCE_PER_RULE, optionArity, optionSpec, PROTOCOL_MODULE_OPTIONS,
  RULE_OPTIONS, targetSpec, targetTakesOption,
} from './modules.ts';
import { dispatchPort } from './dispatch.ts';

/** The targets whose address word the parser keeps (`--to-destination`, `--to-source`). */
export const NAT_TARGETS: ReadonlySet<string> = new Set(['DNAT', 'SNAT']);

export interface RuleBody {
  protocol?: Negatable<string>;
  source?: Negatable<Cidr>;
  destination?: Negatable<Cidr>;
  inInterface?: Negatable<string>;
  outInterface?: Negatable<string>;
  fragment?: Negatable<true>;
  matches: MatchModule[];
  target?: TargetSpec;
  counters?: Counters;
  /** The rule's dispatch port (dispatch.ts), read even when options are not kept. */
  dispatchPort?: number;
  /** The address word of a DNAT's `--to-destination` or an SNAT's `--to-source`, read even when options are not kept; null when given more than once. */
  natTo?: string | null;
}

interface MutableModule {
  module: string;
  options: ModuleOption[];
  implicit: boolean;
}

interface MutableTarget {
  kind: 'jump' | 'goto';
  name: string;
  options: ModuleOption[];
}

/** Each name of a rule option (modules.ts), with the option it names. */
const RULE_OPTION_NAMES: ReadonlyMap<string, RuleOption> = new Map(
  (Object.entries(RULE_OPTIONS) as [RuleOption, readonly string[]][]).flatMap(([option, names]) => names.map((n) => [n, option] as const)),
);
/** The options allowed once in a rule: a bit each. */
const ONCE_BITS: ReadonlyMap<RuleOption, number> = new Map(ONCE_PER_RULE.map((o, k) => [o, 1 << k]));

/** The protocols multiport works with (by -p, not negated). */
const MULTIPORT_PROTOCOLS: ReadonlySet<string> = new Set(['tcp', 'udp', 'udplite', 'sctp', 'dccp']);

const PROTOCOL_NUMBERS: Readonly<Record<string, string>> = {
  '1': 'icmp',
  '33': 'dccp',
  '6': 'tcp',
  '17': 'udp',
  '58': 'ipv6-icmp',
  '132': 'sctp',
  '136': 'udplite',
  icmpv6: 'ipv6-icmp',
  'ipv6-icmp': 'ipv6-icmp',
};

/** The protocol `-p` names: its name for a number iptables reads (6, 0x6, 006 are tcp), else the name in lower case. */
export function normaliseProtocol(p: string): string {
  if (p === 'tcp' || p === 'udp') return p;
  const n = readUnsigned(p);
  const lower = n !== null ? String(n) : p.toLowerCase();
  return Object.hasOwn(PROTOCOL_NUMBERS, lower) ? PROTOCOL_NUMBERS[lower] : lower;
}

const NOT_NEGATED_CACHE = new Map<string, Negatable<Cidr>>();
const DISCARDED: ModuleOption = Object.freeze({ name: '', negated: false, args: [] });

/** Reads the words after `-A CHAIN` (or `-I CHAIN [n]`) of one line into a rule body. */
export class RuleReader {
  /** Fixed by the first address; an address of the other family is an error. */
  family: Family | null = null;
  private words!: Words;
  private line = 0;
  private text = '';
  // The module and target options of the rule being read: name, owner (the module's place in
  // the rule, -1 the target), the word it stands at and where its arguments start.
  private readonly given: string[] = [];
  private readonly givenOwner: number[] = [];
  private readonly givenAt: number[] = [];
  private readonly givenArgs: number[] = [];
  /** The word of each match's `-m` (or first option, for an implicit protocol match). */
  private readonly moduleAt: number[] = [];

  /**
   * With `keep` false the rule is only checked: options are validated and assigned to their
   * owners but not kept (the body has module names and the target only), which saves most of
   * the allocation when a whole dump is read and the rules are materialised later.
   */
  read(words: Words, start: number, line: number, text: string, keep = true): RuleBody {
    this.words = words;
    this.line = line;
    this.text = text;
    this.given.length = 0;
    this.givenOwner.length = 0;
    this.givenAt.length = 0;
    this.givenArgs.length = 0;
    this.moduleAt.length = 0;
    const body: RuleBody = { matches: [] };
    const modules: MutableModule[] = [];
    let current: MutableModule | null = null;
    let target: MutableTarget | null = null;
    let negate = false;
    let negateColumn = 0;
    let targetAt = -1;
    let basic = 0;
    const n = words.count;
    let i = start;
    while (i < n) {
      if (words.isBang(i)) {
        if (negate) this.fail("double negation '! !'", i);
        negate = true;
        negateColumn = words.column(i);
        i++;
        continue;
      }
      const word = words.text(i)!;
      if (!words.isOption(i)) {
        this.fail(target ? `unexpected '${word}' after target ${target.name}` : `unexpected '${word}': expected an option`, i);
      }
      const ruleOption = RULE_OPTION_NAMES.get(word);
      const once = ruleOption === undefined ? undefined : ONCE_BITS.get(ruleOption);
      if (once !== undefined) {
        if ((basic & once) !== 0) this.fail(`multiple ${RULE_OPTIONS[ruleOption!][0]} flags not allowed`, i);
        basic |= once;
      }
      switch (ruleOption) {
        case 'source':
          body.source = this.address(i, negate);
          negate = false;
          i += 2;
          continue;
        case 'destination':
          body.destination = this.address(i, negate);
          negate = false;
          i += 2;
          continue;
        case 'protocol':
          body.protocol = { negated: negate, value: normaliseProtocol(this.arg(i)) };
          negate = false;
          i += 2;
          continue;
        case 'inInterface':
          body.inInterface = { negated: negate, value: this.arg(i) };
          negate = false;
          i += 2;
          continue;
        case 'outInterface':
          body.outInterface = { negated: negate, value: this.arg(i) };
          negate = false;
          i += 2;
          continue;
        case 'fragment':
          body.fragment = { negated: negate, value: true };
          negate = false;
          i += 1;
          continue;
        case 'counters': {
          const p = this.arg(i);
          const b = this.arg(i + 1, i);
          if (!/^\d+$/.test(p) || !/^\d+$/.test(b)) this.fail('-c needs two counter values', i + 1);
          body.counters = { packets: p, bytes: b };
          i += 3;
          continue;
        }
        case 'match': {
          if (negate) this.fail(`'!' cannot negate ${word}`, i);
          current = { module: this.arg(i), options: [], implicit: false };
          this.moduleAt.push(i);
          modules.push(current);
          i += 2;
          continue;
        }
        case 'jump':
        case 'goto': {
          if (negate) this.fail(`'!' cannot negate ${word}`, i);
          if (i + 1 >= n || words.isOption(i + 1)) this.fail(`${word} needs a target`, i + 1 < n ? i + 1 : i);
          if (target) this.fail(`a second target '${words.text(i + 1)}' (the rule already has -j ${target.name})`, i);
          target = { kind: ruleOption, name: words.text(i + 1)!, options: [] };
          targetAt = i;
          current = null;
          i += 2;
          continue;
        }
        default:
          break;
      }
      if (word.charCodeAt(1) !== 0x2d) this.fail(`unknown option '${word}'`, i);
      // A module or target option: its arguments run until the next option word.
      const name = word.slice(2);
      let j = i + 1;
      let optionNegated = negate;
      negate = false;
      // Old iptables wrote the negation after the option name: `--dport ! 80`.
      if (words.isBang(j) && j + 1 < n && !words.isOption(j + 1)) {
        optionNegated = !optionNegated;
        j++;
      }
      const argsFrom = j;
      const owner = findOwner(name, current, modules, target);
      const ownerName = owner === 'target' ? target!.name : owner ? owner.module
        : body.protocol && PROTOCOL_MODULE_OPTIONS[body.protocol.value]?.includes(name) ? body.protocol.value : null;
      const arity = ownerName === null ? null : optionArity(ownerName, name);
      // A word after the option's arguments that is not an option (iptables: "Bad argument"),
      // reported once the arguments are checked, as iptables does.
      let stray = -1;
      if (arity === null) {
        // An option of a match or target svcpath does not know: its arguments run until the next option word.
        while (j < n && !words.isOption(j) && !words.isBang(j)) j++;
      } else {
        // As getopt reads it: the first argument is the next word, whatever it looks like.
        if (arity !== 0 && j >= n) this.fail(`option "--${name}" requires an argument`, i);
        if (arity !== 0) j++;
        if (arity === 2) {
          if (j >= n || words.isOption(j) || words.isBang(j) || words.text(j)!.startsWith('-')) this.fail(`--${name} requires two arguments`, j < n ? j : i);
          j++;
        }
        if (arity === 'words') while (j < n && !words.isOption(j) && !words.isBang(j)) j++;
        if (j < n && !words.isOption(j) && !words.isBang(j)) stray = j;
      }
      const option: ModuleOption = keep
        ? { name, negated: optionNegated, args: words.slice(argsFrom, j) }
        : DISCARDED;
      let module: MutableModule;
      if (owner === 'target') {
        if (keep) target!.options.push(option);
        if (NAT_TARGETS.has(target!.name) && (name === 'to-destination' || name === 'to-source')) body.natTo = body.natTo === undefined ? words.text(argsFrom) ?? null : null;
        this.option(-1, target!.name, targetSpec(target!.name), name, optionNegated, i, argsFrom, j, body);
        this.stray(stray, name, arity);
        i = j;
        continue;
      } else if (owner) {
        if (keep) owner.options.push(option);
        module = owner;
      } else if (body.protocol && PROTOCOL_MODULE_OPTIONS[body.protocol.value]?.includes(name)) {
        module = { module: body.protocol.value, options: keep ? [option] : [], implicit: true };
        this.moduleAt.push(i);
        modules.push(module);
        current = current ?? module;
      } else {
        this.fail(`option '--${name}' does not belong to any match or target in this rule`, i);
      }
      const spec = moduleSpec(module.module);
      this.option(modules.indexOf(module), module.module, spec, name, optionNegated, i, argsFrom, j, body);
      if (spec && optionSpec(spec, name)?.value === 'port') {
        const port = dispatchPort(module.module, name, optionNegated, words.text(argsFrom));
        if (port !== null) body.dispatchPort = port;
      }
      this.stray(stray, name, arity);
      i = j;
    }
    if (negate) throw syntaxError("'!' must be followed by an option", line, negateColumn, text);
    for (let k = 0; k < modules.length; k++) this.moduleComplete(k, modules[k], body);
    if (target) this.required(target.name, targetSpec(target.name), -1, targetAt);
    body.matches = modules;
    if (target) body.target = target;
    return body;
  }

  /**
   * Notes option `--name` (word i, its arguments words [from, to)) of the match or target at
   * `owner` (its place in the rule, -1 the target) called `ownerName`, whose grammar is `spec`
   * (undefined: one svcpath does not know, whose options are taken as they are), and checks it as
   * iptables does: given once, negated only where iptables allows it, its value.
   */
  private option(
    owner: number, ownerName: string, spec: OwnerSpec | undefined, name: string, negated: boolean,
    i: number, from: number, to: number, body: RuleBody,
  ): void {
    this.once(owner, ownerName, spec !== undefined && spec.repeats !== true, name, i, from);
    const o = spec && optionSpec(spec, name);
    if (!o) return;
    if (negated && !o.invert) this.fail(`${ownerName}: option "--${name}" cannot be inverted`, i);
    if (o.value) this.checkValue(o.value, ownerName, name, i, from, to, body);
  }

  /** Checks the argument (words [from, to)) of option `--name` (word i) of `owner`, a value of `kind`, as iptables does. */
  private checkValue(kind: ValueKind, owner: string, name: string, i: number, from: number, to: number, body: RuleBody): void {
    // Where the one argument a value takes is missing or has company.
    const one = (what: string) => {
      if (to !== from + 1) this.fail(`--${name} takes ${what}`, to > from + 1 ? from + 1 : i);
      return this.words.text(from)!;
    };
    switch (kind) {
      case 'port': {
        if (to === from) this.fail(`--${name} needs a port or a port range`, i);
        if (to > from + 1) this.fail(`unexpected '${this.words.text(from + 1)}': --${name} takes one port or port range`, from + 1);
        const read = readPortRange(this.words.text(from)!, owner);
        if ('error' in read) this.fail(read.error, from);
        return;
      }
      case 'port-list':
        return this.portList(name, i, from, to, body);
      case 'probability': {
        const text = one('one number from 0 to 1');
        if (readProbability(text) === 'invalid') this.fail(`bad value for --probability '${text}': a number from 0 to 1`, from);
        return;
      }
      case 'mode': {
        const text = one('one mode (random or nth)');
        if (text !== 'random' && text !== 'nth') this.fail(`Bad mode "${text}": random or nth`, from);
        return;
      }
      case 'count':
      case 'count-from-1': {
        const v = readNumber32(one('one number'));
        const min = kind === 'count' ? 0 : 1;
        if (v === null || v < min) this.fail(`${owner}: bad value for option "--${name}", or out of range (${min}-4294967295)`, from);
        return;
      }
      case 'mark':
      case 'mark-value': {
        const withMask = kind === 'mark';
        const text = one(`one value${withMask ? '[/mask]' : ''}`);
        if (withMask ? readMark(text) === null : readNumber32(text) === null) {
          const form = withMask ? 'value[/mask], each a 32-bit number' : 'a 32-bit number';
          this.fail(`bad value '${text}' for --${name}: ${form} (decimal, 0x hexadecimal or 0 octal)`, from);
        }
        return;
      }
      case 'nat-to':
        return this.natTo(name, one('one address[-address][:port[-port]]'), from, body);
      case 'to-ports': {
        const text = one('one port or port range');
        if (text.includes(':')) this.fail('Invalid port:port syntax - use dash', from);
        const read = readNatPortRange(text);
        if ('error' in read) this.fail(read.error, from);
        if (owner === 'REDIRECT' && text.includes('/')) this.fail('Shifted portmap ranges not supported with this kernel', from);
        if (!body.protocol || !NAT_PORT_PROTOCOLS.has(body.protocol.value)) this.fail('Need TCP, UDP, SCTP or DCCP with port specification', from);
        return;
      }
    }
  }

  /**
   * Checks a multiport port list (word i, its arguments [from, to)) as iptables does: the
   * protocol given before it, at most 15 ports, a range counting two and rising.
   */
  private portList(name: string, i: number, from: number, to: number, body: RuleBody): void {
    if (!body.protocol || body.protocol.negated || !MULTIPORT_PROTOCOLS.has(body.protocol.value)) {
      this.fail("multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp' before its ports", i);
    }
    if (to !== from + 1) this.fail(`--${name} takes one list of ports`, to > from + 1 ? from + 1 : i);
    const text = this.words.text(from)!;
    let count = 0;
    for (const item of text.split(',')) {
      const colon = item.indexOf(':');
      const ends = colon < 0 ? [item] : [item.slice(0, colon), item.slice(colon + 1)];
      const ports = ends.map((p) => readPort(p));
      const bad = ends.find((_, k) => ports[k] === 'invalid');
      if (bad !== undefined) this.fail(`invalid port/service \`${bad}' specified`, from);
      const [lo, hi] = ports;
      if (colon >= 0 && typeof lo === 'number' && typeof hi === 'number' && lo >= hi) this.fail('invalid portrange specified', from);
      count += ends.length;
      if (count > 15) this.fail('too many ports specified (multiport takes at most 15, a range counting two)', from);
    }
  }

  /**
   * Checks the address `text` (word `at`) of `--to-destination` (`--to-source`) as iptables
   * does for IPv4 (IPv6 forms are left as they are).
   */
  private natTo(name: string, text: string, at: number, body: RuleBody): void {
    // IPv6 forms ([addr]:port, addr) are left as they are; several colons are IPv4 errors only in an IPv4 ruleset.
    if (text.includes('[') || (this.family !== 'ipv4' && text.indexOf(':') !== text.lastIndexOf(':'))) return;
    const read = readNatTo(text);
    if ('error' in read) this.fail(read.error, at);
    // iptables 1.8.9 checks the protocol's number, negated or not (`! -p tcp` passes).
    if (read.hasPorts && (!body.protocol || !NAT_PORT_PROTOCOLS.has(body.protocol.value))) {
      this.fail('Need TCP, UDP, SCTP or DCCP with port specification', at);
    }
  }

  /**
   * Notes option `--name` (word i) of `owner` (a match or target), refusing one given before in
   * the same match, under either of its names, or one it excludes, as iptables does. Options of
   * matches and targets svcpath does not know are not checked.
   */
  private once(owner: number, ownerName: string, checked: boolean, name: string, i: number, args: number): void {
    if (checked) {
      const c = canonicalOption(ownerName, name);
      for (let k = 0; k < this.given.length; k++) {
        if (this.givenOwner[k] !== owner) continue;
        const g = this.given[k];
        const cg = canonicalOption(ownerName, g);
        if (cg === c) this.fail(`${ownerName}: option "--${c}" can only be used once`, i);
        if (excludeEachOther(ownerName, c, cg)) this.fail(`${ownerName}: option "--${name}" cannot be used together with "--${g}"`, i);
      }
    }
    this.given.push(name);
    this.givenOwner.push(owner);
    this.givenAt.push(i);
    this.givenArgs.push(args);
  }

  /** Where option `name` of module k of the rule stands (its word, and its first argument's), or null. */
  private givenWhere(k: number, name: string): { at: number; args: number } | null {
    for (let j = 0; j < this.given.length; j++) {
      if (this.givenOwner[j] === k && this.given[j] === name) return { at: this.givenAt[j], args: this.givenArgs[j] };
    }
    return null;
  }

  /** A word after the arguments of option `--name` (word `at`, -1 for none) that no option takes: iptables' "Bad argument". */
  private stray(at: number, name: string, arity: 0 | 1 | 2 | 'words' | null): void {
    if (at < 0) return;
    const takes = arity === 0 ? 'no argument' : arity === 1 ? 'one argument' : 'two arguments';
    this.fail(`Bad argument '${this.words.text(at)}': --${name} takes ${takes}`, at);
  }

  /** At the end of a rule: what a match needs beside what it was given, as iptables checks it. */
  private moduleComplete(k: number, m: MutableModule, body: RuleBody): void {
    const has = (name: string) => this.givenWhere(k, name) !== null;
    const at = this.moduleAt[k];
    const module = m.module;
    const spec = moduleSpec(module);
    this.required(module, spec, k, at);
    // An explicit -m tcp (udp, sctp, udplite) with options needs the protocol (negated or not).
    if (!m.implicit && spec?.needsProtocol && this.givenOwner.includes(k) && body.protocol?.value !== module) {
      this.fail(`${module.toUpperCase()} match requires '-p ${module}'`, at);
    }
    for (const [option, needed] of Object.entries(spec?.needs ?? {})) {
      const given = this.givenWhere(k, option);
      if (given && !has(needed)) this.fail(`${module}: option "--${option}" also requires "--${needed}"`, given.at);
    }
    switch (module) {
      case 'statistic': {
        // Required, so given.
        const mode = this.givenWhere(k, 'mode')!;
        if (this.words.text(mode.args) === 'random') {
          if (!has('probability')) this.fail('--probability must be specified when using random mode', at);
          const other = this.givenWhere(k, 'every') ?? this.givenWhere(k, 'packet');
          if (other) this.fail(`statistic: option "--${this.words.text(other.at)!.slice(2)}" is for nth mode, not random`, other.at);
          return;
        }
        const every = this.givenWhere(k, 'every');
        const packet = this.givenWhere(k, 'packet');
        if (!every || !packet) this.fail('--every and --packet must be specified when using nth mode', at);
        const n = readNumber32(this.words.text(every.args)!)!;
        const packetAt = packet.args;
        if (readNumber32(this.words.text(packetAt)!)! > n - 1) this.fail('the --packet p must be 0 <= p <= n-1', packetAt);
        return;
      }
      default:
    }
  }

  /** At the end of a rule: a match or target (at word `at`) without any of the options it must be given. */
  private required(name: string, spec: OwnerSpec | undefined, owner: number, at: number): void {
    const required = spec?.oneOf;
    if (!required || required.some((o) => this.givenWhere(owner, o) !== null)) return;
    if (spec.missing) this.fail(spec.missing, at);
    const what = required.length === 1 ? `option "--${required[0]}" must be specified` : `one of ${required.map((o) => `--${o}`).join(', ')} is required`;
    this.fail(`${name}: ${what}`, at);
  }

  private fail(message: string, i: number): never {
    const w = this.words;
    const column = i < w.count ? w.column(i) : this.text.length + 1;
    throw syntaxError(message, this.line, column, this.text);
  }

  /** The argument after option word `i` (or after `after`, for a second argument). */
  private arg(i: number, optionIndex = i): string {
    const w = this.words;
    const k = i + 1;
    if (k >= w.count || w.isOption(k) || w.isBang(k)) {
      this.fail(`option ${w.text(optionIndex)} needs an argument`, k < w.count ? k : optionIndex);
    }
    return w.text(k)!;
  }

  private address(i: number, negated: boolean): Negatable<Cidr> {
    const text = this.arg(i);
    if (!negated) {
      const hit = NOT_NEGATED_CACHE.get(text);
      if (hit && hit.value.family === this.family) return hit;
    }
    const c = parseCidr(text);
    if (!c) return this.fail(`'${text}' is not an IP address or CIDR`, i + 1);
    if (this.family === null) this.family = c.family;
    else if (this.family !== c.family) {
      this.fail(
        `${c.family === 'ipv6' ? 'IPv6' : 'IPv4'} address '${text}' in an ${this.family === 'ipv6' ? 'IPv6' : 'IPv4'} ruleset`,
        i + 1,
      );
    }
    // Many rules share addresses (pod CIDR, node IPs): share the parsed value too, as copies that
    // outlive the dump they were read from.
    if (negated || NOT_NEGATED_CACHE.size >= 100_000) return { negated, value: c };
    const result = { negated, value: { ...c, address: ownCopy(c.address) } };
    NOT_NEGATED_CACHE.set(ownCopy(text), result);
    return result;
  }
}

function findOwner(
  name: string,
  current: MutableModule | null,
  modules: readonly MutableModule[],
  target: MutableTarget | null,
): MutableModule | 'target' | null {
  const targetTakes = target ? targetTakesOption(target.name, name) : false;
  if (targetTakes === true) return 'target';
  if (current && moduleTakesOption(current.module, name) !== false) return current;
  for (let k = modules.length - 1; k >= 0; k--) {
    if (moduleTakesOption(modules[k].module, name) === true) return modules[k];
  }
  return targetTakes === 'unknown' ? 'target' : null;
}
