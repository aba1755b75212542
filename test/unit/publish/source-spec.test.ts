import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseSource } from '../../../src/publish/open-source.ts';
import { normalizeDockerReference } from '../../../src/publish/source-docker-archive.ts';
import { parseUnpublishTarget } from '../../../src/publish/unpublish.ts';

describe('source arguments', () => {
  test('oci:<dir>:<ref> splits at the first colon after the path', () => {
    assert.deepEqual(parseSource('oci:/tmp/layout:v1'), { transport: 'oci', path: '/tmp/layout', ref: 'v1' });
  });
  test('docker-archive:<file>:<name:tag> keeps the whole reference', () => {
    assert.deepEqual(parseSource('docker-archive:/x.tar:busybox:1'), {
      transport: 'docker-archive',
      path: '/x.tar',
      ref: 'busybox:1',
    });
  });
  test('dir:<dir> takes everything after the transport as the path', () => {
    assert.deepEqual(parseSource('dir:/a:b'), { transport: 'dir', path: '/a:b', ref: undefined });
  });
  for (const bad of ['docker://busybox', '/just/a/path', 'oci:', 'oci::ref', 'oci:/x:']) {
    test(`${JSON.stringify(bad)} is refused, saying which forms work`, () => {
      assert.throws(() => parseSource(bad), /not a source derrick reads|names no path|names no image/);
    });
  }
});

describe('docker references in archives', () => {
  test('short names normalise as Docker writes RepoTags', () => {
    assert.equal(normalizeDockerReference('busybox'), 'docker.io/library/busybox:latest');
    assert.equal(normalizeDockerReference('example/app:7'), 'docker.io/example/app:7');
    assert.equal(normalizeDockerReference('registry.local:5000/app'), 'registry.local:5000/app:latest');
    assert.equal(normalizeDockerReference('localhost/app:1'), 'localhost/app:1');
  });
});

describe('unpublish targets', () => {
  test('name, name:tag and name@digest', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    assert.deepEqual(parseUnpublishTarget('a/b'), { name: 'a/b', tag: undefined, digest: undefined });
    assert.deepEqual(parseUnpublishTarget('a/b:v1'), { name: 'a/b', tag: 'v1', digest: undefined });
    assert.deepEqual(parseUnpublishTarget(`a/b@${digest}`), { name: 'a/b', tag: undefined, digest });
  });
  for (const bad of ['../x', 'a:-bad', 'a@sha256:short', 'UP']) {
    test(`${JSON.stringify(bad)} is refused before anything is read`, () => {
      assert.throws(() => parseUnpublishTarget(bad), /invalid|digest/);
    });
  }
});
