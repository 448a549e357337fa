/**
 * Each check on its own: generated rules edited by hand (a rounded probability, a duplicated
 * rule, an injected DROP, a chain nobody names) or manifests edited (affinity, policies, ports,
 * new Services), and the audit must name exactly that. Also: the registry, the ordering, and
 * kube-proxy's own conformance dumps, which must audit clean against their manifests.
 */
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { completeKubeProxy, parseDump } from '../../../src/engine/index.ts';
import { ChainNameIndex, kubeProxyChainName, readClusterModel } from '../../../src/engine/kube/index.ts';
import { CHECK_NAMES, CHECKS, runAudit } from '../../../src/engine/checks/index.ts';
import type { Check, Finding } from '../../../src/engine/checks/index.ts';
import type { GenCluster, GenService } from '../../support/kube-gen.ts';
import { kubeProxyCases, nodeAddresses } from '../kube/fixtures.ts';
import { auditInput, cluster, isPlain, key, notInfo, Picker, renderNode, summary } from './support.ts';

const SEED = 14;

function portLabel(s: GenService): string {
  return s.ports[0].name !== '' ? s.ports[0].name : String(s.ports[0].port);
}

function svcChain(s: GenService, kind: 'KUBE-SVC' | 'KUBE-SVL' = 'KUBE-SVC'): string {
  const spn = s.ports[0].name !== '' ? `${s.namespace}/${s.name}:${s.ports[0].name}` : `${s.namespace}/${s.name}`;
  return kubeProxyChainName(kind, spn, s.ports[0].protocol);
}

/** The dump's lines, edited: `lines` finds and changes them in place. */
function editLines(dump: string, edit: (lines: string[]) => void): string {
  const lines = dump.split('\n');
  edit(lines);
  return lines.join('\n');
}

/** The endpoint rules (`-j KUBE-SEP-…` without `-m recent`) of a chain, as line numbers. */
function splitLines(lines: readonly string[], chain: string): number[] {
  const out: number[] = [];
  lines.forEach((l, i) => {
    if (l.startsWith(`-A ${chain} `) && / -j KUBE-SEP-/.test(l) && !l.includes('-m recent')) out.push(i);
  });
  return out;
}

/** Inserts lines just before the COMMIT of a table. */
function beforeCommit(lines: string[], table: string, ...add: string[]): void {
  const start = lines.indexOf(`*${table}`);
  const commit = lines.indexOf('COMMIT', start);
  lines.splice(commit, 0, ...add);
}

function audit(a: GenCluster, manifests: GenCluster, edit?: (dump: string) => string): Finding[] {
  return runAudit(auditInput([renderNode(a, 'node-001', edit)], manifests));
}

function only(findings: readonly Finding[]): string[] {
  return notInfo(findings).map(summary).sort();
}

test('the registry: six checks in a frozen list, each named in its findings; runAudit sorts errors first, then node and Service', () => {
  assert.equal(CHECKS.length, 6);
  assert.ok(Object.isFrozen(CHECKS) && Object.isFrozen(CHECK_NAMES));
  assert.deepEqual([...CHECK_NAMES], ['service-rules', 'endpoint-drift', 'node-disagreement', 'black-holes', 'uneven-split', 'affinity-stale']);
  const f = (severity: Finding['severity'], node?: string, service?: string): Finding => ({
    check: 'x', severity, ...(node ? { node } : {}), ...(service ? { service } : {}), message: `${severity} ${node} ${service}`, rules: [],
  });
  const fake: Check = () => [f('info', 'n1', 'a/b'), f('warning', 'n2'), f('error', 'n2', 'a/a'), f('error', 'n1', 'b/b'), f('warning', 'n1', 'a/a'), f('error', 'n1', 'a/z')];
  const got = runAudit({ nodes: [], model: readClusterModel([]).model, index: new ChainNameIndex() }, [fake]).map((x) => x.message);
  assert.deepEqual(got, ['error n1 a/z', 'error n1 b/b', 'error n2 a/a', 'warning n1 a/a', 'warning n2 undefined', 'info n1 a/b']);
});

test('uneven-split: a rounded probability is named with the shares; kube-proxy\'s own 10 decimals are not', () => {
  const a = cluster(SEED, 60);
  const s = new Picker(a).pick('a 4-endpoint ClusterIP Service', (x) => isPlain(x) && x.type === 'ClusterIP' && x.externalIPs.length === 0 && x.endpoints.length >= 4);
  const chain = svcChain(s);
  const rounded = audit(a, a, (d) => editLines(d, (lines) => {
    const first = splitLines(lines, chain)[0];
    lines[first] = lines[first].replace(/--probability \S+/, '--probability 0.4');
  }));
  assert.deepEqual(only(rounded), [`warning uneven-split node-001 ${key(s)}:${portLabel(s)}`]);
  const f = notInfo(rounded)[0];
  assert.match(f.message, new RegExp(`${chain} \\(${key(s)}.*\\) on node-001 does not split the load evenly: the ${s.endpoints.length} endpoints get .*40\\.0%.* instead of ${(100 / s.endpoints.length).toFixed(1)}% each`));
  assert.equal(f.rules.length, s.endpoints.length);
  assert.ok(f.rules.every((r) => r.chain === chain && r.table === 'nat'));

  // kube-proxy writes "%0.10f" of 1/(n-i): 0.3333333333, 0.1428571429, … (the generator prints what
  // iptables-save prints back, 11 decimals of k/2^31). Every Service, rewritten so: nothing to say.
  const tenDecimals = audit(a, a, (d) => d.replace(/--probability (\S+)/g, (_, p: string) => `--probability ${(1 / Math.round(1 / Number(p))).toFixed(10)}`));
  assert.deepEqual(only(tenDecimals), []);
});

test('uneven-split: a duplicated endpoint rule, and a last rule that lets traffic fall through', () => {
  const a = cluster(SEED, 60);
  const pick = new Picker(a);
  const dup = pick.pick('a ClusterIP Service', (x) => isPlain(x) && x.type === 'ClusterIP' && x.externalIPs.length === 0);
  const fall = pick.pick('another ClusterIP Service', (x) => isPlain(x) && x.type === 'ClusterIP' && x.externalIPs.length === 0);
  const findings = audit(a, a, (d) => editLines(d, (lines) => {
    const first = splitLines(lines, svcChain(dup))[0];
    lines.splice(first + 1, 0, lines[first]);
    const last = splitLines(lines, svcChain(fall)).at(-1)!;
    lines[last] = lines[last].replace(' -j KUBE-SEP-', ' -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-');
  }));
  assert.deepEqual(only(findings), [
    `warning uneven-split node-001 ${key(dup)}:${portLabel(dup)}`,
    `warning uneven-split node-001 ${key(fall)}:${portLabel(fall)}`,
  ].sort());
  const d = findings.find((f) => f.service === key(dup))!;
  assert.match(d.message, /KUBE-SEP-\S+ is jumped to 2 times/);
  const f = findings.find((x) => x.service === key(fall))!;
  assert.match(f.message, /fall through the chain without an endpoint/);
});

test('an endpoint listed twice: uneven-split names it, endpoint-drift the endpoint it displaced, service-rules the chain left behind', () => {
  const a = cluster(SEED, 60);
  const s = new Picker(a).pick('a 2-endpoint ClusterIP Service', (x) => isPlain(x) && x.type === 'ClusterIP' && x.externalIPs.length === 0 && x.endpoints.length === 2);
  const chain = svcChain(s);
  const [first, second] = [...s.endpoints].sort((x, y) => (`${x.ip}:${x.port}` < `${y.ip}:${y.port}` ? -1 : 1));
  const copy = 'KUBE-SEP-AAAAAAAAAAAAAAAA';
  let displaced = '';
  const findings = audit(a, a, (d) => editLines(d, (lines) => {
    const last = splitLines(lines, chain).at(-1)!;
    displaced = / -j (KUBE-SEP-\S+)/.exec(lines[last])![1];
    lines[last] = lines[last].replace(displaced, copy);
    lines.splice(lines.indexOf(`:${chain} - [0:0]`), 0, `:${copy} - [0:0]`);
    beforeCommit(lines, 'nat', `-A ${copy} -p tcp -m tcp -j DNAT --to-destination ${first.ip}:${first.port}`);
  }));
  const at = `node-001 ${key(s)}:${portLabel(s)}`;
  assert.deepEqual(only(findings), [`error endpoint-drift ${at}`, `warning service-rules ${at}`, `warning uneven-split ${at}`].sort());
  const byCheck = (c: string) => findings.find((f) => f.check === c)!;
  assert.match(byCheck('uneven-split').message, new RegExp(`endpoint ${first.ip.replace(/\./g, '\\.')}:${first.port} is listed twice \\(KUBE-SEP-\\S+, ${copy}\\)`));
  assert.match(byCheck('endpoint-drift').message, new RegExp(`endpoint ${second.ip.replace(/\./g, '\\.')}:${second.port} is ready in the EndpointSlices but missing from ${chain}`));
  assert.match(byCheck('service-rules').message, new RegExp(`still has ${displaced} for ${key(s)}.* that nothing jumps to`));
});

test('affinity-stale: affinity switched off, switched on, and a different timeout in the manifests', () => {
  const a = cluster(SEED, 60);
  const b: GenCluster = structuredClone(a);
  const pick = new Picker(b);
  const sticky = (x: GenService) => isPlain({ ...x, sessionAffinity: 'None' }) && x.sessionAffinity === 'ClientIP';
  const off = pick.pick('a ClientIP Service', sticky);
  off.sessionAffinity = 'None';
  const on = pick.pick('a plain Service', isPlain);
  on.sessionAffinity = 'ClientIP';
  const timeout = pick.pick('another ClientIP Service', sticky);
  const before = timeout.affinityTimeoutSeconds;
  timeout.affinityTimeoutSeconds = before === 600 ? 3600 : 600;
  const findings = audit(a, b);
  const at = (s: GenService) => `warning affinity-stale node-001 ${key(s)}:${portLabel(s)}`;
  assert.deepEqual(only(findings), [at(off), at(on), at(timeout)].sort());
  const msg = (s: GenService) => findings.find((f) => f.service === key(s))!.message;
  assert.match(msg(off), /pins clients to endpoints \(-m recent\), but .* has sessionAffinity None/);
  assert.match(msg(on), /has sessionAffinity ClientIP in the manifests, but KUBE-SVC-\S+ does not pin clients/);
  assert.match(msg(timeout), new RegExp(`keeps clients pinned for ${before} seconds, but .*\\.timeoutSeconds ${timeout.affinityTimeoutSeconds} in the manifests`));
});

test('black-holes: a DROP no manifest explains is an error, listing the rule that drops', () => {
  const a = cluster(SEED, 60);
  const s = new Picker(a).pick('a NodePort Service', (x) => isPlain(x) && x.type === 'NodePort');
  const np = s.ports[0].nodePort!;
  // Before kube-proxy's DNAT (mangle PREROUTING): a filter rule on the NodePort would never see it.
  const drop = `-A PREROUTING -p tcp -m tcp --dport ${np} -j DROP`;
  const findings = audit(a, a, (d) => editLines(d, (lines) => beforeCommit(lines, 'mangle', drop)));
  assert.deepEqual(only(findings), [`error black-holes node-001 ${key(s)}:${portLabel(s)}`]);
  const f = notInfo(findings)[0];
  assert.match(f.message, new RegExp(`^NodePort 192\\.168\\.0\\.10:${np} \\(DROP\\) from outside the cluster \\(client 198\\.18\\.0\\.1\\), although .* has ${s.endpoints.length} usable endpoints`));
  assert.deepEqual(f.rules.map((r) => `${r.table} ${r.chain} ${r.index} ${r.rule}`), [`mangle PREROUTING 1 ${drop}`]);
});

test('service-rules: new Services (with and without endpoints), a renamed port, a chain no Service hashes to', () => {
  const a = cluster(SEED, 60);
  const b: GenCluster = structuredClone(a);
  const pick = new Picker(b);
  const template = pick.pick('a ClusterIP Service', (x) => isPlain(x) && x.type === 'ClusterIP' && x.externalIPs.length === 0);
  const fresh: GenService = { ...structuredClone(template), name: 'fresh-api', clusterIP: '10.96.200.1' };
  const empty: GenService = { ...structuredClone(template), name: 'fresh-empty', clusterIP: '10.96.200.2', endpoints: [] };
  b.services.push(fresh, empty);
  const renamed = pick.pick('a ClusterIP Service with a named port', (x) => isPlain(x) && x.type === 'ClusterIP' && x.ports[0].name !== '');
  const oldName = renamed.ports[0].name;
  renamed.ports[0].name = 'renamed';
  const stray = 'KUBE-SVC-AAAAAAAAAAAAAAAA';
  const findings = audit(a, b, (d) => editLines(d, (lines) => {
    lines.splice(lines.indexOf(`:${svcChain(template)} - [0:0]`), 0, `:${stray} - [0:0]`);
    beforeCommit(lines, 'nat', `-A ${stray} -j KUBE-MARK-MASQ`);
  }));
  assert.deepEqual(only(findings), [
    `error service-rules node-001 ${key(fresh)}:${portLabel(fresh)}`,
    `error service-rules node-001 ${key(renamed)}:renamed`,
    `warning service-rules node-001 ${key(empty)}:${portLabel(empty)}`,
    `warning service-rules node-001 ${key(renamed)}:${oldName}`,
    'warning service-rules node-001 -',
  ].sort());
  const msg = (service: string | undefined, port?: string) => findings.find((f) => f.service === service && (port === undefined || f.port === port))!.message;
  assert.match(msg(key(fresh)), new RegExp(`has ${fresh.endpoints.length} ready endpoints in the manifests, but node node-001 has no KUBE-SVC-\\S+ rules for it`));
  assert.match(msg(key(empty)), /has no usable endpoints in the manifests, so kube-proxy would reject its traffic .* but node node-001 has no rule for it at all/);
  assert.match(msg(key(renamed), oldName), new RegExp(`has no TCP port "${oldName}" in the manifests, but node node-001 still has KUBE-SVC-\\S+`));
  assert.match(msg(undefined), new RegExp(`chain ${stray}, named like kube-proxy's chains, but no Service port .* hashes to it`));
  const strayRules = findings.find((f) => f.service === undefined)!.rules;
  assert.deepEqual(strayRules.map((r) => r.rule), [`-A ${stray} -j KUBE-MARK-MASQ`]);
});

test('endpoint-drift: traffic policies switched in the manifests, against rules written under the old ones', () => {
  const a = cluster(SEED, 60);
  const b: GenCluster = structuredClone(a);
  const pick = new Picker(b);
  // internalTrafficPolicy Local without an endpoint on the node: cluster-IP traffic should be dropped.
  const internal = pick.pick('a ClusterIP Service without endpoints on node-001', (x) => isPlain(x) && x.type === 'ClusterIP'
    && x.externalIPs.length === 0 && x.endpoints.every((e) => e.nodeName !== 'node-001'));
  internal.internalTrafficPolicy = 'Local';
  // externalTrafficPolicy Local with an endpoint on the node: external traffic should stay local (KUBE-SVL).
  const external = pick.pick('a NodePort Service with an endpoint on node-001', (x) => isPlain(x) && x.type === 'NodePort'
    && x.endpoints.some((e) => e.nodeName === 'node-001'));
  external.externalTrafficPolicy = 'Local';
  const findings = audit(a, b);
  const at = (s: GenService) => `error endpoint-drift node-001 ${key(s)}:${portLabel(s)}`;
  const local = external.endpoints.filter((e) => e.nodeName === 'node-001');
  assert.deepEqual(only(findings), [at(internal), at(external), ...local.map(() => at(external))].sort());
  const of = (s: GenService) => findings.filter((f) => f.service === key(s)).map((f) => f.message);
  assert.match(of(internal)[0], /cluster-IP traffic is sent to KUBE-SVC-\S+ \(every endpoint\), but .* has internalTrafficPolicy Local and no endpoint on this node: kube-proxy would drop it/);
  const ext = of(external);
  assert.ok(ext.some((m) => /external traffic \(KUBE-EXT\) is sent to KUBE-SVC-\S+ \(every endpoint\), but .* has externalTrafficPolicy Local: kube-proxy would send it to KUBE-SVL-\S+ \(the node's own endpoints\)/.test(m)), ext.join('\n'));
  for (const e of local) assert.ok(ext.some((m) => m.includes(`endpoint ${e.ip}:${e.port} is ready on node-001 in the EndpointSlices but missing: the node has no ${svcChain(external, 'KUBE-SVL')} chain`)), ext.join('\n'));
});

test('endpoints for a Service that had none: rules reject, manifests have endpoints', () => {
  const b = cluster(SEED, 60);
  const a: GenCluster = structuredClone(b);
  const s = new Picker(a).pick('a NodePort Service', (x) => isPlain(x) && x.type === 'NodePort');
  s.endpoints = [];
  const findings = audit(a, b);
  const at = `node-001 ${key(s)}:${portLabel(s)}`;
  // No chains at all: service-rules says so (and what the node does instead), black-holes that its NodePort rejects.
  assert.deepEqual(only(findings), [`error black-holes ${at}`, `error service-rules ${at}`]);
  assert.match(findings.find((f) => f.check === 'service-rules')!.message, /instead it rejects the Service's traffic \(.* has no endpoints\)/);
  assert.match(findings.find((f) => f.check === 'black-holes')!.message, /NodePort 192\.168\.0\.10:\d+ \(REJECT\)/);
});

test('kube-proxy\'s conformance dumps audit clean against their manifests, but for ProxyTerminatingEndpoints disabled', () => {
  // The audit models kube-proxy's default (the gate is GA since 1.28): with the gate off, kube-proxy
  // ignores serving-terminating endpoints, and the audit reports those dumps as lagging.
  const gateOff: Record<string, string[]> = {
    'endpoint-slice-with-terminating-endpoints-traffic-policy-cluster/with-proxy-terminating-endpoints-disabled-only-terminating-endpoints-exist':
      ['error black-holes', 'error service-rules'],
    'endpoint-slice-with-terminating-endpoints-traffic-policy-local/with-proxy-terminating-endpoints-disabled-only-non-local-and-terminating-endpoints-exist':
      ['error black-holes', 'error endpoint-drift', 'error endpoint-drift'],
  };
  let cases = 0;
  let infos = 0;
  for (const c of kubeProxyCases()) {
    if (c.manifests === null) continue;
    cases++;
    const { model } = readClusterModel([c.manifests]);
    const ruleset = completeKubeProxy(parseDump(c.dump));
    const findings = runAudit({ nodes: [{ name: c.flows.nodeName, addresses: nodeAddresses(c), ruleset }], model, index: ChainNameIndex.fromModel(model) });
    assert.deepEqual(notInfo(findings).map((f) => `${f.severity} ${f.check}`), gateOff[c.folder] ?? [], c.folder);
    for (const f of findings.filter((x) => x.severity === 'info')) assert.match(f.message, /\(expected\)$/, c.folder);
    infos += findings.length - notInfo(findings).length;
  }
  assert.equal(cases, 28);
  assert.ok(infos >= 6);
});

test('service-rules: a Service without endpoints on a node whose dump has no filter table is only a note', () => {
  const root = new URL('../../../examples/k3s/', import.meta.url);
  const { model } = readClusterModel([JSON.parse(readFileSync(new URL('manifests.json', root), 'utf8'))]);
  const ruleset = completeKubeProxy(parseDump(readFileSync(new URL('ip-10-32-11-62.iptables-S.txt', root), 'utf8')));
  const findings = runAudit({ nodes: [{ name: 'ip-10-32-11-62', addresses: ['10.32.11.62'], ruleset }], model, index: ChainNameIndex.fromModel(model) });
  assert.deepEqual(findings.map((f) => [f.check, f.severity, f.service]), [['service-rules', 'info', 'default/kubernetes']]);
  assert.match(findings[0].message, /filter table, which the dump of node ip-10-32-11-62 does not include/);
});
