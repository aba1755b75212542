import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { digestLike, isDigest, parseDigest, sha256Digest } from '../../../src/oci/digest.ts';

const HEX64 = 'a'.repeat(64);

describe('digests', () => {
  test('sha256 with 64 lower-case hex digits is a digest', () => {
    assert.deepEqual(parseDigest(`sha256:${HEX64}`), { algorithm: 'sha256', hex: HEX64 });
  });
  test('sha512 with 128 hex digits is a digest', () => assert.ok(isDigest(`sha512:${'0'.repeat(128)}`)));
  for (const bad of [
    `sha256:${'a'.repeat(63)}`,
    `sha256:${'a'.repeat(65)}`,
    `sha256:${'A'.repeat(64)}`,
    `md5:${'a'.repeat(32)}`,
    `sha256-${HEX64}`,
    `sha512:${HEX64}`,
    '',
    `sha256:${HEX64}/x`,
  ]) {
    test(`${JSON.stringify(bad.slice(0, 24))}… is not a digest, with a reason`, () => {
      const parsed = parseDigest(bad);
      assert.ok('error' in parsed);
      assert.match(parsed.error, /digest|hex digits/);
    });
  }
  test('sha256Digest hashes bytes', () => {
    assert.equal(sha256Digest(''), 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
  test('digestLike uses the algorithm of the digest it is compared with', () => {
    assert.match(digestLike(`sha512:${'0'.repeat(128)}`, Buffer.from('x')), /^sha512:[a-f0-9]{128}$/);
  });
});
