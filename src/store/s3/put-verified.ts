/**
 * Storing content under its address on S3 so that the key never holds other bytes, not even for a moment, with
 * any number of concurrent publishers — on a store that ignores x-amz-checksum-sha256 (RGW 16 accepts a wrong one).
 * The bytes are hashed here, on their way out, and the object is made to appear only once they are known good and
 * the publisher commits (backend.ts, `stage`):
 * - up to SMALL_BYTES (manifests, configs, small layers): buffered and hashed; the commit PUTs them;
 * - more: a multipart upload straight to the key (parts are invisible until CompleteMultipartUpload), hashing as
 *   parts go; staged when digest and size match (AbortMultipartUpload otherwise and on any error or abort), the
 *   commit completes it. A publisher killed before its commit leaves an unfinished upload, which gc aborts.
 * Every request carries Content-MD5 of its body, which S3 and RGW check before they store anything (BadDigest),
 * so the store also got exactly what was sent. Concurrent puts of one digest each replace the object with the same
 * verified bytes, atomically.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { hasherFor } from '../../oci/digest.ts';
import type { Input, Pending, PutOptions } from '../backend.ts';
import { DigestMismatchError } from '../content.ts';
import { StorageError } from '../storage-error.ts';

/** Bytes per part (S3 wants ≥ 5 MiB but for the last; 8 MiB keeps 10,000 parts ≥ 78 GiB). */
export const PART_BYTES = 8 * 1024 * 1024;
/** Objects up to this size are held in memory until their commit (one PUT) rather than uploaded in parts. */
export const SMALL_BYTES = 1024 * 1024;
/** Parts in flight at once: enough to keep a connection busy while the next part is read and hashed. */
export const PARTS_IN_FLIGHT = 4;

export interface Target {
  client: S3Client;
  bucket: string;
  /** The object's full key in the bucket. */
  key: string;
  /** How the object is named to people, for errors. */
  describe: string;
}

const md5 = (bytes: Uint8Array): Buffer => createHash('md5').update(bytes).digest();
const unquote = (etag: string | undefined): string => (etag ?? '').replaceAll('"', '');

function chunksOf(input: Input, signal: AbortSignal | undefined): AsyncIterable<Uint8Array> {
  if (input.kind === 'stream') return input.stream;
  // Re-hashed while read: the staged file is trusted no more than a stream.
  return createReadStream(input.file.path, { highWaterMark: 1024 * 1024, ...(signal ? { signal } : {}) });
}

/** Cuts a stream into buffers of exactly `size` bytes (the last one shorter). */
async function* parts(chunks: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let length = 0;
  for await (const chunk of chunks) {
    let rest = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (length + rest.length >= size) {
      const take = size - length;
      pending.push(rest.subarray(0, take));
      yield Buffer.concat(pending);
      rest = rest.subarray(take);
      pending = [];
      length = 0;
    }
    if (rest.length > 0) {
      // Copy: a stream may reuse its chunk's memory once we return.
      pending.push(Buffer.from(rest));
      length += rest.length;
    }
  }
  if (length > 0) yield Buffer.concat(pending);
}

function checkEtag(target: Target, returned: string | undefined, expected: string): void {
  // RGW 16 answers CompleteMultipartUpload with an empty ETag: nothing to compare then (Content-MD5 covered it).
  const etag = unquote(returned);
  if (etag !== '' && etag !== expected)
    throw new StorageError(
      target.describe,
      `the store answered ETag ${etag} for bytes whose MD5 ETag is ${expected}; the store or a proxy altered them`,
      'BadDigest',
    );
}

export async function stageVerified(
  target: Target,
  input: Input,
  digest: string,
  options: PutOptions,
): Promise<Pending> {
  const { client, bucket, key } = target;
  const { signal } = options;
  signal?.throwIfAborted();
  const { hash, algorithm } = hasherFor(digest);
  let size = 0;
  const mismatch = (): DigestMismatchError | undefined => {
    const actual = `${algorithm}:${hash.digest('hex')}`;
    return actual === digest && (options.size === undefined || options.size === size)
      ? undefined
      : new DigestMismatchError(options.source, digest, actual, options.size, size);
  };
  const source = parts(chunksOf(input, signal), PART_BYTES)[Symbol.asyncIterator]();
  const send = { ...(signal ? { abortSignal: signal } : {}) };
  const first = await source.next();
  const firstPart = first.done ? Buffer.alloc(0) : first.value;
  hash.update(firstPart);
  size += firstPart.length;
  options.onBytes?.(firstPart.length);
  const second = first.done ? first : await source.next();
  if (second.done && firstPart.length <= SMALL_BYTES) {
    const wrong = mismatch();
    if (wrong) throw wrong;
    const digestMd5 = md5(firstPart);
    const commit = async (): Promise<void> => {
      const answer = await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: firstPart,
          ContentLength: firstPart.length,
          ContentMD5: digestMd5.toString('base64'),
        }),
      );
      checkEtag(target, answer.ETag, digestMd5.toString('hex'));
    };
    return { commit, discard: () => Promise.resolve() };
  }

  const { UploadId } = await client.send(
    new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }),
    send,
  );
  if (UploadId === undefined)
    throw new StorageError(target.describe, 'the store gave no multipart upload id', 'Unknown');
  const abort = (): Promise<void> =>
    // Without the (possibly aborted) signal: the upload must go even when the publish was cancelled.
    client
      .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId }))
      .then(() => undefined)
      .catch(() => undefined); // a leftover upload is debris sweepDebris removes
  const completed: CompletedPart[] = [];
  const partMd5s: Buffer[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: Error | undefined;
  const upload = (body: Buffer, partNumber: number): void => {
    const bodyMd5 = md5(body);
    partMd5s[partNumber - 1] = bodyMd5;
    const sent = client
      .send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId,
          PartNumber: partNumber,
          Body: body,
          ContentLength: body.length,
          ContentMD5: bodyMd5.toString('base64'),
        }),
        send,
      )
      .then((answer) => {
        checkEtag(target, answer.ETag, bodyMd5.toString('hex'));
        completed.push({ PartNumber: partNumber, ETag: answer.ETag });
      })
      .catch((error: unknown) => {
        failure ??= error instanceof Error ? error : new Error(String(error));
      })
      .finally(() => inFlight.delete(sent));
    inFlight.add(sent);
  };
  try {
    upload(firstPart, 1);
    let partNumber = 1;
    for (let next: IteratorResult<Buffer> = second; !next.done; next = await source.next()) {
      signal?.throwIfAborted();
      const body = next.value;
      hash.update(body);
      size += body.length;
      options.onBytes?.(body.length);
      if (options.size !== undefined && size > options.size) break; // already a mismatch: send no more
      while (inFlight.size >= PARTS_IN_FLIGHT && failure === undefined) await Promise.race(inFlight);
      if (failure !== undefined) throw failure;
      upload(body, ++partNumber);
    }
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
    if (options.size !== undefined && size > options.size) {
      for (let next = await source.next(); !next.done; next = await source.next()) {
        hash.update(next.value);
        size += next.value.length;
      }
    }
    const wrong = mismatch();
    if (wrong) throw wrong;
  } catch (error) {
    await Promise.allSettled(inFlight);
    await source.return(undefined);
    await abort();
    throw error;
  }
  completed.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
  const commit = async (): Promise<void> => {
    try {
      const answer = await client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          UploadId,
          MultipartUpload: { Parts: completed },
        }),
      );
      checkEtag(target, answer.ETag, `${md5(Buffer.concat(partMd5s)).toString('hex')}-${partMd5s.length}`);
    } catch (error) {
      await abort();
      throw error;
    }
  };
  return { commit, discard: abort };
}
