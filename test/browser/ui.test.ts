/**
 * The web page at /ui/ in Debian's chromium (playwright-core), with every request that leaves the
 * server blocked, against a real server on a throwaway database holding the k3s example and two
 * versions of a generated three-node cluster (the second after a deploy that changed five
 * Services, with node-003's rules left at the first version, so nodes disagree and the audit finds
 * it). Each view is driven through its labelled controls, checked, reloaded from its URL and
 * checked again, and photographed light and dark into test-output/ui/. Without /usr/bin/chromium
 * the tests are skipped, loudly; in CI a missing browser is a failure.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { CHROMIUM, launch, offlinePage as offline, present, sayIfAbsent } from './chromium.ts';
import type { OfflinePage } from './chromium.ts';
import { buildUi } from '../../scripts/build-ui.ts';
import { createAuthApp } from '../api/auth-helpers.ts';
import type { AuthApp } from '../api/auth-helpers.ts';
import { editFiveServices, generateCluster, renderFleet, renderManifests } from '../support/kube-gen.ts';
import type { GenCluster } from '../support/kube-gen.ts';

sayIfAbsent('the web page at /ui/');
const skip = present ? false : 'skipped: no chromium';
export const SCREENSHOTS = join(import.meta.dirname, '..', '..', 'test-output', 'ui');

const k3s = (await import('../../examples/k3s/snapshot.json', { with: { type: 'json' } })).default as { manifests: string };
/** The k3s example's pods by IP, from its manifests. */
const podByIp = new Map(
  (JSON.parse(k3s.manifests).items as Array<{ kind: string; metadata: { name: string }; status?: { podIP?: string } }>)
    .filter((i) => i.kind === 'Pod' && i.status?.podIP)
    .map((i) => [i.status!.podIP!, i.metadata.name]),
);
const K3S_ENDPOINTS = ['10.42.0.43', '10.42.0.44', '10.42.1.41', '10.42.1.42'];

const v1 = generateCluster({ seed: 7, services: 24, nodes: 3 });
const edit = editFiveServices(v1);

let t: AuthApp;
let base: string;
let browser: Browser | undefined;

async function upload(cluster: string, body: object): Promise<void> {
  const res = await t.app.inject({ method: 'POST', url: `/v1/clusters/${cluster}/snapshots`, headers: { host: 'localhost' }, payload: body });
  assert.equal(res.statusCode, 201, res.body);
}

const fleet = (c: GenCluster) => renderFleet(c).map((n) => ({ name: n.name, addresses: n.addresses, rules: n.dump }));

before(async () => {
  if (!present) return;
  await buildUi();
  await mkdir(SCREENSHOTS, { recursive: true });
  t = await createAuthApp({ mode: 'auto', loopback: true });
  await upload('k3s-blog', k3s);
  await upload('gen', { nodes: fleet(v1), manifests: renderManifests(v1), labels: { 'ci.job': '101', 'git.sha': 'a1b2c3d' } });
  // node-003's kube-proxy has not synced the deploy: its rules are still the first version's.
  const second = fleet(edit.cluster);
  second[2] = fleet(v1)[2];
  await upload('gen', { nodes: second, manifests: renderManifests(edit.cluster), labels: { 'ci.job': '102', 'git.sha': 'e4f5a6b' } });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await t?.close();
});

async function offlinePage(): Promise<OfflinePage> {
  const o = await offline(browser!, base, { viewport: { width: 1440, height: 900 } });
  o.page.setDefaultTimeout(30_000);
  return o;
}

function clean({ blocked, errors }: OfflinePage): void {
  assert.deepEqual(blocked, [], 'requests that left the server');
  assert.deepEqual(errors, [], 'console errors');
}

/** The view in light and in dark. */
async function photograph(page: Page, name: string, fullPage = true): Promise<void> {
  for (const colorScheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme });
    await page.screenshot({ path: join(SCREENSHOTS, `${name}-${colorScheme}.png`), fullPage });
  }
  await page.emulateMedia({ colorScheme: null });
}

/** Checks the view, photographs it, then reloads it and checks it again: the URL alone reproduces it. */
async function holds(page: Page, name: string, check: () => Promise<void>): Promise<void> {
  await check();
  await photograph(page, name);
  const url = page.url();
  await page.reload();
  assert.equal(page.url(), url);
  await check();
}

const rowText = async (page: Page, table: string) => (await page.locator(`[data-testid="${table}"] tbody tr`).allInnerTexts()).map((r) => r.replace(/\s+/g, ' ').trim());

test('in CI chromium is there (.ci/run installs it): a missing browser fails rather than skips', () => {
  if (!present && process.env.CI === 'true') assert.fail(`no chromium at ${CHROMIUM} in CI`);
});

test('/ redirects to /ui/, which lists the clusters; a cluster lists its snapshots with labels and what changed', { skip, timeout: 120_000 }, async () => {
  const o = await offlinePage();
  const { page } = o;
  await page.goto(`${base}/`);
  assert.equal(new URL(page.url()).pathname, '/ui/');
  const checkClusters = async () => {
    await page.locator('[data-testid="clusters"] tbody tr').nth(1).waitFor();
    const rows = await rowText(page, 'clusters');
    assert.equal(rows.length, 2);
    assert.match(rows.find((r) => r.startsWith('gen'))!, /^gen v2 3 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC 2 /);
    assert.match(rows.find((r) => r.startsWith('k3s-blog'))!, /^k3s-blog v1 1 20\d\d-/);
  };
  await holds(page, 'clusters', checkClusters);

  await page.getByRole('link', { name: 'gen', exact: true }).click();
  await page.waitForURL(`${base}/ui/clusters/gen`);
  const checkSnapshots = async () => {
    const v2 = page.locator('[data-testid="snapshots"] tbody tr').first();
    await v2.getByText(/frontends: \d+ changed/).waitFor();
    const rows = await rowText(page, 'snapshots');
    assert.equal(rows.length, 2);
    assert.match(rows[0], /^v2 .* 3 ci\.job=102 git\.sha=e4f5a6b frontends: \d+ changed.* · rules \+\d+ −\d+ · objects: 5/);
    assert.match(rows[1], /^v1 .* 3 ci\.job=101 git\.sha=a1b2c3d first version/);
  };
  await holds(page, 'snapshots', checkSnapshots);
  clean(o);
});

test('a cluster\'s snapshots are paginated, newest first, and each page is its URL', { skip, timeout: 120_000 }, async () => {
  // 22 versions of a one-rule node, alternating between two contents (each a new version).
  for (let i = 1; i <= 22; i++) {
    const rules = `*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d 10.0.0.${i % 2}/32 -j ACCEPT\nCOMMIT\n`;
    await upload('paged', { nodes: [{ name: 'n1', addresses: ['10.1.0.1'], rules }], labels: { step: String(i) } });
  }
  const o = await offlinePage();
  const { page } = o;
  const versions = async () => (await rowText(page, 'snapshots')).map((r) => r.split(' ')[0]);
  await page.goto(`${base}/ui/clusters/paged`);
  await page.locator('[data-testid="snapshots"] tbody tr').nth(19).waitFor();
  assert.deepEqual(await versions(), Array.from({ length: 20 }, (_, i) => `v${22 - i}`));
  await page.getByRole('link', { name: 'Older snapshots' }).click();
  await page.waitForURL(/\/ui\/clusters\/paged\?after=/);
  const older = async () => {
    await page.getByRole('link', { name: 'Newest' }).waitFor();
    await page.locator('[data-testid="snapshots"] tbody tr').nth(1).waitFor();
    assert.deepEqual(await versions(), ['v2', 'v1']);
    assert.equal(await page.getByRole('link', { name: 'Older snapshots' }).count(), 0);
  };
  await older();
  await page.reload();
  await older();
  clean(o);
});

test('trace: the form filled through its labels draws four 25% branches to the k3s pods; a branch opens its rule path', { skip, timeout: 120_000 }, async () => {
  const o = await offlinePage();
  const { page } = o;
  await page.goto(`${base}/ui/trace`);
  await page.getByLabel('Cluster', { exact: true }).selectOption('k3s-blog');
  await page.getByLabel('Destination', { exact: true }).fill('10.43.62.130');
  await page.getByLabel('Port', { exact: true }).fill('80');
  assert.equal(await page.getByLabel('Protocol', { exact: true }).inputValue(), 'tcp');
  await page.getByLabel('Source', { exact: true }).fill('10.42.0.7');
  assert.equal(await page.getByLabel('Node', { exact: true }).inputValue(), '', 'all nodes');
  assert.equal(await page.getByLabel('Service', { exact: true }).inputValue(), '');
  assert.equal(await page.getByLabel('Service port', { exact: true }).inputValue(), '');
  await page.getByRole('button', { name: 'Trace', exact: true }).click();

  const branches = page.locator('[data-branch]');
  const checkBranches = async () => {
    await branches.nth(3).waitFor();
    assert.equal(await branches.count(), 4);
    const texts = await branches.allTextContents();
    for (const ip of K3S_ENDPOINTS) {
      const text = texts.find((x) => x.includes(`${ip}:8080`));
      assert.ok(text, `a branch to ${ip}:8080 in ${JSON.stringify(texts)}`);
      assert.ok(text.includes(podByIp.get(ip)!), `${ip}'s pod ${podByIp.get(ip)} named`);
      assert.ok(text.includes('25%'), `${ip}: 25% in ${text}`);
    }
    assert.deepEqual((await page.locator('[data-branch] [data-share]').allTextContents()).sort(), ['25%', '25%', '25%', '25%']);
  };
  await checkBranches();
  const url = new URL(page.url());
  assert.equal(url.pathname, '/ui/trace');
  assert.deepEqual(Object.fromEntries(url.searchParams), { snapshot: 'k3s-blog@latest', destination: '10.43.62.130', port: '80', source: '10.42.0.7' });
  // The exact share on hover (an SVG <title>).
  const toSecond = branches.filter({ hasText: '10.42.0.44:8080' });
  assert.equal(await toSecond.locator('title').textContent(), '25%: exactly 2147483649/8589934592');

  await toSecond.click();
  const path = page.getByTestId('rule-path');
  const checkPath = async () => {
    await path.waitFor();
    const text = await path.innerText();
    assert.match(text, /Rule path of branch \d: DNAT 10\.42\.0\.44:8080 \(25%, exactly 2147483649\/8589934592\)/);
    assert.match(text, /KUBE-SVC-GBTMB5ZTD56ECL5F\s+3\s+jump\s+-A KUBE-SVC-GBTMB5ZTD56ECL5F .*--probability 0\.33333333349 -j KUBE-SEP-54OS7XC6LLUCYZJF/);
    assert.match(text, /assumed: chain KUBE-SEP-54OS7XC6LLUCYZJF is not shown/);
    // The lines `svcpath trace` prints for this outcome.
    assert.match(text, /nat\/KUBE-SERVICES #1\s+jump\s+-A KUBE-SERVICES -d 10\.43\.62\.130\/32/);
    assert.match(text, /note: the endpoint comes from a rule comment: KUBE-SEP-54OS7XC6LLUCYZJF is not in the dump/);
  };
  await holds(page, 'trace', async () => {
    await checkBranches();
    await checkPath();
    assert.match(page.url(), /[?&]branch=\d/);
  });

  // Keyboard: a branch is focusable and Enter opens its path.
  const toFirst = branches.filter({ hasText: '10.42.0.43:8080' });
  await toFirst.focus();
  await page.keyboard.press('Enter');
  await path.getByText(/DNAT 10\.42\.0\.43:8080 \(25%, exactly 1\/4\)/).waitFor();
  clean(o);
});

test('trace of a Service on all nodes: the node whose rules lag is highlighted, one column per node', { skip, timeout: 120_000 }, async () => {
  const o = await offlinePage();
  const { page } = o;
  const [service] = edit.changed;
  const svc = edit.cluster.services.find((s) => `${s.namespace}/${s.name}` === service)!;
  await page.goto(`${base}/ui/trace`);
  await page.getByLabel('Cluster', { exact: true }).selectOption('gen');
  await page.getByLabel('Service', { exact: true }).fill(service);
  await page.getByLabel('Service port', { exact: true }).fill(String(svc.ports[0].port));
  await page.getByRole('button', { name: 'Trace', exact: true }).click();
  const check = async () => {
    const nodes = page.getByRole('group', { name: 'Shown on' });
    await nodes.getByRole('button').nth(2).waitFor();
    assert.deepEqual(await nodes.locator('button.differs').allTextContents(), ['node-003']);
    await page.getByText('Nodes disagree: node-003 does not send this packet where the other nodes do.').waitFor();
    const head = await page.locator('table.compare thead th').allTextContents();
    assert.deepEqual(head, ['Outcome', 'node-001', 'node-002', 'node-003 ≠']);
    assert.ok(await page.locator('[data-branch]').count() >= 1);
  };
  await holds(page, 'trace-nodes', check);
  clean(o);
});

test('diff: by default the latest version against the one before; changed frontends with before and after shares, rule and manifest changes', { skip, timeout: 120_000 }, async () => {
  const o = await offlinePage();
  const { page } = o;
  await page.goto(`${base}/ui/clusters/gen`);
  await page.locator('[data-testid="snapshots"] tbody tr').first().getByRole('link', { name: 'Diff' }).click();
  const check = async () => {
    await page.getByTestId('frontend-changes').waitFor();
    // The pickers are filled once the cluster's snapshot list arrives, which may be after the diff.
    const version = async (group: string): Promise<string> => {
      const input = page.getByRole('group', { name: group }).getByLabel('Version');
      for (let tries = 0; tries < 100 && (await input.inputValue()) === ''; tries++) await page.waitForTimeout(50);
      return input.inputValue();
    };
    assert.equal(await version('From'), '1');
    assert.equal(await version('To'), '2');
    const rows = await rowText(page, 'frontend-changes');
    // The Service scaled down by one endpoint changed on the two nodes that synced, not on node-003.
    const scaled = rows.filter((r) => r.includes(edit.changed[0]));
    assert.deepEqual(scaled.map((r) => r.split(' ')[0]).sort().filter((n, i, a) => a.indexOf(n) === i), ['node-001', 'node-002']);
    assert.match(scaled[0], /changed before .* after /);
    assert.ok(await page.getByTestId('frontend-changes').locator('.bar').count() >= rows.length * 2 - rows.filter((r) => / (added|removed) /.test(r)).length * 2);
    assert.ok((await rowText(page, 'rule-changes')).length > 0);
    const manifests = await rowText(page, 'manifest-changes');
    assert.ok(manifests.some((r) => r.startsWith(`Service ${edit.changed[2]} changed`)), JSON.stringify(manifests));
  };
  await holds(page, 'diff', async () => {
    await check();
    assert.deepEqual(Object.fromEntries(new URL(page.url()).searchParams), { from: 'gen@1', to: 'gen@2' });
  });
  clean(o);
});

test('audit: findings grouped by severity and check, linking to the trace of their Service and to the rules they name', { skip, timeout: 180_000 }, async () => {
  const o = await offlinePage();
  const { page } = o;
  await page.goto(`${base}/ui/audit?snapshot=gen@2`);
  const check = async () => {
    await page.locator('[data-severity]').first().waitFor({ timeout: 120_000 });
    assert.deepEqual(await page.locator('[data-severity]').evaluateAll((s) => s.map((e) => e.getAttribute('data-severity'))), ['error', 'warning', 'info']);
    assert.ok(await page.locator('[data-severity="error"] [data-check="endpoint-drift"] .finding').count() > 0);
    assert.ok(await page.locator('[data-severity="warning"] [data-check="node-disagreement"] .finding').count() > 0);
  };
  await holds(page, 'audit', check);

  // A rule a finding names: the node's dump with that rule marked.
  const finding = page.locator('.finding').filter({ has: page.getByRole('list', { name: 'Rules named' }) }).first();
  const ruleText = (await finding.locator('li').first().innerText()).replace(/^\S+ #\d+ /, '');
  await finding.locator('li a').first().click();
  await page.waitForURL(/\/ui\/rules\?/);
  const marked = page.locator('.dump [aria-current="true"]');
  await marked.first().waitFor();
  assert.equal((await marked.allInnerTexts()).map((l) => l.replace(/^\d+/, '')).join('\n'), ruleText);
  await photograph(page, 'rules', false);

  // The Service's trace.
  await page.goBack();
  const traced = page.locator('.finding a', { hasText: /^Trace / }).first();
  await traced.click();
  await page.waitForURL(/\/ui\/trace\?.*service=/);
  await page.locator('[data-branch]').first().waitFor({ timeout: 60_000 });
  clean(o);
});

test('with a token configured the page asks for one, keeps it for the tab and sends it', { skip, timeout: 120_000 }, async () => {
  const { secret, id } = await t.tokens.create({ name: 'ui-reader', scopes: ['read'] });
  try {
    const o = await offlinePage();
    const { page } = o;
    const failed = page.waitForResponse((r) => r.url() === `${base}/graphql` && r.status() === 401);
    await page.goto(`${base}/ui/`);
    await failed;
    await page.getByRole('alert').getByLabel('API token').fill(secret);
    await page.getByRole('alert').getByRole('button', { name: 'Use token' }).click();
    await page.locator('[data-testid="clusters"] tbody tr').nth(1).waitFor();
    assert.equal(await page.evaluate("sessionStorage.getItem('svcpath.token')"), secret);
    await page.reload();
    await page.locator('[data-testid="clusters"] tbody tr').nth(1).waitFor();
    // The 401 before the token was pasted is the only error.
    assert.deepEqual(o.blocked, []);
    assert.ok(o.errors.every((e) => /401/.test(e)), JSON.stringify(o.errors));
  } finally {
    await t.tokens.revoke(id);
  }
});
