import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DOCKER_LIST,
  DOCKER_MANIFEST,
  isNonDistributable,
  OCI_INDEX,
  OCI_MANIFEST,
  parseManifest,
} from '../../../src/oci/media-types.ts';

const d = (n: string): string => `sha256:${n.repeat(64)}`;
const bytes = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d('c'), size: 10 };
const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d('1'), size: 20 };

describe('parseManifest', () => {
  test('an OCI image manifest lists its config and layers as blobs', () => {
    const parsed = parseManifest(
      bytes({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [layer] }),
    );
    assert.ok(!('error' in parsed));
    assert.equal(parsed.mediaType, OCI_MANIFEST);
    assert.deepEqual(
      parsed.blobs.map((blob) => blob.digest),
      [d('c'), d('1')],
    );
    assert.equal(parsed.artifactType, config.mediaType);
  });
  test('an OCI manifest without mediaType takes the descriptor’s type, else its shape', () => {
    const parsed = parseManifest(bytes({ schemaVersion: 2, manifests: [] }));
    assert.ok(!('error' in parsed) && parsed.mediaType === OCI_INDEX);
    const image = parseManifest(bytes({ schemaVersion: 2, config, layers: [] }));
    assert.ok(!('error' in image) && image.mediaType === OCI_MANIFEST);
  });
  test('an index lists its children with their platforms', () => {
    const child = {
      mediaType: OCI_MANIFEST,
      digest: d('2'),
      size: 5,
      platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
    };
    const parsed = parseManifest(bytes({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [child] }));
    assert.ok(!('error' in parsed));
    assert.deepEqual(parsed.children[0]?.platform, child.platform);
    assert.deepEqual(parsed.blobs, []);
  });
  test('Docker schema 2 manifests and lists are recognised by their mediaType', () => {
    const manifest = parseManifest(
      bytes({ schemaVersion: 2, mediaType: DOCKER_MANIFEST, config, layers: [] }),
    );
    assert.ok(!('error' in manifest) && manifest.mediaType === DOCKER_MANIFEST);
    const list = parseManifest(bytes({ schemaVersion: 2, mediaType: DOCKER_LIST, manifests: [] }));
    assert.ok(!('error' in list) && list.mediaType === DOCKER_LIST);
  });
  test('an artifact keeps its artifactType, subject and annotations', () => {
    const parsed = parseManifest(
      bytes({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.example.sig',
        config,
        layers: [],
        subject: { mediaType: OCI_MANIFEST, digest: d('9'), size: 3 },
        annotations: { a: 'b' },
      }),
    );
    assert.ok(!('error' in parsed));
    assert.equal(parsed.artifactType, 'application/vnd.example.sig');
    assert.equal(parsed.subject?.digest, d('9'));
    assert.deepEqual(parsed.annotations, { a: 'b' });
  });
  test('“If the `artifactType` is empty or missing in the image manifest, the value of `artifactType` MUST be set to the config descriptor `mediaType` value” (distribution-spec, Listing Referrers)', () => {
    for (const artifactType of [undefined, '']) {
      const parsed = parseManifest(
        bytes({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType, config, layers: [] }),
      );
      assert.ok(!('error' in parsed));
      assert.equal(parsed.artifactType, config.mediaType, JSON.stringify(artifactType));
    }
  });
  test('“If the `artifactType` is empty or missing in an index, the `artifactType` MUST be omitted”', () => {
    for (const artifactType of [undefined, '']) {
      const parsed = parseManifest(
        bytes({ schemaVersion: 2, mediaType: OCI_INDEX, artifactType, manifests: [] }),
      );
      assert.ok(!('error' in parsed));
      assert.equal(parsed.artifactType, undefined, JSON.stringify(artifactType));
    }
    const typed = parseManifest(
      bytes({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        artifactType: 'application/vnd.example.set',
        manifests: [],
      }),
    );
    assert.ok(!('error' in typed) && typed.artifactType === 'application/vnd.example.set');
  });
  const bad: [string, Buffer, RegExp][] = [
    ['not JSON', Buffer.from('{'), /not JSON/],
    ['a JSON array', bytes([]), /not a JSON object/],
    ['schema 1', bytes({ schemaVersion: 1, name: 'x' }), /schema 1/],
    [
      'an unknown media type',
      bytes({ schemaVersion: 2, mediaType: 'text/plain' }),
      /not a manifest media type/,
    ],
    [
      'a layer with a bad digest',
      bytes({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config,
        layers: [{ ...layer, digest: 'sha256:xyz' }],
      }),
      /layers\.0\.digest/,
    ],
    [
      'a negative size',
      bytes({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { ...config, size: -1 }, layers: [] }),
      /config\.size/,
    ],
    [
      'a descriptor type that disagrees',
      bytes({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [] }),
      /descriptor says/,
    ],
  ];
  for (const [what, input, reason] of bad) {
    test(`${what} is refused with a reason`, () => {
      const parsed = parseManifest(
        input,
        what === 'a descriptor type that disagrees' ? OCI_INDEX : undefined,
      );
      assert.ok('error' in parsed);
      assert.match(parsed.error, reason);
    });
  }
});

describe('non-distributable layers', () => {
  test('OCI nondistributable and Docker foreign layers may be absent', () => {
    assert.ok(isNonDistributable('application/vnd.oci.image.layer.nondistributable.v1.tar+gzip'));
    assert.ok(isNonDistributable('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip'));
    assert.ok(!isNonDistributable('application/vnd.oci.image.layer.v1.tar+zstd'));
  });
});
