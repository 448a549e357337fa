import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endpoints, steps, traceText } from '../../helpers.ts';
import { completeKubeProxy, parseDump, parseRoutes, quantizeProbability, trace } from '../../../src/engine/index.ts';
import type { EngineError } from '../../../src/engine/index.ts';

const wrap = (nat: string[], filter: string[] = []) =>
  ['*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]', ...nat, 'COMMIT',
    '*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ...filter, 'COMMIT', ''].join('\n');

test('statistic: the kernel quantises p to k/2^31 and the outcome probabilities are exact', () => {
  assert.equal(quantizeProbability(0.33333333349), 715827883);
  assert.equal(quantizeProbability(0.3333333333), 715827883);
  assert.equal(quantizeProbability(1), 2 ** 31);
  const r = traceText(wrap([
    ':S - [0:0]',
    '-A PREROUTING -j S',
    '-A S -p tcp -m statistic --mode random --probability 0.33333333349 -j DNAT --to-destination 10.0.0.1:80',
    '-A S -p tcp -m statistic --mode random --probability 0.50000000000 -j DNAT --to-destination 10.0.0.2:80',
    '-A S -p tcp -j DNAT --to-destination 10.0.0.3:80',
  ]), { destination: '10.96.0.1', port: 80 });
  assert.deepEqual(endpoints(r), ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80']);
  // 715827883/2^31, then (1 − that) × 1/2 twice: 1431655765/2^32 each.
  assert.deepEqual(r.outcomes.map((o) => o.exactProbability), ['715827883/2147483648', '1431655765/4294967296', '1431655765/4294967296']);
  const sum = r.outcomes.reduce((s, o) => s + o.probability, 0);
  assert.ok(Math.abs(sum - 1) < 1e-12);
  assert.ok(r.warnings.some((w) => w.code === 'UNEVEN_SPLIT'));
});

test('jump returns, goto does not, RETURN goes back to the caller of the goto chain', () => {
  const r = traceText(wrap([
    ':A - [0:0]', ':B - [0:0]', ':C - [0:0]',
    '-A PREROUTING -j A',
    '-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.9:80',
    '-A A -g B',
    '-A A -p tcp -j DNAT --to-destination 10.0.0.1:80',
    '-A B -j C',
    '-A B -j RETURN',
    '-A B -p tcp -j DNAT --to-destination 10.0.0.2:80',
    '-A C -j MARK --set-xmark 0x10/0xff',
  ]), { destination: '10.96.0.1', port: 80 });
  assert.deepEqual(endpoints(r), ['10.0.0.9:80']);
  assert.deepEqual(steps(r).slice(0, 6), [
    'nat/PREROUTING#1:jump', 'nat/A#1:goto', 'nat/B#1:jump', 'nat/C#1:mark', 'nat/B#2:return', 'nat/PREROUTING#2:dnat',
  ]);
  assert.equal(r.outcomes[0].mark, '0x10');
});

test('marks: set-xmark, or/xor/and and mark matches with masks, seen by later hooks', () => {
  const r = traceText(wrap([
    ':M - [0:0]',
    '-A PREROUTING -j MARK --or-mark 0x4000',
    '-A PREROUTING -m mark --mark 0x4000/0x4000 -j MARK --xor-mark 0x1',
    '-A PREROUTING -p tcp -m mark ! --mark 0x4001 -j DNAT --to-destination 10.0.0.66:1',
    '-A POSTROUTING -m mark --mark 0x4001 -j MASQUERADE',
  ]), { destination: '10.96.0.1', port: 80 });
  assert.equal(r.outcomes.length, 1);
  assert.equal(r.outcomes[0].verdict, 'ACCEPT');
  assert.equal(r.outcomes[0].masquerade, true);
  assert.equal(r.outcomes[0].mark, '0x4001');
});

test('policies: a DROP policy on FORWARD drops, REJECT answers, ACCEPT ends the table walk', () => {
  const dropped = traceText(['*filter', ':FORWARD DROP [0:0]', '-A FORWARD -s 10.0.0.0/8 -j ACCEPT', 'COMMIT', ''].join('\n'),
    { destination: '10.96.0.1', port: 80 });
  assert.equal(dropped.outcomes[0].verdict, 'DROP');
  assert.deepEqual(steps(dropped), ['filter/FORWARD#0:policy DROP']);
  const accepted = traceText(['*filter', ':FORWARD DROP [0:0]', '-A FORWARD -s 10.0.0.0/8 -j ACCEPT', '-A FORWARD -j REJECT', 'COMMIT', ''].join('\n'),
    { destination: '10.96.0.1', port: 80, source: '10.1.2.3' });
  assert.equal(accepted.outcomes[0].verdict, 'ACCEPT');
  assert.equal(accepted.outcomes[0].delivery, 'forward');
  const rejected = traceText(['*filter', ':INPUT ACCEPT [0:0]', '-A INPUT -p tcp -m multiport --dports 22,8000:9000 -j REJECT --reject-with tcp-reset', 'COMMIT', ''].join('\n'),
    { destination: '192.168.0.2', port: 8443 });
  assert.equal(rejected.outcomes[0].verdict, 'REJECT');
  assert.equal(rejected.outcomes[0].rejectWith, 'tcp-reset');
  assert.equal(rejected.outcomes[0].delivery, 'local');
});

test('routing decision uses the destination after DNAT; OUTPUT traffic to the node loops back without nat', () => {
  const dump = wrap([
    '-A PREROUTING -p tcp -d 10.96.0.10/32 -j DNAT --to-destination 192.168.0.2:8080',
    '-A OUTPUT -p tcp -d 10.96.0.10/32 -j DNAT --to-destination 192.168.0.2:8080',
    '-A INPUT -j ACCEPT',
  ], ['-A INPUT -p tcp --dport 8080 -j ACCEPT']);
  const fromOutside = traceText(dump, { destination: '10.96.0.10', port: 80 });
  assert.equal(fromOutside.outcomes[0].delivery, 'local');
  assert.deepEqual(steps(fromOutside), ['nat/PREROUTING#1:dnat', 'filter/INPUT#1:accept', 'nat/INPUT#1:accept']);
  const fromNode = traceText(dump, { source: '192.168.0.2', destination: '10.96.0.10', port: 80 });
  assert.equal(fromNode.entry, 'OUTPUT');
  assert.equal(fromNode.outcomes[0].delivery, 'local');
  // The declared built-in chains' policies show in the path, as their kernel counters would move.
  assert.deepEqual(steps(fromNode), ['nat/OUTPUT#1:dnat', 'filter/OUTPUT#0:policy ACCEPT', 'nat/POSTROUTING#0:policy ACCEPT', 'filter/INPUT#1:accept']);
});

test('addrtype LOCAL, conntrack NEW and the virtual DNAT state, negated matches', () => {
  const dump = wrap([
    ':KUBE-NODEPORTS - [0:0]',
    '-A PREROUTING -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    '-A KUBE-NODEPORTS -p tcp -m tcp --dport 30080 -j DNAT --to-destination 10.244.1.5:80',
  ], [
    '-A FORWARD -m conntrack --ctstate INVALID -j DROP',
    '-A FORWARD -d 10.244.1.5/32 -m conntrack ! --ctstate DNAT -j DROP',
    '-A FORWARD -m conntrack --ctstate NEW -j ACCEPT',
  ]);
  const local = traceText(dump, { destination: '192.168.0.2', port: 30080 });
  assert.equal(local.outcomes[0].verdict, 'DNAT');
  assert.deepEqual(steps(local), ['nat/PREROUTING#1:jump', 'nat/KUBE-NODEPORTS#1:dnat', 'filter/FORWARD#3:accept', 'nat/POSTROUTING#0:policy ACCEPT']);
  const direct = traceText(dump, { destination: '10.244.1.5', port: 80 });
  assert.equal(direct.outcomes[0].verdict, 'DROP');
  const other = traceText(dump, { destination: '192.168.7.7', port: 30080 });
  assert.equal(other.outcomes[0].verdict, 'ACCEPT');
  assert.equal(other.outcomes[0].destination.ip, '192.168.7.7');
});

test('session affinity: rcheck fails for a new client, --set records it and the answer says it sticks', () => {
  const r = traceText(wrap([
    ':SVC - [0:0]', ':SEP1 - [0:0]', ':SEP2 - [0:0]',
    '-A PREROUTING -d 10.96.0.5/32 -j SVC',
    '-A SVC -m recent --rcheck --seconds 10800 --reap --name SEP1 --mask 255.255.255.255 --rsource -j SEP1',
    '-A SVC -m recent --rcheck --seconds 10800 --reap --name SEP2 --mask 255.255.255.255 --rsource -j SEP2',
    '-A SVC -m statistic --mode random --probability 0.5 -j SEP1',
    '-A SVC -j SEP2',
    '-A SEP1 -p tcp -m recent --set --name SEP1 --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.0.0.1:80',
    '-A SEP2 -p tcp -m recent --set --name SEP2 --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.0.0.2:80',
  ]), { destination: '10.96.0.5', port: 80 });
  assert.deepEqual(endpoints(r), ['10.0.0.1:80', '10.0.0.2:80']);
  assert.deepEqual(r.outcomes.map((o) => o.probability), [0.5, 0.5]);
  assert.match(r.outcomes[0].notes.join('\n'), /same endpoint for 10800 seconds/);
});

test('unmodelled matches are reported, never guessed silently', () => {
  const r = traceText(wrap([
    '-A PREROUTING -p tcp -m set --match-set KUBE-CLUSTER-IP dst,dst -j DNAT --to-destination 10.0.0.1:80',
  ]), { destination: '10.96.0.1', port: 80 });
  assert.equal(r.outcomes[0].verdict, 'ACCEPT');
  const codes = r.warnings.filter((w) => w.code === 'NOT_MODELLED');
  assert.equal(codes.length, 1);
  assert.match(codes[0].message, /ipset membership/);
  assert.equal(codes[0].rule?.index, 1);
  const withIface = traceText(wrap(['-A PREROUTING -p tcp -i cni+ -j DNAT --to-destination 10.0.0.2:80']), { destination: '10.96.0.1', port: 80, inInterface: 'cni0' });
  assert.deepEqual(endpoints(withIface), ['10.0.0.2:80']);
});

// kubernetes-mesos-788-1 (issue 14): Docker's rule for a published port reached from the node itself.
const dockerPublished = wrap([
  ':DOCKER - [0:0]',
  '-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER',
  '-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE',
  '-A DOCKER ! -i docker0 -p tcp -m tcp --dport 31000 -j DNAT --to-destination 172.17.0.26:3000',
]);

test('a packet made on the node has no input interface: ! -i docker0 holds, -i docker0 does not, no warning', () => {
  const r = traceText(dockerPublished, { source: '192.168.0.2', destination: '192.168.0.2', port: 31000 }, ['192.168.0.2']);
  assert.equal(r.entry, 'OUTPUT');
  assert.deepEqual(r.outcomes.map((o) => [o.verdict, o.conditions]), [['DNAT', undefined]]);
  assert.deepEqual(endpoints(r), ['172.17.0.26:3000']);
  assert.deepEqual(r.warnings, []);
  const onlyIn = traceText(wrap(['-A OUTPUT -i docker0 -p tcp -j DNAT --to-destination 10.0.0.1:80']), { source: '192.168.0.2', destination: '10.96.0.1', port: 80 });
  assert.deepEqual(onlyIn.outcomes.map((o) => o.verdict), ['ACCEPT']);
  assert.deepEqual(onlyIn.warnings, []);
  // No output interface before routing: `-o` never matches in PREROUTING, `! -o` always does.
  const pre = traceText(wrap(['-A PREROUTING -o eth0 -j DROP', '-A PREROUTING ! -o eth0 -p tcp -j DNAT --to-destination 10.0.0.1:80']), { destination: '10.96.0.1', port: 80 });
  assert.deepEqual(pre.outcomes.map((o) => [o.verdict, o.conditions]), [['DNAT', undefined]]);
});

test('an unknown output interface splits the answer into labelled cases, each with its own probabilities', () => {
  // A container's packet to the outside (the MASQUERADE probes of issue 14).
  const r = traceText(dockerPublished, { source: '172.17.0.5', destination: '8.8.8.8', port: 53 }, ['192.168.0.2']);
  assert.deepEqual(r.outcomes.map((o) => [o.masquerade, o.conditions, o.exactProbability]), [
    [false, ['if the packet to 8.8.8.8 leaves through docker0'], '1'],
    [true, ['if the packet to 8.8.8.8 does not leave through docker0'], '1'],
  ]);
  assert.deepEqual(r.warnings, []);
  const given = traceText(dockerPublished, { source: '172.17.0.5', destination: '8.8.8.8', port: 53, outInterface: 'eth0' }, ['192.168.0.2']);
  assert.deepEqual(given.outcomes.map((o) => [o.masquerade, o.conditions, o.outInterface]), [[true, undefined, 'eth0']]);
  // A random split before the interface test: within each case the outcomes add up to 1.
  const split = traceText(wrap([
    '-A PREROUTING -p tcp -m statistic --mode random --probability 0.5 -j DNAT --to-destination 10.0.0.1:80',
    '-A PREROUTING -p tcp -j DNAT --to-destination 10.1.0.1:80',
    '-A POSTROUTING -d 10.0.0.0/16 -o eth+ -j MASQUERADE',
  ]), { destination: '10.96.0.1', port: 80 });
  const rows = split.outcomes.map((o) => [o.destination.ip, o.masquerade, o.conditions?.join(), o.exactProbability]);
  assert.deepEqual(rows.sort(), [
    ['10.0.0.1', false, 'if the packet to 10.0.0.1 does not leave through an interface whose name starts with eth', '1/2'],
    ['10.0.0.1', true, 'if the packet to 10.0.0.1 leaves through an interface whose name starts with eth', '1/2'],
    ['10.1.0.1', false, undefined, '1/2'],
  ]);
});

test('a second test of the same unknown interface follows the case already taken', () => {
  const r = traceText(wrap([
    '-A POSTROUTING -o docker0 -j MARK --set-xmark 0x1/0x1',
    '-A POSTROUTING -o docker+ -j MARK --set-xmark 0x2/0x2',
    '-A POSTROUTING ! -o docker0 -j MARK --set-xmark 0x4/0x4',
  ]), { destination: '10.1.0.1', port: 80 });
  assert.deepEqual(r.outcomes.map((o) => [o.mark, o.conditions]), [
    ['0x3', ['if the packet to 10.1.0.1 leaves through docker0']],
    ['0x6', ['if the packet to 10.1.0.1 does not leave through docker0', 'if the packet to 10.1.0.1 leaves through an interface whose name starts with docker']],
    ['0x4', ['if the packet to 10.1.0.1 does not leave through docker0', 'if the packet to 10.1.0.1 does not leave through an interface whose name starts with docker']],
  ]);
});

test("routes name the output interface: the kernel's longest prefix, lowest metric, local table first", () => {
  const routes = parseRoutes([
    'default via 192.168.0.1 dev eth0 proto dhcp src 192.168.0.2 metric 100',
    'default via 192.168.0.1 dev wlan0 proto dhcp metric 600',
    '172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1 linkdown',
    '10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink',
    'blackhole 10.244.0.0/24 proto bird',
    'local 10.9.9.9 dev lo table local proto kernel scope host src 10.9.9.9',
    'default via fe80::1 dev eth1 proto ra metric 1024 expires 1797sec hoplimit 64 pref medium',
  ].join('\n'));
  assert.equal(routes.lookup('172.17.0.26', 'ipv4')?.dev, 'docker0');
  assert.equal(routes.lookup('8.8.8.8', 'ipv4')?.dev, 'eth0');
  assert.equal(routes.lookup('10.244.1.7', 'ipv4')?.dev, 'flannel.1');
  assert.equal(routes.lookup('10.244.0.7', 'ipv4')?.type, 'blackhole');
  assert.equal(routes.lookup('10.9.9.9', 'ipv4')?.type, 'local');
  assert.equal(routes.lookup('2001:db8::1', 'ipv6')?.dev, 'eth1');
  const rs = completeKubeProxy(parseDump(dockerPublished));
  const r = trace(rs, { node: { addresses: ['192.168.0.2'] }, routes, packet: { source: '192.168.0.2', destination: '192.168.0.2', port: 31000, protocol: 'tcp' } });
  assert.deepEqual(r.outcomes.map((o) => [o.verdict, o.masquerade, o.outInterface, o.conditions]), [['DNAT', false, 'docker0', undefined]]);
  const out = trace(rs, { node: { addresses: ['192.168.0.2'] }, routes, packet: { source: '172.17.0.5', destination: '8.8.8.8', port: 53, protocol: 'tcp' } });
  assert.deepEqual(out.outcomes.map((o) => [o.delivery, o.masquerade, o.outInterface]), [['forward', true, 'eth0']]);
  // An address only the routes' local table names is the node's own.
  const local = trace(rs, { node: { addresses: ['192.168.0.2'] }, routes, packet: { source: '203.0.113.7', destination: '10.9.9.9', port: 80, protocol: 'tcp' } });
  assert.equal(local.outcomes[0].delivery, 'local');
  // A blackhole route: the routing decision drops the forwarded packet.
  const hole = trace(rs, { node: { addresses: ['192.168.0.2'] }, routes, packet: { source: '203.0.113.7', destination: '10.244.0.7', port: 80, protocol: 'tcp' } });
  assert.deepEqual(hole.outcomes.map((o) => [o.verdict, o.delivery, o.notes]), [['DROP', null, ["the node's routes send 10.244.0.7 to a blackhole route (routes line 5): the kernel drops it"]]]);
});

test('routes that do not read are a located error', () => {
  assert.throws(() => parseRoutes('default via 10.0.0.1 dev eth0\n10.0.0.0/33 dev eth1\n'), (e: EngineError) => {
    assert.equal(e.location?.line, 2);
    assert.equal(e.location?.column, 1);
    assert.match(e.message, /'10.0.0.0\/33' is not a route destination/);
    return true;
  });
});

test('bad packets are rejected with a clear error', () => {
  assert.throws(() => traceText(wrap([]), { destination: '10.96.0.300', port: 80 }), /destination '10.96.0.300' is not an IP address/);
  assert.throws(() => traceText(wrap([]), { source: 'fd00::2', destination: 'fd00::1', port: 80 }), /IPv6 but the rules are IPv4/);
  assert.throws(() => traceText(wrap([]), { destination: 'fd00::1', port: 80 }), /same address family/);
  assert.throws(() => traceText(wrap([]), { destination: '10.96.0.1', port: 70000 }), /port must be/);
});
