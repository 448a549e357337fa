import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeNftChainName, nftChainName } from '../../../src/engine/kube/nft-chain-names.ts';

// Names from kube-proxy's own expected rulesets (test/fixtures/nftables-trace/*/PROVENANCE.md).
test('decodes the chain names of kube-proxy’s expected rulesets, hashes included', () => {
  assert.deepEqual(decodeNftChainName('service-ULMVA6XW-ns1/svc1/tcp/p80'), {
    kind: 'service', hash: 'ULMVA6XW', namespace: 'ns1', name: 'svc1', protocol: 'tcp', portName: 'p80', hashMatches: true,
  });
  assert.deepEqual(decodeNftChainName('endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80'), {
    kind: 'endpoint', hash: '5OJB2KTY', namespace: 'ns1', name: 'svc1', protocol: 'tcp', portName: 'p80',
    endpoint: { ip: '10.180.0.1', port: 80 }, hashMatches: true,
  });
  for (const name of [
    'external-42NFTM6N-ns2/svc2/tcp/p80',
    'firewall-HVFWP5L3-ns5/svc5/tcp/p80',
    'affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80',
    'endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080',
    'service-MHHHYRWA-ns2/svc2/tcp/p8080',
  ]) {
    const d = decodeNftChainName(name);
    assert.ok(d, name);
    assert.equal(d.hashMatches, true, name);
  }
});

test('a name with a hash kube-proxy would not compute is read but flagged', () => {
  const d = decodeNftChainName('service-AAAAAAAA-ns1/svc1/tcp/p80');
  assert.equal(d?.name, 'svc1');
  assert.equal(d?.hashMatches, false);
});

test('names are recomputed as kube-proxy writes them, IPv6 endpoints and unnamed ports included', () => {
  assert.equal(nftChainName('service', { namespace: 'ns1', name: 'svc1', protocol: 'TCP', portName: 'p80' }), 'service-ULMVA6XW-ns1/svc1/tcp/p80');
  assert.equal(
    nftChainName('endpoint', { namespace: 'ns4', name: 'svc4', protocol: 'tcp', portName: 'p80' }, { ip: '10.180.0.5', port: 80 }),
    'endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80',
  );
  const v6 = nftChainName('endpoint', { namespace: 'a', name: 'b', protocol: 'udp', portName: '' }, { ip: 'fd00::1', port: 53 });
  assert.match(v6, /^endpoint-[A-Z2-7]{8}-a\/b\/udp\/__fd00..1\/53$/);
  const d = decodeNftChainName(v6);
  assert.deepEqual(d?.endpoint, { ip: 'fd00::1', port: 53 });
  assert.equal(d?.portName, '');
  assert.equal(d?.hashMatches, true);
});

test('other chains are not kube-proxy Service chains', () => {
  for (const name of ['services', 'mark-for-masquerade', 'nat-prerouting', 'service-endpoints-check', 'KUBE-SVC-GBTMB5ZTD56ECL5F',
    'endpoint-5OJB2KTY-ns1/svc1/tcp/p80', 'service-ULMVA6XW-ns1/svc1/tcp/p80__10.0.0.1/80', 'endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.0.0.300/80']) {
    assert.equal(decodeNftChainName(name), null, name);
  }
});
