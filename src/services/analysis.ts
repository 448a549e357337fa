/**
 * Audits and diffs of stored snapshots, node by node: the dumps are read from the database and
 * parsed one node (or one pair of nodes) at a time, and each is let go before the next, so memory
 * holds one or two nodes' rules whatever the size of the cluster. Run on the analysis worker
 * (analysis-worker.ts) or, without one, in place.
 */
import type { Pool } from 'pg';
import { NodeByNodeAudit, NodeByNodeDiff, readRules } from '../engine/index.ts';
import type { AnyRuleset, DiffResult, Finding, FormatOption, SideBackend } from '../engine/index.ts';
import { dumpBytes, manifestsText, snapshotDumps, snapshotManifestsBlob } from '../store/snapshot-reads.ts';
import type { StoredDumpRef } from '../store/snapshot-reads.ts';
import type { ChunkCache } from '../store/blob-store.ts';
import { ByteCache, chunkCache, computeOnce } from './byte-cache.ts';
import { BYTES_PER_MANIFEST_BYTE, readMeaning } from './kube-meaning.ts';
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

/**
 * What a worker keeps between tasks: inflated chunks (the versions of a cluster share most of
 * them), and manifests read into cluster models by their blob (an audit of v1 and a diff v1 → v2
 * read v1's once).
 */
export interface AnalysisCaches {
  readonly chunks?: ChunkCache;
  readonly meanings?: ByteCache<Promise<Meaning>>;
}

/** What the manifests cache of a worker holds at most (each entry weighs BYTES_PER_MANIFEST_BYTE per byte of manifests). */
export const ANALYSIS_MEANINGS_BYTES = 64 * 1024 * 1024;

export function analysisCaches(chunkCacheBytes: number): AnalysisCaches {
  return { chunks: chunkCache(chunkCacheBytes), meanings: new ByteCache<Promise<Meaning>>({ budgetBytes: ANALYSIS_MEANINGS_BYTES }) };
}

async function meaningOf(pool: Queryable, snapshotId: string, caches: AnalysisCaches): Promise<Meaning | null> {
  const blob = await snapshotManifestsBlob(pool, snapshotId);
  if (blob === null) return null;
  let bytes = 0;
  const read = async () => {
    const text = await manifestsText(pool, blob);
    bytes = text.length;
    return readMeaning(text);
  };
  return caches.meanings ? computeOnce(caches.meanings, blob, read, () => bytes * BYTES_PER_MANIFEST_BYTE) : read();
}

async function sideOf(pool: Queryable, snapshotId: string, caches: AnalysisCaches, node?: string): Promise<Side & { readonly ipv6: readonly StoredDumpRef[] }> {
  const [nodes, ipv6, meaning] = await Promise.all([
    snapshotDumps(pool, snapshotId, node), snapshotDumps(pool, snapshotId, node, 'ipv6'), meaningOf(pool, snapshotId, caches),
  ]);
  return { nodes, ipv6, meaning };
}

/**
 * A node with its rules (iptables completed, or nftables), parsed afresh from its dump `raw`.
 * Nothing is kept: on a node of 10,000 Services an audit compiles rules worth hundreds of MB, gone
 * with the ruleset once the next node begins.
 */
function storedNode(n: StoredDumpRef, raw: Buffer): { name: string; addresses: string[]; ruleset: AnyRuleset } {
  const ruleset = readRules(raw.toString('utf8'), { format: n.format as FormatOption, table: n.table ?? undefined });
  return { name: n.name, addresses: n.addresses, ruleset };
}

/**
 * Each item's dump, fetched one item ahead: the database reads the next node's chunks while this
 * thread parses and checks the current one. Memory holds one raw dump more (or two for a pair).
 */
async function* fetchedAhead<T>(items: readonly T[], fetch: (item: T) => Promise<Buffer[]>): AsyncGenerator<[T, Buffer[]]> {
  const start = (i: number) => {
    const p = fetch(items[i]);
    // Awaited below; until then a failure must not count as unhandled.
    p.catch(() => {});
    return p;
  };
  let next = items.length > 0 ? start(0) : null;
  for (let i = 0; i < items.length; i++) {
    const raw = await next!;
    next = i + 1 < items.length ? start(i + 1) : null;
    yield [items[i], raw];
  }
}

/** `caches`: what the worker keeps between the nodes' dumps and between tasks (AnalysisCaches). */
export async function auditStored(pool: Queryable, task: AuditTask, caches: AnalysisCaches = {}): Promise<Finding[] | { missing: 'manifests' }> {
  const { chunks } = caches;
  const side = await sideOf(pool, task.snapshot, caches);
  if (!side.meaning) return { missing: 'manifests' };
  const meaning = side.meaning;
  // The IPv4 dumps and the dual-stack nodes' IPv6 dumps are audited apart: nodes are compared with
  // each other (node disagreement) only within one family.
  const auditFamily = async (dumps: readonly StoredDumpRef[]): Promise<Finding[]> => {
    const run = new NodeByNodeAudit({ model: meaning.model, index: meaning.index });
    const fetch = async (n: StoredDumpRef) => [await dumpBytes(pool, n, chunks)];
    for await (const [n, [raw]] of fetchedAhead(dumps, fetch)) run.add(storedNode(n, raw));
    const byName = new Map(dumps.map((n) => [n.name, n]));
    const disagreeing = run.disagreeing().map((name) => byName.get(name)!);
    for await (const [n, [raw]] of fetchedAhead(disagreeing, fetch)) run.report(storedNode(n, raw));
    return run.finish();
  };
  const findings = await auditFamily(side.nodes);
  return side.ipv6.length === 0 ? findings : [...findings, ...await auditFamily(side.ipv6)];
}

export async function diffStored(pool: Queryable, task: DiffTask, caches: AnalysisCaches = {}): Promise<DiffResult | { missing: 'node' }> {
  const { chunks } = caches;
  const [a, b] = await Promise.all([sideOf(pool, task.from, caches, task.node), sideOf(pool, task.to, caches, task.node)]);
  if (task.node !== undefined && (a.nodes.length === 0 || b.nodes.length === 0)) return { missing: 'node' };
  const named = (s: Side) => ({ names: s.nodes.map((n) => n.name), model: s.meaning?.model ?? null, index: s.meaning?.index ?? null });
  const compare = async (from: Side, to: Side): Promise<DiffResult> => {
    const run = new NodeByNodeDiff(named(from), named(to));
    const rows = { a: new Map(from.nodes.map((n) => [n.name, n])), b: new Map(to.nodes.map((n) => [n.name, n])) };
    const pairs = run.pairs.map(([na, nb]) => [rows.a.get(na)!, rows.b.get(nb)!] as const);
    const fetchPair = ([ra, rb]: readonly [StoredDumpRef, StoredDumpRef]) => Promise.all([dumpBytes(pool, ra, chunks), dumpBytes(pool, rb, chunks)]);
    for await (const [[ra, rb], [rawA, rawB]] of fetchedAhead(pairs, fetchPair)) run.add(storedNode(ra, rawA), storedNode(rb, rawB));
    return run.finish();
  };
  const ipv4 = await compare(a, b);
  if (a.ipv6.length === 0 && b.ipv6.length === 0) return ipv4;
  // The IPv6 dumps of nodes that have one on both sides, compared the same way; a node's IPv6 dump
  // on one side only is listed as unpaired (`NAME/ipv6`).
  const both = (s: readonly StoredDumpRef[], o: readonly StoredDumpRef[]) => s.filter((n) => o.some((m) => m.name === n.name));
  const ipv6 = both(a.ipv6, b.ipv6).length === 0 ? null : await compare({ ...a, nodes: both(a.ipv6, b.ipv6) }, { ...b, nodes: both(b.ipv6, a.ipv6) });
  const only = (s: readonly StoredDumpRef[], o: readonly StoredDumpRef[]) => s.filter((n) => !o.some((m) => m.name === n.name)).map((n) => `${n.name}/ipv6`);
  return withIpv6(ipv4, ipv6, { a: only(a.ipv6, b.ipv6), b: only(b.ipv6, a.ipv6) });
}

/** Adds what comparing the IPv6 dumps found to the IPv4 comparison: counts summed, lists joined. */
function withIpv6(ipv4: DiffResult, ipv6: DiffResult | null, unpaired: { a: readonly string[]; b: readonly string[] }): DiffResult {
  const unpairedNodes = { a: [...ipv4.unpairedNodes.a, ...unpaired.a], b: [...ipv4.unpairedNodes.b, ...unpaired.b] };
  if (!ipv6) return { ...ipv4, unpairedNodes };
  const s4 = ipv4.summary;
  const s6 = ipv6.summary;
  const side = (x: SideBackend, y: SideBackend): SideBackend => (x === 'none' ? y : y === 'none' || x === y ? x : 'mixed');
  return {
    // Nodes and manifests are counted once, by the IPv4 comparison.
    summary: {
      ...s4,
      frontends: sumCounts(s4.frontends, s6.frontends),
      endpoints: sumCounts(s4.endpoints, s6.endpoints),
      verdictChanges: s4.verdictChanges + s6.verdictChanges,
      masqueradeChanges: s4.masqueradeChanges + s6.masqueradeChanges,
      probabilityChanges: s4.probabilityChanges + s6.probabilityChanges,
      rules: sumCounts(s4.rules, s6.rules),
    },
    frontends: [...ipv4.frontends, ...ipv6.frontends],
    rules: [...ipv4.rules, ...ipv6.rules],
    manifests: ipv4.manifests,
    unpairedNodes,
    backends: {
      from: side(ipv4.backends.from, ipv6.backends.from), to: side(ipv4.backends.to, ipv6.backends.to),
      across: [...ipv4.backends.across, ...ipv6.backends.across],
    },
    knownDifferences: [...ipv4.knownDifferences, ...ipv6.knownDifferences],
  };
}

function sumCounts<T extends object>(x: T, y: T): T {
  return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, typeof v === 'number' ? v + (y[k as keyof T] as number) : v])) as T;
}
