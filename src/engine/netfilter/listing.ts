/**
 * `iptables -L -n -v` listings read back into rules (issue 14, item 3). Each listing line becomes
 * one line of `iptables -S` text, so the rules keep the listing's line numbers: a chain header is
 * `-P CHAIN POLICY` or `-N CHAIN`, a rule row is `-A CHAIN …` rebuilt from its columns and from
 * the text the match and target extensions print after the destination.
 *
 * Only what a listing shows exactly is read. A listing without `-v` has no in/out columns (its
 * rules' interface tests are invisible), one without `-n` names hosts and ports instead of
 * addresses, and an extension text svcpath does not know how to read back may hide options: each
 * is refused with its line and column and the command that gives a readable listing.
 */
import type { Diagnostic } from './ast.ts';
import { syntaxError } from '../errors.ts';

const OPT = new Set(['--', '-f', '!f']);
const PROTOCOL_NAMES: Readonly<Record<string, string>> = { 0: 'all', 1: 'icmp', 6: 'tcp', 17: 'udp', 132: 'sctp', 58: 'ipv6-icmp' };
const TCP_FLAGS: readonly [string, number][] = [['FIN', 0x01], ['SYN', 0x02], ['RST', 0x04], ['PSH', 0x08], ['ACK', 0x10], ['URG', 0x20], ['ECE', 0x40], ['CWR', 0x80]];

export interface ReadListing {
  /** `iptables -S` text with the listing's line numbers. */
  readonly text: string;
  readonly diagnostics: readonly Diagnostic[];
  /** The table whose built-in chains the listing shows, when it shows them. */
  readonly table?: string;
}

/** The table a listing's built-in chains belong to (a whole-table `iptables -L`), or null. */
function tableOfBuiltins(builtins: ReadonlySet<string>): string | null {
  if (builtins.has('FORWARD')) return builtins.has('PREROUTING') || builtins.has('POSTROUTING') ? 'mangle' : 'filter';
  if (builtins.has('POSTROUTING')) return 'nat';
  if (builtins.has('PREROUTING') && builtins.has('OUTPUT') && !builtins.has('INPUT')) return 'raw';
  return null;
}

/** What a listing cannot show, said once with every answer that reads one. */
export const LISTING_LIMITS =
  'read from an `iptables -L -n -v` listing: the listing does not say which table it lists (inferred below), rounds the counters (K, M, G), and shows comments without their quoting (a comment containing "*/" cannot be told apart); for answers that rest on nothing a listing leaves out, send `iptables-save` output';

function flagNames(hex: string): string {
  const v = Number(hex);
  const names = TCP_FLAGS.filter(([, bit]) => (v & bit) !== 0).map(([n]) => n);
  return names.length === 0 ? 'NONE' : names.join(',');
}

function quote(text: string): string {
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** `!x` → ['! ', 'x']; `x` → ['', 'x']. */
function negation(word: string): [string, string] {
  return word.startsWith('!') ? ['! ', word.slice(1)] : ['', word];
}

function address(word: string, flag: '-s' | '-d', fail: (why: string) => never): string {
  const [not, value] = negation(word);
  if (value === '0.0.0.0/0' || value === '::/0') return not ? `${not}${flag} ${value}` : '';
  if (!/^[0-9a-fA-F.:]+(\/\d+)?$/.test(value)) fail(`'${word}' is a name, not an address: list with -n (iptables -L -n -v) so that addresses are shown as they are`);
  const cidr = value.includes('/') ? value : `${value}/${value.includes(':') ? 128 : 32}`;
  return `${not}${flag} ${cidr}`;
}

function iface(word: string, flag: '-i' | '-o'): string {
  if (word === '*') return '';
  const [not, value] = negation(word);
  return `${not}${flag} ${value}`;
}

interface Piece {
  readonly re: RegExp;
  readonly read: (m: RegExpExecArray, target: string) => string | null;
}

/** The texts extensions print after the destination (iptables 1.8, -n), each read back into options. */
const PIECES: readonly Piece[] = [
  { re: /^\/\* (.*?) \*\/(?=\s|$)/, read: (m) => `-m comment --comment ${quote(m[1])}` },
  {
    // kube-proxy's `-m tcp` without options prints the bare name.
    re: /^(tcp|udp|sctp)((?:\s+(?:spt|dpt|spts|dpts):!?[0-9:]+|\s+flags:!?0x[0-9a-fA-F]+\/0x[0-9a-fA-F]+)*)(?=\s|$)/,
    read: (m) => {
      const options = m[2].trim().split(/\s+/).filter(Boolean).map((o) => {
        const [key, raw] = [o.slice(0, o.indexOf(':')), o.slice(o.indexOf(':') + 1)];
        const [not, value] = negation(raw);
        if (key === 'flags') {
          const [mask, set] = value.split('/');
          return `${not}--tcp-flags ${flagNames(mask)} ${flagNames(set)}`;
        }
        return `${not}--${key.startsWith('s') ? 'sport' : 'dport'} ${value}`;
      });
      return `-m ${m[1]} ${options.join(' ')}`;
    },
  },
  { re: /^multiport (dports|sports|ports) +(!)?([0-9:,]+)/, read: (m) => `-m multiport ${m[2] ? '! ' : ''}--${m[1]} ${m[3]}` },
  {
    re: /^ADDRTYPE match((?: (?:src|dst)-type !?[A-Z,]+| limit-in| limit-out)+)/,
    read: (m) => {
      const words = m[1].trim().split(/ /);
      const out: string[] = [];
      for (let i = 0; i < words.length; i++) {
        if (words[i] === 'limit-in' || words[i] === 'limit-out') out.push(`--limit-iface-${words[i].slice(6)}`);
        else {
          const [not, value] = negation(words[++i]);
          out.push(`${not}--${words[i - 1]} ${value}`);
        }
      }
      return `-m addrtype ${out.join(' ')}`;
    },
  },
  { re: /^mark match (! )?(0x[0-9a-fA-F]+(?:\/0x[0-9a-fA-F]+)?)/, read: (m) => `-m mark ${m[1] ?? ''}--mark ${m[2]}` },
  { re: /^(! )?ctstate ([A-Z,]+)/, read: (m) => `-m conntrack ${m[1] ?? ''}--ctstate ${m[2]}` },
  { re: /^(! )?state ([A-Z,]+)/, read: (m) => `-m state ${m[1] ?? ''}--state ${m[2]}` },
  { re: /^statistic mode random (! )?probability ([0-9.]+)/, read: (m) => `-m statistic --mode random ${m[1] ?? ''}--probability ${m[2]}` },
  { re: /^statistic mode nth (! )?every (\d+)(?: packet (\d+))?/, read: (m) => `-m statistic --mode nth ${m[1] ?? ''}--every ${m[2]}${m[3] ? ` --packet ${m[3]}` : ''}` },
  { re: /^(! )?match-set (\S+) ((?:src|dst)(?:,(?:src|dst))*)/, read: (m) => `-m set ${m[1] ?? ''}--match-set ${m[2]} ${m[3]}` },
  {
    re: /^recent: (!)?(CHECK|SET|UPDATE|REMOVE)(?: seconds: (\d+))?( reap)?(?: hit_count: (\d+))?( TTL-Match)? name: (\S+) side: (source|dest)(?: mask: (\S+))?/,
    read: (m) => {
      const command = { CHECK: '--rcheck', SET: '--set', UPDATE: '--update', REMOVE: '--remove' }[m[2]]!;
      return `-m recent ${m[1] ? '! ' : ''}${command}${m[3] ? ` --seconds ${m[3]}` : ''}${m[4] ? ' --reap' : ''}${m[5] ? ` --hitcount ${m[5]}` : ''}`
        + `${m[6] ? ' --rttl' : ''} --name ${m[7]}${m[9] ? ` --mask ${m[9]}` : ''} --${m[8] === 'source' ? 'rsource' : 'rdest'}`;
    },
  },
  // physdev prints its options as iptables-save does.
  { re: /^PHYSDEV match((?: (?:! )?--physdev-(?:in|out) \S+| (?:! )?--physdev-is-(?:in|out|bridged))+)/, read: (m) => `-m physdev${m[1]}` },
  { re: /^icmptype (\d+)(?: code (\d+))?/, read: (m) => `-m icmp --icmp-type ${m[1]}${m[2] ? `/${m[2]}` : ''}` },
  // Targets' options.
  { re: /^to:(\S+)/, read: (m, t) => (t === 'DNAT' ? `--to-destination ${m[1]}` : t === 'SNAT' ? `--to-source ${m[1]}` : null) },
  { re: /^masq ports: (\S+)/, read: (m, t) => (t === 'MASQUERADE' ? `--to-ports ${m[1]}` : null) },
  { re: /^redir ports (\S+)/, read: (m, t) => (t === 'REDIRECT' ? `--to-ports ${m[1]}` : null) },
  { re: /^(random-fully|random|persistent)(?=\s|$)/, read: (m, t) => (['DNAT', 'SNAT', 'MASQUERADE', 'REDIRECT'].includes(t) ? `--${m[1]}` : null) },
  {
    re: /^MARK (set|xset|or|and|xor) (0x[0-9a-fA-F]+(?:\/0x[0-9a-fA-F]+)?)/,
    read: (m, t) => (t === 'MARK' ? `--${{ set: 'set-mark', xset: 'set-xmark', or: 'or-mark', and: 'and-mark', xor: 'xor-mark' }[m[1]]} ${m[2]}` : null),
  },
  { re: /^reject-with (\S+)/, read: (m, t) => (t === 'REJECT' ? `--reject-with ${m[1]}` : null) },
  { re: /^CHECKSUM fill/, read: (_m, t) => (t === 'CHECKSUM' ? '--checksum-fill' : null) },
  { re: /^nflog-(group|size|range|threshold) (\d+)/, read: (m, t) => (t === 'NFLOG' ? `--nflog-${m[1]} ${m[2]}` : null) },
  { re: /^nflog-prefix ("(?:[^"\\]|\\.)*"|\S+)/, read: (m, t) => (t === 'NFLOG' ? `--nflog-prefix ${m[1]}` : null) },
  { re: /^CT (notrack)(?=\s|$)/, read: (_m, t) => (t === 'CT' ? '--notrack' : null) },
  { re: /^CT zone (\d+)/, read: (m, t) => (t === 'CT' ? `--zone ${m[1]}` : null) },
];

/** The options of a row's extension text, or a located refusal. */
function readExtras(rest: string, target: string, fail: (why: string, at: number) => never): { matches: string[]; targetOptions: string[] } {
  const matches: string[] = [];
  const targetOptions: string[] = [];
  let at = 0;
  while (at < rest.length) {
    const skip = /^\s+/.exec(rest.slice(at));
    if (skip) {
      at += skip[0].length;
      continue;
    }
    const here = rest.slice(at);
    let read = false;
    for (const p of PIECES) {
      const m = p.re.exec(here);
      if (!m) continue;
      const options = p.read(m, target);
      if (options === null) continue;
      (options.startsWith('-m ') ? matches : targetOptions).push(options);
      at += m[0].length;
      read = true;
      break;
    }
    if (!read) {
      fail(`'${here.split(/\s+/).slice(0, 4).join(' ')}' is not something svcpath can read back from a listing exactly; send \`iptables-save\` output (or \`iptables -S\`) instead`, at);
    }
  }
  return { matches, targetOptions };
}

/**
 * Reads an `iptables -L -n -v` listing (one table, any chains, `-L CHAIN` too). Refuses, located,
 * what a listing cannot show exactly.
 */
export function readListing(text: string): ReadListing {
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  const out: string[] = [];
  let chain: string | null = null;
  let verbose: boolean | null = null;
  /** `--line-numbers`: a `num` column first. */
  let numbered = false;
  const builtins = new Set<string>();
  /** Chains listed so far, with their header's line. */
  const seen = new Map<string, number>();
  lines.forEach((raw, i) => {
    const n = i + 1;
    const line = raw.replace(/\r$/, '');
    const fail = (why: string, column = 1): never => {
      throw syntaxError(`iptables -L listing: ${why}`, n, column, line);
    };
    const header = /^\s*\\?Chain (\S+) \((?:policy (ACCEPT|DROP)\b[^)]*|(\d+) references)\)\s*$/.exec(line);
    if (header) {
      if (seen.has(header[1])) {
        fail(`chain ${header[1]} is listed a second time (first on line ${seen.get(header[1])}): several tables pasted together? send one table per dump (\`iptables -t TABLE -L -n -v\`)`, line.indexOf('Chain') + 7);
      }
      seen.set(header[1], n);
      chain = header[1];
      verbose = null;
      if (header[2]) builtins.add(chain);
      out.push(header[2] ? `-P ${chain} ${header[2]}` : `-N ${chain}`);
      return;
    }
    const columns = /^\s*(num\s+)?pkts\s+bytes\s+target\s+prot\s+opt\s+in\s+out\s+source\s+destination\s*$/.exec(line);
    if (columns) {
      verbose = true;
      numbered = columns[1] !== undefined;
      out.push('');
      return;
    }
    if (/^\s*(num\s+)?target\s+prot\s+opt\s+source\s+destination\s*$/.test(line)) {
      fail('a listing without -v does not show the interfaces rules test (in/out), so its rules cannot be read exactly; list with `iptables -L -n -v` (or send `iptables-save` output)');
    }
    if (line.trim() === '' || line.trim().startsWith('#')) {
      out.push('');
      return;
    }
    if (chain === null || verbose === null) fail('a rule row before its chain\'s header (`Chain NAME (…)` and the column names); paste the listing from a `Chain` line');
    // pkts bytes target prot opt in out source destination [extension text]
    const words: { text: string; at: number }[] = [];
    const re = /\S+/g;
    let w: RegExpExecArray | null;
    if (numbered) re.exec(line);
    while (words.length < 9 && (w = re.exec(line))) words.push({ text: w[0], at: w.index });
    let k = 2;
    let target = '';
    if (words.length >= 9 && OPT.has(words[4].text)) target = words[k++].text;
    else if (!(words.length >= 8 && OPT.has(words[3].text))) fail('this row does not have the columns of `iptables -L -n -v` (pkts bytes target prot opt in out source destination); ip6tables listings are not read: send `ip6tables-save` output');
    const [prot, opt, inIf, outIf, src, dst] = words.slice(k, k + 6);
    if (!dst) fail('the row is cut short before its destination column', line.length + 1);
    const restAt = dst.at + dst.text.length;
    const [pNot, pValue] = negation(prot.text);
    const protocol = PROTOCOL_NAMES[pValue] ?? pValue;
    const parts = [
      `-A ${chain}`,
      address(src.text, '-s', (why) => fail(why, src.at + 1)),
      address(dst.text, '-d', (why) => fail(why, dst.at + 1)),
      iface(inIf.text, '-i'),
      iface(outIf.text, '-o'),
      protocol === 'all' ? (pNot ? fail(`'${prot.text}': no protocol cannot be negated`, prot.at + 1) : '') : `${pNot}-p ${protocol}`,
      opt.text === '-f' ? '-f' : opt.text === '!f' ? '! -f' : '',
    ];
    let rest = line.slice(restAt);
    // iptables-nft lists `-j NOTRACK` as target CT with the text NOTRACK.
    const notrack = /^(.*?)\s+NOTRACK\s*$/.exec(rest);
    if (target === 'CT' && notrack) {
      target = 'NOTRACK';
      rest = notrack[1];
    }
    const { matches, targetOptions } = readExtras(rest, target, (why, at) => fail(why, restAt + at + 1));
    parts.push(...matches);
    if (target) parts.push(`-j ${target}`, ...targetOptions);
    else if (targetOptions.length > 0) fail('target options on a row without a target', restAt + 1);
    out.push(parts.filter(Boolean).join(' '));
  });
  const first = lines.findIndex((l) => l.trim() !== '') + 1;
  const diagnostics: Diagnostic[] = [{ severity: 'info', code: 'LISTING_READ', message: LISTING_LIMITS, line: first }];
  const table = tableOfBuiltins(builtins);
  if (table) {
    diagnostics.push({
      severity: 'info', code: 'TABLE_INFERRED', line: first,
      message: `read as the ${table} table: the listing's built-in chains (${[...builtins].join(', ')}) are ${table}'s`,
    });
  }
  return { text: out.join('\n'), diagnostics, ...(table ? { table } : {}) };
}
