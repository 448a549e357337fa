/** The diff over REST and GraphQL, and `svcpath diff`, on generated clusters with known edits. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestApp } from './helpers.ts';
import type { TestApp } from './helpers.ts';
import { main } from '../../src/cli/main.ts';
import { generateCluster, renderIptablesSave, renderManifests } from '../support/kube-gen.ts';

let t: TestApp;
const a = generateCluster({ seed: 11, services: 20, noEndpointShare: 0, loadBalancerShare: 0, externalIPShare: 0, affinityShare: 0, terminatingShare: 0 });
const b = structuredClone(a);
const deleted = b.services.find((s) => s.type === 'ClusterIP' && s.endpoints.length > 0 && s.ports.length === 1)!;
b.services = b.services.filter((s) => s !== deleted);
const shrunk = b.services.find((s) => s.type === 'ClusterIP' && s.endpoints.filter((e) => e.ready).length >= 2 && s.ports.length === 1)!;
const removed = shrunk.endpoints.find((e) => e.ready)!;
shrunk.endpoints = shrunk.endpoints.filter((e) => e !== removed);
const upload = (c: typeof a) => ({ nodes: [{ name: c.nodeName, addresses: c.nodeIPs, rules: renderIptablesSave(c) }], manifests: renderManifests(c) });
let idA: string;
let idB: string;

before(async () => {
  t = await createTestApp();
  idA = (await t.app.inject({ method: 'POST', url: '/v1/clusters/diff/snapshots', payload: upload(a) })).json().snapshot.id;
  idB = (await t.app.inject({ method: 'POST', url: '/v1/clusters/diff/snapshots', payload: upload(b) })).json().snapshot.id;
});
after(async () => {
  await t?.close();
});

test('GET /v1/diff reports the deleted Service and the removed endpoint, paginated', async () => {
  const res = await t.app.inject({ method: 'GET', url: `/v1/diff?from=${idA}&to=${idB}` });
  assert.equal(res.statusCode, 200, res.body);
  const d = res.json();
  const key = (s: { namespace: string; name: string }) => `${s.namespace}/${s.name}`;
  const byService = new Map<string, { change: string; changes: string[] }[]>();
  for (const f of d.frontends) byService.set(f.service, [...(byService.get(f.service) ?? []), f]);
  assert.ok(byService.get(key(deleted))?.every((f) => f.change === 'removed'), JSON.stringify(d.frontends.map((f: { service: string; change: string }) => [f.service, f.change])));
  const changed = byService.get(key(shrunk)) ?? [];
  assert.ok(changed.some((f) => f.change === 'changed' && f.changes.some((c) => c.includes(`${removed.ip}:`) && c.includes('removed'))));
  assert.deepEqual([...byService.keys()].sort(), [key(deleted), key(shrunk)].sort());
  assert.ok(d.summary.frontends.unchanged > 10);
  assert.ok(d.manifests.some((m: { kind: string; name: string; change: string }) => m.kind === 'Service' && m.name === key(deleted) && m.change === 'removed'));
  const page = await t.app.inject({ method: 'GET', url: `/v1/diff?from=${idA}&to=${idB}&limit=1` });
  const p1 = page.json();
  assert.equal(p1.frontends.length, 1);
  assert.ok(p1.nextCursor);
  const p2 = (await t.app.inject({ method: 'GET', url: `/v1/diff?from=${idA}&to=${idB}&limit=1&cursor=${p1.nextCursor}` })).json();
  assert.notDeepEqual(p2.frontends[0], p1.frontends[0]);
});

test('a snapshot diffed with itself has no changes; GraphQL gives the same summary', async () => {
  const self = (await t.app.inject({ method: 'GET', url: `/v1/diff?from=${idA}&to=${idA}` })).json();
  assert.equal(self.frontends.length + self.rules.length + self.manifests.length, 0);
  assert.deepEqual(self.summary.frontends, { added: 0, removed: 0, changed: 0, unchanged: self.summary.frontends.unchanged });
  const gql = await t.app.inject({
    method: 'POST', url: '/graphql',
    payload: { query: `{ diff(from: "${idA}", to: "${idB}") { summary { frontends { added removed changed unchanged } } frontends { node service change changes frontend { ip port protocol kind } } } }` },
  });
  const rest = (await t.app.inject({ method: 'GET', url: `/v1/diff?from=${idA}&to=${idB}` })).json();
  assert.deepEqual(gql.json().data.diff.summary.frontends, rest.summary.frontends);
  assert.equal(gql.json().data.diff.frontends.length, rest.frontends.length);
});

test('svcpath diff a.txt b.txt prints the summary and the changes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'svcpath-diff-'));
  writeFileSync(join(dir, 'a.txt'), renderIptablesSave(a));
  writeFileSync(join(dir, 'b.txt'), renderIptablesSave(b));
  let out = '';
  const code = await main(['diff', join(dir, 'a.txt'), join(dir, 'b.txt'), '--node-ip', a.nodeIPs[0]], { out: (s) => void (out += s), err: () => {} });
  assert.equal(code, 0);
  assert.match(out, /^frontends: 0 added, \d+ removed, \d+ changed, \d+ unchanged/);
  assert.match(out, new RegExp(`endpoint ${removed.ip.replace(/\./g, '\\.')}:\\d+ removed`));
});
