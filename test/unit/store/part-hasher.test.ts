import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { partSha256 } from '../../../src/store/s3/part-hasher.ts';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

describe('the SHA-256 of upload parts, on a worker thread', () => {
  test('is the SHA-256 of exactly the view given: its offset and length in the shared buffer', async () => {
    const shared = Buffer.from(new SharedArrayBuffer(3 * 1024 * 1024 + 17));
    randomBytes(shared.length).copy(shared);
    for (const [start, end] of [
      [0, shared.length],
      [5, 1024 * 1024 + 3],
      [7, 7],
    ] as const) {
      const view = shared.subarray(start, end);
      assert.equal(await partSha256(view), sha256(view), `bytes ${start}-${end}`);
    }
  });

  test('answers many parts in flight at once, each with its own hash', async () => {
    const parts = Array.from({ length: 16 }, () => {
      const part = Buffer.from(new SharedArrayBuffer(64 * 1024));
      randomBytes(part.length).copy(part);
      return part;
    });
    assert.deepEqual(await Promise.all(parts.map((part) => partSha256(part))), parts.map(sha256));
  });

  test('refuses memory that is not shared (the worker would hash a copy, not the bytes sent)', async () => {
    await assert.rejects(partSha256(randomBytes(16)), /SharedArrayBuffer/);
  });
});
