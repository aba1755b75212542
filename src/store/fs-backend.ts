/**
 * The published tree in a directory on a file system. Writes are write-to-staging + fsync + rename on the same
 * file system; a version is the file's stat signature (a rename gives a new inode, an edit in place a new mtime);
 * a compare-and-swap holds the key's lock (locks.ts) only while it compares and renames. gc is kept away from
 * running publishers by registrations and the gc lock, so it may delete whatever nothing references.
 */
import { constants, promises as fs, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { linkAtomic, sameFile, writeFileAtomic, ensureDir, fsyncDir } from './atomic.ts';
import type {
  Backend,
  ByteRange,
  Expectation,
  GcWindow,
  Input,
  ListedObject,
  ListedRecord,
  ObjectInfo,
  Opened,
  Pending,
  PutOptions,
  ReadResult,
  Registration,
  WaitHooks,
} from './backend.ts';
import { checkDataDir, type DataDirUse } from './data-dir.ts';
import { DigestMismatchError, stageStream, type StagedFile } from './content.ts';
import { TreeLayout } from './layout.ts';
import { nameOfRecordKey } from './keys.ts';
import { acquireGcLock, acquireLock, registerPublisher, repositoryLockKey } from './locks.ts';
import { FsRecordNames } from './fs-record-names.ts';
import { statSignature } from './stat-signature.ts';

/** How long a compare-and-swap waits for another one on the same key (they hold the lock for a rename). */
const CAS_LOCK_TIMEOUT_MS = 60_000;
/** gc on a file system waits for every publisher instead of an age rule: any unreferenced object may go. */
const END_OF_TIME = new Date(8.64e15);

function info(stat: Stats): ObjectInfo {
  return { size: stat.size, modified: stat.mtime, version: statSignature(stat) };
}

function statQuiet(file: string): Stats | undefined {
  try {
    return statSync(file, { throwIfNoEntry: false });
  } catch {
    return undefined; // ENOTDIR, EACCES…: nothing there we could read
  }
}

/** `v2/app` of `v2/app/a/b.json`. */
function areaOf(key: string): string {
  return key.split('/', 2).join('/');
}

export class FsBackend implements Backend {
  readonly layout: TreeLayout;
  readonly location: string;
  readonly scratchDir: string;
  readonly presigns = false;
  private readonly names: FsRecordNames;
  private readonly realAreas = new Map<string, string>();

  /** `listingCache`: how many directory listings of v2/app to keep, validated by stat (0: none, for tools). */
  constructor(dataDir: string, options: { listingCache?: number } = {}) {
    this.layout = new TreeLayout(dataDir);
    this.location = this.layout.root;
    this.scratchDir = this.layout.stagingDir;
    this.names = new FsRecordNames(this.layout, options.listingCache ?? 0);
  }

  describe(key: string): string {
    return key;
  }

  localPath(key: string): string {
    return this.layout.pathOf(key);
  }

  async read(key: string, ifNoneMatch?: string): Promise<ReadResult> {
    const file = this.layout.pathOf(key);
    // The one stat of serve's hot path, done synchronously: on a local (or attribute-cached) file system that is a
    // couple of microseconds, where a promise stat's trip through the thread pool costs several times more and
    // was the largest item in the CPU profile of a manifest HEAD.
    const stat = statQuiet(file);
    if (!stat?.isFile()) return { status: 'absent' };
    if (ifNoneMatch !== undefined && statSignature(stat) === ifNoneMatch) return { status: 'unchanged' };
    // Changed or new: make sure the path resolves inside its part of the tree (v2/app for a record: no symlink out
    // of it), then read it through one handle, so that the version given is the version of these bytes.
    const real = await fs.realpath(file).catch(() => undefined);
    const area = await this.realArea(key);
    if (real === undefined || !real.startsWith(area + path.sep))
      return { status: 'refused', why: `${key} resolves outside ${areaOf(key)} (a symlink?); refused` };
    let handle;
    try {
      handle = await fs.open(real, constants.O_RDONLY);
    } catch {
      return { status: 'absent' };
    }
    try {
      const opened = await handle.stat();
      return { status: 'found', bytes: await handle.readFile(), version: statSignature(opened) };
    } finally {
      await handle.close();
    }
  }

  /** The real path of the part of the tree a key is in (`v2/app`, `v2/content`…), resolved once it exists. */
  private async realArea(key: string): Promise<string> {
    const area = areaOf(key);
    let real = this.realAreas.get(area);
    if (real === undefined) {
      // It may not exist when the server starts (or be a symlink): resolved once it does.
      real = await fs.realpath(this.layout.pathOf(area)).catch(() => undefined);
      if (real !== undefined) this.realAreas.set(area, real);
    }
    return real ?? this.layout.pathOf(area);
  }

  async write(
    key: string,
    bytes: Uint8Array,
    expect?: Expectation,
    wait?: WaitHooks,
  ): Promise<'written' | 'conflict'> {
    const file = this.layout.pathOf(key);
    if (expect === undefined) {
      await writeFileAtomic(file, bytes, this.layout.stagingDir);
      return 'written';
    }
    return this.compareAndSwap(key, expect, wait, () => writeFileAtomic(file, bytes, this.layout.stagingDir));
  }

  async delete(
    key: string,
    expect?: Expectation,
    wait?: WaitHooks,
  ): Promise<'deleted' | 'absent' | 'conflict'> {
    const file = this.layout.pathOf(key);
    const remove = async (): Promise<void> => {
      await fs.rm(file);
      await fsyncDir(path.dirname(file));
    };
    if (!statQuiet(file)?.isFile())
      return expect === undefined || expect === 'absent' ? 'absent' : 'conflict';
    if (expect === undefined) {
      await remove().catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      });
      return 'deleted';
    }
    const outcome = await this.compareAndSwap(key, expect, wait, remove);
    return outcome === 'written' ? 'deleted' : outcome;
  }

  /**
   * Runs `change` under the key's lock if the file is still as `expect`ed. A record's lock is its repository's, the
   * one every derrick writer of that record has always taken.
   */
  private async compareAndSwap(
    key: string,
    expect: Expectation,
    wait: WaitHooks | undefined,
    change: () => Promise<void>,
  ): Promise<'written' | 'conflict'> {
    const name = nameOfRecordKey(key);
    const lockKey = name === undefined ? `key:${key}` : repositoryLockKey(name);
    const lock = await acquireLock(
      this.layout,
      lockKey,
      wait?.timeoutMs ?? CAS_LOCK_TIMEOUT_MS,
      wait?.onWait,
    );
    try {
      const stat = statQuiet(this.layout.pathOf(key));
      const current = stat?.isFile() ? statSignature(stat) : undefined;
      const matches = expect === 'absent' ? current === undefined : current === expect.version;
      if (!matches) return 'conflict';
      await change();
      return 'written';
    } finally {
      await lock.release();
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const stat = await fs.stat(this.layout.pathOf(key)).catch(() => undefined);
    return stat?.isFile() ? info(stat) : undefined;
  }

  async hasChildren(key: string): Promise<boolean> {
    const stat = await fs.lstat(this.layout.pathOf(key)).catch(() => undefined);
    return stat?.isDirectory() ?? false;
  }

  /**
   * A depth-first walk in byte order of keys: a directory `d` sorts as `d/` among its siblings, which is where
   * every key below it sorts. Directories wholly before `startAfter` are not entered.
   */
  async *list(prefix: string, startAfter?: string): AsyncGenerator<ListedObject> {
    yield* this.walk(prefix, startAfter);
  }

  private async *walk(prefix: string, startAfter: string | undefined): AsyncGenerator<ListedObject> {
    const dir = this.layout.pathOf(prefix.slice(0, -1));
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch((error: unknown) => {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      throw error;
    });
    const items = entries
      .map((entry) => ({ entry, key: prefix + entry.name + (entry.isDirectory() ? '/' : '') }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const { entry, key } of items) {
      if (entry.isDirectory()) {
        if (startAfter !== undefined && key <= startAfter && !startAfter.startsWith(key)) continue;
        yield* this.walk(key, startAfter);
        continue;
      }
      if (startAfter !== undefined && key <= startAfter) continue;
      if (!entry.isFile() && !entry.isSymbolicLink()) continue;
      const file = path.join(dir, entry.name);
      // A symlink (the EMLINK fallback of linkAtomic) counts as the object it points to.
      const stat = await fs.stat(file).catch(() => fs.lstat(file).catch(() => undefined));
      if (stat) yield { key, ...info(stat) };
    }
  }

  /** Names only: a directory listing says nothing of a record's version (its stat signature). */
  async *recordNames(options: {
    after?: string;
    under?: string;
    expect?: number;
  }): AsyncIterable<ListedRecord> {
    for await (const name of this.names.walk(options)) yield { name };
  }

  async stage(key: string, input: Input, digest: string, options: PutOptions): Promise<Pending> {
    let staged: StagedFile;
    if (input.kind === 'staged') staged = input.file;
    else
      staged = await stageStream(
        this.layout.stagingDir,
        input.stream,
        digest,
        options.onBytes,
        options.signal,
      );
    const discard = (): Promise<void> => fs.rm(staged.path, { force: true });
    if (staged.digest !== digest || (options.size !== undefined && staged.size !== options.size)) {
      await discard();
      throw new DigestMismatchError(options.source, digest, staged.digest, options.size, staged.size);
    }
    const target = this.layout.pathOf(key);
    const commit = async (): Promise<void> => {
      try {
        await ensureDir(path.dirname(target));
        await fs.rename(staged.path, target);
      } catch (error) {
        await discard();
        throw error;
      }
      await fsyncDir(path.dirname(target));
    };
    return { commit, discard };
  }

  async link(from: string, to: string): Promise<void> {
    const source = this.layout.pathOf(from);
    const target = this.layout.pathOf(to);
    if (await sameFile(source, target)) return;
    await linkAtomic(source, target, this.layout.stagingDir);
    await fsyncDir(path.dirname(target));
  }

  async open(key: string, range?: ByteRange): Promise<Opened | undefined> {
    let handle;
    try {
      handle = await fs.open(this.layout.pathOf(key), constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch {
      return undefined;
    }
    const stat = await handle.stat();
    if (!stat.isFile()) {
      await handle.close();
      return undefined;
    }
    const stream = handle.createReadStream({
      ...(range ?? {}),
      highWaterMark: 256 * 1024,
    });
    return { stream, size: stat.size };
  }

  presign(): Promise<string | undefined> {
    return Promise.resolve(undefined);
  }

  beginPublish(hooks: WaitHooks): Promise<Registration> {
    return registerPublisher(this.layout, hooks.timeoutMs, hooks.onWait, hooks.signal);
  }

  keep(): Promise<void> {
    return Promise.resolve();
  }

  async beginGc(hooks: WaitHooks & { minAgeSeconds: number }): Promise<GcWindow> {
    const lock = await acquireGcLock(this.layout, hooks.timeoutMs, hooks.onWait);
    return {
      cutoff: END_OF_TIME,
      rule: 'every publisher has finished and new ones wait for this gc',
      release: () => lock.release(),
    };
  }

  async sweepDebris(cutoff: Date, dryRun: boolean): Promise<{ count: number; bytes: number }> {
    const result = { count: 0, bytes: 0 };
    const entries = await fs.readdir(this.layout.stagingDir).catch(() => [] as string[]);
    for (const entry of entries) {
      const file = path.join(this.layout.stagingDir, entry);
      const stat = await fs.lstat(file).catch(() => undefined);
      if (!stat || stat.mtime >= cutoff) continue;
      result.bytes += stat.isFile() && stat.nlink === 1 ? stat.size : 0;
      result.count++;
      if (!dryRun) await fs.rm(file, { recursive: true, force: true });
    }
    return result;
  }

  /** Directories left empty below `prefix` by gc and unpublish. */
  async tidy(prefix: string): Promise<void> {
    const sweep = async (dir: string): Promise<boolean> => {
      const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
      let empty = true;
      for (const entry of entries) {
        if (entry.isDirectory() && (await sweep(path.join(dir, entry.name))))
          await fs.rmdir(path.join(dir, entry.name)).catch(() => undefined);
        else empty = false;
      }
      return empty;
    };
    await sweep(this.layout.pathOf(prefix.slice(0, -1)));
  }

  checkTree(use: DataDirUse): Promise<void> {
    checkDataDir(this.layout, use);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
