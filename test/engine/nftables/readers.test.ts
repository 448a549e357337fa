/** The nftables readers: what the model holds for real rulesets, command semantics, and located errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detectFormat, EngineError, parseNftables } from '../../../src/engine/index.ts';
import type { NftRuleset, NftRule, NftStatement } from '../../../src/engine/index.ts';
import { fixture } from '../../helpers.ts';

function table(rs: NftRuleset, key = 'ip kube-proxy') {
  const t = rs.tables.get(key);
  assert.ok(t, `table ${key}`);
  return t;
}

function rules(rs: NftRuleset, chain: string, key = 'ip kube-proxy'): readonly NftRule[] {
  const c = table(rs, key).chains.get(chain);
  assert.ok(c, `chain ${chain}`);
  return c.rules;
}

function syntaxError(text: string): EngineError {
  try {
    parseNftables(text);
  } catch (e) {
    assert.ok(e instanceof EngineError, String(e));
    return e;
  }
  assert.fail('expected an error');
}

test('kube-proxy TestOverallNFTablesRules (command form, jumps before chains) reads whole', () => {
  const rs = parseNftables(fixture('nftables', 'kube-proxy-overall', 'input.nft'));
  assert.equal(rs.form, 'commands');
  assert.equal(rs.hasHandles, false);
  assert.deepEqual([...rs.tables.keys()], ['ip kube-proxy']);
  const t = table(rs);
  assert.equal(t.comment, 'rules for kube-proxy');
  // Every jump and vmap target resolves once the whole file is read: no unknown chain or set.
  assert.deepEqual(rs.diagnostics, []);
  const base = [...t.chains.values()].filter((c) => c.base).map((c) => `${c.name} ${c.base!.type} ${c.base!.hook} ${c.base!.priority} ${c.base!.policy}`);
  assert.deepEqual(base, [
    'filter-prerouting-pre-dnat filter prerouting -110 accept',
    'filter-output-pre-dnat filter output -110 accept',
    'filter-forward filter forward 0 accept',
    'filter-input filter input 0 accept',
    'filter-output filter output 0 accept',
    'nat-output nat output -100 accept',
    'nat-postrouting nat postrouting 100 accept',
    'nat-prerouting nat prerouting -100 accept',
  ]);
  // filter-output's rules come from lines far apart in the file; index is their order there.
  assert.deepEqual(rules(rs, 'filter-output').map((r) => `${r.index} ${r.text}`), [
    '1 ct state new jump service-endpoints-check',
    '2 ct state new jump cluster-ips-check',
  ]);
  const [ctMatch, jump] = rules(rs, 'filter-output')[0].statements;
  assert.deepEqual(ctMatch, { kind: 'match', left: { kind: 'ct', key: 'state' }, op: 'in', right: { kind: 'literal', text: 'new' } });
  assert.deepEqual(jump, { kind: 'verdict', verdict: 'jump', target: 'service-endpoints-check' });

  const [vmap] = rules(rs, 'services')[0].statements;
  assert.deepEqual(vmap, {
    kind: 'vmap',
    key: { kind: 'concat', parts: [{ kind: 'payload', protocol: 'ip', field: 'daddr' }, { kind: 'meta', key: 'l4proto' }, { kind: 'payload', protocol: 'th', field: 'dport' }] },
    map: { kind: 'set-ref', name: 'service-ips' },
  });
  const svc4 = rules(rs, 'service-LAUZTJTB-ns4/svc4/tcp/p80');
  assert.equal(svc4[1].line, 107);
  const numgen = svc4[1].statements[0];
  assert.equal(numgen.kind, 'vmap');
  if (numgen.kind !== 'vmap') return;
  assert.deepEqual(numgen.key, { kind: 'numgen', mode: 'random', modulus: 2, offset: 0 });
  assert.equal(numgen.map.kind, 'anonymous-set');
  if (numgen.map.kind !== 'anonymous-set') return;
  assert.deepEqual(numgen.map.elements.map((e) => [e.key, e.value]), [
    [{ kind: 'literal', text: '0' }, { kind: 'verdict', verdict: 'goto', target: 'endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80' }],
    [{ kind: 'literal', text: '1' }, { kind: 'verdict', verdict: 'goto', target: 'endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80' }],
  ]);

  const masq = rules(rs, 'masquerading').map((r) => r.statements);
  assert.deepEqual(masq[0], [
    { kind: 'match', left: { kind: 'binary', op: '&', left: { kind: 'meta', key: 'mark' }, right: { kind: 'literal', text: '16384' } }, op: '==', right: { kind: 'literal', text: '0' } },
    { kind: 'verdict', verdict: 'return' },
  ]);
  assert.deepEqual(masq[1], [
    { kind: 'mangle', target: { kind: 'meta', key: 'mark' }, value: { kind: 'binary', op: '^', left: { kind: 'meta', key: 'mark' }, right: { kind: 'literal', text: '16384' } } },
  ]);
  assert.deepEqual(masq[2], [{ kind: 'nat', type: 'masquerade', flags: ['fully-random'] }]);

  const ep = rules(rs, 'endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80').map((r) => r.statements);
  assert.deepEqual(ep[1], [{ kind: 'set-update', op: 'update', set: 'affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80', key: { kind: 'payload', protocol: 'ip', field: 'saddr' } }]);
  assert.deepEqual(ep[2], [
    { kind: 'match', left: { kind: 'meta', key: 'l4proto' }, op: '==', right: { kind: 'literal', text: 'tcp' } },
    { kind: 'nat', type: 'dnat', address: { kind: 'literal', text: '10.180.0.3' }, port: { kind: 'literal', text: '80' }, flags: [] },
  ]);
  const firewall = rules(rs, 'firewall-HVFWP5L3-ns5/svc5/tcp/p80')[0].statements[0];
  assert.deepEqual(firewall, {
    kind: 'match', left: { kind: 'payload', protocol: 'ip', field: 'saddr' }, op: '!=',
    right: { kind: 'anonymous-set', elements: [{ key: { kind: 'prefix', address: '203.0.113.0', length: 25 }, line: 138 }] },
  });

  const affinity = t.sets.get('affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80');
  assert.ok(affinity);
  assert.deepEqual([affinity.isMap, affinity.key.types, affinity.flags, affinity.timeoutMs], [false, ['ipv4_addr'], ['dynamic', 'timeout'], 10_800_000]);
  const serviceIps = t.sets.get('service-ips');
  assert.ok(serviceIps?.isMap);
  assert.deepEqual(serviceIps.data?.types, ['verdict']);
  assert.equal(serviceIps.elements.length, 9);
  const noEndpoints = t.sets.get('no-endpoint-services')!;
  assert.deepEqual(noEndpoints.elements.map((e) => [e.comment, e.value]), [
    ['ns2/svc2:p80', { kind: 'verdict', verdict: 'drop' }],
    ['ns2/svc2:p80', { kind: 'verdict', verdict: 'drop' }],
    ['ns6/svc6:p80', { kind: 'verdict', verdict: 'goto', target: 'reject-chain' }],
  ]);
  assert.equal(rules(rs, 'cluster-ips-check')[0].comment, 'Reject traffic to invalid ports of ClusterIPs');
});

test('kube-proxy TestSyncProxyRulesRepeated initial state reads', () => {
  const rs = parseNftables(fixture('nftables', 'kube-proxy-sync-initial', 'input.nft'));
  assert.equal(rs.form, 'commands');
  assert.deepEqual(rs.diagnostics, []);
  const dnats = [...table(rs).chains.values()].flatMap((c) => c.rules).flatMap((r) => r.statements).filter((s) => s.kind === 'nat' && s.type === 'dnat');
  assert.equal(dnats.length, 2);
});

test('nft -a list output: handles, names of priorities resolved, element continuation lines', () => {
  const rs = parseNftables(fixture('nftables', 'kube-proxy-overall', 'list-a.txt'));
  assert.equal(rs.form, 'list');
  assert.equal(rs.hasHandles, true);
  const t = table(rs);
  assert.equal(t.handle, 1);
  const pre = t.chains.get('filter-prerouting-pre-dnat')!;
  assert.deepEqual([pre.handle, pre.base?.priority, pre.base?.priorityText], [10, -110, 'dstnat - 10']);
  assert.equal(t.chains.get('nat-postrouting')!.base?.priority, 100);
  assert.deepEqual(rules(rs, 'filter-output').map((r) => [r.index, r.handle, r.text]), [
    [1, 48, 'ct state new jump service-endpoints-check'],
    [2, 50, 'ct state new jump cluster-ips-check'],
  ]);
  assert.equal(t.sets.get('cluster-ips')!.elements.length, 6);
  assert.equal(t.chains.get('reject-chain')!.comment, 'helper for @no-endpoint-services / @no-endpoint-nodeports');
});

test('the features fixture: every modelled statement kind reads as data', () => {
  const rs = parseNftables(fixture('nftables', 'features', 'loadable.nft'));
  const c = (name: string) => rules(rs, name, 'inet t').map((r) => r.statements);
  const chain = c('c');
  const base = table(rs, 'inet t').chains.get('c')!.base!;
  assert.deepEqual([base.priority, base.policy], [5, 'drop']);
  assert.deepEqual(chain[0][0], {
    kind: 'match', left: { kind: 'ct', key: 'state' }, op: 'in',
    right: { kind: 'list', items: [{ kind: 'literal', text: 'established' }, { kind: 'literal', text: 'related' }] },
  });
  assert.deepEqual(chain[1][1], { kind: 'counter', packets: '0', bytes: '0' });
  assert.deepEqual(chain[2][0], { kind: 'match', left: { kind: 'meta', key: 'iifname' }, op: '==', right: { kind: 'literal', text: 'lo', quoted: true } });
  assert.deepEqual((chain[3][1] as Extract<NftStatement, { kind: 'match' }>).right, {
    kind: 'anonymous-set', elements: [
      { key: { kind: 'literal', text: '22' }, line: 11 },
      { key: { kind: 'range', low: { kind: 'literal', text: '80' }, high: { kind: 'literal', text: '90' } }, line: 11 },
    ],
  });
  assert.deepEqual(chain[5][0], { kind: 'limit', rate: 10, unit: 'packets', per: 'second', over: true });
  assert.deepEqual(chain[6][0], { kind: 'limit', rate: 1, unit: 'mbytes', per: 'second', over: false });
  assert.deepEqual(chain[7][0], { kind: 'log', prefix: 'hello ', level: 'info' });
  assert.deepEqual(chain[8][1], { kind: 'set-update', op: 'update', set: 'aff', key: { kind: 'payload', protocol: 'ip', field: 'saddr' }, timeoutMs: 3_600_000 });
  assert.deepEqual(chain[9][0], { kind: 'mangle', target: { kind: 'ct', key: 'mark' }, value: { kind: 'meta', key: 'mark' } });
  assert.deepEqual(chain[11][0], { kind: 'match', left: { kind: 'fib', flags: ['daddr'], result: 'type' }, op: '==', right: { kind: 'literal', text: 'local' } });
  assert.deepEqual(chain[13][0], { kind: 'reject', with: 'icmpx', code: 'admin-prohibited' });
  assert.deepEqual(chain[14][1], { kind: 'reject', with: 'tcp reset' });
  assert.deepEqual((chain[15][0] as Extract<NftStatement, { kind: 'vmap' }>).key, { kind: 'numgen', mode: 'inc', modulus: 3, offset: 1 });
  assert.deepEqual(chain[17][0], { kind: 'notrack' });
  const nat = c('n');
  assert.deepEqual(nat[0][1], {
    kind: 'nat', type: 'dnat', family: 'ip', flags: [],
    address: { kind: 'map', key: { kind: 'payload', protocol: 'ip', field: 'daddr' }, map: { kind: 'set-ref', name: 'dm' } },
  });
  assert.deepEqual(nat[2][1], { kind: 'nat', type: 'dnat', family: 'ip6', address: { kind: 'literal', text: '2001:db8::1' }, port: { kind: 'literal', text: '80' }, flags: [] });
  assert.deepEqual(nat[3][1], { kind: 'nat', type: 'redirect', port: { kind: 'literal', text: '1162' }, flags: [] });
  const post = c('p');
  assert.deepEqual(post[0][1], {
    kind: 'nat', type: 'masquerade', port: { kind: 'range', low: { kind: 'literal', text: '1000' }, high: { kind: 'literal', text: '2000' } }, flags: ['random', 'persistent'],
  });
  assert.deepEqual(post[1][0], {
    kind: 'nat', type: 'snat', family: 'ip', flags: [],
    address: { kind: 'range', low: { kind: 'literal', text: '1.2.3.4' }, high: { kind: 'literal', text: '1.2.3.9' } },
  });
  const ty = table(rs, 'inet t').sets.get('ty')!;
  assert.deepEqual(ty.key.typeof, [{ kind: 'payload', protocol: 'ip', field: 'daddr' }, { kind: 'payload', protocol: 'tcp', field: 'dport' }]);
  assert.deepEqual(ty.elements[0], {
    key: { kind: 'concat', parts: [{ kind: 'literal', text: '1.2.3.4' }, { kind: 'literal', text: '80' }] }, line: 5, timeoutMs: 3_600_000, comment: 'x',
  });
  assert.deepEqual(rs.diagnostics, []);
});

test('a statement not modelled is kept as text with a diagnostic; the verdict after it still counts', () => {
  const rs = parseNftables([
    'table inet f {',
    '\tchain c {',
    '\t\ttcp flags syn / syn,ack tcp option maxseg size set rt mtu counter jump next comment "clamp"',
    '\t\tmeta l4proto tcp queue num 3 bypass',
    '\t}',
    '\tchain next {',
    '\t}',
    '}',
  ].join('\n'));
  const [clamp, queue] = rules(rs, 'c', 'inet f');
  assert.deepEqual(clamp.statements, [
    { kind: 'unmodelled', text: 'tcp flags syn / syn,ack tcp option maxseg size set rt mtu counter' },
    { kind: 'verdict', verdict: 'jump', target: 'next' },
  ]);
  assert.equal(clamp.comment, 'clamp');
  assert.deepEqual(queue.statements, [
    { kind: 'match', left: { kind: 'meta', key: 'l4proto' }, op: '==', right: { kind: 'literal', text: 'tcp' } },
    { kind: 'unmodelled', text: 'queue num 3 bypass' },
  ]);
  assert.deepEqual(rs.diagnostics.map((d) => [d.code, d.line, d.column]), [['NFT_UNMODELLED', 3, 3], ['NFT_UNMODELLED', 4, 20]]);
});

test('commands: insert, add at a handle or index, delete by handle, flush, delete element, priorities by name', () => {
  const rs = parseNftables([
    'add table inet t',
    'add chain inet t c { type filter hook input priority filter + 5 ; policy drop ; }',
    'add chain inet t n { type nat hook postrouting priority srcnat - 10 ; }',
    'add set inet t s { type ipv4_addr ; flags interval ; }',
    'add rule inet t c ip saddr 10.0.0.1 accept',
    'add rule inet t c ip saddr 10.0.0.2 accept',
    'insert rule inet t c ip saddr 10.0.0.0 accept',
    'add rule inet t c index 0 ip saddr 10.0.0.9 drop',
    'add element inet t s { 10.0.0.0/8, 192.168.0.0/16, 172.16.0.1-172.16.0.9 }',
    'delete element inet t s { 192.168.0.0/16 }',
    'add rule inet t n masquerade',
    'flush chain inet t n',
    'add rule inet t n ip daddr @s return',
  ].join('\n'));
  assert.deepEqual(rules(rs, 'c', 'inet t').map((r) => `${r.index}:${r.text}`), [
    '1:ip saddr 10.0.0.0 accept', '2:ip saddr 10.0.0.9 drop', '3:ip saddr 10.0.0.1 accept', '4:ip saddr 10.0.0.2 accept',
  ]);
  assert.deepEqual(rules(rs, 'n', 'inet t').map((r) => r.text), ['ip daddr @s return']);
  const t = table(rs, 'inet t');
  assert.deepEqual([t.chains.get('c')!.base?.priority, t.chains.get('c')!.base?.policy, t.chains.get('n')!.base?.priority], [5, 'drop', 90]);
  assert.deepEqual(t.sets.get('s')!.elements.map((e) => e.key.kind), ['prefix', 'range']);

  const handles = parseNftables([
    'table ip x {',
    '\tchain c {',
    '\t\tip saddr 1.1.1.1 drop # handle 4',
    '\t\tip saddr 2.2.2.2 drop # handle 7',
    '\t}',
    '}',
    'delete rule ip x c handle 4',
    'add rule ip x c position 7 ip saddr 3.3.3.3 accept',
    'insert rule ip x c handle 7 ip saddr 4.4.4.4 accept',
  ].join('\n'));
  assert.equal(handles.form, 'commands');
  assert.deepEqual(rules(handles, 'c', 'ip x').map((r) => `${r.index}:${r.text}`), ['1:ip saddr 4.4.4.4 accept', '2:ip saddr 2.2.2.2 drop', '3:ip saddr 3.3.3.3 accept']);
  const flushed = parseNftables('table ip a {\n chain c {\n accept\n }\n}\nflush ruleset\nadd table ip b\n');
  assert.deepEqual([...flushed.tables.keys()], ['ip b']);
});

test('several tables of several families, other software beside kube-proxy', () => {
  const rs = parseNftables(fixture('realworld', 'temach-kubeadm-2.nft.txt'));
  assert.deepEqual([...rs.tables.keys()], ['ip flannel-ipv4']);
  const post = table(rs, 'ip flannel-ipv4').chains.get('postrtg')!;
  assert.deepEqual([post.base?.type, post.base?.hook, post.base?.priority, post.comment], ['nat', 'postrouting', 100, 'chain to manage traffic masquerading by flannel']);
  assert.deepEqual(post.rules[0].statements[0], { kind: 'match', left: { kind: 'meta', key: 'mark' }, op: '==', right: { kind: 'literal', text: '16384' } });
  const both = parseNftables('table ip nat {\n}\ntable ip6 nat {\n}\ntable inet filter {\n}\n');
  assert.deepEqual([...both.tables.keys()], ['ip nat', 'ip6 nat', 'inet filter']);
});

/** Real-world dumps: each parses, or fails where a person reading it would point. */
const REALWORLD: ReadonlyArray<[string, string | null, number?, number?]> = [
  // Pasted from inside `table ip filter { … }`: the table line is missing.
  ['calico-8025-1.nft.txt', 'a chain outside any table', 1, 2],
  ['calico-8025-2.nft.txt', 'a chain outside any table', 1, 2],
  // A map cut out of its table, and cut short by the reporter.
  ['k8s-131765-1.nft.txt', 'a map outside any table', 1, 9],
  ['saifsust-kubeadm-1.nft.txt', 'a chain outside any table', 1, 1],
  // The poster ended the paste with "...." in place of the rest of the table.
  ['temach-kubeadm-1.nft.txt', "expected a chain, set or map of table ip kube-proxy, found '....'", 90, 1],
  ['temach-kubeadm-2.nft.txt', null],
];

for (const [file, message, line, column] of REALWORLD) {
  test(`real-world nft dump ${file}`, () => {
    const text = fixture('realworld', file);
    assert.equal(detectFormat(text).format, 'nftables');
    if (message === null) {
      assert.ok(parseNftables(text).tables.size > 0);
      return;
    }
    const e = syntaxError(text);
    assert.equal(e.code, 'DUMP_SYNTAX');
    assert.ok(e.message.startsWith(message), e.message);
    assert.deepEqual([e.location?.line, e.location?.column], [line, column]);
    assert.equal(e.location?.text, text.split('\n')[line! - 1]);
  });
}

test('syntax errors are located', () => {
  const cases: Array<[string, string, number, number]> = [
    ['table ip t {\n\tchain c {\n\t\taccept\n', 'the input ends inside chain', 4, 1],
    ['table ip t {\n\tchain c {\n\t\ttype filter hook sideways priority 0;\n\t}\n}\n', "unknown hook 'sideways'", 3, 20],
    ['table ip t {\n\tchain c {\n\t\ttype filter hook input priority upward;\n\t}\n}\n', "unknown priority 'upward'", 3, 35],
    ['add table ip t\nadd chain ip t c\nmodify rule ip t c accept\n', "expected a command (add, insert, delete, flush, …) or 'table', found 'modify'", 3, 1],
    ['add table ip t\nadd element ip t nope { 1.2.3.4 }\n', "table ip t has no set or map 'nope'", 2, 18],
    ['table ip t {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { 1.2.3.4, }\n\t}\n}\n}\n', "'}' closes nothing", 7, 1],
    ['table ip t {\n\tchain c {\n\t\tip saddr 1.2.3.4 comment "oops\n\t}\n}\n', 'unterminated string', 3, 28],
    ['add table ip t\ndelete rule ip t c handle 3\n', "no chain 'c' in table ip t", 2, 18],
  ];
  for (const [text, message, line, column] of cases) {
    const e = syntaxError(text);
    assert.equal(e.code, 'DUMP_SYNTAX', e.message);
    assert.ok(e.message.startsWith(message), `${JSON.stringify(text)}: ${e.message}`);
    assert.deepEqual([e.location?.line, e.location?.column], [line, column], e.message);
    assert.equal(e.location?.text, text.split('\n')[line - 1]);
    assert.ok(e.excerpt()?.includes('^'));
  }
  assert.equal(syntaxError('\n# nothing\n').code, 'DUMP_EMPTY');
});

test('JSON errors name the JSON path; a JSON syntax error its line and column', () => {
  const doc = JSON.parse(fixture('nftables', 'kube-proxy-overall', 'ruleset.json')) as { nftables: Array<Record<string, Record<string, unknown>>> };
  const i = doc.nftables.findIndex((o) => o.rule !== undefined);
  (doc.nftables[i].rule.expr as unknown[])[0] = { match: { op: '~=', left: { meta: { key: 'mark' } }, right: 1 } };
  const e = syntaxError(JSON.stringify(doc));
  assert.equal(e.message, `nftables[${i}].rule.expr[0].match.op: unknown operator '~='`);
  const bad = syntaxError('{"nftables": [\n{"table": {"family": "ip", "name": "t"}},\n{"chain": }\n]}');
  assert.equal(bad.code, 'DUMP_SYNTAX');
  assert.deepEqual([bad.location?.line, bad.location?.column, bad.location?.text], [3, 11, '{"chain": }']);
  // Nesting deeper than any ruleset: an error, not a stack overflow.
  const deep = `{"nftables": [{"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [{"match": {"op": "==", "left": ${'{"concat": ['.repeat(100_000)}1${']}'.repeat(100_000)}, "right": 1}}]}}]}`;
  assert.equal(syntaxError(deep).code, 'DUMP_SYNTAX');
  assert.equal(syntaxError(deep.slice(0, -3)).code, 'DUMP_SYNTAX');
  const family = syntaxError('{"nftables": [{"table": {"family": "ipx", "name": "t"}}]}');
  assert.equal(family.message, "nftables[0].table.family: unknown family 'ipx'");
  // A statement the model does not describe is kept, as text, with a diagnostic.
  doc.nftables[i].rule.expr = [{ queue: { num: 3 } }, { accept: null }];
  const rs = parseNftables(JSON.stringify(doc));
  const rule = [...rs.tables.get('ip kube-proxy')!.chains.values()].flatMap((c) => c.rules).find((r) => r.statements[0]?.kind === 'unmodelled');
  assert.deepEqual(rule?.statements, [{ kind: 'unmodelled', text: '{"queue":{"num":3}}' }, { kind: 'verdict', verdict: 'accept' }]);
  assert.ok(rs.diagnostics.some((d) => d.code === 'NFT_UNMODELLED' && d.message.startsWith(`nftables[${i}].rule.expr[0]`)));
});

test('detectFormat names all three nft forms', () => {
  const forms = [
    ['kube-proxy-overall/input.nft', 'commands'],
    ['kube-proxy-overall/list-a.txt', 'list'],
    ['kube-proxy-overall/ruleset.json', 'json'],
  ] as const;
  for (const [file, form] of forms) {
    const d = detectFormat(fixture('nftables', ...file.split('/')));
    assert.deepEqual([d.format, d.nftForm], ['nftables', form], file);
  }
  assert.deepEqual(detectFormat('table ip nat {\n').format, 'nftables');
  assert.equal(detectFormat('*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n').format, 'iptables-save');
  assert.equal(detectFormat('-A KUBE-SERVICES -j ACCEPT\n').format, 'iptables-S');
});

test('real-world fragments: their rules read, unmodelled nowhere, once put back in the table they came from', () => {
  const lines = (file: string) => fixture('realworld', file).split('\n');
  const wrap = (table: string, body: string[], close = '}') => [`table ${table} {`, ...body, close].join('\n');
  const cases: Array<[string, string, number]> = [
    // The paste ends with the table's own '}' and the first lines of the next table: kept to the '}'.
    [wrap('ip filter', lines('calico-8025-1.nft.txt').slice(0, 41), ''), 'ip filter', 10],
    [wrap('ip nat', lines('calico-8025-2.nft.txt')), 'ip nat', 14],
    [wrap('ip nat', lines('saifsust-kubeadm-1.nft.txt')), 'ip nat', 5],
    // Cut by its reporter after an element's ',': the braces are closed for it.
    [wrap('ip kube-proxy', lines('k8s-131765-1.nft.txt'), '}}}'), 'ip kube-proxy', 0],
    [lines('temach-kubeadm-1.nft.txt').slice(0, 89).join('\n') + '\n}', 'ip kube-proxy', 14],
  ];
  for (const [text, key, ruleCount] of cases) {
    const rs = parseNftables(text);
    const all = [...table(rs, key).chains.values()].flatMap((c) => c.rules);
    assert.equal(all.length, ruleCount, key);
    assert.ok(all.every((r) => r.statements.every((s) => s.kind !== 'unmodelled')), key);
    assert.ok(rs.diagnostics.every((d) => d.code === 'NFT_UNKNOWN_CHAIN'), JSON.stringify(rs.diagnostics[0]));
  }
  const dns = parseNftables(cases[3][0]).tables.get('ip kube-proxy')!.sets.get('no-endpoint-services')!;
  assert.deepEqual(dns.elements[0].value, { kind: 'verdict', verdict: 'drop' });
  assert.equal(dns.elements[0].comment, 'sys-ingress-priv/internal-ingress-controller-v2:web');
});
