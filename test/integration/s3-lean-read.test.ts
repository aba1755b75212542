/**
 * The record read of serve on S3 (src/store/s3/lean-read.ts): a plain GET of a presigned URL of the record, with
 * `If-None-Match` on the ETag it holds, on the real RGW — and every answer it does not understand left to the SDK,
 * which retries and reports as before. A pass-through proxy in front of RGW shows each request.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { openS3Backend } from '../../src/store/s3/s3-backend.ts';
import { freshBucket, s3Env, s3Url } from '../helpers/s3.ts';
import { startS3Proxy, type S3Proxy } from '../helpers/s3-proxy.ts';

const KEY = 'v2/app/lean.json';

async function proxied(
  t: TestContext,
): Promise<{ proxy: S3Proxy; backend: Awaited<ReturnType<typeof openS3Backend>> }> {
  const env = await s3Env();
  const bucket = await freshBucket(t);
  const proxy = await startS3Proxy(env.AWS_ENDPOINT_URL);
  t.after(() => proxy.stop());
  const backend = await openS3Backend(s3Url(bucket, 'tree'), { endpoint: proxy.url, maxAttempts: 3 });
  t.after(() => backend.close());
  return { proxy, backend };
}

const presigned = (url: string): boolean => url.includes('X-Amz-Signature=');

test('a record read is a GET of one presigned URL: 200 with the ETag, 304 while unchanged, 200 after a write, absent after a delete', async (t) => {
  const { proxy, backend } = await proxied(t);
  assert.equal(await backend.write(KEY, Buffer.from('{"v":1}'), 'absent'), 'written');
  const from = proxy.requests.length;
  const first = await backend.read(KEY);
  assert.ok(first.status === 'found');
  assert.equal(first.bytes.toString(), '{"v":1}');
  assert.deepEqual(await backend.read(KEY, first.version), { status: 'unchanged' });
  assert.equal(await backend.write(KEY, Buffer.from('{"v":2}'), { version: first.version }), 'written');
  const second = await backend.read(KEY, first.version);
  assert.ok(second.status === 'found');
  assert.equal(second.bytes.toString(), '{"v":2}');
  assert.notEqual(second.version, first.version);
  const reads = proxy.requests.slice(from).filter((r) => r.method === 'GET');
  assert.deepEqual(
    reads.map((r) => r.status),
    [200, 304, 200],
  );
  assert.ok(
    reads.every((r) => presigned(r.url)),
    'each read went to a presigned URL',
  );
  assert.equal(new Set(reads.map((r) => r.url)).size, 1, 'one URL, signed once, for all three');
  assert.equal(await backend.delete(KEY), 'deleted');
  assert.deepEqual(await backend.read(KEY, second.version), { status: 'absent' });
});

test('an answer the plain GET does not take (503 SlowDown) is left to the SDK, which retries: the read succeeds', async (t) => {
  const { proxy, backend } = await proxied(t);
  assert.equal(await backend.write(KEY, Buffer.from('{"v":1}'), 'absent'), 'written');
  const from = proxy.requests.length;
  proxy.throttle(1);
  const read = await backend.read(KEY);
  assert.ok(read.status === 'found');
  assert.equal(read.bytes.toString(), '{"v":1}');
  const gets = proxy.requests.slice(from);
  assert.deepEqual(
    gets.map((r) => [r.method, r.status, presigned(r.url)]),
    [
      ['GET', 503, true],
      ['GET', 200, false], // the SDK's own signed request
    ],
  );
});

test('while the endpoint is down a read is a StorageError (from the SDK, after its retries), and it reads again once the endpoint is back', async (t) => {
  const { proxy, backend } = await proxied(t);
  assert.equal(await backend.write(KEY, Buffer.from('{"v":1}'), 'absent'), 'written');
  await proxy.stop();
  await assert.rejects(backend.read(KEY), (error: Error) => {
    assert.equal(error.name, 'StorageError');
    return true;
  });
  await proxy.start();
  const read = await backend.read(KEY);
  assert.ok(read.status === 'found');
  assert.ok(presigned(proxy.requests.at(-1)?.url ?? ''), 'back on the plain GET');
});
