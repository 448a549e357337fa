/** `iptables -L -n -v` listings read back into rules (issue 14, item 3), and what cannot be read exactly refused, located. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineError, parseDump } from '../../../src/engine/index.ts';
import { fixture } from '../../helpers.ts';
import { canonicalRules as canonical } from '../../support/realworld-load.ts';

test('a kernel listing reads back to the rules iptables-save shows for the same kernel (every match and target kind)', () => {
  const save = fixture('listing', 'features.saved.iptables-save.txt');
  for (const table of ['nat', 'filter']) {
    const listing = fixture('listing', `features-${table}.iptables-L.txt`);
    assert.deepEqual(canonical(listing, table), canonical(save, table), table);
    const rs = parseDump(listing);
    assert.deepEqual([...rs.tables.keys()], [table]);
    const notes = rs.diagnostics.map((d) => `${d.code} ${d.line}: ${d.message}`);
    assert.ok(notes.some((n) => /^LISTING_READ 1: read from an `iptables -L -n -v` listing: .*comments without their quoting/.test(n)), notes.join('\n'));
    assert.ok(notes.some((n) => new RegExp(`^TABLE_INFERRED 1: read as the ${table} table: the listing's built-in chains`).test(n)), notes.join('\n'));
  }
  // Rules keep the listing's lines.
  const rs = parseDump(fixture('listing', 'features-nat.iptables-L.txt'));
  const dnat = rs.tables.get('nat')!.chains.get('X')!.rules[0];
  assert.equal(dnat.line, 18);
  assert.equal(dnat.text, '-A X -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j DNAT --to-destination 10.0.0.1:6443');
});

function refusal(text: string): EngineError {
  try {
    parseDump(text);
  } catch (e) {
    assert.ok(e instanceof EngineError);
    return e;
  }
  assert.fail('read');
}

test('what a listing cannot show is refused with its line and column and the command that shows it', () => {
  const noV = refusal(fixture('listing', 'features-nat-no-v.iptables-L.txt'));
  assert.equal(noV.code, 'DUMP_SYNTAX');
  assert.deepEqual([noV.location?.line, noV.location?.column], [2, 1]);
  assert.match(noV.message, /without -v does not show the interfaces .* `iptables -L -n -v`/);
  const names = refusal(fixture('listing', 'features-nat-names.iptables-L.txt'));
  assert.deepEqual([names.location?.line, names.location?.column], [3, 48]);
  assert.match(names.message, /'anywhere' is a name, not an address: list with -n/);
  // `iptables -L -n -v` and `iptables -t nat -L -n -v` pasted as one: not one table.
  const twoTables = refusal(`${fixture('listing', 'features-filter.iptables-L.txt')}\n${fixture('listing', 'features-nat.iptables-L.txt')}`);
  assert.deepEqual([twoTables.location?.line, twoTables.location?.column], [17, 7]);
  assert.match(twoTables.message, /chain INPUT is listed a second time \(first on line 1\): several tables pasted together\? send one table per dump/);
  const log = [
    'Chain INPUT (policy ACCEPT 0 packets, 0 bytes)',
    ' pkts bytes target     prot opt in     out     source               destination',
    '    0     0 LOG        0    --  *      *       0.0.0.0/0            0.0.0.0/0            LOG flags 0 level 4 prefix "x"',
  ].join('\n');
  const unknown = refusal(log);
  assert.deepEqual([unknown.location?.line, unknown.location?.column], [3, 90]);
  assert.match(unknown.message, /'LOG flags 0 level' is not something svcpath can read back from a listing exactly; send `iptables-save` output/);
});

test('a rule row of `iptables -L -n -v` that tests interfaces, negations and fragments reads as written', () => {
  const text = [
    'Chain POSTROUTING (policy ACCEPT 7154 packets, 438K bytes)',
    ' pkts bytes target     prot opt in     out     source               destination',
    ' 9599  576K MASQUERADE  all  --  *      !docker0  172.17.0.0/16        0.0.0.0/0',
    '    0     0 RETURN     tcp  !f  cali+  *       !10.0.0.0/8          10.1.2.3             tcp dpt:!53',
    '',
    'Chain KUBE-X (1 references)',
    'num   pkts bytes target     prot opt in     out     source               destination',
    '1        0     0 RETURN     udp  --  *      *       0.0.0.0/0            0.0.0.0/0            udp dpts:1:2',
  ].join('\n');
  const nat = parseDump(text, { table: 'nat' }).tables.get('nat')!;
  assert.deepEqual(nat.chains.get('POSTROUTING')!.rules.map((r) => r.text), [
    '-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE',
    '-A POSTROUTING ! -s 10.0.0.0/8 -d 10.1.2.3/32 -i cali+ -p tcp ! -f -m tcp ! --dport 53 -j RETURN',
  ]);
  // With --line-numbers.
  assert.deepEqual(nat.chains.get('KUBE-X')!.rules.map((r) => r.text), ['-A KUBE-X -p udp -m udp --dport 1:2 -j RETURN']);
});

test('NOTRACK, CT, NFLOG and PHYSDEV rows as iptables-nft lists them read back to the rules iptables-save shows', () => {
  // Printed by iptables v1.8.9 (nf_tables) for `-j NOTRACK`, `-j CT --notrack`, an NFLOG rule and a physdev match.
  const text = [
    'Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)',
    ' pkts bytes target     prot opt in     out     source               destination',
    '    0     0 CT         0    --  *      *       0.0.0.0/0            0.0.0.0/0            mark match 0x200/0xf00 /* cilium: NOTRACK for proxy traffic */ NOTRACK',
    '    0     0 CT         0    --  *      *       0.0.0.0/0            0.0.0.0/0            CT notrack',
    '',
    'Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)',
    ' pkts bytes target     prot opt in     out     source               destination',
    '    0     0 NFLOG      0    --  *      *       0.0.0.0/0            0.0.0.0/0            nflog-prefix "a b" nflog-group 2 nflog-size 100 nflog-threshold 3',
    '    0     0 DROP       0    --  *      *       0.0.0.0/0            0.0.0.0/0            PHYSDEV match --physdev-out vethwe-bridge --physdev-is-bridged',
  ].join('\n');
  const raw = parseDump(text).tables.get('raw')!;
  assert.deepEqual([...raw.chains.values()].flatMap((c) => c.rules.map((r) => r.text)), [
    '-A PREROUTING -m mark --mark 0x200/0xf00 -m comment --comment "cilium: NOTRACK for proxy traffic" -j NOTRACK',
    '-A PREROUTING -j CT --notrack',
    '-A OUTPUT -j NFLOG --nflog-prefix "a b" --nflog-group 2 --nflog-size 100 --nflog-threshold 3',
    '-A OUTPUT -m physdev --physdev-out vethwe-bridge --physdev-is-bridged -j DROP',
  ]);
});
