/**
 * `--platform` over generated indexes and filters: what filterIndex keeps is a subsequence of the children, each
 * one matching the filter and each dropped one not; every other field survives; a filter that keeps every child
 * gives the upstream's bytes; and the result depends only on the bytes and the set of platforms asked for (the
 * order and repetition of the filter do not matter), which is what lets `derrick sync` recompute it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sha256Digest } from '../../src/oci/digest.ts';
import {
  filterIndex,
  formatPlatform,
  parsePlatforms,
  platformMatches,
  type PlatformSpec,
} from '../../src/publish/platforms.ts';
import { fc, holds } from '../helpers/property.ts';

const file = import.meta.filename;

const os = fc.constantFrom('linux', 'windows', 'darwin', 'unknown');
const architecture = fc.constantFrom('amd64', 'arm64', 'arm', '386', 's390x', 'x86_64', 'aarch64', 'unknown');
const variant = fc.option(fc.constantFrom('v6', 'v7', 'v8', 'v9', 'v2'), { nil: undefined });
const platform = fc
  .record({ os, architecture, variant })
  .map(({ variant: v, ...rest }) => (v ? { ...rest, variant: v } : rest));
const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
const child = fc.record(
  {
    mediaType: fc.constant('application/vnd.oci.image.manifest.v1+json'),
    digest: hex.map((h) => `sha256:${h}`),
    size: fc.nat(100_000),
    platform,
    annotations: fc.constantFrom(
      { 'vnd.docker.reference.type': 'attestation-manifest' },
      { 'org.example.note': 'x' },
    ),
  },
  { requiredKeys: ['mediaType', 'digest', 'size'] },
);
const index = fc.record(
  {
    schemaVersion: fc.constant(2),
    mediaType: fc.constant('application/vnd.oci.image.index.v1+json'),
    manifests: fc.array(child, { maxLength: 8 }),
    annotations: fc.dictionary(fc.stringMatching(/^[a-z.]{1,12}$/), fc.string({ maxLength: 12 }), {
      maxKeys: 3,
    }),
    artifactType: fc.constant('application/vnd.example+json'),
  },
  { requiredKeys: ['schemaVersion', 'manifests'] },
);
/** As a registry may have written it: any indentation. */
const indexBytes = fc.tuple(index, fc.constantFrom(undefined, 2, 3, '\t')).map(([generated, space]) => {
  // Plain objects, as JSON.parse makes them (fast-check's records have no prototype).
  const document = JSON.parse(JSON.stringify(generated)) as typeof generated;
  return { document, bytes: Buffer.from(JSON.stringify(document, null, space)) };
});
const spec: fc.Arbitrary<PlatformSpec> = fc
  .record({ os, architecture, variant })
  .map((entry) => ({ ...entry }));
const filter = fc.array(spec, { minLength: 1, maxLength: 4 });

type Child = {
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
};
const isImageFor = (entry: Child, wanted: PlatformSpec[]): boolean =>
  entry.platform !== undefined &&
  !(entry.annotations && 'vnd.docker.reference.type' in entry.annotations) &&
  platformMatches(entry.platform, wanted);

describe('filterIndex', () => {
  test('keeps, in order, exactly the images the filter matches, and every other field', () =>
    holds(
      fc.property(indexBytes, filter, ({ document, bytes }, wanted) => {
        const result = filterIndex(bytes, wanted);
        const expected = (document.manifests as Child[]).filter((entry) => isImageFor(entry, wanted));
        if (expected.length === 0) {
          assert.ok('error' in result);
          return;
        }
        assert.ok(!('error' in result), JSON.stringify(result));
        const published = JSON.parse(result.bytes.toString('utf8')) as typeof document;
        assert.deepEqual(published.manifests, expected);
        assert.deepEqual({ ...published, manifests: [] }, { ...document, manifests: [] });
        assert.equal(result.kept.length + result.dropped.length, document.manifests.length);
        assert.equal(result.digest, sha256Digest(result.bytes));
      }),
      { file },
    ));

  test('every child kept: the same bytes, and so the same digest', () =>
    holds(
      fc.property(indexBytes, ({ document, bytes }) => {
        const images = (document.manifests as Child[]).filter(
          (entry) =>
            entry.platform && !(entry.annotations && 'vnd.docker.reference.type' in entry.annotations),
        );
        fc.pre(images.length > 0 && images.length === document.manifests.length);
        const wanted = images.map((entry) => {
          const text = parsePlatforms(formatPlatform(entry.platform ?? { os: '', architecture: '' }));
          assert.ok(!('error' in text));
          return text[0] as PlatformSpec;
        });
        const result = filterIndex(bytes, wanted);
        assert.ok(!('error' in result));
        assert.equal(result.changed, false);
        assert.ok(result.bytes.equals(bytes));
      }),
      { file },
    ));

  test('deterministic: the same bytes and the same set of platforms, in any order or repeated, give the same index', () =>
    holds(
      fc.property(indexBytes, filter, fc.nat(), ({ bytes }, wanted, seed) => {
        const shuffled = [...wanted, ...wanted.slice(0, 1)].sort(() => (seed % 2 === 0 ? 1 : -1));
        const first = filterIndex(Buffer.from(bytes), wanted);
        const again = filterIndex(Buffer.from(bytes), shuffled);
        if ('error' in first) {
          assert.ok('error' in again);
          return;
        }
        assert.ok(!('error' in again));
        assert.ok(first.bytes.equals(again.bytes));
        assert.equal(first.digest, again.digest);
      }),
      { file },
    ));

  test('any bytes: an answer or a one-line error, never a throw', () =>
    holds(
      fc.property(fc.oneof(fc.string(), fc.json()), filter, (text, wanted) => {
        const result = filterIndex(Buffer.from(text), wanted);
        if ('error' in result) assert.ok(!result.error.includes('\n'));
      }),
      { file },
    ));
});

describe('parsePlatforms', () => {
  test('os/arch[/variant] lists read back as written, in order', () =>
    holds(
      fc.property(filter, (wanted) => {
        const text = wanted.map(formatPlatform).join(',');
        assert.deepEqual(parsePlatforms(text), wanted);
      }),
      { file },
    ));

  test('any text: the platforms or a one-line error, never a throw', () =>
    holds(
      fc.property(fc.string(), (text) => {
        const result = parsePlatforms(text);
        if ('error' in result) assert.ok(!result.error.includes('\n') || text.includes('\n'));
        else for (const entry of result) assert.ok(entry.os !== '' && entry.architecture !== '');
      }),
      { file },
    ));
});
