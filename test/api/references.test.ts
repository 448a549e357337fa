/**
 * Saying it the way people say it (issue 15, item 2): snapshots by cluster and version, latest or
 * time, in REST and GraphQL; protocols in any case; ports inside the destination; Services by DNS name.
 */
import { test, before, after } from 'node:test';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { createTestApp } from './helpers.ts';
import type { TestApp } from './helpers.ts';
import { fixture } from '../helpers.ts';

let t: TestApp;
const clusterip = fixture('k3s-blog', 'clusterip.iptables-S.txt');
const nodeport = fixture('k3s-blog', 'nodeport.iptables-S.txt');
const manifests = readFileSync(new URL('../../examples/k3s/manifests.json', import.meta.url), 'utf8');
const ids: string[] = [];
const times: string[] = [];

async function upload(rules: string, label: string): Promise<void> {
  const res = await t.app.inject({
    method: 'POST', url: '/v1/clusters/k3s/snapshots',
    payload: { labels: { step: label }, nodes: [{ name: 'node-a', addresses: ['10.32.11.62'], rules }], manifests },
  });
  assert.equal(res.statusCode, 201, res.body);
  ids.push(res.json().snapshot.id);
  times.push(res.json().snapshot.createdAt);
}

before(async () => {
  t = await createTestApp();
  await upload(clusterip, 'one');
  await new Promise((r) => setTimeout(r, 20));
  await upload(nodeport, 'two');
});
after(async () => {
  await t?.close();
});

test('REST: latest, by version, and the latest at a time; references wherever an id goes', async () => {
  const latest = await t.app.inject('/v1/clusters/k3s/snapshots/latest');
  assert.equal(latest.statusCode, 200, latest.body);
  assert.equal(latest.json().id, ids[1]);
  assert.equal(latest.json().version, 2);
  const first = await t.app.inject('/v1/clusters/k3s/snapshots/1');
  assert.equal(first.json().id, ids[0]);
  // At the first one's time the second did not exist yet.
  const then = await t.app.inject(`/v1/clusters/k3s/snapshots/latest?at=${encodeURIComponent(times[0])}`);
  assert.equal(then.json().id, ids[0], then.body);
  const before = await t.app.inject('/v1/clusters/k3s/snapshots/latest?at=2000-01-01T00:00:00Z');
  assert.equal(before.statusCode, 404);
  assert.equal(before.headers['content-type'], 'application/problem+json; charset=utf-8');
  assert.equal((await t.app.inject('/v1/clusters/k3s/snapshots/9')).statusCode, 404);
  assert.equal((await t.app.inject('/v1/clusters/nope/snapshots/latest')).statusCode, 404);

  // A reference in place of an id: cluster@latest, cluster@version, cluster@time.
  assert.equal((await t.app.inject('/v1/snapshots/k3s@1')).json().id, ids[0]);
  assert.equal((await t.app.inject(`/v1/snapshots/k3s@${times[0]}`)).json().id, ids[0]);
  const trace = await t.app.inject('/v1/snapshots/k3s@latest/trace?destination=10.43.62.130:80&source=10.42.0.7');
  assert.equal(trace.statusCode, 200, trace.body);
  assert.equal(trace.json().snapshot, ids[1]);
  const rules = await t.app.inject('/v1/snapshots/k3s@1/nodes/node-a/rules');
  assert.equal(rules.statusCode, 200, rules.body);
  assert.equal(rules.body, clusterip);
  const diff = await t.app.inject('/v1/diff?from=k3s@1&to=k3s@latest');
  assert.equal(diff.statusCode, 200, diff.body);
  const bad = await t.app.inject('/v1/snapshots/k3s@yesterday');
  assert.equal(bad.statusCode, 400);
  assert.match(bad.json().detail, /latest, a version number, or an ISO 8601 time/);
});

test('REST: protocol in any case, the port in the destination, IPv6 with brackets', async () => {
  const a = await t.app.inject('/v1/snapshots/k3s@1/trace?destination=10.43.62.130&port=80&protocol=tcp&source=10.42.0.7');
  const b = await t.app.inject('/v1/snapshots/k3s@1/trace?destination=10.43.62.130:80&protocol=TCP&source=10.42.0.7');
  assert.equal(a.statusCode, 200, a.body);
  assert.equal(b.statusCode, 200, b.body);
  assert.deepEqual(b.json(), a.json());
  assert.equal(a.json().results[0].outcomes.length, 4);
  const clash = await t.app.inject('/v1/snapshots/k3s@1/trace?destination=10.43.62.130:80&port=443');
  assert.equal(clash.statusCode, 400);
  assert.match(clash.json().detail, /names port 80 but port 443/);
  const none = await t.app.inject('/v1/snapshots/k3s@1/trace?destination=10.43.62.130');
  assert.equal(none.statusCode, 400);
  assert.match(none.json().detail, /no destination port/);
  const proto = await t.app.inject('/v1/snapshots/k3s@1/trace?destination=10.43.62.130:80&protocol=HTTP');
  assert.equal(proto.statusCode, 400);
  assert.match(proto.json().detail, /'HTTP' is not one of tcp, udp, sctp, icmp/);
  // An IPv6 destination in an IPv4 snapshot: refused for its family, not for its spelling or its
  // (IPv4) default source.
  const v6 = await t.app.inject('/v1/snapshots/k3s@1/trace?destination=[fd00:10:96::10]:80');
  assert.equal(v6.statusCode, 400);
  assert.doesNotMatch(v6.json().detail, /same address family/);
});

test('REST: a Service by ns/name or by DNS name gives the same traces', async () => {
  const a = await t.app.inject('/v1/snapshots/k3s@1/trace?service=default/service-test&port=80&source=10.42.0.7');
  const b = await t.app.inject('/v1/snapshots/k3s@1/trace?service=service-test.default.svc.cluster.local&port=80&source=10.42.0.7');
  assert.equal(a.statusCode, 200, a.body);
  assert.deepEqual(b.json(), a.json());
});

test('POST /v1/trace: TCP, ip:port, no source', async () => {
  const res = await t.app.inject({
    method: 'POST', url: '/v1/trace',
    payload: { rules: clusterip, node: { addresses: ['10.32.11.62'] }, packet: { destination: '10.43.62.130:80', protocol: 'TCP' } },
  });
  assert.equal(res.statusCode, 200, res.body);
  assert.deepEqual(res.json().packet.destination, '10.43.62.130');
  assert.equal(res.json().packet.port, 80);
  assert.equal(res.json().packet.source, '203.0.113.10');
  assert.equal(res.json().outcomes.length, 4);
});

test('GraphQL: cluster(name) { latest }, snapshot(cluster, version | at), trace with TCP and ip:port', async () => {
  const q = `{
    cluster(name: "k3s") { name latest { id version } first: snapshot(version: 1) { id trace(destination: "10.43.62.130:80", protocol: "TCP", source: "10.42.0.7") { node outcomes { probability } } } }
    v1: snapshot(cluster: "k3s", version: 1) { id }
    then: snapshot(cluster: "k3s", at: "${times[0]}") { id }
    latest: snapshot(cluster: "k3s") { id }
    ref: snapshot(id: "k3s@1") { id }
    none: snapshot(cluster: "k3s", version: 7) { id }
    nocluster: cluster(name: "nope") { name }
  }`;
  const res = await t.app.inject({ method: 'POST', url: '/graphql', payload: { query: q } });
  const body = res.json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  assert.equal(body.data.cluster.latest.id, ids[1]);
  assert.equal(body.data.cluster.first.id, ids[0]);
  const shares = body.data.cluster.first.trace[0].outcomes.map((o: { probability: number }) => o.probability);
  assert.equal(shares.length, 4);
  for (const p of shares) assert.ok(Math.abs(p - 0.25) < 1e-6, String(p));
  assert.equal(body.data.v1.id, ids[0]);
  assert.equal(body.data.then.id, ids[0]);
  assert.equal(body.data.latest.id, ids[1]);
  assert.equal(body.data.ref.id, ids[0]);
  assert.equal(body.data.none, null);
  assert.equal(body.data.nocluster, null);
  const both = await t.app.inject({ method: 'POST', url: '/graphql', payload: { query: `{ snapshot(id: "${ids[0]}", cluster: "k3s") { id } }` } });
  assert.match(both.json().errors[0].message, /give id, or cluster/);
});

test('GraphQL diff by references, with enums and the unpaired nodes as REST gives them', async () => {
  const q = `{ diff(from: "k3s@1", to: "k3s@latest") { from to backends { from to } unpairedNodes { a b } frontends { change } summary { frontends { changed } } } }`;
  const body = (await t.app.inject({ method: 'POST', url: '/graphql', payload: { query: q } })).json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  const rest = (await t.app.inject('/v1/diff?from=k3s@1&to=k3s@latest')).json();
  assert.equal(body.data.diff.from, ids[0]);
  assert.equal(body.data.diff.to, ids[1]);
  assert.deepEqual(body.data.diff.backends, { from: rest.backends.from, to: rest.backends.to });
  assert.deepEqual(body.data.diff.unpairedNodes, rest.unpairedNodes);
  assert.deepEqual(body.data.diff.frontends.map((f: { change: string }) => f.change), rest.frontends.map((f: { change: string }) => f.change));
  assert.ok(body.data.diff.frontends.length > 0);
});
