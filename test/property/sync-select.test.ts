/**
 * sync.yaml's tag selection (src/publish/sync/select.ts): what it keeps is always a subset of the upstream's
 * tags, sorted and without duplicates; exclude wins over include; `newest` keeps at most N and never a lower
 * version while dropping a higher one; a semver range keeps exactly the tags that are versions in it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import semver from 'semver';
import { selectTags, tagVersion } from '../../src/publish/sync/select.ts';
import { fc, holds } from '../helpers/property.ts';

const file = import.meta.filename;

const tag = fc.oneof(
  fc
    .tuple(fc.nat(20), fc.option(fc.nat(20), { nil: undefined }), fc.option(fc.nat(20), { nil: undefined }))
    .map(([a, b, c]) => [a, b, c].filter((part) => part !== undefined).join('.')),
  fc.constantFrom('latest', 'stable', 'v1.2.3', '3.20-alpine', '1.0.0-rc1', 'edge'),
);
const tags = fc.array(tag, { maxLength: 30 });
const never = (): Promise<undefined> => Promise.resolve(undefined);

test('the selection is a sorted subset of the tags, without duplicates', async () => {
  await holds(
    fc.asyncProperty(
      tags,
      fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
      async (list, newest) => {
        const kept = await selectTags(list, { by: 'semver', ...(newest ? { newest } : {}) }, never);
        assert.ok(kept.every((item) => list.includes(item)));
        assert.deepEqual(kept, [...new Set(kept)].sort());
        if (newest !== undefined) assert.ok(kept.length <= newest);
      },
    ),
    { file, runs: 300 },
  );
});

test('newest N by version: no dropped version is higher than a kept one', async () => {
  await holds(
    fc.asyncProperty(tags, fc.integer({ min: 1, max: 5 }), async (list, newest) => {
      const kept = await selectTags(list, { by: 'semver', newest }, never);
      const versions = (items: string[]) => items.flatMap((item) => tagVersion(item) ?? []);
      const lowestKept = versions(kept).sort(semver.compare)[0];
      for (const dropped of versions(list.filter((item) => !kept.includes(item))))
        if (lowestKept)
          assert.ok(
            semver.lte(dropped, lowestKept),
            `${dropped.version} dropped, ${lowestKept.version} kept`,
          );
    }),
    { file, runs: 300 },
  );
});

test('a semver range keeps exactly the versions in it; exclude wins over include', async () => {
  await holds(
    fc.asyncProperty(tags, async (list) => {
      const kept = await selectTags(list, { by: 'semver', semver: '>=2 <10' }, never);
      const expected = [...new Set(list)].filter((item) => {
        const version = tagVersion(item);
        return version !== undefined && semver.satisfies(version, '>=2 <10');
      });
      assert.deepEqual(kept, expected.sort());
      const both = await selectTags(list, { by: 'semver', include: ['^1'], exclude: ['^1'] }, never);
      assert.deepEqual(both, []);
    }),
    { file, runs: 300 },
  );
});

test('tags read as versions as registries write them', () => {
  assert.equal(tagVersion('3.20')?.version, '3.20.0');
  assert.equal(tagVersion('v1.2.3')?.version, '1.2.3');
  assert.equal(tagVersion('3.20-alpine')?.version, '3.20.0-alpine');
  assert.equal(tagVersion('latest'), undefined);
});

test('newest by created asks for created times and keeps the latest', async () => {
  const times: Record<string, number> = { a: 3, b: 1, c: 2 };
  const kept = await selectTags(['a', 'b', 'c'], { by: 'created', newest: 2 }, (item) =>
    Promise.resolve(times[item]),
  );
  assert.deepEqual(kept, ['a', 'c']);
});
