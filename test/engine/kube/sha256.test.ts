/** SHA-256 (FIPS 180-4 examples) and RFC 4648 base32 vectors for the pure-TS implementations. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { base32, sha256, toHex, utf8 } from '../../../src/engine/kube/sha256.ts';

test('SHA-256: FIPS 180 one-block, empty and two-block (448-bit) messages', () => {
  assert.equal(toHex(sha256('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(toHex(sha256('')), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(
    toHex(sha256('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')),
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
  );
});

test('SHA-256: the 896-bit message, a million "a", and the 55/56/64-byte padding edges', () => {
  assert.equal(
    toHex(sha256('abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu')),
    'cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1',
  );
  assert.equal(toHex(sha256('a'.repeat(1000000))), 'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0');
  assert.equal(toHex(sha256('a'.repeat(55))), '9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318');
  assert.equal(toHex(sha256('a'.repeat(56))), 'b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a');
  assert.equal(toHex(sha256('a'.repeat(64))), 'ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb');
});

test('UTF-8: multi-byte characters are hashed as their UTF-8 bytes', () => {
  assert.deepEqual([...utf8('é€😀')], [0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80]);
  assert.equal(toHex(sha256('é')), toHex(sha256(Uint8Array.from([0xc3, 0xa9]))));
});

test('base32: RFC 4648 §10 test vectors', () => {
  const cases: [string, string][] = [
    ['', ''], ['f', 'MY======'], ['fo', 'MZXQ===='], ['foo', 'MZXW6==='], ['foob', 'MZXW6YQ='],
    ['fooba', 'MZXW6YTB'], ['foobar', 'MZXW6YTBOI======'],
  ];
  for (const [input, expected] of cases) assert.equal(base32(utf8(input)), expected, input);
  // A 32-byte digest: 52 characters and 4 of padding; the first 16 are what kube-proxy keeps.
  const b = base32(sha256('abc'));
  assert.equal(b.length, 56);
  assert.equal(b, 'XJ4BNP4PAHH6UQKBIDPF3LRCEOYAGYNDSYLXVHFUCD7WD4QACWWQ====');
});
