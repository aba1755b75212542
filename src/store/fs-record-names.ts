/**
 * Repository names of a file-system tree in byte order of the names: a lazy walk of v2/app, directory by
 * directory, each directory's records (`base` for base.json) and namespaces (`dir/`) sorted as name parts, so the
 * order is the names' and not the files' (`a.json` sorts after `a-b.json`, the name `a` before `a-b`). Whole
 * directories that sort before `after` are skipped: a page costs what it reads, not the size of the tree.
 */
import { promises as fs, statSync } from 'node:fs';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { validateName } from '../oci/names.ts';
import { RECORD_SUFFIX } from './keys.ts';
import type { TreeLayout } from './layout.ts';
import { compareStrings, upperBound } from './record.ts';
import { statSignature } from './stat-signature.ts';

interface ListedEntry {
  /** The entry as a part of a name: `base` for base.json, `dir/` for a directory. */
  rel: string;
  dir: boolean;
  entry: string;
}

export class FsRecordNames {
  private readonly listings:
    LRUCache<string, { signature: string; items: readonly ListedEntry[] }> | undefined;

  constructor(
    private readonly layout: TreeLayout,
    listingCache: number,
  ) {
    this.listings = listingCache > 0 ? new LRUCache({ max: listingCache }) : undefined;
  }

  async *walk(options: { after?: string; under?: string }): AsyncGenerator<string> {
    const { after } = options;
    let startDir = this.layout.appDir;
    let startPrefix = '';
    if (options.under) {
      const trimmed = options.under.replace(/\/+$/, '');
      if (!validateName(trimmed).ok) return;
      // A prefix names a repository, or a namespace directory, or both.
      const exact = await fs.stat(this.layout.recordPath(trimmed)).catch(() => undefined);
      if (exact?.isFile() && (after === undefined || compareStrings(trimmed, after) > 0)) yield trimmed;
      startDir = path.join(this.layout.appDir, ...trimmed.split('/'));
      startPrefix = `${trimmed}/`;
    }
    yield* this.walkDir(startDir, startPrefix, after);
  }

  private async *walkDir(dir: string, prefix: string, after: string | undefined): AsyncGenerator<string> {
    const items = await this.listDir(dir);
    let start = 0;
    if (after?.startsWith(prefix)) {
      // Entries are single components, so the only one that sorts at or before `after` but may hold names after
      // it is the directory `after` runs through, and that is the entry just before the first one after it.
      const rest = after.slice(prefix.length);
      start = upperBound(items, rest, (item) => item.rel);
      const previous = items[start - 1];
      if (previous?.dir && rest.startsWith(previous.rel)) start--;
    }
    for (let i = start; i < items.length; i++) {
      const item = items[i];
      if (!item) break;
      if (item.dir) yield* this.walkDir(path.join(dir, item.entry), prefix + item.rel, after);
      else yield prefix + item.rel;
    }
  }

  /**
   * The record files (`name`) and namespace directories (`name/`) of one directory of v2/app, sorted. With a
   * listing cache, a listing is re-read only when the directory's stat changes (an entry added or removed).
   */
  private async listDir(dir: string): Promise<readonly ListedEntry[]> {
    // The validating stat is synchronous, as the record read's is: a page of the catalog may cross a hundred
    // namespace directories, and a promise stat's trip through the thread pool costs ~10× a direct one (40 µs
    // against 4 µs here), which made such a page cost milliseconds.
    let stat;
    try {
      stat = statSync(dir, { throwIfNoEntry: false });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
      throw error;
    }
    if (!stat) return [];
    const signature = statSignature(stat);
    const hit = this.listings?.get(dir);
    if (hit?.signature === signature) return hit.items;
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch((error: unknown) => {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      throw error;
    });
    const items: ListedEntry[] = [];
    for (const entry of entries) {
      if (entry.isDirectory()) {
        if (validateName(entry.name).ok) items.push({ rel: `${entry.name}/`, dir: true, entry: entry.name });
      } else if (entry.isFile() && entry.name.endsWith(RECORD_SUFFIX)) {
        const base = entry.name.slice(0, -RECORD_SUFFIX.length);
        if (validateName(base).ok) items.push({ rel: base, dir: false, entry: entry.name });
      }
    }
    items.sort((a, b) => compareStrings(a.rel, b.rel));
    this.listings?.set(dir, { signature, items });
    return items;
  }
}
