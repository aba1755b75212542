/**
 * Reading and writing repository records in the published tree, and walking it in catalog order, on whatever
 * back end holds it (backend.ts). A record is replaced by compare-and-swap with a merge-and-retry loop, so
 * concurrent writers of one repository never lose each other's changes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Backend, ListedRecord, WaitHooks } from './backend.ts';
import { FsBackend } from './fs-backend.ts';
import { RECORD_SUFFIX, recordKey } from './keys.ts';
import { parseRecord, RecordError, serializeRecord, type Repository } from './record.ts';

export type RecordLookup =
  { found: true; repository: Repository; bytes: Buffer; version: string } | { found: false };

/** What a change to a record decides: the new record (undefined: remove it) and what to tell the caller. */
export interface RecordChange<T> {
  next: Repository | undefined;
  result: T;
}

/** How many times a compare-and-swap is retried after losing a race before it gives up. */
const MAX_ATTEMPTS = 50;

export class Tree {
  readonly backend: Backend;

  /** A directory (for the file-system back end), or an opened back end (open-backend.ts). */
  constructor(where: string | Backend, options: { listingCache?: number } = {}) {
    this.backend = typeof where === 'string' ? new FsBackend(where, options) : where;
  }

  get location(): string {
    return this.backend.location;
  }

  /** How messages name the record of `name`. */
  describeRecord(name: string): string {
    return this.backend.describe(recordKey(name));
  }

  /** Reads a repository record; throws RecordError when the object exists but is not a valid record. */
  async readRecord(name: string): Promise<RecordLookup> {
    const key = recordKey(name);
    const read = await this.backend.read(key);
    if (read.status === 'refused') throw new RecordError(this.backend.describe(key), read.why);
    if (read.status !== 'found') return { found: false };
    const repository = parseRecord(read.bytes, this.backend.describe(key), name);
    return { found: true, repository, bytes: read.bytes, version: read.version };
  }

  /** Writes a derrick record as it is, whatever is there (tools that own the whole tree, tests). */
  async writeRecord(repository: Repository): Promise<void> {
    await this.backend.write(recordKey(repository.name), serializeRecord(repository));
  }

  /**
   * Reads the record of `name`, lets `change` decide what it becomes, and writes that only if nobody changed the
   * record meanwhile; otherwise reads again and asks again. `change` may throw to refuse (nothing is written).
   */
  async updateRecord<T>(
    name: string,
    change: (current: Repository | undefined) => RecordChange<T>,
    hooks: { wait?: WaitHooks; onRetry?: () => void } = {},
  ): Promise<T> {
    const { wait, onRetry } = hooks;
    const key = recordKey(name);
    for (let attempt = 1; ; attempt++) {
      const current = await this.readRecord(name);
      const { next, result } = change(current.found ? current.repository : undefined);
      const expect = current.found ? { version: current.version } : ('absent' as const);
      let outcome: string;
      if (next !== undefined) outcome = await this.backend.write(key, serializeRecord(next), expect, wait);
      else outcome = current.found ? await this.backend.delete(key, expect, wait) : 'absent';
      if (outcome !== 'conflict') return result;
      if (attempt >= MAX_ATTEMPTS)
        throw new Error(
          `${this.backend.describe(key)} kept changing under ${MAX_ATTEMPTS} attempts to update it; try again`,
        );
      if (attempt === 1) onRetry?.();
      await sleep(Math.random() * Math.min(1000, 10 * 2 ** attempt));
    }
  }

  /**
   * Says whether a record for `name` could exist without colliding with the tree's other records: the record of
   * `a.json/b` needs a directory `v2/app/a.json/` where the record of `a` is the file `v2/app/a.json`, and the
   * other way round. A bucket could hold both, but the same rule holds there, so that every tree can be carried
   * to a file system. Returns a message naming the repository in the way, or undefined.
   */
  async findCollision(name: string): Promise<string | undefined> {
    const components = name.split('/');
    for (let i = 1; i < components.length; i++) {
      const joined = components.slice(0, i).join('/');
      const key = `v2/app/${joined}`;
      if (await this.backend.stat(key)) {
        const what = joined.endsWith(RECORD_SUFFIX)
          ? `the record of repository "${joined.slice(0, -RECORD_SUFFIX.length)}"`
          : 'not a directory';
        return `"${name}" needs the directory ${this.backend.describe(key)}/, which is ${what}`;
      }
    }
    const key = recordKey(name);
    if (await this.backend.hasChildren(key)) {
      return `the record of "${name}" would be ${this.backend.describe(key)}, which is a directory of repositories "${name}.json/…"`;
    }
    return undefined;
  }

  /** Repository names in byte order, after `after`, below the namespace `prefix` (itself included). */
  async *walkNames(options: { after?: string; prefix?: string } = {}): AsyncIterable<string> {
    for await (const { name } of this.walkListed(options)) yield name;
  }

  /** As walkNames, each name with its record's version where the back end's listing gives it (ListedRecord). */
  walkListed(
    options: { after?: string; prefix?: string; expect?: number } = {},
  ): AsyncIterable<ListedRecord> {
    return this.backend.recordNames({
      ...(options.after === undefined ? {} : { after: options.after }),
      ...(options.prefix === undefined ? {} : { under: options.prefix }),
      ...(options.expect === undefined ? {} : { expect: options.expect }),
    });
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
