/**
 * What an upload must be before anything of it is stored: names, labels, dumps (parsed on a parse
 * worker unless the same dump was stored before), routes and manifests. Errors point at the node
 * and part at fault.
 */
import { EngineError, parseRoutes } from '../../engine/index.ts';
import { AppError } from '../../app-error.ts';
import type { ParseRecord, SnapshotStore, StoredNode } from '../../store/snapshot-store.ts';
import type { ChunkPlan } from '../../store/chunking.ts';
import { checkError } from '../dump-summary.ts';
import type { ParsePool } from '../parse-pool.ts';
import { checkLabels as checkLabelLimits, checkStorableJson, checkStorableText, refuseBinary } from '../limits.ts';
import type { Limits } from '../limits.ts';
import type { DumpStage, NodeUpload } from '../snapshot-types.ts';
import { FAMILY_NAME, familyOfDump } from './views.ts';

const CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$/;
const BINARY_HINT = 'send the text of iptables-save, iptables -S or nft list ruleset, as it is or gzip-compressed (gzip is recognised by its first bytes or by Content-Encoding: gzip)';
const FORMATS: readonly string[] = ['auto', 'iptables-save', 'iptables-S', 'nftables'];

/** A checked dump, ready to stage. */
export interface CheckedDump {
  readonly requestedFormat: string;
  readonly table: string;
  readonly content: Buffer;
  readonly plan: ChunkPlan;
  readonly parsed: ParseRecord;
  /** false when the same dump was stored before and so was not parsed again. */
  readonly fresh: boolean;
}

export function checkNodeName(name: unknown): string {
  if (typeof name !== 'string' || !NODE_NAME.test(name)) {
    throw new AppError('VALIDATION', `node name '${String(name)}' is not valid (letters, digits, '.', '_', ':', '-')`);
  }
  return name;
}

export function checkCluster(cluster: string): void {
  if (!CLUSTER_NAME.test(cluster)) throw new AppError('VALIDATION', `cluster name '${cluster}' is not valid (letters, digits, '.', '_', '-')`);
}

/** An IPv6 dump must read as one: an IPv4 dump or an nftables ruleset (both families) is refused. */
export function requireIpv6(name: string, dump: CheckedDump): void {
  const family = familyOfDump(dump.parsed.summary);
  if (family === 'ipv6') return;
  if (family === null) {
    throw new AppError('VALIDATION', `node ${name}: rules6 is an nftables ruleset, which holds both families: send it as the node's rules alone`, { node: name, part: 'rules6' });
  }
  throw new AppError('VALIDATION', `node ${name}: rules6 must be the node's IPv6 dump (ip6tables-save output), but it reads as IPv4 (IPv4 addresses, or no address and no ip6tables-save header)`, { node: name, part: 'rules6' });
}

/** A node with an IPv6 dump has an IPv4 one beside it: two dumps of one family is one too many. */
export function checkFamilies(nodes: readonly StoredNode[]): void {
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

export interface UploadChecks {
  /** The labels, sorted by key, within the limits. */
  labels(labels: Readonly<Record<string, unknown>> | undefined): Record<string, string>;
  /**
   * A dump, checked and planned for storage. A dump stored before under the same format and table
   * is not parsed again: it passed then, and its summary was kept. `part` is 'rules' or 'rules6'.
   */
  dump(name: string, part: 'rules' | 'rules6', d: DumpStage): Promise<CheckedDump>;
  /**
   * A node of a JSON upload as its dumps: `rules` (and `rules6`), or `rules` as a list of one or
   * two dumps placed by their family. Checked here, so that a list is read once.
   */
  nodeDumps(n: NodeUpload): Promise<{ rules: CheckedDump; rules6: CheckedDump | null }>;
  /** A node's routes, read as a trace will read them (a located error otherwise), planned for storage. */
  routes(name: string, routes: Buffer): Promise<{ content: Buffer; plan: ChunkPlan }>;
  /** Manifests, read as a trace would read them, on a parse worker: large ones take seconds. */
  manifests(manifests: Buffer): Promise<void>;
}

export function createUploadChecks(deps: { readonly store: SnapshotStore; readonly parsePool: ParsePool; readonly limits: Limits }): UploadChecks {
  const { store, parsePool, limits } = deps;

  async function dump(name: string, part: 'rules' | 'rules6', d: DumpStage): Promise<CheckedDump> {
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
      const r = await parsePool.check(d.rules, format, table || undefined);
      if (!r.ok) throw AppError.fromEngine(checkError(r), { node: name, ...(part === 'rules6' ? { part } : {}) }, `${where}: `);
      parsed = { format: r.format, summary: r.summary };
    }
    return { requestedFormat: format, table, content: d.rules, plan, parsed, fresh };
  }

  return {
    labels(labels) {
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
    },

    dump,

    async nodeDumps(n) {
      const bytes = (v: unknown, what: string): Buffer => {
        if (typeof v === 'string') return Buffer.from(v, 'utf8');
        if (Buffer.isBuffer(v)) return v;
        throw new AppError('VALIDATION', `node ${n.name}: ${what} must be text (a dump)`);
      };
      const read = (part: 'rules' | 'rules6', v: unknown, what: string) => dump(n.name, part, { rules: bytes(v, what), format: n.format, table: n.table });
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
    },

    async routes(name, routes) {
      checkStorableText(routes.toString('utf8'), `node ${name}: routes`);
      try {
        parseRoutes(routes.toString('utf8'));
      } catch (e) {
        if (e instanceof EngineError) throw AppError.fromEngine(e, { node: name, part: 'routes' }, `node ${name}: `);
        throw e;
      }
      return { content: routes, plan: await parsePool.plan(routes) };
    },

    async manifests(manifests) {
      refuseBinary(manifests, 'manifests', 'send the output of kubectl get … -o json or -o yaml, as it is or gzip-compressed');
      if (manifests.includes(0)) checkStorableText(manifests.toString('utf8'), 'manifests');
      const checked = await parsePool.checkManifests(manifests, limits);
      if (!checked.ok) throw new AppError(checked.code, checked.message, checked.details);
    },
  };
}
