/**
 * The name-ordered walk of src/store/s3/record-names.ts over an in-memory key source (a fake of ListObjectsV2 and
 * HeadObject: the algorithm's own cost and order, without a store; the real store is in
 * test/property/record-names.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ListedRecord } from '../../../src/store/backend.ts';
import { compareStrings } from '../../../src/store/record.ts';
import {
  PrefixHints,
  latePrefixes,
  recordNames,
  type KeySource,
} from '../../../src/store/s3/record-names.ts';

/** Sorted keys served a page at a time, counting requests. */
function keySource(
  names: string[],
  pageSize: number,
): KeySource & { pages: number; heads: number; asked: (number | undefined)[] } {
  const keys = names.map((n) => `v2/app/${n}.json`).sort(compareStrings);
  const source = {
    pages: 0,
    heads: 0,
    asked: [] as (number | undefined)[],
    page: (prefix: string, startAfter: string | undefined, maxKeys?: number) => {
      source.pages++;
      source.asked.push(maxKeys);
      const size = Math.min(maxKeys ?? pageSize, pageSize);
      const matching = keys.filter(
        (k) => k.startsWith(prefix) && (startAfter === undefined || k > startAfter),
      );
      return Promise.resolve({ keys: matching.slice(0, size), truncated: matching.length > size });
    },
    exists: (key: string) => {
      source.heads++;
      return Promise.resolve(keys.includes(key) ? {} : undefined);
    },
  };
  return source;
}

async function take(items: AsyncIterable<ListedRecord>, count: number): Promise<string[]> {
  const taken: string[] = [];
  for await (const item of items) {
    taken.push(item.name);
    if (taken.length === count) break;
  }
  return taken;
}

describe('S3 recordNames walk', () => {
  test('a record comes late in key order only after names extending it with "-" or "."', () => {
    assert.deepEqual(latePrefixes('a-b'), ['a']);
    assert.deepEqual(latePrefixes('a.b'), ['a']);
    assert.deepEqual(latePrefixes('a.jsoa'), ['a']);
    // `a.json.json` sorts after `a.json` by key too, and `/` and `_` sort after `.`: no late prefix.
    assert.deepEqual(latePrefixes('a.json'), []);
    assert.deepEqual(latePrefixes('a/b'), []);
    assert.deepEqual(latePrefixes('a_b'), []);
    assert.deepEqual(latePrefixes('a-b.c-d'), ['a', 'a-b', 'a-b.c']);
    assert.deepEqual(latePrefixes('a--b'), ['a']);
  });

  test('a page of 100 names out of 10,000 costs one listing and no HEAD', async () => {
    const names = Array.from({ length: 10_000 }, (_, i) => `repo-${String(i).padStart(5, '0')}`);
    const source = keySource(names, 1000);
    const page = await take(recordNames(source, { after: 'repo-05000' }), 100);
    assert.equal(page[0], 'repo-05001');
    assert.equal(page.length, 100);
    assert.equal(source.pages, 1);
    assert.equal(source.heads, 0);
  });

  test('a prefix record beyond a truncated page is found with one HEAD and given before the longer names', async () => {
    // Key order: a-1.json … a-9.json, a.json: with pages of 3, `a` is beyond the first page.
    const names = ['a', ...Array.from({ length: 9 }, (_, i) => `a-${i + 1}`)];
    const source = keySource(names, 3);
    assert.deepEqual(await take(recordNames(source, {}), 100), [...names].sort(compareStrings));
    assert.equal(source.heads, 1);
  });

  test('a missing prefix record costs no HEAD when the page it would be in was fetched', async () => {
    const source = keySource(['a-1', 'a-2', 'b'], 1000);
    assert.deepEqual(await take(recordNames(source, {}), 10), ['a-1', 'a-2', 'b']);
    assert.equal(source.heads, 0);
  });

  test('a missing prefix record beyond a truncated page is asked for once, not once per name extending it', async () => {
    const names = Array.from({ length: 50 }, (_, i) => `x-${String(i).padStart(2, '0')}`);
    const source = keySource(names, 3);
    assert.deepEqual(await take(recordNames(source, {}), 100), names);
    assert.equal(source.heads, 1);
  });

  test('expect: the first listing asks for about as many keys as the caller will take, the next ones for a full page', async () => {
    const names = Array.from({ length: 10_000 }, (_, i) => `repo-${String(i).padStart(5, '0')}`);
    const source = keySource(names, 1000);
    const page = await take(recordNames(source, { after: 'repo-05000', expect: 101 }), 101);
    assert.deepEqual(page, names.slice(5001, 5102));
    assert.deepEqual(source.asked, [116]); // 101 + 101/8 + 2
    const more = await take(recordNames(source, { expect: 10 }), 200);
    assert.deepEqual(more, names.slice(0, 200));
    assert.deepEqual(source.asked.slice(1), [14, undefined]);
  });

  test('the HEADs a truncated page needs are sent together, before its first name is given', async () => {
    // org-0/repo-1 … sort before org-0/repo and org by key, not by name: both must be asked about.
    const names = Array.from({ length: 300 }, (_, i) => `org-0/repo-${i}`);
    const source = keySource(names, 100);
    const exists = source.exists.bind(source);
    let running = 0;
    let most = 0;
    source.exists = async (key: string) => {
      most = Math.max(most, ++running);
      await new Promise((resolve) => setImmediate(resolve));
      running--;
      return exists(key);
    };
    const walk = recordNames(source, { expect: 10 })[Symbol.asyncIterator]();
    const first = await walk.next();
    assert.ok(first.done !== true);
    assert.equal(first.value.name, 'org-0/repo-0');
    assert.equal(source.heads, 2, 'org and org-0/repo');
    assert.equal(most, 2, 'both at once');
    await walk.return(undefined);
  });

  test('hints: a walk from a start point walked before sends the HEADs it needed with the listing, not after it', async () => {
    const names = Array.from({ length: 300 }, (_, i) => `org-0/repo-${i}`);
    const source = keySource(names, 100);
    const page = source.page.bind(source);
    const exists = source.exists.bind(source);
    const order: string[] = [];
    source.page = async (...args) => {
      order.push('list');
      const listed = await page(...args);
      order.push('listed');
      return listed;
    };
    source.exists = (key: string) => {
      order.push(`head ${key}`);
      return exists(key);
    };
    const hints = new PrefixHints();
    const expected = names.slice().sort(compareStrings).slice(0, 10);
    assert.deepEqual(await take(recordNames(source, { expect: 10 }, hints), 10), expected);
    assert.deepEqual(order, ['list', 'listed', 'head v2/app/org.json', 'head v2/app/org-0/repo.json']);
    order.length = 0;
    assert.deepEqual(await take(recordNames(source, { expect: 10 }, hints), 10), expected);
    assert.deepEqual(order, ['head v2/app/org.json', 'head v2/app/org-0/repo.json', 'list', 'listed']);
    // Another start point has hints of its own.
    order.length = 0;
    await take(recordNames(source, { expect: 10, after: 'org-0/repo-5' }, hints), 10);
    assert.equal(order[0], 'list');
  });

  test('hints: a prefix created or removed since the hint was taken is still given exactly when it exists', async () => {
    const hints = new PrefixHints();
    const many = Array.from({ length: 40 }, (_, i) => `org-${i % 2}/repo-${i}`);
    const trees = [many, [...many, 'org', 'org-0/repo'], many, [...many, 'org-1/repo'], ['org'], [], many];
    for (const names of trees) {
      const source = keySource(names, 7);
      for (const after of [undefined, 'org-0/repo-10']) {
        const expected = names
          .slice()
          .sort(compareStrings)
          .filter((name) => after === undefined || compareStrings(name, after) > 0)
          .slice(0, 12);
        assert.deepEqual(
          await take(
            recordNames(source, { expect: 12, ...(after === undefined ? {} : { after }) }, hints),
            12,
          ),
          expected,
          `${names.length} names, after ${after}`,
        );
      }
    }
  });

  test('hints: the cache keeps the most recently used start points, up to its capacity', () => {
    const hints = new PrefixHints(2);
    hints.set('a', ['x']);
    hints.set('b', ['y']);
    assert.deepEqual(hints.get('a'), ['x']);
    hints.set('c', ['z']);
    assert.deepEqual(hints.get('b'), [], 'the least recently used went');
    assert.deepEqual(hints.get('a'), ['x']);
    hints.set('a', []);
    assert.deepEqual(hints.get('a'), []);
    hints.set(
      'd',
      Array.from({ length: 100 }, (_, i) => `p${i}`),
    );
    assert.equal(hints.get('d').length, 32);
  });
});
