/**
 * Storing content under its address on S3 so that the key never holds other bytes, not even for a moment, with
 * any number of concurrent publishers — on a store that ignores x-amz-checksum-sha256 (RGW 16 accepts a wrong one).
 * The bytes are hashed here, on their way out, and the object is made to appear only once they are known good and
 * the publisher commits (backend.ts, `stage`):
 * - up to SMALL_BYTES (manifests, configs, small layers): buffered and hashed; the commit PUTs them;
 * - more: a multipart upload straight to the key (parts are invisible until CompleteMultipartUpload), hashing as
 *   parts go; staged when digest and size match (AbortMultipartUpload otherwise and on any error or abort), the
 *   commit completes it. A publisher killed before its commit leaves an unfinished upload, which gc aborts.
 * The store also checks it got exactly what was sent, before it stores anything: every request is signed with
 * the SHA-256 of its body (SigV4's x-amz-content-sha256, which S3 and RGW verify: XAmzContentSHA256Mismatch), and a
 * single PUT also carries Content-MD5 (BadDigest) and its ETag is compared with our MD5. A part's SHA-256 is
 * computed here, on a worker thread (part-hasher.ts), from the very buffer then sent, while this thread hashes the
 * next part into the digest; the SDK signs that value instead of hashing the part again on this thread. Parts carry
 * no Content-MD5: MD5 costs 5 s of CPU per GiB here (SHA-256 2 s), for a check the signed hash already makes.
 * Reading, hashing and sending overlap: a part is read into one of a few reused shared buffers while earlier ones
 * are hashed and in flight; a buffer is filled again only once its part's request has settled.
 * Concurrent puts of one digest each replace the object with the same verified bytes, atomically.
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
  type UploadPartCommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { hasherFor } from '../../oci/digest.ts';
import type { Input, Pending, PutOptions } from '../backend.ts';
import { DigestMismatchError } from '../content.ts';
import { StorageError } from '../storage-error.ts';
import { partSha256 } from './part-hasher.ts';

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

/**
 * The memory parts are cut into: up to `limit` buffers of PART_BYTES, shared (so part-hasher.ts's worker reads them
 * in place), made when first needed and reused once the part they held is sent. Waiting for a free one is what
 * holds the reading back to the uploads.
 */
class PartBuffers {
  readonly #free: SharedArrayBuffer[] = [];
  readonly #waiting: (() => void)[] = [];
  #made = 0;

  constructor(readonly limit: number) {}

  async take(): Promise<SharedArrayBuffer> {
    while (this.#free.length === 0 && this.#made >= this.limit)
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    const free = this.#free.pop();
    if (free) return free;
    this.#made++;
    return new SharedArrayBuffer(PART_BYTES);
  }

  give(buffer: ArrayBufferLike): void {
    this.#free.push(buffer as SharedArrayBuffer);
    this.#waiting.shift()?.();
  }
}

/**
 * Cuts a stream into parts of exactly PART_BYTES (the last one shorter), each copied into a buffer of `buffers`
 * (a memcpy: a fraction of the cost of the hashing, and it leaves the stream's own chunks to the garbage collector
 * at once). A part is yielded as a Buffer over its shared memory; give its `buffer` back when done with it.
 */
async function* parts(chunks: AsyncIterable<Uint8Array>, buffers: PartBuffers): AsyncGenerator<Buffer> {
  let part: Buffer | undefined;
  let length = 0;
  for await (const chunk of chunks) {
    let offset = 0;
    while (offset < chunk.byteLength) {
      part ??= Buffer.from(await buffers.take());
      const take = Math.min(PART_BYTES - length, chunk.byteLength - offset);
      part.set(chunk.subarray(offset, offset + take), length);
      length += take;
      offset += take;
      if (length === PART_BYTES) {
        yield part;
        part = undefined;
        length = 0;
      }
    }
  }
  if (part) yield part.subarray(0, length);
}

/**
 * UploadPart with our own hash of the body as its x-amz-content-sha256, added before signing: the SDK then signs
 * that value (its signer hashes the body only when the header is absent), and the store refuses a body that does
 * not match it (XAmzContentSHA256Mismatch). So the check is the same as with the SDK's own hash.
 */
function uploadPartCommand(input: UploadPartCommandInput, sha256Hex: string): UploadPartCommand {
  const command = new UploadPartCommand(input);
  command.middlewareStack.add(
    (next) => (args) => {
      const { request } = args as { request?: { headers?: Record<string, string> } };
      if (request?.headers) request.headers['x-amz-content-sha256'] = sha256Hex;
      return next(args);
    },
    { step: 'build', name: 'derrickPartSha256' },
  );
  return command;
}

function checkEtag(target: Target, returned: string | undefined, expected: string): void {
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
  // One buffer being filled while the others are hashed and sent.
  const buffers = new PartBuffers(PARTS_IN_FLIGHT + 1);
  const source = parts(chunksOf(input, signal), buffers)[Symbol.asyncIterator]();
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
    const body = Buffer.from(firstPart); // out of the shared part buffer, which is 8 MiB
    const digestMd5 = md5(body);
    const commit = async (): Promise<void> => {
      const answer = await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: body,
          ContentLength: body.length,
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
  const inFlight = new Set<Promise<void>>();
  let failure: Error | undefined;
  /** Hashes the part on the worker (while this thread hashes the next one into the digest), then sends it. */
  const upload = (body: Buffer, partNumber: number): void => {
    const sent = partSha256(body)
      .then((sha256Hex) =>
        client.send(
          uploadPartCommand(
            {
              Bucket: bucket,
              Key: key,
              UploadId,
              PartNumber: partNumber,
              Body: body,
              ContentLength: body.length,
            },
            sha256Hex,
          ),
          send,
        ),
      )
      .then((answer) => {
        completed.push({ PartNumber: partNumber, ETag: answer.ETag });
      })
      .catch((error: unknown) => {
        failure ??= error instanceof Error ? error : new Error(String(error));
      })
      .finally(() => {
        inFlight.delete(sent);
        buffers.give(body.buffer); // settled: the SDK is done with the body, retries included
      });
    inFlight.add(sent);
  };
  try {
    upload(firstPart, 1);
    let partNumber = 1;
    for (let next: IteratorResult<Buffer> = second; !next.done; next = await source.next()) {
      signal?.throwIfAborted();
      if (failure !== undefined) throw failure;
      const body = next.value;
      hash.update(body);
      size += body.length;
      options.onBytes?.(body.length);
      if (options.size !== undefined && size > options.size) {
        buffers.give(body.buffer);
        break; // already a mismatch: send no more
      }
      upload(body, ++partNumber);
    }
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
    if (options.size !== undefined && size > options.size) {
      for (let next = await source.next(); !next.done; next = await source.next()) {
        hash.update(next.value);
        size += next.value.length;
        buffers.give(next.value.buffer);
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
      await client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          UploadId,
          MultipartUpload: { Parts: completed },
        }),
      );
    } catch (error) {
      await abort();
      throw error;
    }
  };
  return { commit, discard: abort };
}
