/** The shapes of the API answers the page reads (openapi/openapi.json has the whole contract). */

export interface TraceStep {
  hook?: string;
  table: string;
  chain: string;
  index: number;
  rule: string;
  action: string;
  line?: number;
  assumed?: string;
}

export interface Outcome {
  probability: number;
  exactProbability?: string;
  verdict: string;
  destination?: { ip: string; port?: number | null } | null;
  masquerade: boolean;
  delivery?: string;
  path: TraceStep[];
  notes?: string[];
  conditions?: string[];
  service?: { namespace: string; name: string; port?: { name: string; port: number; protocol: string }; frontend?: string } | null;
  endpoint?: { ip: string; port?: number; node?: string | null; pod?: { name: string; namespace: string; node?: string | null } | null } | null;
  masqueradeReason?: string;
}

export interface Warning { code: string; message: string; node?: string }

export interface NodeTrace {
  node: string;
  outcomes: Outcome[];
  warnings: Warning[];
  assumptions?: string[];
  entry: string;
  packet: { source: string; destination: string; port?: number | null; protocol: string };
  frontend?: { kind: string; destination: string; port: number; protocol: string; servicePort?: { name: string; port: number; protocol: string } };
}

export interface TraceAnswer { snapshot: string; results: NodeTrace[] }

export interface Finding {
  check: string;
  severity: 'error' | 'warning' | 'info';
  node?: string | null;
  service?: string | null;
  port?: string | null;
  message: string;
  rules: Array<{ table: string; chain: string; index: number; rule: string }>;
}

export interface AuditReport { snapshot: string; findings: Finding[] }

export interface FrontendChange {
  node: string;
  service?: string | null;
  frontend: { ip: string; port: number; protocol: string; kind: string };
  change: 'added' | 'removed' | 'changed';
  before?: Outcome[];
  after?: Outcome[];
  changes?: string[];
  known?: { code: string; reason: string };
}

export interface RuleChange { node: string; table: string; change: string; chain: string; rule?: string; before?: string; after?: string; from?: string; to?: string }

export interface ManifestChange { kind: string; name: string; change: string; fields?: Array<{ path: string; before?: unknown; after?: unknown }> }

export interface DiffSummary {
  frontends: { added: number; removed: number; changed: number; unchanged: number; known: number };
  endpoints: { added: number; removed: number };
  rules: { chainsAdded: number; chainsRemoved: number; rulesAdded: number; rulesRemoved: number; rulesMoved: number; renamed: number };
  manifests: { added: number; removed: number; changed: number; compared: boolean; reason?: string };
  nodes: { added: number; removed: number; compared: number };
}

export interface DiffPage {
  summary: DiffSummary;
  frontends: FrontendChange[];
  rules: RuleChange[];
  manifests: ManifestChange[];
  nextCursor?: string | null;
  from: string;
  to: string;
  totals: { frontends: number; rules: number; manifests: number };
}

export interface SnapshotRow {
  id: string;
  version: number;
  createdAt: string;
  labels: Array<{ key: string; value: string }>;
  nodes: Array<{ name: string }>;
}

export interface ClusterRow {
  name: string;
  createdAt: string;
  snapshotCount: number;
  latest: SnapshotRow | null;
}
