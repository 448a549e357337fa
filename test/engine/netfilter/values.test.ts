/**
 * Probabilities and NAT addresses are read as iptables reads them. The expectations are what
 * iptables-restore v1.8.9 did with each word (refused it, or took it and iptables-save printed
 * the value shown).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineError, parseDump, printRuleset, trace } from '../../../src/engine/index.ts';
import { readMark, readNatAddress, readNatTo, readNumber32, readProbability } from '../../../src/engine/netfilter/values.ts';

test('probabilities: C strtod on the whole word, from 0 to 1', () => {
  const taken: [string, number][] = [
    ['0.5', 0.5], ['0.14285714272', 0.14285714272], ['.5', 0.5], ['1e-1', 0.1], ['0x0.8p0', 0.5], ['0x1p0', 1], ['1', 1], ['0', 0], ['1.00000000000', 1],
  ];
  for (const [word, value] of taken) assert.equal(readProbability(word), value, word);
  assert.ok(Number.isNaN(readProbability('nan')), 'nan passes the range check (iptables stores 0)');
  for (const word of ['0.5abc', 'abc', '1.5', '-0.1', '', 'inf', '0x', '1e', '.']) assert.equal(readProbability(word), 'invalid', word);
});

test('NAT addresses: dotted IPv4 without leading zeros, ports as iptables reads them, ranges', () => {
  assert.deepEqual(readNatTo('10.0.0.1:80'), { ipLo: '10.0.0.1', ipHi: '10.0.0.1', portLo: 80, portHi: 80, hasPorts: true });
  assert.deepEqual(readNatTo('10.0.0.1:0120'), { ipLo: '10.0.0.1', ipHi: '10.0.0.1', portLo: 80, portHi: 80, hasPorts: true });
  assert.deepEqual(readNatTo('10.0.0.1:80-0x5a'), { ipLo: '10.0.0.1', ipHi: '10.0.0.1', portLo: 80, portHi: 90, hasPorts: true });
  assert.deepEqual(readNatTo('10.0.0.1'), { ipLo: '10.0.0.1', ipHi: '10.0.0.1', portLo: null, portHi: null, hasPorts: false });
  assert.deepEqual(readNatTo('10.0.0.3-10.0.0.1:80'), { ipLo: '10.0.0.3', ipHi: '10.0.0.1', portLo: 80, portHi: 80, hasPorts: true });
  assert.deepEqual(readNatTo(':80'), { ipLo: '', ipHi: '', portLo: 80, portHi: 80, hasPorts: true });
  assert.deepEqual(readNatTo('10.0.0.1:http'), { ipLo: '10.0.0.1', ipHi: '10.0.0.1', portLo: null, portHi: null, hasPorts: true });
  assert.deepEqual(readNatTo('10.0.0.1:80-90/100'), { ipLo: '10.0.0.1', ipHi: '10.0.0.1', portLo: 80, portHi: 90, hasPorts: true });
  // A base is read as iptables reads it: the number at its start (1x is 1), or a service name.
  assert.deepEqual(readNatTo('10.0.0.1:80-90/1x'), { ipLo: '10.0.0.1', ipHi: '10.0.0.1', portLo: 80, portHi: 90, hasPorts: true });
  const errors: [string, string][] = [
    ['010.0.0.1:80', 'Bad IP address "010.0.0.1"'], ['10.0.0.01:80', 'Bad IP address "10.0.0.01"'], ['1.2.3', 'Bad IP address "1.2.3"'],
    ['10.0.0.256:80', 'Bad IP address "10.0.0.256"'], ['0x0a.0.0.1:80', 'Bad IP address "0x0a.0.0.1"'],
    ['10.0.0.1:80:90', 'Bad IP address "10.0.0.1:80:90"'], ['10.0.0.1:99999', "Port `99999' not valid"], ['10.0.0.1:', "Port `' not valid"],
    ['10.0.0.1:80-', "Port `' not valid"], ['10.0.0.1:90-80', "Port range `80' funky"],
    ['10.0.0.1:80abc', "Garbage after port value: `abc'"], ['10.0.0.1:http-90', "Port `http-90' not valid"],
    ['10.0.0.1:80-http', "Port `http' not valid"], ['10.0.0.1:80/100', "Garbage after port value: `/100'"],
    ['10.0.0.1:80-90/0', "Port `0' not valid"], ['10.0.0.1:80-90/65536', "Port `65536' not valid"],
  ];
  for (const [word, error] of errors) assert.deepEqual(readNatTo(word), { error }, word);
});

test('marks: 32-bit numbers in decimal, 0x hexadecimal or 0 octal, with an optional mask', () => {
  assert.equal(readNumber32('010'), 8);
  assert.equal(readNumber32('0x10'), 16);
  assert.equal(readNumber32('+16'), 16);
  assert.equal(readNumber32('4294967295'), 0xffffffff);
  for (const word of ['4294967296', '0xzz', '', '-1', '08']) assert.equal(readNumber32(word), null, word);
  assert.deepEqual(readMark('010/010'), { value: 8, mask: 8 });
  assert.deepEqual(readMark('0x4000/0x4000'), { value: 0x4000, mask: 0x4000 });
  assert.deepEqual(readMark('16'), { value: 16, mask: null });
  for (const word of ['16/', '/16', '0xzz', '1/2/3']) assert.equal(readMark(word), null, word);
});

function errorOf(rule: string, fastReader: boolean): { message: string; column?: number } | null {
  try {
    parseDump(`*nat\n:PREROUTING ACCEPT [0:0]\n${rule}\nCOMMIT\n`, { fastReader });
    return null;
  } catch (e) {
    assert.ok(e instanceof EngineError);
    return { message: e.message, column: e.location?.column };
  }
}

test('rules iptables refuses for these values are syntax errors at the value, whichever reader reads them', () => {
  const refused: [string, string, RegExp][] = [
    ['-A PREROUTING -m statistic --mode random --probability 1.5 -j ACCEPT', '1.5', /--probability/],
    ['-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.01:80', '10.0.0.01:80', /Bad IP address/],
    ['-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.1:99999', '10.0.0.1:99999', /not valid/],
    ['-A PREROUTING -j DNAT --to-destination 10.0.0.1:80', '10.0.0.1:80', /Need TCP, UDP, SCTP or DCCP/],
    ['-A PREROUTING -p udplite -j DNAT --to-destination 10.0.0.1:80', '10.0.0.1:80', /Need TCP, UDP, SCTP or DCCP/],
    ['-A PREROUTING -p tcp -j DNAT', '-j', /must be specified/],
    ['-A PREROUTING -m mark --mark 0xzz -j ACCEPT', '0xzz', /bad value '0xzz' for --mark/],
    ['-A PREROUTING -s 10.0.0.0/8 -p tcp -j DNAT --to-destination 10.0.0.1:80:90', '10.0.0.1:80:90', /Bad IP address/],
    ['-A PREROUTING -j MARK --set-xmark 0x4000/', '0x4000/', /bad value/],
    ['-A PREROUTING -j MARK --or-mark 4294967296', '4294967296', /a 32-bit number/],
  ];
  // Forms iptables takes.
  refusesAndTakes(refused, [
    '-A PREROUTING -m statistic --mode random --probability 0x0.8p0 -j ACCEPT',
    '-A PREROUTING -p icmp -j DNAT --to-destination 10.0.0.1:80',
    '-A PREROUTING ! -p tcp -j DNAT --to-destination 10.0.0.1:80',
    '-A PREROUTING -p 33 -j DNAT --to-destination 10.0.0.1:80',
    '-A PREROUTING -j DNAT --to-destination 10.0.0.1',
    '-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.1-10.0.0.3:80-90',
    // iptables-restore refuses a second address, but iptables-save prints such rules (kubernetes/kubernetes#114537).
    '-A PREROUTING -p tcp -j DNAT --to-destination :0 --persistent --to-destination :0 --persistent --to-destination 0.0.0.0:0',
  ]);
});

/**
 * Each rule of `refused` is a syntax error matching its pattern at the column of its text, and
 * each of `taken` parses, with either reader.
 */
function refusesAndTakes(refused: [string, string, RegExp][], taken: string[]): void {
  for (const fastReader of [true, false]) {
    for (const [rule, at, message] of refused) {
      const e = errorOf(rule, fastReader);
      assert.ok(e, `${rule} is refused`);
      assert.match(e.message, message, rule);
      assert.equal(e.column, rule.indexOf(at) + 1, rule);
    }
    for (const rule of taken) assert.equal(errorOf(rule, fastReader), null, rule);
  }
}

test('the tracer takes the values iptables takes: mark 010/0377 is 8/0xff, probability 0x1p0 is 1, port 0x1f90 is 8080', () => {
  const rs = parseDump([
    '*mangle', ':PREROUTING ACCEPT [0:0]',
    '-A PREROUTING -d 10.96.0.12/32 -j MARK --set-xmark 010/0377',
    'COMMIT',
    '*nat', ':PREROUTING ACCEPT [0:0]',
    '-A PREROUTING -d 10.96.0.12/32 -p tcp -m mark --mark 0x8/0xff -m statistic --mode random --probability 0x1p0 -j DNAT --to-destination 10.244.1.6:0x1f90',
    'COMMIT', '',
  ].join('\n'));
  const r = trace(rs, { node: { addresses: ['10.32.11.62'] }, packet: { source: '10.244.5.17', destination: '10.96.0.12', port: 80, protocol: 'tcp' } });
  assert.deepEqual(r.outcomes.map((o) => [o.probability, o.verdict, o.destination]), [[1, 'DNAT', { ip: '10.244.1.6', port: 8080 }]]);
});

test('--set-mark value/mask is stored as --set-xmark value/(mask | value), as iptables does', () => {
  const rs = parseDump([
    '*mangle', ':PREROUTING ACCEPT [0:0]', ':X - [0:0]',
    '-A PREROUTING -j MARK --set-xmark 0x1/0xffffffff',
    // Mask 0x3: the mark stays 0x1 (with the mask 0x2 as written, bit 0 would flip to 0).
    '-A PREROUTING -j MARK --set-mark 1/2',
    '-A PREROUTING -m mark --mark 0x1 -j X',
    'COMMIT', '',
  ].join('\n'));
  const r = trace(rs, { node: { addresses: ['10.32.11.62'] }, packet: { source: '10.244.5.17', destination: '10.96.0.12', port: 80, protocol: 'tcp' } });
  assert.ok(r.outcomes[0].path.some((s) => s.chain === 'PREROUTING' && s.index === 3), 'the mark test matches');
  assert.match(printRuleset(rs), /--set-xmark 0x1\/0x3/);
});

test('the printer gives these values as iptables-save prints them', () => {
  // Each pair: a rule as written, and what iptables-save v1.8.9 printed after iptables-restore took it.
  const pairs: [string, string][] = [
    ['-A PREROUTING -p tcp -m tcp --dport 0120 -j ACCEPT', '-A PREROUTING -p tcp -m tcp --dport 80 -j ACCEPT'],
    ['-A PREROUTING -p tcp -m tcp --dport 80:80 -j ACCEPT', '-A PREROUTING -p tcp -m tcp --dport 80 -j ACCEPT'],
    ['-A PREROUTING -p tcp -m tcp --dport :0120 -j ACCEPT', '-A PREROUTING -p tcp -m tcp --dport 0:80 -j ACCEPT'],
    ['-A PREROUTING -p udp -m udp --sport 0120:0 -j ACCEPT', '-A PREROUTING -p udp -m udp --sport 120:0 -j ACCEPT'],
    ['-A PREROUTING -p udp -m udp --dport 99999 -j ACCEPT', '-A PREROUTING -p udp -m udp --dport 34463 -j ACCEPT'],
    ['-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.1-10.0.0.1:0x50', '-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.1:80'],
    ['-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.1:80-80', '-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.1:80'],
    ['-A PREROUTING -m statistic --mode random --probability 0x0.8p0 -j X', '-A PREROUTING -m statistic --mode random --probability 0.50000000000 -j X'],
    ['-A PREROUTING -j MARK --set-mark 1/2', '-A PREROUTING -j MARK --set-xmark 0x1/0x3'],
  ];
  const rs = parseDump(`*nat\n:PREROUTING ACCEPT [0:0]\n:X - [0:0]\n${pairs.map(([written]) => written).join('\n')}\nCOMMIT\n`);
  const printed = printRuleset(rs).split('\n').filter((l) => l.startsWith('-A PREROUTING'));
  assert.deepEqual(printed, pairs.map(([, saved]) => saved));
});

test('options given twice, options that exclude each other, and what a match needs are errors where iptables finds them', () => {
  const refused: [string, string, RegExp][] = [
    ['-A PREROUTING -d 10.0.0.1 --dst 10.0.0.2 -j ACCEPT', '--dst', /multiple -d flags not allowed/],
    ['-A PREROUTING -p tcp -m tcp --dport 80 --destination-port 90 -j ACCEPT', '--destination-port', /tcp: option "--destination-port" can only be used once/],
    ['-A PREROUTING -m comment --comment a --comment b -j ACCEPT', '--comment b', /comment: option "--comment" can only be used once/],
    ['-A PREROUTING -m comment -j ACCEPT', '-m comment', /option "--comment" must be specified/],
    ['-A PREROUTING -m comment ! --comment a -j ACCEPT', '--comment', /cannot be inverted/],
    ['-A PREROUTING -m recent --set --rcheck -j ACCEPT', '--rcheck', /"--rcheck" cannot be used together with "--set"/],
    ['-A PREROUTING -m recent --name a -j ACCEPT', '-m recent', /recent: one of --set, --rcheck, --update, --remove is required/],
    ['-A PREROUTING -m statistic --mode foo --probability 0.5 -j ACCEPT', 'foo', /Bad mode "foo"/],
    ['-A PREROUTING -m statistic --probability 0.5 -j ACCEPT', '-m statistic', /option "--mode" must be specified/],
    ['-A PREROUTING -m statistic --mode random -j ACCEPT', '-m statistic', /--probability must be specified/],
    ['-A PREROUTING -m statistic --mode nth --every 3 --packet 3 -j ACCEPT', '3 -j', /--packet p must be 0 <= p <= n-1/],
    ['-A PREROUTING -m statistic --mode nth --every 0 --packet 0 -j ACCEPT', '0 --packet', /out of range \(1-4294967295\)/],
    ['-A PREROUTING -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16 -j ACCEPT', '1,2,3', /too many ports/],
    ['-A PREROUTING -p tcp -m multiport --dports 80,99999 -j ACCEPT', '80,99999', /invalid port\/service `99999'/],
    ['-A PREROUTING -m multiport --dports 80 -j ACCEPT', '--dports', /multiport needs `-p tcp'/],
    ['-A PREROUTING -m multiport --dports 80 -p tcp -j ACCEPT', '--dports', /multiport needs `-p tcp'/],
    ['-A PREROUTING -p tcp -m multiport --dports 80:80 -j ACCEPT', '80:80', /invalid portrange/],
    ['-A PREROUTING -p udp -m tcp --dport 80 -j ACCEPT', '-m tcp', /TCP match requires '-p tcp'/],
    ['-A PREROUTING -m state -j ACCEPT', '-m state', /state: option "--state" must be specified/],
    ['-A PREROUTING -m addrtype -j ACCEPT', '-m addrtype', /addrtype: one of --src-type, --dst-type is required/],
    ['-A PREROUTING -m recent --rcheck --reap -j ACCEPT', '--reap', /"--reap" also requires "--seconds"/],
    ['-A PREROUTING -m recent --rcheck --seconds 0 -j ACCEPT', '0 -j', /--seconds", or out of range/],
    ['-A PREROUTING -m recent --set --rttl -j ACCEPT', '--rttl', /"--rttl" cannot be used together with "--set"/],
    ['-A PREROUTING -m recent --rcheck ! --reap --seconds 1 -j ACCEPT', '--reap', /cannot be inverted/],
    ['-A PREROUTING -p tcp -j DNAT ! --to-destination 10.0.0.1', '--to-destination', /DNAT: option "--to-destination" cannot be inverted/],
    ['-A PREROUTING -j MARK', '-j', /MARK: one of --set-xmark/],
    ['-A PREROUTING -m comment --comment', '--comment', /option "--comment" requires an argument/],
    ['-A PREROUTING -p tcp -m tcp --syn x -j ACCEPT', 'x -j', /Bad argument 'x': --syn takes no argument/],
    ['-A PREROUTING -m conntrack --ctstate NEW ESTABLISHED -j ACCEPT', 'ESTABLISHED', /Bad argument 'ESTABLISHED'/],
    ['-A PREROUTING -p tcp -m tcp --tcp-flags SYN -j ACCEPT', '-j ACCEPT', /--tcp-flags requires two arguments/],
    ['-A PREROUTING -p tcp -m tcp --dport -j ACCEPT', '-j ACCEPT', /invalid port\/service `-j'/],
    ['-A PREROUTING -p tcp -j REDIRECT --to-ports 80:90', '80:90', /use dash/],
    ['-A PREROUTING -p tcp -j REDIRECT --to-ports 90-80', '90-80', /funky/],
    ['-A PREROUTING -j MASQUERADE --to-ports 80', '80', /Need TCP, UDP, SCTP or DCCP/],
    ['-A PREROUTING -j MARK --set-xmark 1 --or-mark 2', '--or-mark', /MARK: option "--or-mark" cannot be used together with "--set-xmark"/],
  ];
  refusesAndTakes(refused, [
    '-A PREROUTING -p tcp -m tcp --dport 80 -m tcp --dport 90 -j ACCEPT',
    '-A PREROUTING -m statistic --mode nth --every 0x10 --packet 017 -j ACCEPT',
    '-A PREROUTING -p tcp -m multiport --dports 1:2,3:4,5:6,7:8,9:10,11:12,13:14,15 -j ACCEPT',
    '-A PREROUTING -p tcp -j REDIRECT --to-ports 0120',
    '-A PREROUTING -m tcp --dport 80 -p tcp -j ACCEPT',
    // iptables-save prints these values so: the word after the option is its argument.
    '-A PREROUTING -j LOG --log-prefix -x',
    '-A PREROUTING -m comment --comment -j -j ACCEPT',
    // kube-proxy's own test dumps write comments without quotes.
    '-A PREROUTING -m comment --comment kubernetes service portals -j ACCEPT',
    '-A PREROUTING ! -p tcp -m tcp --dport 80 -j ACCEPT',
    '-A PREROUTING -p 0x6 -m tcp --dport 80 -j ACCEPT',
    '-A PREROUTING -p 006 --dport 80 -j ACCEPT',
    '-A PREROUTING -m tcp -j ACCEPT',
    '-A PREROUTING -m multiport -p tcp --dports 80 -j ACCEPT',
    '-A PREROUTING -m recent --set --seconds 0x10 --hitcount 0 -j ACCEPT',
    '-A PREROUTING -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-X --mask 255.255.255.255 --rsource -j ACCEPT',
  ]);
});

test('REDIRECT --to-ports is read as iptables reads it: 0120 is port 80, a range redirects to its first port', () => {
  for (const [ports, port] of [['0120', 80], ['0x1f90-0x1f9a', 8080], ['8080', 8080]] as const) {
    const rs = parseDump(['*nat', ':PREROUTING ACCEPT [0:0]', `-A PREROUTING -d 10.96.0.12/32 -p tcp -j REDIRECT --to-ports ${ports}`, 'COMMIT', ''].join('\n'));
    const r = trace(rs, { node: { addresses: ['10.32.11.62'] }, packet: { source: '10.244.5.17', destination: '10.96.0.12', port: 80, protocol: 'tcp' } });
    assert.deepEqual(r.outcomes.map((o) => o.destination.port), [port], ports);
  }
});

test('NAT addresses of either family: the first address and port, and whether the word names more', () => {
  assert.deepEqual(readNatAddress('10.0.0.1:0x50'), { ip: '10.0.0.1', port: 80, range: false, serviceName: false });
  assert.deepEqual(readNatAddress('10.0.0.1-10.0.0.3:80'), { ip: '10.0.0.1', port: 80, range: true, serviceName: false });
  assert.deepEqual(readNatAddress('10.0.0.1:80-90'), { ip: '10.0.0.1', port: 80, range: true, serviceName: false });
  assert.deepEqual(readNatAddress('10.0.0.1:http'), { ip: '10.0.0.1', port: null, range: false, serviceName: true });
  assert.deepEqual(readNatAddress('[fd00::1]:8080'), { ip: 'fd00::1', port: 8080, range: false });
  assert.deepEqual(readNatAddress('fd00::1'), { ip: 'fd00::1', port: null, range: false });
  assert.deepEqual(readNatAddress(undefined), { ip: null, port: null, range: false });
});
