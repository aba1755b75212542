import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { recordJsonSchema } from '../../../src/store/record-schema.ts';
import { emptyRepository, parseRecord, RecordError, serializeRecord } from '../../../src/store/record.ts';

const d = (n: string): string => `sha256:${n.repeat(64)}`;
const OCI = 'application/vnd.oci.image.manifest.v1+json';

function derrickRecord(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'derrick-repository',
    version: 1,
    name: 'team/app',
    protected: false,
    updatedAt: '2026-01-01T00:00:00.000Z',
    tags: { latest: d('a') },
    manifests: { [d('a')]: { mediaType: OCI, size: 100, blobs: [d('b')] } },
    blobs: { [d('b')]: 5 },
    ...overrides,
  };
}
const parse = (value: unknown, name = 'team/app') =>
  parseRecord(Buffer.from(JSON.stringify(value)), 'v2/app/team/app.json', name);

describe('derrick records', () => {
  test('a valid record parses into tags, manifests and blobs', () => {
    const repository = parse(derrickRecord());
    assert.equal(repository.format, 'derrick');
    assert.equal(repository.tags.get('latest'), d('a'));
    assert.equal(repository.manifests.get(d('a'))?.size, 100);
    assert.equal(repository.blobs.get(d('b')), 5);
  });

  test('serialize then parse gives the same repository, keys sorted', () => {
    const repository = parse(
      derrickRecord({ tags: { z: d('a'), a: d('a') }, baseUrl: 'https://cdn.example.com/team/app' }),
    );
    const bytes = serializeRecord(repository);
    const again = parseRecord(bytes, 'x', 'team/app');
    assert.deepEqual([...again.tags.keys()], ['a', 'z']);
    assert.equal(again.baseUrl, 'https://cdn.example.com/team/app');
    assert.deepEqual(serializeRecord(again), bytes);
  });

  test('tags are kept in sorted order, so a tag page needs no sort', () => {
    const tags = Object.fromEntries(['b', 'a', 'C', '10', '9'].map((tag) => [tag, d('a')]));
    assert.deepEqual([...parse(derrickRecord({ tags })).tags.keys()], ['10', '9', 'C', 'a', 'b']);
  });

  const broken: [string, unknown, RegExp][] = [
    ['half-written JSON', '{"type": "derrick-repo', /not valid JSON/],
    ['an unknown type', { type: 'something' }, /type: expected/],
    [
      'a tag pointing at no manifest',
      derrickRecord({ tags: { latest: d('f') } }),
      /tags\.latest: .* is not in manifests/,
    ],
    ['a bad digest key', derrickRecord({ blobs: { 'sha256:xyz': 5 } }), /blobs\.sha256:xyz/],
    ['an invalid tag', derrickRecord({ tags: { '-x': d('a') } }), /tags\.-x/],
    [
      'a manifest blob missing from blobs',
      derrickRecord({ blobs: {} }),
      /manifests\..*\.blobs: .* is not in blobs/,
    ],
    ['a wrong version', derrickRecord({ version: 2 }), /version/],
    ['an unknown key', derrickRecord({ extra: true }), /extra/],
    ['a non-http baseUrl', derrickRecord({ baseUrl: 'file:///etc' }), /baseUrl/],
    [
      'a name that does not match the path',
      derrickRecord({ name: 'other/app' }),
      /record says "other\/app" but its path says "team\/app"/,
    ],
  ];
  for (const [what, value, message] of broken) {
    test(`${what} → RecordError naming the file and the key`, () => {
      assert.throws(
        () =>
          parseRecord(
            Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)),
            'v2/app/team/app.json',
            'team/app',
          ),
        (error: unknown) => {
          assert.ok(error instanceof RecordError);
          assert.match(error.message, /^v2\/app\/team\/app\.json: /);
          assert.match(error.message, message);
          return true;
        },
      );
    });
  }

  test('an empty repository serializes to a valid record', () => {
    const bytes = serializeRecord({ ...emptyRepository('a'), updatedAt: '2026-01-01T00:00:00.000Z' });
    assert.equal(parseRecord(bytes, 'a.json', 'a').tags.size, 0);
  });
});

describe('Pulp 2 records', () => {
  const base = {
    type: 'pulp-docker-redirect',
    repository: 'rhel7-id',
    'repo-registry-id': 'rhel7/app',
    url: 'https://cdn.example.com/pulp/docker/rhel7-id/',
    protected: true,
  };

  test('version 2 has only the url: no schema 2 or list data', () => {
    const repository = parse({ ...base, version: 2, schema2_data: ['ignored'] }, 'rhel7/app');
    assert.equal(repository.format, 'pulp2');
    assert.equal(repository.name, 'rhel7/app');
    assert.equal(repository.protected, true);
    assert.equal(repository.pulp?.version, 2);
    assert.equal(repository.pulp.schema2.size, 0);
  });

  test('version 3 reads schema2_data', () => {
    const repository = parse({ ...base, version: 3, schema2_data: ['latest', d('a')] });
    assert.deepEqual([...(repository.pulp?.schema2 ?? [])], ['latest', d('a')]);
    assert.equal(repository.pulp?.manifestLists.size, 0);
  });

  test('version 4 reads manifest lists and the amd64 tags', () => {
    const repository = parse({
      ...base,
      version: 4,
      schema2_data: ['v2'],
      manifest_list_data: ['latest'],
      manifest_list_amd64_tags: { latest: [d('c'), 2] },
    });
    assert.deepEqual([...(repository.pulp?.manifestLists ?? [])], ['latest']);
    assert.deepEqual(repository.pulp?.amd64Tags.get('latest'), { digest: d('c'), schemaVersion: 2 });
    assert.equal(repository.baseUrl, base.url);
  });

  test('version 1 is refused as the retired v1 API', () => {
    assert.throws(() => parse({ ...base, version: 1 }), /version: 1 is the retired/);
  });

  test('a record whose repo-registry-id is not a valid name is refused', () => {
    assert.throws(() => parse({ ...base, version: 2, 'repo-registry-id': 'Bad Name' }), /repo-registry-id/);
  });

  test('a record without url is refused, naming the key', () => {
    const { url: _url, ...rest } = base;
    assert.throws(() => parse({ ...rest, version: 3 }), /url/);
  });
});

describe('the published JSON Schema', () => {
  test('docs/record.schema.json is the schema generated from the code (run npm run schema)', () => {
    const onDisk: unknown = JSON.parse(
      readFileSync(new URL('../../../docs/record.schema.json', import.meta.url), 'utf8'),
    );
    assert.deepEqual(onDisk, JSON.parse(JSON.stringify(recordJsonSchema())));
  });
});
