/**
 * A bounded pool for the publisher's per-object steps (stats, links, commits, blob copies): each is a round trip
 * or a transfer, so a few at once is what makes a publish of many objects take seconds instead of minutes, while a
 * limit keeps it from opening thousands of requests or files at one go.
 */

/** Object-store calls a publish has in flight at once for its per-blob steps (each one a round trip or two). */
export const AT_ONCE = 8;

/** Runs `work` on every item, `limit` at a time, and gives the results in the items' order. */
export async function atOnce<T, R>(
  items: readonly T[],
  work: (item: T) => Promise<R>,
  limit = AT_ONCE,
): Promise<R[]> {
  const results: R[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) results[i] = await work(items[i] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
