/**
 * Audits and diffs of stored snapshots, node by node: the dumps are read from the database and
 * parsed one node (or one pair of nodes) at a time, and each is let go before the next, so memory
 * holds one or two nodes' rules whatever the size of the cluster. Run on the analysis worker
 * (analysis-worker.ts) or, without one, in place.
 */
import type { Pool } from 'pg';
import { NodeByNodeAudit, NodeByNodeDiff, readRules } from '../engine/index.ts';
import type { AnyRuleset, DiffResult, Finding, FormatOption } from '../engine/index.ts';
import { dumpBytes, snapshotDumps, snapshotManifests } from '../store/snapshot-reads.ts';
import type { StoredDumpRef } from '../store/snapshot-reads.ts';
import { readMeaning } from './kube-meaning.ts';
import type { Meaning } from './kube-meaning.ts';

type Queryable = Pick<Pool, 'query'>;

export interface AuditTask {
  readonly snapshot: string;
}

export interface DiffTask {
  readonly from: string;
  readonly to: string;
  readonly node?: string;
}

interface Side {
  readonly nodes: readonly StoredDumpRef[];
  readonly meaning: Meaning | null;
}

async function sideOf(pool: Queryable, snapshotId: string, node?: string): Promise<Side> {
  const [nodes, manifests] = await Promise.all([snapshotDumps(pool, snapshotId, node), snapshotManifests(pool, snapshotId)]);
  return { nodes, meaning: manifests === null ? null : readMeaning(manifests) };
}

/**
 * A node's rules (iptables completed, or nftables), read and parsed afresh. Nothing is kept: on a
 * node of 10,000 Services an audit compiles rules worth hundreds of MB, gone with the ruleset once
 * the next node begins.
 */
async function loadRuleset(pool: Queryable, n: StoredDumpRef): Promise<AnyRuleset> {
  const raw = await dumpBytes(pool, n);
  return readRules(raw.toString('utf8'), { format: n.format as FormatOption, table: n.table ?? undefined });
}

export async function auditStored(pool: Queryable, task: AuditTask): Promise<Finding[] | { missing: 'manifests' }> {
  const side = await sideOf(pool, task.snapshot);
  if (!side.meaning) return { missing: 'manifests' };
  const run = new NodeByNodeAudit({ model: side.meaning.model, index: side.meaning.index });
  const auditNode = async (n: StoredDumpRef) => ({ name: n.name, addresses: n.addresses, ruleset: await loadRuleset(pool, n) });
  for (const n of side.nodes) run.add(await auditNode(n));
  const byName = new Map(side.nodes.map((n) => [n.name, n]));
  for (const name of run.disagreeing()) run.report(await auditNode(byName.get(name)!));
  return run.finish();
}

export async function diffStored(pool: Queryable, task: DiffTask): Promise<DiffResult | { missing: 'node' }> {
  const [a, b] = await Promise.all([sideOf(pool, task.from, task.node), sideOf(pool, task.to, task.node)]);
  if (task.node !== undefined && (a.nodes.length === 0 || b.nodes.length === 0)) return { missing: 'node' };
  const named = (s: Side) => ({ names: s.nodes.map((n) => n.name), model: s.meaning?.model ?? null, index: s.meaning?.index ?? null });
  const run = new NodeByNodeDiff(named(a), named(b));
  const rows = { a: new Map(a.nodes.map((n) => [n.name, n])), b: new Map(b.nodes.map((n) => [n.name, n])) };
  const node = async (row: StoredDumpRef) => ({ name: row.name, addresses: row.addresses, ruleset: await loadRuleset(pool, row) });
  for (const [na, nb] of run.pairs) run.add(await node(rows.a.get(na)!), await node(rows.b.get(nb)!));
  return run.finish();
}
