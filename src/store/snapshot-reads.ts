/**
 * The reads an audit or a diff makes of a stored snapshot, over any pg pool (the analysis worker
 * has its own): its nodes with where their dumps are, and its manifests.
 */
import type { Pool } from 'pg';
import { readBlob } from './blob-store.ts';
import type { ChunkCache } from './blob-store.ts';

type Queryable = Pick<Pool, 'query'>;

export interface StoredDumpRef {
  readonly name: string;
  readonly addresses: string[];
  /** The format to read the dump with: 'auto' when its upload asked for that and the dump needed it (a paste read leniently; rereadFormat). */
  readonly format: string;
  /** The table of an iptables -S dump, or null. */
  readonly table: string | null;
  readonly sha256: string;
  readonly blobId: string;
}

/**
 * The format to read a stored dump again with: 'auto' when its upload asked for that and the dump
 * needed it (`summary.requested`, `summary.exact`: services/dump-summary.ts), else the detected one.
 */
export function rereadFormat(format: string, summary: unknown): string {
  const s = summary as { requested?: string; exact?: boolean } | null;
  return s?.requested === 'auto' && s.exact !== true ? 'auto' : format;
}

/**
 * The snapshot's nodes by name (only `node` when given): their first dumps, or (`ipv6`) the IPv6
 * dumps of the dual-stack nodes among them.
 */
export async function snapshotDumps(db: Queryable, snapshotId: string, node?: string, which: 'rules' | 'ipv6' = 'rules'): Promise<StoredDumpRef[]> {
  const [blob, sha, format, summary] = which === 'rules' ? ['blob_id', 'sha256', 'format', 'summary'] : ['rules6_blob_id', 'rules6_sha256', 'format6', 'summary6'];
  const { rows } = await db.query<{ name: string; addresses: string[]; format: string; reread: { requested?: string; exact?: boolean }; table_name: string | null; sha256: string; blob_id: string }>(
    `SELECT name, addresses, ${format} AS format, json_build_object('requested', ${summary}->'requested', 'exact', ${summary}->'exact') AS reread,
       ${summary}->>'table' AS table_name, ${sha} AS sha256, ${blob} AS blob_id FROM snapshot_node
     WHERE snapshot_id = $1 AND ($2::text IS NULL OR name = $2) AND ${blob} IS NOT NULL ORDER BY name`,
    [snapshotId, node ?? null],
  );
  return rows.map((r) => ({ name: r.name, addresses: r.addresses, format: rereadFormat(r.format, r.reread), table: r.table_name, sha256: r.sha256, blobId: r.blob_id }));
}

/** The blob of the snapshot's manifests (content-addressed: the same manifests, the same blob), or null. */
export async function snapshotManifestsBlob(db: Queryable, snapshotId: string): Promise<string | null> {
  const { rows: [s] } = await db.query<{ blob: string | null }>('SELECT manifests_blob_id AS blob FROM snapshot WHERE id = $1', [snapshotId]);
  return s?.blob ?? null;
}

/** Manifests stored as `blob`, as uploaded. */
export async function manifestsText(db: Queryable, blob: string): Promise<string> {
  return (await readBlob(db, blob)).toString('utf8');
}

export async function dumpBytes(db: Queryable, ref: StoredDumpRef, chunks?: ChunkCache): Promise<Buffer> {
  return readBlob(db, ref.blobId, chunks);
}
