import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../../src/app.ts';
import { fixture } from '../../helpers.ts';

let app: FastifyInstance;
before(async () => {
  app = await buildApp({ bodyLimit: 120 * 1024 * 1024 });
});
after(async () => {
  await app.close();
});

const clusterip = fixture('k3s-blog', 'clusterip.iptables-S.txt');

test('POST /v1/trace answers the k3s question with the contract shape', async () => {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/trace',
    payload: {
      rules: clusterip,
      format: 'auto',
      node: { name: 'node-a', addresses: ['10.32.11.62'] },
      packet: { source: '10.42.0.7', destination: '10.43.62.130', port: 80, protocol: 'tcp', entry: 'PREROUTING', inInterface: 'eth0' },
    },
  });
  assert.equal(res.statusCode, 200);
  const body = res.json();
  assert.equal(body.outcomes.length, 4);
  const first = body.outcomes[0];
  assert.equal(first.probability, 0.25);
  assert.equal(first.verdict, 'DNAT');
  assert.deepEqual(first.destination, { ip: '10.42.0.43', port: 8080 });
  assert.equal(first.masquerade, false);
  assert.equal(first.delivery, 'forward');
  const svc = first.path.find((s: { chain: string }) => s.chain === 'KUBE-SERVICES');
  assert.deepEqual(
    { table: svc.table, chain: svc.chain, index: svc.index, action: svc.action },
    { table: 'nat', chain: 'KUBE-SERVICES', index: 1, action: 'jump' },
  );
  assert.match(svc.rule, /^-A KUBE-SERVICES -d 10\.43\.62\.130\/32/);
  assert.ok(Array.isArray(body.warnings));
  const sum = body.outcomes.reduce((s: number, o: { probability: number }) => s + o.probability, 0);
  assert.ok(Math.abs(sum - 1) < 1e-12);
});

test('entry defaults to OUTPUT when the source is a node address', async () => {
  const res = await app.inject({
    method: 'POST', url: '/v1/trace',
    payload: { rules: clusterip, node: { addresses: ['10.32.11.62'] }, packet: { source: '10.32.11.62', destination: '10.43.62.130', port: 80 } },
  });
  assert.equal(res.statusCode, 200);
  assert.equal(res.json().entry, 'OUTPUT');
  assert.ok(res.json().outcomes.every((o: { masquerade: boolean }) => o.masquerade));
});

test('a syntax error is a 400 problem+json with line, column and text', async () => {
  const rules = '*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -m comment --comment "never closed -j ACCEPT\nCOMMIT\n';
  const res = await app.inject({
    method: 'POST', url: '/v1/trace',
    payload: { rules, node: { addresses: ['10.0.0.1'] }, packet: { source: '10.0.0.2', destination: '10.96.0.1', port: 80 } },
  });
  assert.equal(res.statusCode, 400);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
  const p = res.json();
  assert.equal(p.code, 'DUMP_SYNTAX');
  assert.equal(p.status, 400);
  assert.equal(p.line, 3);
  assert.equal(p.column, 39);
  assert.equal(p.text, '-A KUBE-SERVICES -m comment --comment "never closed -j ACCEPT');
});

test('invalid requests are 400 problem+json naming the field', async () => {
  const res = await app.inject({
    method: 'POST', url: '/v1/trace',
    payload: { rules: 'x', node: { addresses: [] }, packet: { source: '10.0.0.2', destination: '10.96.0.1', port: 80 } },
  });
  assert.equal(res.statusCode, 400);
  assert.equal(res.json().code, 'VALIDATION');
  assert.match(res.json().detail, /addresses/);
  const bad = await app.inject({
    method: 'POST', url: '/v1/trace',
    payload: { rules: clusterip, node: { addresses: ['10.32.11.62'] }, packet: { source: 'nope', destination: '10.96.0.1', port: 80 } },
  });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().code, 'BAD_PACKET');
  const nft = await app.inject({
    method: 'POST', url: '/v1/trace',
    payload: { rules: 'table ip kube-proxy {\n}\n', node: { addresses: ['10.0.0.1'] }, packet: { source: '10.0.0.2', destination: '10.96.0.1', port: 80 } },
  });
  // An nftables ruleset is traced; a table without base chains acts on nothing, and the answer says so.
  assert.equal(nft.statusCode, 200, nft.body);
  assert.deepEqual(nft.json().outcomes.map((o: { verdict: string }) => o.verdict), ['ACCEPT']);
  assert.ok(nft.json().warnings.some((w: { code: string }) => w.code === 'NO_BASE_CHAINS'));
});

test('large bodies are accepted, and bodies over the limit get a clear 413', async () => {
  const filler = `# ${'x'.repeat(998)}\n`.repeat(105_000); // 105 MB of comment lines
  const rules = `${filler}${clusterip}`;
  const res = await app.inject({
    method: 'POST', url: '/v1/trace',
    payload: { rules, node: { addresses: ['10.32.11.62'] }, packet: { source: '10.42.0.7', destination: '10.43.62.130', port: 80 } },
  });
  assert.equal(res.statusCode, 200);
  assert.equal(res.json().outcomes.length, 4);
  const small = await buildApp({ bodyLimit: 1024 });
  const tooBig = await small.inject({
    method: 'POST', url: '/v1/trace',
    payload: { rules: clusterip, node: { addresses: ['10.32.11.62'] }, packet: { source: '10.42.0.7', destination: '10.43.62.130', port: 80 } },
  });
  await small.close();
  assert.equal(tooBig.statusCode, 413);
  assert.equal(tooBig.json().code, 'PAYLOAD_TOO_LARGE');
});

test('the OpenAPI document and Swagger UI are served', async () => {
  const doc = await app.inject({ method: 'GET', url: '/docs/json' });
  assert.equal(doc.statusCode, 200);
  const spec = doc.json();
  assert.ok(spec.paths['/v1/trace'].post);
  assert.equal(spec.paths['/v1/trace'].post.operationId, 'traceDump');
  const ui = await app.inject({ method: 'GET', url: '/docs' });
  assert.ok(ui.statusCode === 200 || ui.statusCode === 302);
});

// kubernetes-mesos-788-1 (issue 14): Docker's published port and its MASQUERADE rule `! -o docker0`.
const mesos = fixture('realworld', 'kubernetes-mesos-788-1.iptables-save.txt');
const mesosRoutes = 'default via 10.0.0.1 dev eth0 proto dhcp metric 100\n172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1\n';

test('POST /v1/trace: an answer that depends on the output interface comes in labelled cases; routes decide it', async () => {
  const ask = (extra: object) => app.inject({
    method: 'POST', url: '/v1/trace',
    payload: { rules: mesos, node: { addresses: ['10.0.0.5'] }, packet: { source: '172.17.0.26', destination: '93.184.216.34', port: 443 }, ...extra },
  });
  const split = (await ask({})).json();
  assert.deepEqual(split.outcomes.map((o: { masquerade: boolean; conditions: string[]; probability: number }) => [o.masquerade, o.conditions, o.probability]), [
    [false, ['if the packet to 93.184.216.34 leaves through docker0'], 1],
    [true, ['if the packet to 93.184.216.34 does not leave through docker0'], 1],
  ]);
  const routed = await ask({ routes: mesosRoutes });
  assert.equal(routed.statusCode, 200);
  assert.deepEqual(routed.json().outcomes.map((o: { masquerade: boolean; outInterface: string; conditions?: string[] }) => [o.masquerade, o.outInterface, o.conditions]), [[true, 'eth0', undefined]]);
  // The node reaching its own published port: no input interface, so `! -i docker0` holds.
  const own = await app.inject({
    method: 'POST', url: '/v1/trace',
    payload: { rules: mesos, routes: mesosRoutes, node: { addresses: ['10.0.0.5'] }, packet: { source: '10.0.0.5', destination: '10.0.0.5', port: 31000 } },
  });
  assert.deepEqual(own.json().outcomes.map((o: { verdict: string; destination: object; outInterface: string }) => [o.verdict, o.destination, o.outInterface]), [
    ['DNAT', { ip: '172.17.0.26', port: 3000 }, 'docker0'],
  ]);
  assert.deepEqual(own.json().warnings.filter((w: { code: string }) => w.code === 'NOT_MODELLED'), []);
});

test('POST /v1/trace: routes that do not read are a located 400', async () => {
  const res = await app.inject({
    method: 'POST', url: '/v1/trace',
    payload: { rules: mesos, routes: 'default via 10.0.0.1 dev eth0\nvia 10.0.0.1 dev eth0\n', node: { addresses: ['10.0.0.5'] }, packet: { source: '10.0.0.9', destination: '10.0.0.5', port: 80 } },
  });
  assert.equal(res.statusCode, 400);
  const p = res.json();
  assert.equal(p.code, 'DUMP_SYNTAX');
  assert.deepEqual([p.line, p.column, p.text], [2, 1, 'via 10.0.0.1 dev eth0']);
  assert.match(p.detail ?? p.title ?? '', /routes: 'via' is not a route destination/);
});
