/** A client that trickles or stalls a request cannot hold a connection for ever. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { buildApp } from '../../src/app.ts';

async function listen(timeouts: { idleMs: number; requestMs: number; maxConnections: number }) {
  const app = await buildApp({ timeouts });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address() as net.AddressInfo;
  return { app, port: address.port };
}

/** Sends `head` and then `drip` one byte at a time every `everyMs`; resolves when the server closes, with what it sent. */
function client(port: number, head: string, drip: string, everyMs: number): Promise<{ ms: number; answer: string }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    let i = 0;
    let timer: NodeJS.Timeout | undefined;
    socket.on('connect', () => {
      socket.write(head);
      if (drip) timer = setInterval(() => { if (i < drip.length) socket.write(drip[i++]); }, everyMs);
    });
    socket.on('data', (d) => { answer += d.toString(); });
    const done = () => {
      clearInterval(timer);
      resolve({ ms: performance.now() - started, answer });
    };
    socket.on('close', done);
    socket.on('error', () => {});
  });
}

test('a stalled body is dropped once idle; a trickled one once the request takes too long', async () => {
  const { app, port } = await listen({ idleMs: 400, requestMs: 1500, maxConnections: 10 });
  try {
    const head = 'POST /v1/trace HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"rules":';
    const stalled = await client(port, head, '', 0);
    assert.ok(stalled.ms < 3000, `stalled connection closed after ${Math.round(stalled.ms)} ms`);
    const trickled = await client(port, head, 'x'.repeat(1000), 100);
    assert.ok(trickled.ms < 5000, `trickled connection closed after ${Math.round(trickled.ms)} ms`);
    assert.ok(trickled.ms >= 1400, 'the trickle kept the connection busy until the request timeout');
    // The server still answers.
    const health = await app.inject({ method: 'GET', url: '/health' });
    assert.equal(health.statusCode, 200);
  } finally {
    await app.close();
  }
});

test('bodies being read share one memory budget: past it a request is 503 with Retry-After before its body is read', async () => {
  const app = await buildApp({ inflightBytes: 1024 * 1024, bodyLimit: 4 * 1024 * 1024, timeouts: { idleMs: 5000, requestMs: 10_000, maxConnections: 10 } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as net.AddressInfo;
  try {
    // A 300 kB JSON body reserves about 900 kB while it is read; it stalls half-way.
    const held = net.connect(port, '127.0.0.1');
    await new Promise((r) => held.on('connect', r));
    held.write('POST /v1/trace HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 300000\r\n\r\n{"rules": "');
    await new Promise((r) => setTimeout(r, 100));
    const refused = await fetch(`http://127.0.0.1:${port}/v1/trace`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ rules: 'x'.repeat(200_000) }),
    });
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '5');
    assert.match(refused.headers.get('content-type') ?? '', /problem\+json/);
    // Small requests still fit, and once the first connection goes, its reservation comes back.
    assert.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
    held.destroy();
    await new Promise((r) => setTimeout(r, 100));
    const after = await fetch(`http://127.0.0.1:${port}/v1/trace`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ rules: 'x'.repeat(200_000) }),
    });
    assert.notEqual(after.status, 503);
  } finally {
    await app.close();
  }
});

test('the idle timeout guards the reading of a request, not the time the server takes to answer it', async () => {
  const app = await buildApp({ timeouts: { idleMs: 300, requestMs: 5000, maxConnections: 10 } });
  app.get('/slow', async () => {
    await new Promise((r) => setTimeout(r, 900));
    return { done: true };
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as net.AddressInfo;
  try {
    const first = await fetch(`http://127.0.0.1:${port}/slow`);
    assert.equal(first.status, 200);
    assert.deepEqual(await first.json(), { done: true });
    // The connection kept alive gets its idle timeout back: a second slow answer works too.
    assert.equal((await fetch(`http://127.0.0.1:${port}/slow`)).status, 200);
  } finally {
    await app.close();
  }
});
