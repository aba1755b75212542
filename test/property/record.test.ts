/**
 * The record parser, generated: a record derrick writes parses back to the same repository (and to the same
 * bytes), Pulp 2 records of versions 2–4 read as Crane reads them, and any other bytes — arbitrary, JSON of any
 * shape, a valid record mutated — are a RecordError, never another exception.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MANIFEST_MEDIA_TYPES } from '../../src/oci/media-types.ts';
import { validateName } from '../../src/oci/names.ts';
import type { ManifestEntry } from '../../src/store/record-schema.ts';
import { parseRecord, RecordError, serializeRecord, type Repository } from '../../src/store/record.ts';
import { fc, holds } from '../helpers/property.ts';
import { anyText, digest, repositoryName, tag } from './grammar.ts';

const file = import.meta.filename;
const where = 'v2/app/x.json';

/** A URL `derrick publish --base-url` takes: http(s), a host, maybe a port and a path. */
const baseUrl = fc.oneof(
  fc.webUrl({ validSchemes: ['http', 'https'], withQueryParameters: true }),
  fc
    .tuple(fc.constantFrom('http://', 'https://'), fc.domain(), fc.option(fc.integer({ min: 1, max: 65535 })))
    .map(([scheme, host, port]) => `${scheme}${host}${port === null ? '' : `:${port}`}/v2/web`),
);

const isoDate = fc
  .date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true })
  .map((date) => date.toISOString());

const platform = fc.record(
  {
    architecture: fc.constantFrom('amd64', 'arm64', 's390x'),
    os: fc.constantFrom('linux', 'windows'),
    variant: fc.constantFrom('v7', 'v8'),
    'os.version': fc.string(),
    features: fc.array(fc.string(), { maxLength: 2 }),
  },
  { requiredKeys: ['architecture', 'os'], noNullPrototype: true },
);

/** A repository as derrick holds it: every tag names a manifest, every manifest's blobs and children exist. */
const repository: fc.Arbitrary<Repository> = fc
  .record({
    blobs: fc.uniqueArray(fc.tuple(digest, fc.nat()), { maxLength: 6, selector: ([d]) => d }),
    manifests: fc.uniqueArray(digest, { minLength: 0, maxLength: 5 }),
  })
  .chain(({ blobs, manifests }) => {
    const blobDigests = blobs.map(([d]) => d);
    const pick = <T>(items: T[]): fc.Arbitrary<T[]> =>
      items.length === 0
        ? fc.constant([])
        : fc.uniqueArray(fc.constantFrom(...items), { maxLength: items.length });
    const entry: fc.Arbitrary<ManifestEntry> = fc.record(
      {
        mediaType: fc.constantFrom(...MANIFEST_MEDIA_TYPES),
        size: fc.nat(),
        blobs: pick(blobDigests),
        children: pick(manifests).chain((children) =>
          fc.tuple(
            ...children.map((child) =>
              fc.record(
                { digest: fc.constant(child), platform },
                { requiredKeys: ['digest'], noNullPrototype: true },
              ),
            ),
          ),
        ),
        artifactType: fc.string(),
        subject: digest,
        // No __proto__ key: zod drops it when derrick parses the manifest itself, so it never reaches a record.
        annotations: fc.dictionary(
          fc.string().filter((key) => key !== '__proto__'),
          fc.string(),
          { maxKeys: 3, noNullPrototype: true },
        ),
      },
      { requiredKeys: ['mediaType', 'size'], noNullPrototype: true },
    );
    return fc.record({
      name: repositoryName,
      protected: fc.boolean(),
      baseUrl: fc.option(baseUrl, { nil: undefined }),
      updatedAt: isoDate,
      tags:
        manifests.length === 0
          ? fc.constant([] as [string, string][])
          : fc.uniqueArray(fc.tuple(tag, fc.constantFrom(...manifests)), {
              maxLength: 8,
              selector: ([t]) => t,
            }),
      manifests: fc.tuple(...manifests.map((d) => entry.map((e) => [d, e] as [string, ManifestEntry]))),
      blobs: fc.constant(blobs),
    });
  })
  .map((r) => ({
    name: r.name,
    format: 'derrick' as const,
    protected: r.protected,
    baseUrl: r.baseUrl,
    tags: new Map([...r.tags].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    manifests: new Map(r.manifests),
    blobs: new Map(r.blobs),
    updatedAt: r.updatedAt,
    pulp: undefined,
  }));

/** parseRecord's outcome: a repository, or the RecordError it threw (anything else fails the property). */
function outcome(bytes: Uint8Array, expectedName?: string): Repository | RecordError {
  try {
    const parsed = parseRecord(bytes, where, expectedName);
    assert.equal(validateName(parsed.name).ok, true, parsed.name);
    return parsed;
  } catch (error) {
    if (!(error instanceof RecordError)) throw error;
    assert.equal(error.file, where);
    return error;
  }
}

type Json = unknown;

/** A mutation of a JSON document: replace, delete or add a value somewhere inside it. */
function mutate(value: Json, path: number[], replacement: Json, action: number): Json {
  if (typeof value !== 'object' || value === null || path.length === 0)
    return action === 0 ? replacement : value;
  const entries = Object.entries(value as Record<string, Json>);
  if (entries.length === 0) return replacement;
  const index = (path[0] ?? 0) % entries.length;
  const key = entries[index]?.[0] ?? '';
  let changed: [string, Json][];
  if (path.length === 1 && action === 1) changed = entries.filter((_, i) => i !== index);
  else if (path.length === 1 && action === 2) changed = [...entries, [`${key}x`, replacement]];
  else
    changed = entries.map(([k, v], i) => [
      k,
      i === index ? mutate(v, path.slice(1), replacement, action) : v,
    ]);
  return Array.isArray(value) ? changed.map(([, v]) => v) : Object.fromEntries(changed);
}

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

describe('derrick records (generated)', () => {
  test('a record derrick writes parses back to the same repository, and so does that one written again', async () => {
    await holds(
      fc.property(repository, (repo) => {
        const bytes = serializeRecord(repo);
        const parsed = outcome(bytes, repo.name);
        assert.ok(!(parsed instanceof RecordError), parsed instanceof RecordError ? parsed.message : '');
        assert.deepEqual(parsed, repo);
        assert.deepEqual(parseRecord(serializeRecord(parsed), where, repo.name), repo);
      }),
      { file, runs: 500 },
    );
  });

  test('a record whose path says another name is refused with RecordError', async () => {
    await holds(
      fc.property(repository, repositoryName, (repo, other) => {
        fc.pre(other !== repo.name);
        assert.ok(outcome(serializeRecord(repo), other) instanceof RecordError);
      }),
      { file, runs: 300 },
    );
  });

  test('a written record with any value replaced, deleted or added anywhere is a repository or a RecordError', async () => {
    await holds(
      fc.property(
        repository,
        fc.array(fc.nat(), { minLength: 1, maxLength: 5 }),
        fc.oneof(fc.jsonValue(), anyText, digest, tag),
        fc.nat(2),
        (repo, path, replacement, action) => {
          const document = JSON.parse(serializeRecord(repo).toString('utf8')) as Json;
          outcome(json(mutate(document, path, replacement, action)), repo.name);
        },
      ),
      { file },
    );
  });

  test('any bytes and any JSON are a repository or a RecordError', async () => {
    await holds(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.jsonValue().map(json),
          fc
            .dictionary(fc.string(), fc.jsonValue())
            .map((object) => json({ type: 'derrick-repository', ...object })),
          fc
            .dictionary(fc.string(), fc.jsonValue())
            .map((object) => json({ type: 'pulp-docker-redirect', ...object })),
          anyText.map((text) => Buffer.from(text)),
        ),
        (bytes) => {
          outcome(bytes);
        },
      ),
      { file },
    );
  });

  test('a written record cut short or with a byte changed is a repository or a RecordError', async () => {
    await holds(
      fc.property(
        repository,
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        fc.boolean(),
        (repo, at, byte, cut) => {
          const bytes = serializeRecord(repo);
          const i = at % bytes.length;
          if (cut) outcome(bytes.subarray(0, i));
          else {
            bytes[i] = byte;
            outcome(bytes);
          }
        },
      ),
      { file },
    );
  });
});

const pulpRecord = fc.record(
  {
    type: fc.constant('pulp-docker-redirect'),
    version: fc.constantFrom(2, 3, 4),
    repository: fc.string({ minLength: 1 }),
    'repo-registry-id': repositoryName,
    url: baseUrl,
    protected: fc.boolean(),
    schema2_data: fc.array(fc.oneof(tag, digest), { maxLength: 4 }),
    manifest_list_data: fc.array(fc.oneof(tag, digest), { maxLength: 4 }),
    manifest_list_amd64_tags: fc.dictionary(tag, fc.tuple(digest, fc.constantFrom(1, 2)), {
      maxKeys: 3,
      noNullPrototype: true,
    }),
  },
  { requiredKeys: ['type', 'version', 'repository', 'repo-registry-id', 'url'], noNullPrototype: true },
);

describe('Pulp 2 records (generated)', () => {
  test('a Pulp record of version 2, 3 or 4 reads as Crane reads it: each version only what it knows', async () => {
    await holds(
      fc.property(pulpRecord, (record) => {
        const parsed = outcome(json(record));
        assert.ok(!(parsed instanceof RecordError), parsed instanceof RecordError ? parsed.message : '');
        assert.equal(parsed.format, 'pulp2');
        assert.equal(parsed.name, record['repo-registry-id']);
        assert.equal(parsed.protected, record.protected ?? false);
        assert.equal(parsed.baseUrl, record.url);
        const pulp = parsed.pulp;
        assert.ok(pulp);
        assert.equal(pulp.version, record.version);
        assert.equal(pulp.repositoryId, record.repository);
        assert.deepEqual(pulp.schema2, new Set(record.version >= 3 ? (record.schema2_data ?? []) : []));
        assert.deepEqual(
          pulp.manifestLists,
          new Set(record.version >= 4 ? (record.manifest_list_data ?? []) : []),
        );
        const amd64 = Object.entries(record.manifest_list_amd64_tags ?? {});
        assert.deepEqual(
          pulp.amd64Tags,
          new Map(
            record.version >= 4 ? amd64.map(([t, [d, v]]) => [t, { digest: d, schemaVersion: v }]) : [],
          ),
        );
      }),
      { file },
    );
  });

  test('a Pulp record with any value replaced, deleted or added is a repository or a RecordError', async () => {
    await holds(
      fc.property(
        pulpRecord,
        fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
        fc.oneof(fc.jsonValue(), anyText),
        fc.nat(2),
        (record, path, replacement, action) => {
          outcome(json(mutate(record, path, replacement, action)));
        },
      ),
      { file },
    );
  });
});
