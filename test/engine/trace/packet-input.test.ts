/** Packets as people write them: protocols in any case, ports in the destination, Services by DNS name. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineError } from '../../../src/engine/errors.ts';
import { defaultSource, readDestination, readPacket, readProtocol, serviceKey, splitDestination } from '../../../src/engine/index.ts';

function refused(f: () => unknown, pattern: RegExp): void {
  assert.throws(f, (e: unknown) => e instanceof EngineError && e.code === 'BAD_PACKET' && pattern.test(e.message));
}

test('protocols in any case, tcp when absent; others refused with the list', () => {
  assert.equal(readProtocol('TCP'), 'tcp');
  assert.equal(readProtocol('Udp'), 'udp');
  assert.equal(readProtocol(' sctp '), 'sctp');
  assert.equal(readProtocol(undefined), 'tcp');
  assert.equal(readProtocol(''), 'tcp');
  refused(() => readProtocol('http'), /'http' is not one of tcp, udp, sctp, icmp/);
});

test('destinations as ip, ip:port, [ipv6]:port, [ipv6] and bare IPv6', () => {
  assert.deepEqual(splitDestination('10.43.62.130'), { ip: '10.43.62.130', port: null });
  assert.deepEqual(splitDestination('10.43.62.130:80'), { ip: '10.43.62.130', port: 80 });
  assert.deepEqual(splitDestination('[fd00:10:96::10]:443'), { ip: 'fd00:10:96::10', port: 443 });
  assert.deepEqual(splitDestination('[fd00:10:96::10]'), { ip: 'fd00:10:96::10', port: null });
  assert.deepEqual(splitDestination('fd00:10:96::10'), { ip: 'fd00:10:96::10', port: null });
  refused(() => splitDestination('10.43.62.130:http'), /not a port/);
  refused(() => splitDestination('10.43.62.130:70000'), /not a port/);
  refused(() => splitDestination('[fd00::1]x'), /not ip, ip:port or \[ipv6\]:port/);
});

test('the port from the destination or apart; both must agree; one is needed', () => {
  assert.deepEqual(readDestination('10.43.62.130:80'), { destination: '10.43.62.130', port: 80 });
  assert.deepEqual(readDestination('10.43.62.130', 80), { destination: '10.43.62.130', port: 80 });
  assert.deepEqual(readDestination('10.43.62.130:80', 80), { destination: '10.43.62.130', port: 80 });
  refused(() => readDestination('10.43.62.130:80', 443), /names port 80 but port 443 was given/);
  refused(() => readDestination('10.43.62.130'), /no destination port/);
});

test('the default source follows the destination family', () => {
  assert.equal(defaultSource('10.43.62.130'), '203.0.113.10');
  assert.equal(defaultSource('fd00:10:96::10'), '2001:db8::10');
  assert.deepEqual(readPacket({ destination: '[fd00:10:96::10]:80', protocol: 'TCP' }), {
    destination: 'fd00:10:96::10', port: 80, protocol: 'tcp', source: '2001:db8::10',
  });
});

test('Services as ns/name or by their DNS names', () => {
  assert.equal(serviceKey('default/service-test'), 'default/service-test');
  assert.equal(serviceKey('service-test.default'), 'default/service-test');
  assert.equal(serviceKey('service-test.default.svc'), 'default/service-test');
  assert.equal(serviceKey('service-test.default.svc.cluster.local'), 'default/service-test');
  assert.equal(serviceKey('service-test'), 'service-test');
});
