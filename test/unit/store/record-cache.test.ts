/**
 * RecordCache's sharing of reads: requests for one record that arrive while it is being read share the next
 * read, never the one already running — so each answer comes from a read that began after its request arrived.
 * The back end here is a stand-in whose reads the test releases one by one (a unit test of the cache's logic; the
 * real back ends are in test/integration/backend-contract.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend, ReadResult } from '../../../src/store/backend.ts';
import { RecordCache } from '../../../src/store/record-cache.ts';
import { emptyRepository, serializeRecord } from '../../../src/store/record.ts';

/** A back end with one record whose reads wait until the test lets them answer, with what is stored then. */
function slowBackend() {
  let stored = serializeRecord({ ...emptyRepository('app'), tags: new Map() });
  let version = 1;
  const pending: (() => void)[] = [];
  let reads = 0;
  const backend = {
    describe: (key: string) => key,
    read: (_key: string, ifNoneMatch?: string): Promise<ReadResult> => {
      reads++;
      return new Promise((resolve) => {
        pending.push(() =>
          resolve(
            ifNoneMatch === String(version)
              ? { status: 'unchanged' }
              : { status: 'found', bytes: stored, version: String(version) },
          ),
        );
      });
    },
  } as unknown as Backend;
  return {
    backend,
    reads: () => reads,
    /** Lets the oldest waiting read answer (with what is stored when it does). */
    release: async () => {
      pending.shift()?.();
      await new Promise((resolve) => setImmediate(resolve));
    },
    publish: (tag: string) => {
      const digest = `sha256:${'a'.repeat(64)}`;
      const repository = {
        ...emptyRepository('app'),
        tags: new Map([[tag, digest]]),
        manifests: new Map([
          [digest, { mediaType: 'application/vnd.oci.image.manifest.v1+json' as const, size: 2 }],
        ]),
      };
      stored = serializeRecord(repository);
      version++;
    },
  };
}

test('requests arriving while a record is read share the next read, which sees what was published before they arrived', async () => {
  const store = slowBackend();
  const cache = new RecordCache(store.backend, 10);
  const first = cache.get('app');
  assert.equal(store.reads(), 1);
  // Published after the first read began: the first may not see it, every later request must.
  store.publish('v2');
  const later = Array.from({ length: 10 }, () => cache.get('app'));
  assert.equal(store.reads(), 1, 'a request joined the running read, or each started its own');
  await store.release(); // the first read answers, the one the ten share begins
  assert.equal(store.reads(), 2);
  await store.release();
  for (const result of await Promise.all(later)) {
    assert.ok(result.found);
    assert.deepEqual([...result.cached.repository.tags.keys()], ['v2']);
  }
  assert.ok((await first).found);
  // Nothing waits any more: the next request starts a read of its own.
  const alone = cache.get('app');
  assert.equal(store.reads(), 3);
  await store.release();
  assert.ok((await alone).found);
});

test('a read that fails fails its own requests only; the requests that waited get a fresh read', async () => {
  let calls = 0;
  const backend = {
    describe: (key: string) => key,
    read: (): Promise<ReadResult> => {
      calls++;
      return calls === 1
        ? new Promise((_, reject) => setImmediate(() => reject(new Error('store down'))))
        : Promise.resolve({ status: 'absent' });
    },
  } as unknown as Backend;
  const cache = new RecordCache(backend, 10);
  const first = cache.get('app');
  const second = cache.get('app');
  await assert.rejects(first, /store down/);
  assert.deepEqual(await second, { found: false });
  assert.equal(calls, 2);
});

test('a record held at the version a listing gives is used without a read; another listed version is read', async () => {
  const store = slowBackend();
  const cache = new RecordCache(store.backend, 10);
  const first = cache.get('app');
  await store.release();
  assert.ok((await first).found);
  assert.equal(store.reads(), 1);
  const held = await cache.get('app', '1');
  assert.ok(held.found);
  assert.equal(store.reads(), 1, 'listed at the version held: no read');
  store.publish('v2');
  const changed = cache.get('app', '2');
  await store.release();
  const result = await changed;
  assert.ok(result.found && result.cached.tagList.includes('v2'));
  assert.equal(store.reads(), 2, 'listed at another version: read');
});
