/**
 * What a snapshot version costs on disk (README, "Retention"): a generated cluster of SERVICES
 * Services on NODES nodes uploaded as v1, then v2..v(1+EDITS) each with five Services changed
 * (an endpoint gone), on a throwaway database. Prints the bytes the tables grow by per version.
 *   npx tsx scripts/version-cost.ts [SERVICES=1000] [NODES=10] [EDITS=5]
 */
import { buildApp } from '../src/app.ts';
import { createSnapshotService } from '../src/services/snapshot-service.ts';
import { createTraceService } from '../src/services/trace-service.ts';
import { openDatabase } from '../src/store/database.ts';
import { createSnapshotStore } from '../src/store/snapshot-store.ts';
import { createTestDatabase } from '../test/store/helpers.ts';
import { generateCluster, renderIptablesSave, renderManifests } from '../test/support/kube-gen.ts';

const [services = 1000, nodeCount = 10, edits = 5] = process.argv.slice(2).map(Number);
const testDb = await createTestDatabase();
const db = await openDatabase({ databaseUrl: testDb.url, dataDir: '' });
const service = createSnapshotService({ store: createSnapshotStore(db), traceService: createTraceService() });
const app = await buildApp({ snapshotService: service });

/** Bytes of every table with its indexes and TOAST, after a VACUUM so freed space is not counted. */
async function tables(): Promise<{ total: number; chunkData: number }> {
  await db.pool.query('VACUUM');
  const { rows: [r] } = await db.pool.query(`SELECT
      (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r')::bigint AS total,
      (SELECT COALESCE(sum(octet_length(data)), 0) FROM chunk)::bigint AS chunk_data`);
  return { total: Number(r.total), chunkData: Number(r.chunk_data) };
}

let cluster = generateCluster({ seed: 11, services });
const nodes = cluster.nodes.slice(0, nodeCount);
async function upload(): Promise<number> {
  const u = await service.beginUpload('measure');
  let raw = 0;
  for (const [i, n] of nodes.entries()) {
    const dump = renderIptablesSave({ ...cluster, nodeName: n, nodeIPs: [`10.1.${i >> 8}.${(i & 255) + 1}`] });
    raw += dump.length;
    await service.putNode(u.id, { name: n, addresses: [`10.1.${i >> 8}.${(i & 255) + 1}`], rules: Buffer.from(dump) });
  }
  const manifests = renderManifests(cluster);
  await service.putManifests(u.id, Buffer.from(manifests));
  await service.commitUpload(u.id, {});
  return raw + manifests.length;
}

const empty = await tables();
const raw = await upload();
const v1 = await tables();
console.log(`${services} Services, ${nodes.length} nodes: ${(raw / 1e6).toFixed(1)} MB of dumps and manifests per version`);
console.log(`v1: tables +${((v1.total - empty.total) / 1e6).toFixed(2)} MB (chunk data +${((v1.chunkData - empty.chunkData) / 1e6).toFixed(2)} MB)`);
let previous = v1;
for (let e = 0; e < edits; e++) {
  cluster = structuredClone(cluster);
  const changed = cluster.services.filter((s) => s.endpoints.length > 2 && s.clusterIP !== 'None').slice(e * 5, e * 5 + 5);
  for (const s of changed) s.endpoints.pop();
  await upload();
  const now = await tables();
  console.log(`v${e + 2} (5 Services changed): tables +${((now.total - previous.total) / 1e3).toFixed(0)} kB (chunk data +${((now.chunkData - previous.chunkData) / 1e3).toFixed(0)} kB)`);
  previous = now;
}
await app.close();
await db.close();
await testDb.drop();
