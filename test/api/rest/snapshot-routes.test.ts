/** Snapshot REST API against a real PostgreSQL (a throwaway database). */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { createTestApp } from '../helpers.ts';
import type { TestApp } from '../helpers.ts';
import { fixture } from '../../helpers.ts';

let t: TestApp;
before(async () => {
  t = await createTestApp({ bodyLimit: 8 * 1024 * 1024 });
});
after(async () => {
  await t?.close();
});

const clusterip = fixture('k3s-blog', 'clusterip.iptables-S.txt');
const nodeport = fixture('k3s-blog', 'nodeport.iptables-S.txt');
const manifests = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'service-test', namespace: 'default' } }] });

function upload(extra: Record<string, unknown> = {}) {
  return {
    labels: { 'ci.job': '42', 'git.sha': 'abc123' },
    nodes: [
      { name: 'node-a', addresses: ['10.32.11.62'], rules: clusterip },
      { name: 'node-b', addresses: ['10.32.7.224'], rules: nodeport, format: 'iptables-S' },
    ],
    manifests,
    ...extra,
  };
}

async function counts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const table of ['cluster', 'snapshot', 'snapshot_node', 'upload', 'upload_node', 'blob', 'chunk']) {
    // A committed upload stays (for a retried commit) until it expires: count those in progress.
    const where = table === 'upload' ? ' WHERE committed_snapshot_id IS NULL' : '';
    const { rows } = await t.db.pool.query(`SELECT count(*)::int AS n FROM ${table}${where}`);
    out[table] = rows[0].n;
  }
  return out;
}

test('upload, dedupe, fetch, list, raw dump, trace, delete', async () => {
  const res = await t.app.inject({ method: 'POST', url: '/v1/clusters/k3s/snapshots', payload: upload() });
  assert.equal(res.statusCode, 201, res.body);
  const body = res.json();
  assert.equal(body.created, true);
  const snap = body.snapshot;
  assert.equal(snap.version, 1);
  assert.equal(snap.cluster, 'k3s');
  assert.deepEqual(snap.labels, { 'ci.job': '42', 'git.sha': 'abc123' });
  assert.deepEqual(snap.nodes.map((n: { name: string }) => n.name), ['node-a', 'node-b']);
  const a = snap.nodes[0];
  assert.equal(a.format, 'iptables-S');
  assert.equal(a.rules, 8);
  assert.deepEqual(a.tables, [{ name: 'nat', chains: 3, rules: 8 }]);
  assert.equal(a.bytes, Buffer.byteLength(clusterip));
  assert.equal(snap.manifests.bytes, manifests.length);
  assert.deepEqual(body.labels.stored, 'snapshot');
  const stored = await counts();
  // Two dumps and the manifests, each stored once; the staging upload is gone.
  assert.equal(stored.blob, 3);
  assert.equal(stored.upload, 0);

  // The same content again (other labels) is the same snapshot; the labels are recorded with it.
  const again = await t.app.inject({ method: 'POST', url: '/v1/clusters/k3s/snapshots', payload: upload({ labels: { 'ci.job': '43' } }) });
  assert.equal(again.statusCode, 200);
  assert.equal(again.json().created, false);
  assert.equal(again.json().snapshot.id, snap.id);
  assert.equal(again.json().labels.stored, 'reupload');
  assert.deepEqual(await counts(), stored);

  const got = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${snap.id}` });
  assert.equal(got.statusCode, 200);
  assert.equal(got.json().nodes[1].addresses[0], '10.32.7.224');
  assert.deepEqual(got.json().labels, { 'ci.job': '42', 'git.sha': 'abc123' });
  assert.deepEqual(got.json().reuploads.map((r: { labels: unknown }) => r.labels), [{ 'ci.job': '43' }]);

  const raw = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${snap.id}/nodes/node-a/rules` });
  assert.equal(raw.statusCode, 200);
  assert.equal(raw.body, clusterip);

  const clusters = await t.app.inject({ method: 'GET', url: '/v1/clusters' });
  assert.deepEqual(clusters.json().items.map((c: { name: string; snapshots: number }) => [c.name, c.snapshots]), [['k3s', 1]]);

  const one = await t.app.inject({
    method: 'GET',
    url: `/v1/snapshots/${snap.id}/trace?destination=10.43.62.130&port=80&protocol=tcp&source=10.42.0.7&node=node-a`,
  });
  assert.equal(one.statusCode, 200, one.body);
  const tr = one.json();
  assert.equal(tr.snapshot, snap.id);
  assert.equal(tr.results.length, 1);
  assert.equal(tr.results[0].node, 'node-a');
  assert.deepEqual(tr.results[0].outcomes.map((o: { destination: { ip: string } }) => o.destination.ip), ['10.42.0.43', '10.42.0.44', '10.42.1.41', '10.42.1.42']);
  assert.ok(tr.results[0].outcomes.every((o: { probability: number; masquerade: boolean }) => Math.abs(o.probability - 0.25) < 1e-9 && !o.masquerade));

  const all = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${snap.id}/trace?destination=10.32.7.224&port=30080` });
  assert.equal(all.statusCode, 200);
  const byNode = Object.fromEntries(all.json().results.map((r: { node: string; outcomes: { verdict: string }[] }) => [r.node, r.outcomes]));
  assert.deepEqual(Object.keys(byNode).sort(), ['node-a', 'node-b']);
  assert.equal(byNode['node-b'].length, 4);
  assert.ok(byNode['node-a'].every((o: { verdict: string }) => o.verdict === 'ACCEPT'));

  const missingNode = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${snap.id}/trace?destination=10.43.62.130&port=80&node=nope` });
  assert.equal(missingNode.statusCode, 404);
  assert.equal(missingNode.json().code, 'NOT_FOUND');

  const del = await t.app.inject({ method: 'DELETE', url: `/v1/snapshots/${snap.id}` });
  assert.equal(del.statusCode, 204);
  const gone = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${snap.id}` });
  assert.equal(gone.statusCode, 404);
  assert.match(String(gone.headers['content-type']), /problem\+json/);
  await t.service.sweep();
  const c = await counts();
  assert.equal(c.snapshot, 0);
  assert.equal(c.blob, 0);
  assert.equal(c.chunk, 0);
});

test('a malformed dump or manifest is refused with its line, and nothing is stored', async () => {
  const before = await counts();
  const bad = upload({
    nodes: [
      { name: 'node-a', addresses: ['10.0.0.1'], rules: clusterip },
      { name: 'node-b', addresses: ['10.0.0.2'], rules: '*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -p tcp -j\nCOMMIT\n' },
    ],
  });
  const res = await t.app.inject({ method: 'POST', url: '/v1/clusters/broken/snapshots', payload: bad });
  assert.equal(res.statusCode, 400);
  const p = res.json();
  assert.equal(p.code, 'DUMP_SYNTAX');
  assert.equal(p.node, 'node-b');
  assert.equal(p.line, 3);
  assert.equal(p.text, '-A KUBE-SERVICES -p tcp -j');
  const badYaml = upload({ manifests: 'apiVersion: v1\nkind: List\nitems:\n  - kind: Service\n   metadata: {name: x\n' });
  const res2 = await t.app.inject({ method: 'POST', url: '/v1/clusters/broken/snapshots', payload: badYaml });
  assert.equal(res2.statusCode, 400);
  assert.equal(res2.json().code, 'MANIFEST_SYNTAX');
  assert.ok(res2.json().line >= 4);
  const badJson = upload({ manifests: '{"kind": "List", "items": [}' });
  const res3 = await t.app.inject({ method: 'POST', url: '/v1/clusters/broken/snapshots', payload: badJson });
  assert.equal(res3.statusCode, 400);
  assert.equal(res3.json().code, 'MANIFEST_SYNTAX');
  assert.equal(res3.json().line, 1);
  // node-a's dump was written before node-b failed; the abandoned upload holds nothing after a sweep.
  await t.service.sweep();
  assert.deepEqual(await counts(), before);
});

test('20 concurrent uploads to one cluster get versions 1 to 20', async () => {
  const uploads = Array.from({ length: 20 }, (_, i) =>
    t.app.inject({
      method: 'POST',
      url: '/v1/clusters/busy/snapshots',
      payload: { nodes: [{ name: 'n', addresses: ['10.0.0.1'], rules: `${clusterip}# upload ${i}\n` }] },
    }));
  const results = await Promise.all(uploads);
  assert.ok(results.every((r) => r.statusCode === 201), results.map((r) => r.statusCode).join(','));
  const versions = results.map((r) => r.json().snapshot.version).sort((a, b) => a - b);
  assert.deepEqual(versions, Array.from({ length: 20 }, (_, i) => i + 1));
  // Newest first, paginated.
  const page1 = await t.app.inject({ method: 'GET', url: '/v1/clusters/busy/snapshots?limit=8' });
  const p1 = page1.json();
  assert.deepEqual(p1.items.map((s: { version: number }) => s.version), [20, 19, 18, 17, 16, 15, 14, 13]);
  const page2 = await t.app.inject({ method: 'GET', url: `/v1/clusters/busy/snapshots?limit=8&cursor=${p1.nextCursor}` });
  assert.deepEqual(page2.json().items.map((s: { version: number }) => s.version), [12, 11, 10, 9, 8, 7, 6, 5]);
  const page3 = await t.app.inject({ method: 'GET', url: `/v1/clusters/busy/snapshots?limit=8&cursor=${page2.json().nextCursor}` });
  assert.deepEqual(page3.json().items.map((s: { version: number }) => s.version), [4, 3, 2, 1]);
  assert.equal(page3.json().nextCursor, null);
  const unknown = await t.app.inject({ method: 'GET', url: '/v1/clusters/nope/snapshots' });
  assert.equal(unknown.statusCode, 404);
});

test('multipart uploads from curl keep dumps byte for byte; gzip bodies are accepted', async () => {
  const odd = '*nat\r\n:PREROUTING ACCEPT [0:0]\r\n-A PREROUTING -d 10.96.0.1/32 -p tcp -j DNAT --to-destination 10.244.0.5:443  \r\nCOMMIT\r\n';
  const boundary = '----svcpath-test';
  const part = (name: string, value: string, file = false) =>
    `--${boundary}\r\nContent-Disposition: form-data; name="${name}"${file ? `; filename="${name}.txt"` : ''}\r\n${file ? 'Content-Type: text/plain\r\n' : ''}\r\n${value}\r\n`;
  const payload = part('node-x', odd, true) + part('addresses.node-x', '192.168.0.2, 192.168.0.3') + part('label.ci.job', '7') + part('manifests', manifests, true) + `--${boundary}--\r\n`;
  const res = await t.app.inject({
    method: 'POST',
    url: '/v1/clusters/multi/snapshots',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    payload,
  });
  assert.equal(res.statusCode, 201, res.body);
  const snap = res.json().snapshot;
  assert.deepEqual(snap.nodes[0].addresses, ['192.168.0.2', '192.168.0.3']);
  assert.deepEqual(snap.labels, { 'ci.job': '7' });
  const raw = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${snap.id}/nodes/node-x/rules` });
  assert.equal(raw.rawPayload.toString('utf8'), odd);
  const tr = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${snap.id}/trace?destination=10.96.0.1&port=443` });
  assert.deepEqual(tr.json().results[0].outcomes[0].destination, { ip: '10.244.0.5', port: 443 });

  const zipped = gzipSync(JSON.stringify({ nodes: [{ name: 'z', addresses: ['10.0.0.9'], rules: nodeport }] }));
  const gz = await t.app.inject({
    method: 'POST',
    url: '/v1/clusters/zipped/snapshots',
    headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    payload: zipped,
  });
  assert.equal(gz.statusCode, 201, gz.body);
  assert.equal(gz.json().snapshot.nodes[0].rules, 9);
});

test('health answers once the database does; too-large bodies get 413', async () => {
  const h = await t.app.inject({ method: 'GET', url: '/health' });
  assert.equal(h.statusCode, 200);
  assert.deepEqual(h.json(), { status: 'ok', database: 'ok' });
  const big = await t.app.inject({
    method: 'POST',
    url: '/v1/clusters/big/snapshots',
    payload: { nodes: [{ name: 'n', addresses: [], rules: `# ${'x'.repeat(9 * 1024 * 1024)}\n${clusterip}` }] },
  });
  assert.equal(big.statusCode, 413);
  assert.equal(big.json().code, 'PAYLOAD_TOO_LARGE');
  const invalid = await t.app.inject({ method: 'POST', url: '/v1/clusters/bad name/snapshots', payload: upload() });
  assert.equal(invalid.statusCode, 400);
  assert.equal(invalid.json().code, 'VALIDATION');
});

test('dumps come back byte for byte: backslashes, tabs and carriage returns inside quotes, NUL-free binary-looking bytes', async () => {
  const rules = [
    '-A KUBE-SERVICES -m comment --comment "a \\"quoted\\" word\tand a tab" -j RETURN',
    '-A KUBE-SERVICES -m comment --comment "back\\\\slash" -j RETURN',
    '-A KUBE-SERVICES -m comment --comment "cr\rinside" -j RETURN',
  ];
  const dump = ['*nat', ':PREROUTING ACCEPT [0:0]', ':KUBE-SERVICES - [0:0]', '-A PREROUTING -j KUBE-SERVICES', ...rules, 'COMMIT', ''].join('\n');
  const res = await t.app.inject({ method: 'POST', url: '/v1/clusters/escapes/snapshots', payload: { nodes: [{ name: 'n', addresses: ['10.0.0.1'], rules: dump }] } });
  assert.equal(res.statusCode, 201, res.body);
  const raw = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${res.json().snapshot.id}/nodes/n/rules` });
  assert.equal(raw.rawPayload.toString('utf8'), dump);
  assert.equal(res.json().snapshot.nodes[0].rules, 4);
});
