/**
 * kube-proxy's own packet-flow expectations (test/fixtures/kube-proxy, copied from the shared
 * corpus): every flow must give the expected endpoints, verdict and masquerade flag. A packet
 * from one of the node's own addresses starts in OUTPUT, as on a real node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { completeKubeProxy, parseDump, trace } from '../../src/engine/index.ts';
import { fixture, FIXTURES } from '../helpers.ts';
import { readFileSync } from 'node:fs';

interface Flow {
  name: string;
  source: string;
  protocol: 'tcp' | 'udp' | 'sctp';
  destination: string;
  port: number;
  expect: { endpoints?: string[]; verdict?: string; masquerade: boolean };
}

const index = JSON.parse(fixture('kube-proxy', 'index.json')) as { cases: { folder: string }[] };

for (const c of index.cases) {
  test(`kube-proxy conformance: ${c.folder}`, () => {
    const dir = join(FIXTURES, 'kube-proxy', c.folder);
    const flows = JSON.parse(readFileSync(join(dir, 'flows.json'), 'utf8')) as { localIPs: string[]; flows: Flow[] };
    const rs = completeKubeProxy(parseDump(readFileSync(join(dir, 'iptables-save.txt'), 'utf8')));
    const addresses = flows.localIPs.filter((a) => a !== '127.0.0.1' && a !== '::1' && !a.includes(':'));
    for (const f of flows.flows) {
      const r = trace(rs, { node: { addresses }, packet: { source: f.source, destination: f.destination, port: f.port, protocol: f.protocol } });
      const what = `${f.name}: ${JSON.stringify(r.outcomes.map((o) => [o.verdict, o.destination, o.masquerade]))}`;
      const total = r.outcomes.reduce((s, o) => s + o.probability, 0);
      assert.ok(Math.abs(total - 1) < 1e-12, `${f.name}: probabilities sum to ${total}`);
      if (f.expect.endpoints) {
        assert.ok(r.outcomes.every((o) => o.verdict === 'DNAT'), what);
        const got = [...new Set(r.outcomes.map((o) => `${o.destination.ip}:${o.destination.port}`))].sort();
        assert.deepEqual(got, [...f.expect.endpoints].sort(), what);
      } else if (f.expect.verdict === '') {
        assert.ok(r.outcomes.every((o) => o.verdict === 'ACCEPT' && o.destination.ip === f.destination), what);
      } else {
        assert.ok(r.outcomes.every((o) => o.verdict === f.expect.verdict), what);
      }
      // kube-proxy's tracer reports masquerade if any branch is marked for it.
      assert.equal(r.outcomes.some((o) => o.masquerade), f.expect.masquerade, what);
    }
  });
}
