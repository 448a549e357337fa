import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { main } from '../../src/cli/main.ts';
import { FIXTURES } from '../helpers.ts';

async function run(argv: string[]) {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

const nodeport = join(FIXTURES, 'k3s-blog', 'nodeport.iptables-S.txt');

test('svcpath trace prints a table of endpoints with shares and the rule path', async () => {
  const r = await run(['trace', '--rules', nodeport, '--node-ip', '10.32.11.62', '10.32.11.62:30080']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /SHARE\s+VERDICT\s+DESTINATION\s+MASQUERADE\s+DELIVERY/);
  for (const ip of ['10.42.0.69', '10.42.0.70', '10.42.1.65', '10.42.1.66']) {
    assert.match(r.out, new RegExp(`25\\.000%\\s+DNAT\\s+${ip.replace(/\./g, '\\.')}:8080\\s+yes\\s+forward`));
  }
  assert.match(r.out, /nat\/KUBE-NODEPORTS #1\s+jump/);
  assert.match(r.out, /Assumed \(not in the dump\):/);
});

test('svcpath trace --json prints the API answer', async () => {
  const r = await run(['trace', '--rules', nodeport, '--node-ip', '10.32.11.62', '--from', '10.42.0.9', '10.43.250.102:80', '--json']);
  assert.equal(r.code, 0, r.err);
  const body = JSON.parse(r.out);
  assert.equal(body.outcomes.length, 4);
  assert.ok(body.outcomes.every((o: { masquerade: boolean }) => !o.masquerade));
});

test('svcpath reports bad input with the offending line and exits non-zero', async () => {
  const bad = join(FIXTURES, 'malformed', 'cut-inside.iptables-save.txt');
  const r = await run(['trace', '--rules', bad, '--node-ip', '10.0.0.1', '10.96.0.1:80']);
  assert.equal(r.code, 1);
  assert.match(r.err, /-j needs a target \(line 30, column 52\)/);
  assert.match(r.err, /\^/);
  const usage = await run(['trace', '--rules', bad]);
  assert.equal(usage.code, 2);
  assert.match(usage.err, /usage:/);
});

test('svcpath trace --manifests names the Service and each endpoint pod with its node', async () => {
  const rules = join(FIXTURES, '..', '..', 'examples', 'k3s', 'ip-10-32-11-62.iptables-S.txt');
  const manifests = join(FIXTURES, '..', '..', 'examples', 'k3s', 'manifests.json');
  const r = await run(['trace', '--rules', rules, '--manifests', manifests, '--node-ip', '10.32.11.62', '--from', '10.32.11.62', '10.43.62.130:80']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /10\.42\.1\.42:8080\s+yes\s+output\s+default\/service-test\s+service-test-cd79b78bd-bkr52 \(ip-10-32-7-224\.ap-northeast-2\.compute\.internal\)/);
  assert.match(r.out, /masquerade: source outside the cluster CIDR 10\.42\.0\.0\/16/);
});

test('svcpath trace --service traces every frontend of the Service port on this node', async () => {
  const rules = join(FIXTURES, '..', '..', 'examples', 'k3s', 'ip-10-32-11-62.iptables-S.txt');
  const manifests = join(FIXTURES, '..', '..', 'examples', 'k3s', 'manifests.json');
  const r = await run(['trace', '--rules', rules, '--manifests', manifests, '--node-ip', '10.32.11.62', '--service', 'default/service-test-nodeport', '--port', '80', '--json']);
  assert.equal(r.code, 0, r.err);
  const results = JSON.parse(r.out) as { frontend: string; outcomes: unknown[] }[];
  assert.deepEqual(results.map((x) => x.frontend), [
    'default/service-test-nodeport port 80 via ClusterIP 10.43.250.102:80',
    'default/service-test-nodeport port 80 via NodePort 10.32.11.62:30080',
  ]);
  assert.ok(results.every((x) => x.outcomes.length === 4));
});

test('svcpath trace --routes decides the output interface; without it the shares are per labelled case', async () => {
  const rules = join(FIXTURES, 'realworld', 'kubernetes-mesos-788-1.iptables-save.txt');
  const routes = join(FIXTURES, 'routes', 'docker-host', 'ip-route.txt');
  const split = await run(['trace', '--rules', rules, '--node-ip', '10.0.0.5', '--from', '172.17.0.26', '93.184.216.34:443']);
  assert.equal(split.code, 0, split.err);
  assert.match(split.out, /CASE/);
  assert.match(split.out, /100%\s+ACCEPT\s+93\.184\.216\.34:443\s+yes\s+forward\s.*if the packet to 93\.184\.216\.34 does not leave through docker0/);
  assert.match(split.out, /Outcome 1: ACCEPT 93\.184\.216\.34:443 \(100%, exactly 1 if the packet to 93\.184\.216\.34 leaves through docker0\)/);
  const routed = await run(['trace', '--rules', rules, '--node-ip', '10.0.0.5', '--from', '172.17.0.26', '--routes', routes, '93.184.216.34:443']);
  assert.equal(routed.code, 0, routed.err);
  assert.doesNotMatch(routed.out, /CASE/);
  assert.match(routed.out, /100%\s+ACCEPT\s+93\.184\.216\.34:443\s+yes\s+forward via eth0/);
});

test('svcpath trace takes the port apart from the destination and the protocol in any case', async () => {
  const joined = await run(['trace', '--rules', nodeport, '--node-ip', '10.32.11.62', '--from', '10.42.0.9', '10.43.250.102:80', '--json']);
  const apart = await run(['trace', '--rules', nodeport, '--node-ip', '10.32.11.62', '--from', '10.42.0.9', '10.43.250.102', '--port', '80', '--protocol', 'TCP', '--json']);
  assert.equal(apart.code, 0, apart.err);
  assert.deepEqual(JSON.parse(apart.out), JSON.parse(joined.out));
  const clash = await run(['trace', '--rules', nodeport, '--node-ip', '10.32.11.62', '10.43.250.102:80', '--port', '443']);
  assert.notEqual(clash.code, 0);
  assert.match(clash.err, /names port 80 but port 443 was given/);
});

test('--help and -h on every command print its usage and exit 0; --version prints the version', async () => {
  for (const command of ['trace', 'diff', 'audit', 'push', 'token', 'prune']) {
    for (const flag of ['--help', '-h']) {
      const r = await run([command, flag]);
      assert.equal(r.code, 0, `${command} ${flag}: ${r.err}`);
      assert.match(r.out, new RegExp(`svcpath ${command}`), `${command} ${flag}`);
      assert.match(r.out, /exit codes:/);
      for (const other of ['trace', 'diff', 'audit', 'push', 'prune'].filter((c) => c !== command)) {
        assert.doesNotMatch(r.out, new RegExp(`^\\s*svcpath ${other} `, 'm'), `${command} ${flag} shows ${other}`);
      }
    }
  }
  const all = await run(['--help']);
  assert.equal(all.code, 0);
  assert.match(all.out, /svcpath trace/);
  const version = await run(['--version']);
  assert.equal(version.code, 0);
  assert.match(version.out, /^svcpath \d+\.\d+\.\d+\n$/);
  const unknown = await run(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /unknown command 'frobnicate'/);
});

test('svcpath diff exits as diff(1) does: 0 no change, 1 changes, 2 an error', async () => {
  const clusterip = join(FIXTURES, 'k3s-blog', 'clusterip.iptables-S.txt');
  assert.equal((await run(['diff', nodeport, nodeport])).code, 0);
  assert.equal((await run(['diff', nodeport, nodeport, '--json'])).code, 0);
  const changed = await run(['diff', clusterip, nodeport]);
  assert.equal(changed.code, 1, changed.err);
  assert.match(changed.out, /frontends: /);
  assert.equal((await run(['diff', clusterip, nodeport, '--json'])).code, 1);
  const bad = await run(['diff', join(FIXTURES, 'malformed', 'cut-inside.iptables-save.txt'), nodeport]);
  assert.equal(bad.code, 2);
  assert.equal((await run(['diff', '/nonexistent/a', nodeport])).code, 2);
});

test('svcpath trace of a dual-stack node: IPv6 through --rules6, printed as [ip]:port; a Service traced in both families', async () => {
  const v4 = join(FIXTURES, 'dual-stack', 'node-a.iptables-save.txt');
  const v6 = join(FIXTURES, 'dual-stack', 'node-a.ip6tables-save.txt');
  const manifests = join(FIXTURES, 'dual-stack', 'manifests.json');
  const ips = ['--node-ip', '192.168.1.10', '--node-ip', 'fd00:192:168:1::10'];
  const six = await run(['trace', '--rules', v4, '--rules6', v6, ...ips, '[fd00:10:96::10]:80']);
  assert.equal(six.code, 0, six.err);
  assert.match(six.out, /^tcp 2001:db8::10 -> \[fd00:10:96::10\]:80 on the node/);
  assert.match(six.out, /50\.000%\s+DNAT\s+\[fd00:10:244:1::5\]:8080\s+yes/);
  assert.match(six.out, /Outcome 2: DNAT \[fd00:10:244:2::6\]:8080 \(50\.000%, exactly 1\/2\)/);
  assert.doesNotMatch(six.out, /fd00:10:244:1::5:8080|fd00:10:96::10:80/, 'no IPv6 address without brackets before a port');
  const both = await run(['trace', '--rules', v4, '--rules6', v6, ...ips, '--manifests', manifests, '--service', 'default/web', '--port', 'http']);
  assert.equal(both.code, 0, both.err);
  const labels = [...both.out.matchAll(/^== (.*)$/gm)].map((m) => m[1]);
  assert.deepEqual(labels, [
    'default/web port http via ClusterIP 10.96.0.10:80',
    'default/web port http via ClusterIP [fd00:10:96::10]:80',
    'default/web port http via NodePort 192.168.1.10:30080',
    'default/web port http via NodePort [fd00:192:168:1::10]:30080',
  ]);
  // Without the IPv6 dump, the IPv6 frontends are said and left out.
  const v4only = await run(['trace', '--rules', v4, ...ips, '--manifests', manifests, '--service', 'default/web', '--port', 'http']);
  assert.equal(v4only.code, 0, v4only.err);
  assert.equal([...v4only.out.matchAll(/^== /gm)].length, 2);
  assert.match(v4only.err, /ClusterIP \[fd00:10:96::10\]:80: not traced, the node's dump is not IPv6 \(give its ip6tables-save output as --rules6 FILE\)/);
});
