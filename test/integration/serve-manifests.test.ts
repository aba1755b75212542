/**
 * derrick serve, manifests: GET and HEAD by tag and by digest (headers, bytes, conditional requests, unknown
 * names and references), and negotiation of multi-platform indexes and Docker manifest lists by Accept and the
 * configured default platform.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { MT, type Descriptor } from '../helpers/images.ts';
import { BACKENDS } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import {
  assertApiVersion,
  assertOciError,
  buildFixtures,
  header,
  listenLocal,
  publishInto,
  rawRequest,
  serveTree,
  suiteTree,
  sha256Of,
  type Fixtures,
} from '../helpers/server.ts';

const scratch = tempDir('derrick-serve-manifests-');
after(() => scratch.cleanup());

for (const backend of BACKENDS)
  describe(backend, () => {
    let removeTree!: () => Promise<void>;
    let fixtures!: Fixtures;
    /** Serve mode, default platform linux/amd64. */
    let app!: FastifyInstance;
    /** Serve mode, default platform linux/arm64/v8. */
    let arm64App!: FastifyInstance;
    /** Redirect mode to http://cdn.example.test/base. */
    let redirectApp!: FastifyInstance;
    /** Serve mode, for requests inject() cannot make. */
    let listening!: FastifyInstance;

    /** Every manifest media type a current client (docker, containerd) sends, indexes included. */
    const ACCEPT_ALL = [MT.ociIndex, MT.ociManifest, MT.dockerList, MT.dockerManifest].join(', ');
    /** A client that knows no indexes or lists. */
    const ACCEPT_IMAGES = [MT.ociManifest, MT.dockerManifest].join(', ');

    before(async () => {
      fixtures = await buildFixtures(path.join(scratch.dir, `layout-${backend}`));
      const { spot: dataDir, remove } = await suiteTree(backend);
      removeTree = remove;
      const source = (ref: string): string => `oci:${fixtures.dir}:${ref}`;
      await publishInto(dataDir, source('single'), ['team/app:latest', 'team/app:1.0']);
      await publishInto(dataDir, source('multi'), ['multi:latest']);
      await publishInto(dataDir, source('dockerlist'), ['dockerlist:latest']);
      await publishInto(dataDir, source('noamd64'), ['noamd64:latest']);
      app = await serveTree(dataDir);
      arm64App = await serveTree(dataDir, { defaultPlatform: 'linux/arm64/v8' });
      redirectApp = await serveTree(dataDir, {
        mode: 'redirect',
        'redirect.url': 'http://cdn.example.test/base',
      });
      listening = await serveTree(dataDir);
    });

    after(async () => {
      await Promise.all([app.close(), arm64App.close(), redirectApp.close(), listening.close()]);
      await removeTree();
    });

    async function manifestBytes(descriptor: Descriptor): Promise<Buffer> {
      return fs.readFile(
        path.join(fixtures.dir, 'blobs', 'sha256', descriptor.digest.slice('sha256:'.length)),
      );
    }

    /** A 200 manifest answer for `expected`: its media type, digest, length and ETag (and its bytes for a GET). */
    async function assertManifest(response: LightMyRequestResponse, expected: Descriptor): Promise<void> {
      assert.equal(response.statusCode, 200, response.body);
      assertApiVersion(response);
      assert.equal(header(response, 'content-type'), expected.mediaType);
      assert.equal(header(response, 'docker-content-digest'), expected.digest);
      assert.equal(header(response, 'content-length'), String(expected.size));
      assert.equal(header(response, 'etag'), `"${expected.digest}"`);
      // A HEAD has no body; a GET has exactly the manifest's bytes.
      const head = response.raw.req.method === 'HEAD';
      assert.deepEqual(response.rawPayload, head ? Buffer.alloc(0) : await manifestBytes(expected));
    }

    function get(
      target: FastifyInstance,
      url: string,
      accept?: string,
      method: 'GET' | 'HEAD' = 'GET',
    ): Promise<LightMyRequestResponse> {
      return target.inject({ method, url, headers: accept === undefined ? {} : { accept } });
    }

    describe('manifests by tag and by digest', () => {
      test('GET manifest by tag → 200 with its media type, Docker-Content-Digest, Content-Length and ETag', async () => {
        const response = await get(app, '/v2/team/app/manifests/latest', ACCEPT_ALL);
        await assertManifest(response, fixtures.single);
      });

      test('GET manifest by tag → the body bytes hash to Docker-Content-Digest', async () => {
        const response = await get(app, '/v2/team/app/manifests/1.0', ACCEPT_ALL);
        assert.equal(response.statusCode, 200);
        assert.equal(sha256Of(response.rawPayload), header(response, 'docker-content-digest'));
        assert.equal(response.rawPayload.length, Number(header(response, 'content-length')));
      });

      test('GET manifest by digest → 200, the same bytes and headers', async () => {
        const response = await get(app, `/v2/team/app/manifests/${fixtures.single.digest}`, ACCEPT_ALL);
        await assertManifest(response, fixtures.single);
      });

      test('GET manifest by digest without Accept → the manifest as stored', async () => {
        const response = await get(app, `/v2/team/app/manifests/${fixtures.single.digest}`);
        await assertManifest(response, fixtures.single);
      });

      test('HEAD manifest by tag → 200, the headers of a GET, no body', async () => {
        const response = await get(app, '/v2/team/app/manifests/latest', ACCEPT_ALL, 'HEAD');
        await assertManifest(response, fixtures.single);
        assert.equal(response.rawPayload.length, 0);
      });

      test('HEAD manifest by digest → 200, the headers of a GET, no body', async () => {
        const response = await get(
          app,
          `/v2/team/app/manifests/${fixtures.single.digest}`,
          ACCEPT_ALL,
          'HEAD',
        );
        await assertManifest(response, fixtures.single);
        assert.equal(response.rawPayload.length, 0);
      });

      test('HEAD manifest in redirect mode → 200 with the headers, no body, no Location', async () => {
        const response = await get(redirectApp, '/v2/team/app/manifests/latest', ACCEPT_ALL, 'HEAD');
        await assertManifest(response, fixtures.single);
        assert.equal(response.rawPayload.length, 0);
        assert.equal(header(response, 'location'), undefined);
      });

      test('HEAD manifest by digest in redirect mode → 200 with the headers, no Location', async () => {
        const url = `/v2/multi/manifests/${fixtures.multi.index.digest}`;
        const response = await get(redirectApp, url, ACCEPT_ALL, 'HEAD');
        await assertManifest(response, fixtures.multi.index);
        assert.equal(header(response, 'location'), undefined);
      });

      test('GET manifest with If-None-Match: <its ETag> → 304, no body', async () => {
        const first = await get(app, '/v2/team/app/manifests/latest', ACCEPT_ALL);
        const etag = header(first, 'etag') ?? '';
        const response = await app.inject({
          method: 'GET',
          url: '/v2/team/app/manifests/latest',
          headers: { accept: ACCEPT_ALL, 'if-none-match': etag },
        });
        assert.equal(response.statusCode, 304);
        assertApiVersion(response);
        assert.equal(response.rawPayload.length, 0);
        assert.equal(header(response, 'etag'), etag);
      });

      test('GET manifest by digest with If-None-Match: <its ETag> → 304', async () => {
        const response = await app.inject({
          method: 'GET',
          url: `/v2/team/app/manifests/${fixtures.single.digest}`,
          headers: { 'if-none-match': `"${fixtures.single.digest}"` },
        });
        assert.equal(response.statusCode, 304);
      });

      test('GET manifest with If-None-Match: W/<its ETag> → 304 (weak comparison, RFC 9110 §13.1.2)', async () => {
        const response = await app.inject({
          method: 'GET',
          url: '/v2/team/app/manifests/latest',
          headers: { accept: ACCEPT_ALL, 'if-none-match': `W/"${fixtures.single.digest}"` },
        });
        assert.equal(response.statusCode, 304);
      });

      test('GET manifest with If-None-Match: * → 304 (RFC 9110 §13.1.2)', async () => {
        const response = await app.inject({
          method: 'GET',
          url: '/v2/team/app/manifests/latest',
          headers: { accept: ACCEPT_ALL, 'if-none-match': '*' },
        });
        assert.equal(response.statusCode, 304);
      });

      test('GET manifest with If-None-Match of another ETag → 200 with the body', async () => {
        const response = await app.inject({
          method: 'GET',
          url: '/v2/team/app/manifests/latest',
          headers: { accept: ACCEPT_ALL, 'if-none-match': `"${fixtures.other.digest}"` },
        });
        await assertManifest(response, fixtures.single);
      });

      test('GET manifest of an unknown repository → 404 NAME_UNKNOWN', async () => {
        assertOciError(await get(app, '/v2/team/nobody/manifests/latest', ACCEPT_ALL), 404, 'NAME_UNKNOWN');
      });

      test('GET manifest by unknown tag → 404 MANIFEST_UNKNOWN', async () => {
        assertOciError(await get(app, '/v2/team/app/manifests/nope', ACCEPT_ALL), 404, 'MANIFEST_UNKNOWN');
      });

      test('GET manifest by unknown digest → 404 MANIFEST_UNKNOWN', async () => {
        const url = `/v2/team/app/manifests/${fixtures.other.digest}`;
        assertOciError(await get(app, url, ACCEPT_ALL), 404, 'MANIFEST_UNKNOWN');
      });

      test('GET manifest by the digest of a manifest of another repository → 404 MANIFEST_UNKNOWN', async () => {
        const url = `/v2/team/app/manifests/${fixtures.multi.index.digest}`;
        assertOciError(await get(app, url, ACCEPT_ALL), 404, 'MANIFEST_UNKNOWN');
      });

      test('HEAD manifest by unknown tag → 404, no body', async () => {
        const response = await get(app, '/v2/team/app/manifests/nope', ACCEPT_ALL, 'HEAD');
        assert.equal(response.statusCode, 404);
        assertApiVersion(response);
        assert.equal(response.rawPayload.length, 0);
      });
    });

    describe('negotiation of an OCI index', () => {
      test('Accept including the OCI index type → the index', async () => {
        const response = await get(app, '/v2/multi/manifests/latest', ACCEPT_ALL);
        await assertManifest(response, fixtures.multi.index);
      });

      test('Accept of */* → the index', async () => {
        const response = await get(app, '/v2/multi/manifests/latest', '*/*');
        await assertManifest(response, fixtures.multi.index);
      });

      test('Accept of only image manifest types → the linux/amd64 image (never 406)', async () => {
        const response = await get(app, '/v2/multi/manifests/latest', ACCEPT_IMAGES);
        await assertManifest(response, fixtures.multi.amd64);
      });

      test('no Accept header → the linux/amd64 image', async () => {
        const response = await get(app, '/v2/multi/manifests/latest');
        await assertManifest(response, fixtures.multi.amd64);
      });

      test('HEAD without Accept → the linux/amd64 image’s digest and length', async () => {
        const response = await get(app, '/v2/multi/manifests/latest', undefined, 'HEAD');
        await assertManifest(response, fixtures.multi.amd64);
      });

      test('q=0 on the index type excludes it even with */* → the linux/amd64 image', async () => {
        const response = await get(app, '/v2/multi/manifests/latest', `${MT.ociIndex};q=0, */*`);
        await assertManifest(response, fixtures.multi.amd64);
      });

      test('an Accept type with parameters and other case still matches → the index', async () => {
        const accept = `${MT.ociManifest}, Application/VND.OCI.Image.Index.v1+JSON; q=0.5`;
        const response = await get(app, '/v2/multi/manifests/latest', accept);
        await assertManifest(response, fixtures.multi.index);
      });

      test('one Accept header line per type (as docker sends them) → the index', async () => {
        const port = await listenLocal(listening);
        const response = await rawRequest(port, 'GET', '/v2/multi/manifests/latest', {
          accept: [MT.ociManifest, MT.ociIndex],
        });
        assert.equal(response.statusCode, 200);
        assert.equal(header(response, 'docker-content-digest'), fixtures.multi.index.digest);
      });

      test('defaultPlatform linux/arm64/v8, no Accept → the linux/arm64/v8 image', async () => {
        const response = await get(arm64App, '/v2/multi/manifests/latest');
        await assertManifest(response, fixtures.multi.arm64);
      });

      test('defaultPlatform linux/arm64/v8, Accept including the index → still the index', async () => {
        const response = await get(arm64App, '/v2/multi/manifests/latest', ACCEPT_ALL);
        await assertManifest(response, fixtures.multi.index);
      });

      test('an index without the default platform, for a client without index support → 404 MANIFEST_UNKNOWN', async () => {
        assertOciError(
          await get(app, '/v2/noamd64/manifests/latest', ACCEPT_IMAGES),
          404,
          'MANIFEST_UNKNOWN',
        );
      });

      test('an index without the default platform, for a client with index support → the index', async () => {
        const response = await get(app, '/v2/noamd64/manifests/latest', ACCEPT_ALL);
        await assertManifest(response, fixtures.noAmd64.index);
      });

      test('GET the index by digest without Accept → the index as is', async () => {
        const response = await get(app, `/v2/multi/manifests/${fixtures.multi.index.digest}`);
        await assertManifest(response, fixtures.multi.index);
      });

      test('GET the index by digest with only image types accepted → the index as is', async () => {
        const response = await get(app, `/v2/multi/manifests/${fixtures.multi.index.digest}`, ACCEPT_IMAGES);
        await assertManifest(response, fixtures.multi.index);
      });

      test('GET a child by digest → the child', async () => {
        const response = await get(app, `/v2/multi/manifests/${fixtures.multi.arm64.digest}`, ACCEPT_ALL);
        await assertManifest(response, fixtures.multi.arm64);
      });
    });

    describe('negotiation of a Docker manifest list', () => {
      test('Accept including the manifest list type → the list', async () => {
        const response = await get(app, '/v2/dockerlist/manifests/latest', ACCEPT_ALL);
        await assertManifest(response, fixtures.dockerList.list);
      });

      test('Accept of only Docker schema 2 → the linux/amd64 image', async () => {
        const response = await get(app, '/v2/dockerlist/manifests/latest', MT.dockerManifest);
        await assertManifest(response, fixtures.dockerList.amd64);
      });

      test('Accept of only image manifest types → the linux/amd64 image', async () => {
        const response = await get(app, '/v2/dockerlist/manifests/latest', ACCEPT_IMAGES);
        await assertManifest(response, fixtures.dockerList.amd64);
      });

      test('no Accept header → the linux/amd64 image', async () => {
        const response = await get(app, '/v2/dockerlist/manifests/latest');
        await assertManifest(response, fixtures.dockerList.amd64);
      });

      test('q=0 on the list type excludes it even with */* → the linux/amd64 image', async () => {
        const response = await get(app, '/v2/dockerlist/manifests/latest', `${MT.dockerList}; q=0, */*`);
        await assertManifest(response, fixtures.dockerList.amd64);
      });

      test('defaultPlatform linux/arm64/v8, no Accept → the linux/arm64/v8 image', async () => {
        const response = await get(arm64App, '/v2/dockerlist/manifests/latest');
        await assertManifest(response, fixtures.dockerList.arm64);
      });

      test('GET the list by digest without Accept → the list as is', async () => {
        const response = await get(app, `/v2/dockerlist/manifests/${fixtures.dockerList.list.digest}`);
        await assertManifest(response, fixtures.dockerList.list);
      });
    });
  });
