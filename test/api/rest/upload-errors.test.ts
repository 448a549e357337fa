/** Refused uploads say what was expected (issue 15, item 5): content types, the form of a part; binary never echoed. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { createTestApp } from '../helpers.ts';
import type { TestApp } from '../helpers.ts';
import { fixture } from '../../helpers.ts';

let t: TestApp;
before(async () => {
  t = await createTestApp();
});
after(async () => {
  await t?.close();
});

const dump = fixture('k3s-blog', 'clusterip.iptables-S.txt');
const BOUNDARY = 'svcpath-test-boundary';

function multipart(name: string, content: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"; filename="${name}.txt"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    content,
    Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  ]);
}

async function snapshots(): Promise<number> {
  return (await t.db.pool.query('SELECT count(*)::int AS n FROM snapshot')).rows[0].n;
}

test('a raw dump sent as text/plain, or with no content type, is a 415 that names the accepted forms', async () => {
  for (const headers of [{ 'content-type': 'text/plain' }, { 'content-type': '' }]) {
    const res = await t.app.inject({ method: 'POST', url: '/v1/clusters/c/snapshots', headers, payload: dump });
    assert.equal(res.statusCode, 415, res.body);
    assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
    const detail = res.json().detail as string;
    assert.match(detail, /takes application\/json or multipart\/form-data/);
    assert.match(detail, headers['content-type'] ? /the request was "text\/plain"/ : /the request had no Content-Type/);
  }
  assert.equal(await snapshots(), 0);
});

test('a gzip part is inflated by its first bytes; a binary part is refused by its first bytes in hex, never echoed', async () => {
  const gz = await t.app.inject({
    method: 'POST', url: '/v1/clusters/c/snapshots',
    headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` }, payload: multipart('node-a', gzipSync(dump)),
  });
  assert.equal(gz.statusCode, 201, gz.body);
  assert.equal(gz.json().snapshot.nodes[0].rules, 8);
  const binary = Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, ...Array.from({ length: 200 }, (_, i) => i % 7)]);
  const res = await t.app.inject({
    method: 'POST', url: '/v1/clusters/c/snapshots',
    headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` }, payload: multipart('node-b', binary),
  });
  assert.equal(res.statusCode, 400, res.body);
  const body = res.json();
  assert.match(body.detail, /node node-b: rules is binary data \(it begins with bytes 7f 45 4c 46 02 01 01 00\), not text: send the text of iptables-save/);
  // eslint-disable-next-line no-control-regex -- the test looks for control characters in the answer
  assert.doesNotMatch(res.body, /[\u0000-\u0008]|\\u000[0-8]|ELF/);
  assert.equal(await snapshots(), 1);
});
