/**
 * Staging content on a local disk while hashing it, and the error every back end gives for bytes that do not
 * match their digest.
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { hasherFor } from '../oci/digest.ts';
import path from 'node:path';
import { ensureDir } from './atomic.ts';

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
 * Streams `input` into a new file in `dir`, hashing as it goes (algorithm of `like`), and fsyncs it. An abort of
 * `signal` stops the copy at once and removes the file.
 */
export async function stageStream(
  dir: string,
  input: AsyncIterable<Uint8Array>,
  like: string,
  onBytes?: (bytes: number) => void,
  signal?: AbortSignal,
): Promise<StagedFile> {
  await ensureDir(dir);
  const target = path.join(dir, `${randomUUID()}.blob`);
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
    // The open runs on the thread pool and can complete after the pipeline failed: remove the file only once the
    // stream has closed, or the file appears after its removal.
    if (!output.closed) await new Promise<void>((resolve) => output.once('close', () => resolve()));
    await fs.rm(target, { force: true });
    throw error;
  }
  return { path: target, digest: `${algorithm}:${hash.digest('hex')}`, size };
}
