/**
 * Stored rows as the service answers them: ISO times, summaries of dumps, families named.
 */
import type { Family } from '../../engine/index.ts';
import type { StoredDump, StoredNode, StoredSnapshot, StoredUpload } from '../../store/snapshot-store.ts';
import type { SummaryJson } from '../dump-summary.ts';
import type { DumpSummary, NodeSummary, SnapshotView, UploadView } from '../snapshot-types.ts';

export const FAMILY_NAME: Readonly<Record<Family, string>> = { ipv4: 'IPv4', ipv6: 'IPv6' };

/** The family a stored dump's summary records; summaries kept before it was are of IPv4 dumps or unknown (undefined). */
export function familyOfDump(summary: unknown): Family | null | undefined {
  return (summary as SummaryJson).family;
}

export function snapshotView(s: StoredSnapshot): SnapshotView {
  return {
    id: s.id,
    cluster: s.cluster,
    version: s.version,
    labels: s.labels,
    createdAt: s.createdAt.toISOString(),
    contentHash: s.contentHash,
    manifests: s.manifestsSha256 ? { sha256: s.manifestsSha256, bytes: s.manifestsBytes ?? 0 } : null,
  };
}

export function dumpView(d: StoredDump): DumpSummary {
  const s = d.summary as SummaryJson;
  return { format: d.format, sha256: d.sha256, bytes: s.bytes, rules: s.rules, tables: s.tables, diagnostics: s.diagnostics };
}

export function nodeView(n: StoredNode): NodeSummary {
  return { name: n.name, addresses: n.addresses, ...dumpView(n), routes: n.routes, ipv6: n.ipv6 ? dumpView(n.ipv6) : null };
}

export function uploadView(u: StoredUpload): UploadView {
  return {
    id: u.id, cluster: u.cluster, createdAt: u.createdAt.toISOString(), expiresAt: u.expiresAt.toISOString(),
    nodes: u.nodes.map(nodeView), manifests: u.manifests,
  };
}
