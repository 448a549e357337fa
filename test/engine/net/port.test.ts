/**
 * Port words are read as iptables reads them. The expectations are what iptables-restore v1.8.9
 * --test said about each word in `-p tcp -m tcp --dport WORD` (and what iptables-save printed
 * back for the numbers it took).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineError, parseDump } from '../../../src/engine/index.ts';
import { readPort, readPortRange, readUdpPort } from '../../../src/engine/net/port.ts';
import type { DumpChain } from '../../../src/engine/netfilter/rule.ts';

test('port words: decimal, 0x hexadecimal, leading-zero octal, a leading +; errors past 65535', () => {
  const cases: [string, ReturnType<typeof readPort>][] = [
    ['80', 80], ['0', 0], ['65535', 65535], ['0x50', 80], ['0X50', 80], ['0120', 80], ['+80', 80], ['+0x50', 80],
    ['0080', 'invalid'], ['08', 'invalid'], ['0x', 'invalid'], ['65536', 'invalid'], ['99999', 'invalid'],
    ['123456789012345678901234567890', 'invalid'], ['-1', 'invalid'], ['-0', 'invalid'], ['+', 'invalid'], ['', 'invalid'],
    ['80,81', 'invalid'], ['8 0', 'invalid'], [' 80', 80],
    // Names are looked up in /etc/services of the machine that loads the rules: kept, not resolved.
    // A word that is not plainly a number may be a name there, so it is never refused.
    ['http', 'name'], ['9pfs', 'name'], ['nosuchsvc', 'name'], ['0x1g', 'name'],
  ];
  for (const [word, expected] of cases) assert.equal(readPort(word), expected, JSON.stringify(word));
});

test('udp ports are read differently by iptables 1.8.9: decimal only, leading zeros, cut to 16 bits, any range', () => {
  const cases: [string, ReturnType<typeof readUdpPort>][] = [
    ['80', 80], ['0120', 120], ['0080', 80], ['+80', 80], ['99999', 34463], ['65536', 0], [' 80', 80],
    ['0x50', 'invalid'], ['-1', 'invalid'], ['', 'invalid'], ['http', 'name'],
    // strtol into an int: negative ints are refused, the rest cut to 16 bits.
    ['2147483648', 'invalid'], ['4294967295', 'invalid'], ['2147483647', 65535], ['4294967376', 80], ['-4294967216', 80],
    ['-0', 0], ['00000000000080', 80], ['99999999999', 59391], ['99999999999999999999', 'invalid'], ['-4294967296', 0],
  ];
  for (const [word, expected] of cases) assert.equal(readUdpPort(word), expected, JSON.stringify(word));
  assert.deepEqual(readPortRange('80:70', 'udp'), { range: [80, 70] });
  assert.deepEqual(readPortRange('0x50', 'udp'), { error: 'Port "0x50" does not resolve to anything.' });
  const rs = parseDump('*nat\n:X - [0:0]\n-A X -d 10.0.0.1/32 -p udp -m udp --dport 0120 -j ACCEPT\nCOMMIT\n');
  assert.deepEqual((rs.tables.get('nat')!.chains.get('X') as DumpChain).dispatchAt(0), { dst: '10.0.0.1', port: 120 });
});

test('port ranges: split at the first colon, open ends, min above max is an error', () => {
  assert.deepEqual(readPortRange('80:90'), { range: [80, 90] });
  assert.deepEqual(readPortRange(':80'), { range: [0, 80] });
  assert.deepEqual(readPortRange('80:'), { range: [80, 65535] });
  assert.deepEqual(readPortRange('0x50:0120'), { range: [80, 80] });
  assert.deepEqual(readPortRange('http:90'), { range: [null, 90] });
  assert.deepEqual(readPortRange('80:70'), { error: 'invalid portrange (min > max)' });
  assert.deepEqual(readPortRange('80:90:100'), { error: "invalid port/service `90:100' specified" });
  assert.deepEqual(readPortRange('0080'), { error: "invalid port/service `0080' specified" });
});

function syntaxErrorOf(rule: string, fastReader = true): { message: string; line?: number; column?: number; text?: string } {
  try {
    parseDump(`*nat\n:X - [0:0]\n${rule}\nCOMMIT\n`, { fastReader });
  } catch (e) {
    assert.ok(e instanceof EngineError);
    return { message: e.message, ...e.location };
  }
  assert.fail(`no error for ${rule}`);
}

test('a port iptables would refuse is a syntax error at its line and column, whichever reader reads the line', () => {
  for (const fastReader of [true, false]) {
    const rule = '-A X -p tcp -m tcp --dport 99999 -j ACCEPT';
    const e = syntaxErrorOf(rule, fastReader);
    assert.match(e.message, /invalid port\/service `99999' specified/);
    assert.equal(e.line, 3);
    assert.equal(e.column, rule.indexOf('99999') + 1);
    assert.equal(e.text, rule);
  }
  const range = '-A X -p tcp --sport 90:80 -j ACCEPT';
  assert.equal(syntaxErrorOf(range).column, range.indexOf('90:80') + 1);
  assert.match(syntaxErrorOf(range).message, /min > max/);
  const two = '-A X -p tcp -m tcp --dport 80 81 -j ACCEPT';
  assert.equal(syntaxErrorOf(two).column, two.indexOf('81') + 1);
  // As iptables reads it (getopt): the word after --dport is its argument, whatever it looks like.
  assert.match(syntaxErrorOf('-A X -p sctp -m sctp --dport -j ACCEPT').message, /invalid port\/service `-j' specified/);
  // What iptables takes, svcpath takes, with the number iptables reads.
  const rs = parseDump('*nat\n:X - [0:0]\n-A X -d 10.0.0.1/32 -p tcp -m tcp --dport 0120 -j ACCEPT\n-A X -p tcp --dport http -j ACCEPT\nCOMMIT\n');
  const x = rs.tables.get('nat')!.chains.get('X') as DumpChain;
  assert.equal(x.rules.length, 2);
  // The key a long chain is indexed by is the port iptables reads, 80, not 120.
  assert.deepEqual(x.dispatchAt(0), { dst: '10.0.0.1', port: 80 });
  assert.deepEqual(x.dispatchAt(1), { dst: null, port: null });
});
