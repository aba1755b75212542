/**
 * A `_catalog` page: the names after `last` in the tree's order, only those the client may see, up to `n`, with a
 * `Link` to the next page when a visible name is left over. Whether a client may see a name can take a read of its
 * record (its `protected`): a round trip on an object store, unless the listing gave the record's version and the
 * record cache holds that version (S3: then a page costs its ListObjectsV2 alone). The names are asked about
 * CATALOG_CHECKS at a time, in order, so a page costs a few round trips, not one per name.
 */
import type { ListedRecord } from '../store/backend.ts';
import { jsonAnswer, PRIVATE_REVALIDATE, type Answer, type Headers } from './answers.ts';

/** How many names of a catalog page are checked for visibility at once (each may read a record). */
const CATALOG_CHECKS = 32;

export async function catalogAnswer(
  walk: AsyncIterable<ListedRecord> | readonly ListedRecord[],
  n: number,
  visible: (listed: ListedRecord) => Promise<boolean>,
): Promise<Answer> {
  const names: string[] = [];
  let batch: ListedRecord[] = [];
  /** Adds the visible names of the batch; true when the page is full and a visible name is left over. */
  const settle = async (): Promise<boolean> => {
    const seen = await Promise.all(batch.map(visible));
    const checked = batch;
    batch = [];
    for (const [i, { name }] of checked.entries()) {
      if (!seen[i]) continue;
      if (names.length === n) return true;
      names.push(name);
    }
    return false;
  };
  let more = false;
  for await (const listed of walk) {
    batch.push(listed);
    if (batch.length < Math.min(CATALOG_CHECKS, n + 1 - names.length)) continue;
    more = await settle();
    if (more) break;
  }
  if (!more && batch.length > 0) more = await settle();
  const headers: Headers = { 'cache-control': PRIVATE_REVALIDATE };
  const last = names[names.length - 1];
  if (more && last !== undefined)
    headers.link = `</v2/_catalog?n=${n}&last=${encodeURIComponent(last)}>; rel="next"`;
  return jsonAnswer({ repositories: names }, headers);
}
