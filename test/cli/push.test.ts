/** `svcpath push` against a real server on a loopback port, backed by a throwaway database. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.ts';
import { createTestApp } from '../api/helpers.ts';
import type { TestApp } from '../api/helpers.ts';
import { FIXTURES } from '../helpers.ts';

let t: TestApp;
let server: string;
before(async () => {
  t = await createTestApp();
  server = await t.app.listen({ host: '127.0.0.1', port: 0 });
});
after(async () => {
  await t?.close();
});

async function run(argv: string[]) {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => void (out += s), err: (s) => void (err += s) });
  return { code, out, err };
}

const clusterip = join(FIXTURES, 'k3s-blog', 'clusterip.iptables-S.txt');
const nodeport = join(FIXTURES, 'k3s-blog', 'nodeport.iptables-S.txt');

test('push uploads nodes and labels; the same content again is reported as already stored', async () => {
  const args = ['push', '--server', server, '--cluster', 'ci', '--node', `node-a=${clusterip}`, '--node', `node-b=${nodeport}`,
    '--node-ip', 'node-a=10.32.11.62', '--node-ip', 'node-b=10.32.7.224', '--label', 'ci.job=9'];
  const first = await run(args);
  assert.equal(first.code, 0, first.err);
  assert.match(first.out, /^created: ci version 1 \(/);
  assert.match(first.out, /node-a: 8 rules/);
  const second = await run(args);
  assert.match(second.out, /^already stored: ci version 1/);
  const res = await t.app.inject({ method: 'GET', url: '/v1/clusters/ci/snapshots' });
  const snap = res.json().items[0];
  assert.deepEqual(snap.labels, { 'ci.job': '9' });
});

test('push of a single node with --rules; server errors come back with the offending line', async () => {
  const ok = await run(['push', '--server', server, '--cluster', 'one', '--node', 'n1', '--rules', clusterip, '--node-ip', '10.0.0.1', '--json']);
  assert.equal(ok.code, 0, ok.err);
  assert.equal(JSON.parse(ok.out).snapshot.nodes[0].addresses[0], '10.0.0.1');
  const bad = join(FIXTURES, 'malformed', 'cut-inside.iptables-save.txt');
  const r = await run(['push', '--server', server, '--cluster', 'one', '--node', `n1=${bad}`]);
  assert.equal(r.code, 1);
  assert.match(r.err, /400 node n1: -j needs a target \(line 30, column 52\)/);
  const down = await run(['push', '--server', 'http://127.0.0.1:59998', '--cluster', 'x', '--node', `n=${clusterip}`]);
  assert.equal(down.code, 1);
  assert.match(down.err, /cannot reach the server/);
});

test('push sends each node\'s routes with its rules (--node-routes NAME=FILE, --routes FILE); stored traces use them', async () => {
  const mesos = join(FIXTURES, 'realworld', 'kubernetes-mesos-788-1.iptables-save.txt');
  const routes = join(FIXTURES, 'routes', 'docker-host', 'ip-route.txt');
  const outcomes = async (id: string) => {
    const res = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${id}/trace?destination=93.184.216.34&port=443&source=172.17.0.26` });
    return res.json().results[0].outcomes.map((o: { masquerade: boolean; outInterface?: string; conditions?: string[] }) => [o.masquerade, o.outInterface, o.conditions]);
  };
  const many = await run(['push', '--server', server, '--cluster', 'routed', '--node', `n1=${mesos}`, '--node-ip', 'n1=10.0.0.5', '--node-routes', `n1=${routes}`, '--json']);
  assert.equal(many.code, 0, many.err);
  const snap = JSON.parse(many.out).snapshot;
  assert.equal(snap.nodes[0].routes.bytes, 199);
  assert.deepEqual(await outcomes(snap.id), [[true, 'eth0', undefined]]);
  const one = await run(['push', '--server', server, '--cluster', 'routed-one', '--node', 'n1', '--rules', mesos, '--node-ip', '10.0.0.5', '--routes', routes, '--json']);
  assert.equal(one.code, 0, one.err);
  assert.deepEqual(await outcomes(JSON.parse(one.out).snapshot.id), [[true, 'eth0', undefined]]);
  const stray = await run(['push', '--server', server, '--cluster', 'x', '--node', `n1=${mesos}`, '--node-routes', `n2=${routes}`]);
  assert.equal(stray.code, 1);
  assert.match(stray.err, /--node-routes names node 'n2' but no --node n2=FILE is given/);
});

test('push --node6 NAME=FILE (or --rules6 FILE) sends a dual-stack node\'s IPv6 dump after its rules; stored traces of IPv6 use it', async () => {
  const v4 = join(FIXTURES, 'dual-stack', 'node-a.iptables-save.txt');
  const v6 = join(FIXTURES, 'dual-stack', 'node-a.ip6tables-save.txt');
  const r = await run(['push', '--server', server, '--cluster', 'dual', '--node', `node-a=${v4}`, '--node6', `node-a=${v6}`,
    '--node-ip', 'node-a=192.168.1.10,fd00:192:168:1::10', '--json']);
  assert.equal(r.code, 0, r.err);
  const snap = JSON.parse(r.out).snapshot;
  assert.equal(snap.nodes[0].ipv6.bytes, readFileSync(v6).length);
  const raw = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${snap.id}/nodes/node-a/rules6` });
  assert.equal(raw.body, readFileSync(v6, 'utf8'));
  const traced = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${snap.id}/trace?destination=${encodeURIComponent('[fd00:10:96::10]:80')}` });
  assert.deepEqual(traced.json().results[0].outcomes.map((o: { destination: { ip: string } }) => o.destination.ip).sort(), ['fd00:10:244:1::5', 'fd00:10:244:2::6']);
  const text = await run(['push', '--server', server, '--cluster', 'dual-one', '--node', 'node-a', '--rules', v4, '--rules6', v6, '--node-ip', '192.168.1.10']);
  assert.equal(text.code, 0, text.err);
  assert.match(text.out, /node-a: \d+ rules/);
  const stray = await run(['push', '--server', server, '--cluster', 'x', '--node', `node-a=${v4}`, '--node6', `node-b=${v6}`]);
  assert.equal(stray.code, 1);
  assert.match(stray.err, /--node6 names node 'node-b' but no --node node-b=FILE/);
  const twice = await run(['push', '--server', server, '--cluster', 'x', '--node', `node-a=${v4}`, '--node6', `node-a=${v6}`, '--node6', `node-a=${v6}`]);
  assert.equal(twice.code, 1);
  assert.match(twice.err, /--node6 names 'node-a' twice/);
});

test('push shows the notes the server made on a dump and warns about a node without an address', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'svcpath-push-'));
  // Pasted without its table header: read as nat, with a note saying so.
  const headerless = join(dir, 'fragment.txt');
  await writeFile(headerless, readFileSync(clusterip, 'utf8').split('\n').filter((l) => l.startsWith('-A ')).join('\n') + '\n');
  const r = await run(['push', '--server', server, '--cluster', 'notes', '--node', `n1=${headerless}`]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /warning: node n1 has no address/);
  assert.match(r.out, /n1: \d+ rules, \d+ notes?:\n {4}\S+/);
  assert.doesNotMatch(r.out, /\d+ notes\n/);
  await rm(dir, { recursive: true, force: true });
});
