/** The audit over REST and GraphQL: rules from cluster A, manifests from B = A with one endpoint removed. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fastJson from 'fast-json-stringify';
import { auditReportSchema, sharedSchemas } from '../../src/api/rest/schemas.ts';
import { createTestApp } from './helpers.ts';
import type { TestApp } from './helpers.ts';
import { generateCluster, renderIptablesSave, renderManifests } from '../support/kube-gen.ts';

let t: TestApp;
before(async () => {
  t = await createTestApp();
});
after(async () => {
  await t?.close();
});

test('an endpoint the manifests no longer list, but the rules still send to, is an error finding', async () => {
  const a = generateCluster({ seed: 7, services: 12, noEndpointShare: 0, nodePortShare: 0, loadBalancerShare: 0, externalIPShare: 0, affinityShare: 0, terminatingShare: 0, localPolicyShare: 0 });
  const b = structuredClone(a);
  const victim = b.services.find((s) => s.endpoints.filter((e) => e.ready).length >= 3)!;
  const gone = victim.endpoints.find((e) => e.ready)!;
  victim.endpoints = victim.endpoints.filter((e) => e !== gone);
  const upload = (manifests: string) => ({
    nodes: [{ name: a.nodeName, addresses: a.nodeIPs, rules: renderIptablesSave(a) }],
    manifests,
  });

  const clean = await t.app.inject({ method: 'POST', url: '/v1/clusters/audit/snapshots', payload: upload(renderManifests(a)) });
  assert.equal(clean.statusCode, 201, clean.body);
  const cleanReport = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${clean.json().snapshot.id}/audit` });
  assert.equal(cleanReport.statusCode, 200, cleanReport.body);
  assert.deepEqual(cleanReport.json().findings.filter((f: { severity: string }) => f.severity !== 'info'), []);

  const drifted = await t.app.inject({ method: 'POST', url: '/v1/clusters/audit/snapshots', payload: upload(renderManifests(b)) });
  const id = drifted.json().snapshot.id;
  const res = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${id}/audit` });
  // The report is written with JSON.stringify (schema-kit's jsonBytes): it must be what the schema would write.
  const serialize = fastJson(auditReportSchema, { schema: Object.fromEntries(sharedSchemas.map((s) => [String(Reflect.get(s, '$id')), s])) });
  for (const report of [cleanReport, res]) {
    assert.match(String(report.headers['content-type']), /^application\/json; charset=utf-8$/);
    assert.deepEqual(report.json(), JSON.parse(serialize(report.json())));
  }
  const problems = res.json().findings.filter((f: { severity: string }) => f.severity !== 'info');
  assert.ok(problems.length >= 1, JSON.stringify(res.json().findings));
  for (const f of problems) {
    assert.equal(f.service, `${victim.namespace}/${victim.name}`);
    assert.match(f.message, new RegExp(gone.ip.replace(/\./g, '\\.')));
    assert.ok(f.rules.length > 0 && f.rules.every((r: { table: string; chain: string; index: number; rule: string }) => r.table && r.chain && r.index > 0 && r.rule));
  }
  assert.ok(problems.some((f: { severity: string; node: string }) => f.severity === 'error' && f.node === a.nodeName));

  const gql = await t.app.inject({
    method: 'POST', url: '/graphql',
    payload: { query: `{ snapshot(id: "${id}") { audit { findings { check severity node service port message rules { table chain index rule } } } } }` },
  });
  const findings = gql.json().data.snapshot.audit.findings;
  assert.deepEqual(findings.map((f: { check: string }) => f.check), res.json().findings.map((f: { check: string }) => f.check));

  const none = await t.app.inject({ method: 'POST', url: '/v1/clusters/audit-none/snapshots', payload: { nodes: [{ name: 'n', addresses: [], rules: renderIptablesSave(a) }] } });
  const noManifests = await t.app.inject({ method: 'GET', url: `/v1/snapshots/${none.json().snapshot.id}/audit` });
  assert.equal(noManifests.statusCode, 400);
  assert.match(noManifests.json().detail, /no manifests/);
});
