/** Requests built to hurt the server get a short 400 and leave it answering (issue 12). */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { fixture } from '../helpers.ts';

let app: FastifyInstance;
before(async () => {
  app = await buildApp({ bodyLimit: 120 * 1024 * 1024 });
});
after(async () => {
  await app.close();
});

const rules = fixture('k3s-blog', 'clusterip.iptables-S.txt');
const packet = { source: '10.42.0.7', destination: '10.43.62.130', port: 80 };

function traceWith(extra: Record<string, unknown>) {
  return app.inject({ method: 'POST', url: '/v1/trace', payload: { rules, node: { addresses: ['10.32.11.62'] }, packet, ...extra } });
}

async function stillAnswers(): Promise<void> {
  const res = await traceWith({});
  assert.equal(res.statusCode, 200);
}

test('manifests of YAML nested 12,000 levels (27 KB) get a 400, and the server lives on', async () => {
  const manifests = `${'- '.repeat(12_000)}x\n`;
  const res = await traceWith({ manifests });
  assert.equal(res.statusCode, 400);
  assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
  const p = res.json();
  assert.equal(p.code, 'VALIDATION');
  assert.match(p.detail, /^manifests: nested more than 100 levels deep/);
  assert.equal(p.line, 1);
  assert.ok(p.text.length <= 200);
  assert.ok(res.body.length < 2000, `${res.body.length} bytes`);
  await stillAnswers();
});

test('YAML nested 5,000 to 8,000 levels and JSON nested 100,000 levels are 400s, not stack overflows or 500s', async () => {
  for (const manifests of [
    `${'- '.repeat(5_000)}x\n`,
    `kind: List\nitems:\n${Array.from({ length: 150 }, (_, i) => `${' '.repeat(i)}- `).join('\n')}x\n`,
    `a: ${'['.repeat(8_000)}${']'.repeat(8_000)}\n`,
    `{"kind": "List", "items": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`,
  ]) {
    const res = await traceWith({ manifests });
    assert.equal(res.statusCode, 400, manifests.slice(0, 40));
    assert.equal(res.json().code, 'VALIDATION');
  }
  await stillAnswers();
});

test('a 10 MB line that does not parse comes back as 200 characters, not 20 MB', async () => {
  // Not the last rule: a last rule cut short in its last word is left out, not refused.
  const bad = `${rules}-A KUBE-SERVICES -m comment --comment "${'x'.repeat(10 * 1024 * 1024)}\n-A KUBE-SERVICES -j RETURN\n`;
  const res = await app.inject({ method: 'POST', url: '/v1/trace', payload: { rules: bad, node: { addresses: ['10.32.11.62'] }, packet } });
  assert.equal(res.statusCode, 400);
  const p = res.json();
  assert.equal(p.code, 'DUMP_SYNTAX');
  assert.ok(p.text.length <= 200);
  assert.ok(res.body.length < 3000, `${res.body.length} bytes`);
});

test('manifests with a 10 MB line that does not parse: the same', async () => {
  const res = await traceWith({ manifests: `kind: Service\nmetadata: {name: "${'x'.repeat(10 * 1024 * 1024)}\n` });
  assert.equal(res.statusCode, 400);
  assert.equal(res.json().code, 'MANIFEST_SYNTAX');
  assert.ok(res.body.length < 3000, `${res.body.length} bytes`);
  const field = await traceWith({ manifests: JSON.stringify({ kind: 'Service', metadata: { name: 'x' }, spec: { clusterIP: 'y'.repeat(10 * 1024 * 1024) } }) });
  assert.equal(field.statusCode, 400);
  assert.equal(field.json().code, 'MANIFEST_SYNTAX');
  assert.ok(field.body.length < 3000, `${field.body.length} bytes`);
});
