/**
 * Audits and diffs of stored snapshots, node by node: the dumps are read from the database and
 * parsed one node (or one pair of nodes) at a time. Without a cache each is let go before the
 * next, so memory holds one or two nodes' rules whatever the size of the cluster; with one (the
 * analysis worker's), parsed dumps stay within its byte budget, keyed by content, so the next
 * audit or diff that reads the same dump (the diff of a version an audit just read, the audit of
 * nodes another snapshot shares) does not parse it again. Run on the analysis worker
 * (analysis-worker.ts) or, without one, in place.
 */
import type { Pool } from 'pg';
import { NodeByNodeAudit, NodeByNodeDiff, readRules } from '../engine/index.ts';
import type { AnyRuleset, DiffResult, Finding, FormatOption } from '../engine/index.ts';
import { dumpBytes, snapshotDumps, snapshotManifests } from '../store/snapshot-reads.ts';
import type { StoredDumpRef } from '../store/snapshot-reads.ts';
import { readMeaning } from './kube-meaning.ts';
import type { RulesetCache } from './ruleset-cache.ts';
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
 * A node's rules (iptables completed, or nftables): from the cache, or read and parsed afresh.
 * Without a cache nothing is kept: on a node of 10,000 Services an audit compiles rules worth
 * hundreds of MB, gone with the ruleset once the next node begins.
 */
async function loadRuleset(pool: Queryable, n: StoredDumpRef, cache?: RulesetCache): Promise<AnyRuleset> {
  const parse = async () => {
    const raw = await dumpBytes(pool, n);
    return readRules(raw.toString('utf8'), { format: n.format as FormatOption, table: n.table ?? undefined });
  };
  if (!cache) return parse();
  const rs = await cache.get({ sha256: n.sha256, format: n.format, table: n.table ?? undefined }, () => dumpBytes(pool, n));
  // The previous node's checks compiled rules in its ruleset: weigh them, and evict to the budget.
  cache.settle();
  return rs;
}

export async function auditStored(pool: Queryable, task: AuditTask, cache?: RulesetCache): Promise<Finding[] | { missing: 'manifests' }> {
  const side = await sideOf(pool, task.snapshot);
  if (!side.meaning) return { missing: 'manifests' };
  const run = new NodeByNodeAudit({ model: side.meaning.model, index: side.meaning.index });
  const auditNode = async (n: StoredDumpRef) => ({ name: n.name, addresses: n.addresses, ruleset: await loadRuleset(pool, n, cache) });
  for (const n of side.nodes) run.add(await auditNode(n));
  const byName = new Map(side.nodes.map((n) => [n.name, n]));
  for (const name of run.disagreeing()) run.report(await auditNode(byName.get(name)!));
  return run.finish();
}

export async function diffStored(pool: Queryable, task: DiffTask, cache?: RulesetCache): Promise<DiffResult | { missing: 'node' }> {
  const [a, b] = await Promise.all([sideOf(pool, task.from, task.node), sideOf(pool, task.to, task.node)]);
  if (task.node !== undefined && (a.nodes.length === 0 || b.nodes.length === 0)) return { missing: 'node' };
  const named = (s: Side) => ({ names: s.nodes.map((n) => n.name), model: s.meaning?.model ?? null, index: s.meaning?.index ?? null });
  const run = new NodeByNodeDiff(named(a), named(b));
  const rows = { a: new Map(a.nodes.map((n) => [n.name, n])), b: new Map(b.nodes.map((n) => [n.name, n])) };
  const node = async (row: StoredDumpRef) => ({ name: row.name, addresses: row.addresses, ruleset: await loadRuleset(pool, row, cache) });
  for (const [na, nb] of run.pairs) run.add(await node(rows.a.get(na)!), await node(rows.b.get(nb)!));
  return run.finish();
}
