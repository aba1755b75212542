/**
 * The content store: every blob and manifest once, under v2/content/<algorithm>/<hex>, each verified against its
 * digest while its bytes flow in. Repositories reach content through hard links in v2/web (see layout.ts).
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { hasherFor } from '../oci/digest.ts';
import { ensureDir, fsyncDir } from './atomic.ts';
import type { TreeLayout } from './layout.ts';

export class DigestMismatchError extends Error {
  constructor(
    readonly source: string,
    readonly expected: string,
    readonly actual: string,
    readonly expectedSize: number | undefined,
    readonly actualSize: number,
  ) {
    const size =
      expectedSize !== undefined && expectedSize !== actualSize
        ? `${actualSize} bytes where ${expectedSize} were declared`
        : `digest ${actual}`;
    super(`${source} does not match ${expected}: it has ${size}; the source is corrupt or was modified`);
    this.name = 'DigestMismatchError';
  }
}

export interface StagedFile {
  path: string;
  digest: string;
  size: number;
}

/**
 * Streams `input` into a new staging file, hashing as it goes (algorithm of `like`), and fsyncs it. An abort of
 * `signal` stops the copy at once and removes the file.
 */
export async function stageStream(
  layout: TreeLayout,
  input: AsyncIterable<Uint8Array>,
  like: string,
  onBytes?: (bytes: number) => void,
  signal?: AbortSignal,
): Promise<StagedFile> {
  await ensureDir(layout.stagingDir);
  const target = layout.stagingPath(`${randomUUID()}.blob`);
  const { hash, algorithm } = hasherFor(like);
  let size = 0;
  const meter = async function* (chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of chunks) {
      hash.update(chunk);
      size += chunk.length;
      onBytes?.(chunk.length);
      yield chunk;
    }
  };
  const output = createWriteStream(target, { flags: 'wx', mode: 0o644 });
  try {
    await pipeline(input, meter, output, signal ? { signal } : {});
    const handle = await fs.open(target, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    await fs.rm(target, { force: true });
    throw error;
  }
  return { path: target, digest: `${algorithm}:${hash.digest('hex')}`, size };
}

/** Moves a verified staged file into the content store (a no-op when the content is already there). */
export async function commitStaged(layout: TreeLayout, staged: StagedFile): Promise<string> {
  const target = layout.contentPath(staged.digest);
  await ensureDir(path.dirname(target));
  await fs.rename(staged.path, target);
  await fsyncDir(path.dirname(target));
  return target;
}

/**
 * Stores a stream as the content for `digest`, refusing it (and leaving nothing behind) unless its bytes hash to
 * `digest` and, when given, its length is `size`. `source` names the input in the error.
 */
export async function storeVerified(
  layout: TreeLayout,
  input: AsyncIterable<Uint8Array>,
  digest: string,
  size: number | undefined,
  source: string,
  onBytes?: (bytes: number) => void,
): Promise<string> {
  const staged = await stageStream(layout, input, digest, onBytes);
  if (staged.digest !== digest || (size !== undefined && staged.size !== size)) {
    await fs.rm(staged.path, { force: true });
    throw new DigestMismatchError(source, digest, staged.digest, size, staged.size);
  }
  return commitStaged(layout, staged);
}

/** The content file for `digest` if the store has it with the expected size. */
export async function existingContent(
  layout: TreeLayout,
  digest: string,
  size: number | undefined,
): Promise<string | undefined> {
  const file = layout.contentPath(digest);
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile() || (size !== undefined && stat.size !== size)) return undefined;
    return file;
  } catch {
    return undefined;
  }
}
