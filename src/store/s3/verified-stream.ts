/**
 * Reading content from a store that cannot be trusted to check it (RGW ignores x-amz-checksum-sha256, and an
 * object can be edited behind our back): the bytes are hashed as they pass, and the last chunk is held back until
 * the hash is known. On a mismatch the stream errors instead of delivering it, so a client never receives the
 * whole of a tampered object under that digest (a registry client then fails its own digest check too).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { hasherFor } from '../../oci/digest.ts';
import { DigestMismatchError } from '../content.ts';

export function verifyingStream(digest: string, size: number, source: string): Transform {
  const { hash, algorithm } = hasherFor(digest);
  let held: Buffer | undefined;
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
      hash.update(chunk);
      seen += chunk.length;
      const previous = held;
      held = chunk;
      callback(null, previous);
    },
    flush(callback: TransformCallback): void {
      const actual = `${algorithm}:${hash.digest('hex')}`;
      if (actual !== digest || seen !== size) {
        callback(new DigestMismatchError(source, digest, actual, size, seen));
        return;
      }
      callback(null, held);
    },
  });
}
