/**
 * Snapshots: strict parsing of uploads, content-addressed deduplication, storage, and traces
 * through stored dumps (parsed once, then kept in a small cache keyed by the dump's hash).
 */
import { createHash } from 'node:crypto';
import type { AnyRuleset, DiffResult, Family, FormatOption, Protocol } from '../engine/index.ts';
import { defaultSource, EngineError, familyOf, isNftables, parseRoutes, readDestination, readProtocol, resolveServiceFrontends } from '../engine/index.ts';
import type { RouteTable } from '../engine/index.ts';
import { clipMessage } from '../engine/errors.ts';
import { AppError } from '../app-error.ts';
import type { CommitOutcome, IdentityNode, ParseRecord, SnapshotStore, StoredDump, StoredNode, StoredSnapshot, StoredUpload } from '../store/snapshot-store.ts';
import type { ChunkPlan } from '../store/chunking.ts';
import { isUuid } from '../store/snapshot-store.ts';
import { checkError, rereadFormat } from './dump-summary.ts';
import type { SummaryJson } from './dump-summary.ts';
import type { ParsePool } from './parse-pool.ts';
import { createParsePool } from './parse-pool.ts';
import type { AnalysisPool } from './analysis-pool.ts';
import { createRulesetCache } from './ruleset-cache.ts';
import type { TraceService } from './trace-service.ts';
import { annotate, readMeaning } from './kube-meaning.ts';
import { checkLabels as checkLabelLimits, checkStorableJson, checkStorableText, DEFAULT_LIMITS, refuseBinary } from './limits.ts';
import type { Limits } from './limits.ts';
import type { Meaning } from './kube-meaning.ts';
import type {
  AuditReport, ClusterView, CreateResult, DumpStage, DumpSummary, LabelsOutcome, NodeStage, NodeSummary, NodeTrace, NodeUpload, Page, SnapshotService,
  SnapshotUpload, SnapshotView, SnapshotWithNodes, StagedDump, StagedNode, StoredTraceQuery, UploadView,
} from './snapshot-types.ts';

const CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$/;
const BINARY_HINT = 'send the text of iptables-save, iptables -S or nft list ruleset, as it is or gzip-compressed (gzip is recognised by its first bytes or by Content-Encoding: gzip)';

/** A packet read from what the caller wrote: its errors are the caller's (400). */
function packetInput<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof EngineError) throw new AppError('BAD_PACKET', e.message);
    throw e;
  }
}

function sha256(data: string | Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

const FORMATS: readonly string[] = ['auto', 'iptables-save', 'iptables-S', 'nftables'];

/**
 * The identity of a snapshot's content: its nodes (name, addresses, format, table, dump sha256)
 * and its manifests' sha256. Two uploads with the same identity are the same state.
 */
export function contentHash(nodes: readonly IdentityNode[], manifestsSha256: string | null): string {
  return sha256(JSON.stringify({
    nodes: [...nodes].sort((a, b) => (a.name < b.name ? -1 : 1))
      // Routes and IPv6 dumps count only when uploaded: snapshots made before either existed keep their hash.
      .map((n) => [
        n.name, [...n.addresses].sort(), n.format, n.table || null, n.sha256, ...(n.routesSha256 ? [n.routesSha256] : []),
        ...(n.rules6Sha256 ? [{ rules6: n.rules6Sha256 }] : []),
      ]),
    manifests: manifestsSha256,
  })).toString('hex');
}

function decodeOffset(cursor: string): number {
  const m = /^o(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) throw new AppError('VALIDATION', `invalid cursor '${cursor}'`);
  return Number(m[1]);
}

function encodeCursor(version: number): string {
  return Buffer.from(`v${version}`).toString('base64url');
}

function decodeCursor(cursor: string): number {
  const m = /^v(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) throw new AppError('VALIDATION', `invalid cursor '${cursor}'`);
  return Number(m[1]);
}

function view(s: StoredSnapshot): SnapshotView {
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

function dumpView(d: StoredDump): DumpSummary {
  const s = d.summary as SummaryJson;
  return { format: d.format, sha256: d.sha256, bytes: s.bytes, rules: s.rules, tables: s.tables, diagnostics: s.diagnostics };
}

function nodeView(n: StoredNode): NodeSummary {
  return { name: n.name, addresses: n.addresses, ...dumpView(n), routes: n.routes, ipv6: n.ipv6 ? dumpView(n.ipv6) : null };
}

const FAMILY_NAME: Record<Family, string> = { ipv4: 'IPv4', ipv6: 'IPv6' };

/** The family a stored dump's summary records; summaries kept before it was are of IPv4 dumps or unknown (undefined). */
function familyOfDump(summary: unknown): Family | null | undefined {
  return (summary as SummaryJson).family;
}

/** A checked dump, ready to stage. */
interface CheckedDump {
  readonly requestedFormat: string;
  readonly table: string;
  readonly content: Buffer;
  readonly plan: ChunkPlan;
  readonly parsed: ParseRecord;
  /** false when the same dump was stored before and so was not parsed again. */
  readonly fresh: boolean;
}

export interface SnapshotServiceDeps {
  readonly store: SnapshotStore;
  readonly traceService: TraceService;
  /** Memory for parsed dumps kept for traces (default 2.5 GiB). */
  readonly cacheBytes?: number;
  /** Manifests read and audits kept (default 16). */
  readonly cacheSize?: number;
  /** Where uploaded dumps are parsed (default: in place, no worker threads). */
  readonly parsePool?: ParsePool;
  /** How long an upload in steps may stay uncommitted (default 24 h). */
  readonly uploadTtlMs?: number;
  /** Where audits and diffs run (analysis-pool.ts: worker threads, or in place). */
  readonly analysis: AnalysisPool;
  /** What one upload may hold: labels, manifests (default: DEFAULT_LIMITS). */
  readonly limits?: Limits;
  /** Told about background work that failed (the sweep). */
  readonly log?: (message: string) => void;
  /** How long a snapshot's metadata is reused by traces (default 60 s). */
  readonly metadataTtlMs?: number;
}

export function createSnapshotService(deps: SnapshotServiceDeps): SnapshotService & { ping(): Promise<void>; sweep(): Promise<void> } {
  const { store, traceService } = deps;
  const cacheSize = deps.cacheSize ?? 16;
  const rulesets = createRulesetCache({ budgetBytes: deps.cacheBytes ?? 2560 * 1024 * 1024 });
  const parsePool = deps.parsePool ?? createParsePool({ threads: 0 });
  const uploadTtlMs = deps.uploadTtlMs ?? 24 * 3600_000;
  /** One sweep at a time; a request for another while one runs is served by one more after it. */
  let sweeping: Promise<void> | null = null;
  let again = false;
  function sweep(): Promise<void> {
    if (sweeping) {
      again = true;
      return sweeping;
    }
    sweeping = (async () => {
      do {
        again = false;
        try {
          await store.sweep();
        } catch (e) {
          deps.log?.(`storage sweep failed: ${(e as Error).message}`);
        }
      } while (again);
      sweeping = null;
    })();
    return sweeping;
  }
  const meanings = new Map<string, Meaning>();
  const audits = new Map<string, AuditReport>();
  /** Diffs computed or being computed: requests for the same pair share one computation. */
  const diffs = new Map<string, Promise<DiffResult>>();
  async function meaningOf(s: StoredSnapshot): Promise<Meaning | null> {
    if (!s.manifestsSha256) return null;
    let m = meanings.get(s.manifestsSha256);
    if (!m) {
      const text = await store.manifests(s.id);
      if (text === null) return null;
      m = readMeaning(text);
      meanings.set(s.manifestsSha256, m);
      while (meanings.size > cacheSize) meanings.delete(meanings.keys().next().value!);
    }
    return m;
  }
  // Snapshots never change, so what a trace needs to know about one is kept for a while: only a
  // delete (here, or on another instance within the time to live) makes an entry stale.
  const metaTtlMs = deps.metadataTtlMs ?? 60_000;
  const metadata = new Map<string, { at: number; snapshot: StoredSnapshot; nodes: StoredNode[] }>();
  async function snapshotWithStoredNodes(ref: string): Promise<{ snapshot: StoredSnapshot; nodes: StoredNode[] }> {
    const id = await resolveId(ref);
    const hit = metadata.get(id);
    if (hit && performance.now() - hit.at < metaTtlMs) return hit;
    const snapshot = await mustGet(id);
    const nodes = (await store.nodesOf([id])).get(id) ?? [];
    metadata.set(id, { at: performance.now(), snapshot, nodes });
    if (metadata.size > 1000) metadata.delete(metadata.keys().next().value!);
    return { snapshot, nodes };
  }

  function checkNodeName(name: unknown): string {
    if (typeof name !== 'string' || !NODE_NAME.test(name)) {
      throw new AppError('VALIDATION', `node name '${String(name)}' is not valid (letters, digits, '.', '_', ':', '-')`);
    }
    return name;
  }

  function checkCluster(cluster: string): void {
    if (!CLUSTER_NAME.test(cluster)) throw new AppError('VALIDATION', `cluster name '${cluster}' is not valid (letters, digits, '.', '_', '-')`);
  }

  const limits = deps.limits ?? DEFAULT_LIMITS;

  function checkLabels(labels: Readonly<Record<string, unknown>> | undefined): Record<string, string> {
    const entries = Object.entries(labels ?? {});
    for (const [k, v] of entries) {
      if (typeof v !== 'string') throw new AppError('VALIDATION', `label ${k} must be a string`);
    }
    // fromEntries defines own properties: a '__proto__' label stays a label.
    const sorted = Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) as Record<string, string>;
    checkLabelLimits(sorted, limits);
    // Stored in jsonb, which holds no NUL even escaped.
    checkStorableJson(sorted, 'labels');
    return sorted;
  }

  function uploadView(u: StoredUpload): UploadView {
    return {
      id: u.id, cluster: u.cluster, createdAt: u.createdAt.toISOString(), expiresAt: u.expiresAt.toISOString(),
      nodes: u.nodes.map(nodeView), manifests: u.manifests,
    };
  }

  const uploadGone = (id: string) => new AppError('NOT_FOUND', `upload ${id} not found (never begun, committed, deleted or expired)`);

  /** Reads a node's routes as a trace will (a located error otherwise) and plans their storage. */
  async function checkRoutes(name: string, routes: Buffer) {
    checkStorableText(routes.toString('utf8'), `node ${name}: routes`);
    try {
      parseRoutes(routes.toString('utf8'));
    } catch (e) {
      if (e instanceof EngineError) throw AppError.fromEngine(e, { node: name, part: 'routes' }, `node ${name}: `);
      throw e;
    }
    return { content: routes, plan: await parsePool.plan(routes) };
  }

  /** Parsed routes by sha256: a few nodes' worth, they are small. */
  const routeTables = new Map<string, RouteTable>();
  async function routesOf(snapshotId: string, n: StoredNode): Promise<RouteTable | undefined> {
    if (!n.routes) return undefined;
    let table = routeTables.get(n.routes.sha256);
    if (!table) {
      const raw = await store.rawRoutes(snapshotId, n.name);
      if (!raw) return undefined;
      table = parseRoutes(raw.toString('utf8'));
      routeTables.set(n.routes.sha256, table);
      while (routeTables.size > 256) routeTables.delete(routeTables.keys().next().value!);
    }
    return table;
  }

  /**
   * Checks a node's dump and stages it. A dump stored before under the same format and table is
   * not parsed again: it passed then, and its summary was kept.
   */
  /**
   * Checks a dump before it is stored. A dump stored before under the same format and table is not
   * parsed again: it passed then, and its summary was kept. `part` is 'rules' or 'rules6'.
   */
  async function checkDump(name: string, part: 'rules' | 'rules6', d: DumpStage): Promise<CheckedDump> {
    const format = d.format ?? 'auto';
    if (!FORMATS.includes(format)) throw new AppError('VALIDATION', `format must be one of ${FORMATS.join(', ')}`);
    const table = d.table ?? '';
    const where = part === 'rules' ? `node ${name}` : `node ${name} (rules6)`;
    // The table is stored as text; the dump is bytes, but what the parser quotes from it goes to
    // jsonb: a NUL is refused where it stands (the scan for it is cheap).
    checkStorableText(table, `${where}: table`);
    refuseBinary(d.rules, `${where}: rules`, BINARY_HINT);
    if (d.rules.includes(0)) checkStorableText(d.rules.toString('utf8'), `${where}: rules`);
    // Hashed and cut into chunks on a parse worker: 40 MB take a tenth of a second.
    const plan = await parsePool.plan(d.rules);
    let parsed = await store.knownParse(plan.sha256, format, table);
    // A summary kept before families were recorded does not say whether the dump is IPv6: read it again.
    if (parsed && familyOfDump(parsed.summary) === undefined) parsed = null;
    const fresh = parsed === null;
    if (!parsed) {
      const r = await parsePool.check(d.rules, format as FormatOption, table || undefined);
      if (!r.ok) throw AppError.fromEngine(checkError(r), { node: name, ...(part === 'rules6' ? { part } : {}) }, `${where}: `);
      parsed = { format: r.format, summary: r.summary };
    }
    return { requestedFormat: format, table, content: d.rules, plan, parsed, fresh };
  }

  /** An IPv6 dump must read as one: an IPv4 dump or an nftables ruleset (both families) is refused. */
  function requireIpv6(name: string, dump: CheckedDump): void {
    const family = familyOfDump(dump.parsed.summary);
    if (family === 'ipv6') return;
    if (family === null) {
      throw new AppError('VALIDATION', `node ${name}: rules6 is an nftables ruleset, which holds both families: send it as the node's rules alone`, { node: name, part: 'rules6' });
    }
    throw new AppError('VALIDATION', `node ${name}: rules6 must be the node's IPv6 dump (ip6tables-save output), but it reads as IPv4 (IPv4 addresses, or no address and no ip6tables-save header)`, { node: name, part: 'rules6' });
  }

  /** Stages a node's dump (replacing one put before; its routes and IPv6 dump stay unless sent again). */
  async function stage(uploadId: string, n: NodeStage, checked?: CheckedDump): Promise<StagedNode> {
    const name = checkNodeName(n.name);
    // Addresses are stored as text: a NUL is refused where it stands.
    for (const a of n.addresses ?? []) checkStorableText(a, `node ${name}: address`);
    const dump = checked ?? await checkDump(name, 'rules', n);
    const routes = n.routes !== undefined ? await checkRoutes(name, n.routes) : undefined;
    const staged = await store.stageNode(uploadId, { name, addresses: [...(n.addresses ?? [])], ...dump, ...(routes ? { routes } : {}) });
    if (!staged) throw uploadGone(uploadId);
    return {
      upload: uploadId,
      node: nodeView({
        name, addresses: n.addresses ?? [], format: dump.parsed.format, sha256: dump.plan.sha256.toString('hex'), summary: dump.parsed.summary,
        routes: staged.routes, ipv6: staged.ipv6,
      }),
      parsed: dump.fresh,
    };
  }

  async function stageRules6(uploadId: string, name: string, d: DumpStage, checked?: CheckedDump): Promise<StagedDump> {
    checkNodeName(name);
    const dump = checked ?? await checkDump(name, 'rules6', d);
    requireIpv6(name, dump);
    const done = await store.stageRules6(uploadId, name, dump);
    if (done === 'upload') throw uploadGone(uploadId);
    if (done === 'node') throw new AppError('NOT_FOUND', `node ${name} is not in upload ${uploadId}: put its rules (the IPv4 dump) first`);
    return {
      upload: uploadId, node: name, parsed: dump.fresh,
      ipv6: dumpView({ format: dump.parsed.format, sha256: dump.plan.sha256.toString('hex'), summary: dump.parsed.summary }),
    };
  }

  /**
   * A node of a JSON upload as its dumps: `rules` (and `rules6`), or `rules` as a list of one or
   * two dumps placed by their family. Checked here, so that a list is read once.
   */
  async function nodeDumps(n: NodeUpload): Promise<{ rules: CheckedDump; rules6: CheckedDump | null }> {
    const bytes = (v: unknown, what: string): Buffer => {
      if (typeof v === 'string') return Buffer.from(v, 'utf8');
      if (Buffer.isBuffer(v)) return v;
      throw new AppError('VALIDATION', `node ${n.name}: ${what} must be text (a dump)`);
    };
    const read = (part: 'rules' | 'rules6', v: unknown, what: string) => checkDump(n.name, part, { rules: bytes(v, what), format: n.format, table: n.table });
    if (!Array.isArray(n.rules)) {
      return { rules: await read('rules', n.rules, 'rules'), rules6: n.rules6 !== undefined ? await read('rules6', n.rules6, 'rules6') : null };
    }
    if (n.rules6 !== undefined) throw new AppError('VALIDATION', `node ${n.name}: give rules as a list of its dumps, or rules and rules6, not both`);
    if (n.rules.length < 1 || n.rules.length > 2) {
      throw new AppError('VALIDATION', `node ${n.name}: rules as a list holds one or two dumps (iptables-save and ip6tables-save output), got ${n.rules.length}`);
    }
    const dumps = [];
    for (const [i, v] of n.rules.entries()) dumps.push(await read('rules', v, `rules[${i}]`));
    if (dumps.length === 1) return { rules: dumps[0], rules6: null };
    const families = dumps.map((d) => familyOfDump(d.parsed.summary));
    if (families.includes(null)) {
      throw new AppError('VALIDATION', `node ${n.name}: an nftables ruleset holds both families: send it alone as rules`, { node: n.name });
    }
    if (families[0] === families[1]) {
      const family = FAMILY_NAME[families[0] ?? 'ipv4'];
      throw new AppError('VALIDATION', `node ${n.name}: both dumps in rules are ${family}; a node has at most one dump of each family (iptables-save and ip6tables-save output)`, { node: n.name });
    }
    return families[0] === 'ipv6' ? { rules: dumps[1], rules6: dumps[0] } : { rules: dumps[0], rules6: dumps[1] };
  }

  /** A node with an IPv6 dump has an IPv4 one beside it: two dumps of one family is one too many. */
  function checkFamilies(nodes: readonly StoredNode[]): void {
    for (const n of nodes) {
      if (!n.ipv6) continue;
      const family = familyOfDump(n.summary);
      if (family === 'ipv6') {
        throw new AppError('VALIDATION', `node ${n.name} has two IPv6 dumps: its rules are IPv6 too; send the iptables-save output as rules and the ip6tables-save output as rules6`, { node: n.name });
      }
      if (family === null) {
        throw new AppError('VALIDATION', `node ${n.name}: its rules are an nftables ruleset, which holds both families; it takes no rules6`, { node: n.name });
      }
    }
  }

  async function stageManifests(uploadId: string, manifests: Buffer, checked = false): Promise<{ sha256: string; bytes: number }> {
    const plan = await parsePool.plan(manifests);
    const hex = plan.sha256.toString('hex');
    if (!checked) await checkManifests(manifests);
    if (!(await store.stageManifests(uploadId, manifests, plan))) throw uploadGone(uploadId);
    return { sha256: hex, bytes: manifests.length };
  }

  /** Reads the manifests as a trace would, on a parse worker: large ones take seconds to read. */
  async function checkManifests(manifests: Buffer): Promise<void> {
    refuseBinary(manifests, 'manifests', 'send the output of kubectl get … -o json or -o yaml, as it is or gzip-compressed');
    if (manifests.includes(0)) checkStorableText(manifests.toString('utf8'), 'manifests');
    const checked = await parsePool.checkManifests(manifests, limits);
    if (!checked.ok) throw new AppError(checked.code, checked.message, checked.details);
  }

  function labelsOutcome(outcome: CommitOutcome, labels: Record<string, string>, version: number): LabelsOutcome {
    if (Object.keys(labels).length === 0) return { stored: 'none', detail: 'no labels were sent' };
    if (outcome.repeated) return { stored: outcome.created ? 'snapshot' : 'reupload', detail: 'this upload was committed before: the same answer again' };
    if (outcome.created) return { stored: 'snapshot', detail: 'the labels are the new snapshot\'s labels' };
    return {
      stored: 'reupload',
      detail: `the content equals the latest snapshot (version ${version}), which keeps its labels; the labels sent were recorded as a re-upload of it (listed under reuploads)`,
    };
  }

  async function commit(uploadId: string, rawLabels: Readonly<Record<string, unknown>> | undefined): Promise<CreateResult> {
    const labels = checkLabels(rawLabels);
    const upload = await store.upload(uploadId);
    if (upload && upload.nodes.length === 0) throw new AppError('VALIDATION', 'a snapshot needs at least one node');
    if (upload) checkFamilies(upload.nodes);
    const outcome = await store.commitUpload(uploadId, labels, contentHash);
    if (!outcome) throw uploadGone(uploadId);
    const snapshot = await withNodes(await mustGet(outcome.id));
    return { snapshot, created: outcome.created, labels: labelsOutcome(outcome, labels, snapshot.version) };
  }

  /** A node's dump of one family (its first dump, or its IPv6 dump), parsed. */
  async function rulesetOf(snapshotId: string, n: StoredNode, which: 'rules' | 'rules6' = 'rules'): Promise<AnyRuleset> {
    const dump = which === 'rules6' ? n.ipv6! : n;
    const table = (dump.summary as SummaryJson).table;
    return rulesets.get({ sha256: dump.sha256, format: rereadFormat(dump.format, dump.summary), table }, async () => {
      const raw = which === 'rules6' ? await store.rawRules6(snapshotId, n.name) : await store.rawRules(snapshotId, n.name);
      if (!raw) throw new AppError('NOT_FOUND', `node ${n.name} not found in snapshot ${snapshotId}`);
      return raw;
    });
  }

  /**
   * Which of a node's dumps a packet of `family` goes through: its IPv6 dump when it has one and
   * the packet is IPv6, else its first dump when that is of the family (or an nftables ruleset,
   * which holds both); null when the node has no dump of the family.
   */
  async function dumpFor(snapshotId: string, n: StoredNode, family: Family): Promise<AnyRuleset | null> {
    if (family === 'ipv6' && n.ipv6) return rulesetOf(snapshotId, n, 'rules6');
    let own = familyOfDump(n.summary);
    // Summaries kept before families were recorded: the parsed dump says.
    if (own === undefined) {
      const rs = await rulesetOf(snapshotId, n);
      own = isNftables(rs) ? null : rs.family;
    }
    return own === null || own === family ? rulesetOf(snapshotId, n) : null;
  }

  async function withNodes(s: StoredSnapshot): Promise<SnapshotWithNodes> {
    const [nodes, reuploads] = await Promise.all([store.nodesOf([s.id]), store.reuploads(s.id, 20)]);
    return {
      ...view(s),
      nodes: (nodes.get(s.id) ?? []).map(nodeView),
      reuploads: reuploads.map((r) => ({ labels: r.labels, createdAt: r.createdAt.toISOString() })),
    };
  }

  /**
   * A snapshot by its id, or by reference: `cluster@latest`, `cluster@12` (version 12), or
   * `cluster@2026-12-01T10:00:00Z` (the latest stored at or before that time).
   */
  async function mustGet(ref: string): Promise<StoredSnapshot> {
    const s = isUuid(ref) ? await store.snapshot(ref) : await byReference(ref);
    if (!s) throw new AppError('NOT_FOUND', `snapshot ${ref} not found`);
    return s;
  }

  async function byReference(ref: string): Promise<StoredSnapshot | null> {
    const at = ref.lastIndexOf('@');
    if (at <= 0) return null;
    const cluster = ref.slice(0, at);
    const which = ref.slice(at + 1);
    if (which === 'latest') return store.findSnapshot(cluster, 'latest');
    if (/^\d{1,9}$/.test(which)) return store.findSnapshot(cluster, { version: Number(which) });
    const time = /^\d{4}-\d{2}-\d{2}/.test(which) ? new Date(which) : null;
    if (!time || Number.isNaN(time.getTime())) {
      throw new AppError('VALIDATION', `snapshot reference '${clipMessage(ref, 120)}': after '@' give latest, a version number, or an ISO 8601 time such as 2026-12-01T10:00:00Z`);
    }
    return store.findSnapshot(cluster, { at: time });
  }

  /** The id a snapshot id or reference stands for now (a reference such as cluster@latest moves on). */
  async function resolveId(ref: string): Promise<string> {
    return isUuid(ref) ? ref : (await mustGet(ref)).id;
  }

  return {
    async create(cluster, upload: SnapshotUpload): Promise<CreateResult> {
      checkCluster(cluster);
      if (!Array.isArray(upload.nodes) || upload.nodes.length === 0) throw new AppError('VALIDATION', 'a snapshot needs at least one node');
      const names = new Set<string>();
      for (const n of upload.nodes) {
        checkNodeName(n.name);
        if (names.has(n.name)) throw new AppError('VALIDATION', `node ${n.name} appears twice`);
        names.add(n.name);
      }
      const labels = checkLabels(upload.labels);
      // Manifests first: a bad one should not wait for every node.
      const manifests = upload.manifests !== undefined ? Buffer.from(upload.manifests, 'utf8') : undefined;
      if (manifests) await checkManifests(manifests);
      // Staged like an upload in steps: nothing is a snapshot before the commit, and a failure
      // leaves only an upload that is deleted here (or expires, if the process dies).
      const { id } = await store.createUpload(cluster, uploadTtlMs);
      try {
        for (const n of upload.nodes) {
          if (n.routes !== undefined && typeof n.routes !== 'string') throw new AppError('VALIDATION', `node ${n.name}: routes must be text (ip route output)`);
          const dumps = await nodeDumps(n);
          await stage(id, {
            name: n.name, addresses: n.addresses, rules: dumps.rules.content,
            ...(n.routes !== undefined ? { routes: Buffer.from(n.routes, 'utf8') } : {}),
          }, dumps.rules);
          if (dumps.rules6) await stageRules6(id, n.name, { rules: dumps.rules6.content }, dumps.rules6);
        }
        if (manifests) await stageManifests(id, manifests, true);
        return await commit(id, labels);
      } catch (e) {
        await store.deleteUpload(id).catch(() => {});
        void sweep();
        throw e;
      }
    },

    async beginUpload(cluster) {
      checkCluster(cluster);
      const { id } = await store.createUpload(cluster, uploadTtlMs);
      return uploadView((await store.upload(id))!);
    },

    async getUpload(id) {
      const u = await store.upload(id);
      if (!u) throw uploadGone(id);
      return uploadView(u);
    },

    putNode: (uploadId, node) => stage(uploadId, node),

    putNodeRules6: (uploadId, name, dump) => stageRules6(uploadId, name, dump),

    async setNodeAddresses(uploadId, name, addresses) {
      if (!(await store.setAddresses(uploadId, name, addresses))) {
        throw new AppError('NOT_FOUND', `node ${name} is not in upload ${uploadId}`);
      }
    },

    async putNodeRoutes(uploadId, name, routes) {
      const { content, plan } = await checkRoutes(checkNodeName(name), routes);
      const done = await store.stageRoutes(uploadId, name, content, plan);
      if (done === 'upload') throw uploadGone(uploadId);
      if (done === 'node') throw new AppError('NOT_FOUND', `node ${name} is not in upload ${uploadId}: put its rules first`);
      return { sha256: plan.sha256.toString('hex'), bytes: content.length };
    },

    putManifests: (uploadId, manifests) => stageManifests(uploadId, manifests),

    commitUpload: commit,

    async abortUpload(id) {
      if (!(await store.deleteUpload(id))) throw uploadGone(id);
      void sweep();
    },

    async listClusters(): Promise<ClusterView[]> {
      return (await store.clusters()).map((c) => ({
        name: c.name,
        createdAt: c.createdAt.toISOString(),
        snapshots: c.snapshots,
        latest: c.latest ? { id: c.latest.id, version: c.latest.version, createdAt: c.latest.createdAt.toISOString() } : null,
      }));
    },

    async listSnapshots(cluster, { limit, cursor }): Promise<Page<SnapshotView>> {
      if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new AppError('VALIDATION', 'limit must be from 1 to 500');
      if (!(await store.clusterExists(cluster))) throw new AppError('NOT_FOUND', `cluster ${cluster} not found`);
      const before = cursor ? decodeCursor(cursor) : null;
      const rows = await store.snapshots(cluster, limit + 1, before);
      const items = rows.slice(0, limit).map(view);
      return { items, nextCursor: rows.length > limit ? encodeCursor(items[items.length - 1].version) : null };
    },

    async get(id) {
      return withNodes(await mustGet(id));
    },

    async nodesOf(ids) {
      const stored = await store.nodesOf(ids);
      return new Map([...stored].map(([id, nodes]) => [id, nodes.map(nodeView)]));
    },

    async rawRules(id, node) {
      // `id` may be a reference (prod@12): the store reads by the id it names.
      const raw = await store.rawRules((await mustGet(id)).id, node);
      if (!raw) throw new AppError('NOT_FOUND', `node ${node} not found in snapshot ${id}`);
      return raw;
    },

    async rawRules6(id, node) {
      const { snapshot, nodes } = await snapshotWithStoredNodes(id);
      const n = nodes.find((m) => m.name === node);
      if (!n) throw new AppError('NOT_FOUND', `node ${node} not found in snapshot ${id}`);
      const raw = n.ipv6 ? await store.rawRules6(snapshot.id, node) : null;
      if (!raw) throw new AppError('NOT_FOUND', `node ${node} of snapshot ${id} has no IPv6 dump (rules6); its only dump is at …/nodes/${node}/rules`);
      return raw;
    },

    async delete(id) {
      metadata.delete(id);
      audits.delete(id);
      if (!(await store.delete(id))) throw new AppError('NOT_FOUND', `snapshot ${id} not found`);
      void sweep();
    },

    async trace(id, q: StoredTraceQuery) {
      const protocol = packetInput(() => readProtocol(q.protocol));
      if (q.entry !== undefined && q.entry !== 'PREROUTING' && q.entry !== 'OUTPUT') {
        throw new AppError('VALIDATION', "entry must be 'PREROUTING' or 'OUTPUT'");
      }
      const { snapshot: s, nodes } = await snapshotWithStoredNodes(id);
      const meaning = await meaningOf(s);
      const selected = q.node === undefined ? nodes : nodes.filter((n) => n.name === q.node);
      if (q.node !== undefined && selected.length === 0) throw new AppError('NOT_FOUND', `node ${q.node} not found in snapshot ${id}`);
      // A Service instead of an address: every frontend of the Service port (cluster IPs,
      // NodePorts on each node, load-balancer and external IPs), each traced on every node.
      let targets: { destination: string; port: number; protocol: Protocol; frontend?: NodeTrace['frontend']; onlyNode?: string }[];
      if (q.service !== undefined) {
        if (!meaning) throw new AppError('VALIDATION', `snapshot ${id} has no manifests: a trace by Service needs them (or give destination and port)`);
        let frontends;
        try {
          frontends = resolveServiceFrontends(meaning.model, q.service, q.servicePort ?? q.port ?? '', nodes.map((n) => ({ name: n.name, addresses: n.addresses })));
        } catch (e) {
          if (e instanceof EngineError) throw new AppError('NOT_FOUND', e.message);
          throw e;
        }
        targets = frontends.map((f) => ({
          ...f.packet,
          frontend: { kind: f.frontend, destination: f.packet.destination, port: f.packet.port, protocol: f.packet.protocol, servicePort: f.servicePort },
          ...(f.node ? { onlyNode: f.node } : {}),
        }));
      } else {
        if (q.destination === undefined || typeof q.port === 'string') {
          throw new AppError('VALIDATION', 'give destination (ip:port, or ip and port), or service and port');
        }
        const { destination, port } = packetInput(() => readDestination(q.destination!, q.port as number | undefined));
        targets = [{ destination, port, protocol }];
      }
      const results: NodeTrace[] = [];
      for (const target of targets) {
        // The dump is picked by the destination's family, and so is the default source.
        const family: Family = familyOf(target.destination) ?? 'ipv4';
        const source = q.source ?? defaultSource(target.destination);
        const on = selected.filter((n) => target.onlyNode === undefined || target.onlyNode === n.name);
        const dumps = await Promise.all(on.map((n) => dumpFor(s.id, n, family)));
        // A packet to an address of a family no node asked about has a dump of: the question
        // cannot be answered. A Service's frontends of that family are said per node instead, so
        // that its frontends of the other family are still answered.
        if (dumps.every((d) => d === null) && q.service === undefined) {
          const who = on.length === 1 ? `node ${on[0].name} has no` : `no node of snapshot ${s.id} has an`;
          const fix = family === 'ipv6' ? "upload the node's ip6tables-save output as rules6" : "upload the node's iptables-save output as rules";
          throw new AppError('VALIDATION', `${who} ${FAMILY_NAME[family]} dump, so ${target.destination} cannot be traced: ${fix}`, { family });
        }
        for (const [i, n] of on.entries()) {
          const rs = dumps[i];
          const packet = { source, destination: target.destination, port: target.port, protocol: target.protocol, sourcePort: q.sourcePort ?? null };
          if (!rs) {
            results.push({
              node: n.name, family, entry: q.entry ?? 'PREROUTING', packet, outcomes: [], assumptions: [],
              warnings: [{
                code: 'NO_DUMP_FOR_FAMILY', node: n.name,
                message: `node ${n.name} has no ${FAMILY_NAME[family]} dump, so ${target.destination} was not traced on it${family === 'ipv6' ? ' (upload its ip6tables-save output as rules6)' : ''}`,
              }],
              ...(target.frontend ? { frontend: target.frontend } : {}),
            });
            continue;
          }
          const routes = await routesOf(s.id, n);
          const raw = traceService.traceRuleset(rs, { name: n.name, addresses: n.addresses }, {
            source,
            destination: target.destination,
            port: target.port,
            protocol: target.protocol,
            ...(q.entry ? { entry: q.entry } : {}),
            ...(q.sourcePort !== undefined ? { sourcePort: q.sourcePort } : {}),
            ...(q.inInterface ? { inInterface: q.inInterface } : {}),
          }, routes);
          const r = annotate(raw, meaning, n.addresses);
          const warnings = (n.addresses.length === 0
            ? [{ code: 'NODE_ADDRESSES_UNKNOWN', message: `node ${n.name} was uploaded without addresses: only 127.0.0.0/8 counts as LOCAL, so NodePorts on its addresses are not recognised` }, ...r.warnings]
            : r.warnings).map((w) => ({ ...w, node: n.name }));
          results.push({
            node: n.name, family, entry: r.entry, packet: r.packet, outcomes: r.outcomes, warnings, assumptions: r.assumptions,
            ...(target.frontend ? { frontend: target.frontend } : {}),
          });
        }
      }
      // The traces compiled rules: count them, and keep the cache within its budget.
      rulesets.settle();
      return { snapshot: s.id, results };
    },

    async audit(ref) {
      const id = await resolveId(ref);
      const hit = audits.get(id);
      if (hit) return hit;
      const { snapshot: s } = await snapshotWithStoredNodes(id);
      if (!s.manifestsSha256) throw new AppError('VALIDATION', `snapshot ${id} has no manifests: the audit compares rules with them`);
      const findings = await deps.analysis.audit({ snapshot: s.id });
      if (!Array.isArray(findings)) throw new AppError('VALIDATION', `snapshot ${id} has no manifests: the audit compares rules with them`);
      // Snapshots never change: the report is computed once.
      const report = { snapshot: s.id, findings };
      audits.set(id, report);
      while (audits.size > 64) audits.delete(audits.keys().next().value!);
      return report;
    },

    async diff(asked) {
      if (!Number.isInteger(asked.limit) || asked.limit < 1 || asked.limit > 1000) throw new AppError('VALIDATION', 'limit must be from 1 to 1000');
      const q = { ...asked, from: await resolveId(asked.from), to: await resolveId(asked.to) };
      const key = `${q.from}|${q.to}|${q.node ?? ''}`;
      let pending = diffs.get(key);
      if (!pending) {
        const compute = async (): Promise<DiffResult> => {
          // Both exist (a missing one answers 404 before the work starts).
          await Promise.all([snapshotWithStoredNodes(q.from), snapshotWithStoredNodes(q.to)]);
          let result;
          try {
            result = await deps.analysis.diff({ from: q.from, to: q.to, ...(q.node !== undefined ? { node: q.node } : {}) });
          } catch (e) {
            if (e instanceof EngineError) throw new AppError('NOT_FOUND', e.message);
            throw e;
          }
          if ('missing' in result) throw new AppError('NOT_FOUND', `node ${q.node} is not in both snapshots`);
          return result;
        };
        // Snapshots never change: a diff is computed once and kept (a failure is not).
        pending = compute();
        diffs.set(key, pending);
        pending.catch(() => {
          if (diffs.get(key) === pending) diffs.delete(key);
        });
        while (diffs.size > 32) diffs.delete(diffs.keys().next().value!);
      }
      const result = await pending;
      const [from, to] = await Promise.all([snapshotWithStoredNodes(q.from), snapshotWithStoredNodes(q.to)]);
      const offset = q.cursor ? decodeOffset(q.cursor) : 0;
      const end = offset + q.limit;
      const more = end < result.frontends.length || end < result.rules.length || end < result.manifests.length;
      return {
        from: q.from,
        to: q.to,
        summary: result.summary,
        clusters: { from: from.snapshot.cluster, to: to.snapshot.cluster, same: from.snapshot.cluster === to.snapshot.cluster },
        unpairedNodes: result.unpairedNodes,
        backends: result.backends,
        knownDifferences: result.knownDifferences,
        frontends: result.frontends.slice(offset, end),
        rules: result.rules.slice(offset, end),
        manifests: result.manifests.slice(offset, end),
        totals: { frontends: result.frontends.length, rules: result.rules.length, manifests: result.manifests.length },
        nextCursor: more ? Buffer.from(`o${end}`).toString('base64url') : null,
      };
    },

    async ping() {
      await store.ping();
    },

    sweep,
  };
}
