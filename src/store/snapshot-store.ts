/**
 * Snapshot persistence. Node dumps and manifests are blobs stored once by content (blob-store.ts);
 * a snapshot is a list of nodes referring to blobs. Every upload, in one request or in steps, is
 * staged as an `upload` (nodes written as they arrive, parse summaries kept per blob) and becomes a
 * snapshot in one transaction at commit, which takes a row lock on its cluster so that versions
 * stay contiguous. Returns plain domain objects, never rows.
 */
import type { Pool, PoolClient } from 'pg';
import type { Database } from './database.ts';
import { inTransaction, lockForBlobWrites, putBlob, readBlob, sweep } from './blob-store.ts';
import type { ChunkCache } from './blob-store.ts';
import type { ChunkPlan } from './chunking.ts';

export interface StoredNode {
  readonly name: string;
  readonly addresses: readonly string[];
  readonly format: string;
  readonly sha256: string;
  readonly summary: unknown;
  /** The node's routes (`ip route` output) when they were uploaded: their sha256 and size. */
  readonly routes: { readonly sha256: string; readonly bytes: number } | null;
  /** A dual-stack node's IPv6 dump (ip6tables-save output) when it was uploaded. */
  readonly ipv6: StoredDump | null;
}

/** A dump beside the node's first one: its format, sha256 and parse summary. */
export interface StoredDump {
  readonly format: string;
  readonly sha256: string;
  readonly summary: unknown;
}

/** A dump staged as the node's IPv6 dump. */
export interface StageDump {
  readonly requestedFormat: string;
  readonly table: string;
  readonly content: Buffer;
  readonly plan: ChunkPlan;
  readonly parsed: ParseRecord;
}

/** What parsing a dump gave: kept per blob, so the same dump is not parsed again. */
export interface ParseRecord {
  readonly format: string;
  readonly summary: unknown;
}

export interface StageNode {
  readonly name: string;
  readonly addresses: readonly string[];
  /** The format asked for ('auto' included) and the table of an iptables -S dump ('' for none). */
  readonly requestedFormat: string;
  readonly table: string;
  readonly content: Buffer;
  /** The content's sha256 and chunks (planChunks). */
  readonly plan: ChunkPlan;
  readonly parsed: ParseRecord;
  /** The node's routes, already checked; when absent, routes put before for this node stay. */
  readonly routes?: { readonly content: Buffer; readonly plan: ChunkPlan };
}

/** A staged node as the content hash sees it. */
export interface IdentityNode {
  readonly name: string;
  readonly addresses: readonly string[];
  readonly format: string;
  readonly table: string;
  readonly sha256: string;
  /** sha256 of the node's routes, null when none were uploaded. */
  readonly routesSha256: string | null;
  /** sha256 of the node's IPv6 dump, null when none was uploaded. */
  readonly rules6Sha256: string | null;
}

export interface StoredUpload {
  readonly id: string;
  readonly cluster: string;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly nodes: readonly StoredNode[];
  readonly manifests: { sha256: string; bytes: number } | null;
}

export interface CommitOutcome {
  readonly id: string;
  readonly created: boolean;
  /** When the content equalled the latest snapshot and labels were sent: they were recorded as a re-upload. */
  readonly reuploadRecorded: boolean;
  /** The upload had been committed before: this is that commit's outcome. */
  readonly repeated?: boolean;
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

export interface SnapshotStore {
  /** A new upload of `cluster`, expiring after `ttlMs` unless committed. */
  createUpload(cluster: string, ttlMs: number): Promise<{ id: string; expiresAt: Date }>;
  /** The upload, or null when there is none (never created, committed, deleted or expired). */
  upload(id: string): Promise<StoredUpload | null>;
  /** What an earlier parse of this dump gave, when the dump is stored. */
  knownParse(sha: Buffer, requestedFormat: string, table: string): Promise<ParseRecord | null>;
  /**
   * Stores the node's dump and stages it (replacing a node of the same name); null when the upload
   * is gone. Says which routes and IPv6 dump the staged node has (the ones sent, or ones put before).
   */
  stageNode(uploadId: string, node: StageNode): Promise<{ routes: StoredNode['routes']; ipv6: StoredNode['ipv6'] } | null>;
  /** Sets a staged node's addresses; false when there is no such upload or node. */
  setAddresses(uploadId: string, name: string, addresses: readonly string[]): Promise<boolean>;
  /** Stores a staged node's IPv6 dump (replacing one put before): 'upload' or 'node' when that is missing. */
  stageRules6(uploadId: string, name: string, dump: StageDump): Promise<true | 'upload' | 'node'>;
  /** Stores a staged node's routes: 'upload' or 'node' when that is missing. */
  stageRoutes(uploadId: string, name: string, content: Buffer, plan: ChunkPlan): Promise<true | 'upload' | 'node'>;
  stageManifests(uploadId: string, content: Buffer, plan: ChunkPlan): Promise<boolean>;
  /**
   * Makes the upload a snapshot, or returns the cluster's latest one when `hash` of the staged
   * content equals its content hash. Null when the upload is gone.
   */
  commitUpload(
    uploadId: string,
    labels: Readonly<Record<string, string>>,
    hash: (nodes: readonly IdentityNode[], manifestsSha256: string | null) => string,
  ): Promise<CommitOutcome | null>;
  deleteUpload(id: string): Promise<boolean>;
  /** Removes expired uploads and whatever nothing refers to any more. */
  sweep(): Promise<{ uploads: number; blobs: number; chunks: number }>;
  clusters(): Promise<StoredCluster[]>;
  clusterExists(name: string): Promise<boolean>;
  /** Newest first; `beforeVersion` excludes that version and newer. */
  snapshots(cluster: string, limit: number, beforeVersion: number | null): Promise<StoredSnapshot[]>;
  snapshot(id: string): Promise<StoredSnapshot | null>;
  /** A cluster's snapshot by version, the latest, or the latest stored at or before `at`. */
  findSnapshot(cluster: string, which: { version: number } | { at: Date } | 'latest'): Promise<StoredSnapshot | null>;
  nodesOf(snapshotIds: readonly string[]): Promise<Map<string, StoredNode[]>>;
  rawRules(snapshotId: string, node: string): Promise<Buffer | null>;
  /** The node's IPv6 dump as uploaded, or null when the node has none (or is not there). */
  rawRules6(snapshotId: string, node: string): Promise<Buffer | null>;
  /** The node's routes as uploaded, or null when the node has none (or is not there). */
  rawRoutes(snapshotId: string, node: string): Promise<Buffer | null>;
  /** The manifests as uploaded, or null when the snapshot has none. */
  manifests(snapshotId: string): Promise<string | null>;
  /** Labels of re-uploads of the snapshot's content, newest first. */
  reuploads(snapshotId: string, limit: number): Promise<{ labels: Record<string, string>; createdAt: Date }[]>;
  delete(id: string): Promise<boolean>;
  ping(): Promise<void>;
}

/** Re-uploads kept per snapshot: enough to see which CI runs saw the same state. */
const REUPLOADS_KEPT = 100;

/** `chunks`: inflated chunks kept between reads of dumps (the nodes of a cluster share most of theirs). */
export function createSnapshotStore(db: Pick<Database, 'prisma' | 'pool'>, options: { readonly chunks?: ChunkCache } = {}): SnapshotStore {
  const { chunks } = options;
  const { prisma } = db;
  const pool: Pool = db.pool;
  const toSnapshot = (s: {
    id: string; version: number; labels: unknown; createdAt: Date; contentHash: string;
    manifestsSha256: string | null; cluster: { name: string }; manifestsBlob?: { bytes: bigint } | null;
  }): StoredSnapshot => ({
    id: s.id,
    cluster: s.cluster.name,
    version: s.version,
    labels: (s.labels ?? {}) as Record<string, string>,
    createdAt: s.createdAt,
    contentHash: s.contentHash,
    manifestsSha256: s.manifestsSha256,
    manifestsBytes: s.manifestsBlob ? Number(s.manifestsBlob.bytes) : null,
  });
  const snapshotSelect = {
    id: true, version: true, labels: true, createdAt: true, contentHash: true, manifestsSha256: true,
    cluster: { select: { name: true } }, manifestsBlob: { select: { bytes: true } },
  } as const;

  /** Runs `work` in a transaction that may write blobs or refer to them. */
  async function blobTransaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(pool, async (client) => {
      await lockForBlobWrites(client);
      return work(client);
    });
  }

  /** Locks the upload for the rest of the transaction; false when it is gone or expired. */
  async function lockUpload(client: PoolClient, id: string, mode: 'SHARE' | 'UPDATE'): Promise<{ cluster: string; manifestsBlobId: string | null } | null> {
    if (!isUuid(id)) return null;
    const { rows } = await client.query<{ cluster: string; manifests_blob_id: string | null }>(
      `SELECT cluster, manifests_blob_id FROM upload WHERE id = $1 AND expires_at > now() AND committed_snapshot_id IS NULL FOR ${mode}`, [id],
    );
    return rows[0] ? { cluster: rows[0].cluster, manifestsBlobId: rows[0].manifests_blob_id } : null;
  }

  const stagedNodes = `
    SELECT u.name, u.addresses, u.table_name, u.blob_id, encode(b.sha256, 'hex') AS sha256, p.format, p.summary,
      u.routes_blob_id, encode(r.sha256, 'hex') AS routes_sha256, r.bytes AS routes_bytes,
      u.rules6_blob_id, encode(b6.sha256, 'hex') AS rules6_sha256, p6.format AS format6, p6.summary AS summary6
    FROM upload_node u JOIN blob b ON b.id = u.blob_id
    JOIN blob_parse p ON p.blob_id = u.blob_id AND p.requested_format = u.requested_format AND p.table_name = u.table_name
    LEFT JOIN blob r ON r.id = u.routes_blob_id
    LEFT JOIN blob b6 ON b6.id = u.rules6_blob_id
    LEFT JOIN blob_parse p6 ON p6.blob_id = u.rules6_blob_id AND p6.requested_format = u.requested_format6 AND p6.table_name = u.table_name6
    WHERE u.upload_id = $1 ORDER BY u.name`;
  interface StagedRow {
    name: string; addresses: string[]; table_name: string; blob_id: string; sha256: string; format: string; summary: unknown;
    routes_blob_id: string | null; routes_sha256: string | null; routes_bytes: string | null;
    rules6_blob_id: string | null; rules6_sha256: string | null; format6: string | null; summary6: unknown;
  }
  const stagedRoutes = (r: StagedRow) => (r.routes_sha256 ? { sha256: r.routes_sha256, bytes: Number(r.routes_bytes) } : null);
  const ipv6Dump = (r: { rules6_sha256: string | null; format6: string | null; summary6: unknown }): StoredDump | null =>
    (r.rules6_sha256 ? { format: r.format6 ?? '', sha256: r.rules6_sha256, summary: r.summary6 } : null);
  /**
   * Records what parsing a stored blob gave (once per blob, format and table). A summary kept
   * before summaries recorded the dump's family is replaced by the new one, which does.
   */
  const recordParse = (client: PoolClient, blobId: string, requestedFormat: string, table: string, parsed: ParseRecord) => client.query(
    `INSERT INTO blob_parse (blob_id, requested_format, table_name, format, summary) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (blob_id, requested_format, table_name) DO UPDATE SET summary = EXCLUDED.summary
       WHERE NOT (blob_parse.summary ? 'family') AND (EXCLUDED.summary ? 'family')`,
    [blobId, requestedFormat, table, parsed.format, JSON.stringify(parsed.summary)],
  );

  /** A node's optional blob (routes, IPv6 dump) as uploaded, or null. */
  async function optionalBlob(snapshotId: string, node: string, column: 'routes_blob_id' | 'rules6_blob_id'): Promise<Buffer | null> {
    if (!isUuid(snapshotId)) return null;
    const { rows } = await pool.query<{ blob_id: string | null }>(
      `SELECT ${column} AS blob_id FROM snapshot_node WHERE snapshot_id = $1 AND name = $2`, [snapshotId, node],
    );
    return rows[0]?.blob_id ? readBlob(pool, rows[0].blob_id, chunks) : null;
  }

  return {
    async createUpload(cluster, ttlMs) {
      const { rows: [r] } = await pool.query<{ id: string; expires_at: Date }>(
        "INSERT INTO upload (cluster, expires_at) VALUES ($1, now() + $2 * interval '1 millisecond') RETURNING id, expires_at",
        [cluster, ttlMs],
      );
      return { id: r.id, expiresAt: r.expires_at };
    },

    async upload(id) {
      if (!isUuid(id)) return null;
      const { rows: [u] } = await pool.query<{ id: string; cluster: string; created_at: Date; expires_at: Date; sha: string | null; bytes: string | null }>(
        `SELECT u.id, u.cluster, u.created_at, u.expires_at, encode(b.sha256, 'hex') AS sha, b.bytes
         FROM upload u LEFT JOIN blob b ON b.id = u.manifests_blob_id
         WHERE u.id = $1 AND u.expires_at > now() AND u.committed_snapshot_id IS NULL`, [id],
      );
      if (!u) return null;
      const { rows } = await pool.query<StagedRow>(stagedNodes, [id]);
      return {
        id: u.id, cluster: u.cluster, createdAt: u.created_at, expiresAt: u.expires_at,
        nodes: rows.map((r) => ({
          name: r.name, addresses: r.addresses, format: r.format, sha256: r.sha256, summary: r.summary, routes: stagedRoutes(r), ipv6: ipv6Dump(r),
        })),
        manifests: u.sha ? { sha256: u.sha, bytes: Number(u.bytes) } : null,
      };
    },

    async knownParse(sha, requestedFormat, table) {
      const { rows } = await pool.query<{ format: string; summary: unknown }>(
        `SELECT p.format, p.summary FROM blob b JOIN blob_parse p ON p.blob_id = b.id
         WHERE b.sha256 = $1 AND p.requested_format = $2 AND p.table_name = $3`,
        [sha, requestedFormat, table],
      );
      return rows[0] ?? null;
    },

    async stageNode(uploadId, node) {
      return blobTransaction(async (client) => {
        if (!(await lockUpload(client, uploadId, 'SHARE'))) return null;
        const { id: blobId } = await putBlob(client, node.content, node.plan);
        const routesBlobId = node.routes ? (await putBlob(client, node.routes.content, node.routes.plan)).id : null;
        await recordParse(client, blobId, node.requestedFormat, node.table, node.parsed);
        await client.query(
          `INSERT INTO upload_node (upload_id, name, addresses, requested_format, table_name, blob_id, routes_blob_id) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (upload_id, name) DO UPDATE SET addresses = EXCLUDED.addresses, requested_format = EXCLUDED.requested_format,
             table_name = EXCLUDED.table_name, blob_id = EXCLUDED.blob_id,
             routes_blob_id = COALESCE(EXCLUDED.routes_blob_id, upload_node.routes_blob_id)`,
          [uploadId, node.name, node.addresses, node.requestedFormat, node.table, blobId, routesBlobId],
        );
        // Routes and an IPv6 dump put before stay with the node: say which it has now.
        const { rows: [kept] } = await client.query<StagedRow>(`${stagedNodes.replace('ORDER BY', 'AND u.name = $2 ORDER BY')}`, [uploadId, node.name]);
        return { routes: stagedRoutes(kept), ipv6: ipv6Dump(kept) };
      });
    },

    async setAddresses(uploadId, name, addresses) {
      if (!isUuid(uploadId)) return false;
      const r = await pool.query('UPDATE upload_node SET addresses = $3 WHERE upload_id = $1 AND name = $2', [uploadId, name, addresses]);
      return (r.rowCount ?? 0) > 0;
    },

    async stageRules6(uploadId, name, dump) {
      return blobTransaction(async (client) => {
        if (!(await lockUpload(client, uploadId, 'SHARE'))) return 'upload';
        const { id: blobId } = await putBlob(client, dump.content, dump.plan);
        await recordParse(client, blobId, dump.requestedFormat, dump.table, dump.parsed);
        const r = await client.query(
          'UPDATE upload_node SET rules6_blob_id = $3, requested_format6 = $4, table_name6 = $5 WHERE upload_id = $1 AND name = $2',
          [uploadId, name, blobId, dump.requestedFormat, dump.table],
        );
        return (r.rowCount ?? 0) > 0 ? true : 'node';
      });
    },

    async stageRoutes(uploadId, name, content, plan) {
      return blobTransaction(async (client) => {
        if (!(await lockUpload(client, uploadId, 'SHARE'))) return 'upload';
        const { id: blobId } = await putBlob(client, content, plan);
        const r = await client.query('UPDATE upload_node SET routes_blob_id = $3 WHERE upload_id = $1 AND name = $2', [uploadId, name, blobId]);
        return (r.rowCount ?? 0) > 0 ? true : 'node';
      });
    },

    async stageManifests(uploadId, content, plan) {
      return blobTransaction(async (client) => {
        if (!(await lockUpload(client, uploadId, 'UPDATE'))) return false;
        const { id: blobId } = await putBlob(client, content, plan);
        await client.query('UPDATE upload SET manifests_blob_id = $2 WHERE id = $1', [uploadId, blobId]);
        return true;
      });
    },

    async commitUpload(uploadId, labels, hash) {
      return blobTransaction(async (client) => {
        if (!isUuid(uploadId)) return null;
        // A commit retried (its answer lost on the way) answers as the first one did.
        const { rows: [done] } = await client.query<{ snapshot: string; created: boolean }>(
          `SELECT committed_snapshot_id AS snapshot, committed_created AS created FROM upload
           WHERE id = $1 AND committed_snapshot_id IS NOT NULL FOR UPDATE`, [uploadId],
        );
        if (done) return { id: done.snapshot, created: done.created, reuploadRecorded: false, repeated: true };
        const upload = await lockUpload(client, uploadId, 'UPDATE');
        if (!upload) return null;
        const { rows: staged } = await client.query<StagedRow>(stagedNodes, [uploadId]);
        const manifestsSha = upload.manifestsBlobId
          ? (await client.query<{ sha: string }>("SELECT encode(sha256, 'hex') AS sha FROM blob WHERE id = $1", [upload.manifestsBlobId])).rows[0].sha
          : null;
        const contentHash = hash(
          staged.map((r) => ({
            name: r.name, addresses: r.addresses, format: r.format, table: r.table_name, sha256: r.sha256, routesSha256: r.routes_sha256, rules6Sha256: r.rules6_sha256,
          })),
          manifestsSha,
        );
        await client.query('INSERT INTO cluster (name) VALUES ($1) ON CONFLICT (name) DO NOTHING', [upload.cluster]);
        // The cluster row lock serialises commits to one cluster: versions stay contiguous.
        const { rows: [c] } = await client.query<{ id: string }>('SELECT id FROM cluster WHERE name = $1 FOR UPDATE', [upload.cluster]);
        const { rows: [latest] } = await client.query<{ id: string; content_hash: string }>(
          'SELECT id, content_hash FROM snapshot WHERE cluster_id = $1 ORDER BY version DESC LIMIT 1', [c.id],
        );
        let outcome: CommitOutcome;
        if (latest && latest.content_hash === contentHash) {
          const record = Object.keys(labels).length > 0;
          if (record) {
            await client.query('INSERT INTO snapshot_reupload (snapshot_id, labels) VALUES ($1, $2)', [latest.id, JSON.stringify(labels)]);
            await client.query(
              `DELETE FROM snapshot_reupload WHERE snapshot_id = $1 AND id NOT IN (
                 SELECT id FROM snapshot_reupload WHERE snapshot_id = $1 ORDER BY id DESC LIMIT ${REUPLOADS_KEPT})`,
              [latest.id],
            );
          }
          outcome = { id: latest.id, created: false, reuploadRecorded: record };
        } else {
          const { rows: [snap] } = await client.query<{ id: string }>(
            `INSERT INTO snapshot (cluster_id, version, labels, content_hash, manifests_blob_id, manifests_sha256)
             SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5 FROM snapshot WHERE cluster_id = $1
             RETURNING id`,
            [c.id, JSON.stringify(labels), contentHash, upload.manifestsBlobId, manifestsSha],
          );
          await client.query(
            `INSERT INTO snapshot_node (snapshot_id, name, addresses, format, blob_id, sha256, summary, routes_blob_id, routes_sha256,
               rules6_blob_id, rules6_sha256, format6, summary6)
             SELECT $1, s.name, s.addresses, s.format, s.blob_id, s.sha256, s.summary, s.routes_blob_id, s.routes_sha256,
               s.rules6_blob_id, s.rules6_sha256, s.format6, s.summary6
             FROM (${stagedNodes.replace('$1', '$2')}) s`,
            [snap.id, uploadId],
          );
          outcome = { id: snap.id, created: true, reuploadRecorded: false };
        }
        // The staged nodes go; the upload stays as a record of its commit until it expires.
        await client.query('DELETE FROM upload_node WHERE upload_id = $1', [uploadId]);
        await client.query(
          'UPDATE upload SET committed_snapshot_id = $2, committed_created = $3, manifests_blob_id = NULL WHERE id = $1',
          [uploadId, outcome.id, outcome.created],
        );
        return outcome;
      });
    },

    async deleteUpload(id) {
      if (!isUuid(id)) return false;
      const r = await pool.query('DELETE FROM upload WHERE id = $1 AND committed_snapshot_id IS NULL', [id]);
      return (r.rowCount ?? 0) > 0;
    },

    sweep: () => sweep(pool),

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
        select: snapshotSelect,
      });
      return rows.map(toSnapshot);
    },

    async snapshot(id) {
      if (!isUuid(id)) return null;
      const r = await prisma.snapshot.findUnique({ where: { id }, select: snapshotSelect });
      return r ? toSnapshot(r) : null;
    },

    async findSnapshot(cluster, which) {
      const where = which === 'latest' ? {} : 'version' in which ? { version: which.version } : { createdAt: { lte: which.at } };
      const r = await prisma.snapshot.findFirst({
        where: { cluster: { name: cluster }, ...where },
        orderBy: { version: 'desc' },
        select: snapshotSelect,
      });
      return r ? toSnapshot(r) : null;
    },

    async nodesOf(snapshotIds) {
      const ids = snapshotIds.filter(isUuid);
      const out = new Map<string, StoredNode[]>(snapshotIds.map((id) => [id, []]));
      if (ids.length === 0) return out;
      const rows = await prisma.snapshotNode.findMany({
        where: { snapshotId: { in: ids } },
        orderBy: { name: 'asc' },
        select: {
          snapshotId: true, name: true, addresses: true, format: true, sha256: true, summary: true, routesSha256: true, routesBlob: { select: { bytes: true } },
          rules6Sha256: true, format6: true, summary6: true,
        },
      });
      for (const r of rows) {
        out.get(r.snapshotId)!.push({
          name: r.name, addresses: r.addresses, format: r.format, sha256: r.sha256, summary: r.summary,
          routes: r.routesSha256 ? { sha256: r.routesSha256, bytes: Number(r.routesBlob?.bytes ?? 0) } : null,
          ipv6: ipv6Dump({ rules6_sha256: r.rules6Sha256, format6: r.format6, summary6: r.summary6 }),
        });
      }
      return out;
    },

    async rawRules(snapshotId, node) {
      if (!isUuid(snapshotId)) return null;
      const { rows } = await pool.query<{ blob_id: string }>(
        'SELECT blob_id FROM snapshot_node WHERE snapshot_id = $1 AND name = $2', [snapshotId, node],
      );
      return rows[0] ? readBlob(pool, rows[0].blob_id, chunks) : null;
    },

    rawRoutes: (snapshotId, node) => optionalBlob(snapshotId, node, 'routes_blob_id'),

    rawRules6: (snapshotId, node) => optionalBlob(snapshotId, node, 'rules6_blob_id'),

    async manifests(snapshotId) {
      if (!isUuid(snapshotId)) return null;
      const r = await prisma.snapshot.findUnique({ where: { id: snapshotId }, select: { manifestsBlobId: true } });
      if (!r?.manifestsBlobId) return null;
      return (await readBlob(pool, String(r.manifestsBlobId))).toString('utf8');
    },

    async reuploads(snapshotId, limit) {
      if (!isUuid(snapshotId)) return [];
      const rows = await prisma.snapshotReupload.findMany({
        where: { snapshotId }, orderBy: { id: 'desc' }, take: limit, select: { labels: true, createdAt: true },
      });
      return rows.map((r) => ({ labels: r.labels as Record<string, string>, createdAt: r.createdAt }));
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
}

