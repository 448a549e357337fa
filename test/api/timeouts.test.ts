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
