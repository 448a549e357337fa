/** A diff's lists kept as UTF-8 JSON texts: any slice of them reads back as the items it holds. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jsonList, listSlice, parsedSlice } from '../../src/services/prepared-diff.ts';

test('every slice of a list, with texts of several bytes a character, is the items it holds', () => {
  const items = [
    { node: 'a', note: 'plain' },
    { node: 'b', note: 'café → 10.0.0.1' },
    { node: 'c', note: '日本語 "quoted", comma' },
    { node: 'd', note: '' },
    { node: 'e', note: '😀 past the basic plane' },
  ];
  const list = jsonList(items);
  assert.equal(list.ends.length, items.length);
  for (let from = 0; from <= items.length + 1; from++) {
    for (let to = from; to <= items.length + 2; to++) {
      assert.deepEqual(parsedSlice(list, from, to), items.slice(from, to), `[${from}, ${to})`);
      assert.deepEqual(JSON.parse(`[${listSlice(list, from, to).toString('utf8')}]`), items.slice(from, to));
    }
  }
  assert.deepEqual(parsedSlice(jsonList([]), 0, 10), []);
});
