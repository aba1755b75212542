/**
 * derrick serve, the endpoints and the refusals: /v2/, the page at /, the API version header on every answer, write methods
 * refused with 405 UNSUPPORTED, the OCI error body, and bad input (names, digests, tags, encoded and dot
 * segments, symlinks out of v2/app, a malformed record) refused before anything outside the tree is read. All of it
 * on both back ends, but the symlinks, which only a file system has.
 *
 * Paths whose exact bytes matter (dot segments, which app.inject() would normalise through WHATWG URL parsing)
 * are sent with node:http to the app listening on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { BACKENDS, type TreeSpot } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import {
  assertApiVersion,
  assertOciError,
  buildFixtures,
  header,
  listenLocal,
  publishInto,
  rawRequest,
  serveApp,
  serveTree,
  suiteTree,
  writeRecordFile,
  type Answered,
  type Fixtures,
} from '../helpers/server.ts';

const scratch = tempDir('derrick-serve-endpoints-');
let fixtures!: Fixtures;

before(async () => {
  fixtures = await buildFixtures(path.join(scratch.dir, 'layout'));
});
after(() => scratch.cleanup());

for (const backend of BACKENDS)
  describe(backend, () => {
    let dataDir!: TreeSpot;
    let removeTree!: () => Promise<void>;
    let app!: FastifyInstance;
    let port!: number;

    before(async () => {
      ({ spot: dataDir, remove: removeTree } = await suiteTree(backend));
      await publishInto(dataDir, `oci:${fixtures.dir}:single`, ['team/app:latest', 'healthy:latest']);
      await writeRecordFile(dataDir, 'broken', '{"type": "derrick-repository", "version": 1, "name": "bro');
      app = await serveTree(dataDir);
      port = await listenLocal(app);
    });

    after(async () => {
      await app.close();
      await removeTree();
    });

    describe('the base endpoint and the API version header', () => {
      test('GET /v2/ → 200 {} with Docker-Distribution-API-Version: registry/2.0', async () => {
        const response = await app.inject({ method: 'GET', url: '/v2/' });
        assert.equal(response.statusCode, 200);
        assertApiVersion(response);
        assert.match(header(response, 'content-type') ?? '', /^application\/json/);
        assert.deepEqual(response.json(), {});
      });

      test('HEAD /v2/ → 200 with the API version header and no body', async () => {
        const response = await app.inject({ method: 'HEAD', url: '/v2/' });
        assert.equal(response.statusCode, 200);
        assertApiVersion(response);
        assert.equal(response.body, '');
      });

      test('GET /v2 (no trailing slash) → 200 {}', async () => {
        const response = await app.inject({ method: 'GET', url: '/v2' });
        assert.equal(response.statusCode, 200);
        assertApiVersion(response);
        assert.deepEqual(response.json(), {});
      });

      test('GET of a path outside /v2 → a plain-text 404 with the API version header (no OCI error body: no registry endpoint is there; distribution answers the same)', async () => {
        for (const url of ['/index.html', '/v1/_ping', '/v22/', '/favicon.ico']) {
          const response = await app.inject({ method: 'GET', url });
          assert.equal(response.statusCode, 404, url);
          assertApiVersion(response);
          assert.equal(header(response, 'content-type'), 'text/plain; charset=utf-8', url);
          assert.match(response.body, /under \/v2\//);
        }
      });

      test('HEAD of a path outside /v2 → 404, no body', async () => {
        const response = await app.inject({ method: 'HEAD', url: '/index.html' });
        assert.equal(response.statusCode, 404);
        assert.equal(response.body, '');
      });

      test('GET of an unknown endpoint under /v2 → 404 with the API version header and an OCI error body', async () => {
        const response = await app.inject({ method: 'GET', url: '/v2/team/app/nonsense/latest' });
        assertOciError(response, 404, 'NAME_UNKNOWN');
      });

      test('HEAD of an unknown repository → 404 with the API version header and no body', async () => {
        const response = await app.inject({ method: 'HEAD', url: '/v2/nobody/manifests/latest' });
        assert.equal(response.statusCode, 404);
        assertApiVersion(response);
        assert.equal(response.body, '');
      });

      test('an error body is exactly {errors:[{code,message,detail}]}', async () => {
        const response = await app.inject({ method: 'GET', url: '/v2/nobody/manifests/latest' });
        const error = assertOciError(response, 404, 'NAME_UNKNOWN');
        assert.equal(JSON.stringify(response.json()), JSON.stringify({ errors: [error] }));
      });
    });

    describe('the page at /', () => {
      test('GET / → 200, a short plain page that names derrick and points at /v2/ and the docs', async () => {
        const response = await app.inject({ method: 'GET', url: '/' });
        assert.equal(response.statusCode, 200);
        assertApiVersion(response);
        assert.equal(header(response, 'content-type'), 'text/plain; charset=utf-8');
        assert.equal(header(response, 'x-content-type-options'), 'nosniff');
        assert.match(response.body, /^derrick: a container registry\n/);
        assert.match(response.body, /\/v2\//);
        assert.match(response.body, /docs/);
      });

      test('HEAD / → 200 with the length of the page, no body', async () => {
        const page = await app.inject({ method: 'GET', url: '/' });
        const response = await app.inject({ method: 'HEAD', url: '/' });
        assert.equal(response.statusCode, 200);
        assert.equal(response.body, '');
        assert.equal(header(response, 'content-length'), String(Buffer.byteLength(page.body)));
      });

      test('GET / reads nothing from the tree: the same page over a data directory that holds no tree', async () => {
        // Beside the tree: a directory that does not exist, or a prefix of the bucket with nothing under it.
        const empty = await serveTree(`${dataDir.location}-no-tree-here`);
        try {
          const response = await empty.inject({ method: 'GET', url: '/' });
          assert.equal(response.statusCode, 200);
          assert.match(response.body, /^derrick: a container registry\n/);
        } finally {
          await empty.close();
        }
      });
    });

    describe('write methods are refused', () => {
      const cases: { method: 'PUT' | 'POST' | 'PATCH' | 'DELETE'; url: string; what: string }[] = [
        { method: 'PUT', url: '/v2/team/app/manifests/latest', what: 'PUT a manifest' },
        { method: 'POST', url: '/v2/team/app/blobs/uploads/', what: 'POST a blob upload' },
        { method: 'PATCH', url: '/v2/team/app/blobs/uploads/some-session', what: 'PATCH an upload' },
        {
          method: 'PUT',
          url: `/v2/team/app/blobs/uploads/some-session?digest=sha256:${'a'.repeat(64)}`,
          what: 'PUT an upload',
        },
        { method: 'DELETE', url: '/v2/team/app/manifests/latest', what: 'DELETE a manifest' },
        { method: 'DELETE', url: `/v2/team/app/blobs/sha256:${'a'.repeat(64)}`, what: 'DELETE a blob' },
        { method: 'POST', url: '/v2/', what: 'POST /v2/' },
        { method: 'DELETE', url: '/v2/nobody/manifests/latest', what: 'DELETE in an unknown repository' },
      ];
      for (const { method, url, what } of cases) {
        test(`${what} (${method} ${url.split('?')[0] ?? url}) → 405 UNSUPPORTED`, async () => {
          const response = await app.inject({ method, url });
          assertOciError(response, 405, 'UNSUPPORTED');
        });
      }

      test('PUT of a manifest with a manifest body (as docker push sends it) → 405 UNSUPPORTED', async () => {
        const response = await app.inject({
          method: 'PUT',
          url: '/v2/team/app/manifests/latest',
          headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
          payload: JSON.stringify({ schemaVersion: 2 }),
        });
        assertOciError(response, 405, 'UNSUPPORTED');
      });

      test('PATCH of an upload chunk with an octet-stream body → 405 UNSUPPORTED', async () => {
        const response = await app.inject({
          method: 'PATCH',
          url: '/v2/team/app/blobs/uploads/some-session',
          headers: { 'content-type': 'application/octet-stream' },
          payload: Buffer.alloc(1024, 7),
        });
        assertOciError(response, 405, 'UNSUPPORTED');
      });

      test('PUT with a body that is not valid JSON → 405 UNSUPPORTED', async () => {
        const response = await app.inject({
          method: 'PUT',
          url: '/v2/team/app/manifests/latest',
          headers: { 'content-type': 'application/json' },
          payload: '{"schemaVersion": 2',
        });
        assertOciError(response, 405, 'UNSUPPORTED');
      });

      test('a 405 answer names the methods allowed (Allow: GET, HEAD; RFC 9110 §15.5.6)', async () => {
        const response = await app.inject({ method: 'DELETE', url: '/v2/team/app/manifests/latest' });
        assert.equal(response.statusCode, 405);
        const allow = (header(response, 'allow') ?? '').split(',').map((method) => method.trim());
        assert.deepEqual(allow.sort(), ['GET', 'HEAD']);
      });
    });

    describe('bad input is refused before the tree is touched', () => {
      const digest = `sha256:${'0'.repeat(64)}`;
      const cases: { what: string; path: string; status: number; code: string }[] = [
        {
          what: 'a ".." component',
          path: '/v2/team/../team/app/manifests/latest',
          status: 400,
          code: 'NAME_INVALID',
        },
        {
          what: '".." leading out of v2/app',
          path: '/v2/../app-outside/secret/manifests/latest',
          status: 400,
          code: 'NAME_INVALID',
        },
        {
          what: 'an encoded "%2e%2e"',
          path: '/v2/%2e%2e/app-outside/secret/manifests/latest',
          status: 400,
          code: 'NAME_INVALID',
        },
        {
          what: 'an encoded "%2E%2E" in a blob path',
          path: `/v2/team/%2E%2E/%2E%2E/app-outside/secret/blobs/${digest}`,
          status: 400,
          code: 'NAME_INVALID',
        },
        {
          what: 'an encoded slash "%2F"',
          path: '/v2/team%2Fapp/manifests/latest',
          status: 400,
          code: 'NAME_INVALID',
        },
        {
          what: 'an empty component "//"',
          path: '/v2/team//app/manifests/latest',
          status: 400,
          code: 'NAME_INVALID',
        },
        { what: 'a leading "//"', path: '/v2//team/app/manifests/latest', status: 400, code: 'NAME_INVALID' },
        {
          what: 'an encoded NUL "%00"',
          path: '/v2/team/app%00/manifests/latest',
          status: 400,
          code: 'NAME_INVALID',
        },
        {
          what: 'a malformed escape "%zz"',
          path: '/v2/team/app%zz/manifests/latest',
          status: 400,
          code: 'NAME_INVALID',
        },
        {
          what: 'upper-case letters in the name',
          path: '/v2/Team/App/manifests/latest',
          status: 400,
          code: 'NAME_INVALID',
        },
        {
          what: 'a 256-character name',
          path: `/v2/${'a'.repeat(256)}/manifests/latest`,
          status: 400,
          code: 'NAME_INVALID',
        },
        {
          what: 'a component ending in "-"',
          path: '/v2/team-/manifests/latest',
          status: 400,
          code: 'NAME_INVALID',
        },
        {
          what: 'a 255-character name (valid, unknown)',
          path: `/v2/${'a'.repeat(255)}/manifests/latest`,
          status: 404,
          code: 'NAME_UNKNOWN',
        },
        {
          what: 'a too-short sha256 digest (manifest: names no manifest)',
          path: '/v2/team/app/manifests/sha256:abc',
          status: 404,
          code: 'MANIFEST_UNKNOWN',
        },
        {
          what: 'a too-short sha256 digest (blob)',
          path: '/v2/team/app/blobs/sha256:abc',
          status: 400,
          code: 'DIGEST_INVALID',
        },
        {
          what: 'a too-long sha256 digest',
          path: `/v2/team/app/blobs/sha256:${'0'.repeat(65)}`,
          status: 400,
          code: 'DIGEST_INVALID',
        },
        {
          what: 'an md5 digest',
          path: `/v2/team/app/blobs/md5:${'0'.repeat(32)}`,
          status: 400,
          code: 'DIGEST_INVALID',
        },
        {
          what: 'an md5 digest as a manifest reference (names no manifest)',
          path: `/v2/team/app/manifests/md5:${'0'.repeat(32)}`,
          status: 404,
          code: 'MANIFEST_UNKNOWN',
        },
        {
          what: 'upper-case hex in a digest',
          path: `/v2/team/app/blobs/sha256:${'A'.repeat(64)}`,
          status: 400,
          code: 'DIGEST_INVALID',
        },
        {
          what: 'a tag where a blob digest goes',
          path: '/v2/team/app/blobs/latest',
          status: 400,
          code: 'DIGEST_INVALID',
        },
        {
          what: 'an invalid referrers digest',
          path: '/v2/team/app/referrers/sha256:xyz',
          status: 400,
          code: 'DIGEST_INVALID',
        },
        {
          what: 'a reference with a "/" (manifests/a/b)',
          path: '/v2/team/app/manifests/a/b',
          status: 404,
          code: 'MANIFEST_UNKNOWN',
        },
        // A reference that is no tag (nor digest) names no manifest: 404, the spec's only end-3 failure.
        {
          what: 'a tag starting with "-"',
          path: '/v2/team/app/manifests/-latest',
          status: 404,
          code: 'MANIFEST_UNKNOWN',
        },
        {
          what: 'a tag starting with "."',
          path: '/v2/team/app/manifests/.latest',
          status: 404,
          code: 'MANIFEST_UNKNOWN',
        },
        {
          what: 'a 129-character tag',
          path: `/v2/team/app/manifests/${'t'.repeat(129)}`,
          status: 404,
          code: 'MANIFEST_UNKNOWN',
        },
        {
          what: 'a tag with "+"',
          path: '/v2/team/app/manifests/1.0+build',
          status: 404,
          code: 'MANIFEST_UNKNOWN',
        },
        {
          what: 'a valid but unknown name',
          path: '/v2/team/nobody/manifests/latest',
          status: 404,
          code: 'NAME_UNKNOWN',
        },
      ];
      for (const { what, path: rawPath, status, code } of cases) {
        test(`GET with ${what} → ${status} ${code}`, async () => {
          assertOciError(await rawRequest(port, 'GET', rawPath), status, code);
        });
      }

      test('HEAD with a ".." component → 400, no body', async () => {
        const response = await rawRequest(port, 'HEAD', '/v2/team/../team/app/manifests/latest');
        assert.equal(response.statusCode, 400);
        assertApiVersion(response);
        assert.equal(response.body, '');
      });
    });

    describe('a malformed record', () => {
      test('GET from a repository whose record is not valid JSON → 500 UNKNOWN', async () => {
        const response = await app.inject({ method: 'GET', url: '/v2/broken/manifests/latest' });
        assertOciError(response, 500, 'UNKNOWN');
      });

      test('the 500 of a malformed record says nothing of paths, parsers or stacks', async () => {
        const response = await app.inject({ method: 'GET', url: '/v2/broken/tags/list' });
        const error = assertOciError(response, 500, 'UNKNOWN');
        assert.equal(error.detail, null);
        for (const leak of [
          dataDir.location,
          scratch.dir,
          'broken.json',
          'v2/app',
          'JSON',
          'SyntaxError',
          '    at ',
        ]) {
          assert.ok(
            !response.body.includes(leak),
            `the body leaks ${JSON.stringify(leak)}: ${response.body}`,
          );
        }
      });

      test('another repository keeps answering 200 beside a malformed record', async () => {
        await app.inject({ method: 'GET', url: '/v2/broken/manifests/latest' });
        const response = await app.inject({ method: 'GET', url: '/v2/healthy/manifests/latest' });
        assert.equal(response.statusCode, 200);
        assert.equal(header(response, 'docker-content-digest'), fixtures.single.digest);
      });
    });
  });

/**
 * File system only: a symlink is how a record or a content file could lead out of a directory tree; a bucket has
 * no links (its counterpart, an object whose bytes are not its digest, is in serve-s3-faults.test.ts).
 */
describe('fs: symlinks out of the tree', () => {
  const dataDir = path.join(scratch.dir, 'data');
  const outsideDir = path.join(scratch.dir, 'outside');
  let app!: FastifyInstance;
  let port!: number;
  /** A layer of victim whose content file is a symlink out of the tree. */
  let victimLayer!: string;

  /** A valid record for `name`, written outside v2/app: what an escape through a symlink would serve. */
  async function outsideRecord(file: string, name: string): Promise<void> {
    const template = JSON.parse(
      await fs.readFile(path.join(dataDir, 'v2', 'app', 'team', 'app.json'), 'utf8'),
    ) as Record<string, unknown>;
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, JSON.stringify({ ...template, name }));
  }

  before(async () => {
    await publishInto(dataDir, `oci:${fixtures.dir}:single`, ['team/app:latest']);
    const appDir = path.join(dataDir, 'v2', 'app');

    // Records that must never be served: outside the tree, beside v2/app, and behind a directory symlink.
    await outsideRecord(path.join(outsideDir, 'escape.json'), 'escape');
    await fs.symlink(path.join(outsideDir, 'escape.json'), path.join(appDir, 'escape.json'));
    await outsideRecord(path.join(dataDir, 'v2', 'app-outside', 'secret.json'), 'secret');
    await fs.symlink(
      path.join(dataDir, 'v2', 'app-outside', 'secret.json'),
      path.join(appDir, 'secret.json'),
    );
    await outsideRecord(path.join(outsideDir, 'linked', 'inner.json'), 'linked/inner');
    await fs.symlink(path.join(outsideDir, 'linked'), path.join(appDir, 'linked'));

    // A blob whose content file is replaced by a symlink to a file outside the tree, of the same size.
    await publishInto(dataDir, `oci:${fixtures.dir}:other`, ['victim:latest']);
    const victim = JSON.parse(await fs.readFile(path.join(appDir, 'victim.json'), 'utf8')) as {
      blobs: Record<string, number>;
    };
    // Its config and layer are its own (no other repository of this tree shares them).
    const [layerDigest, layerSize] = Object.entries(victim.blobs)[0] ?? ['', 0];
    victimLayer = layerDigest;
    const contentFile = path.join(dataDir, 'v2', 'content', 'sha256', layerDigest.slice('sha256:'.length));
    const outsideBlob = path.join(outsideDir, 'secret-blob');
    await fs.writeFile(outsideBlob, Buffer.alloc(layerSize, 'S'));
    await fs.rm(contentFile);
    await fs.symlink(outsideBlob, contentFile);

    app = serveApp(dataDir);
    port = await listenLocal(app);
  });

  after(() => app.close());

  test('GET with an invalid reference in a record that escapes the tree → 404 MANIFEST_UNKNOWN', async () => {
    assertOciError(
      await rawRequest(port, 'GET', '/v2/escape/manifests/.INVALID_MANIFEST_NAME'),
      404,
      'MANIFEST_UNKNOWN',
    );
  });

  /** Not a 200, an OCI error, and nothing of the outside record in the answer. */
  function assertNotServed(response: Answered): void {
    assert.notEqual(response.statusCode, 200, `served a record outside v2/app: ${response.body}`);
    assert.ok([404, 500].includes(response.statusCode), `unexpected status ${response.statusCode}`);
    assertOciError(response, response.statusCode, response.statusCode === 404 ? 'NAME_UNKNOWN' : 'UNKNOWN');
    assert.equal(header(response, 'docker-content-digest'), undefined);
    assert.doesNotMatch(response.body, new RegExp(`${fixtures.single.digest}|${outsideDir}|app-outside`));
  }

  test('v2/app/escape.json → a record outside the tree: its manifest is not served', async () => {
    assertNotServed(await app.inject({ method: 'GET', url: '/v2/escape/manifests/latest' }));
  });

  test('v2/app/escape.json → a record outside the tree: its blobs are not served', async () => {
    const layer = fixtures.single.digest;
    assertNotServed(await app.inject({ method: 'GET', url: `/v2/escape/blobs/${layer}` }));
  });

  test('v2/app/escape.json → a record outside the tree: its tags are not listed', async () => {
    assertNotServed(await app.inject({ method: 'GET', url: '/v2/escape/tags/list' }));
  });

  test('v2/app/secret.json → v2/app-outside/secret.json: not served', async () => {
    assertNotServed(await app.inject({ method: 'GET', url: '/v2/secret/manifests/latest' }));
  });

  test('v2/app/linked → a directory outside the tree: linked/inner is not served', async () => {
    assertNotServed(await app.inject({ method: 'GET', url: '/v2/linked/inner/manifests/latest' }));
  });

  test('a content file replaced by a symlink out of the tree: its bytes are not served', async () => {
    const response = await app.inject({ method: 'GET', url: `/v2/victim/blobs/${victimLayer}` });
    assert.notEqual(response.statusCode, 200, 'served a blob through a symlink out of the tree');
    assert.ok(!response.body.includes('SSSS'), 'the answer holds the outside file');
    assertOciError(response, 500, 'UNKNOWN');
  });

  test('the catalog lists no symlinked record', async () => {
    const response = await app.inject({ method: 'GET', url: '/v2/_catalog' });
    assert.equal(response.statusCode, 200);
    const { repositories } = response.json<{ repositories: string[] }>();
    assert.deepEqual(
      repositories.filter((name) => ['escape', 'secret', 'linked/inner'].includes(name)),
      [],
    );
  });
});
