/**
 * What the snapshot service takes and returns. REST, GraphQL and the CLI all speak these shapes.
 */
import type {
  Diagnostic, DiffBackends, DiffSummary, Entry, Finding, FormatOption, FrontendDiff, KnownDifference, ManifestChange, Protocol, RuleChange, TraceOutcome, TraceWarning,
} from '../engine/index.ts';

export interface NodeUpload {
  readonly name: string;
  readonly addresses: readonly string[];
  /**
   * The dump as uploaded; kept byte for byte. A list holds a dual-stack node's two dumps (its
   * iptables-save and ip6tables-save output, in either order): each is placed by its family.
   */
  readonly rules: string | Buffer | readonly (string | Buffer)[];
  /** A dual-stack node's IPv6 dump (ip6tables-save output), next to `rules`. */
  readonly rules6?: string | Buffer;
  readonly format?: FormatOption;
  /** For iptables -S input: the table it lists. */
  readonly table?: string;
  /** The node's `ip route` / `ip -6 route` output: traces of the snapshot take the output interface from it. */
  readonly routes?: string;
}

export interface SnapshotUpload {
  readonly labels?: Readonly<Record<string, string>>;
  readonly nodes: readonly NodeUpload[];
  /** `kubectl get … -o json|yaml` output, kept verbatim. */
  readonly manifests?: string;
}

export interface TableSummary {
  readonly name: string;
  readonly chains: number;
  readonly rules: number;
}

/** A dump as stored: what it is and what parsing it gave. */
export interface DumpSummary {
  readonly format: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly rules: number;
  readonly tables: readonly TableSummary[];
  /** Parser notes: unknown modules and targets (kept, not modelled), inferred tables, missing COMMITs. */
  readonly diagnostics: readonly Diagnostic[];
}

/** A node: its (first) dump's summary, and what else was uploaded with it. */
export interface NodeSummary extends DumpSummary {
  readonly name: string;
  readonly addresses: readonly string[];
  /** The node's routes, when they were uploaded: their sha256 and size. */
  readonly routes: { readonly sha256: string; readonly bytes: number } | null;
  /** A dual-stack node's IPv6 dump (ip6tables-save output) when it was uploaded; null otherwise. */
  readonly ipv6: DumpSummary | null;
}

export interface SnapshotView {
  readonly id: string;
  readonly cluster: string;
  readonly version: number;
  readonly labels: Readonly<Record<string, string>>;
  /** ISO 8601. */
  readonly createdAt: string;
  readonly contentHash: string;
  readonly manifests: { readonly sha256: string; readonly bytes: number } | null;
}

export interface SnapshotWithNodes extends SnapshotView {
  readonly nodes: readonly NodeSummary[];
  /** Uploads of the same content with other labels after this snapshot was made, newest first (at most 20). */
  readonly reuploads?: readonly { readonly labels: Readonly<Record<string, string>>; readonly createdAt: string }[];
}

export interface CreateResult {
  readonly snapshot: SnapshotWithNodes;
  /** false when the content equals the cluster's latest snapshot: that snapshot is returned. */
  readonly created: boolean;
  /** What happened to the labels sent with the upload. */
  readonly labels: LabelsOutcome;
}

/**
 * `snapshot`: they are the new snapshot's labels. `reupload`: the content equalled the latest
 * snapshot, which keeps its own labels; the ones sent were recorded as a re-upload of it.
 * `none`: no labels were sent.
 */
export interface LabelsOutcome {
  readonly stored: 'snapshot' | 'reupload' | 'none';
  readonly detail: string;
}

/** An upload in steps, before commit. */
export interface UploadView {
  readonly id: string;
  readonly cluster: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly nodes: readonly NodeSummary[];
  readonly manifests: { readonly sha256: string; readonly bytes: number } | null;
}

/** A node put into an upload: its summary, and whether its dump had to be parsed (false: seen before). */
export interface StagedNode {
  readonly upload: string;
  readonly node: NodeSummary;
  readonly parsed: boolean;
}

/** A node's IPv6 dump put into an upload. */
export interface StagedDump {
  readonly upload: string;
  readonly node: string;
  readonly ipv6: DumpSummary;
  /** false when the same dump was stored before and so was not parsed again. */
  readonly parsed: boolean;
}

export interface ClusterView {
  readonly name: string;
  readonly createdAt: string;
  readonly snapshots: number;
  readonly latest: { readonly id: string; readonly version: number; readonly createdAt: string } | null;
}

export interface Page<T> {
  readonly items: readonly T[];
  /** Pass as `cursor`/`after` for the next page; null on the last page. */
  readonly nextCursor: string | null;
  /** Each item's own cursor: the list continues after that item (GraphQL's edge cursors). */
  readonly cursors: readonly string[];
}

export interface StoredTraceQuery {
  /** The packet's destination: ip (with port), ip:port or [ipv6]:port. Or give `service` instead. */
  readonly destination?: string;
  /** The destination port; with `service`, the Service port's name or number. */
  readonly port?: number | string;
  /** "ns/name": trace every frontend of this Service port (needs manifests in the snapshot). */
  readonly service?: string;
  /** The Service port name or number (when `port` is the destination port of a packet). */
  readonly servicePort?: string | number;
  /** tcp, udp, sctp or icmp, in any case. */
  readonly protocol?: string;
  /** Default: 203.0.113.10 (2001:db8::10 for an IPv6 destination), outside any cluster. */
  readonly source?: string;
  /** One node, or every node of the snapshot when absent. */
  readonly node?: string;
  readonly entry?: Entry;
  readonly sourcePort?: number;
  readonly inInterface?: string;
}

export interface NodeTrace {
  readonly node: string;
  /** The packet's address family: the node's dump of this family was traced. */
  readonly family: 'ipv4' | 'ipv6';
  /** For a trace by Service: which frontend this is. */
  readonly frontend?: {
    readonly kind: string;
    readonly destination: string;
    readonly port: number;
    readonly protocol: Protocol;
    readonly servicePort: { readonly name: string; readonly port: number; readonly protocol: string };
  };
  readonly entry: Entry;
  readonly packet: { source: string; destination: string; port: number; protocol: Protocol; sourcePort: number | null };
  /** Every way the packet can go; none when the node has no dump of the packet's family (a warning says so). */
  readonly outcomes: readonly TraceOutcome[];
  /** Each names its node. */
  readonly warnings: readonly (TraceWarning & { readonly node?: string })[];
  readonly assumptions: readonly string[];
}

export interface SnapshotTrace {
  readonly snapshot: string;
  readonly results: readonly NodeTrace[];
}

export interface AuditReport {
  readonly snapshot: string;
  readonly findings: readonly Finding[];
}

export interface DiffQuery {
  readonly from: string;
  readonly to: string;
  /** Diff only this node (present in both snapshots). */
  readonly node?: string;
  readonly limit: number;
  readonly cursor?: string | null;
}

/** A page of a diff: the summary always, and the same slice of each list. */
export interface DiffPage {
  readonly from: string;
  readonly to: string;
  readonly summary: DiffSummary;
  /** The clusters of the two snapshots: a diff across clusters is allowed, and marked. */
  readonly clusters: { readonly from: string; readonly to: string; readonly same: boolean };
  readonly unpairedNodes: { readonly a: readonly string[]; readonly b: readonly string[] };
  /** The rule backends compared (iptables, nftables), and the node pairs whose backends differ. */
  readonly backends: DiffBackends;
  /** What the two backends do differently on purpose, per node (whole, not paged: one entry per node and code). */
  readonly knownDifferences: readonly KnownDifference[];
  readonly frontends: readonly FrontendDiff[];
  readonly rules: readonly RuleChange[];
  readonly manifests: readonly ManifestChange[];
  readonly totals: { readonly frontends: number; readonly rules: number; readonly manifests: number };
  readonly nextCursor: string | null;
}

export interface NodeStage {
  readonly name: string;
  readonly addresses?: readonly string[];
  readonly rules: Buffer;
  readonly format?: FormatOption;
  readonly table?: string;
  /** `ip route` output; when absent, routes put before for this node stay. */
  readonly routes?: Buffer;
}

/** A dump as sent, with the format and table to read it with. */
export interface DumpStage {
  readonly rules: Buffer;
  readonly format?: FormatOption;
  readonly table?: string;
}

export interface SnapshotService {
  create(cluster: string, upload: SnapshotUpload): Promise<CreateResult>;
  /** Uploads in steps: begin, put nodes and manifests (in any order, again if need be), commit. */
  beginUpload(cluster: string): Promise<UploadView>;
  getUpload(id: string): Promise<UploadView>;
  putNode(uploadId: string, node: NodeStage): Promise<StagedNode>;
  /** Puts the IPv6 dump (ip6tables-save output) of a dual-stack node already put. */
  putNodeRules6(uploadId: string, name: string, dump: DumpStage): Promise<StagedDump>;
  /** Sets the addresses of a node already put. */
  setNodeAddresses(uploadId: string, name: string, addresses: readonly string[]): Promise<void>;
  /** Puts the routes (`ip route` output) of a node already put; checked as a trace reads them. */
  putNodeRoutes(uploadId: string, name: string, routes: Buffer): Promise<{ sha256: string; bytes: number }>;
  putManifests(uploadId: string, manifests: Buffer): Promise<{ sha256: string; bytes: number }>;
  commitUpload(uploadId: string, labels: Readonly<Record<string, string>>): Promise<CreateResult>;
  abortUpload(uploadId: string): Promise<void>;
  listClusters(): Promise<readonly ClusterView[]>;
  /** Newest first. */
  listSnapshots(cluster: string, options: { limit: number; cursor?: string | null }): Promise<Page<SnapshotView>>;
  /** Throws AppError NOT_FOUND. */
  get(id: string): Promise<SnapshotWithNodes>;
  /** Batch read for loaders: one query for many snapshots' nodes. */
  nodesOf(snapshotIds: readonly string[]): Promise<ReadonlyMap<string, readonly NodeSummary[]>>;
  rawRules(id: string, node: string): Promise<Buffer>;
  /** The node's IPv6 dump; NOT_FOUND when the node has none. */
  rawRules6(id: string, node: string): Promise<Buffer>;
  delete(id: string): Promise<void>;
  trace(id: string, query: StoredTraceQuery): Promise<SnapshotTrace>;
  /** Where the rules and the manifests disagree, per node (needs manifests in the snapshot). */
  audit(id: string): Promise<AuditReport>;
  /** What changed from one snapshot to another (any clusters): where traffic goes, rules, manifests. */
  diff(query: DiffQuery): Promise<DiffPage>;
  /** The same page as the UTF-8 bytes of its JSON (the lists are kept as JSON texts: prepared-diff.ts). */
  diffJson(query: DiffQuery): Promise<Buffer>;
}
