/**
 * The reachability diff leaves unread the chains that are the same in both snapshots together
 * with everything they reach (delta.ts). These tests hold it to the exhaustive diff, which reads
 * every chain, on random edits and on edits built to defeat the shortcut: a filter rule keyed by
 * an endpoint that clean chains DNAT to, and a change to a chain every frontend passes through.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { completeKubeProxy, parseDump } from '../../../src/engine/index.ts';
import { diffSnapshots } from '../../../src/engine/diff/index.ts';
import type { Frontend } from '../../../src/engine/diff/frontends.ts';
import { listFrontends } from '../../../src/engine/diff/frontends.ts';
import { compareTraced, diffReachability, pairKey, sourceFor, tryTrace } from '../../../src/engine/diff/reachability.ts';
import { trace } from '../../../src/engine/trace/tracer.ts';
import type { DiffResult, DiffSide } from '../../../src/engine/diff/index.ts';
import type { GenCluster } from '../../support/kube-gen.ts';
import { generateCluster, renderIptablesSave, Rng } from '../../support/kube-gen.ts';

function side(c: GenCluster, edit: (dump: string) => string = (d) => d): DiffSide {
  return { nodes: [{ name: c.nodeName, addresses: c.nodeIPs, ruleset: completeKubeProxy(parseDump(edit(renderIptablesSave(c)))) }] };
}

/** Both ways, and they must agree to the last outcome. */
function diffBothWays(a: DiffSide, b: DiffSide, clusterCIDR: string): DiffResult {
  const fast = diffSnapshots(a, b, { clusterCIDR });
  const exhaustive = diffSnapshots(a, b, { clusterCIDR, exhaustive: true });
  assert.deepEqual(fast.summary, exhaustive.summary);
  assert.deepEqual(fast.frontends, exhaustive.frontends);
  return fast;
}

test('random edits: the diff that skips unchanged chains says exactly what the exhaustive one says', (t) => {
  for (const seed of [11, 12, 13, 14, 15, 16]) {
    const a = generateCluster({ seed, services: 80, nodePortShare: 0.3 });
    const b = structuredClone(a);
    const rng = new Rng(seed);
    const rnd = () => rng.next();
    const pickIndex = () => Math.floor(rnd() * b.services.length);
    const edits: string[] = [];
    for (let k = 0; k < 8; k++) {
      const s = b.services[pickIndex()];
      const what = Math.floor(rnd() * 5);
      if (what === 0 && s.endpoints.length > 0) {
        s.endpoints.pop();
        edits.push(`endpoint removed from ${s.name}`);
      } else if (what === 1 && s.endpoints.length > 0) {
        s.endpoints.push({ ...s.endpoints[0], ip: `10.244.3.${100 + k}`, podName: `${s.name}-extra-${k}` });
        edits.push(`endpoint added to ${s.name}`);
      } else if (what === 2) {
        b.services.splice(b.services.indexOf(s), 1);
        edits.push(`${s.name} deleted`);
      } else if (what === 3 && s.ports.length > 0) {
        s.externalTrafficPolicy = s.externalTrafficPolicy === 'Local' ? 'Cluster' : 'Local';
        edits.push(`${s.name} traffic policy flipped`);
      } else if (s.ports.length > 0) {
        s.ports[0].targetPort += 1;
        for (const e of s.endpoints) e.port += 1;
        edits.push(`${s.name} target port changed`);
      }
    }
    const d = diffBothWays(side(a), side(b), a.clusterCIDR);
    t.diagnostic(`seed ${seed}: ${edits.join(', ')} → ${JSON.stringify(d.summary.frontends)}`);
    assert.ok(d.summary.frontends.changed + d.summary.frontends.removed > 0, `seed ${seed}: the edits change something`);
  }
});

test('a filter rule keyed by an endpoint that unchanged chains DNAT to is seen', () => {
  const a = generateCluster({ seed: 21, services: 60 });
  // A Service whose first endpoint is a pod on another node: its traffic crosses filter FORWARD.
  const svc = a.services.find((s) => s.type === 'ClusterIP' && s.clusterIP !== 'None' && s.endpoints.length >= 2 && s.ports.length === 1
    && s.sessionAffinity === 'None' && !a.nodeIPs.includes(s.endpoints[0].ip) && s.endpoints[0].nodeName !== a.nodeName)!;
  const ep = svc.endpoints[0];
  const drop = `-A FORWARD -d ${ep.ip}/32 -p ${svc.ports[0].protocol.toLowerCase()} -m ${svc.ports[0].protocol.toLowerCase()} --dport ${ep.port} -j DROP`;
  const insert = (dump: string) => {
    const lines = dump.split('\n');
    lines.splice(lines.findIndex((l) => l.startsWith('-A FORWARD ')), 0, drop);
    return lines.join('\n');
  };
  const d = diffBothWays(side(a), side(a, insert), a.clusterCIDR);
  const changed = d.frontends.filter((f) => f.service === `${svc.namespace}/${svc.name}`);
  assert.ok(changed.length >= 1, 'the Service whose endpoint is now dropped is reported');
  for (const f of changed) {
    assert.ok(f.changes.includes(`endpoint ${ep.ip}:${ep.port} removed`), f.changes.join('; '));
    assert.ok(f.after.some((o) => o.verdict === 'DROP'));
  }
  // Only frontends that can reach that endpoint changed.
  for (const f of d.frontends) assert.ok(f.before.some((o) => o.destination?.ip === ep.ip), `${f.service} ${f.frontend.ip}`);
  assert.deepEqual(d.rules.map((r) => [r.change, r.rule]), [['rule-added', drop]]);
});

test('a change every frontend passes through (KUBE-MARK-MASQ) reaches every frontend it affects', () => {
  const a = generateCluster({ seed: 22, services: 40, nodePortShare: 0.3 });
  const remark = (dump: string) => dump.replace('-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000', '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x8000/0x8000');
  const b = side(a, remark);
  const d = diffBothWays(side(a), b, a.clusterCIDR);
  assert.ok(d.summary.masqueradeChanges > 10, JSON.stringify(d.summary));
  assert.ok(d.frontends.every((f) => f.changes.some((c) => c.startsWith('masquerade for '))));
  assert.equal(d.summary.rules.rulesAdded, 1);
});

test('a snapshot against a separately parsed copy of itself: nothing read beyond the comparison, nothing reported', () => {
  const a = generateCluster({ seed: 23, services: 40 });
  const d = diffBothWays(side(a), side(a), a.clusterCIDR);
  assert.deepEqual(d.frontends, []);
  assert.deepEqual(d.rules, []);
});

test('a rewrite in a chain that is the same on both sides but reaches a changed one is still followed', () => {
  const a = generateCluster({ seed: 24, services: 30, nodePortShare: 0.5 });
  const hook = (mark: string, filter: boolean) => (dump: string) => {
    const lines = dump.split('\n');
    // nat: every packet from outside goes through CUSTOM first, which sends it to 10.244.9.9:80.
    // CUSTOM is the same text on both sides but reaches CHANGED (only for udp port 5, so nothing
    // else about the other frontends differs), whose mark differs between A and B.
    const nat = lines.indexOf('*nat');
    lines.splice(nat + 1, 0, ':CUSTOM - [0:0]', ':CHANGED - [0:0]');
    const pre = lines.findIndex((l, i) => i > nat && l.startsWith('-A PREROUTING '));
    lines.splice(pre, 0,
      '-A PREROUTING -j CUSTOM',
      '-A CUSTOM -p udp -m udp --dport 5 -j CHANGED',
      '-A CUSTOM -s 198.18.0.0/15 -p tcp -j DNAT --to-destination 10.244.9.9:80',
      `-A CHANGED -j MARK --set-xmark ${mark}/0xff`);
    if (filter) {
      // B drops what reaches 10.244.9.9:80 on the way through.
      lines.splice(lines.findIndex((l) => l.startsWith('-A FORWARD ')), 0, '-A FORWARD -d 10.244.9.9/32 -p tcp -m tcp --dport 80 -j DROP');
    }
    return lines.join('\n');
  };
  const d = diffBothWays(side(a, hook('0x1', false)), side(a, hook('0x2', true)), a.clusterCIDR);
  const external = d.frontends.filter((f) => f.frontend.kind === 'NodePort' && f.frontend.protocol === 'tcp');
  assert.ok(external.length > 0, JSON.stringify(d.summary));
  for (const f of external) assert.ok(f.after.every((o) => o.verdict === 'DROP'), `${f.frontend.ip}:${f.frontend.port} ${f.changes.join('; ')}`);
});

test('a jump written with a tab or two spaces is followed like any other', () => {
  const a = generateCluster({ seed: 24, services: 20 });
  for (const jump of ['-p tcp\t-j CUSTOM', '-p tcp -j  CUSTOM']) {
    const hook = (custom: string) => (dump: string) => {
      const lines = dump.split('\n');
      const nat = lines.indexOf('*nat');
      lines.splice(nat + 1, 0, ':CUSTOM - [0:0]');
      lines.splice(lines.findIndex((l, i) => i > nat && l.startsWith('-A PREROUTING ')), 0, `-A PREROUTING ${jump}`, `-A CUSTOM ${custom}`);
      return lines.join('\n');
    };
    // CUSTOM returns in A and accepts every tcp packet in B: no tcp frontend is translated any more.
    const d = diffBothWays(side(a, hook('-j RETURN')), side(a, hook('-p tcp -j ACCEPT')), a.clusterCIDR);
    assert.ok(d.summary.frontends.changed > 10, `${JSON.stringify(jump)}: ${JSON.stringify(d.summary.frontends)}`);
  }
});

test('a loop in rules both snapshots share is no change, with or without the shortcut', () => {
  const a = generateCluster({ seed: 31, services: 20 });
  const b = structuredClone(a);
  const changed = b.services.find((s) => s.endpoints.length >= 2 && s.clusterIP !== 'None' && s.name !== 'kubernetes')!;
  changed.endpoints.pop();
  const loop = (dump: string) => {
    const line = dump.split('\n').find((l) => l.startsWith('-A KUBE-SERVICES -d ') && !l.includes(`${changed.namespace}/${changed.name}`) && l.includes('-j KUBE-SVC-'))!;
    const svc = line.slice(line.indexOf(' -j ') + 4).trim();
    return dump.replace(`:${svc} - [0:0]`, `:${svc} - [0:0]\n:LOOP1 - [0:0]\n:LOOP2 - [0:0]`)
      .replace(`-A ${svc} `, `-A ${svc} -j LOOP1\n-A LOOP1 -j LOOP2\n-A LOOP2 -j LOOP1\n-A ${svc} `);
  };
  const d = diffBothWays(side(a, loop), side(b, loop), a.clusterCIDR);
  assert.deepEqual([...new Set(d.frontends.map((f) => f.service))], [`${changed.namespace}/${changed.name}`]);
});

test('NodePorts on the node address: a frontend is traced only when its own rules differ, and the diff equals tracing every frontend', () => {
  const render = { nodePortAddresses: ['192.168.0.0/16'] };
  const a = generateCluster({ seed: 31, services: 120, nodePortShare: 0.6 });
  const b = structuredClone(a);
  // Two Services change; every other NodePort's rules stay as they were, but KUBE-NODEPORTS (the
  // chain every NodePort packet walks) differs.
  const edited = b.services.filter((s) => s.type === 'NodePort' && s.endpoints.length >= 2).slice(0, 2);
  assert.equal(edited.length, 2);
  edited[0].endpoints.pop();
  edited[1].ports[0].nodePort = 32_767;
  // And one NodePort rule is rewritten to drop what it used to send on.
  const victim = b.services.find((s) => s.type === 'NodePort' && !edited.includes(s) && s.ports[0].nodePort !== undefined)!;
  const drop = (dump: string) => dump.replace(
    new RegExp(`^(-A KUBE-NODEPORTS .*--dport ${victim.ports[0].nodePort}) -j \\S+$`, 'm'), '$1 -j DROP');
  const parse = (c: GenCluster, edit: (d: string) => string = (d) => d) =>
    ({ name: c.nodeName, addresses: c.nodeIPs, ruleset: completeKubeProxy(parseDump(edit(renderIptablesSave(c, render)))) });
  const pair = { name: a.nodeName, a: parse(a), b: parse(b, drop) };
  assert.notEqual(renderIptablesSave(b, render), drop(renderIptablesSave(b, render)), 'the drop edit applies');

  const d = diffReachability([pair], { clusterCIDR: a.clusterCIDR });
  // The oracle: every frontend present on both sides traced in both, and compared.
  const fa = listFrontends(pair.a.ruleset, pair.a.addresses);
  const fb = new Map(listFrontends(pair.b.ruleset, pair.b.addresses).map((f) => [pairKey(f), f]));
  const run = (n: typeof pair.a, f: Frontend) => tryTrace(() => trace(n.ruleset, {
    node: { name: n.name, addresses: n.addresses },
    packet: { source: sourceFor(f.kind, 'ipv4', { clusterCIDR: a.clusterCIDR }), destination: f.ip, port: f.port, protocol: f.protocol },
  }));
  const expected: string[] = [];
  for (const f of fa) {
    const g = fb.get(pairKey(f));
    if (g && compareTraced(run(pair.a, f), run(pair.b, g)).changes.length > 0) expected.push(`${g.ip}:${g.port}/${g.protocol}`);
  }
  const changed = d.frontends.filter((f) => f.change === 'changed').map((f) => `${f.frontend.ip}:${f.frontend.port}/${f.frontend.protocol}`);
  assert.deepEqual(changed.sort(), expected.sort());
  assert.ok(changed.includes(`${a.nodeIPs[0]}:${victim.ports[0].nodePort}/${victim.ports[0].protocol.toLowerCase()}`), changed.join(' '));
  const nodePorts = fa.filter((f) => f.kind === 'NodePort').length;
  assert.ok(nodePorts > 40, `${nodePorts} NodePorts`);
  assert.ok(d.counts.traced <= 12, `traced ${d.counts.traced} of ${fa.length} frontends (${nodePorts} NodePorts)`);
});
