/** `svcpath trace` and `svcpath diff` with nftables rulesets. */
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

const overall = join(FIXTURES, 'nftables-trace', 'overall', 'input.nft');

test('svcpath trace reads an nftables ruleset: endpoints with shares, Service, masquerade reason and rule path', async () => {
  const r = await run(['trace', '--rules', overall, '--node-ip', '192.168.0.2', '--from', '192.168.1.5', '172.30.0.44:80']);
  assert.equal(r.code, 0, r.err);
  for (const ip of ['10.180.0.4', '10.180.0.5']) {
    assert.match(r.out, new RegExp(`50\\.000%\\s+DNAT\\s+${ip.replace(/\./g, '\\.')}:80\\s+yes\\s+forward\\s+ns4/svc4`));
  }
  assert.match(r.out, /ip kube-proxy\/services #1\s+vmap: 172\.30\.0\.44 \. tcp \. 80 → goto service-LAUZTJTB-ns4\/svc4\/tcp\/p80/);
  assert.match(r.out, /masquerade: source outside the cluster CIDR 10\.0\.0\.0\/8/);
});

test('svcpath trace --json --format nftables gives the API answer', async () => {
  const r = await run(['trace', '--rules', overall, '--format', 'nftables', '--node-ip', '192.168.0.2', '--from', '10.0.0.2', '172.30.0.46:80', '--json']);
  assert.equal(r.code, 0, r.err);
  const body = JSON.parse(r.out);
  assert.equal(body.backend, 'nftables');
  assert.deepEqual(body.outcomes.map((o: { verdict: string }) => o.verdict), ['REJECT']);
});

test('svcpath diff of an nftables ruleset with itself: every frontend unchanged, no rule changes', async () => {
  const r = await run(['diff', overall, overall, '--node-ip', '192.168.0.2']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^frontends: 0 added, 0 removed, 0 changed, \d+ unchanged\n/);
  assert.match(r.out, /\nrules: 0 chains added, 0 removed, 0 renamed; 0 rules added, 0 removed, 0 moved\n/);
  assert.doesNotMatch(r.out, /backends:|KNOWN/);
});
