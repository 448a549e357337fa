/**
 * Snapshot persistence. Reads go through Prisma; an upload is one pg transaction that takes a
 * row lock on its cluster (so concurrent uploads get contiguous versions), deduplicates by
 * content hash, and bulk-loads the parsed rules with COPY. Returns plain domain objects, never rows.
 */
import type { Pool, PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { gunzip, gzip } from 'node:zlib';
import { promisify } from 'node:util';
import type { Database } from './database.ts';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

export interface StoredNode {
  readonly name: string;
  readonly addresses: readonly string[];
  readonly format: string;
  readonly sha256: string;
  readonly summary: unknown;
}

/** One chain as stored: its rules' texts in order and the line of each in the dump. */
export interface ChainRow {
  readonly table: string;
  readonly chain: string;
  readonly policy: string | null;
  readonly declaredLine: number;
  /** The dump lines of the chain's rules, in order. */
  readonly lines: readonly number[];
  /** The rules' texts joined by newlines (a rule's text has no line break). */
  readonly rules: string;
}

export interface NodeInsert extends StoredNode {
  /** The dump as stored (`pack(raw)`), started early so compression overlaps with parsing. */
  readonly packed: Promise<Buffer>;
  readonly chains: () => Iterable<ChainRow>;
}

export interface SnapshotInsert {
  readonly labels: Readonly<Record<string, string>>;
  readonly contentHash: string;
  readonly manifestsRaw: string | null;
  readonly manifestsSha256: string | null;
  readonly manifestsParsed: unknown;
  readonly nodes: readonly NodeInsert[];
}

export interface StoredSnapshot {
  readonly id: string;
  readonly cluster: string;
  readonly version: number;
  readonly labels: Record<string, string>;
  readonly createdAt: Date;
  readonly contentHash: string;
  readonly manifestsSha256: string | null;
  readonly manifestsBytes: number | null;
}

export interface StoredCluster {
  readonly name: string;
  readonly createdAt: Date;
  readonly snapshots: number;
  readonly latest: { id: string; version: number; createdAt: Date } | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(id: string): boolean {
  return UUID.test(id);
}

/** COPY's text format: backslash, tab, newline and carriage return are escaped. */
function copyField(s: string): string {
  // Rule texts joined by newlines are most of the data: escape those without a callback each.
  if (!/[\\\t\r]/.test(s)) return s.includes('\n') ? s.replaceAll('\n', '\\n') : s;
  return s.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

async function copyChains(client: PoolClient, nodeId: string, chains: Iterable<ChainRow>): Promise<void> {
  const stream = client.query(copyFrom(
    'COPY snapshot_chain (node_id, table_name, chain, policy, declared_line, rule_count, lines, rules) FROM STDIN',
  ));
  async function* rows() {
    let batch: string[] = [];
    let size = 0;
    for (const c of chains) {
      const row = `${nodeId}\t${c.table}\t${copyField(c.chain)}\t${c.policy ?? '\\N'}\t${c.declaredLine}\t${c.lines.length}\t{${c.lines.join(',')}}\t${copyField(c.rules)}\n`;
      batch.push(row);
      size += row.length;
      if (size > 1 << 20) {
        yield batch.join('');
        batch = [];
        size = 0;
      }
    }
    if (batch.length) yield batch.join('');
  }
  await pipeline(Readable.from(rows()), stream);
}

export interface SnapshotStore {
  /** The dump as it is stored: gzip-compressed (read back by rawRules). */
  pack(raw: Buffer): Promise<Buffer>;
  /** Inserts a snapshot, or returns the cluster's snapshot with the same content hash. */
  insert(cluster: string, data: SnapshotInsert): Promise<{ id: string; created: boolean }>;
  clusters(): Promise<StoredCluster[]>;
  clusterExists(name: string): Promise<boolean>;
  /** Newest first; `beforeVersion` excludes that version and newer. */
  snapshots(cluster: string, limit: number, beforeVersion: number | null): Promise<StoredSnapshot[]>;
  snapshot(id: string): Promise<StoredSnapshot | null>;
  nodesOf(snapshotIds: readonly string[]): Promise<Map<string, StoredNode[]>>;
  rawRules(snapshotId: string, node: string): Promise<Buffer | null>;
  /** The manifests as uploaded, or null when the snapshot has none. */
  manifests(snapshotId: string): Promise<string | null>;
  delete(id: string): Promise<boolean>;
  ping(): Promise<void>;
}

export function createSnapshotStore(db: Pick<Database, 'prisma' | 'pool'>): SnapshotStore {
  const { prisma } = db;
  const pool: Pool = db.pool;
  const toSnapshot = (s: {
    id: string; version: number; labels: unknown; createdAt: Date; contentHash: string;
    manifestsSha256: string | null; manifestsRaw?: string | null; cluster: { name: string }; manifestsBytes?: number | null;
  }): StoredSnapshot => ({
    id: s.id,
    cluster: s.cluster.name,
    version: s.version,
    labels: (s.labels ?? {}) as Record<string, string>,
    createdAt: s.createdAt,
    contentHash: s.contentHash,
    manifestsSha256: s.manifestsSha256,
    manifestsBytes: s.manifestsBytes ?? null,
  });

  return {
    pack(raw) {
      // Dumps compress about 5:1, and a 40 MB bytea is slow to send and read back as it is.
      return gzipAsync(raw, { level: 1 });
    },

    async insert(cluster, data) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query('INSERT INTO cluster (name) VALUES ($1) ON CONFLICT (name) DO NOTHING', [cluster]);
        // The cluster row lock serialises uploads to one cluster: versions stay contiguous.
        const { rows: [c] } = await client.query<{ id: string }>('SELECT id FROM cluster WHERE name = $1 FOR UPDATE', [cluster]);
        const existing = await client.query<{ id: string }>(
          'SELECT id FROM snapshot WHERE cluster_id = $1 AND content_hash = $2', [c.id, data.contentHash],
        );
        if (existing.rows.length > 0) {
          await client.query('COMMIT');
          return { id: existing.rows[0].id, created: false };
        }
        const { rows: [snap] } = await client.query<{ id: string }>(
          `INSERT INTO snapshot (cluster_id, version, labels, content_hash, manifests_raw, manifests_sha256, manifests_parsed)
           SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, $6 FROM snapshot WHERE cluster_id = $1
           RETURNING id`,
          [c.id, JSON.stringify(data.labels), data.contentHash, data.manifestsRaw, data.manifestsSha256,
            data.manifestsParsed === null || data.manifestsParsed === undefined ? null : JSON.stringify(data.manifestsParsed)],
        );
        for (const n of data.nodes) {
          const packed = await n.packed;
          const { rows: [node] } = await client.query<{ id: string }>(
            `INSERT INTO snapshot_node (snapshot_id, name, addresses, format, raw_rules, raw_encoding, sha256, summary)
             VALUES ($1, $2, $3, $4, $5, 'gzip', $6, $7) RETURNING id`,
            [snap.id, n.name, n.addresses, n.format, packed, n.sha256, JSON.stringify(n.summary)],
          );
          await copyChains(client, node.id, n.chains());
        }
        await client.query('COMMIT');
        return { id: snap.id, created: true };
      } catch (e) {
        await client.query('ROLLBACK').catch(() => {});
        throw e;
      } finally {
        client.release();
      }
    },

    async clusters() {
      const rows = await prisma.cluster.findMany({
        orderBy: { name: 'asc' },
        include: {
          _count: { select: { snapshots: true } },
          snapshots: { orderBy: { version: 'desc' }, take: 1, select: { id: true, version: true, createdAt: true } },
        },
      });
      return rows.map((r) => ({
        name: r.name,
        createdAt: r.createdAt,
        snapshots: r._count.snapshots,
        latest: r.snapshots[0] ?? null,
      }));
    },

    async clusterExists(name) {
      return (await prisma.cluster.count({ where: { name } })) > 0;
    },

    async snapshots(cluster, limit, beforeVersion) {
      const rows = await prisma.snapshot.findMany({
        where: { cluster: { name: cluster }, ...(beforeVersion !== null ? { version: { lt: beforeVersion } } : {}) },
        orderBy: { version: 'desc' },
        take: limit,
        select: {
          id: true, version: true, labels: true, createdAt: true, contentHash: true, manifestsSha256: true,
          cluster: { select: { name: true } },
        },
      });
      const sizes = await manifestSizes(rows.filter((r) => r.manifestsSha256).map((r) => r.id));
      return rows.map((r) => toSnapshot({ ...r, manifestsBytes: sizes.get(r.id) ?? null }));
    },

    async snapshot(id) {
      if (!isUuid(id)) return null;
      const r = await prisma.snapshot.findUnique({
        where: { id },
        select: {
          id: true, version: true, labels: true, createdAt: true, contentHash: true, manifestsSha256: true,
          cluster: { select: { name: true } },
        },
      });
      if (!r) return null;
      const sizes = r.manifestsSha256 ? await manifestSizes([r.id]) : new Map<string, number>();
      return toSnapshot({ ...r, manifestsBytes: sizes.get(r.id) ?? null });
    },

    async nodesOf(snapshotIds) {
      const ids = snapshotIds.filter(isUuid);
      const out = new Map<string, StoredNode[]>(snapshotIds.map((id) => [id, []]));
      if (ids.length === 0) return out;
      const rows = await prisma.snapshotNode.findMany({
        where: { snapshotId: { in: ids } },
        orderBy: { name: 'asc' },
        select: { snapshotId: true, name: true, addresses: true, format: true, sha256: true, summary: true },
      });
      for (const r of rows) out.get(r.snapshotId)!.push({ name: r.name, addresses: r.addresses, format: r.format, sha256: r.sha256, summary: r.summary });
      return out;
    },

    async rawRules(snapshotId, node) {
      if (!isUuid(snapshotId)) return null;
      // As base64: node-postgres decodes a bytea from hex text in JavaScript, which is slow.
      const { rows } = await pool.query<{ raw: string; encoding: string }>(
        "SELECT encode(raw_rules, 'base64') AS raw, raw_encoding AS encoding FROM snapshot_node WHERE snapshot_id = $1 AND name = $2",
        [snapshotId, node],
      );
      if (rows.length === 0) return null;
      const raw = Buffer.from(rows[0].raw, 'base64');
      const encoding = rows[0].encoding;
      return encoding === 'gzip' ? gunzipAsync(raw) : Buffer.from(raw);
    },

    async manifests(snapshotId) {
      if (!isUuid(snapshotId)) return null;
      const r = await prisma.snapshot.findUnique({ where: { id: snapshotId }, select: { manifestsRaw: true } });
      return r?.manifestsRaw ?? null;
    },

    async delete(id) {
      if (!isUuid(id)) return false;
      const { count } = await prisma.snapshot.deleteMany({ where: { id } });
      return count > 0;
    },

    async ping() {
      await pool.query('SELECT 1');
    },
  };

  async function manifestSizes(ids: string[]): Promise<Map<string, number>> {
    if (ids.length === 0) return new Map();
    const { rows } = await pool.query<{ id: string; bytes: number }>(
      'SELECT id, octet_length(manifests_raw) AS bytes FROM snapshot WHERE id = ANY($1::uuid[])', [ids],
    );
    return new Map(rows.map((r) => [r.id, Number(r.bytes)]));
  }
}
