/**
 * The grammar of one rule's options, shared by iptables-save and iptables -S:
 *
 *   rule     := { option } [ target ] { target-option }
 *   option   := [ '!' ] basic-option arg | '-m' module { [ '!' ] '--' name { arg } } | '-c' packets bytes
 *   basic    := -s | -d | -i | -o | -p | -f  (and their long names)
 *   target   := ( '-j' | '-g' ) NAME
 *
 * `--name` options belong to the most recent `-m` module that takes them, else to the protocol's
 * implicit module (`-p tcp --dport 80`), else to the target (`-j DNAT --to-destination …`).
 */
import type { Cidr, Counters, Family, MatchModule, ModuleOption, Negatable, TargetSpec } from './ast.ts';
import type { Token } from './lexer.ts';
import { syntaxError } from '../errors.ts';
import { parseCidr } from '../net/address.ts';
import { moduleTakesOption, PROTOCOL_MODULE_OPTIONS, targetTakesOption } from './modules.ts';

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
}

interface MutableModule {
  module: string;
  options: ModuleOption[];
  implicit: boolean;
}

const PROTOCOL_NUMBERS: Readonly<Record<string, string>> = {
  '1': 'icmp',
  '6': 'tcp',
  '17': 'udp',
  '58': 'ipv6-icmp',
  '132': 'sctp',
  icmpv6: 'ipv6-icmp',
  'ipv6-icmp': 'ipv6-icmp',
};

export function normaliseProtocol(p: string): string {
  const lower = p.toLowerCase();
  return PROTOCOL_NUMBERS[lower] ?? lower;
}

function isOptionToken(t: Token): boolean {
  return !t.quoted && t.text.length > 1 && t.text.charCodeAt(0) === 0x2d /* - */ && !/^-\d/.test(t.text);
}

/**
 * Parses the words after `-A CHAIN` (or after `-I CHAIN [n]`).
 * `family` is updated when the first address fixes it; an address of the other family is an error.
 */
export function parseRuleBody(
  tokens: readonly Token[],
  start: number,
  line: number,
  text: string,
  familyRef: { family: Family | null },
): RuleBody {
  const body: RuleBody = { matches: [] };
  let current: MutableModule | null = null;
  const modules: MutableModule[] = [];
  let target: { kind: 'jump' | 'goto'; name: string; options: ModuleOption[] } | null = null;
  let negate = false;
  let negateColumn = 0;

  const fail = (message: string, t: Token | undefined): never => {
    throw syntaxError(message, line, t ? t.column : text.length + 1, text);
  };
  const takeArg = (i: number, option: Token): Token => {
    const t = tokens[i];
    if (!t || (isOptionToken(t) && !(t.text === '!'))) fail(`option ${option.text} needs an argument`, t ?? option);
    if (t.text === '!') fail(`option ${option.text} needs an argument`, t);
    return t;
  };
  const address = (t: Token): Cidr => {
    const c = parseCidr(t.text);
    if (!c) return fail(`'${t.text}' is not an IP address or CIDR`, t);
    if (familyRef.family === null) familyRef.family = c.family;
    else if (familyRef.family !== c.family) {
      fail(`${c.family === 'ipv6' ? 'IPv6' : 'IPv4'} address '${t.text}' in an ${familyRef.family === 'ipv6' ? 'IPv6' : 'IPv4'} ruleset`, t);
    }
    return c;
  };
  const negatable = <T>(value: T): Negatable<T> => {
    const n = { negated: negate, value };
    negate = false;
    return n;
  };

  let i = start;
  while (i < tokens.length) {
    const t = tokens[i];
    const word = t.text;
    if (word === '!' && !t.quoted) {
      if (negate) fail("double negation '! !'", t);
      negate = true;
      negateColumn = t.column;
      i++;
      continue;
    }
    if (!isOptionToken(t)) {
      fail(target ? `unexpected '${word}' after target ${target.name}` : `unexpected '${word}': expected an option`, t);
    }
    switch (word) {
      case '-s':
      case '--source':
      case '--src':
        body.source = negatable(address(takeArg(i + 1, t)));
        i += 2;
        continue;
      case '-d':
      case '--destination':
      case '--dst':
        body.destination = negatable(address(takeArg(i + 1, t)));
        i += 2;
        continue;
      case '-p':
      case '--protocol':
        body.protocol = negatable(normaliseProtocol(takeArg(i + 1, t).text));
        i += 2;
        continue;
      case '-i':
      case '--in-interface':
        body.inInterface = negatable(takeArg(i + 1, t).text);
        i += 2;
        continue;
      case '-o':
      case '--out-interface':
        body.outInterface = negatable(takeArg(i + 1, t).text);
        i += 2;
        continue;
      case '-f':
      case '--fragment':
        body.fragment = negatable(true as const);
        i += 1;
        continue;
      case '-c':
      case '--set-counters': {
        const p = takeArg(i + 1, t);
        const b = takeArg(i + 2, t);
        if (!/^\d+$/.test(p.text) || !/^\d+$/.test(b.text)) fail('-c needs two counter values', p);
        body.counters = { packets: p.text, bytes: b.text };
        i += 3;
        continue;
      }
      case '-m':
      case '--match': {
        if (negate) fail("'!' cannot negate -m", t);
        const name = takeArg(i + 1, t).text;
        current = { module: name, options: [], implicit: false };
        modules.push(current);
        i += 2;
        continue;
      }
      case '-j':
      case '--jump':
      case '-g':
      case '--goto': {
        if (negate) fail(`'!' cannot negate ${word}`, t);
        const nameTok = tokens[i + 1];
        if (!nameTok || (isOptionToken(nameTok) && !nameTok.quoted)) {
          fail(`${word} needs a target`, nameTok ?? t);
        }
        if (target) fail(`a second target '${nameTok!.text}' (the rule already has -j ${target.name})`, t);
        target = { kind: word === '-g' || word === '--goto' ? 'goto' : 'jump', name: nameTok!.text, options: [] };
        current = null;
        i += 2;
        continue;
      }
      default:
        break;
    }
    if (!word.startsWith('--')) fail(`unknown option '${word}'`, t);
    // A module or target option: collect its arguments, which run until the next option word.
    const name = word.slice(2);
    const args: string[] = [];
    let j = i + 1;
    let optionNegated = negate;
    negate = false;
    // Old iptables wrote the negation after the option name: `--dport ! 80`.
    if (tokens[j] && tokens[j].text === '!' && !tokens[j].quoted && tokens[j + 1] && !isOptionToken(tokens[j + 1])) {
      optionNegated = !optionNegated;
      j++;
    }
    while (j < tokens.length && !(isOptionToken(tokens[j]) || (tokens[j].text === '!' && !tokens[j].quoted))) {
      args.push(tokens[j].text);
      j++;
    }
    const option: ModuleOption = { name, negated: optionNegated, args };
    const owner = findOwner(name, current, modules, target, body.protocol?.value);
    if (owner === 'target') {
      target!.options.push(option);
    } else if (owner) {
      owner.options.push(option);
    } else if (body.protocol && PROTOCOL_MODULE_OPTIONS[body.protocol.value]?.includes(name)) {
      const implicit: MutableModule = { module: body.protocol.value, options: [option], implicit: true };
      modules.push(implicit);
      current = current ?? implicit;
    } else {
      fail(`option '--${name}' does not belong to any match or target in this rule`, t);
    }
    i = j;
  }
  if (negate) throw syntaxError("'!' must be followed by an option", line, negateColumn, text);
  body.matches = modules;
  if (target) body.target = target;
  return body;
}

function findOwner(
  name: string,
  current: MutableModule | null,
  modules: readonly MutableModule[],
  target: { name: string } | null,
  protocol: string | undefined,
): MutableModule | 'target' | null {
  const targetTakes = target ? targetTakesOption(target.name, name) : false;
  if (targetTakes === true) return 'target';
  if (current && moduleTakesOption(current.module, name, protocol) !== false) return current;
  for (let k = modules.length - 1; k >= 0; k--) {
    if (moduleTakesOption(modules[k].module, name, protocol) === true) return modules[k];
  }
  return targetTakes === 'unknown' ? 'target' : null;
}
