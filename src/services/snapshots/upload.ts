/**
 * Uploads: in one request (`create`) or in steps (begin, put nodes, their IPv6 dumps, routes and
 * the manifests, commit). Both stage every part in an upload, which becomes a snapshot in one
 * transaction at commit; content equal to the cluster's latest snapshot returns it.
 */
import { createHash } from 'node:crypto';
import { AppError } from '../../app-error.ts';
import type { CommitOutcome, IdentityNode, SnapshotStore } from '../../store/snapshot-store.ts';
import { checkStorableText } from '../limits.ts';
import type { ParsePool } from '../parse-pool.ts';
import type { CreateResult, DumpStage, LabelsOutcome, NodeStage, SnapshotService, SnapshotUpload, StagedDump, StagedNode } from '../snapshot-types.ts';
import type { SnapshotLookup } from './lookup.ts';
import type { CheckedDump, UploadChecks } from './upload-checks.ts';
import { checkCluster, checkFamilies, checkNodeName, requireIpv6 } from './upload-checks.ts';
import { dumpView, nodeView, uploadView } from './views.ts';

/**
 * The identity of a snapshot's content: its nodes (name, addresses, format, table, dump sha256)
 * and its manifests' sha256. Two uploads with the same identity are the same state.
 */
export function contentHash(nodes: readonly IdentityNode[], manifestsSha256: string | null): string {
  return createHash('sha256').update(JSON.stringify({
    nodes: [...nodes].sort((a, b) => (a.name < b.name ? -1 : 1))
      // Routes and IPv6 dumps count only when uploaded: snapshots made before either existed keep their hash.
      .map((n) => [
        n.name, [...n.addresses].sort(), n.format, n.table || null, n.sha256, ...(n.routesSha256 ? [n.routesSha256] : []),
        ...(n.rules6Sha256 ? [{ rules6: n.rules6Sha256 }] : []),
      ]),
    manifests: manifestsSha256,
  })).digest('hex');
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

const uploadGone = (id: string) => new AppError('NOT_FOUND', `upload ${id} not found (never begun, committed, deleted or expired)`);

export type UploadOperations = Pick<SnapshotService,
  'create' | 'beginUpload' | 'getUpload' | 'putNode' | 'putNodeRules6' | 'setNodeAddresses' | 'putNodeRoutes' | 'putManifests' | 'commitUpload' | 'abortUpload'>;

export function createUploadOperations(deps: {
  readonly store: SnapshotStore;
  readonly checks: UploadChecks;
  readonly lookup: SnapshotLookup;
  readonly parsePool: ParsePool;
  /** How long an upload in steps may stay uncommitted. */
  readonly uploadTtlMs: number;
  /** Frees what a deleted upload held (the storage sweep). */
  readonly sweep: () => Promise<void>;
}): UploadOperations {
  const { store, checks, lookup, parsePool, uploadTtlMs, sweep } = deps;

  /** Stages a node's dump (replacing one put before; its routes and IPv6 dump stay unless sent again). */
  async function stage(uploadId: string, n: NodeStage, checked?: CheckedDump): Promise<StagedNode> {
    const name = checkNodeName(n.name);
    // Addresses are stored as text: a NUL is refused where it stands.
    for (const a of n.addresses ?? []) checkStorableText(a, `node ${name}: address`);
    const dump = checked ?? await checks.dump(name, 'rules', n);
    const routes = n.routes !== undefined ? await checks.routes(name, n.routes) : undefined;
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
    const dump = checked ?? await checks.dump(name, 'rules6', d);
    requireIpv6(name, dump);
    const done = await store.stageRules6(uploadId, name, dump);
    if (done === 'upload') throw uploadGone(uploadId);
    if (done === 'node') throw new AppError('NOT_FOUND', `node ${name} is not in upload ${uploadId}: put its rules (the IPv4 dump) first`);
    return {
      upload: uploadId, node: name, parsed: dump.fresh,
      ipv6: dumpView({ format: dump.parsed.format, sha256: dump.plan.sha256.toString('hex'), summary: dump.parsed.summary }),
    };
  }

  async function stageManifests(uploadId: string, manifests: Buffer, checked = false): Promise<{ sha256: string; bytes: number }> {
    const plan = await parsePool.plan(manifests);
    if (!checked) await checks.manifests(manifests);
    if (!(await store.stageManifests(uploadId, manifests, plan))) throw uploadGone(uploadId);
    return { sha256: plan.sha256.toString('hex'), bytes: manifests.length };
  }

  async function commit(uploadId: string, rawLabels: Readonly<Record<string, unknown>> | undefined): Promise<CreateResult> {
    const labels = checks.labels(rawLabels);
    const upload = await store.upload(uploadId);
    if (upload && upload.nodes.length === 0) throw new AppError('VALIDATION', 'a snapshot needs at least one node');
    if (upload) checkFamilies(upload.nodes);
    const outcome = await store.commitUpload(uploadId, labels, contentHash);
    if (!outcome) throw uploadGone(uploadId);
    const snapshot = await lookup.withNodes(await lookup.mustGet(outcome.id));
    return { snapshot, created: outcome.created, labels: labelsOutcome(outcome, labels, snapshot.version) };
  }

  return {
    async create(cluster, upload: SnapshotUpload) {
      checkCluster(cluster);
      if (!Array.isArray(upload.nodes) || upload.nodes.length === 0) throw new AppError('VALIDATION', 'a snapshot needs at least one node');
      const names = new Set<string>();
      for (const n of upload.nodes) {
        checkNodeName(n.name);
        if (names.has(n.name)) throw new AppError('VALIDATION', `node ${n.name} appears twice`);
        names.add(n.name);
      }
      const labels = checks.labels(upload.labels);
      // Manifests first: a bad one should not wait for every node.
      const manifests = upload.manifests !== undefined ? Buffer.from(upload.manifests, 'utf8') : undefined;
      if (manifests) await checks.manifests(manifests);
      // Staged like an upload in steps: nothing is a snapshot before the commit, and a failure
      // leaves only an upload that is deleted here (or expires, if the process dies).
      const { id } = await store.createUpload(cluster, uploadTtlMs);
      try {
        for (const n of upload.nodes) {
          if (n.routes !== undefined && typeof n.routes !== 'string') throw new AppError('VALIDATION', `node ${n.name}: routes must be text (ip route output)`);
          const dumps = await checks.nodeDumps(n);
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
      const { content, plan } = await checks.routes(checkNodeName(name), routes);
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
  };
}
