/**
 * Reading and writing repository records in the published tree, and walking it in catalog order.
 */
import { promises as fs, statSync } from 'node:fs';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { validateName } from '../oci/names.ts';
import { writeFileAtomic } from './atomic.ts';
import { RECORD_SUFFIX, TreeLayout } from './layout.ts';
import { statSignature } from './stat-signature.ts';
import {
  compareStrings,
  parseRecord,
  RecordError,
  serializeRecord,
  upperBound,
  type Repository,
} from './record.ts';

export type RecordLookup =
  | { found: true; repository: Repository; bytes: Buffer }
  | { found: false; reason: 'absent' | 'collision'; detail?: string };

interface ListedEntry {
  /** The entry as a part of a name: `base` for base.json, `dir/` for a directory. */
  rel: string;
  dir: boolean;
  entry: string;
}

export class Tree {
  readonly layout: TreeLayout;
  private readonly listings:
    LRUCache<string, { signature: string; items: readonly ListedEntry[] }> | undefined;

  /** `listingCache`: how many directory listings of v2/app to keep, validated by stat (0: none, for tools). */
  constructor(dataDir: string, options: { listingCache?: number } = {}) {
    this.layout = new TreeLayout(dataDir);
    const max = options.listingCache ?? 0;
    this.listings = max > 0 ? new LRUCache({ max }) : undefined;
  }

  /** Reads a repository record; throws RecordError when the file exists but is not a valid record. */
  async readRecord(name: string): Promise<RecordLookup> {
    const file = this.layout.recordPath(name);
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return { found: false, reason: 'absent' };
      if (code === 'EISDIR') return { found: false, reason: 'collision', detail: `${file} is a directory` };
      throw error;
    }
    return { found: true, repository: parseRecord(bytes, this.relative(file), name), bytes };
  }

  /** Writes a derrick record atomically (the rename makes the new version visible in one step). */
  async writeRecord(repository: Repository): Promise<void> {
    const file = this.layout.recordPath(repository.name);
    await writeFileAtomic(file, serializeRecord(repository), this.layout.stagingDir);
  }

  /**
   * Says whether a record for `name` could exist without colliding with the tree's other records: the record of
   * `a.json/b` needs a directory `v2/app/a.json/` where the record of `a` is the file `v2/app/a.json`, and the
   * other way round. Returns a message naming the repository in the way, or undefined.
   */
  async findCollision(name: string): Promise<string | undefined> {
    const components = name.split('/');
    // A prefix that exists as a file where one of our directories must be (e.g. `a.json`, the record of `a`).
    for (let i = 1; i < components.length; i++) {
      const prefix = components.slice(0, i);
      const asDir = path.join(this.layout.appDir, ...prefix);
      const stat = await fs.lstat(asDir).catch(() => undefined);
      if (stat && !stat.isDirectory()) {
        const joined = prefix.join('/');
        const what = joined.endsWith(RECORD_SUFFIX)
          ? `the record of repository "${joined.slice(0, -RECORD_SUFFIX.length)}"`
          : 'not a directory';
        return `"${name}" needs the directory ${this.relative(asDir)}, which is ${what}`;
      }
    }
    // Our record file is where another repository's directory is.
    const file = this.layout.recordPath(name);
    const stat = await fs.lstat(file).catch(() => undefined);
    if (stat?.isDirectory()) {
      return `the record of "${name}" would be ${this.relative(file)}, which is a directory of repositories "${name}.json/…"`;
    }
    if (stat && !stat.isFile()) return `${this.relative(file)} exists and is not a regular file`;
    return undefined;
  }

  relative(file: string): string {
    return path.relative(this.layout.root, file) || '.';
  }

  /**
   * Repository names in sorted (byte) order, starting after `after`, under `prefix` when given. Walks v2/app
   * lazily, directory by directory, skipping whole directories that sort before `after`: a page costs what it
   * reads, not the size of the tree.
   */
  async *walkNames(options: { after?: string; prefix?: string } = {}): AsyncGenerator<string> {
    const { after } = options;
    let startDir = this.layout.appDir;
    let startPrefix = '';
    if (options.prefix) {
      const trimmed = options.prefix.replace(/\/+$/, '');
      if (validateName(trimmed).ok) {
        // A prefix names a repository, or a namespace directory, or both.
        const record = this.layout.recordPath(trimmed);
        const exact = await fs.stat(record).catch(() => undefined);
        if (exact?.isFile() && (after === undefined || compareStrings(trimmed, after) > 0)) yield trimmed;
        startDir = path.join(this.layout.appDir, ...trimmed.split('/'));
        startPrefix = `${trimmed}/`;
      } else return;
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
    // The validating stat is synchronous, as the record cache's is: a page of the catalog may cross a hundred
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

  /** Every record, in order, parsed; invalid ones are yielded as errors rather than stopping the walk. */
  async *walkRecords(
    prefix?: string,
  ): AsyncGenerator<{ name: string; repository?: Repository; error?: Error }> {
    for await (const name of this.walkNames(prefix === undefined ? {} : { prefix })) {
      try {
        const lookup = await this.readRecord(name);
        if (lookup.found) yield { name, repository: lookup.repository };
      } catch (error) {
        yield { name, error: error instanceof Error ? error : new RecordError(name, String(error)) };
      }
    }
  }
}
