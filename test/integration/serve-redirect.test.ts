/**
 * derrick serve in redirect mode: manifests and blobs answered with a redirect to the repository's web directory
 * (config redirect.url + name, or the record's base URL), with Crane's status, url_match/url_replace rewrite and
 * signed-URL token, per-repository mode rules, and HEAD answered from the record without a redirect.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { BACKENDS, type TreeSpot } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { MT } from '../helpers/images.ts';
import {
  assertApiVersion,
  assertOciError,
  buildFixtures,
  header,
  openTree,
  publishInto,
  serveTree,
  suiteTree,
  type Answered,
  type Fixtures,
  type Flags,
} from '../helpers/server.ts';

const scratch = tempDir('derrick-serve-redirect-');
const CDN = 'http://cdn.example.test/base';
const OWN_BASE = 'https://media.example.test/own/based';
const ACCEPT_ALL = [MT.ociIndex, MT.ociManifest, MT.dockerList, MT.dockerManifest].join(', ');
const SECRET = '00112233445566778899aabbccddeeff';

after(() => scratch.cleanup());

for (const backend of BACKENDS)
  describe(backend, () => {
    let fixtures!: Fixtures;
    let dataDir!: TreeSpot;
    let removeTree!: () => Promise<void>;
    /** team/app's config and layer. */
    let layers!: { digest: string; size: number }[];
    const apps: FastifyInstance[] = [];

    async function appWith(flags: Flags): Promise<FastifyInstance> {
      const app = await serveTree(dataDir, flags);
      apps.push(app);
      return app;
    }

    let redirect!: FastifyInstance;
    let redirect307!: FastifyInstance;
    let rewrite!: FastifyInstance;
    let signedDefault!: FastifyInstance;
    let signedCustom!: FastifyInstance;
    let perRepository!: FastifyInstance;
    let nowhere!: FastifyInstance;

    before(async () => {
      fixtures = await buildFixtures(path.join(scratch.dir, `layout-${backend}`));
      ({ spot: dataDir, remove: removeTree } = await suiteTree(backend));
      const source = (ref: string): string => `oci:${fixtures.dir}:${ref}`;
      await publishInto(dataDir, source('single'), ['team/app:latest', 'cdn/app:latest', 'cdnx/app:latest']);
      await publishInto(dataDir, source('multi'), ['multi:latest']);
      await publishInto(dataDir, source('dockerlist'), ['dockerlist:latest']);
      await publishInto(dataDir, source('other'), ['based:latest'], { baseUrl: OWN_BASE });
      const tree = await openTree(dataDir);
      const lookup = await tree.readRecord('team/app');
      await tree.backend.close();
      assert.ok(lookup.found);
      layers = [...lookup.repository.blobs].map(([digest, size]) => ({ digest, size }));

      redirect = await appWith({ mode: 'redirect', 'redirect.url': CDN });
      redirect307 = await appWith({ mode: 'redirect', 'redirect.url': CDN, 'redirect.status': '307' });
      rewrite = await appWith({
        mode: 'redirect',
        'redirect.url': CDN,
        'redirect.urlMatch': 'http://cdn.example.test/',
        'redirect.urlReplace': 'https://edge.example.test/mirror/',
      });
      signedDefault = await appWith({
        mode: 'redirect',
        'redirect.url': CDN,
        'redirect.token.secret': SECRET,
      });
      signedCustom = await appWith({
        mode: 'redirect',
        'redirect.url': CDN,
        'redirect.token.secret': SECRET,
        'redirect.token.ttlSeconds': '60',
        'redirect.token.param': 'tok',
        'redirect.token.algorithm': 'sha1',
      });
      perRepository = await appWith({
        mode: 'serve',
        'redirect.url': CDN,
        repositories: JSON.stringify([{ match: 'cdn/**', mode: 'redirect' }]),
      });
      nowhere = await appWith({ mode: 'redirect' });
    });

    after(async () => {
      await Promise.all(apps.map((app) => app.close()));
      await removeTree();
    });

    /** A redirect answer: status, Location, the API version header, and no body. */
    function assertRedirect(response: Answered, status: number, location: string): void {
      assert.equal(response.statusCode, status, response.body);
      assertApiVersion(response);
      assert.equal(header(response, 'location'), location);
      assert.equal(response.body, '');
    }

    function get(app: FastifyInstance, url: string, accept = ACCEPT_ALL): Promise<LightMyRequestResponse> {
      return app.inject({ method: 'GET', url, headers: { accept } });
    }

    describe('manifests redirect to <url>/<name>/manifests/<kind>/<digest>', () => {
      test('GET an OCI image by tag → 302 to manifests/oci-manifest/<digest>, with Docker-Content-Digest', async () => {
        const response = await get(redirect, '/v2/team/app/manifests/latest');
        assertRedirect(response, 302, `${CDN}/team/app/manifests/oci-manifest/${fixtures.single.digest}`);
        assert.equal(header(response, 'docker-content-digest'), fixtures.single.digest);
      });

      test('GET an OCI image by digest → 302 to manifests/oci-manifest/<digest>', async () => {
        const response = await get(redirect, `/v2/team/app/manifests/${fixtures.single.digest}`);
        assertRedirect(response, 302, `${CDN}/team/app/manifests/oci-manifest/${fixtures.single.digest}`);
        assert.equal(header(response, 'docker-content-digest'), fixtures.single.digest);
      });

      test('GET an OCI index, index accepted → 302 to manifests/oci-index/<digest>', async () => {
        const response = await get(redirect, '/v2/multi/manifests/latest');
        assertRedirect(response, 302, `${CDN}/multi/manifests/oci-index/${fixtures.multi.index.digest}`);
        assert.equal(header(response, 'docker-content-digest'), fixtures.multi.index.digest);
      });

      test('GET an OCI index, no index accepted → 302 to the linux/amd64 image (oci-manifest)', async () => {
        const response = await get(redirect, '/v2/multi/manifests/latest', MT.ociManifest);
        assertRedirect(response, 302, `${CDN}/multi/manifests/oci-manifest/${fixtures.multi.amd64.digest}`);
        assert.equal(header(response, 'docker-content-digest'), fixtures.multi.amd64.digest);
      });

      test('GET a Docker manifest list, list accepted → 302 to manifests/docker-list/<digest>', async () => {
        const response = await get(redirect, '/v2/dockerlist/manifests/latest');
        const digest = fixtures.dockerList.list.digest;
        assertRedirect(response, 302, `${CDN}/dockerlist/manifests/docker-list/${digest}`);
        assert.equal(header(response, 'docker-content-digest'), digest);
      });

      test('GET a Docker manifest list, only schema 2 accepted → 302 to manifests/docker-v2/<amd64 digest>', async () => {
        const response = await get(redirect, '/v2/dockerlist/manifests/latest', MT.dockerManifest);
        const digest = fixtures.dockerList.amd64.digest;
        assertRedirect(response, 302, `${CDN}/dockerlist/manifests/docker-v2/${digest}`);
        assert.equal(header(response, 'docker-content-digest'), digest);
      });

      test('GET manifest by unknown tag in redirect mode → 404 MANIFEST_UNKNOWN, no redirect', async () => {
        const response = await get(redirect, '/v2/team/app/manifests/nope');
        assertOciError(response, 404, 'MANIFEST_UNKNOWN');
        assert.equal(header(response, 'location'), undefined);
      });

      test('GET manifest of an unknown repository in redirect mode → 404 NAME_UNKNOWN, no redirect', async () => {
        const response = await get(redirect, '/v2/nobody/manifests/latest');
        assertOciError(response, 404, 'NAME_UNKNOWN');
        assert.equal(header(response, 'location'), undefined);
      });
    });

    describe('blobs redirect to <url>/<name>/blobs/<digest>', () => {
      test('GET blob → 302 to blobs/<digest>, with Docker-Content-Digest', async () => {
        const layer = layers[0]!;
        const response = await get(redirect, `/v2/team/app/blobs/${layer.digest}`);
        assertRedirect(response, 302, `${CDN}/team/app/blobs/${layer.digest}`);
        assert.equal(header(response, 'docker-content-digest'), layer.digest);
      });

      test('HEAD blob in redirect mode → 200 with Content-Length from the record, no Location, no body', async () => {
        for (const layer of layers) {
          const response = await redirect.inject({
            method: 'HEAD',
            url: `/v2/team/app/blobs/${layer.digest}`,
          });
          assert.equal(response.statusCode, 200);
          assertApiVersion(response);
          assert.equal(header(response, 'content-length'), String(layer.size));
          assert.equal(header(response, 'docker-content-digest'), layer.digest);
          assert.equal(header(response, 'location'), undefined);
          assert.equal(response.body, '');
        }
      });

      test('GET blob unknown to the repository in redirect mode → 404 BLOB_UNKNOWN, no redirect', async () => {
        const response = await get(redirect, `/v2/team/app/blobs/sha256:${'e'.repeat(64)}`);
        assertOciError(response, 404, 'BLOB_UNKNOWN');
        assert.equal(header(response, 'location'), undefined);
      });
    });

    describe('redirect options', () => {
      test('redirect.status 307 → manifests answer 307', async () => {
        const response = await get(redirect307, '/v2/team/app/manifests/latest');
        assertRedirect(response, 307, `${CDN}/team/app/manifests/oci-manifest/${fixtures.single.digest}`);
      });

      test('redirect.status 307 → blobs answer 307', async () => {
        const layer = layers[0]!;
        const response = await get(redirect307, `/v2/team/app/blobs/${layer.digest}`);
        assertRedirect(response, 307, `${CDN}/team/app/blobs/${layer.digest}`);
      });

      test('a repository published with --base-url redirects below that base, not redirect.url', async () => {
        const response = await get(redirect, '/v2/based/manifests/latest');
        assertRedirect(response, 302, `${OWN_BASE}/manifests/oci-manifest/${fixtures.other.digest}`);
      });

      test('a repository published with --base-url: its blobs redirect below that base', async () => {
        const tree = await openTree(dataDir);
        const lookup = await tree.readRecord('based');
        await tree.backend.close();
        assert.ok(lookup.found);
        const [layer] = [...lookup.repository.blobs.keys()];
        const response = await get(redirect, `/v2/based/blobs/${layer ?? ''}`);
        assertRedirect(response, 302, `${OWN_BASE}/blobs/${layer ?? ''}`);
      });

      test('redirect.urlMatch/urlReplace rewrite the Location of a manifest', async () => {
        const response = await get(rewrite, '/v2/team/app/manifests/latest');
        const location = `https://edge.example.test/mirror/base/team/app/manifests/oci-manifest/${fixtures.single.digest}`;
        assertRedirect(response, 302, location);
      });

      test('redirect.urlMatch/urlReplace rewrite the Location of a blob', async () => {
        const layer = layers[0]!;
        const response = await get(rewrite, `/v2/team/app/blobs/${layer.digest}`);
        assertRedirect(response, 302, `https://edge.example.test/mirror/base/team/app/blobs/${layer.digest}`);
      });

      // On a bucket there is somewhere to redirect to: a presigned URL (serve-s3-redirect.test.ts).
      if (backend === 'fs')
        test('redirect mode without redirect.url or a base URL → the bytes are served', async () => {
          const response = await get(nowhere, '/v2/team/app/manifests/latest');
          assert.equal(response.statusCode, 200);
          assert.equal(header(response, 'location'), undefined);
          assert.equal(header(response, 'docker-content-digest'), fixtures.single.digest);
        });
    });

    describe('signed redirect URLs (redirect.token)', () => {
      /** Checks `?<param>=exp=<t>~hmac=<hex>` on `location` against `unsigned`, the secret and the TTL. */
      function assertSigned(
        location: string | undefined,
        unsigned: string,
        options: { param: string; ttl: number; algorithm: string },
        requestedAt: number,
      ): void {
        assert.ok(location !== undefined, 'no Location');
        const prefix = `${unsigned}?${options.param}=`;
        assert.ok(location.startsWith(prefix), `${location} does not start with ${prefix}`);
        const token = location.slice(prefix.length);
        const match = /^exp=(\d+)~hmac=([0-9a-f]+)$/.exec(token);
        assert.ok(match, `malformed token ${token}`);
        const expires = Number(match[1]);
        assert.ok(
          expires >= requestedAt + options.ttl - 2 && expires <= requestedAt + options.ttl + 2,
          `exp ${expires} is not now (${requestedAt}) + ${options.ttl}`,
        );
        const expected = createHmac(options.algorithm, Buffer.from(SECRET, 'hex'))
          .update(`exp=${expires}~url=${new URL(unsigned).pathname}`)
          .digest('hex');
        assert.equal(match[2], expected);
      }

      test('a manifest redirect carries ?_auth_=exp=<now+300>~hmac=<HMAC-SHA256> by default', async () => {
        const now = Math.floor(Date.now() / 1000);
        const response = await get(signedDefault, '/v2/team/app/manifests/latest');
        assert.equal(response.statusCode, 302);
        const unsigned = `${CDN}/team/app/manifests/oci-manifest/${fixtures.single.digest}`;
        assertSigned(
          header(response, 'location'),
          unsigned,
          { param: '_auth_', ttl: 300, algorithm: 'sha256' },
          now,
        );
      });

      test('a blob redirect carries the token, with the configured param, TTL and algorithm', async () => {
        const layer = layers[0]!;
        const now = Math.floor(Date.now() / 1000);
        const response = await get(signedCustom, `/v2/team/app/blobs/${layer.digest}`);
        assert.equal(response.statusCode, 302);
        const unsigned = `${CDN}/team/app/blobs/${layer.digest}`;
        assertSigned(
          header(response, 'location'),
          unsigned,
          { param: 'tok', ttl: 60, algorithm: 'sha1' },
          now,
        );
      });

      test('a HEAD of a blob in signed redirect mode → 200, no Location', async () => {
        const layer = layers[0]!;
        const response = await signedDefault.inject({
          method: 'HEAD',
          url: `/v2/team/app/blobs/${layer.digest}`,
        });
        assert.equal(response.statusCode, 200);
        assert.equal(header(response, 'location'), undefined);
      });
    });

    describe('per-repository modes (repositories: [{match: "cdn/**", mode: redirect}], global mode serve)', () => {
      test('a matching name redirects its manifests', async () => {
        const response = await get(perRepository, '/v2/cdn/app/manifests/latest');
        assertRedirect(response, 302, `${CDN}/cdn/app/manifests/oci-manifest/${fixtures.single.digest}`);
      });

      test('a matching name redirects its blobs', async () => {
        const layer = layers[0]!;
        const response = await get(perRepository, `/v2/cdn/app/blobs/${layer.digest}`);
        assertRedirect(response, 302, `${CDN}/cdn/app/blobs/${layer.digest}`);
      });

      test('a name outside the rule is served (manifest bytes, no Location)', async () => {
        const response = await get(perRepository, '/v2/team/app/manifests/latest');
        assert.equal(response.statusCode, 200);
        assert.equal(header(response, 'location'), undefined);
        assert.equal(header(response, 'docker-content-digest'), fixtures.single.digest);
      });

      test('a name that only shares the prefix (cdnx/app) is served', async () => {
        const response = await get(perRepository, '/v2/cdnx/app/manifests/latest');
        assert.equal(response.statusCode, 200);
        assert.equal(header(response, 'location'), undefined);
      });

      test('a name outside the rule has its blobs served (bytes, no Location)', async () => {
        const layer = layers[0]!;
        const response = await get(perRepository, `/v2/team/app/blobs/${layer.digest}`);
        assert.equal(response.statusCode, 200);
        assert.equal(header(response, 'location'), undefined);
        assert.equal(response.rawPayload.length, layer.size);
      });
    });
  });
