/**
 * The read side of the published tree: a repository's record, parsed once and re-used only while its back end
 * says the object is the same — a `stat` on a file system (device, inode, size, mtime, ctime), a conditional GET
 * on its ETag on S3. One such check per request, and a read only when the record changed — so a publish, a
 * replacement, an in-place edit or a removal is seen by the very next request, with no polling and no watcher.
 * `ttlSeconds` > 0 trades that for latency: a record younger than that is used without asking (documented as such).
 * Also what is derived from a record for the hot paths: the sorted tag array and the referrers of each subject.
 */
import { LRUCache } from 'lru-cache';
import type { Backend } from './backend.ts';
import { recordKey } from './keys.ts';
import type { ManifestEntry } from './record-schema.ts';
import { parseRecord, RecordError, type Repository } from './record.ts';

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
  version: string;
  cached: CachedRepository;
  /** When the back end last said this version is current (ms since the epoch). */
  checkedAt: number;
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
  /** Records being read, with the requests that arrived meanwhile (they share the next read). */
  private readonly flights = new Map<string, ((result: Promise<RecordResult>) => void)[]>();

  constructor(
    private readonly backend: Backend,
    maxEntries: number,
    private readonly ttlMs = 0,
  ) {
    this.cache = maxEntries > 0 ? new LRUCache<string, Entry>({ max: maxEntries }) : undefined;
  }

  /**
   * The record of `name` (already validated). Never throws for a bad record: returns its RecordError.
   *
   * Requests for one record that arrive while it is being read share the NEXT read, which starts when that one
   * ends: every answer still comes from a read that began after its request arrived (so a publish completed
   * before a request is seen by it), but a hundred concurrent requests for one tag cost two round trips to an
   * object store, not a hundred.
   *
   * `listed`: the record's version as a listing made for this request saw it (a `_catalog` page on S3, whose
   * ListObjectsV2 gives each key's ETag): a record held at that version is current without asking again.
   */
  get(name: string, listed?: string): Promise<RecordResult> {
    const key = recordKey(name);
    const hit = this.cache?.get(key);
    if (hit && listed !== undefined && hit.version === listed) {
      hit.checkedAt = Date.now();
      return Promise.resolve({ found: true, cached: hit.cached });
    }
    if (hit && this.ttlMs > 0 && Date.now() - hit.checkedAt < this.ttlMs)
      return Promise.resolve({ found: true, cached: hit.cached });
    const flight = this.flights.get(key);
    if (flight) return new Promise((resolve) => flight.push(resolve));
    return this.fly(key, name);
  }

  private fly(key: string, name: string): Promise<RecordResult> {
    const waiting: ((result: Promise<RecordResult>) => void)[] = [];
    this.flights.set(key, waiting);
    const result = this.read(key, name);
    const land = (): void => {
      this.flights.delete(key);
      if (waiting.length === 0) return;
      const next = this.fly(key, name);
      for (const resolve of waiting) resolve(next);
    };
    result.then(land, land);
    return result;
  }

  private async read(key: string, name: string): Promise<RecordResult> {
    const hit = this.cache?.get(key);
    const now = Date.now();
    const read = await this.backend.read(key, hit?.version);
    switch (read.status) {
      case 'unchanged':
        if (!hit) return { found: false }; // cannot happen: a version was only given for a hit
        hit.checkedAt = now;
        return { found: true, cached: hit.cached };
      case 'absent':
        if (hit) this.cache?.delete(key);
        return { found: false };
      case 'refused':
        return { found: false, error: new RecordError(this.backend.describe(key), read.why) };
      case 'found':
        try {
          const cached = derive(parseRecord(read.bytes, this.backend.describe(key), name));
          this.cache?.set(key, { version: read.version, cached, checkedAt: now });
          return { found: true, cached };
        } catch (error) {
          if (error instanceof RecordError) return { found: false, error };
          throw error;
        }
    }
  }
}
