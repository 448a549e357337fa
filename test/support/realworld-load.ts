/**
 * Real-world dumps made loadable into a kernel (issue 14, item 2): each pasted dump is read as
 * svcpath reads it, and the kernel is given the same rules, in the same order, *as the user wrote
 * them* (the rule texts, not svcpath's printer), plus the smallest completion that lets
 * iptables-restore take them and the packets reach them. Every completion step is listed, so the
 * test can hold it to what test/fixtures/realworld/KERNEL.md writes down per file.
 *
 * The steps:
 * - table headers, chain declarations and COMMIT where the paste has none (a fragment);
 * - the hook rules kube-proxy installs, where the dump shows a kube-proxy chain but not the hook
 *   (svcpath's completeKubeProxy, the same assumptions a trace of the paste states);
 * - an empty chain for a jump to a chain the dump does not show;
 * - an unquoted multi-word comment quoted (iptables-restore splits it otherwise);
 * - an empty ipset for every `--match-set` (made with `ipset create` before the rules load).
 */
import { completeKubeProxy, parseDump, printRuleset } from '../../src/engine/index.ts';
import { fixture } from '../helpers.ts';
import type { Ruleset } from '../../src/engine/index.ts';

/** Targets that are extensions, not chains. */
const TARGETS = new Set([
  'ACCEPT', 'DROP', 'RETURN', 'REJECT', 'DNAT', 'SNAT', 'MASQUERADE', 'REDIRECT', 'MARK', 'CONNMARK', 'LOG', 'NFLOG', 'NOTRACK',
  'CHECKSUM', 'CT', 'TPROXY', 'QUEUE', 'NFQUEUE', 'TRACE', 'TCPMSS', 'ULOG', 'SET', 'CLASSIFY', 'DSCP', 'TOS', 'TTL', 'AUDIT',
]);

const BUILTIN: Readonly<Record<string, readonly string[]>> = {
  raw: ['PREROUTING', 'OUTPUT'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
};

export interface IpSet {
  readonly name: string;
  /** `ipset create` type: one dimension per `src`/`dst` flag of the match. */
  readonly type: 'hash:ip' | 'hash:ip,port';
}

export interface Loadable {
  /** What iptables-restore is given. */
  readonly dump: string;
  /** The same text read by svcpath: what the trace runs on. */
  readonly rs: Ruleset;
  /** The paste as svcpath reads and completes it for a trace: its rules sit where the loaded dump has them. */
  readonly pasted: Ruleset;
  readonly ipsets: readonly IpSet[];
  /** Every completion step, in a stable order. */
  readonly completion: readonly string[];
}

/** Quote an unquoted multi-word comment: `--comment a b c` → `--comment "a b c"`. */
function quoteComments(text: string, words: readonly string[][]): string {
  let out = text;
  for (const args of words) {
    const joined = args.join(' ');
    const at = out.indexOf(`--comment ${joined}`);
    if (at >= 0) out = `${out.slice(0, at)}--comment "${joined}"${out.slice(at + `--comment ${joined}`.length)}`;
  }
  return out;
}

export function realworldLoadable(text: string): Loadable {
  const pasted = parseDump(text);
  const completed = completeKubeProxy(pasted);
  const completion: string[] = [];
  for (const d of pasted.diagnostics) {
    if (d.code === 'TABLE_INFERRED' || d.code === 'INPUT_REPAIRED') completion.push(`read: ${d.code}${d.line !== undefined ? ` line ${d.line}` : ''}: ${d.message}`);
  }
  for (const a of completed.assumptions) if (!pasted.assumptions.includes(a)) completion.push(`hook: ${a}`);
  const ipsets = new Map<string, IpSet>();
  const lines: string[] = [];
  for (const t of completed.tables.values()) {
    const declared = new Set<string>();
    const body: string[] = [];
    const chains = [...t.chains.values()];
    for (const c of chains) {
      for (const r of c.rules) {
        let ruleText = r.text;
        const multi = r.matches.filter((m) => m.module === 'comment').flatMap((m) => m.options).filter((o) => o.args.length > 1).map((o) => [...o.args]);
        if (multi.length > 0) {
          ruleText = quoteComments(ruleText, multi);
          completion.push(`quoted: ${t.name} ${c.name} rule ${r.index} (line ${r.line}): its comment has several unquoted words`);
        }
        for (const m of r.matches) {
          if (m.module !== 'set') continue;
          for (const o of m.options) {
            if (o.name !== 'match-set' || ipsets.has(o.args[0])) continue;
            ipsets.set(o.args[0], { name: o.args[0], type: (o.args[1] ?? '').includes(',') ? 'hash:ip,port' : 'hash:ip' });
          }
        }
        body.push(ruleText);
      }
    }
    const builtins = BUILTIN[t.name] ?? [];
    for (const name of builtins) {
      const c = t.chains.get(name);
      declared.add(name);
      if (!c || c.line === 0) completion.push(`declared: ${t.name} ${name} (built-in, policy ${c?.policy ?? 'ACCEPT'})`);
    }
    const head = [`*${t.name}`, ...builtins.map((n) => `:${n} ${t.chains.get(n)?.policy ?? 'ACCEPT'} [0:0]`)];
    for (const c of chains) {
      if (declared.has(c.name)) continue;
      declared.add(c.name);
      head.push(`:${c.name} - [0:0]`);
      if (c.line === 0 && !c.synthesized) completion.push(`declared: ${t.name} ${c.name} (has rules, not declared)`);
    }
    for (const c of chains) {
      for (const r of c.rules) {
        const target = r.target?.name;
        if (!target || TARGETS.has(target) || declared.has(target)) continue;
        declared.add(target);
        head.push(`:${target} - [0:0]`);
        completion.push(`declared: ${t.name} ${target} empty (jumped to from ${c.name} rule ${r.index}, not shown)`);
      }
    }
    lines.push(...head, ...body, 'COMMIT');
  }
  for (const s of ipsets.values()) completion.push(`ipset: ${s.name} ${s.type}, empty`);
  const dump = lines.join('\n') + '\n';
  return { dump, rs: parseDump(dump), pasted: completed, ipsets: [...ipsets.values()], completion };
}

/**
 * Rules no iptables-restore of today takes, left out of both the kernel's and the trace's rules
 * (KERNEL.md says why): file → 1-based lines of the pasted file.
 */
export const LEFT_OUT: Readonly<Record<string, readonly number[]>> = {
  // `-j DNAT --to-destination :0 --persistent --to-destination :0 --persistent --to-destination 0.0.0.0:0`:
  // iptables 1.8.9 refuses a second --to-destination.
  'k8s-114537-1.iptables-save.txt': [3],
};

/** The dump with the LEFT_OUT lines removed (as the user would have to, to load it). */
function withoutLeftOut(file: string, text: string): string {
  const drop = new Set(LEFT_OUT[file] ?? []);
  if (drop.size === 0) return text;
  // Blanked, not removed: the other lines keep their numbers.
  return text.split('\n').map((l, i) => (drop.has(i + 1) ? '' : l)).join('\n');
}

export function loadableFixture(file: string): Loadable {
  const l = realworldLoadable(withoutLeftOut(file, fixture('realworld', file)));
  const left = (LEFT_OUT[file] ?? []).map((n) => `left out: line ${n}, which iptables-restore refuses`);
  return { ...l, completion: [...left, ...l.completion] };
}


/** One table's chain declarations and rules as svcpath prints them (counters left out), sorted. */
export function canonicalRules(text: string, table: string): string[] {
  const rs = parseDump(text);
  const one = { ...rs, tables: new Map([...rs.tables].filter(([name]) => name === table)) };
  return printRuleset(one).split('\n').filter((l) => l.startsWith('-A') || l.startsWith(':')).map((l) => l.replace(/ \[\d+:\d+\]$/, '')).sort();
}
