/**
 * The three forms of one ruleset read the same, and the printer's text reads back the same and
 * loads: parse(print(parse(x))) equals parse(x) for every fixture, and `nft -c -f` accepts the
 * printed text in a fresh network namespace (skipped, loudly, where that cannot run).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNftables, printNftRuleset } from '../../../src/engine/index.ts';
import type { NftRuleset } from '../../../src/engine/index.ts';
import { fixture } from '../../helpers.ts';
import { nftCheck, nftSupport } from './nft-check.ts';

/** Every fixture that parses, by folder and file. */
const PARSING: ReadonlyArray<readonly [string, string]> = [
  ['nftables/kube-proxy-overall', 'input.nft'],
  ['nftables/kube-proxy-overall', 'loadable.nft'],
  ['nftables/kube-proxy-overall', 'list-a.txt'],
  ['nftables/kube-proxy-overall', 'ruleset.json'],
  ['nftables/kube-proxy-sync-initial', 'input.nft'],
  ['nftables/features', 'loadable.nft'],
  ['nftables/features', 'list-a.txt'],
  ['nftables/features', 'ruleset.json'],
  ['realworld', 'temach-kubeadm-2.nft.txt'],
];

function read(folder: string, file: string): NftRuleset {
  return parseNftables(fixture(...folder.split('/'), file));
}

/**
 * The model as plain data without what says where it came from (lines, texts, handles, how a
 * priority was spelled) and without `expires` (time left when listed), which the printer leaves out.
 */
function content(rs: NftRuleset): unknown {
  const strip = (v: unknown, parent?: Record<string, unknown>): unknown => {
    if (v instanceof Map) return [...v.values()].map((x) => strip(x));
    if (Array.isArray(v)) return v.map((x) => strip(x));
    if (v === null || typeof v !== 'object') return v;
    const o = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) {
      if (x === undefined || k === 'line' || k === 'handle' || k === 'priorityText' || k === 'expiresMs') continue;
      // A rule's and a set type's `text` is how the input spelled them; a literal's text is its value.
      if (k === 'text' && (o.kind === 'rule' || 'types' in o || 'typeof' in o)) continue;
      out[k] = strip(x, o);
    }
    void parent;
    return out;
  };
  return strip([...rs.tables.values()]);
}

/** JSON text with keys in sorted order, to sort elements by. */
function stableText(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && !Array.isArray(x)
    ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
    : x));
}

const TYPEOF: Readonly<Record<string, string>> = {
  'ip daddr': 'ipv4_addr', 'ip saddr': 'ipv4_addr', 'tcp dport': 'inet_service', 'udp dport': 'inet_service',
  'th dport': 'inet_service', 'meta l4proto': 'inet_proto',
};

/**
 * `content` less what nft 1.0.6 itself changes between its forms (see the fixtures' PROVENANCE.md):
 * named-set element order, `size` and `dynamic` on dynamic sets, table and chain comments and
 * ingress devices (absent from its JSON), `typeof` (its JSON gives the types), and a one-element
 * anonymous set, which it lists as the element alone. Chains are compared by name; rule order
 * within a chain is kept.
 */
function sameAcrossForms(rs: NftRuleset): unknown {
  const tables = content(rs) as Array<Record<string, unknown>>;
  const byName = (a: Record<string, unknown>, b: Record<string, unknown>) => String(a.name).localeCompare(String(b.name));
  const typeText = (t: Record<string, unknown> | undefined) => {
    if (!t) return undefined;
    if (t.types) return (t.types as string[]).join(' . ');
    return (t.typeof as Array<{ protocol?: string; field?: string; key?: string; kind: string }>)
      .map((e) => TYPEOF[e.kind === 'meta' ? `meta ${e.key}` : `${e.protocol} ${e.field}`] ?? '?').join(' . ');
  };
  const single = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(single);
    if (v === null || typeof v !== 'object') return v;
    const o = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) out[k] = single(x);
    if (o.kind === 'match') {
      const right = out.right as { kind: string; elements?: Array<Record<string, unknown>> };
      if (right.kind === 'anonymous-set' && right.elements!.length === 1 && Object.keys(right.elements![0]).length === 1) {
        out.right = right.elements![0].key;
      }
    }
    return out;
  };
  return tables.map((t) => ({
    ...t,
    comment: undefined,
    sets: (t.sets as Array<Record<string, unknown>>).sort(byName).map((s) => ({
      ...s,
      key: typeText(s.key as Record<string, unknown>),
      data: typeText(s.data as Record<string, unknown> | undefined),
      size: undefined,
      flags: (s.flags as string[]).filter((f) => f !== 'dynamic'),
      elements: (s.elements as unknown[]).map(stableText).sort(),
    })),
    chains: (t.chains as Array<Record<string, unknown>>).sort(byName).map((c) => ({
      ...c,
      comment: undefined,
      base: c.base ? { ...(c.base), devices: undefined } : null,
      rules: single(c.rules),
    })),
  }));
}

test('the three forms of kube-proxy TestOverallNFTablesRules read the same', () => {
  const commands = read('nftables/kube-proxy-overall', 'loadable.nft');
  const list = read('nftables/kube-proxy-overall', 'list-a.txt');
  const json = read('nftables/kube-proxy-overall', 'ruleset.json');
  assert.deepEqual([commands.form, list.form, json.form], ['commands', 'list', 'json']);
  assert.deepEqual(sameAcrossForms(list), sameAcrossForms(commands));
  assert.deepEqual(sameAcrossForms(json), sameAcrossForms(commands));
  // The file kube-proxy's test gives (jumps before chains) reads as its loadable reordering does.
  assert.deepEqual(sameAcrossForms(read('nftables/kube-proxy-overall', 'input.nft')), sameAcrossForms(commands));
  // Handles from -a and JSON agree rule by rule.
  const handles = (rs: NftRuleset) => [...rs.tables.values()].flatMap((t) => [...t.chains.values()]).flatMap((c) => c.rules.map((r) => `${c.name}#${r.index}=${r.handle}`)).sort();
  assert.deepEqual(handles(list), handles(json));
  assert.ok(handles(list).every((h) => !h.endsWith('=undefined')));
});

test('the three forms of the features ruleset read the same', () => {
  const commands = read('nftables/features', 'loadable.nft');
  const list = read('nftables/features', 'list-a.txt');
  const json = read('nftables/features', 'ruleset.json');
  assert.deepEqual(sameAcrossForms(list), sameAcrossForms(commands));
  assert.deepEqual(sameAcrossForms(json), sameAcrossForms(commands));
  assert.deepEqual([commands.diagnostics, list.diagnostics, json.diagnostics], [[], [], []]);
});

for (const [folder, file] of PARSING) {
  test(`round trip: ${folder}/${file} reads back the same from its printed text`, () => {
    const first = read(folder, file);
    const printed = printNftRuleset(first);
    const again = parseNftables(printed);
    assert.equal(again.form, 'list');
    assert.deepEqual(content(again), content(first));
    assert.equal(printNftRuleset(again), printed);
  });
}

const support = nftSupport();

test('nft -c -f accepts every printed fixture (fresh network namespace each)', (t) => {
  if (!support.ok) {
    console.warn(`SKIPPED nft -c -f checks of the printer: ${support.reason}`);
    return t.skip(`nft -c -f cannot run here: ${support.reason}`);
  }
  for (const [folder, file] of PARSING) {
    const r = nftCheck(printNftRuleset(read(folder, file)));
    assert.ok(r.ok, `${folder}/${file}: nft -c -f refused the printed text:\n${r.out}`);
  }
  // The check can fail: a rule jumping to a chain that is not there is refused.
  const bad = nftCheck('table ip t {\n\tchain c {\n\t\tjump nowhere\n\t}\n}\n');
  assert.equal(bad.ok, false);
});
