/**
 * kube-proxy's chain names recomputed from the manifests: every KUBE-SVC/SVL/EXT/FW/SEP chain of
 * every conformance dump that ships manifests.json must come out of the ChainNameIndex.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChainNameIndex, decodeChainName, kubeProxyChainName, servicePortNameString, splitChainName, endpointString } from '../../../src/engine/kube/chain-names.ts';
import { readClusterModel } from '../../../src/engine/kube/manifests.ts';
import { kubeProxyCases } from './fixtures.ts';

const CHAIN = /KUBE-(?:SVC|SVL|EXT|FW|SEP|XLB)-[A-Z2-7]{16}/g;

test('kubeProxyChainName: servicePortName + protocol (+ endpoint), unnamed ports without a colon', () => {
  assert.equal(kubeProxyChainName('KUBE-SVC', 'ns1/svc1:p80', 'tcp'), 'KUBE-SVC-XPGD46QRK7WJZT7O');
  assert.equal(kubeProxyChainName('KUBE-EXT', 'ns1/svc1:p80', 'TCP'), 'KUBE-EXT-XPGD46QRK7WJZT7O');
  assert.equal(kubeProxyChainName('KUBE-SEP', 'ns1/svc1:p80', 'tcp', '10.180.0.1:80'), 'KUBE-SEP-SXIVWICOYRO3J4NJ');
  // The k3s example's unnamed port: "default/service-test" + "tcp"; "ns/name:" means the same.
  assert.equal(kubeProxyChainName('KUBE-SVC', 'default/service-test', 'tcp'), 'KUBE-SVC-GBTMB5ZTD56ECL5F');
  assert.equal(kubeProxyChainName('KUBE-SVC', 'default/service-test:', 'tcp'), 'KUBE-SVC-GBTMB5ZTD56ECL5F');
  assert.equal(servicePortNameString('default', 'service-test', ''), 'default/service-test');
  assert.equal(kubeProxyChainName('KUBE-SEP', 'default/service-test', 'tcp', '10.42.1.42:8080'), 'KUBE-SEP-KYPXHCLNNXAPFHUW');
  assert.equal(endpointString('fd00::0001', 80), '[fd00::1]:80');
  assert.throws(() => kubeProxyChainName('KUBE-SEP', 'ns1/svc1:p80', 'tcp'));
  assert.deepEqual(splitChainName('KUBE-FW-XPGD46QRK7WJZT7O'), { prefix: 'KUBE-FW', kind: 'FW', hash: 'XPGD46QRK7WJZT7O' });
  assert.equal(splitChainName('KUBE-SERVICES'), null);
});

test('the decoder reproduces every KUBE-SVC/SVL/EXT/FW/SEP chain of the conformance dumps from manifests.json', () => {
  let chains = 0;
  let cases = 0;
  const byKind = new Map<string, number>();
  for (const c of kubeProxyCases()) {
    if (c.manifests === null) continue;
    cases++;
    const { model } = readClusterModel([c.manifests]);
    const index = ChainNameIndex.fromModel(model);
    const names = new Set(c.dump.match(CHAIN) ?? []);
    for (const name of names) {
      const entry = decodeChainName(index, name);
      assert.ok(entry, `${c.folder}: ${name} is not derived from the manifests`);
      assert.equal(entry.chain, name);
      assert.equal(`KUBE-${entry.kind}`, splitChainName(name)!.prefix);
      // The dump's own comments name the same Service port.
      const spn = servicePortNameString(entry.service.namespace, entry.service.name, entry.port.name);
      assert.ok(c.dump.includes(spn), `${c.folder}: ${name} decodes to ${spn}, which the dump never mentions`);
      if (entry.kind === 'SEP') {
        assert.ok(entry.endpoint);
        assert.ok(c.dump.includes(`-A ${name} `) && c.dump.includes(`--to-destination ${entry.endpoint.ip}:${entry.endpoint.port}`), `${c.folder}: ${name}`);
      }
      byKind.set(entry.kind, (byKind.get(entry.kind) ?? 0) + 1);
      chains++;
    }
  }
  assert.equal(cases, 28);
  // 81 distinct (case, chain) pairs; the README's 162 also counts trace-packet and dumps-only, which ship no manifests.
  assert.equal(chains, 81);
  assert.deepEqual(Object.fromEntries([...byKind].sort()), { EXT: 16, FW: 1, SEP: 38, SVC: 18, SVL: 8 });
});

test('names that no Service port derives decode to null', () => {
  const c = kubeProxyCases().find((x) => x.folder === 'load-balancer')!;
  const index = ChainNameIndex.fromModel(readClusterModel([c.manifests]).model);
  assert.equal(decodeChainName(index, 'KUBE-SVC-AAAAAAAAAAAAAAAA'), null);
  assert.equal(decodeChainName(index, 'KUBE-SERVICES'), null);
  assert.equal(decodeChainName(null, 'KUBE-SVC-XPGD46QRK7WJZT7O'), null);
  // A chain from another case's manifests (trace-packet's ns2/svc2) is not in this one's.
  assert.equal(decodeChainName(index, 'KUBE-SVC-GNZBNJ2PO5MGZ6GT'), null);
  assert.equal(decodeChainName(index, 'KUBE-SVC-XPGD46QRK7WJZT7O')?.port.port, 80);
});
