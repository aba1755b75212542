/**
 * parseListing (src/store/s3/lean-read.ts), the ListObjectsV2 reader of serve's catalog pages, against answers
 * written the way S3 writes them: every key and ETag escaped as XML character data (`&amp;`, `&lt;`, `&gt;`,
 * `&quot;`, `&apos;`, numeric references), elements in S3's order, with the elements it does not read around them.
 * Amazon S3 API Reference, ListObjectsV2, Response Syntax: `<ListBucketResult> <IsTruncated>boolean</IsTruncated>
 * <Contents> <ETag>string</ETag> <Key>string</Key> <LastModified>timestamp</LastModified> <Size>long</Size> …`.
 * What is not such an answer is refused (undefined: the SDK then asks again and reports).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseListing, type ListedItem } from '../../src/store/s3/lean-read.ts';
import { fc, holds } from '../helpers/property.ts';

const file = import.meta.filename;

/** XML character data as a store may write it: some characters as named or numeric references. */
const NAMED: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};
const escaped = (text: string, numeric: boolean): string =>
  text.replace(/[&<>"']/g, (c) => (numeric ? `&#${c.charCodeAt(0)};` : (NAMED[c] ?? c)));

const item = fc
  .record({
    Key: fc.string({
      minLength: 1,
      maxLength: 40,
      unit: fc.constantFrom('a', 'b', '/', '.', '-', '&', '<', '>', '"', "'", 'é', ' '),
    }),
    ETag: fc
      .oneof(
        fc.string({ minLength: 32, maxLength: 32, unit: fc.nat({ max: 15 }).map((n) => n.toString(16)) }),
        fc.constant('abc-2'),
      )
      .map((hex) => `"${hex}"`),
    Size: fc.nat({ max: 2 ** 40 }),
    LastModified: fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }),
  })
  .map((fields): ListedItem => ({ ...fields }));

function listingXml(items: ListedItem[], truncated: boolean, numeric: boolean): string {
  const contents = items
    .map(
      (i) =>
        `<Contents><Key>${escaped(i.Key, numeric)}</Key><LastModified>${i.LastModified.toISOString()}</LastModified>` +
        `<ETag>${escaped(i.ETag, numeric)}</ETag><Size>${i.Size}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
    )
    .join('');
  return (
    '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
    `<Name>b</Name><Prefix>p/</Prefix><MaxKeys>1000</MaxKeys><IsTruncated>${truncated}</IsTruncated>${contents}` +
    '<KeyCount>1</KeyCount></ListBucketResult>'
  );
}

test('parseListing gives back every key, ETag, size and time as written, escaped either way', async () => {
  await holds(
    fc.property(
      fc.array(item, { maxLength: 20 }),
      fc.boolean(),
      fc.boolean(),
      (items, truncated, numeric) => {
        assert.deepEqual(parseListing(listingXml(items, truncated, numeric)), { objects: items, truncated });
      },
    ),
    { file },
  );
});

test('parseListing refuses what is not a ListObjectsV2 answer it can read whole', () => {
  const good = listingXml([{ Key: 'k', ETag: '"e"', Size: 1, LastModified: new Date(0) }], false, false);
  assert.ok(parseListing(good));
  for (const bad of [
    '<?xml version="1.0"?><Error><Code>NoSuchBucket</Code></Error>',
    good.replace(/<IsTruncated>false<\/IsTruncated>/, ''),
    good.replace('<Size>1</Size>', '<Size>one</Size>'),
    good.replace('<Key>k</Key>', '<Key>&bogus;</Key>'),
    good.replace('<Key>k</Key>', '<Key></Key>'),
    good.replace('<Key>k</Key>', '<Key>a & b</Key>'),
    good.slice(0, good.indexOf('<KeyCount>')), // cut short after a whole <Contents>
    good.replace(/<LastModified>[^<]*<\/LastModified>/, '<LastModified>yesterday</LastModified>'),
  ])
    assert.equal(parseListing(bad), undefined, bad);
});
