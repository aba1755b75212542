/**
 * The read side of the published tree: a repository's record, parsed once and re-used only while `stat` says the
 * file is the same (device, inode, size, mtime, ctime). One `stat` per request, and a read only when the record
 * changed — so a publish, a replacement, an in-place edit or a removal is seen by the very next request, with no
 * polling and no watcher. Also what is derived from a record for the hot paths: the sorted tag array and the
 * referrers of each subject.
 */
import { promises as fs, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import type { TreeLayout } from './layout.ts';
import type { ManifestEntry } from './record-schema.ts';
import { parseRecord, RecordError, type Repository } from './record.ts';
import { statSignature } from './stat-signature.ts';

export interface CachedRepository {
  repository: Repository;
  /** Tags in byte order (the record keeps them sorted). */
  tagList: readonly string[];
  /** subject digest → [referrer digest, entry] (built on first use). */
  referrers(): ReadonlyMap<string, readonly (readonly [string, ManifestEntry])[]>;
}

export type RecordResult =
  { found: true; cached: CachedRepository } | { found: false } | { found: false; error: RecordError };

interface Entry {
  signature: string;
  cached: CachedRepository;
}

function derive(repository: Repository): CachedRepository {
  let referrers: Map<string, (readonly [string, ManifestEntry])[]> | undefined;
  return {
    repository,
    tagList: [...repository.tags.keys()],
    referrers() {
      if (!referrers) {
        referrers = new Map();
        for (const [digest, entry] of repository.manifests) {
          if (entry.subject === undefined) continue;
          const list = referrers.get(entry.subject) ?? [];
          list.push([digest, entry] as const);
          referrers.set(entry.subject, list);
        }
      }
      return referrers;
    },
  };
}

export class RecordCache {
  private readonly cache: LRUCache<string, Entry> | undefined;
  private appRoot: string | undefined;

  constructor(
    private readonly layout: TreeLayout,
    maxEntries: number,
  ) {
    this.cache = maxEntries > 0 ? new LRUCache<string, Entry>({ max: maxEntries }) : undefined;
  }

  /** The record of `name` (already validated). Never throws for a bad record: returns its RecordError. */
  async get(name: string): Promise<RecordResult> {
    const file = this.layout.recordPath(name);
    // The one stat of the hot path, done synchronously: on a local (or attribute-cached) file system that is a
    // couple of microseconds, where a promise stat's trip through the thread pool costs several times more and
    // was the largest item in the CPU profile of a manifest HEAD.
    let stat: Stats | undefined;
    try {
      stat = statSync(file, { throwIfNoEntry: false });
    } catch {
      return { found: false }; // ENOTDIR, EACCES…: nothing servable there
    }
    if (!stat?.isFile()) return { found: false };
    const signature = statSignature(stat);
    const hit = this.cache?.get(file);
    if (hit?.signature === signature) return { found: true, cached: hit.cached };

    // Changed or new: make sure the path resolves inside v2/app (no symlink out of the tree), then read it.
    const real = await fs.realpath(file).catch(() => undefined);
    // v2/app may not exist when the server starts (or be a symlink): resolve it once it does.
    this.appRoot ??= await fs.realpath(this.layout.appDir).catch(() => undefined);
    const root = this.appRoot ?? this.layout.appDir;
    if (real === undefined || !real.startsWith(root + path.sep)) {
      return { found: false, error: new RecordError(file, 'resolves outside v2/app (a symlink?); refused') };
    }
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(real);
    } catch {
      return { found: false };
    }
    try {
      const repository = parseRecord(bytes, path.relative(this.layout.root, file), name);
      const cached = derive(repository);
      // Cache under the signature taken before the read: if the file changed meanwhile, the next stat differs.
      this.cache?.set(file, { signature, cached });
      return { found: true, cached };
    } catch (error) {
      if (error instanceof RecordError) return { found: false, error };
      throw error;
    }
  }
}
