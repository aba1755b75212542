/** `--platform`: reading the flag, containerd's matching rules, and the index a filter makes. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sha256Digest } from '../../../src/oci/digest.ts';
import {
  filterIndex,
  parsePlatforms,
  platformMatches,
  type PlatformSpec,
} from '../../../src/publish/platforms.ts';

const want = (text: string): PlatformSpec[] => {
  const parsed = parsePlatforms(text);
  assert.ok(!('error' in parsed), `parsePlatforms("${text}")`);
  return parsed;
};

const digest = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;
const child = (n: number, platform?: Record<string, string>, annotations?: Record<string, string>) => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: digest(n),
  size: 100 + n,
  ...(platform ? { platform } : {}),
  ...(annotations ? { annotations } : {}),
});
/** What buildx pushes: two images and an attestation manifest for each. */
const buildxIndex = {
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.index.v1+json',
  manifests: [
    child(1, { architecture: 'amd64', os: 'linux' }),
    child(2, { architecture: 'arm64', os: 'linux', variant: 'v8' }),
    child(
      3,
      { architecture: 'unknown', os: 'unknown' },
      {
        'vnd.docker.reference.digest': digest(1),
        'vnd.docker.reference.type': 'attestation-manifest',
      },
    ),
    child(4, { architecture: 'arm', os: 'linux', variant: 'v7' }),
  ],
  annotations: { 'org.opencontainers.image.created': '2026-01-01T00:00:00Z' },
};
const bytes = Buffer.from(JSON.stringify(buildxIndex, null, 3));

describe('parsePlatforms', () => {
  test('a comma list of os/arch[/variant], lower-cased, in the order given', () => {
    assert.deepEqual(parsePlatforms('linux/amd64, Linux/ARM64/v8'), [
      { os: 'linux', architecture: 'amd64', variant: undefined },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
    ]);
  });

  for (const bad of ['linux', 'linux/', '/amd64', 'linux/arm/v7/x', '', 'linux/amd64,', 'linux/am d64'])
    test(`"${bad}" is refused in one line that shows the form`, () => {
      const parsed = parsePlatforms(bad);
      assert.ok('error' in parsed);
      assert.match(parsed.error, /^--platform ".*" is not a platform; write os\/arch\[\/variant\]/);
      assert.ok(!parsed.error.includes('\n'));
    });
});

describe('platformMatches (containerd normalisation)', () => {
  const cases: [{ os: string; architecture: string; variant?: string }, string, boolean][] = [
    [{ os: 'linux', architecture: 'arm64', variant: 'v8' }, 'linux/arm64', true],
    [{ os: 'linux', architecture: 'arm64' }, 'linux/arm64/v8', true],
    [{ os: 'linux', architecture: 'arm64', variant: 'v9' }, 'linux/arm64/v8', false],
    [{ os: 'linux', architecture: 'amd64' }, 'linux/x86_64', true],
    [{ os: 'linux', architecture: 'arm64' }, 'linux/aarch64', true],
    [{ os: 'linux', architecture: 'arm' }, 'linux/arm/v7', true],
    [{ os: 'linux', architecture: 'arm', variant: 'v6' }, 'linux/arm/v7', false],
    [{ os: 'linux', architecture: 'arm', variant: 'v6' }, 'linux/arm', true],
    [{ os: 'linux', architecture: 'amd64' }, 'windows/amd64', false],
    [{ os: 'linux', architecture: 'amd64', variant: 'v3' }, 'linux/amd64/v2', false],
  ];
  for (const [platform, filter, expected] of cases)
    test(`${JSON.stringify(platform)} ${expected ? 'matches' : 'does not match'} ${filter}`, () => {
      assert.equal(platformMatches(platform, want(filter)), expected);
    });
});

describe('filterIndex', () => {
  test('keeps the matching images, drops the rest and the attestations, keeps every other field', () => {
    const result = filterIndex(bytes, want('linux/arm64'));
    assert.ok(!('error' in result));
    assert.equal(result.changed, true);
    const published = JSON.parse(result.bytes.toString('utf8')) as typeof buildxIndex;
    assert.deepEqual(published, { ...buildxIndex, manifests: [buildxIndex.manifests[1]] });
    assert.equal(result.digest, sha256Digest(result.bytes));
    assert.deepEqual(
      result.dropped.map((entry) => entry.platform),
      ['linux/amd64', 'unknown/unknown', 'linux/arm/v7'],
    );
  });

  test('the filtered index is JSON.stringify of the document: no whitespace', () => {
    const result = filterIndex(bytes, want('linux/amd64'));
    assert.ok(!('error' in result));
    assert.equal(
      result.bytes.toString('utf8'),
      JSON.stringify({ ...buildxIndex, manifests: [buildxIndex.manifests[0]] }),
    );
  });

  test('every child kept: the upstream bytes themselves, unchanged', () => {
    const plain = Buffer.from(
      JSON.stringify({ ...buildxIndex, manifests: [buildxIndex.manifests[0]] }, null, 2),
    );
    const result = filterIndex(plain, want('linux/amd64,linux/arm64'));
    assert.ok(!('error' in result));
    assert.equal(result.changed, false);
    assert.equal(result.bytes, plain);
    assert.equal(result.digest, sha256Digest(plain));
  });

  test('nothing kept: an error naming the platforms the index has', () => {
    const result = filterIndex(bytes, want('linux/s390x'));
    assert.deepEqual(result, {
      error:
        '--platform linux/s390x matches no image in the index; it has linux/amd64, linux/arm64/v8, unknown/unknown, linux/arm/v7',
    });
  });

  test('a child with no platform is dropped under any filter', () => {
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        manifests: [child(1), child(2, { os: 'linux', architecture: 'amd64' })],
      }),
    );
    const result = filterIndex(index, want('linux/amd64'));
    assert.ok(!('error' in result));
    assert.deepEqual(result.dropped, [{ digest: digest(1), platform: undefined }]);
  });
});
