/**
 * Repository names with a record, in byte order of the NAMES, from a store that lists keys in byte order of the
 * KEYS — the trap distribution fell into twice on S3 (#4891, #4903). Records are `v2/app/<name>.json`, and the two
 * orders differ: `a.json` sorts after `a-b.json` and after `a.b.json`, but the name `a` sorts before both.
 *
 * Where the orders differ (names are the distribution grammar: [a-z0-9] runs joined by `.`, `_`, `__`, dashes,
 * and `/`). Write K(n) = P + n + ".json". For names x < y:
 * - x not a prefix of y: they differ first at some i with x[i] < y[i], and K(x), K(y) differ first at the same
 *   place, so K(x) < K(y).
 * - x a proper prefix of y, y = x + c + rest: K(x) vs K(y) compares ".json" with c + rest + ".json". If c is `/`,
 *   `_` or alphanumeric (all > `.`), K(x) < K(y). Only c = `-` (< `.`) or c = `.` (then "json" against rest…) can
 *   put K(y) first.
 * So key order inverts a pair of names only when the smaller name p is a prefix of the larger q and q continues
 * p with `-` or `.`: a record can come LATE, after longer names that extend it that way, never early.
 *
 * The walk: list keys from StartAfter = P + after. It misses no name n > after: if `after` is a prefix of n then
 * n + ".json" extends `after`, else they differ first at some i with n[i] > after[i]; either way K(n) > P + after.
 * (Names ≤ after can be listed too, `a` after `a-b`: they are skipped.) For each listed name q, in key order,
 * before q come its pending prefixes: the names p < q with p = q[0..i), q[i] in {`-`,`.`}, K(p) > K(q) (so not
 * listed yet), p > after and below `under`, that exist and were not yielded yet; ascending (shorter first). A
 * pending p's existence is looked up in the batch already fetched (binary search) when K(p) ≤ its last key; only
 * when the batch was truncated before K(p) is it one HEAD. When the walk later reaches K(p) it skips it.
 *
 * Why the output is strictly ascending: (1) everything yielded before a pending p of q is smaller than p — a
 * listed r > p with K(r) < K(q) < K(p) is an inverted pair, so p is a prefix of r continued by `-`/`.`, and p was
 * yielded before r already (not pending); an early p' yielded before such an r is smaller than r, and were it > p,
 * r > p again. (2) everything yielded after q is larger than q — a name s < q with K(s) > K(q) is an inverted pair,
 * so s is a pending prefix of q, yielded now. Each name is yielded once (a set of names yielded early). (A record
 * created during the walk may be missed or come out of place, as on any listing; the next page request sees it.) The
 * cost: the keys read plus at most one HEAD per distinct prefix that falls beyond a truncated batch (an absent
 * one is remembered).
 *
 * Those HEADs are known only once the first listing is back: a second round trip. With `hints`, a walk from a
 * start point it has walked from before sends the HEADs the last such walk needed together with its first listing,
 * so a page that is asked for again (the first page of `_catalog`, every time) costs one round trip. Each HEAD is
 * still sent after the walk began, so what it finds is as fresh as the listing; a hint that no longer fits (a
 * prefix created or removed since) costs at most the round trip it was meant to save, never a wrong name.
 */
import type { ListedRecord } from '../backend.ts';
import { upperBound, compareStrings } from '../record.ts';
import { APP_PREFIX, RECORD_SUFFIX, nameOfRecordKey, recordKey } from '../keys.ts';

/** One ListObjectsV2 page of tree keys, in byte order. */
export interface KeyPage {
  keys: string[];
  /** The ETag of each key (unquoted), where the listing gave one. */
  versions?: (string | undefined)[];
  /** More keys follow this page. */
  truncated: boolean;
}

export interface KeySource {
  /** Keys starting with `prefix`, after `startAfter`, one page: of up to `maxKeys`, else of the store's size. */
  page(prefix: string, startAfter: string | undefined, maxKeys?: number): Promise<KeyPage>;
  /** Whether an object exists at `key` (a HEAD): its version (ETag, unquoted), or undefined when absent. */
  exists(key: string): Promise<{ version?: string } | undefined>;
}

/** The prefixes p of `name` that sort before it by name but after it by key (see above), shortest first. */
export function latePrefixes(name: string): string[] {
  const found: string[] = [];
  const key = recordKey(name);
  for (let i = 1; i < name.length; i++) {
    const c = name[i];
    if (c !== '-' && c !== '.') continue;
    const prefix = name.slice(0, i);
    const prefixKey = APP_PREFIX + prefix + RECORD_SUFFIX;
    if (nameOfRecordKey(prefixKey) !== undefined && prefixKey > key) found.push(prefix);
  }
  return found;
}

/**
 * The late prefixes the last walk from each start point HEADed (see above): a few hundred start points, the most
 * recently used, each with at most MAX_HINTED prefixes — a bounded size, whatever the tree's.
 */
export class PrefixHints {
  private readonly starts = new Map<string, readonly string[]>();
  constructor(private readonly capacity = 256) {}

  get(start: string): readonly string[] {
    const prefixes = this.starts.get(start);
    if (prefixes === undefined) return [];
    this.starts.delete(start);
    this.starts.set(start, prefixes);
    return prefixes;
  }

  set(start: string, prefixes: readonly string[]): void {
    this.starts.delete(start);
    if (prefixes.length === 0) return;
    this.starts.set(start, prefixes.slice(0, MAX_HINTED));
    for (const oldest of this.starts.keys()) {
      if (this.starts.size <= this.capacity) break;
      this.starts.delete(oldest);
    }
  }
}

const MAX_HINTED = 32;

/** The index of `key` in the sorted `keys`, or -1. */
const indexOf = (keys: readonly string[], key: string): number => {
  const at = upperBound(keys, key, (k) => k) - 1;
  return at >= 0 && keys[at] === key ? at : -1;
};

const listed = (name: string, version: string | undefined): ListedRecord =>
  version === undefined ? { name } : { name, version };

export async function* recordNames(
  source: KeySource,
  {
    after,
    under,
    expect,
  }: { after?: string | undefined; under?: string | undefined; expect?: number | undefined },
  hints?: PrefixHints,
): AsyncGenerator<ListedRecord> {
  const listPrefix = under === undefined ? APP_PREFIX : `${APP_PREFIX}${under}/`;
  const fits = (name: string): boolean =>
    (after === undefined || compareStrings(name, after) > 0) &&
    (under === undefined || name.startsWith(`${under}/`));
  if (under !== undefined && (after === undefined || compareStrings(under, after) > 0)) {
    // The namespace itself comes first: `under` < `under/…`, and K(under) is not in the listing below.
    const found = await source.exists(recordKey(under));
    if (found) yield listed(under, found.version);
  }
  const yieldedEarly = new Set<string>();
  /** Prefixes a HEAD found absent: each is asked once per walk, not once per name extending it. */
  const absent = new Set<string>();
  /**
   * The HEADs a page will need — its names' pending prefixes whose keys lie beyond it — sent together up front, so
   * that a page costs two round trips, not one more per prefix. (Each also has a no-op catch: a walk left early
   * must not leave a rejected one unhandled; awaiting it still throws.)
   */
  type Head = Promise<{ version?: string } | undefined>;
  const head = (prefix: string): Head => {
    const asked = source.exists(recordKey(prefix));
    asked.catch(() => undefined);
    return asked;
  };
  const headsBeyond = (keys: readonly string[], last: string, sent: ReadonlyMap<string, Head>) => {
    const heads = new Map<string, Head>();
    for (const key of keys) {
      const name = nameOfRecordKey(key);
      if (name === undefined || !fits(name)) continue;
      for (const prefix of latePrefixes(name)) {
        if (!fits(prefix) || yieldedEarly.has(prefix) || absent.has(prefix) || heads.has(prefix)) continue;
        const prefixKey = recordKey(prefix);
        if (prefixKey <= last) continue;
        heads.set(prefix, sent.get(prefix) ?? head(prefix));
      }
    }
    return heads;
  };
  let startAfter = after === undefined ? undefined : APP_PREFIX + after;
  if (startAfter !== undefined && startAfter < listPrefix) startAfter = undefined;
  // The first page as large as the caller expects to take, and a little more (a page ends before a late prefix's
  // key costs a HEAD); the store's own size after that.
  let maxKeys = expect === undefined ? undefined : expect + Math.ceil(expect / 8) + 2;
  const start = `${listPrefix}\n${startAfter ?? ''}\n${maxKeys ?? ''}`;
  let sent: ReadonlyMap<string, Head> | undefined = new Map(
    (hints?.get(start) ?? []).filter(fits).map((prefix) => [prefix, head(prefix)]),
  );
  for (;;) {
    const { keys, versions, truncated } = await source.page(listPrefix, startAfter, maxKeys);
    maxKeys = undefined;
    const last = keys.at(-1);
    const heads = truncated && last !== undefined ? headsBeyond(keys, last, sent ?? new Map()) : undefined;
    if (sent !== undefined) hints?.set(start, [...(heads?.keys() ?? [])]);
    sent = undefined;
    for (const [i, key] of keys.entries()) {
      const name = nameOfRecordKey(key);
      if (name === undefined || !fits(name)) continue;
      if (yieldedEarly.delete(name)) continue;
      for (const prefix of latePrefixes(name)) {
        if (!fits(prefix) || yieldedEarly.has(prefix) || absent.has(prefix)) continue;
        const prefixKey = recordKey(prefix);
        let found: { version?: string | undefined } | undefined;
        if (last !== undefined && prefixKey <= last) {
          const at = indexOf(keys, prefixKey);
          found = at < 0 ? undefined : { version: versions?.[at] };
        } else found = truncated ? await (heads?.get(prefix) ?? source.exists(prefixKey)) : undefined;
        if (!found) {
          absent.add(prefix);
          continue;
        }
        yieldedEarly.add(prefix);
        yield listed(prefix, found.version);
      }
      yield listed(name, versions?.[i]);
    }
    if (!truncated || last === undefined) return;
    startAfter = last;
  }
}
