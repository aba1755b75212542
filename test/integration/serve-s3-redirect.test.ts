/**
 * derrick serve over a tree in a bucket (the test S3 server, Ceph RGW): redirect mode sends a repository without a
 * base URL to a presigned GET URL of the bucket (s3.presignUrl sets its origin), answers HEAD from the record
 * without a redirect, and sends a repository with a base URL there as on a file system; protected repositories
 * follow the file system's rule — their bytes leave only through signed URLs — where a presigned URL counts as
 * signed; serve mode streams from the bucket with Range and conditional requests.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { basic, writeHtpasswd } from '../helpers/auth.ts';
import { BACKENDS, type TreeSpot } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { s3Env } from '../helpers/s3.ts';
import {
  buildFixtures,
  header,
  openTree,
  publishInto,
  serveTree,
  sha256Of,
  suiteTree,
  type Fixtures,
  type Flags,
} from '../helpers/server.ts';

const CDN = 'http://cdn.example.test/base';
const OWN_BASE = 'https://media.example.test/own';
const SECRET = '00112233445566778899aabbccddeeff';
const ALICE = basic('alice', 'alice-secret');

const scratch = tempDir('derrick-serve-s3-redirect-');
let fixtures!: Fixtures;
before(async () => {
  fixtures = await buildFixtures(path.join(scratch.dir, 'layout'));
  writeHtpasswd(path.join(scratch.dir, 'htpasswd'), { alice: 'alice-secret' });
});
after(() => scratch.cleanup());

/** public/app: anybody; private/app: alice only, and published --protected. */
const accessFlags = (): Flags => ({
  'auth.htpasswd': path.join(scratch.dir, 'htpasswd'),
  access: JSON.stringify([
    { match: 'public/**', pull: ['anonymous'] },
    { match: 'private/**', pull: ['user:alice'] },
  ]),
});

/** The published trees, one per back end, and the blob and manifest the tests fetch. */
interface Published {
  spot: TreeSpot;
  remove: () => Promise<void>;
  layer: { digest: string; size: number };
}

async function publishTree(backend: 'fs' | 's3'): Promise<Published> {
  const { spot, remove } = await suiteTree(backend);
  const source = `oci:${fixtures.dir}:single`;
  await publishInto(spot, source, ['public/app:latest']);
  await publishInto(spot, source, ['private/app:latest'], { protected: true });
  await publishInto(spot, `oci:${fixtures.dir}:other`, ['based/app:latest'], { baseUrl: OWN_BASE });
  const tree = await openTree(spot);
  const lookup = await tree.readRecord('public/app');
  await tree.backend.close();
  assert.ok(lookup.found);
  const [digest, size] = [...lookup.repository.blobs].find(([d]) => !lookup.repository.manifests.has(d))!;
  return { spot, remove, layer: { digest, size } };
}

const get = (app: FastifyInstance, url: string, authorization?: string): Promise<LightMyRequestResponse> =>
  app.inject({ method: 'GET', url, headers: authorization === undefined ? {} : { authorization } });

/** A Location that is a presigned GET URL of `bucket` (SigV4 query parameters) at `origin`. */
function assertPresigned(
  response: LightMyRequestResponse,
  status: number,
  origin: string,
  bucket: string,
): URL {
  assert.equal(response.statusCode, status, response.body);
  const location = header(response, 'location');
  assert.ok(location !== undefined, 'no Location');
  const url = new URL(location);
  assert.equal(url.origin, origin);
  assert.ok(url.pathname.startsWith(`/${bucket}/`), `${location} is not in the bucket ${bucket}`);
  assert.ok(url.searchParams.has('X-Amz-Signature'), `${location} is not presigned`);
  assert.equal(url.searchParams.get('X-Amz-Expires'), '300');
  return url;
}

/** The body a plain fetch() (no credentials of ours) gets from `url`, hashed. */
async function fetchedDigest(url: URL | string): Promise<string> {
  const response = await fetch(url);
  assert.equal(response.status, 200, `GET ${String(url)} → ${response.status}`);
  return sha256Of(new Uint8Array(await response.arrayBuffer()));
}

describe('redirect mode on S3, no redirect.url', () => {
  let tree!: Published;
  let bucket!: string;
  let endpoint!: string;
  const apps: FastifyInstance[] = [];
  const app = async (flags: Flags): Promise<FastifyInstance> => {
    const made = await serveTree(tree.spot, flags);
    apps.push(made);
    return made;
  };

  before(async () => {
    tree = await publishTree('s3');
    bucket = tree.spot.bucket!;
    endpoint = new URL((await s3Env()).AWS_ENDPOINT_URL).origin;
  });
  after(async () => {
    await Promise.all(apps.map((made) => made.close()));
    await tree.remove();
  });

  // "You can use presigned URLs to grant time-limited access to objects in Amazon S3 without updating your bucket
  // policy. A presigned URL can be entered in a browser or used by a program to download an object."
  // (Amazon S3 User Guide, "Download and upload objects with presigned URLs")
  test('GET blob → 302 to a presigned URL of the bucket, whose bytes a plain fetch() gets and which hash to the digest', async () => {
    const served = await app({ mode: 'redirect' });
    const response = await get(served, `/v2/public/app/blobs/${tree.layer.digest}`);
    assert.equal(header(response, 'docker-content-digest'), tree.layer.digest);
    const url = assertPresigned(response, 302, endpoint, bucket);
    assert.equal(await fetchedDigest(url), tree.layer.digest);
  });

  test('GET manifest by tag → 302 to a presigned URL whose bytes hash to the tagged digest', async () => {
    const served = await app({ mode: 'redirect' });
    const response = await get(served, '/v2/public/app/manifests/latest');
    assert.equal(header(response, 'docker-content-digest'), fixtures.single.digest);
    const url = assertPresigned(response, 302, endpoint, bucket);
    assert.equal(await fetchedDigest(url), fixtures.single.digest);
  });

  test('redirect.status 307 → 307 to the presigned URL', async () => {
    const served = await app({ mode: 'redirect', 'redirect.status': '307' });
    assertPresigned(await get(served, `/v2/public/app/blobs/${tree.layer.digest}`), 307, endpoint, bucket);
  });

  test('HEAD blob and HEAD manifest → 200 from the record (Content-Length, Docker-Content-Digest), never a redirect', async () => {
    const served = await app({ mode: 'redirect' });
    const blob = await served.inject({ method: 'HEAD', url: `/v2/public/app/blobs/${tree.layer.digest}` });
    assert.equal(blob.statusCode, 200);
    assert.equal(header(blob, 'location'), undefined);
    assert.equal(header(blob, 'content-length'), String(tree.layer.size));
    assert.equal(header(blob, 'docker-content-digest'), tree.layer.digest);
    const manifest = await served.inject({ method: 'HEAD', url: '/v2/public/app/manifests/latest' });
    assert.equal(manifest.statusCode, 200);
    assert.equal(header(manifest, 'location'), undefined);
    assert.equal(header(manifest, 'docker-content-digest'), fixtures.single.digest);
    assert.equal(header(manifest, 'content-length'), String(fixtures.single.size));
  });

  test('s3.presignUrl → the presigned URL has that origin, and is signed for it (fetched there, the bytes hash to the digest)', async () => {
    // The same RGW under another name: a CDN or public endpoint in front of the bucket, as far as the URL goes.
    const other = endpoint.replace('127.0.0.1', 'localhost');
    assert.notEqual(other, endpoint);
    const served = await app({ mode: 'redirect', 's3.presignUrl': other });
    const response = await get(served, `/v2/public/app/blobs/${tree.layer.digest}`);
    const url = assertPresigned(response, 302, other, bucket);
    assert.equal(await fetchedDigest(url), tree.layer.digest);
  });

  test('a repository published with --base-url redirects below that base, as on a file system', async () => {
    const served = await app({ mode: 'redirect' });
    const response = await get(served, '/v2/based/app/manifests/latest');
    assert.equal(response.statusCode, 302);
    assert.equal(header(response, 'location'), `${OWN_BASE}/manifests/oci-manifest/${fixtures.other.digest}`);
  });

  test('redirect.url set → public repositories redirect below it, not to the bucket', async () => {
    const served = await app({ mode: 'redirect', 'redirect.url': CDN });
    const response = await get(served, `/v2/public/app/blobs/${tree.layer.digest}`);
    assert.equal(response.statusCode, 302);
    assert.equal(header(response, 'location'), `${CDN}/public/app/blobs/${tree.layer.digest}`);
  });
});

/**
 * The rule for protected repositories is one on both back ends (src/http/registry.ts redirectTarget): a
 * repository not everybody may pull is redirected only to a signed URL, because an unsigned CDN URL would hand
 * its bytes to anybody who learns it. redirect.token signs CDN URLs; a presigned URL of the bucket is signed by
 * construction (SigV4, expiring after s3.presignTtlSeconds) — so on S3 a protected repository with no token is
 * redirected to the bucket, never to the unsigned CDN URL, where a file system (which has nothing to presign)
 * serves its bytes itself.
 */
for (const backend of BACKENDS)
  describe(`a protected repository in redirect mode (${backend})`, () => {
    let tree!: Published;
    const apps: FastifyInstance[] = [];
    const app = async (flags: Flags): Promise<FastifyInstance> => {
      const made = await serveTree(tree.spot, { ...accessFlags(), mode: 'redirect', ...flags });
      apps.push(made);
      return made;
    };
    before(async () => {
      tree = await publishTree(backend);
    });
    after(async () => {
      await Promise.all(apps.map((made) => made.close()));
      await tree.remove();
    });

    const blobUrl = (name: string): string => `/v2/${name}/blobs/${tree.layer.digest}`;

    test('anonymous → 401 and no Location, with and without redirect.token', async () => {
      for (const flags of [
        { 'redirect.url': CDN },
        { 'redirect.url': CDN, 'redirect.token.secret': SECRET },
      ]) {
        const response = await get(await app(flags), blobUrl('private/app'));
        assert.equal(response.statusCode, 401, response.body);
        assert.equal(header(response, 'location'), undefined);
      }
    });

    test('redirect.url without redirect.token → never the unsigned CDN URL: the bytes from the tree (fs), a presigned URL (s3)', async () => {
      const served = await app({ 'redirect.url': CDN });
      const response = await get(served, blobUrl('private/app'), ALICE);
      if (backend === 'fs') {
        assert.equal(response.statusCode, 200);
        assert.equal(header(response, 'location'), undefined);
        assert.equal(sha256Of(response.rawPayload), tree.layer.digest);
      } else {
        const url = assertPresigned(
          response,
          302,
          new URL((await s3Env()).AWS_ENDPOINT_URL).origin,
          tree.spot.bucket!,
        );
        assert.equal(await fetchedDigest(url), tree.layer.digest);
      }
      // The public repository beside it still goes to the CDN, unsigned, on both.
      const open = await get(served, blobUrl('public/app'));
      assert.equal(header(open, 'location'), `${CDN}/public/app/blobs/${tree.layer.digest}`);
    });

    test('redirect.url with redirect.token → the signed CDN URL, on both back ends', async () => {
      const served = await app({ 'redirect.url': CDN, 'redirect.token.secret': SECRET });
      const response = await get(served, blobUrl('private/app'), ALICE);
      assert.equal(response.statusCode, 302);
      const location = header(response, 'location') ?? '';
      assert.match(
        location,
        new RegExp(`^${CDN}/private/app/blobs/${tree.layer.digest}\\?_auth_=exp=\\d+~hmac=[0-9a-f]+$`),
      );
    });

    test('no redirect.url, no token → the bytes from the tree (fs), a presigned URL (s3); HEAD from the record on both', async () => {
      const served = await app({});
      const response = await get(served, blobUrl('private/app'), ALICE);
      if (backend === 'fs') assert.equal(sha256Of(response.rawPayload), tree.layer.digest);
      else assert.equal(await fetchedDigest(header(response, 'location') ?? ''), tree.layer.digest);
      const head = await served.inject({
        method: 'HEAD',
        url: blobUrl('private/app'),
        headers: { authorization: ALICE },
      });
      assert.equal(head.statusCode, 200);
      assert.equal(header(head, 'location'), undefined);
      assert.equal(header(head, 'content-length'), String(tree.layer.size));
    });
  });

describe('serve mode on S3: bytes streamed from the bucket', () => {
  let tree!: Published;
  let served!: FastifyInstance;
  before(async () => {
    tree = await publishTree('s3');
    served = await serveTree(tree.spot, { mode: 'serve' });
  });
  after(async () => {
    await served.close();
    await tree.remove();
  });

  test('GET blob → 200, the whole blob, hashing to its digest, no Location', async () => {
    const response = await get(served, `/v2/public/app/blobs/${tree.layer.digest}`);
    assert.equal(response.statusCode, 200);
    assert.equal(header(response, 'location'), undefined);
    assert.equal(header(response, 'content-length'), String(tree.layer.size));
    assert.equal(sha256Of(response.rawPayload), tree.layer.digest);
  });

  // RFC 9110 §14.2: "A server that supports range requests ... responds with 206 (Partial Content)"; §14.4: the
  // Content-Range of a 206 carries "the complete length of the selected representation".
  test('GET blob with Range: bytes=1-4 → 206, Content-Range bytes 1-4/<size>, exactly those bytes of the bucket object', async () => {
    const whole = (await get(served, `/v2/public/app/blobs/${tree.layer.digest}`)).rawPayload;
    const response = await served.inject({
      method: 'GET',
      url: `/v2/public/app/blobs/${tree.layer.digest}`,
      headers: { range: 'bytes=1-4' },
    });
    assert.equal(response.statusCode, 206, response.body);
    assert.equal(header(response, 'content-range'), `bytes 1-4/${tree.layer.size}`);
    assert.deepEqual(response.rawPayload, whole.subarray(1, 5));
  });

  test('GET blob with Range: bytes=-3 (a suffix) → 206, the last three bytes', async () => {
    const whole = (await get(served, `/v2/public/app/blobs/${tree.layer.digest}`)).rawPayload;
    const response = await served.inject({
      method: 'GET',
      url: `/v2/public/app/blobs/${tree.layer.digest}`,
      headers: { range: 'bytes=-3' },
    });
    assert.equal(response.statusCode, 206);
    const size = tree.layer.size;
    assert.equal(header(response, 'content-range'), `bytes ${size - 3}-${size - 1}/${size}`);
    assert.deepEqual(response.rawPayload, whole.subarray(size - 3));
  });

  // RFC 9110 §13.1.2: "the origin server MUST NOT perform the requested method if the condition evaluates to false;
  // instead, the origin server MUST respond with ... 304 (Not Modified) if the request method is GET or HEAD".
  test('GET blob with If-None-Match: its ETag → 304, no body', async () => {
    const first = await get(served, `/v2/public/app/blobs/${tree.layer.digest}`);
    const etag = header(first, 'etag');
    assert.ok(etag !== undefined);
    const again = await served.inject({
      method: 'GET',
      url: `/v2/public/app/blobs/${tree.layer.digest}`,
      headers: { 'if-none-match': etag },
    });
    assert.equal(again.statusCode, 304);
    assert.equal(again.rawPayload.length, 0);
  });

  test('GET manifest by tag → 200, the bytes of the tagged digest from the bucket', async () => {
    const response = await served.inject({
      method: 'GET',
      url: '/v2/public/app/manifests/latest',
      headers: { accept: fixtures.single.mediaType },
    });
    assert.equal(response.statusCode, 200);
    assert.equal(sha256Of(response.rawPayload), fixtures.single.digest);
  });
});
