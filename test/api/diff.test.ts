/**
 * The diff over REST and GraphQL, and `svcpath diff`, on generated clusters with known edits; and
 * across backends: the same cluster as an iptables-mode and as an nftables-mode snapshot.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fastJson from 'fast-json-stringify';
import { diffPageSchema, sharedSchemas } from '../../src/api/rest/schemas.ts';
import { createTestApp } from './helpers.ts';
import type { TestApp } from './helpers.ts';
import { main } from '../../src/cli/main.ts';
import { fleetNodes, generateCluster, onNode, renderIptablesSave, renderManifests } from '../support/kube-gen.ts';
import type { GenCluster } from '../support/kube-gen.ts';
import { renderNftables } from '../support/kube-gen-nft.ts';

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

test('a page of a diff, written from the texts the server keeps, is what its response schema would write, and GraphQL reads the same page', async () => {
  const serialize = fastJson(diffPageSchema, { schema: Object.fromEntries(sharedSchemas.map((s) => [String(Reflect.get(s, '$id')), s])) });
  type Page = Record<'frontends' | 'rules' | 'manifests', Record<string, unknown>[]> & { nextCursor: string | null };
  const pages: Page[] = [];
  let cursor: string | null = null;
  do {
    const url: string = `/v1/diff?from=${idA}&to=${idB}&limit=1${cursor ? `&cursor=${cursor}` : ''}`;
    const res = await t.app.inject({ method: 'GET', url });
    assert.equal(res.statusCode, 200, res.body);
    assert.match(String(res.headers['content-type']), /^application\/json; charset=utf-8$/);
    const page: Page = res.json();
    assert.deepEqual(page, JSON.parse(serialize(page)));
    pages.push(page);
    cursor = page.nextCursor;
  } while (cursor !== null && pages.length < 50);
  const all = (k: 'frontends' | 'rules' | 'manifests') => pages.flatMap((p) => p[k]);
  const whole = (await t.app.inject({ method: 'GET', url: `/v1/diff?from=${idA}&to=${idB}&limit=1000` })).json();
  for (const k of ['frontends', 'rules', 'manifests'] as const) {
    assert.deepEqual(all(k), whole[k], k);
    assert.equal(whole.totals[k], whole[k].length);
  }
  assert.ok(whole.frontends.length > 1 && whole.rules.length > 1, 'the lists take several pages');
  const gql = await t.app.inject({
    method: 'POST', url: '/graphql',
    payload: { query: `{ diff(from: "${idA}", to: "${idB}", first: 1) { frontends { node service change changes } rules { node table chain change } } }` },
  });
  const first = gql.json().data.diff;
  assert.deepEqual(first.frontends, pages[0].frontends.map((f) => ({ node: f.node, service: f.service, change: f.change, changes: f.changes })));
  assert.deepEqual(first.rules, pages[0].rules.map((r) => ({ node: r.node, table: r.table, chain: r.chain, change: r.change })));
});

test('a snapshot diffed with itself has no changes; GraphQL gives the same summary', async () => {
  const self = (await t.app.inject({ method: 'GET', url: `/v1/diff?from=${idA}&to=${idA}` })).json();
  assert.equal(self.frontends.length + self.rules.length + self.manifests.length, 0);
  assert.deepEqual(self.summary.frontends, { added: 0, removed: 0, changed: 0, unchanged: self.summary.frontends.unchanged, known: 0 });
  assert.deepEqual(self.backends, { from: 'iptables', to: 'iptables', across: [] });
  assert.deepEqual(self.knownDifferences, []);
  const gql = await t.app.inject({
    method: 'POST', url: '/graphql',
    payload: { query: `{ diff(from: "${idA}", to: "${idB}") { summary { frontends { added removed changed unchanged known } } frontends { node service change changes frontend { ip port protocol kind } } } }` },
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
  assert.equal(code, 1, "changes: exit 1 as diff(1)");
  assert.match(out, /^frontends: 0 added, \d+ removed, \d+ changed, \d+ unchanged/);
  assert.match(out, new RegExp(`endpoint ${removed.ip.replace(/\./g, '\\.')}:\\d+ removed`));
});

// The same cluster in both modes, two nodes each; and in nftables mode with one endpoint fewer.
const cross = generateCluster({ seed: 7, services: 30, nodes: 3, nodePortShare: 0.3, loadBalancerShare: 0.1 });
const crossNodes = fleetNodes(cross, 2);
const crossShrunk = structuredClone(cross);
const crossSvc = crossShrunk.services.find((s) => s.type === 'ClusterIP' && s.ports.length === 1 && s.sessionAffinity === 'None'
  && s.internalTrafficPolicy === 'Cluster' && s.endpoints.length >= 2 && s.endpoints.every((e) => e.ready && !e.terminating))!;
const crossGone = crossSvc.endpoints.pop()!;
const modeUpload = (c: GenCluster, mode: 'iptables' | 'nftables') => ({
  nodes: crossNodes.map((n) => ({ name: n.name, addresses: n.addresses, rules: mode === 'iptables' ? renderIptablesSave(onNode(c, n)) : renderNftables(c, n) })),
  manifests: renderManifests(c),
});

test('GET /v1/diff from an iptables-mode to an nftables-mode snapshot: backends, known differences, no unexplained change', async () => {
  const create = async (c: GenCluster, mode: 'iptables' | 'nftables') => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/clusters/migrate/snapshots', payload: modeUpload(c, mode) });
    assert.equal(res.statusCode, 201, res.body);
    return res.json().snapshot.id as string;
  };
  const ipt = await create(cross, 'iptables');
  const nft = await create(cross, 'nftables');
  const res = await t.app.inject({ method: 'GET', url: `/v1/diff?from=${ipt}&to=${nft}&limit=1000` });
  assert.equal(res.statusCode, 200, res.body);
  const d = res.json();
  assert.deepEqual(d.backends, { from: 'iptables', to: 'nftables', across: ['node-001', 'node-002'] });
  assert.deepEqual(d.rules, []);
  assert.equal(d.summary.frontends.changed + d.summary.frontends.added + d.summary.frontends.removed, 0, JSON.stringify(d.frontends.filter((f: { known?: unknown }) => !f.known)));
  assert.ok(d.summary.frontends.known > 0);
  assert.ok(d.frontends.every((f: { known?: { code: string; reason: string } }) => f.known && f.known.reason.length > 20));
  const codes = new Set(d.knownDifferences.map((k: { code: string }) => k.code));
  for (const code of ['NODEPORT_LOCALHOST', 'NODEPORT_ADDRESSES', 'CLUSTER_IP_OTHER_PORT']) assert.ok(codes.has(code), code);

  // A real change on the nftables side is reported as such, beside the known differences.
  const shrunk = await create(crossShrunk, 'nftables');
  const changed = (await t.app.inject({ method: 'GET', url: `/v1/diff?from=${ipt}&to=${shrunk}&limit=1000` })).json();
  const unexplained = changed.frontends.filter((f: { known?: unknown }) => !f.known);
  assert.deepEqual(unexplained.map((f: { node: string; service: string; frontend: { ip: string } }) => [f.node, f.service, f.frontend.ip]),
    crossNodes.map((n) => [n.name, `${crossSvc.namespace}/${crossSvc.name}`, crossSvc.clusterIP]));
  assert.ok(unexplained[0].changes.includes(`endpoint ${crossGone.ip}:${crossGone.port} removed`));
  assert.equal(changed.summary.endpoints.removed, 2);

  const gql = await t.app.inject({
    method: 'POST', url: '/graphql',
    payload: { query: `{ diff(from: "${ipt}", to: "${shrunk}", first: 200) { backends { from to across } summary { frontends { changed known } rules { elementsAdded } }
      knownDifferences { node code reason frontends seen } frontends { service changes known { code } probe } } }` },
  });
  assert.equal(gql.statusCode, 200, gql.body);
  const g = gql.json().data.diff;
  assert.deepEqual(g.backends, changed.backends);
  assert.deepEqual(g.summary.frontends, { changed: changed.summary.frontends.changed, known: changed.summary.frontends.known });
  assert.deepEqual(g.knownDifferences, changed.knownDifferences);
  assert.ok(g.frontends.some((f: { probe: string | null; known: { code: string } | null }) => f.probe === 'localhost-nodeport' && f.known?.code === 'NODEPORT_LOCALHOST'));
});

test('svcpath diff of an iptables dump and an nftables ruleset of one node: backends, known differences, the real change', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'svcpath-xdiff-'));
  const [node] = crossNodes;
  writeFileSync(join(dir, 'iptables.txt'), renderIptablesSave(onNode(cross, node)));
  writeFileSync(join(dir, 'nftables.txt'), renderNftables(crossShrunk, node));
  writeFileSync(join(dir, 'manifests.json'), renderManifests(cross));
  let out = '';
  const code = await main(['diff', join(dir, 'iptables.txt'), join(dir, 'nftables.txt'), '--node-ip', node.addresses[0], '--cluster-cidr', cross.clusterCIDR,
    '--manifests-a', join(dir, 'manifests.json'), '--manifests-b', join(dir, 'manifests.json')], { out: (s) => void (out += s), err: () => {} });
  assert.equal(code, 1, "one real change: exit 1 as diff(1)");
  assert.match(out, /^backends: iptables → nftables: the rules are of different backends/);
  assert.match(out, /\nfrontends: 0 added, 0 removed, 1 changed, \d+ unchanged, \d+ with known differences\n/);
  assert.match(out, /\nKNOWN NODEPORT_LOCALHOST \(\d+ frontends?\): iptables mode accepts NodePort connections to 127\.0\.0\.1/);
  assert.match(out, new RegExp(`\\nCHANGED ClusterIP ${crossSvc.clusterIP.replace(/\./g, '\\.')}:\\d+/tcp \\(${crossSvc.namespace}/${crossSvc.name}\\)\\n  [^\\n]*\\n`));
  assert.match(out, new RegExp(`endpoint ${crossGone.ip.replace(/\./g, '\\.')}:${crossGone.port} removed`));
});
