import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { splitNameAndTag, validateName, validateTag } from '../../../src/oci/names.ts';

describe('repository names', () => {
  for (const name of [
    'busybox',
    'library/busybox',
    'a/b/c/d',
    'my-app',
    'my__app',
    'my.app',
    'a--b',
    'x1/y2',
    'a'.repeat(255),
  ]) {
    test(`"${name.length > 40 ? `${name.slice(0, 10)}…(${name.length})` : name}" is valid`, () => {
      assert.deepEqual(validateName(name), { ok: true });
    });
  }
  const invalid: [string, RegExp][] = [
    ['', /empty/],
    ['../etc', /not a valid name component/],
    ['a/../b', /not a valid name component/],
    ['/abs/path', /empty path component/],
    ['a//b', /empty path component/],
    ['a/', /empty path component/],
    ['Upper/Case', /"Upper"/],
    ['-lead', /not a valid name component/],
    ['.hidden', /not a valid name component/],
    ['trail-', /not a valid name component/],
    ['a___b', /not a valid name component/],
    ['a%2fb', /not a valid name component/],
    ['a\0b', /not a valid name component/],
    ['a:b', /not a valid name component/],
    ['a'.repeat(256), /256 characters long; at most 255/],
  ];
  for (const [name, reason] of invalid) {
    test(`${JSON.stringify(name.length > 40 ? `${name.slice(0, 10)}…` : name)} is refused with a reason`, () => {
      const result = validateName(name);
      assert.ok(!result.ok);
      assert.match(result.reason, reason);
    });
  }
});

describe('tags', () => {
  for (const tag of ['latest', 'v1.2.3', '1.0', '_x', 'A-b_c.d', 'a'.repeat(128)]) {
    test(`"${tag.slice(0, 20)}" is valid`, () => assert.deepEqual(validateTag(tag), { ok: true }));
  }
  for (const tag of ['', '-bad', '.bad', 'a/b', 'a:b', 'a'.repeat(129), 'sp ace']) {
    test(`${JSON.stringify(tag.slice(0, 20))} is refused`, () => assert.equal(validateTag(tag).ok, false));
  }
  test('a 129-character tag is refused with its length', () => {
    const result = validateTag('a'.repeat(129));
    assert.ok(!result.ok);
    assert.match(result.reason, /129 characters/);
  });
});

describe('name:tag on the command line', () => {
  test('splits at the last colon', () => {
    assert.deepEqual(splitNameAndTag('library/busybox:1.36'), { name: 'library/busybox', tag: '1.36' });
  });
  test('without a colon there is no tag', () => {
    assert.deepEqual(splitNameAndTag('library/busybox'), { name: 'library/busybox', tag: undefined });
  });
});
