/**
 * service-rules: Service ports and kube-proxy chains that exist on one side only.
 *
 * - A Service port with usable endpoints in the manifests must have a KUBE-SVC (or, under a Local
 *   policy, KUBE-SVL) chain on every node: kube-proxy writes one on every sync (error when not).
 * - A Service port without usable endpoints must be rejected: kube-proxy writes a filter REJECT
 *   "ns/name:port has no endpoints" instead of chains (warning when the node has neither).
 * - The reverse: kube-proxy deletes the chains of Services, ports and endpoints that are gone, so a
 *   KUBE-SVC/SVL/EXT/FW/XLB/SEP chain that no Service port of the manifests hashes to is left over
 *   (warning). It is named by recomputing kube-proxy's hash from the Service port its rule comments
 *   name; a KUBE-SEP chain that a current Service's chain still jumps to is endpoint-drift's.
 */
import { endpointString, kubeProxyChainName, servicePortNameString } from '../kube/chain-names.ts';
import type { ChainKind, ChainPrefix } from '../kube/chain-names.ts';
import { parseServicePortName } from '../kube/describe.ts';
import type { Rule } from '../netfilter/ast.ts';
import { commentOf } from '../netfilter/ast.ts';
import { countEndpoints, expectedPorts } from './expected.ts';
import type { ExpectedPort } from './expected.ts';
import type { NodeRules } from './node-rules.ts';
import { chainRef, dportOf, namedKey, nodeRules, ruleRef, uniqueRefs } from './node-rules.ts';
import type { AuditInput, Check, Finding, FindingRule } from './types.ts';

const CHECK = 'service-rules';

/** kube-proxy's filter verdicts for a Service port without (local) endpoints. */
function isFilterVerdict(r: Rule): boolean {
  return r.table === 'filter' && (r.target?.name === 'REJECT' || r.target?.name === 'DROP');
}

function missingRules(view: NodeRules, e: ExpectedPort): Finding | null {
  const { chains } = e;
  const programmed = [chains.svc, chains.svl, chains.xlb].some((c) => view.hasRules(c));
  const evidence = view.named(namedKey(e.service.namespace, e.service.name, e.port.name)).map((n) => n.rule);
  const base = { check: CHECK, node: view.node.name, service: e.service.key, port: e.label };
  if (e.usesClusterChain || e.usesLocalChain) {
    if (programmed) return null;
    const usable = e.usesClusterChain ? e.cluster : e.local;
    const verdicts = evidence.filter(isFilterVerdict);
    const instead = verdicts.length > 0
      ? `; instead it ${verdicts[0].target!.name === 'REJECT' ? 'rejects' : 'drops'} the Service's traffic (${commentOf(verdicts[0]) ?? verdicts[0].text})`
      : '';
    const expected = e.usesClusterChain ? chains.svc : chains.svl;
    return {
      ...base, severity: 'error',
      message: `${e.spn} has ${countEndpoints(usable)} in the manifests, but node ${view.node.name} has no ${expected} rules for it${instead}: kube-proxy on this node has not caught up with the Service or its endpoints`,
      rules: uniqueRefs(evidence.map(ruleRef)),
    };
  }
  if (e.hasEndpoints) return null;
  // No usable endpoint: kube-proxy writes REJECT rules; chains left over are endpoint-drift's.
  const anyChain = [chains.svc, chains.svl, chains.ext, chains.fw, chains.xlb].some((c) => view.has(c));
  if (anyChain || evidence.some((r) => r.table === 'filter' && r.target?.name === 'REJECT')) return null;
  // kube-proxy writes that REJECT in the filter table: a dump without one cannot show it.
  if (!view.node.ruleset.tables.has('filter')) {
    return {
      ...base, severity: 'info',
      message: `${e.spn} has no usable endpoints in the manifests, so kube-proxy would reject its traffic in the filter table, which the dump of node ${view.node.name} does not include`,
      rules: [],
    };
  }
  return {
    ...base, severity: 'warning',
    message: `${e.spn} has no usable endpoints in the manifests, so kube-proxy would reject its traffic ("${e.spn} has no endpoints"), but node ${view.node.name} has no rule for it at all: clients time out instead of being refused, and kube-proxy on this node has not caught up`,
    rules: [],
  };
}

/** What an orphan chain stands for, named from the comments and verified against kube-proxy's hash. */
interface OrphanName {
  readonly namespace: string;
  readonly name: string;
  readonly portName: string;
  readonly protocol: string;
  /** The port number, when the manifests know the port. */
  readonly port?: number;
}

const PROTOCOLS = ['tcp', 'udp', 'sctp'];

/** The Service port (from the rule comments on or into the chain) whose kube-proxy name is `chain`. */
function nameOrphan(view: NodeRules, chain: string, kind: ChainKind): OrphanName | null {
  const candidates = new Map<string, { namespace: string; name: string; portName: string }>();
  for (const r of [...view.rules(chain), ...view.referrers(chain)]) {
    const c = commentOf(r);
    const spn = c ? parseServicePortName(c) : null;
    if (spn) candidates.set(`${spn.namespace}/${spn.name}:${spn.portName}`, spn);
  }
  const dnat = kind === 'SEP' ? view.dnat(chain) : null;
  for (const spn of candidates.values()) {
    const text = servicePortNameString(spn.namespace, spn.name, spn.portName);
    for (const protocol of PROTOCOLS) {
      const name = kind === 'SEP'
        ? dnat && dnat.port !== null ? kubeProxyChainName('KUBE-SEP', text, protocol, endpointString(dnat.ip, dnat.port)) : null
        : kubeProxyChainName(`KUBE-${kind}` as ChainPrefix, text, protocol);
      if (name === chain) return { ...spn, protocol };
    }
  }
  return null;
}

interface OrphanGroup {
  readonly key: string;
  readonly name: OrphanName | null;
  readonly chains: string[];
  readonly rules: Rule[];
}

function orphans(input: AuditInput, view: NodeRules): Finding[] {
  const { model, index } = input;
  const kube = view.kubeChains();
  const kinds = new Map(kube.map((c) => [c.name, c.kind]));
  // Undecodable chains, and KUBE-SEP chains of current endpoints that nothing jumps to.
  const orphan = new Set<string>();
  for (const { name, kind } of kube) {
    const entry = index.decode(name);
    if (!entry) orphan.add(name);
    else if (kind === 'SEP' && !view.isReferred(name)) orphan.add(name);
  }
  // A KUBE-SEP chain a current Service chain jumps to is an endpoint of that Service: endpoint-drift.
  for (const name of [...orphan]) {
    if (kinds.get(name) !== 'SEP') continue;
    if (view.referrers(name).some((r) => !orphan.has(r.chain))) orphan.delete(name);
  }
  const names = new Map<string, OrphanName | null>();
  for (const name of orphan) {
    const entry = index.decode(name);
    names.set(name, entry
      ? { namespace: entry.service.namespace, name: entry.service.name, portName: entry.port.name, protocol: entry.port.protocol.toLowerCase(), port: entry.port.port }
      : nameOrphan(view, name, kinds.get(name)!));
  }
  // An unnamed KUBE-SEP chain belongs to the orphan Service chain that jumps to it.
  for (const name of orphan) {
    if (names.get(name) || kinds.get(name) !== 'SEP') continue;
    const parent = view.referrers(name).map((r) => names.get(r.chain)).find((n) => n);
    if (parent) names.set(name, parent);
  }

  const groups = new Map<string, OrphanGroup>();
  const groupOf = (key: string, name: OrphanName | null): OrphanGroup => {
    let g = groups.get(key);
    if (!g) {
      g = { key, name, chains: [], rules: [] };
      groups.set(key, g);
    }
    return g;
  };
  const keyOf = (n: OrphanName) => `${n.namespace}/${n.name}:${n.portName}/${n.protocol}`;
  for (const name of [...orphan].sort()) {
    const n = names.get(name) ?? null;
    const g = groupOf(n ? keyOf(n) : name, n);
    g.chains.push(name);
  }
  // Rules outside the orphan chains that name a Service port the manifests do not have
  // (e.g. the REJECT of a deleted Service that had no endpoints).
  for (const key of view.namedKeys()) {
    for (const nr of view.named(key)) {
      const service = model.services.get(`${nr.namespace}/${nr.name}`);
      if (service && service.ports.some((p) => p.name === nr.portName)) continue;
      const target = nr.rule.target?.name ?? '';
      if (orphan.has(target) || index.decode(target)) continue;
      const protocol = nr.rule.protocol?.value ?? 'tcp';
      const n = { namespace: nr.namespace, name: nr.name, portName: nr.portName, protocol };
      groupOf(keyOf(n), n).rules.push(nr.rule);
    }
  }

  const out: Finding[] = [];
  for (const g of groups.values()) {
    const inGroup = new Set(g.chains);
    const refs: FindingRule[] = [];
    let dport: number | null = null;
    for (const c of g.chains) {
      const entries = view.referrers(c).filter((r) => !inGroup.has(r.chain));
      for (const r of entries) {
        refs.push(ruleRef(r));
        dport = dport ?? (r.chain === 'KUBE-SERVICES' ? dportOf(r) : null);
      }
      const dnat = kinds.get(c) === 'SEP' ? view.dnat(c) : null;
      if (dnat) refs.push(ruleRef(dnat.rule));
      if (entries.length === 0 && !dnat) {
        const first = view.rules(c)[0];
        refs.push(first ? ruleRef(first) : chainRef('nat', c));
      }
    }
    for (const r of g.rules) {
      refs.push(ruleRef(r));
      dport = dport ?? (r.chain === 'KUBE-SERVICES' ? dportOf(r) : null);
    }
    const chainList = describeChains(g.chains, kinds);
    const n = g.name;
    const holds = chainList ? `still has ${chainList}` : `still has rules`;
    if (!n) {
      out.push({
        check: CHECK, severity: 'warning', node: view.node.name,
        message: `node ${view.node.name} has chain ${g.chains[0]}, named like kube-proxy's chains, but no Service port of the manifests or of the rule comments hashes to it: a leftover chain`,
        rules: uniqueRefs(refs),
      });
      continue;
    }
    const serviceKey = `${n.namespace}/${n.name}`;
    const spn = servicePortNameString(n.namespace, n.name, n.portName);
    const service = model.services.get(serviceKey);
    const sep = g.chains.filter((c) => kinds.get(c) === 'SEP');
    const number = n.port ?? dport;
    const port = n.portName !== '' ? n.portName : number !== null ? String(number) : null;
    let what: string;
    if (!service) what = `Service ${serviceKey} is not in the manifests, but node ${view.node.name} ${holds} for ${spn}`;
    else if (!service.ports.some((p) => p.name === n.portName && p.protocol.toLowerCase() === n.protocol)) {
      what = `Service ${serviceKey} has no ${n.protocol.toUpperCase()} port ${n.portName ? `"${n.portName}"` : '(unnamed)'} in the manifests, but node ${view.node.name} ${holds} for ${spn}`;
    } else {
      const eps = sep.map((c) => view.dnat(c)?.key ?? c).join(', ');
      what = `node ${view.node.name} ${holds} for ${spn} that nothing jumps to (endpoint${sep.length === 1 ? '' : 's'} ${eps})`;
    }
    out.push({
      check: CHECK, severity: 'warning', node: view.node.name, service: serviceKey,
      ...(port !== null ? { port } : {}),
      message: `${what}: kube-proxy deletes the rules of Services, ports and endpoints that are gone, so either it has not caught up on this node or the manifests are out of date`,
      rules: uniqueRefs(refs),
    });
  }
  return out;
}

function describeChains(chains: readonly string[], kinds: ReadonlyMap<string, ChainKind>): string {
  const service = chains.filter((c) => kinds.get(c) !== 'SEP');
  const sep = chains.filter((c) => kinds.get(c) === 'SEP');
  const parts = [...service];
  if (sep.length === 1) parts.push(sep[0]);
  else if (sep.length > 1) parts.push(`${sep.length} KUBE-SEP chains`);
  return parts.join(', ');
}

export const serviceRules: Check = (input) => {
  const out: Finding[] = [];
  for (const node of input.nodes) {
    const view = nodeRules(node);
    for (const e of expectedPorts(input.model, node.name, view.family)) {
      const f = missingRules(view, e);
      if (f) out.push(f);
    }
    out.push(...orphans(input, view));
  }
  return out;
};
