/**
 * A published tree in an S3-compatible bucket, under a prefix: `s3://bucket/prefix` holds `prefix/v2/app/…`,
 * `prefix/v2/content/…`, `prefix/v2/web/…` (no prefix: `s3://bucket`). Each Backend operation is the S3 request
 * that does it natively — a conditional GET for a record (`If-None-Match` on its ETag: an unchanged record costs a
 * 304), a conditional PUT for compare-and-swap (`If-Match` with the ETag unquoted, `If-None-Match: *`), a listing
 * from `StartAfter` for the catalog — so that nothing above the interface needs to know it has a bucket.
 * Checked against Ceph RGW 16 (what it does differently is said where it matters) and written for AWS S3 too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
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
} from '../backend.ts';
import { DataDirError, type DataDirUse } from '../data-dir.ts';
import { StorageError } from '../storage-error.ts';
import { copyObject } from './copy.ts';
import { beginGc, sweepUploads, needsRefresh } from './gc.ts';
import { stageVerified } from './put-verified.ts';
import { PrefixHints, recordNames, type KeyPage } from './record-names.ts';
import { LeanReader, UrlCache } from './lean-read.ts';
import { listPage } from './list-page.ts';
import { endpointOf, makeClients, type S3Options } from './s3-client.ts';
import { fromStore, isConflict, isNotFound, isNotModified, storageError } from './s3-errors.ts';
import { verifyingStream } from './verified-stream.ts';

export type { S3Options } from './s3-client.ts';
export { DEFAULT_GC_MIN_AGE_SECONDS } from '../backend.ts';

/** ETags as RGW needs them in `If-Match` (unquoted: quoted it always answers 412; AWS takes either). */
const unquote = (etag: string | undefined): string => (etag ?? '').replaceAll('"', '');

/** `s3://bucket/prefix` → the bucket and the prefix (no leading or trailing `/`; may be empty). */
export function parseS3Url(url: URL): { bucket: string; prefix: string } {
  if (url.protocol !== 's3:' || url.hostname === '')
    throw new DataDirError(
      `--data-dir ${url.href} is not an S3 location: write s3://bucket or s3://bucket/prefix`,
    );
  const prefix = decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, '');
  return { bucket: url.hostname, prefix };
}

export async function openS3Backend(url: URL, options: S3Options = {}): Promise<S3Backend> {
  const { bucket, prefix } = parseS3Url(url);
  const { client, signer } = await makeClients(options);
  return new S3Backend(client, signer, bucket, prefix, options);
}

export class S3Backend implements Backend {
  readonly location: string;
  private readonly endpoint: string;
  private readonly pageSize: number;
  private scratch: string | undefined;
  private readonly lean: LeanReader;
  /** Presigned URLs handed to clients, re-used for half their life. */
  private readonly redirects = new UrlCache();
  /** The late-prefix HEADs each listing start point needed last time, sent with its next listing. */
  private readonly prefixHints = new PrefixHints();

  constructor(
    private readonly client: S3Client,
    private readonly signer: S3Client,
    readonly bucket: string,
    /** The keys' prefix in the bucket, without slashes at either end ('' for the whole bucket). */
    readonly prefix: string,
    private readonly options: S3Options,
  ) {
    this.location = prefix === '' ? `s3://${bucket}` : `s3://${bucket}/${prefix}`;
    this.endpoint = endpointOf(options) ?? 'AWS S3';
    this.pageSize = options.listPageSize ?? 1000;
    this.lean = new LeanReader((fullKey, ttlSeconds) =>
      getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: fullKey }), {
        expiresIn: ttlSeconds,
      }),
    );
  }

  describe(key: string): string {
    return `${this.location}/${key}`;
  }

  /** A private directory under the system's temporary directory, made at first use, removed by close(). */
  get scratchDir(): string {
    this.scratch ??= mkdtempSync(path.join(os.tmpdir(), 'derrick-s3-scratch-'));
    return this.scratch;
  }

  private full(key: string): string {
    return this.prefix === '' ? key : `${this.prefix}/${key}`;
  }

  private relative(fullKey: string): string {
    return this.prefix === '' ? fullKey : fullKey.slice(this.prefix.length + 1);
  }

  private fail(error: unknown): Error {
    return storageError(error, this.location, this.endpoint);
  }

  async read(key: string, ifNoneMatch?: string): Promise<ReadResult> {
    // A presigned URL on a kept-alive connection when the answer is plain (lean-read.ts); else the SDK.
    const lean = await this.lean.read(this.full(key), ifNoneMatch);
    if (lean !== undefined) return lean;
    try {
      const answer = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.full(key),
          ...(ifNoneMatch === undefined ? {} : { IfNoneMatch: `"${ifNoneMatch}"` }),
        }),
      );
      const bytes = Buffer.from((await answer.Body?.transformToByteArray()) ?? []);
      return { status: 'found', bytes, version: unquote(answer.ETag) };
    } catch (error) {
      // A 304 reaches the SDK as an error (GetObject has no body to parse).
      if (isNotModified(error)) return { status: 'unchanged' };
      if (isNotFound(error)) return { status: 'absent' };
      throw this.fail(error);
    }
  }

  async write(key: string, bytes: Uint8Array, expect?: Expectation): Promise<'written' | 'conflict'> {
    const condition =
      expect === undefined
        ? {}
        : expect === 'absent'
          ? { IfNoneMatch: '*' }
          : { IfMatch: unquote(expect.version) };
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.full(key),
          Body: bytes,
          ContentLength: bytes.length,
          ...condition,
        }),
      );
      return 'written';
    } catch (error) {
      if (isConflict(error)) return 'conflict';
      throw this.fail(error);
    }
  }

  /**
   * RGW 16 ignores `If-Match` on DeleteObject (it deleted an object whose ETag did not match, here), so an
   * expected delete is check-then-delete: HEAD, compare, DELETE (still sending If-Match, which AWS honours, so
   * there the check is atomic). The window, on RGW: a writer that replaces the object between our HEAD and our
   * DELETE loses its write — the object is gone although its version was no longer the one expected. It lasts one
   * round trip; callers that cannot afford it must re-check (unpublish reads the record again afterwards).
   */
  async delete(key: string, expect?: Expectation): Promise<'deleted' | 'absent' | 'conflict'> {
    const current = await this.stat(key);
    if (current === undefined) return 'absent';
    if (expect === 'absent') return 'conflict';
    if (expect !== undefined && unquote(expect.version) !== current.version) return 'conflict';
    try {
      await this.client.send(
        new DeleteObjectCommand({
          Bucket: this.bucket,
          Key: this.full(key),
          ...(expect === undefined ? {} : { IfMatch: current.version }),
        }),
      );
      return 'deleted';
    } catch (error) {
      if (isConflict(error)) return 'conflict';
      if (isNotFound(error)) return 'absent';
      throw this.fail(error);
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const answer = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.full(key) }),
      );
      return {
        size: answer.ContentLength ?? 0,
        modified: answer.LastModified ?? new Date(0),
        version: unquote(answer.ETag),
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw this.fail(error);
    }
  }

  async hasChildren(key: string): Promise<boolean> {
    return (await this.page(`${this.full(key)}/`, undefined, 1)).objects.length > 0;
  }

  /** One ListObjectsV2 page of full keys below `fullPrefix`, after `startAfter` (a full key). */
  private async page(fullPrefix: string, startAfter: string | undefined, maxKeys = this.pageSize) {
    try {
      return await listPage(this.client, this.lean, {
        Bucket: this.bucket,
        Prefix: fullPrefix,
        MaxKeys: maxKeys,
        ...(startAfter === undefined ? {} : { StartAfter: startAfter }),
      });
    } catch (error) {
      throw this.fail(error);
    }
  }

  async *list(prefix: string, startAfter?: string): AsyncIterable<ListedObject> {
    let after = startAfter === undefined ? undefined : this.full(startAfter);
    for (;;) {
      const { objects, truncated } = await this.page(this.full(prefix), after);
      for (const object of objects) {
        yield {
          key: this.relative(object.Key),
          size: object.Size,
          modified: object.LastModified,
          version: unquote(object.ETag),
        };
        after = object.Key;
      }
      if (!truncated || objects.length === 0) return;
    }
  }

  recordNames(options: { after?: string; under?: string; expect?: number }): AsyncIterable<ListedRecord> {
    return recordNames(
      {
        page: async (prefix, startAfter, maxKeys): Promise<KeyPage> => {
          const { objects, truncated } = await this.page(
            this.full(prefix),
            startAfter === undefined ? undefined : this.full(startAfter),
            Math.min(maxKeys ?? this.pageSize, this.pageSize),
          );
          return {
            keys: objects.map((object) => this.relative(object.Key)),
            versions: objects.map((object) => unquote(object.ETag)),
            truncated,
          };
        },
        exists: async (key) => {
          const info = await this.stat(key);
          return info === undefined ? undefined : { version: info.version };
        },
      },
      options,
      this.prefixHints,
    );
  }

  async stage(key: string, input: Input, digest: string, options: PutOptions): Promise<Pending> {
    const target = {
      client: this.client,
      bucket: this.bucket,
      key: this.full(key),
      describe: this.describe(key),
    };
    const passOn = (error: unknown): never => {
      // A mismatch, an abort, the source's own failure: theirs to report, as they are.
      if (options.signal?.aborted || !fromStore(error)) throw error;
      throw this.fail(error);
    };
    const pending = await stageVerified(target, input, digest, options).catch(passOn);
    return { commit: () => pending.commit().catch(passOn), discard: () => pending.discard() };
  }

  /** A server-side copy; none when `to` already holds an object of the same size (content is immutable). */
  async link(from: string, to: string): Promise<void> {
    const [source, existing] = await Promise.all([this.stat(from), this.stat(to)]);
    if (source === undefined)
      throw new StorageError(
        this.location,
        `cannot copy ${from} to ${to}: ${from} does not exist`,
        'NoSuchKey',
      );
    // There already: kept from gc like any object a publish reuses.
    if (existing?.size === source.size) return this.keep(to, existing);
    await this.copy(from, to, source.size, false);
  }

  private async copy(from: string, to: string, size: number, refresh: boolean): Promise<void> {
    try {
      await copyObject(
        { client: this.client, bucket: this.bucket, from: this.full(from), to: this.full(to), size, refresh },
        this.options.multipartCopyAbove,
      );
    } catch (error) {
      throw this.fail(error);
    }
  }

  async open(key: string, range?: ByteRange, digest?: string): Promise<Opened | undefined> {
    let answer;
    try {
      answer = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.full(key),
          ...(range === undefined ? {} : { Range: `bytes=${range.start}-${range.end}` }),
        }),
      );
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw this.fail(error);
    }
    const body = answer.Body as Readable;
    const total = /\/(\d+)$/.exec(answer.ContentRange ?? '')?.[1];
    const size = total === undefined ? (answer.ContentLength ?? 0) : Number(total);
    if (digest === undefined || range !== undefined) return { stream: body, size };
    const verifier = verifyingStream(digest, size, this.describe(key));
    // Errors travel to the verifier (the consumer's end); nothing to do here.
    pipeline(body, verifier, () => undefined);
    return { stream: verifier, size };
  }

  readonly presigns = true;

  /** A presigned GET URL, valid for between half and all of `ttlSeconds` (UrlCache). */
  presign(key: string, ttlSeconds: number, contentType: string): Promise<string> {
    return this.redirects.get(`${contentType} ${key}`, ttlSeconds, () =>
      // response-content-type: S3 answers the GET with it (objects are stored without a type of their own).
      getSignedUrl(
        this.signer,
        new GetObjectCommand({ Bucket: this.bucket, Key: this.full(key), ResponseContentType: contentType }),
        { expiresIn: ttlSeconds },
      ),
    );
  }

  localPath(): undefined {
    return undefined;
  }

  /** No registration on S3: gc's age rule (beginGc) protects what a publisher writes or keeps. */
  beginPublish(_hooks: WaitHooks): Promise<Registration> {
    return Promise.resolve({ release: () => Promise.resolve() });
  }

  async keep(key: string, info: ObjectInfo): Promise<void> {
    if (needsRefresh(info)) await this.copy(key, key, info.size, true);
  }

  beginGc(hooks: WaitHooks & { minAgeSeconds: number }): Promise<GcWindow> {
    return Promise.resolve(beginGc(hooks.minAgeSeconds));
  }

  async sweepDebris(cutoff: Date, dryRun: boolean): Promise<{ count: number; bytes: number }> {
    try {
      return await sweepUploads(
        this.client,
        this.bucket,
        this.prefix === '' ? '' : `${this.prefix}/`,
        cutoff,
        dryRun,
      );
    } catch (error) {
      throw this.fail(error);
    }
  }

  /**
   * What data-dir.ts checks on a file system, for a bucket: `existing` needs a tree (some object under
   * `<prefix>/v2/`); `new-or-existing` also takes an empty prefix, but refuses one holding other objects.
   * It also proves, with one request, that the bucket exists and the credentials work.
   */
  async checkTree(use: DataDirUse): Promise<void> {
    if (await this.hasChildren('v2')) return;
    if (use === 'existing')
      throw new DataDirError(
        `no published tree at ${this.location} (no object under v2/): publish into it first, or pass --data-dir`,
      );
    const others = await this.page(this.prefix === '' ? '' : `${this.prefix}/`, undefined, 1);
    // What appeared between the two listings may be another publisher's first object under v2/: look again.
    if (others.objects.length > 0 && !(await this.hasChildren('v2')))
      throw new DataDirError(
        `${this.location} holds objects and no published tree (nothing under v2/): publish into a new or empty prefix, or pass --data-dir the location of a published tree`,
      );
  }

  /** A bucket has no directories to leave empty. */
  tidy(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    if (this.scratch !== undefined) rmSync(this.scratch, { recursive: true, force: true });
    this.scratch = undefined;
    this.lean.close();
    this.redirects.clear();
    this.client.destroy();
    if (this.signer !== this.client) this.signer.destroy();
    return Promise.resolve();
  }
}
