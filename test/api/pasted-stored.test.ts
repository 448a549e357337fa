/**
 * Dumps read as pasted (issue 14, item 3: a table inferred, a system-log prefix removed, an
 * `iptables -L -n -v` listing) are read the same way again from storage: stored traces and diffs
 * answer as POST /v1/trace does, against a real PostgreSQL.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestApp } from './helpers.ts';
import type { TestApp } from './helpers.ts';
import { fixture } from '../helpers.ts';
import { snapshotDumps } from '../../src/store/snapshot-reads.ts';

let t: TestApp;
before(async () => {
  t = await createTestApp();
});
after(async () => {
  await t?.close();
});

const PASTED: Record<string, { destination: string; port: number }> = {
  // A system-log prefix on every line, no '*nat' header.
  'k8s-36652-1.iptables-save.txt': { destination: '10.0.0.10', port: 53 },
  // '-A' lines without a header, read as nat.
  'aws-vpc-cni-34-1.iptables-save.txt': { destination: '10.100.0.1', port: 5473 },
  // An `iptables -t nat -L -n -v` listing.
  'k3s-7096-1.iptables-L.txt': { destination: '10.43.0.1', port: 443 },
};

for (const [file, { destination, port }] of Object.entries(PASTED)) {
  test(`${file}: stored and traced from storage as POST /v1/trace traces it`, async () => {
    const rules = fixture('realworld', file);
    const cluster = `pasted-${file.split('.')[0]}`;
    const up = await t.app.inject({ method: 'POST', url: `/v1/clusters/${cluster}/snapshots`, payload: { nodes: [{ name: 'n', addresses: ['10.0.0.5'], rules }] } });
    assert.equal(up.statusCode, 201, up.body);
    const id = up.json().snapshot.id;
    // Storage hands the dump back to be read leniently, as it was read at upload.
    assert.deepEqual((await snapshotDumps(t.db.pool, id)).map((d) => d.format), ['auto']);
    const stored = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${id}/trace?destination=${destination}&port=${port}&source=10.244.1.9` });
    assert.equal(stored.statusCode, 200, stored.body);
    const direct = await t.app.inject({
      method: 'POST', url: '/v1/trace',
      payload: { rules, node: { addresses: ['10.0.0.5'] }, packet: { source: '10.244.1.9', destination, port } },
    });
    assert.equal(direct.statusCode, 200, direct.body);
    assert.deepEqual(stored.json().results[0].outcomes, direct.json().outcomes);
    // Diffs read the stored dump the same way (here against itself with one more node).
    const next = await t.app.inject({
      method: 'POST', url: `/v1/clusters/${cluster}/snapshots`,
      payload: { nodes: [{ name: 'n', addresses: ['10.0.0.5'], rules }, { name: 'm', addresses: ['10.0.0.6'], rules }] },
    });
    assert.equal(next.statusCode, 201, next.body);
    const diff = await t.app.inject({ method: 'GET', url: `/v1/diff?from=${id}&to=${next.json().snapshot.id}` });
    assert.equal(diff.statusCode, 200, diff.body);
  });
}

test('a clean dump uploaded as auto is read again from storage as iptables-save, without the repair pass', async () => {
  const rules = fixture('dual-stack', 'node-a.iptables-save.txt');
  const up = await t.app.inject({ method: 'POST', url: '/v1/clusters/pasted-clean/snapshots', payload: { nodes: [{ name: 'n', addresses: ['10.0.0.5'], rules }] } });
  assert.equal(up.statusCode, 201, up.body);
  assert.deepEqual((await snapshotDumps(t.db.pool, up.json().snapshot.id)).map((d) => d.format), ['iptables-save']);
});
