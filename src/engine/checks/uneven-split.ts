/**
 * uneven-split: Service chains whose load split is not the uniform one kube-proxy means (warning).
 *
 * kube-proxy gives n endpoints 1/n each: endpoint i (0-based) gets the rule
 * `-m statistic --mode random --probability 1/(n-i)` written with 10 decimals ("%0.10f"), and the
 * last endpoint an unconditional jump. The kernel keeps each probability as k/2^31
 * (k = round(p × 2^31)), so the shares are 1/n only to within a few 2^-31; that much is
 * expected. Reported per KUBE-SVC/SVL/XLB chain:
 * - shares further from 1/n than the quantisation explains (probabilities rounded by hand or by
 *   another tool, a wrong n after an edit);
 * - traffic that falls through the chain without a jump (the last rule has a probability);
 * - the same KUBE-SEP chain jumped to twice (a duplicated rule), or two KUBE-SEP chains that
 *   DNAT to the same endpoint (an endpoint listed twice).
 * Session-affinity rules (`-m recent --rcheck`) take only pinned clients and are not part of the split.
 */
import { servicePortNameString } from '../kube/chain-names.ts';
import { parseServicePortName } from '../kube/describe.ts';
import { commentOf } from '../netfilter/ast.ts';
import { SCALE } from '../trace/probability.ts';
import type { ChainJump, NodeRules } from './node-rules.ts';
import { nodeRules, percent, ruleRef, uniqueRefs } from './node-rules.ts';
import type { AuditInput, Check, Finding } from './types.ts';

const CHECK = 'uneven-split';

/**
 * How far a share may be from 1/n: kube-proxy's 10-decimal rounding (≤ 5e-11) plus the kernel's
 * quantisation (≤ 2^-32) per rule, accumulated over at most n rules, with room to spare.
 */
function tolerance(n: number): number {
  return (n + 1) * 2 ** -30;
}

/** The Service port a chain belongs to: its hash against the manifests, else its rules' comments. */
function nameOf(input: AuditInput, view: NodeRules, chain: string): { service?: string; port?: string; spn: string } {
  const entry = input.index.decode(chain);
  if (entry) {
    const port = entry.port.name !== '' ? entry.port.name : String(entry.port.port);
    return { service: `${entry.service.namespace}/${entry.service.name}`, port, spn: servicePortNameString(entry.service.namespace, entry.service.name, entry.port.name) };
  }
  for (const r of view.rules(chain)) {
    const c = commentOf(r);
    const spn = c ? parseServicePortName(c) : null;
    if (spn) {
      return {
        service: `${spn.namespace}/${spn.name}`,
        ...(spn.portName ? { port: spn.portName } : {}),
        spn: servicePortNameString(spn.namespace, spn.name, spn.portName),
      };
    }
  }
  return { spn: chain };
}

function checkChain(input: AuditInput, view: NodeRules, chain: string): Finding | null {
  const split: ChainJump[] = view.jumps(chain).filter((j) => j.kind === 'SEP' && j.affinity === null);
  // A split of kube-proxy's making has nothing but the statistic match (and a comment).
  if (split.length === 0 || split.some((j) => j.conditional)) return null;
  const problems: string[] = [];

  // The same KUBE-SEP chain twice, or two KUBE-SEP chains for one endpoint.
  const byChain = new Map<string, number>();
  for (const j of split) byChain.set(j.target, (byChain.get(j.target) ?? 0) + 1);
  for (const [sep, count] of byChain) if (count > 1) problems.push(`${sep} is jumped to ${count} times`);
  const byEndpoint = new Map<string, Set<string>>();
  for (const sep of byChain.keys()) {
    const key = view.dnat(sep)?.key;
    if (!key) continue;
    const set = byEndpoint.get(key) ?? new Set();
    set.add(sep);
    byEndpoint.set(key, set);
  }
  for (const [key, seps] of byEndpoint) if (seps.size > 1) problems.push(`endpoint ${key} is listed twice (${[...seps].join(', ')})`);

  // The share of each endpoint: rule i matches with k_i/2^31 of what rules before it left.
  const shares = new Map<string, number>();
  let remaining = 1;
  for (const j of split) {
    const share = (remaining * j.k) / SCALE;
    remaining -= share;
    const key = view.dnat(j.target)?.key ?? j.target;
    shares.set(key, (shares.get(key) ?? 0) + share);
  }
  const n = shares.size;
  const tol = tolerance(split.length);
  const uneven = [...shares.values()].some((s) => Math.abs(s - 1 / n) > tol);
  if (uneven) {
    const list = [...shares].map(([k, s]) => `${k} ${percent(s)}`);
    const shown = list.length > 8 ? `${list.slice(0, 8).join(', ')} and ${list.length - 8} more` : list.join(', ');
    problems.push(`the ${n} endpoint${n === 1 ? ' gets' : 's get'} ${shown} instead of ${percent(1 / n)} each`);
  }
  if (remaining > tol) problems.push(`${percent(remaining)} of new connections fall through the chain without an endpoint (the last rule has a probability)`);
  if (problems.length === 0) return null;
  const name = nameOf(input, view, chain);
  return {
    check: CHECK, severity: 'warning', node: view.node.name,
    ...(name.service ? { service: name.service } : {}),
    ...(name.port ? { port: name.port } : {}),
    message: `${chain} (${name.spn}) on ${view.node.name} does not split the load evenly: ${problems.join('; ')}; kube-proxy gives each of n endpoints 1/n`,
    rules: uniqueRefs(split.map((j) => ruleRef(j.rule))),
  };
}

export const unevenSplit: Check = (input) => {
  const out: Finding[] = [];
  for (const node of input.nodes) {
    const view = nodeRules(node);
    for (const { name, kind } of view.kubeChains()) {
      if (kind !== 'SVC' && kind !== 'SVL' && kind !== 'XLB') continue;
      if (!view.hasRules(name)) continue;
      const f = checkChain(input, view, name);
      if (f) out.push(f);
    }
  }
  return out;
};
