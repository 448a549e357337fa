import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  generateCluster,
  kubeProxyChainName,
  renderIptablesSave,
  renderManifests,
} from '../support/kube-gen.ts';

/** Declared chains and `-j KUBE-…` targets, per table. */
function declaredAndTargets(text: string): Map<string, { declared: Set<string>; targets: Set<string> }> {
  const tables = new Map<string, { declared: Set<string>; targets: Set<string> }>();
  let current: { declared: Set<string>; targets: Set<string> } | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      current = { declared: new Set(), targets: new Set() };
      tables.set(line.slice(1), current);
    } else if (line.startsWith(':') && current) {
      current.declared.add(line.slice(1, line.indexOf(' ')));
    } else if (current) {
      const m = / -j (KUBE-[A-Z0-9-]+)/.exec(line);
      if (m) current.targets.add(m[1]);
    }
  }
  return tables;
}

let big: string | undefined;
function bigDump(): string {
  big ??= renderIptablesSave(generateCluster({ seed: 1, services: 10000 }));
  return big;
}

describe('kube-gen', () => {
  it('is deterministic per seed', () => {
    const a = generateCluster({ seed: 42, services: 300 });
    const b = generateCluster({ seed: 42, services: 300 });
    assert.deepEqual(a, b);
    assert.equal(renderIptablesSave(a), renderIptablesSave(b));
    assert.equal(renderManifests(a), renderManifests(b));
    const c = generateCluster({ seed: 43, services: 300 });
    assert.notEqual(renderIptablesSave(a), renderIptablesSave(c));
  });

  it('names chains as kube-proxy does (names from the conformance corpus)', () => {
    // dumps-only/overall-iptables-rules.txt
    assert.equal(kubeProxyChainName('KUBE-SVC', 'ns1', 'svc1', 'p80', 'TCP'), 'KUBE-SVC-XPGD46QRK7WJZT7O');
    assert.equal(
      kubeProxyChainName('KUBE-SEP', 'ns1', 'svc1', 'p80', 'TCP', '10.180.0.1:80'),
      'KUBE-SEP-SXIVWICOYRO3J4NJ',
    );
    assert.equal(kubeProxyChainName('KUBE-FW', 'ns5', 'svc5', 'p80', 'tcp'), 'KUBE-FW-NUKIZ6OKUXPJNT4C');
    // internal-traffic-policy-e2e: an unnamed port hashes `ns1/svc1` alone.
    assert.equal(kubeProxyChainName('KUBE-SVL', 'ns1', 'svc1', '', 'tcp'), 'KUBE-SVL-AQI2S6QIMU7PVVRP');
  });

  it('prints what iptables-save prints for kube-proxy fixed rules', () => {
    const text = renderIptablesSave(generateCluster({ seed: 3, services: 40 }));
    assert.match(text, /^-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000\/0x4000$/m);
    assert.match(text, /^-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000\/0x0$/m);
    assert.match(text, /^-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES$/m);
    assert.match(text, /--probability 0\.(50000000000|33333333349|25000000000)/);
    assert.match(text, /^-A KUBE-SEP-[A-Z2-7]{16} -s 10\.244\.\d+\.\d+\/32 -m comment --comment "[^"]+" -j KUBE-MARK-MASQ$/m);
    const tableOrder = text.split('\n').filter((l) => l.startsWith('*'));
    assert.deepEqual(tableOrder, ['*mangle', '*filter', '*nat']);
  });

  it('renders manifests as a v1 List of Services and EndpointSlices', () => {
    const cluster = generateCluster({ seed: 5, services: 60 });
    const list = JSON.parse(renderManifests(cluster)) as { kind: string; items: { kind: string }[] };
    assert.equal(list.kind, 'List');
    assert.equal(list.items.filter((i) => i.kind === 'Service').length, 60);
    assert.ok(list.items.filter((i) => i.kind === 'EndpointSlice').length >= 60);
  });

  it('lands near 365,000 lines and 40 MB for 10,000 services', () => {
    const text = bigDump();
    const lines = text.split('\n').length - 1;
    const bytes = Buffer.byteLength(text);
    assert.ok(Math.abs(lines - 365_000) <= 365_000 * 0.25, `lines ${lines}`);
    assert.ok(Math.abs(bytes - 40_000_000) <= 40_000_000 * 0.25, `bytes ${bytes}`);
  });

  it('declares every KUBE-… chain it jumps to', () => {
    for (const [table, { declared, targets }] of declaredAndTargets(bigDump())) {
      const missing = [...targets].filter((t) => !declared.has(t));
      assert.deepEqual(missing, [], `undeclared targets in ${table}`);
    }
  });
});
