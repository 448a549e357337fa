import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_CHUNK, MIN_CHUNK, chunkEnds } from '../../src/store/chunking.ts';
import { Rng } from '../support/kube-gen.ts';

function text(seed: number, bytes: number): Buffer {
  const rng = new Rng(seed);
  const lines: string[] = [];
  let size = 0;
  while (size < bytes) {
    const line = `-A KUBE-SVC-${rng.int(1e9).toString(36).toUpperCase()} -m statistic --mode random --probability 0.${rng.int(1e9)} -j KUBE-SEP-${rng.int(1e9)}`;
    lines.push(line);
    size += line.length + 1;
  }
  return Buffer.from(`${lines.join('\n')}\n`);
}

const pieces = (b: Buffer) => {
  let from = 0;
  return chunkEnds(b).map((end) => {
    const p = b.subarray(from, end).toString('latin1');
    from = end;
    return p;
  });
};

test('chunks cover the input in order, within the size bounds, the same way every time', () => {
  const b = text(1, 1_000_000);
  const ends = chunkEnds(b);
  assert.equal(ends[ends.length - 1], b.length);
  let from = 0;
  for (const [i, end] of ends.entries()) {
    assert.ok(end - from <= MAX_CHUNK);
    if (i < ends.length - 1) assert.ok(end - from >= MIN_CHUNK);
    from = end;
  }
  assert.deepEqual(chunkEnds(Buffer.from(b)), ends);
  // About 8 KiB past the minimum on average.
  const mean = b.length / ends.length;
  assert.ok(mean > 4096 && mean < 20_000, `mean chunk ${mean}`);
  assert.deepEqual(chunkEnds(Buffer.alloc(0)), []);
  assert.deepEqual(chunkEnds(Buffer.from('short')), [5]);
});

test('an edit in the middle changes only the chunks around it', () => {
  const b = text(2, 2_000_000);
  const at = 1_000_003;
  const edited = Buffer.concat([b.subarray(0, at), Buffer.from('-A KUBE-SERVICES -j KUBE-NEW\n'), b.subarray(at)]);
  const before = new Set(pieces(b));
  const after = pieces(edited);
  const fresh = after.filter((p) => !before.has(p));
  assert.ok(fresh.length >= 1 && fresh.length <= 3, `${fresh.length} new chunks of ${after.length}`);
});

test('a run of one byte value is cut at the maximum size', () => {
  const ends = chunkEnds(Buffer.alloc(3 * MAX_CHUNK + 5, 0x20));
  assert.deepEqual(ends, [MAX_CHUNK, 2 * MAX_CHUNK, 3 * MAX_CHUNK, 3 * MAX_CHUNK + 5]);
});
