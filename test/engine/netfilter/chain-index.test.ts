/**
 * ChainIndex is a table's map of chains: it must answer as a Map filled in the same order would,
 * through chains deleted (`-X`) and declared again, and find names from the dump's bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChainIndex } from '../../../src/engine/netfilter/chain-index.ts';
import { asciiBytes, hashOf } from '../../../src/engine/netfilter/char-index.ts';
import { DumpChain, RuleStore } from '../../../src/engine/netfilter/rule.ts';
import { Rng } from '../../support/kube-gen.ts';

const home = { table: 'nat', source: '', store: new RuleStore() };

function chainNamed(name: string): DumpChain {
  const c = new DumpChain(home, name, false, 0);
  c.hash = hashOf(name, 0, name.length);
  return c;
}

function same(index: ChainIndex, model: Map<string, DumpChain>, label: string): void {
  assert.equal(index.size, model.size, label);
  assert.deepEqual([...index.keys()], [...model.keys()], label);
  assert.deepEqual([...index.values()], [...model.values()], label);
  assert.deepEqual([...index], [...model], label);
  const seen: string[] = [];
  index.forEach((c, name, map) => {
    assert.equal(c.name, name);
    assert.equal(map, index);
    seen.push(name);
  });
  assert.deepEqual(seen, [...model.keys()], label);
}

test('a chain index answers as a Map through additions, deletions and chains declared again', () => {
  const rng = new Rng(17);
  // Few names, so that names come back after being deleted; long ones share a prefix as kube-proxy's do.
  const names = Array.from({ length: 40 }, (_, i) => (i % 2 ? `KUBE-SEP-${i.toString(36).padStart(16, 'Q')}` : `C${i}`));
  const index = new ChainIndex();
  const model = new Map<string, DumpChain>();
  for (let step = 0; step < 3000; step++) {
    const name = names[Math.floor(rng.next() * names.length)];
    const existing = model.get(name);
    assert.equal(index.get(name), existing, `step ${step}: get ${name}`);
    assert.equal(index.has(name), existing !== undefined);
    if (existing && rng.next() < 0.4) {
      index.remove(existing);
      model.delete(name);
    } else if (!existing) {
      const c = chainNamed(name);
      index.add(c);
      model.set(name, c);
    }
    if (step % 100 === 0) same(index, model, `step ${step}`);
  }
  same(index, model, 'at the end');
  assert.ok(index.order.length > model.size, 'some chains were deleted and made again');
});

test('chains whose names share a hash are told apart by their names', () => {
  // Two names of two letters with the same hashOf, found by search so that the test holds for any hash.
  const seen = new Map<number, string>();
  let pair: [string, string] | null = null;
  for (let a = 0x21; a < 0x7f && !pair; a++) {
    for (let b = 0x21; b < 0x7f && !pair; b++) {
      const name = String.fromCharCode(a, b);
      const h = hashOf(name, 0, 2);
      const other = seen.get(h);
      if (other !== undefined) pair = [other, name];
      else seen.set(h, name);
    }
  }
  assert.ok(pair, 'two names of two printable characters share a hash');
  const [x, y] = pair;
  assert.equal(hashOf(x, 0, 2), hashOf(y, 0, 2));
  const index = new ChainIndex();
  const cx = chainNamed(x);
  const cy = chainNamed(y);
  index.add(cx);
  index.add(cy);
  assert.equal(index.get(x), cx);
  assert.equal(index.get(y), cy);
  const text = `-A ${y} -j ${x}`;
  const bytes = asciiBytes(text);
  assert.equal(index.at(bytes, 3, 5, hashOf(text, 3, 5)), cy);
  assert.equal(index.at(bytes, 9, 11, hashOf(text, 9, 11)), cx);
  index.remove(cx);
  assert.equal(index.at(bytes, 9, 11, hashOf(text, 9, 11)), undefined);
  assert.equal(index.get(x), undefined);
  assert.equal(index.get(y), cy);
});
