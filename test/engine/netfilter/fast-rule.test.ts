/**
 * The fast reader (fast-rule.ts) must answer exactly what the full reader answers: the same
 * ruleset for every input it accepts, and the same located error for every input that is wrong
 * (it declines those, and the full reader reports them). Held to it on every dump the tests have,
 * and on thousands of random mutations of generated lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { EngineError, parseDump } from '../../../src/engine/index.ts';
import type { ParseOptions, Ruleset } from '../../../src/engine/index.ts';
import { DumpChain, natToOf } from '../../../src/engine/netfilter/rule.ts';
import { generateCluster, renderIptablesSave, Rng } from '../../support/kube-gen.ts';

/** Everything a ruleset says, as plain data: chains, rules (read in full), keys, diagnostics. */
function describe(rs: Ruleset): unknown {
  return {
    format: rs.format,
    family: rs.family,
    diagnostics: rs.diagnostics,
    tables: [...rs.tables.values()].map((t) => ({
      name: t.name, line: t.line, jumpTargets: [...(t.jumpTargets ?? [])].sort(),
      chains: [...t.chains.values()].map((c) => ({
        name: c.name, builtin: c.builtin, policy: c.policy, line: c.line, counters: c.counters,
        keys: c instanceof DumpChain ? Array.from({ length: c.ruleCount }, (_, k) => {
          // What the parser kept of the NAT address is what the parsed rule says.
          assert.equal(c.natToAt(k), natToOf(c.rules[k]), `${c.name} #${k + 1}: ${c.rules[k].text}`);
          return { target: c.targetAt(k), ...c.dispatchAt(k), natTo: c.natToAt(k) };
        }) : null,
        rules: c.rules.map((r) => ({
          text: r.text, line: r.line, index: r.index, counters: r.counters,
          protocol: r.protocol, source: r.source, destination: r.destination, inInterface: r.inInterface,
          outInterface: r.outInterface, fragment: r.fragment, matches: r.matches, target: r.target,
        })),
      })),
    })),
  };
}

type Outcome = { ok: unknown } | { error: { code: string; message: string; location: unknown } };

function outcome(text: string, options: ParseOptions): Outcome {
  try {
    return { ok: describe(parseDump(text, options)) };
  } catch (e) {
    if (!(e instanceof EngineError)) throw e;
    return { error: { code: e.code, message: e.message, location: e.location } };
  }
}

function agree(text: string, label: string, options: ParseOptions = {}): Outcome {
  const fast = outcome(text, options);
  const full = outcome(text, { ...options, fastReader: false });
  assert.deepEqual(fast, full, label);
  return fast;
}

test('fast and full readers agree on every dump in the fixtures', () => {
  const root = join(import.meta.dirname, '..', '..', 'fixtures');
  let files = 0;
  let parsed = 0;
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.(txt|iptables-save)$/.test(name) && !name.startsWith('README')) {
        files++;
        if ('ok' in agree(readFileSync(path, 'utf8'), path)) parsed++;
      }
    }
  };
  walk(root);
  assert.ok(files > 80 && parsed > 60, `${files} files, ${parsed} parsed`);
});

test('fast and full readers agree on a generated node, as iptables-save and as iptables -S', () => {
  const dump = renderIptablesSave(generateCluster({ seed: 7, services: 150, nodePortShare: 0.3, loadBalancerShare: 0.2, affinityShare: 0.2 }));
  assert.ok('ok' in agree(dump, 'iptables-save'));
  // The nat table alone, as `iptables -t nat -S` prints it.
  const nat = dump.slice(dump.indexOf('*nat'), dump.indexOf('COMMIT', dump.indexOf('*nat')));
  const listing = nat.split('\n').filter((l) => l.startsWith(':') || l.startsWith('-A'))
    .map((l) => (l.startsWith(':') ? (l.includes(' - ') ? `-N ${l.slice(1).split(' ')[0]}` : `-P ${l.slice(1).split(' ').slice(0, 2).join(' ')}`) : l)).join('\n');
  assert.ok('ok' in agree(listing, 'iptables -S', { format: 'iptables-S', table: 'nat' }));
});

test('fast and full readers agree on restore payloads: chains out of order, deleted, flushed and declared again', () => {
  const dump = [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':A - [0:0]', ':B - [0:0]', ':C - [0:0]', ':D - [0:0]', ':E - [0:0]', ':F - [0:0]', ':G - [0:0]',
    '-A PREROUTING -j A',
    '-A G -j RETURN',
    '-A A -j B',
    '-A C -j D',
    '-A A -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -j C',
    '-X B',
    '-A B -j RETURN',
    '-N B',
    '-A B -j C',
    '-F C',
    '-A C -p tcp -j DNAT --to-destination 10.1.1.1:80',
    '-I A 1 -j G',
    '-X E',
    ':E - [5:6]',
    '-A E -j RETURN',
    '-A F -j RETURN',
    '-A G -j A',
    'COMMIT',
    '',
  ].join('\n');
  const result = agree(dump, 'restore payload');
  assert.ok('ok' in result);
  const nat = parseDump(dump).tables.get('nat')!;
  assert.deepEqual([...nat.chains.keys()].sort(), ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'PREROUTING']);
  // A rule for a chain deleted before it makes the chain again (as the full reader always has).
  assert.deepEqual(nat.chains.get('B')!.rules.map((r) => r.text), ['-A B -j RETURN', '-A B -j C']);
  assert.deepEqual(nat.chains.get('C')!.rules.map((r) => r.text), ['-A C -p tcp -j DNAT --to-destination 10.1.1.1:80']);
  assert.deepEqual(nat.chains.get('A')!.rules.map((r) => r.text), ['-I A 1 -j G', '-A A -j B', '-A A -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -j C']);
  assert.deepEqual(nat.chains.get('G')!.rules.map((r) => r.text), ['-A G -j RETURN', '-A G -j A']);
});

test('fast and full readers agree on control characters at the end of a line (only space, tab and CR are blanks)', () => {
  const wrap = (line: string) => `*nat\n:X - [0:0]\n${line}\nCOMMIT\n`;
  for (const text of [
    wrap('-A X -j ACCEPT\x0b'), wrap('-A X -d 1.2.3.4 -j ACCEPT\x00'), wrap('-A X\x0c'), wrap('-A X -j ACCEPT -d 1.2.3.4\x01'),
    wrap('-A X -j ACCEPT \t\r'), '*nat\n:X - [0:0]\x01\n-A X -j ACCEPT\nCOMMIT\n', '*nat\n:X -\x01\n-A X -j ACCEPT\nCOMMIT\n',
    '*nat\n:X - [0:0]\x0b\n-A X -j ACCEPT\nCOMMIT\n',
  ]) {
    agree(text, JSON.stringify(text));
  }
  // What the parser keeps for a rule is what its text says when read again.
  const x = parseDump(wrap('-A X -j ACCEPT\x0b')).tables.get('nat')!.chains.get('X') as DumpChain;
  assert.equal(x.targetAt(0), 'ACCEPT\x0b');
  assert.equal(x.rules[0].target?.name, 'ACCEPT\x0b');
});

test('fast and full readers agree on characters past ASCII (the fast paths read bytes)', () => {
  // U+0141 and U+0120 have the low bytes of 'A' and ' ': a reader that kept only low bytes
  // would take -\u0141 for -A, and \u0120 for a blank.
  const chainLines = [':KUBE-SVC-\u00c4 - [0:0]', ':X\u0120Y - [0:0]', ':X - [0:0]\u00a0', ':X\u00a0- [0:0]'];
  const ruleLines = [
    '-A X -m comment --comment "caf\u00e9 \u2603" -j ACCEPT',
    '-A X -m comment --comment caf\u00e9 -j ACCEPT',
    '-A X -d 10.0.0.1/32\u00a0-j ACCEPT',
    '-A X -d 10.0.0.1/32 -j KUBE-SEP-\u0141',
    '-\u0141 X -j ACCEPT',
    '-A X\u0120-j ACCEPT',
    '-A X -p tcp -m tcp --dport 8\u0030\u0660 -j ACCEPT',
    '-A X -j \ud83d\ude00',
  ];
  for (const line of chainLines) agree(`*nat\n${line}\n-A X -j ACCEPT\nCOMMIT\n`, JSON.stringify(line));
  for (const line of ruleLines) agree(`*nat\n:X - [0:0]\n${line}\nCOMMIT\n`, JSON.stringify(line));
  // The same lines in one dump whose other lines are plain ASCII: only those lines leave the fast path.
  const dump = renderIptablesSave(generateCluster({ seed: 5, services: 20 }));
  const at = dump.indexOf('COMMIT', dump.indexOf('*nat'));
  const good = [ruleLines[0], ruleLines[1], ruleLines[3], ruleLines[7]];
  const mixed = `${dump.slice(0, at)}:X - [0:0]\n${good.join('\n')}\n${dump.slice(at)}`;
  const result = agree(mixed, 'generated dump with lines past ASCII');
  assert.ok('ok' in result);
  const x = parseDump(mixed).tables.get('nat')!.chains.get('X')!;
  assert.equal(x.rules[0].text, '-A X -m comment --comment "caf\u00e9 \u2603" -j ACCEPT');
  assert.equal(x.rules[2].target?.name, 'KUBE-SEP-\u0141');
  assert.equal((x as DumpChain).targetAt(3), '\ud83d\ude00');
});

test('fast and full readers agree on backslashes in and around quotes, on lines before and after them', () => {
  // The fast reader finds quotes and backslashes with the string's own search and remembers where
  // the next backslash is: lines after one with a backslash must still be read right.
  const lines = [
    '-A X -m comment --comment "a b" -j ACCEPT',
    '-A X -m comment --comment "a\\"b" -j ACCEPT',
    '-A X -m comment --comment "plain after" -j ACCEPT',
    '-A X -m comment --comment a\\b -j ACCEPT',
    '-A X -m comment --comment "quoted after a bare backslash" -j ACCEPT',
    '-A X -m comment --comment "x\\\\" -j ACCEPT',
    '-A X -m comment --comment "one" -m comment --comment "two\\ three" -j ACCEPT',
    // Read without its escapes, this would be a rule with target DROP.
    '-A X -m comment --comment "a\\" -j DROP -m comment --comment \\"b"',
    '-A X -m comment --comment "last" -j ACCEPT',
  ];
  const dump = `*nat\n:X - [0:0]\n${lines.join('\n')}\nCOMMIT\n`;
  const result = agree(dump, 'backslashes');
  assert.ok('ok' in result);
  const x = parseDump(dump).tables.get('nat')!.chains.get('X')!;
  assert.deepEqual(x.rules.map((r) => r.matches[0].options[0].args[0]), [
    'a b', 'a"b', 'plain after', 'a\\b', 'quoted after a bare backslash', 'x\\', 'one', 'a" -j DROP -m comment --comment "b', 'last',
  ]);
  assert.equal(x.rules[7].target, undefined);
  for (let k = 0; k < lines.length; k++) agree(`*nat\n:X - [0:0]\n${lines.slice(k).join('\n')}\nCOMMIT\n`, `from line ${k}`);
});

/** What a mutation may put into a line: the forms the fast reader must decline or read exactly. */
const TOKENS = [
  '!', '! !', '-d', '-s', '--dport', '! --dport', '--dport ! 80', '--dport 0080', '--dport 123456789012', '-m', '-m tcp', '-m nosuchmodule',
  '-p', '-p TCP', '-p 6', '-p all', '-j', '-g', '-j ACCEPT', '-j NOSUCHTARGET', '-c 1 2', '--comment', '"', '"a b"', '"a\\"b"', '""',
  '10.0.0.1', '10.0.0.01', '10.0.0.1/33', '10.0.0.0/255.255.255.0', '10.0.0.1/032', '256.1.1.1', 'fd00::1', '-d fd00::1/128',
  '\t', '\r', '-', '-1', '--', '--nosuchoption', '--to-destination', '--set-xmark 0x4000/0x4000', '-f', '-i eth0', '-o', '-A', '-I',
  'KUBE-MARK-MASQ', '--src', '--dst', '--destination-port 53', '--match tcp', '--jump RETURN', '--goto KUBE-X',
  // Values iptables checks (ports, probabilities, NAT addresses), in forms it takes and refuses.
  '0120', '0x50', '+80', '--dport 0x50', '--sport 65536', '--dport 80:70', '--probability 1.5', '--probability 0x0.8p0',
  '--probability .5', '--probability 1.000', '--probability nan', '--to-destination 10.0.0.1:0120', '--to-destination 10.0.0.01:80',
  '--to-destination 10.0.0.1:99999', '--to-destination 10.0.0.1-10.0.0.2', '--to-destination :80', '--to-destination 10.0.0.1',
  '-j DNAT', '-j SNAT --to-source 10.0.0.1:80', '! -p tcp', '-p icmp', '-p udplite',
  '-m mark --mark 010', '-m mark --mark 0xzz', '-j MARK --set-xmark 0x4000/0x4000', '-j MARK --or-mark 1/2',
  // Options iptables takes once per match, options that exclude each other, and what a match must be given.
  '--comment x', '-m comment', '--mode random', '--mode nth', '--mode Random', '--every 2', '--packet 1', '-m statistic', '--probability 0.5',
  '-m recent', '--rcheck', '--set', '--name x', '--seconds 10', '-m multiport --dports 1,2', '--sports 3', '--to-ports 80', '-j REDIRECT',
  '-j MASQUERADE --to-ports 80-90', '--random-fully', '--syn', '--tcp-flags SYN SYN', '--destination-port 80',
  // Characters past ASCII: the fast paths scan bytes and must decline these outside quotes.
  '\u00e9', '\u00a0', '\u0141', '\u2028', '\ud83d\ude00', '"caf\u00e9"', '-j \u0141', '-\u0141',
];

function mutate(line: string, rng: Rng): string {
  const words = line.split(' ');
  const at = Math.floor(rng.next() * (words.length + 1));
  const token = TOKENS[Math.floor(rng.next() * TOKENS.length)];
  const options = words.map((w, i) => (w.startsWith('-') ? i : -1)).filter((i) => i > 1);
  const option = options.length > 0 ? options[Math.floor(rng.next() * options.length)] : at;
  switch (Math.floor(rng.next() * 8)) {
    // Negate an option, or put something else where its argument was.
    case 6: return [...words.slice(0, option), '!', ...words.slice(option)].join(' ');
    case 7: return [...words.slice(0, option + 1), token, ...words.slice(option + 2)].join(' ');
    case 0: return [...words.slice(0, at), token, ...words.slice(at)].join(' ');
    case 1: return [...words.slice(0, at), token, ...words.slice(at + 1)].join(' ');
    case 2: return words.filter((_, i) => i !== at).join(' ');
    case 3: {
      const i = Math.floor(rng.next() * line.length);
      return line.slice(0, i) + line.slice(i + 1);
    }
    case 4: {
      const b = Math.floor(rng.next() * words.length);
      const w = [...words];
      [w[at % w.length], w[b]] = [w[b], w[at % w.length]];
      return w.join(' ');
    }
    default: {
      const i = Math.floor(rng.next() * line.length);
      return line.slice(0, i) + token + line.slice(i);
    }
  }
}

/** Every rule and chain line of a generated node, each with the table it is in. */
function generatedLines(): { table: string; line: string }[] {
  const out: { table: string; line: string }[] = [];
  let table = '';
  for (const line of renderIptablesSave(generateCluster({ seed: 3, services: 12, nodePortShare: 0.5, loadBalancerShare: 0.3, affinityShare: 0.3 })).split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    else if (line.startsWith('-A ') || line.startsWith(':')) out.push({ table, line });
  }
  return out;
}

/** One line in a dump of its own: its table, and the chain it appends to. */
function alone(table: string, line: string): string {
  const chain = line.startsWith('-A ') ? line.split(' ')[1] : null;
  return `*${table}\n${chain ? `:${chain} - [0:0]\n` : ''}${line}\nCOMMIT\n`;
}

test('fast and full readers agree on every rule with each option negated and each argument replaced', (t) => {
  let variants = 0;
  let accepted = 0;
  const replacements = ['!', '-x', '"quoted arg"', '10.0.0.1', '10.0.0.01', '10.0.0.0/8', '10.0.0.1/33', 'fd00::1', '80', '0x4000/0x4000', '"a\\"b"', 'tcp', 'KUBE-X'];
  for (const { table, line } of generatedLines()) {
    if (!line.startsWith('-A ')) continue;
    const words = line.split(' ');
    const check = (ws: string[]) => {
      variants++;
      if ('ok' in agree(alone(table, ws.join(' ')), ws.join(' '))) accepted++;
    };
    check(words);
    words.forEach((w, i) => {
      if (i < 2 || !w.startsWith('-')) return;
      check([...words.slice(0, i), '!', ...words.slice(i)]);
      for (const r of replacements) check([...words.slice(0, i + 1), r, ...words.slice(i + 2)]);
    });
  }
  t.diagnostic(`${variants} variants, ${accepted} parsed, the rest refused, the same both ways`);
  assert.ok(variants > 5000 && accepted > 1000);
});

test('fast and full readers agree on 5,000 random mutations of generated rule and chain lines', (t) => {
  const seed = Number(process.env.SVCPATH_FUZZ_SEED ?? 4242);
  t.diagnostic(`seed ${seed} (replay with SVCPATH_FUZZ_SEED=${seed})`);
  const rng = new Rng(seed);
  const lines = generatedLines();
  let accepted = 0;
  let refused = 0;
  for (let k = 0; k < 5000; k++) {
    const { table, line } = lines[Math.floor(rng.next() * lines.length)];
    let mutated = mutate(line, rng);
    if (rng.next() < 0.3) mutated = mutate(mutated, rng);
    const result = agree(alone(table, mutated), `mutation ${k}: ${JSON.stringify(mutated)}`);
    if ('ok' in result) accepted++;
    else refused++;
  }
  t.diagnostic(`${accepted} mutated lines parsed, ${refused} refused with a located error, the same both ways`);
  assert.ok(accepted > 1000 && refused > 1000);
});
