/**
 * Where a published tree lives: the few operations the tree needs from its storage, and nothing else. Everything
 * above this interface (serve, publish, unpublish, gc, verify, ls, migrate, copy-tree) works on keys — the tree's
 * paths relative to its root, `/`-separated, such as `v2/app/library/busybox.json` (keys.ts builds every one from
 * a validated name or digest) — and never knows which back end it has. Two implement it: a directory on a file
 * system (fs-backend.ts) and an S3-compatible bucket under a prefix (s3/).
 *
 * The consistency rules both keep:
 * - `write` replaces an object atomically: a reader sees the old bytes or the new ones, whole. With `expect` it is
 *   a compare-and-swap, which is how concurrent publishers of one repository never lose a tag.
 * - `read` with `ifNoneMatch` costs no transfer and no parse when the object is unchanged (a `stat` on a file
 *   system, a conditional GET on S3), so a record can be read on every request and a publish is visible at the next.
 * - `stage` sends bytes where nobody sees them yet (a staging file, the parts of an unfinished multipart upload)
 *   and checks them against their digest; only `commit` makes them appear under the content address. So not even
 *   for a moment does that key hold other bytes, whatever number of publishers race, and a publisher stopped
 *   before its commit leaves the visible tree as it was (the next gc removes its debris).
 */
import type { Readable } from 'node:stream';
import type { StagedFile } from './content.ts';

/** What a back end knows about one object. `version` changes whenever the bytes may have. */
export interface ObjectInfo {
  size: number;
  modified: Date;
  /** An opaque validator: the file's stat signature, the object's ETag. */
  version: string;
}

export interface ListedObject extends ObjectInfo {
  key: string;
}

export type ReadResult =
  | { status: 'absent' }
  /** `ifNoneMatch` was given and is still the object's version. */
  | { status: 'unchanged' }
  | { status: 'found'; bytes: Buffer; version: string }
  /** Something is there that must not be read as an object: a directory, a symlink leaving the tree. */
  | { status: 'refused'; why: string };

/** `absent`: only if there is no object; a version: only if the object still has it. */
export type Expectation = 'absent' | { version: string };

/**
 * Bytes to store: a stream, or a file a source already staged in `scratchDir` and hashed as it went (a back end
 * that moves the file trusts that hash; one that reads it again checks it again).
 */
export type Input =
  { kind: 'stream'; stream: AsyncIterable<Uint8Array> } | { kind: 'staged'; file: StagedFile };

export interface PutOptions {
  /** Names the input in a DigestMismatchError. */
  source: string;
  /** The declared size; a different length is a mismatch too. */
  size?: number;
  onBytes?: (bytes: number) => void;
  /** Stops the copy at once; nothing is left under the key. */
  signal?: AbortSignal;
}

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

export interface Opened {
  stream: Readable;
  /** The whole object's size (not the range's). */
  size: number;
}

/** Verified bytes waiting to appear under their key. */
export interface Pending {
  /** Makes them appear (a rename; CompleteMultipartUpload). */
  commit(): Promise<void>;
  /** Throws them away (nothing was visible). */
  discard(): Promise<void>;
}

export interface Registration {
  release(): Promise<void>;
}

/**
 * How old an unreferenced object must be before gc takes it where no lock keeps gc and publishers apart (object
 * storage); what publishers there are built for (docs/storage.md, gc's rule).
 */
export const DEFAULT_GC_MIN_AGE_SECONDS = 3600;

/** What gc may delete: objects last modified before `cutoff`, which its back end's rule makes safe. */
export interface GcWindow {
  cutoff: Date;
  /** One sentence for the operator: why objects newer than the cutoff are kept. */
  rule: string;
  release(): Promise<void>;
}

/** A repository name from a listing of records, with the record's version when the listing says it. */
export interface ListedRecord {
  name: string;
  version?: string;
}

export interface WaitHooks {
  /** Called once when the operation has to wait (for a gc, another publisher). */
  onWait?: () => void;
  signal?: AbortSignal;
  timeoutMs: number;
}

export interface Backend {
  /** How the tree is named to people: `/srv/registry`, `s3://bucket/prefix`. */
  readonly location: string;
  /** How one key is named to people (`v2/app/a.json`, `s3://bucket/prefix/v2/app/a.json`). */
  describe(key: string): string;
  /** A local directory sources may stage files into (docker-archive layers), then hand over as `staged`. */
  readonly scratchDir: string;

  // Objects addressed by key (records, manifests).
  read(key: string, ifNoneMatch?: string): Promise<ReadResult>;
  /**
   * Atomic replace; with `expect`, only when the object is still as expected. `wait`: how long a back end that
   * serialises compare-and-swaps (a lock on a file system) may wait for another one.
   */
  write(
    key: string,
    bytes: Uint8Array,
    expect?: Expectation,
    wait?: WaitHooks,
  ): Promise<'written' | 'conflict'>;
  delete(key: string, expect?: Expectation, wait?: WaitHooks): Promise<'deleted' | 'absent' | 'conflict'>;
  /** The object's facts, or undefined when there is no regular object at `key`. */
  stat(key: string): Promise<ObjectInfo | undefined>;
  /** Whether keys exist below `key + '/'` (on a file system: `key` is a directory). */
  hasChildren(key: string): Promise<boolean>;
  /** Every object below `prefix` (which ends with `/`), in byte order of their keys, after `startAfter`. */
  list(prefix: string, startAfter?: string): AsyncIterable<ListedObject>;
  /**
   * Repository names with a record, in byte order of the *names* (not of their keys: `a.json` sorts after
   * `a-b.json`, but `a` before `a-b`), after `after`, below the namespace `under` (itself included). A page costs
   * what it reads, not the size of the tree. Each comes with its record's version where the listing gives it for
   * free (S3's ETag), so a reader holding that version of the record need not ask again. `expect`: about how many
   * names the caller means to take (a `_catalog` page's n + 1), so that a store listing in pages reads about that
   * many keys first, not its page size.
   */
  recordNames(options: { after?: string; under?: string; expect?: number }): AsyncIterable<ListedRecord>;

  // Content.
  /**
   * Sends `input` towards `key`, unseen, and checks that its bytes hash to `digest` (and are `options.size` long);
   * otherwise throws DigestMismatchError and leaves nothing. Concurrent stages and commits of one digest are safe:
   * each commit is all or nothing, and they all hold the same bytes.
   */
  stage(key: string, input: Input, digest: string, options: PutOptions): Promise<Pending>;
  /** Makes `to` hold the object at `from` without sending its bytes (a hard link; a server-side copy). */
  link(from: string, to: string): Promise<void>;
  /**
   * Opens an object for reading, whole or a range; undefined when absent. `digest`: the object is content, and
   * a back end that cannot trust its store fails a whole read whose bytes do not hash to it before its last byte.
   */
  open(key: string, range?: ByteRange, digest?: string): Promise<Opened | undefined>;
  /** Whether `presign` gives URLs (a bucket does; a directory has no URL of its own). */
  readonly presigns: boolean;
  /**
   * A URL that lets anybody GET the object for at least half of `ttlSeconds` and at most all of it (a URL may be
   * handed out again while it has half its life left), answered with `contentType` (a manifest's media type:
   * clients pick the manifest's schema by it); undefined when the back end has none.
   */
  presign(key: string, ttlSeconds: number, contentType: string): Promise<string | undefined>;
  /** The object's file when the tree is on a local file system (sendfile, nginx); undefined otherwise. */
  localPath(key: string): string | undefined;

  // Coordination with gc.
  /** Registers a publisher (also unpublish, migrate) so that gc cannot take what it is about to reference. */
  beginPublish(hooks: WaitHooks): Promise<Registration>;
  /** Called when a publish relies on an object already stored, so that gc will not take it meanwhile. */
  keep(key: string, info: ObjectInfo): Promise<void>;
  /** Starts a gc: what it may delete. */
  beginGc(hooks: WaitHooks & { minAgeSeconds: number }): Promise<GcWindow>;
  /** Removes what interrupted writers left (staging files, unfinished uploads) from before `cutoff`. */
  sweepDebris(cutoff: Date, dryRun: boolean): Promise<{ count: number; bytes: number }>;
  /** Removes what is left empty below `prefix` (directories on a file system; a bucket has none). */
  tidy(prefix: string): Promise<void>;
  /**
   * Throws DataDirError (or StorageError) unless the location is fit for a command: `existing`, a published tree
   * (`v2/` in it); `new-or-existing`, also a new or empty one. Reads and creates nothing else.
   */
  checkTree(use: 'existing' | 'new-or-existing'): Promise<void>;
  /** Lets go of connections and handles, so that a command can exit. */
  close(): Promise<void>;
}
