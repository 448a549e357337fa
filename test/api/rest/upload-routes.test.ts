/** Uploads in steps, versions as states, and storage shared by content, against a real PostgreSQL. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
import { createTestApp } from '../helpers.ts';
import type { TestApp } from '../helpers.ts';
import { fixture } from '../../helpers.ts';
import { generateCluster, renderIptablesSave, renderManifests } from '../../support/kube-gen.ts';

let t: TestApp;
before(async () => {
  t = await createTestApp({ uploadLimits: { partBytes: 2 * 1024 * 1024, totalBytes: 5 * 1024 * 1024 } });
});
after(async () => {
  await t?.close();
});

const clusterip = fixture('k3s-blog', 'clusterip.iptables-S.txt');
const nodeport = fixture('k3s-blog', 'nodeport.iptables-S.txt');

async function storage(): Promise<{ blobs: number; chunks: number; bytes: number; uploads: number }> {
  const { rows: [r] } = await t.db.pool.query(
    `SELECT (SELECT count(*) FROM blob)::int AS blobs, (SELECT count(*) FROM chunk)::int AS chunks,
            (SELECT COALESCE(sum(octet_length(data)), 0) FROM chunk)::int AS bytes, (SELECT count(*) FROM upload WHERE committed_snapshot_id IS NULL)::int AS uploads`,
  );
  return r;
}

async function begin(cluster: string): Promise<string> {
  const res = await t.app.inject({ method: 'POST', url: `/v1/clusters/${cluster}/uploads` });
  assert.equal(res.statusCode, 201, res.body);
  return res.json().id;
}

async function putNode(id: string, node: string, dump: string | Buffer, query = '', headers: Record<string, string> = {}) {
  return t.app.inject({
    method: 'PUT', url: `/v1/uploads/${id}/nodes/${node}${query}`, payload: dump,
    headers: { 'content-type': 'text/plain', ...headers },
  });
}

async function commit(id: string, labels: Record<string, string> = {}) {
  return t.app.inject({ method: 'POST', url: `/v1/uploads/${id}/commit`, payload: { labels } });
}

test('an upload in steps: nodes (gzip too) and manifests put, nothing visible before commit, then one snapshot', async () => {
  const id = await begin('steps');
  const a = await putNode(id, 'node-a', clusterip, '?addresses=10.32.11.62');
  assert.equal(a.statusCode, 200, a.body);
  assert.equal(a.json().parsed, true);
  assert.equal(a.json().node.rules, 8);
  const b = await putNode(id, 'node-b', gzipSync(nodeport), '?addresses=10.32.7.224,fd00::2&format=iptables-S', { 'content-encoding': 'gzip' });
  assert.equal(b.statusCode, 200, b.body);
  assert.deepEqual(b.json().node.addresses, ['10.32.7.224', 'fd00::2']);
  const m = await t.app.inject({
    method: 'PUT', url: `/v1/uploads/${id}/manifests`, payload: '{"apiVersion": "v1", "kind": "List", "items": []}',
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(m.statusCode, 200, m.body);

  const pending = await t.app.inject({ method: 'GET', url: `/v1/uploads/${id}` });
  assert.deepEqual(pending.json().nodes.map((n: { name: string }) => n.name), ['node-a', 'node-b']);
  const clusters = await t.app.inject({ method: 'GET', url: '/v1/clusters' });
  assert.deepEqual(clusters.json().items.filter((c: { name: string }) => c.name === 'steps'), []);

  const done = await commit(id, { 'ci.job': '1' });
  assert.equal(done.statusCode, 201, done.body);
  const snap = done.json().snapshot;
  assert.equal(snap.version, 1);
  assert.deepEqual(snap.labels, { 'ci.job': '1' });
  assert.equal(snap.manifests.bytes, 49);
  const raw = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${snap.id}/nodes/node-b/rules` });
  assert.equal(raw.body, nodeport);
  // A commit retried (its answer lost) gets the same answer; nothing more can be put.
  const retried = await commit(id, { 'ci.job': '1' });
  assert.equal(retried.statusCode, 201);
  assert.equal(retried.json().snapshot.id, snap.id);
  assert.equal((await putNode(id, 'node-c', clusterip)).statusCode, 404);
  assert.equal((await t.app.inject({ method: 'GET', url: `/v1/uploads/${id}` })).statusCode, 404);
  assert.equal((await t.app.inject({ method: 'DELETE', url: `/v1/uploads/${id}` })).statusCode, 404);
  assert.equal((await t.app.inject({ method: 'GET', url: '/v1/clusters/steps/snapshots' })).json().items.length, 1);
});

test('a node put again replaces the first; a stored dump is not parsed again; a bad dump is located and not staged', async () => {
  const id = await begin('again');
  assert.equal((await putNode(id, 'n', nodeport)).json().parsed, true);
  const second = await putNode(id, 'n', clusterip, '?addresses=10.0.0.1');
  // The same dump was stored by the previous test: its summary is reused.
  assert.equal(second.json().parsed, false);
  assert.equal(second.json().node.rules, 8);
  const bad = await putNode(id, 'broken', '*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -p tcp -j\nCOMMIT\n');
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().node, 'broken');
  assert.equal(bad.json().line, 3);
  const badName = await putNode(id, 'bad%20name', clusterip);
  assert.equal(badName.statusCode, 400);
  const up = await t.app.inject({ method: 'GET', url: `/v1/uploads/${id}` });
  assert.deepEqual(up.json().nodes.map((n: { name: string; rules: number }) => [n.name, n.rules]), [['n', 8]]);
  const empty = await begin('again');
  assert.equal((await commit(empty)).statusCode, 400);
  const del = await t.app.inject({ method: 'DELETE', url: `/v1/uploads/${id}` });
  assert.equal(del.statusCode, 204);
  assert.equal((await t.app.inject({ method: 'DELETE', url: `/v1/uploads/${id}` })).statusCode, 404);
});

test('versions mean states: A, A again (200, labels recorded), B, then A again is version 3', async () => {
  const put = async (dump: string, labels: Record<string, string>) => {
    const id = await begin('states');
    await putNode(id, 'n', dump, '?addresses=10.0.0.1');
    return commit(id, labels);
  };
  const a1 = await put(clusterip, { run: '1' });
  assert.equal(a1.statusCode, 201);
  const a2 = await put(clusterip, { run: '2' });
  assert.equal(a2.statusCode, 200);
  assert.equal(a2.json().created, false);
  assert.equal(a2.json().snapshot.id, a1.json().snapshot.id);
  assert.equal(a2.json().labels.stored, 'reupload');
  assert.deepEqual(a2.json().snapshot.reuploads.map((r: { labels: unknown }) => r.labels), [{ run: '2' }]);
  const b = await put(nodeport, { run: '3' });
  assert.equal(b.json().snapshot.version, 2);
  const a3 = await put(clusterip, { run: '4' });
  assert.equal(a3.statusCode, 201);
  assert.equal(a3.json().snapshot.version, 3);
  assert.equal(a3.json().snapshot.contentHash, a1.json().snapshot.contentHash);
  assert.deepEqual(a3.json().snapshot.labels, { run: '4' });
  const list = await t.app.inject({ method: 'GET', url: '/v1/clusters' });
  const states = list.json().items.find((c: { name: string }) => c.name === 'states');
  assert.equal(states.latest.version, 3);
  assert.equal(states.latest.id, a3.json().snapshot.id);
});

test('nodes of one cluster and its next version share storage; deleting a version frees only what it alone used', async () => {
  const cluster = generateCluster({ seed: 7, services: 300 });
  const nodes = cluster.nodes.slice(0, 4);
  const dumpOf = (c: typeof cluster, node: string, i: number) => renderIptablesSave({ ...c, nodeName: node, nodeIPs: [`10.1.0.${i + 1}`] });
  const dumps = nodes.map((n, i) => dumpOf(cluster, n, i));
  assert.ok(new Set(dumps).size > 1, 'nodes differ');
  const manifests = renderManifests(cluster);
  const rawSize = dumps.reduce((k, d) => k + d.length, 0) + manifests.length;

  const before = await storage();
  const upload = async (ds: string[], m: string) => {
    const id = await begin('fleet');
    for (const [i, d] of ds.entries()) assert.equal((await putNode(id, nodes[i], d, `?addresses=10.1.0.${i + 1}`)).statusCode, 200);
    await t.app.inject({ method: 'PUT', url: `/v1/uploads/${id}/manifests`, payload: m, headers: { 'content-type': 'application/json' } });
    const res = await commit(id);
    assert.equal(res.statusCode, 201, res.body);
    return res.json().snapshot;
  };
  const v1 = await upload(dumps, manifests);
  const afterV1 = await storage();
  // Four nodes cost far less than four dumps: the chunks they share are stored once, compressed.
  assert.ok(afterV1.bytes - before.bytes < dumps[0].length, `v1 added ${afterV1.bytes - before.bytes} bytes for ${rawSize} raw`);

  // Next version: one Service loses an endpoint.
  const edited = structuredClone(cluster);
  const svc = edited.services.find((s) => s.endpoints.length > 2 && s.clusterIP !== 'None')!;
  svc.endpoints.pop();
  const v2 = await upload(nodes.map((n, i) => dumpOf(edited, n, i)), renderManifests(edited));
  const afterV2 = await storage();
  assert.ok(afterV2.bytes - afterV1.bytes < rawSize / 20, `v2 added ${afterV2.bytes - afterV1.bytes} bytes for ${rawSize} raw`);

  const del = await t.app.inject({ method: 'DELETE', url: `/v1/snapshots/${v1.id}` });
  assert.equal(del.statusCode, 204);
  await t.service.sweep();
  const afterDelete = await storage();
  assert.ok(afterDelete.chunks < afterV2.chunks && afterDelete.chunks > afterV1.chunks - before.chunks);
  // v2 is whole, byte for byte.
  for (const [i, n] of nodes.entries()) {
    const raw = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${v2.id}/nodes/${n}/rules` });
    assert.equal(raw.body, dumpOf(edited, n, i));
  }
});

test('an upload left uncommitted expires, and the sweep gives its storage back', async () => {
  const short = await createTestApp({ uploadTtlMs: 200 });
  try {
    const before = (await short.db.pool.query('SELECT (SELECT count(*) FROM chunk)::int AS c, (SELECT count(*) FROM blob)::int AS b')).rows[0];
    const res = await short.app.inject({ method: 'POST', url: '/v1/clusters/left/uploads' });
    const id = res.json().id;
    const put = await short.app.inject({ method: 'PUT', url: `/v1/uploads/${id}/nodes/n`, payload: clusterip, headers: { 'content-type': 'text/plain' } });
    assert.equal(put.statusCode, 200);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await short.app.inject({ method: 'GET', url: `/v1/uploads/${id}` })).statusCode, 404);
    assert.equal((await short.app.inject({ method: 'POST', url: `/v1/uploads/${id}/commit`, payload: {} })).statusCode, 404);
    await short.service.sweep();
    const after = (await short.db.pool.query('SELECT (SELECT count(*) FROM chunk)::int AS c, (SELECT count(*) FROM blob)::int AS b, (SELECT count(*) FROM upload)::int AS u')).rows[0];
    assert.deepEqual(after, { ...before, u: 0 });
  } finally {
    await short.close();
  }
});

test('limits apply per part and in all, after gzip is inflated', async () => {
  const big = `# ${'x'.repeat(3 * 1024 * 1024)}\n${clusterip}`;
  const id = await begin('limits');
  const tooBig = await putNode(id, 'n', gzipSync(big), '', { 'content-encoding': 'gzip' });
  assert.equal(tooBig.statusCode, 413);
  assert.equal(tooBig.json().code, 'PAYLOAD_TOO_LARGE');

  const boundary = '----svcpath-limits';
  const filePart = (name: string, value: Buffer) => Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${name}.gz"\r\nContent-Type: application/gzip\r\n\r\n`),
    value, Buffer.from('\r\n'),
  ]);
  const multipart = (parts: Buffer[]) => t.app.inject({
    method: 'POST', url: '/v1/clusters/limits/snapshots',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    payload: Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)]),
  });
  const open = (await storage()).uploads;
  // A gzip part is inflated: small on the wire, too large once inflated.
  const one = await multipart([filePart('n', gzipSync(big))]);
  assert.equal(one.statusCode, 413, one.body);
  assert.equal(one.json().part, 'n');
  // Parts under the per-part limit, together over the total.
  const medium = `# ${'y'.repeat(1536 * 1024)}\n${clusterip}`;
  const four = await multipart(['a', 'b', 'c', 'd'].map((n) => filePart(n, gzipSync(medium.replace('# y', `# ${n}`)))));
  assert.equal(four.statusCode, 413, four.body);
  // A gzip part within limits is stored inflated, byte for byte.
  const ok = await multipart([filePart('z', gzipSync(clusterip))]);
  assert.equal(ok.statusCode, 201, ok.body);
  const raw = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${ok.json().snapshot.id}/nodes/z/rules` });
  assert.equal(raw.body, clusterip);
  // The one-request uploads that failed left no upload behind.
  assert.equal((await storage()).uploads, open);
});

test('labels within limits, and text PostgreSQL cannot hold, are refused before anything is stored', async () => {
  const before = await storage();
  const post = (body: object) => t.app.inject({ method: 'POST', url: '/v1/clusters/refused/snapshots', payload: body });
  const node = { name: 'n', addresses: ['10.0.0.1'], rules: clusterip };
  const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v']));
  for (const labels of [many, { 'bad key!': 'v' }, { k: 'x'.repeat(257) }, { k: 'a\u0000b' }]) {
    const res = await post({ nodes: [node], labels });
    assert.equal(res.statusCode, 400, JSON.stringify(labels).slice(0, 80));
    assert.equal(res.json().code, 'VALIDATION');
  }
  const nul = clusterip.replace('KUBE-SVC-GBTMB5ZTD56ECL5F', 'KUBE-SVC-GBTMB5ZTD56E\u0000L5F');
  const res = await post({ nodes: [{ ...node, rules: nul }] });
  assert.equal(res.statusCode, 400);
  assert.match(res.json().detail, /NUL/);
  assert.ok(res.json().line > 0);
  const step = await begin('refused');
  const put = await putNode(step, 'n', Buffer.from(nul));
  assert.equal(put.statusCode, 400);
  assert.match(put.json().detail, /NUL/);
  await t.service.sweep();
  const after = await storage();
  assert.deepEqual({ ...after, uploads: 0 }, { ...before, uploads: 0 });
  assert.equal((await t.app.inject({ method: 'GET', url: '/v1/clusters/refused/snapshots' })).statusCode, 404);
});

test('over HTTP, a dump is read into shared memory and stored byte for byte, and one past the limit gets 413 on a socket left whole', async () => {
  const base = await t.app.listen({ host: '127.0.0.1', port: 0 });
  // A body in chunks as a socket sends it, with or without its length said first.
  const put = (path: string, body: Buffer, sayLength: boolean) => new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(`${base}${path}`, { method: 'PUT', headers: { 'content-type': 'text/plain', ...(sayLength ? { 'content-length': String(body.length) } : {}) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    for (let i = 0; i < body.length; i += 256 * 1024) req.write(body.subarray(i, i + 256 * 1024));
    req.end();
  });
  const id = await begin('over-http');
  const large = Buffer.from(`# ${'z'.repeat(1536 * 1024)}\n${clusterip}`);
  for (const sayLength of [true, false]) {
    const ok = await put(`/v1/uploads/${id}/nodes/n?addresses=10.0.0.1`, large, sayLength);
    assert.equal(ok.status, 200, ok.text);
    const tooBig = await put(`/v1/uploads/${id}/nodes/m`, Buffer.concat([large, large]), sayLength);
    assert.equal(tooBig.status, 413, tooBig.text);
    assert.match(JSON.parse(tooBig.text).detail, /SVCPATH_NODE_LIMIT_MB: 2 MiB/);
  }
  const commit = await t.app.inject({ method: 'POST', url: `/v1/uploads/${id}/commit`, payload: {} });
  assert.equal(commit.statusCode, 201, commit.body);
  const raw = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${commit.json().snapshot.id}/nodes/n/rules` });
  assert.ok(raw.rawPayload.equals(large));
});
