/**
 * Which upstream tags a sync mirrors (sync.yaml's `tags`): `names`, then `include` / `exclude` regular
 * expressions (JavaScript syntax, unanchored, as skopeo sync's images-by-tag-regex), then a `semver` range, then
 * the `newest` N by version or by the image's created time. Pure but for `createdOf`, asked only for `by: created`.
 *
 * Versions: a tag is read as `[v]MAJOR[.MINOR[.PATCH]][-prerelease]`, missing parts 0 (`3.20` is 3.20.0), so the
 * tags registries really carry compare as versions; `3.20-alpine` is the prerelease `alpine` of 3.20.0, which a
 * range (npm semver) leaves out unless it names a prerelease itself. Other tags are no version: dropped by a range
 * and by `newest` with `by: semver`.
 */
import semver from 'semver';
import type { TagFilter } from '../../config/sync-schema.ts';

const VERSION = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?$/;

/** The tag as a version, or undefined when it is none. */
export function tagVersion(tag: string): semver.SemVer | undefined {
  const match = VERSION.exec(tag);
  if (!match) return undefined;
  const [, major, minor = '0', patch = '0', pre] = match;
  return semver.parse(`${major}.${minor}.${patch}${pre === undefined ? '' : `-${pre}`}`) ?? undefined;
}

export async function selectTags(
  tags: readonly string[],
  filter: TagFilter,
  createdOf: (tag: string) => Promise<number | undefined>,
): Promise<string[]> {
  let kept = [...new Set(tags)];
  if (filter.names) {
    const names = new Set(filter.names);
    kept = kept.filter((tag) => names.has(tag));
  }
  const include = filter.include?.map((source) => new RegExp(source, 'u'));
  const exclude = filter.exclude?.map((source) => new RegExp(source, 'u'));
  if (include) kept = kept.filter((tag) => include.some((pattern) => pattern.test(tag)));
  if (exclude) kept = kept.filter((tag) => !exclude.some((pattern) => pattern.test(tag)));
  if (filter.semver !== undefined) {
    const range = filter.semver;
    kept = kept.filter((tag) => {
      const version = tagVersion(tag);
      return version !== undefined && semver.satisfies(version, range);
    });
  }
  if (filter.newest !== undefined) {
    if (filter.by === 'semver') {
      const versioned = kept.flatMap((tag) => {
        const version = tagVersion(tag);
        return version ? [{ tag, version }] : [];
      });
      // Highest first; equal versions (1.2 and 1.2.0) by name, so the choice never depends on listing order.
      versioned.sort((a, b) => semver.rcompare(a.version, b.version) || (a.tag < b.tag ? -1 : 1));
      kept = versioned.slice(0, filter.newest).map((item) => item.tag);
    } else {
      const dated = [];
      for (const tag of kept) dated.push({ tag, created: (await createdOf(tag)) ?? -Infinity });
      dated.sort((a, b) => b.created - a.created || (a.tag < b.tag ? -1 : 1));
      kept = dated.slice(0, filter.newest).map((item) => item.tag);
    }
  }
  return kept.sort();
}
