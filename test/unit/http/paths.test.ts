import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ErrorCode } from '../../../src/oci/errors.ts';
import { RegistryError } from '../../../src/oci/errors.ts';
import { parsePageSize, parsePath } from '../../../src/http/paths.ts';

const D = `sha256:${'a'.repeat(64)}`;

describe('request paths', () => {
  test('the base, the catalog and each endpoint', () => {
    assert.deepEqual(parsePath('/v2/'), { kind: 'base' });
    assert.deepEqual(parsePath('/v2/_catalog'), { kind: 'catalog' });
    assert.deepEqual(parsePath('/v2/library/busybox/tags/list'), { kind: 'tags', name: 'library/busybox' });
    assert.deepEqual(parsePath('/v2/a/b/manifests/latest'), {
      kind: 'manifest',
      name: 'a/b',
      reference: { tag: 'latest' },
    });
    assert.deepEqual(parsePath(`/v2/a/manifests/${D}`), {
      kind: 'manifest',
      name: 'a',
      reference: { digest: D },
    });
    assert.deepEqual(parsePath(`/v2/a/blobs/${D}`), { kind: 'blob', name: 'a', digest: D });
    assert.deepEqual(parsePath(`/v2/a/referrers/${D}`), { kind: 'referrers', name: 'a', digest: D });
  });

  test('a name may contain a component called manifests, blobs or tags', () => {
    assert.deepEqual(parsePath('/v2/x/manifests/y/manifests/1'), {
      kind: 'manifest',
      name: 'x/manifests/y',
      reference: { tag: '1' },
    });
    assert.deepEqual(parsePath('/v2/tags/list/tags/list'), { kind: 'tags', name: 'tags/list' });
  });

  const bad: [string, ErrorCode][] = [
    ['/v2/../etc/manifests/x', 'NAME_INVALID'],
    ['/v2/a/%2e%2e/manifests/x', 'NAME_INVALID'],
    ['/v2/a%2Fb/manifests/x', 'NAME_INVALID'],
    ['/v2/a//b/manifests/x', 'NAME_INVALID'],
    ['/v2/a\0b/manifests/x', 'NAME_INVALID'],
    ['/v2/Upper/manifests/x', 'NAME_INVALID'],
    [`/v2/${'a'.repeat(256)}/manifests/x`, 'NAME_INVALID'],
    // A manifest reference that is neither a tag nor a digest names no manifest (the spec's end-3 fails only
    // with 404); TAG_INVALID belongs to a manifest PUT.
    ['/v2/a/manifests/.INVALID_MANIFEST_NAME', 'MANIFEST_UNKNOWN'],
    ['/v2/a/manifests/-bad', 'MANIFEST_UNKNOWN'],
    [`/v2/a/manifests/${'t'.repeat(129)}`, 'MANIFEST_UNKNOWN'],
    ['/v2/a/manifests/sha256:abc', 'MANIFEST_UNKNOWN'],
    [`/v2/a/manifests/md5:${'a'.repeat(32)}`, 'MANIFEST_UNKNOWN'],
    ['/v2/a/manifests/:', 'MANIFEST_UNKNOWN'],
    ['/v2/Upper/manifests/.INVALID_MANIFEST_NAME', 'NAME_INVALID'],
    ['/v2/a/blobs/latest', 'DIGEST_INVALID'],
    [`/v2/a/blobs/sha512:${'a'.repeat(64)}`, 'DIGEST_INVALID'],
    ['/v2/a/referrers/nope', 'DIGEST_INVALID'],
    ['/v2/a/manifests/a/b', 'MANIFEST_UNKNOWN'],
    ['/v2/a/whatever', 'NAME_UNKNOWN'],
    ['/other', 'NAME_UNKNOWN'],
  ];
  for (const [path, code] of bad) {
    test(`${JSON.stringify(path.length > 50 ? `${path.slice(0, 40)}…` : path)} → ${code}`, () => {
      assert.throws(
        () => parsePath(path),
        (error: unknown) => error instanceof RegistryError && error.code === code,
      );
    });
  }
});

describe('page sizes', () => {
  test('absent is undefined; zero is zero (an empty page); larger than the maximum is the maximum', () => {
    assert.equal(parsePageSize(undefined, 100), undefined);
    assert.equal(parsePageSize('0', 100), 0);
    assert.equal(parsePageSize('50', 100), 50);
    assert.equal(parsePageSize('5000', 100), 100);
    assert.equal(parsePageSize('99999999999999999999999', 100), 100);
  });
  for (const value of ['-1', '-0', 'abc', '1.5', '', '01', '00', '+5', '1e3']) {
    test(`n=${JSON.stringify(value)} → PAGINATION_NUMBER_INVALID`, () => {
      assert.throws(
        () => parsePageSize(value, 100),
        (error: unknown) => error instanceof RegistryError && error.code === 'PAGINATION_NUMBER_INVALID',
      );
    });
  }
});
