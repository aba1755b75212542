/**
 * derrick serve over a bucket when the store misbehaves, each fault on the real test S3 server (Ceph RGW), with a
 * forwarding proxy (helpers/s3-proxy.ts) where the fault is the network's: the endpoint down at start and while
 * serving (503 UNAVAILABLE with Retry-After and a log line naming the tree, recovery without a restart), a missing
 * bucket and refused credentials (serve refuses to start, one line), throttling (retried; the client never sees
 * it), a record object that is not a record (500 UNKNOWN, its key logged, the others served), and a blob object
 * whose bytes are not its digest (never served whole under that digest).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { contentKey } from '../../src/store/keys.ts';
import { freshTree, type TreeSpot } from '../helpers/backends.ts';
import { runDerrick, tempDir } from '../helpers/cli.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { rawClient, s3Env } from '../helpers/s3.ts';
import { LayoutBuilder } from '../helpers/images.ts';
import { closedPort, startS3Proxy } from '../helpers/s3-proxy.ts';
import {
  assertOciError,
  buildFixtures,
  header,
  listenLocal,
  openTree,
  publishInto,
  rawRequest,
  serveTree,
  sha256Of,
  type Fixtures,
} from '../helpers/server.ts';

const scratch = tempDir('derrick-serve-s3-faults-');
let fixtures!: Fixtures;
let endpoint!: string;
before(async () => {
  fixtures = await buildFixtures(path.join(scratch.dir, 'layout'));
  endpoint = (await s3Env()).AWS_ENDPOINT_URL;
});
after(() => scratch.cleanup());

/** A bucket with app (tagged latest) published into it. */
async function published(t: { after: (fn: () => unknown) => void }): Promise<TreeSpot> {
  const spot = await freshTree('s3', t);
  await publishInto(spot, `oci:${fixtures.dir}:single`, ['app:latest', 'other:latest']);
  return spot;
}

/** `derrick serve` on `spot` with the S3 endpoint at `endpointUrl`; stopped after the test. */
async function serveThrough(
  t: { after: (fn: () => unknown) => void },
  spot: TreeSpot,
  endpointUrl: string,
): Promise<DerrickServer> {
  const server = await startDerrickServer(spot.location, {
    env: { ...spot.env, AWS_ENDPOINT_URL: endpointUrl, DERRICK_DEBUG: '' },
    args: ['--s3-max-attempts', '2'],
  });
  t.after(() => server.stop());
  return server;
}

type Raw = Awaited<ReturnType<typeof rawRequest>>;

const manifest = (server: DerrickServer): Promise<Raw> =>
  rawRequest(server.port, 'GET', '/v2/app/manifests/latest', { accept: fixtures.single.mediaType });

/** The 503 a client gets while the store does not answer: OCI UNAVAILABLE, and when to try again. */
function assertUnavailable(answer: Raw): void {
  assertOciError(answer, 503, 'UNAVAILABLE');
  assert.match(header(answer, 'retry-after') ?? '', /^\d+$/);
}

describe('the endpoint down', () => {
  // RFC 9110 §15.6.4: "The 503 (Service Unavailable) status code indicates that the server is currently unable to
  // handle the request due to a temporary overload or scheduled maintenance, which will likely be alleviated after
  // some delay. The server MAY send a Retry-After header field".
  test('down at start: serve starts, warns once, answers 503 UNAVAILABLE with Retry-After and logs the tree; a proxy to RGW on that port → 200 without a restart', async (t) => {
    const spot = await published(t);
    const port = await closedPort();
    const server = await serveThrough(t, spot, `http://127.0.0.1:${port}`);
    for (let i = 0; i < 3; i++) assertUnavailable(await manifest(server));
    const output = await server.waitForOutput(/the tree's storage is unavailable/, { count: 3 });
    const warnings = output.split('\n').filter((line) => line.startsWith('derrick: warning: '));
    assert.equal(warnings.length, 1, output);
    assert.match(
      warnings[0]!,
      new RegExp(
        `^derrick: warning: ${spot.location}: the S3 endpoint http://127\\.0\\.0\\.1:${port} does not answer \\(ECONNREFUSED\\).*; serving anyway, 503 until it answers$`,
      ),
    );
    const logged = output.split('\n').find((line) => line.includes("the tree's storage is unavailable"));
    assert.ok(logged?.includes(spot.location), `the log line does not name ${spot.location}: ${logged}`);

    const proxy = await startS3Proxy(endpoint, port);
    t.after(() => proxy.stop());
    const answer = await manifest(server);
    assert.equal(answer.statusCode, 200, answer.body);
    assert.equal(sha256Of(answer.bytes), fixtures.single.digest);
  });

  test('down while serving: stopping the proxy → 503 UNAVAILABLE; starting it again on the same port → 200', async (t) => {
    const spot = await published(t);
    const proxy = await startS3Proxy(endpoint);
    t.after(() => proxy.stop());
    const server = await serveThrough(t, spot, proxy.url);
    assert.equal((await manifest(server)).statusCode, 200);
    await proxy.stop();
    assertUnavailable(await manifest(server));
    await proxy.start();
    const answer = await manifest(server);
    assert.equal(answer.statusCode, 200, answer.body);
    assert.equal(sha256Of(answer.bytes), fixtures.single.digest);
  });
});

describe('a store serve cannot use at all', () => {
  test('a missing bucket → serve refuses to start: exit 1, one line naming the location and the fix', async (t) => {
    const spot = await freshTree('s3', t);
    const missing = `s3://${spot.bucket}-missing/tree`;
    const result = await runDerrick(['serve', '--data-dir', missing, '--listen', '127.0.0.1:0'], {
      env: { ...spot.env, DERRICK_DEBUG: '' },
    });
    assert.equal(result.code, 1, result.stderr);
    assert.equal(
      result.stderr,
      `derrick: ${missing}: the bucket does not exist (NoSuchBucket); create it or fix --data-dir\n`,
    );
  });

  test('wrong credentials → serve refuses to start: exit 1, one line naming the endpoint and the variables to check', async (t) => {
    const spot = await published(t);
    const result = await runDerrick(['serve', '--data-dir', spot.location, '--listen', '127.0.0.1:0'], {
      env: { ...spot.env, AWS_SECRET_ACCESS_KEY: 'not-the-secret', DERRICK_DEBUG: '' },
    });
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      /^derrick: s3:\/\/\S+: the S3 endpoint \S+ refuses the credentials \(\w+\); check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and the bucket's policy\n$/,
    );
  });
});

// "SlowDown: Please reduce your request rate. 503 Service Unavailable" (Amazon S3 API Reference, "Error responses",
// List of error codes); the SDK's standard retry mode retries throttling errors with backoff.
test('throttling: the first requests answered 503 SlowDown are retried, and the client gets 200', async (t) => {
  const spot = await published(t);
  const proxy = await startS3Proxy(endpoint);
  t.after(() => proxy.stop());
  const server = await serveThrough(t, spot, proxy.url);
  proxy.throttle(1); // --s3-max-attempts 2: one throttled answer, then the retry
  const before = proxy.requests.length;
  const answer = await manifest(server);
  assert.equal(answer.statusCode, 200, answer.body);
  assert.equal(sha256Of(answer.bytes), fixtures.single.digest);
  const seen = proxy.requests.slice(before).map((request) => request.status);
  assert.equal(seen[0], 503, `the proxy saw ${JSON.stringify(seen)}`);
  assert.ok(
    seen.slice(1).every((status) => status < 500),
    `the proxy saw ${JSON.stringify(seen)}`,
  );
});

test('a record object that is not a record → 500 UNKNOWN, its key logged; the other repositories are served', async (t) => {
  const spot = await published(t);
  const client = await rawClient();
  t.after(() => client.destroy());
  await client.send(
    new PutObjectCommand({ Bucket: spot.bucket, Key: 'tree/v2/app/app.json', Body: '{"not": "a record"' }),
  );
  let logged = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logged += chunk.toString();
      done();
    },
  });
  const app = await serveTree(spot, {}, pino({ level: 'error' }, sink));
  t.after(() => app.close());
  const broken = await app.inject({ method: 'GET', url: '/v2/app/manifests/latest' });
  assertOciError(broken, 500, 'UNKNOWN');
  assert.ok(logged.includes(`${spot.location}/v2/app/app.json`), `the log does not name the key: ${logged}`);
  const other = await app.inject({ method: 'GET', url: '/v2/other/tags/list' });
  assert.equal(other.statusCode, 200);
  assert.deepEqual(other.json(), { name: 'other', tags: ['latest'] });
});

/** GET of a blob on a real socket: what arrived, whether the message was whole, and the status and headers. */
function getBlob(
  port: number,
  digest: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; bytes: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const request = http.get(
      { host: '127.0.0.1', port, path: `/v2/app/blobs/${digest}`, agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        let settled = false;
        const settle = (): void => {
          if (settled) return;
          settled = true;
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            bytes: Buffer.concat(chunks),
            complete: response.complete,
          });
        };
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', settle);
        response.on('error', settle);
        response.on('aborted', settle);
        response.on('close', settle);
      },
    );
    request.on('error', reject);
  });
}

/**
 * Replaces the bytes under `digest`'s content address with as many other bytes, behind derrick's back (RGW, like
 * any S3 store, keeps whatever it is given there), and serves the tree in serve mode.
 */
async function tampered(
  t: { after: (fn: () => unknown) => void },
  spot: TreeSpot,
  digest: string,
  size: number,
): Promise<number> {
  const client = await rawClient();
  t.after(() => client.destroy());
  await client.send(
    new PutObjectCommand({
      Bucket: spot.bucket,
      Key: `tree/${contentKey(digest)}`,
      Body: Buffer.alloc(size, 0x78),
    }),
  );
  const app = await serveTree(spot, { mode: 'serve' });
  t.after(() => app.close());
  return listenLocal(app);
}

/** The layer of `name`'s image. */
async function layerOf(spot: TreeSpot, name: string): Promise<[string, number]> {
  const tree = await openTree(spot);
  const lookup = await tree.readRecord(name);
  await tree.backend.close();
  assert.ok(lookup.found);
  // The largest blob that is no manifest: the layer (the config is the other one).
  const blobs = [...lookup.repository.blobs].filter(([d]) => !lookup.repository.manifests.has(d));
  const layer = blobs.sort((a, b) => b[1] - a[1])[0];
  assert.ok(layer);
  return layer;
}

describe('a blob object whose bytes are not its digest, in serve mode', () => {
  test('a large one (many chunks) → the answer is cut before its last byte: never whole, never hashing to the digest', async (t) => {
    const spot = await freshTree('s3', t);
    const layout = path.join(scratch.dir, 'big');
    const builder = new LayoutBuilder(layout);
    const big = await builder.image({ files: { 'noise.txt': randomBytes(3 << 20).toString('base64') } });
    builder.add(big, 'big').write();
    await publishInto(spot, `oci:${layout}:big`, ['app:latest']);
    const [digest, size] = await layerOf(spot, 'app');
    assert.ok(size > 1 << 20, `the layer is only ${size} bytes`);
    const got = await getBlob(await tampered(t, spot, digest, size), digest);
    assert.equal(got.status, 200);
    assert.equal(got.complete, false, 'the response ended as if whole');
    assert.ok(got.bytes.length < size, `${got.bytes.length} of ${size} bytes were sent`);
    assert.notEqual(sha256Of(got.bytes), digest);
  });

  test('a small one (one chunk, held back whole) → 500 UNKNOWN, without the digest, ETag or immutable caching of the content', async (t) => {
    const spot = await published(t);
    const [digest, size] = await layerOf(spot, 'app');
    const got = await getBlob(await tampered(t, spot, digest, size), digest);
    assert.equal(got.status, 500, got.bytes.toString());
    assert.equal(got.headers['docker-content-digest'], undefined);
    assert.equal(got.headers.etag, undefined);
    assert.doesNotMatch(String(got.headers['cache-control']), /immutable/);
    const body = JSON.parse(got.bytes.toString()) as { errors: { code: string }[] };
    assert.equal(body.errors[0]?.code, 'UNKNOWN');
    assert.notEqual(sha256Of(got.bytes), digest);
  });
});
