/**
 * recordNames against one reference order, with names generated to hit exactly the orderings where the keys'
 * byte order (`v2/app/<name>.json`) and the names' byte order disagree — `a` < `a-b` < `a.b` < `a/b` by name, but
 * `a-b.json` < `a.b.json` < `a.json` < `a/b.json` by key (distribution #4891, #4903) — on a real bucket, with
 * listing pages small enough that every walk crosses pages and looks beyond a truncated page. For every `after`
 * and `under` tried, the names are exactly the reference sort, filtered.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import type { Backend, ListedRecord } from '../../src/store/backend.ts';
import { isValidName } from '../../src/oci/names.ts';
import { compareStrings } from '../../src/store/record.ts';
import { openS3Backend } from '../../src/store/s3/s3-backend.ts';
import { fc, holds } from '../helpers/property.ts';
import { freshBucket, s3Url } from '../helpers/s3.ts';

const file = import.meta.filename;

/** Components from fragments of `json` and a few letters, so `.json`-like tails and shared prefixes abound. */
const component = fc
  .array(fc.constantFrom('a', 'b', 'j', 'js', 'json', 'jsoa', 'o', 'n', '0', 'z'), {
    minLength: 1,
    maxLength: 3,
  })
  .map((parts) => parts.join(''));
const separator = fc.constantFrom('-', '.', '/', '--', '_', '__');
const name = fc
  .tuple(component, fc.array(fc.tuple(separator, component), { maxLength: 3 }))
  .map(([first, rest]) => first + rest.map(([sep, part]) => sep + part).join(''))
  .filter(isValidName);
/** Where a page may start: a name of the set, one of its prefixes, or anything from the same alphabet. */
const start = fc.oneof(name, fc.constantFrom('a', 'a-', 'a.', 'a/', 'j', 'json', '0', 'zz'));

const scenario = fc.record({
  names: fc.uniqueArray(name, { minLength: 1, maxLength: 40 }),
  afters: fc.array(start, { maxLength: 4 }),
  pageSize: fc.constantFrom(1, 2, 5, 1000),
});

async function collect(items: AsyncIterable<ListedRecord>): Promise<string[]> {
  const all: string[] = [];
  for await (const item of items) all.push(item.name);
  return all;
}

interface Tree {
  /** A new empty tree (in one shared bucket: a fresh prefix per case keeps bucket writes bounded). */
  open(pageSize: number): Promise<Backend>;
}

async function s3Trees(t: TestContext): Promise<Tree> {
  const bucket = await freshBucket(t);
  let runs = 0;
  return {
    open: async (pageSize) => {
      const backend = await openS3Backend(s3Url(bucket, `case-${++runs}`), { listPageSize: pageSize });
      t.after(() => backend.close());
      return backend;
    },
  };
}

const trees: [string, (t: TestContext) => Promise<Tree>][] = [['s3 (Ceph RGW)', s3Trees]];

for (const [label, makeTrees] of trees) {
  describe(`recordNames on ${label}`, () => {
    test('gives exactly the names after `after` (and below `under`), in the byte order of the names', async (t) => {
      const treesOf = await makeTrees(t);
      await holds(
        fc.asyncProperty(scenario, async ({ names, afters, pageSize }) => {
          const backend = await treesOf.open(pageSize);
          await Promise.all(names.map((n) => backend.write(`v2/app/${n}.json`, Buffer.from('{}'))));
          const sorted = [...names].sort(compareStrings);
          assert.deepEqual(await collect(backend.recordNames({})), sorted);
          for (const after of [...afters, ...names.slice(0, 3)])
            assert.deepEqual(
              await collect(backend.recordNames({ after })),
              sorted.filter((n) => compareStrings(n, after) > 0),
              `after ${after}`,
            );
          const namespaces = new Set(
            names.flatMap((n) =>
              n
                .split('/')
                .slice(0, -1)
                .map((_, i, parts) => parts.slice(0, i + 1).join('/')),
            ),
          );
          for (const under of [...namespaces].slice(0, 2)) {
            const below = sorted.filter((n) => n === under || n.startsWith(`${under}/`));
            assert.deepEqual(await collect(backend.recordNames({ under })), below, `under ${under}`);
            const after = afters[0];
            if (after !== undefined)
              assert.deepEqual(
                await collect(backend.recordNames({ under, after })),
                below.filter((n) => compareStrings(n, after) > 0),
                `under ${under} after ${after}`,
              );
          }
        }),
        { file, runs: 25, timeoutMs: 120_000 },
      );
    });
  });
}
