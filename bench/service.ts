/**
 * Service benchmarks: ingest of a generated 10,000-Service node (parse + store, and the same over
 * HTTP), traces through the stored snapshot over HTTP on loopback (median, p99), the first trace
 * after a restart, and a diff of two stored snapshots.
 */
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../src/app.ts';
import { openDatabase } from '../src/store/database.ts';
import { createSnapshotStore } from '../src/store/snapshot-store.ts';
import { inPlaceAnalysis } from '../src/services/analysis-pool.ts';
import { createSnapshotService } from '../src/services/snapshot-service.ts';
import { createTraceService } from '../src/services/trace-service.ts';
import { createTestDatabase } from '../test/store/helpers.ts';
import { editHundred, frontends, ms, percentile } from './common.ts';
import { generateCluster, renderIptablesSave } from '../test/support/kube-gen.ts';
import type { EngineFigures } from './run.ts';

export async function benchService(engine: Pick<EngineFigures, 'dump' | 'cluster'>): Promise<void> {
  const testDb = await createTestDatabase();
  const db = await openDatabase({ databaseUrl: testDb.url, dataDir: '' });
  try {
    const traceService = createTraceService();
    const service = createSnapshotService({ store: createSnapshotStore(db), traceService, analysis: inPlaceAnalysis(db.pool) });
    const node = { name: 'node-0', addresses: engine.cluster.nodeIPs, rules: engine.dump };
    console.log(`\n== service: PostgreSQL ${testDb.url.replace(/\/\/[^@]*@/, '//')}`);

    const t0 = performance.now();
    const created = await service.create('bench', { nodes: [node], labels: { run: 'service' } });
    const ingest = performance.now() - t0;
    const rules = created.snapshot.nodes[0].rules;
    console.log(`ingest (parse + store ${rules} rules and the raw dump), service call: ${ms(ingest)} (target: within iptables-restore --test's time)`);

    const app = await buildApp({ traceService, snapshotService: service, ping: () => service.ping(), bodyLimit: 512 * 1024 * 1024 });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const body = JSON.stringify({ nodes: [{ ...node, rules: `${engine.dump}# over http\n` }], labels: { run: 'http' } });
      const t1 = performance.now();
      const res = await fetch(`${base}/v1/clusters/bench/snapshots`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const httpIngest = performance.now() - t1;
      const uploaded = (await res.json()) as { snapshot: { id: string } };
      console.log(`ingest over HTTP (POST of ${(body.length / 1e6).toFixed(0)} MB JSON, status ${res.status}): ${ms(httpIngest)}`);

      const id = uploaded.snapshot.id;
      const packets = frontends(engine.cluster);
      const url = (i: number) => {
        const p = packets[(i * 7919) % packets.length];
        return `${base}/v1/snapshots/${id}/trace?destination=${p.destination}&port=${p.port}&protocol=${p.protocol}&source=${p.source}&node=node-0`;
      };
      const direct: number[] = [];
      for (let i = 0; i < 2000; i++) {
        const p = packets[(i * 7919) % packets.length];
        const t = performance.now();
        await service.trace(id, { ...p, node: 'node-0' });
        direct.push(performance.now() - t);
      }
      direct.sort((a, b) => a - b);
      console.log(`trace through the stored snapshot, service call (no HTTP): median ${ms(percentile(direct, 0.5))}, p99 ${ms(percentile(direct, 0.99))}`);
      // The client runs in its own process: in this one it would share the server's event loop.
      const urlFile = join(tmpdir(), `svcpath-bench-urls-${process.pid}.json`);
      writeFileSync(urlFile, JSON.stringify(Array.from({ length: 2200 }, (_, i) => url(i))));
      const out = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./http-client.ts', import.meta.url)), urlFile, '200'],
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- err is an ExecFileException (an Error); @types/node builds it with Omit<>, which hides that from the rule
          { maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
      });
      rmSync(urlFile, { force: true });
      const samples = (JSON.parse(out) as number[]).sort((a, b) => a - b);
      console.log(`trace through the stored snapshot over HTTP, ${samples.length} sequential requests from another process: median ${ms(percentile(samples, 0.5))}, p99 ${ms(percentile(samples, 0.99))}, max ${ms(samples[samples.length - 1])} (target p99 < 10 ms)`);

      // After a restart the first trace of a node reads its dump back from PostgreSQL and parses it.
      const fresh = createSnapshotService({ store: createSnapshotStore(db), traceService, analysis: inPlaceAnalysis(db.pool) });
      const t2 = performance.now();
      await fresh.trace(id, { ...packets[0], node: 'node-0' });
      console.log(`first trace of a stored node after a restart (load + parse + trace): ${ms(performance.now() - t2)}`);

      // A diff of two stored snapshots, B the next version with a hundred Services edited: first
      // from a service that has loaded neither (as after a restart), then again (the result is kept).
      const dumpB = renderIptablesSave(editHundred(engine.cluster));
      const next = await service.create('bench', { nodes: [{ ...node, rules: dumpB }], labels: { run: 'edited' } });
      const restarted = createSnapshotService({ store: createSnapshotStore(db), traceService, analysis: inPlaceAnalysis(db.pool) });
      const t3 = performance.now();
      const diff = await restarted.diff({ from: created.snapshot.id, to: next.snapshot.id, limit: 100 });
      const firstDiff = performance.now() - t3;
      const t4 = performance.now();
      await restarted.diff({ from: created.snapshot.id, to: next.snapshot.id, limit: 100 });
      console.log(
        `diff of two stored ${rules}-rule snapshots (load + parse both + diff), service call: ${ms(firstDiff)}; asked again: ${ms(performance.now() - t4)}; `
          + `${diff.summary.frontends.changed} frontends changed`,
      );
    } finally {
      await app.close();
    }
  } finally {
    await db.close();
    await testDb.drop();
  }
}

// Run in a process of its own (see run.ts), so the engine benchmark's heap does not weigh on it.
if (import.meta.url === `file://${process.argv[1]}`) {
  const services = Number(process.argv[2] ?? 10_000);
  const cluster = generateCluster({ seed: 1, services });
  await benchService({ cluster, dump: readFileSync(process.argv[3], 'utf8') });
}
