/**
 * Audit fixtures from the kube-proxy generator: rules rendered from cluster A on one or more nodes,
 * manifests from cluster B (A with known edits), and pickers for the Services to edit.
 */
import { completeKubeProxy, parseDump } from '../../../src/engine/index.ts';
import { ChainNameIndex, readClusterModel } from '../../../src/engine/kube/index.ts';
import type { AuditInput, AuditNode, Finding } from '../../../src/engine/checks/index.ts';
import type { GenCluster, GenOptions, GenService } from '../../support/kube-gen.ts';
import { generateCluster, renderIptablesSave, renderManifests } from '../../support/kube-gen.ts';

/** Shares that give a few dozen Services every feature the checks look at. */
export const RICH: Omit<GenOptions, 'seed' | 'services'> = {
  nodePortShare: 0.3,
  loadBalancerShare: 0.15,
  externalIPShare: 0.1,
  localPolicyShare: 0.4,
  affinityShare: 0.2,
  noEndpointShare: 0.1,
  terminatingShare: 0.15,
  sourceRangeShare: 0.5,
  multiPortShare: 0.2,
  maxEndpoints: 6,
};

export function cluster(seed: number, services = 40, extra: Partial<GenOptions> = {}): GenCluster {
  return generateCluster({ seed, services, ...RICH, ...extra });
}

/** The node's address in the generator: node-001 is 192.168.0.10, node-002 192.168.0.11, … */
export function nodeAddress(name: string): string {
  const n = Number(name.slice('node-'.length)) - 1 + 10;
  return `192.168.${Math.floor(n / 256)}.${n % 256}`;
}

/** What kube-proxy on `nodeName` programs from cluster `c`, parsed and completed. */
export function renderNode(c: GenCluster, nodeName: string, edit?: (dump: string) => string): AuditNode {
  const onNode: GenCluster = { ...c, nodeName, nodeIPs: [nodeAddress(nodeName)] };
  const dump = renderIptablesSave(onNode);
  return { name: nodeName, addresses: onNode.nodeIPs, ruleset: completeKubeProxy(parseDump(edit ? edit(dump) : dump)) };
}

/** The audit input: the given nodes, and the manifests of `manifests` as `kubectl get -o json` prints them. */
export function auditInput(nodes: readonly AuditNode[], manifests: GenCluster): AuditInput {
  const { model } = readClusterModel([JSON.parse(renderManifests(manifests))]);
  return { nodes, model, index: ChainNameIndex.fromModel(model) };
}

export function key(s: Pick<GenService, 'namespace' | 'name'>): string {
  return `${s.namespace}/${s.name}`;
}

/** A Service with no special behaviour: Cluster policies, no affinity, one port, 2+ endpoints all ready. */
export function isPlain(s: GenService): boolean {
  return s.clusterIP !== 'None' && !(s.namespace === 'default' && s.name === 'kubernetes')
    && s.externalTrafficPolicy === 'Cluster' && s.internalTrafficPolicy === 'Cluster'
    && s.sessionAffinity === 'None' && s.ports.length === 1 && s.loadBalancerSourceRanges.length === 0
    && s.endpoints.length >= 2 && s.endpoints.every((e) => e.ready && !e.terminating);
}

/** Picks Services one by one, never the same twice. */
export class Picker {
  private readonly used = new Set<string>();

  constructor(private readonly c: GenCluster) {}

  pick(what: string, test: (s: GenService) => boolean): GenService {
    const s = this.c.services.find((x) => !this.used.has(key(x)) && test(x));
    if (!s) throw new Error(`no Service for ${what} in this cluster`);
    this.used.add(key(s));
    return s;
  }
}

/** An unused pod IP of the cluster. */
export function freePodIP(c: GenCluster): string {
  const used = new Set(c.services.flatMap((s) => s.endpoints.map((e) => e.ip)));
  for (let n = 254; n > 1; n--) {
    const ip = `10.244.0.${n}`;
    if (!used.has(ip)) return ip;
  }
  throw new Error('no free pod IP');
}

/** A compact view of a finding, for comparing sets of findings. */
export function summary(f: Finding): string {
  return `${f.severity} ${f.check} ${f.node ?? '-'} ${f.service ?? '-'}${f.port !== undefined ? `:${f.port}` : ''}`;
}

export function notInfo(findings: readonly Finding[]): Finding[] {
  return findings.filter((f) => f.severity !== 'info');
}

export function sorted(list: Iterable<string>): string[] {
  return [...list].sort();
}
