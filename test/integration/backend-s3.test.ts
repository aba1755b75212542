/**
 * What only the S3 back end has: its faults (bucket missing, wrong credentials, endpoint down, throttling), what
 * Ceph RGW 16 does that AWS does not (pinned here, so a change of RGW shows), unfinished uploads as debris,
 * presigned URLs for another host, copies of objects too large for one CopyObject, and checkTree's rules. All on
 * the real RGW of scripts/s3.sh; the faults come from a real local proxy in front of it.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, test, type TestContext } from 'node:test';
import {
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { DataDirError } from '../../src/store/data-dir.ts';
import { openS3Backend } from '../../src/store/s3/s3-backend.ts';
import type { S3Options } from '../../src/store/s3/s3-client.ts';
import { StorageError } from '../../src/store/storage-error.ts';
import { DigestMismatchError } from '../../src/store/content.ts';
import { freshBucket, freshS3Backend, rawClient, s3Env, s3Url } from '../helpers/s3.ts';

const sha256 = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const MIB = 1024 * 1024;

interface Proxy {
  url: string;
  /** Stops answering (connections refused), as an endpoint that goes down. */
  down(): Promise<void>;
  /** Answers again, on the same port. */
  up(): Promise<void>;
  /** Requests answered 503 SlowDown so far. */
  throttled: number;
  /** Requests passed on to RGW so far. */
  forwarded: number;
  /** Every PUT forwarded: its URL, the payload hash it was signed with, and the SHA-256 of the body it carried. */
  puts: { url: string; signedSha256: string | undefined; bodySha256: string }[];
}

/**
 * A real HTTP proxy in front of RGW: answers the first `throttle` requests 503 SlowDown as S3 does under load,
 * then forwards everything unchanged (headers included, so signatures stay valid) — or, with `corrupt`, flips
 * one byte of every PUT body on the way, as a broken network path or proxy would.
 */
async function startProxy(t: TestContext, { throttle = 0, corrupt = false } = {}): Promise<Proxy> {
  const target = new URL((await s3Env()).AWS_ENDPOINT_URL);
  const proxy: Proxy = {
    url: '',
    throttled: 0,
    forwarded: 0,
    puts: [],
    down: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
    up: () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve)),
  };
  const server = http.createServer((request, response) => {
    if (proxy.throttled < throttle) {
      proxy.throttled++;
      request.resume();
      response.writeHead(503, { 'content-type': 'application/xml' });
      response.end(
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>',
      );
      return;
    }
    proxy.forwarded++;
    const upstream = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: request.method,
        path: request.url,
        headers: request.headers,
      },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      },
    );
    upstream.on('error', () => response.destroy());
    let first = corrupt && request.method === 'PUT';
    const body = createHash('sha256');
    request.on('data', (chunk: Buffer) => {
      if (first && chunk.length > 0) {
        chunk[0] = chunk[0]! ^ 0xff;
        first = false;
      }
      body.update(chunk);
      upstream.write(chunk);
    });
    request.on('end', () => {
      if (request.method === 'PUT') {
        const signed = request.headers['x-amz-content-sha256'];
        proxy.puts.push({
          url: request.url ?? '',
          signedSha256: typeof signed === 'string' ? signed : undefined,
          bodySha256: body.digest('hex'),
        });
      }
      upstream.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  t.after(() => (server.listening ? proxy.down() : undefined));
  proxy.url = `http://127.0.0.1:${port}`;
  return proxy;
}

async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function openOn(t: TestContext, bucket: string, options: S3Options, prefix = 'tree') {
  const backend = await openS3Backend(s3Url(bucket, prefix), options);
  t.after(() => backend.close());
  return backend;
}

const isStorageError = (code: string, message: RegExp) => (error: unknown) => {
  assert.ok(error instanceof StorageError, `not a StorageError: ${String(error)}`);
  assert.equal(error.code, code);
  assert.match(error.message, message);
  assert.doesNotMatch(error.message, /\n\s+at /); // one sentence, no stack of the SDK
  return true;
};

describe('S3 back end: faults', () => {
  test('a missing bucket is one clear StorageError, on every operation', async (t) => {
    await s3Env();
    const backend = await openOn(t, 'derrick-test-no-such-bucket', {}, 'some/prefix');
    const expected = isStorageError(
      'NoSuchBucket',
      /^s3:\/\/derrick-test-no-such-bucket\/some\/prefix: the bucket does not exist \(NoSuchBucket\); create it or fix --data-dir$/,
    );
    await assert.rejects(backend.checkTree('existing'), expected);
    await assert.rejects(backend.read('v2/app/a.json'), expected);
    await assert.rejects(backend.write('v2/app/a.json', Buffer.from('{}')), expected);
    await assert.rejects(async () => {
      for await (const _ of backend.recordNames({})) break;
    }, expected);
  });

  test('refused credentials are one clear StorageError naming the variables to check', async (t) => {
    const bucket = await freshBucket(t);
    const saved = process.env.AWS_SECRET_ACCESS_KEY;
    process.env.AWS_SECRET_ACCESS_KEY = 'not-the-secret';
    try {
      const backend = await openOn(t, bucket, {});
      const expected = isStorageError('AccessDenied', /refuses the credentials .*AWS_SECRET_ACCESS_KEY/);
      await assert.rejects(backend.checkTree('existing'), expected);
      // A HEAD's 403 has no body to tell why: still the same message.
      await assert.rejects(backend.stat('v2/app/a.json'), expected);
    } finally {
      process.env.AWS_SECRET_ACCESS_KEY = saved;
    }
  });

  test('an endpoint that does not answer is one clear StorageError naming it', async (t) => {
    const bucket = await freshBucket(t);
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const backend = await openOn(t, bucket, { endpoint, maxAttempts: 2 });
    const expected = isStorageError(
      'EndpointDown',
      new RegExp(
        `the S3 endpoint ${endpoint} does not answer \\(ECONNREFUSED\\); start it, or fix AWS_ENDPOINT_URL`,
      ),
    );
    await assert.rejects(backend.read('v2/app/a.json'), expected);
    await assert.rejects(backend.stat('v2/app/a.json'), expected);
  });

  test('an endpoint that goes down and comes back: clear errors meanwhile, then the same back end works again', async (t) => {
    const bucket = await freshBucket(t);
    const proxy = await startProxy(t);
    const backend = await openOn(t, bucket, { endpoint: proxy.url, maxAttempts: 2 });
    assert.equal(await backend.write('v2/app/a.json', Buffer.from('{}')), 'written');
    await proxy.down();
    await assert.rejects(backend.read('v2/app/a.json'), isStorageError('EndpointDown', /does not answer/));
    await proxy.up();
    assert.equal((await backend.read('v2/app/a.json')).status, 'found');
  });

  test('throttling answers (503 SlowDown) are retried with backoff until the store answers', async (t) => {
    const bucket = await freshBucket(t);
    const proxy = await startProxy(t, { throttle: 3 });
    const backend = await openOn(t, bucket, { endpoint: proxy.url, maxAttempts: 5 });
    assert.equal(await backend.write('v2/app/a.json', Buffer.from('{"a":1}')), 'written');
    assert.equal(proxy.throttled, 3);
    const read = await backend.read('v2/app/a.json');
    assert.ok(read.status === 'found');
    assert.equal(read.bytes.toString(), '{"a":1}');
  });

  test('throttling that outlasts every attempt is one clear StorageError', async (t) => {
    const bucket = await freshBucket(t);
    const proxy = await startProxy(t, { throttle: 100 });
    const backend = await openOn(t, bucket, { endpoint: proxy.url, maxAttempts: 2 });
    await assert.rejects(
      backend.stat('v2/app/a.json'),
      isStorageError('SlowDown', /throttling .*after every retry/),
    );
    assert.equal(proxy.throttled, 2);
  });

  test('bytes altered on the way to the store are refused by it (Content-MD5), and nothing is stored', async (t) => {
    const bucket = await freshBucket(t);
    const proxy = await startProxy(t, { corrupt: true });
    const backend = await openOn(t, bucket, { endpoint: proxy.url });
    for (const size of [1000, 9 * MIB]) {
      const bytes = randomBytes(size);
      await assert.rejects(
        backend
          .stage('v2/content/sha256/x', { kind: 'stream', stream: Readable.from([bytes]) }, sha256(bytes), {
            source: 's',
          })
          .then((pending) => pending.commit()),
        // RGW checks the signed payload hash first (the SDK signs the body over plain HTTP), then Content-MD5.
        (error: unknown) =>
          error instanceof StorageError && /^(BadDigest|XAmzContentSHA256Mismatch)$/.test(error.code),
      );
      assert.equal(await backend.stat('v2/content/sha256/x'), undefined);
    }
  });

  test('a record object that is not a record is just bytes at this level', async (t) => {
    const backend = await freshS3Backend(t);
    await backend.write('v2/app/broken.json', Buffer.from('not json {'));
    const read = await backend.read('v2/app/broken.json');
    assert.ok(read.status === 'found');
    assert.equal(read.bytes.toString(), 'not json {');
    const names: string[] = [];
    for await (const { name } of backend.recordNames({})) names.push(name);
    assert.deepEqual(names, ['broken']);
  });
});

describe('S3 back end: multipart uploads', () => {
  const PART = 8 * MIB; // put-verified.ts's PART_BYTES
  /** The bytes in chunks of `chunk`, as a source gives them. */
  const chunked = (bytes: Buffer, chunk: number) =>
    Readable.from(
      (function* () {
        for (let i = 0; i < bytes.length; i += chunk) yield bytes.subarray(i, i + chunk);
      })(),
    );

  test('blobs at and around the part size, in any chunking, are stored byte for byte in as many parts as they fill', async (t) => {
    const backend = await freshS3Backend(t, 'tree');
    const client = await rawClient();
    t.after(() => client.destroy());
    // [size, chunk]: exactly one and two parts, one byte over, chunks that straddle parts, one chunk of 2.5 parts.
    const cases: [number, number][] = [
      [PART, 64 * 1024],
      [PART + 1, 1_000_003],
      [2 * PART, PART],
      [2 * PART + 5 * MIB + 7, 3 * MIB + 1],
      [2 * PART + 4 * MIB, 2 * PART + 4 * MIB],
    ];
    for (const [size, chunk] of cases) {
      const bytes = randomBytes(size);
      const key = `v2/content/sha256/${size}-${chunk}`;
      const pending = await backend.stage(
        key,
        { kind: 'stream', stream: chunked(bytes, chunk) },
        sha256(bytes),
        {
          source: 's',
          size,
        },
      );
      await pending.commit();
      const opened = await backend.open(key);
      assert.ok(opened && (await buffer(opened.stream)).equals(bytes), `${size} in chunks of ${chunk}`);
      // A multipart object's ETag ends in -<parts>: no empty part after a full one, no part too many.
      const head = await client.send(new HeadObjectCommand({ Bucket: backend.bucket, Key: `tree/${key}` }));
      assert.match(
        head.ETag ?? '',
        new RegExp(`-${Math.ceil(size / PART)}"$`),
        `${size} in chunks of ${chunk}`,
      );
    }
  });

  test('every part is signed with the SHA-256 of the very body it carries (x-amz-content-sha256)', async (t) => {
    const bucket = await freshBucket(t);
    const proxy = await startProxy(t);
    const backend = await openOn(t, bucket, { endpoint: proxy.url });
    const bytes = randomBytes(2 * PART + 123);
    const pending = await backend.stage(
      'v2/content/sha256/x',
      { kind: 'stream', stream: chunked(bytes, 64 * 1024) },
      sha256(bytes),
      { source: 's' },
    );
    await pending.commit();
    const parts = proxy.puts.filter((put) => put.url.includes('partNumber='));
    assert.equal(parts.length, 3);
    for (const part of parts) assert.equal(part.signedSha256, part.bodySha256, part.url);
  });

  test('a stream longer than its declared size stops being sent once that is known, and leaves nothing', async (t) => {
    const bucket = await freshBucket(t);
    const proxy = await startProxy(t);
    const backend = await openOn(t, bucket, { endpoint: proxy.url });
    const bytes = randomBytes(5 * PART);
    await assert.rejects(
      backend.stage('v2/content/sha256/x', { kind: 'stream', stream: chunked(bytes, MIB) }, sha256(bytes), {
        source: 's',
        size: PART + 1,
      }),
      (error: unknown) => error instanceof DigestMismatchError && error.actualSize === bytes.length,
    );
    // The first part went before the second one showed the size wrong; nothing after it.
    assert.equal(proxy.puts.filter((put) => put.url.includes('partNumber=')).length, 1);
    assert.equal(await backend.stat('v2/content/sha256/x'), undefined);
    assert.equal((await backend.sweepDebris(new Date(Date.now() + 3_600_000), true)).count, 0);
  });
});

describe('S3 back end: what Ceph RGW 16 does (pinned, so that a change shows)', () => {
  test('PutObject If-Match matches only an unquoted ETag (quoted: always 412); AWS accepts either', async (t) => {
    const bucket = await freshBucket(t);
    const client = await rawClient();
    t.after(() => client.destroy());
    const { ETag } = await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'one' }));
    assert.ok(ETag !== undefined && ETag.startsWith('"'));
    const quoted = ETag;
    await assert.rejects(
      client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'two', IfMatch: ETag })),
      (error: { $metadata?: { httpStatusCode?: number } }) => error.$metadata?.httpStatusCode === 412,
    );
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'two', IfMatch: quoted.replaceAll('"', '') }),
    );
  });

  test('DeleteObject ignores If-Match (a wrong ETag deletes): why an expected delete is check-then-delete', async (t) => {
    const bucket = await freshBucket(t);
    const client = await rawClient();
    t.after(() => client.destroy());
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'one' }));
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'k', IfMatch: 'not-its-etag' }));
    await assert.rejects(client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'k' })));
  });

  test('x-amz-checksum-sha256 is not checked (a wrong one is stored): why the back end hashes itself', async (t) => {
    const bucket = await freshBucket(t);
    const client = await rawClient();
    t.after(() => client.destroy());
    const wrong = createHash('sha256').update('other bytes').digest('base64');
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'bytes', ChecksumSHA256: wrong }),
    );
    assert.ok(await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'k' })));
  });
});

describe('S3 back end: debris, presigned URLs, large copies, checkTree', () => {
  test('an upload left by a killed publisher is invisible, and sweepDebris removes it once older than the cutoff', async (t) => {
    const backend = await freshS3Backend(t, 'tree');
    const client = await rawClient();
    t.after(() => client.destroy());
    // What `kill -9` of a publisher mid-multipart leaves: an upload begun, one part sent, never completed.
    const bucket = backend.bucket;
    const key = 'tree/v2/content/sha256/x';
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    await client.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        PartNumber: 1,
        Body: randomBytes(5 * MIB),
      }),
    );
    // Somebody else's upload beside the tree is not the tree's debris.
    await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'elsewhere/x' }));
    assert.equal(await backend.stat('v2/content/sha256/x'), undefined);
    assert.deepEqual(await backend.sweepDebris(new Date(Date.now() - 3_600_000), false), {
      count: 0,
      bytes: 0,
    });
    const later = new Date(Date.now() + 3_600_000);
    assert.deepEqual(await backend.sweepDebris(later, true), { count: 1, bytes: 5 * MIB });
    assert.deepEqual(await backend.sweepDebris(later, false), { count: 1, bytes: 5 * MIB });
    assert.deepEqual(await backend.sweepDebris(later, false), { count: 0, bytes: 0 });
    const outside = await openOn(t, bucket, {}, 'elsewhere');
    assert.equal((await outside.sweepDebris(later, true)).count, 1);
  });

  test('presignEndpoint: presigned URLs name that host, are signed for it, and work through it', async (t) => {
    const bucket = await freshBucket(t);
    const proxy = await startProxy(t);
    const backend = await openOn(t, bucket, { presignEndpoint: proxy.url });
    await backend.write('v2/web/x/blobs/b', Buffer.from('through the proxy'));
    const url = await backend.presign('v2/web/x/blobs/b', 60, 'application/octet-stream');
    assert.ok(url.startsWith(`${proxy.url}/${bucket}/tree/v2/web/x/blobs/b?`), url);
    const answer = await fetch(url);
    assert.equal(answer.status, 200);
    assert.equal(await answer.text(), 'through the proxy');
    assert.equal(proxy.forwarded, 1);
  });

  test('link copies an object larger than one CopyObject takes part by part (UploadPartCopy)', async (t) => {
    const bucket = await freshBucket(t);
    // 6 MiB stands in for S3's 5 GiB limit of one CopyObject (memstore holds 4 GiB).
    const backend = await openOn(t, bucket, { multipartCopyAbove: 6 * MIB });
    const bytes = randomBytes(13 * MIB + 5);
    const pending = await backend.stage(
      'v2/content/sha256/x',
      { kind: 'stream', stream: Readable.from([bytes]) },
      sha256(bytes),
      { source: 's' },
    );
    await pending.commit();
    await backend.link('v2/content/sha256/x', 'v2/web/a/blobs/x');
    const opened = await backend.open('v2/web/a/blobs/x');
    assert.ok(opened && (await buffer(opened.stream)).equals(bytes));
    // keep() of such an object renews it the same way.
    const info = await backend.stat('v2/web/a/blobs/x');
    assert.ok(info);
    await backend.keep('v2/web/a/blobs/x', { ...info, modified: new Date(0) });
    const renewed = await backend.stat('v2/web/a/blobs/x');
    assert.ok(renewed && renewed.modified > new Date(Date.now() - 600_000));
  });

  test('checkTree: existing needs a tree; new-or-existing takes an empty prefix or a tree, never other objects', async (t) => {
    const bucket = await freshBucket(t);
    const tree = await openOn(t, bucket, {}, 'tree');
    const other = await openOn(t, bucket, {}, 'other');
    const whole = await openOn(t, bucket, {}, '');
    await assert.rejects(tree.checkTree('existing'), (error: unknown) => {
      assert.ok(error instanceof DataDirError);
      assert.equal(
        error.message,
        `no published tree at s3://${bucket}/tree (no object under v2/): publish into it first, or pass --data-dir`,
      );
      return true;
    });
    await tree.checkTree('new-or-existing');
    await tree.write('v2/app/a.json', Buffer.from('{}'));
    await tree.checkTree('existing');
    await tree.checkTree('new-or-existing');
    await other.write('notes.txt', Buffer.from('not a tree'));
    await assert.rejects(other.checkTree('new-or-existing'), /holds objects and no published tree/);
    await assert.rejects(
      whole.checkTree('new-or-existing'),
      new RegExp(`DataDirError: s3://${bucket} holds objects and no published tree`),
    );
  });
});
