import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endpoints, steps, traceText } from '../helpers.ts';
import { quantizeProbability } from '../../src/engine/index.ts';

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

test('unmodelled matches and unknown interfaces are reported, never guessed silently', () => {
  const r = traceText(wrap([
    '-A PREROUTING -p tcp -m set --match-set KUBE-CLUSTER-IP dst,dst -j DNAT --to-destination 10.0.0.1:80',
    '-A PREROUTING -p tcp -i cni0 -j DNAT --to-destination 10.0.0.2:80',
  ]), { destination: '10.96.0.1', port: 80 });
  assert.equal(r.outcomes[0].verdict, 'ACCEPT');
  const codes = r.warnings.filter((w) => w.code === 'NOT_MODELLED');
  assert.equal(codes.length, 2);
  assert.match(codes[0].message, /ipset membership/);
  assert.equal(codes[0].rule?.index, 1);
  assert.match(codes[1].message, /input interface/);
  const withIface = traceText(wrap(['-A PREROUTING -p tcp -i cni+ -j DNAT --to-destination 10.0.0.2:80']), { destination: '10.96.0.1', port: 80, inInterface: 'cni0' });
  assert.deepEqual(endpoints(withIface), ['10.0.0.2:80']);
});

test('bad packets are rejected with a clear error', () => {
  assert.throws(() => traceText(wrap([]), { destination: '10.96.0.300', port: 80 }), /destination '10.96.0.300' is not an IP address/);
  assert.throws(() => traceText(wrap([]), { source: 'fd00::2', destination: 'fd00::1', port: 80 }), /IPv6 but the rules are IPv4/);
  assert.throws(() => traceText(wrap([]), { destination: 'fd00::1', port: 80 }), /same address family/);
  assert.throws(() => traceText(wrap([]), { destination: '10.96.0.1', port: 70000 }), /port must be/);
});
