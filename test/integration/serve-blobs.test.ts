/**
 * derrick serve in serve mode, blobs: whole and ranged GETs, conditional requests, membership (a repository only
 * serves its own blobs), and a client that goes away in the middle of a multi-MiB blob.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { contentKey } from '../../src/store/keys.ts';
import { BACKENDS, type TreeSpot } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { LayoutBuilder } from '../helpers/images.ts';
import {
  assertApiVersion,
  assertOciError,
  header,
  listenLocal,
  publishInto,
  openTree,
  rawRequest,
  serveTree,
  suiteTree,
  sha256Of,
} from '../helpers/server.ts';

const scratch = tempDir('derrick-serve-blobs-');
const layout = path.join(scratch.dir, 'layout');
const BIG_SIZE = 8 * 1024 * 1024;

/** A 4 KiB layer of team/app, one of elsewhere/app only, and an 8 MiB layer of big/app. */
let layer!: { digest: string; bytes: Buffer };
let foreign!: { digest: string };
let big!: { digest: string; bytes: Buffer };

before(async () => {
  const builder = new LayoutBuilder(layout);
  const raw = (bytes: Buffer): { descriptor: ReturnType<LayoutBuilder['blob']>; diffId: string } => ({
    descriptor: builder.blob(bytes, 'application/vnd.oci.image.layer.v1.tar'),
    diffId: sha256Of(bytes),
  });
  const layerBytes = randomBytes(4096);
  const foreignBytes = randomBytes(512);
  const bigBytes = randomBytes(BIG_SIZE);
  const image = await builder.image({ extraLayers: [raw(layerBytes)], cmd: ['/small'] });
  const elsewhere = await builder.image({ extraLayers: [raw(foreignBytes)], cmd: ['/elsewhere'] });
  const bigImage = await builder.image({ extraLayers: [raw(bigBytes)], cmd: ['/big'] });
  builder.add(image, 'small').add(elsewhere, 'elsewhere').add(bigImage, 'big').write();
  layer = { digest: sha256Of(layerBytes), bytes: layerBytes };
  foreign = { digest: sha256Of(foreignBytes) };
  big = { digest: sha256Of(bigBytes), bytes: bigBytes };
});

after(() => scratch.cleanup());

for (const backend of BACKENDS)
  describe(backend, () => {
    let spot!: TreeSpot;
    let removeTree!: () => Promise<void>;
    let app!: FastifyInstance;
    let port!: number;

    before(async () => {
      ({ spot, remove: removeTree } = await suiteTree(backend));
      await publishInto(spot, `oci:${layout}:small`, ['team/app:latest']);
      await publishInto(spot, `oci:${layout}:elsewhere`, ['elsewhere/app:latest']);
      await publishInto(spot, `oci:${layout}:big`, ['big/app:latest']);
      app = await serveTree(spot);
      port = await listenLocal(app);
    });

    after(async () => {
      await app.close();
      await removeTree();
    });

    function blob(
      headers: Record<string, string> = {},
      method: 'GET' | 'HEAD' = 'GET',
      digest = layer.digest,
    ) {
      return app.inject({ method, url: `/v2/team/app/blobs/${digest}`, headers });
    }

    describe('whole blobs', () => {
      test('GET blob → 200, the exact bytes', async () => {
        const response = await blob();
        assert.equal(response.statusCode, 200);
        assertApiVersion(response);
        assert.deepEqual(response.rawPayload, layer.bytes);
      });

      test('GET blob → Content-Length, Docker-Content-Digest and ETag of the blob', async () => {
        const response = await blob();
        assert.equal(header(response, 'content-length'), String(layer.bytes.length));
        assert.equal(header(response, 'docker-content-digest'), layer.digest);
        assert.equal(header(response, 'etag'), `"${layer.digest}"`);
      });

      test('GET blob → Accept-Ranges: bytes', async () => {
        assert.equal(header(await blob(), 'accept-ranges'), 'bytes');
      });

      test('GET blob → Cache-Control with max-age and immutable', async () => {
        const cacheControl = header(await blob(), 'cache-control') ?? '';
        assert.match(cacheControl, /(^|[ ,])max-age=\d+/);
        assert.match(cacheControl, /(^|[ ,])immutable($|[ ,])/);
      });

      test('HEAD blob → 200, Content-Length and Docker-Content-Digest, no body', async () => {
        const response = await blob({}, 'HEAD');
        assert.equal(response.statusCode, 200);
        assert.equal(header(response, 'content-length'), String(layer.bytes.length));
        assert.equal(header(response, 'docker-content-digest'), layer.digest);
        assert.equal(response.rawPayload.length, 0);
      });

      test('GET of an 8 MiB blob over a socket → the exact bytes', async () => {
        const response = await rawRequest(port, 'GET', `/v2/big/app/blobs/${big.digest}`);
        assert.equal(response.statusCode, 200);
        assert.equal(sha256Of(response.bytes), big.digest);
      });
    });

    describe('ranges', () => {
      test('Range bytes=0-9 → 206, Content-Range bytes 0-9/<size>, the first 10 bytes', async () => {
        const response = await blob({ range: 'bytes=0-9' });
        assert.equal(response.statusCode, 206);
        assert.equal(header(response, 'content-range'), `bytes 0-9/${layer.bytes.length}`);
        assert.equal(header(response, 'content-length'), '10');
        assert.deepEqual(response.rawPayload, layer.bytes.subarray(0, 10));
      });

      test('suffix Range bytes=-5 → 206, the last 5 bytes', async () => {
        const size = layer.bytes.length;
        const response = await blob({ range: 'bytes=-5' });
        assert.equal(response.statusCode, 206);
        assert.equal(header(response, 'content-range'), `bytes ${size - 5}-${size - 1}/${size}`);
        assert.deepEqual(response.rawPayload, layer.bytes.subarray(size - 5));
      });

      test('open Range bytes=10- → 206, everything from byte 10', async () => {
        const size = layer.bytes.length;
        const response = await blob({ range: 'bytes=10-' });
        assert.equal(response.statusCode, 206);
        assert.equal(header(response, 'content-range'), `bytes 10-${size - 1}/${size}`);
        assert.equal(header(response, 'content-length'), String(size - 10));
        assert.deepEqual(response.rawPayload, layer.bytes.subarray(10));
      });

      test('a Range past the end (bytes=0-99999999) → 206, up to the last byte', async () => {
        const size = layer.bytes.length;
        const response = await blob({ range: 'bytes=0-99999999' });
        assert.equal(response.statusCode, 206);
        assert.equal(header(response, 'content-range'), `bytes 0-${size - 1}/${size}`);
        assert.deepEqual(response.rawPayload, layer.bytes);
      });

      test('unsatisfiable Range bytes=99999999- → 416 with Content-Range bytes */<size>', async () => {
        const response = await blob({ range: 'bytes=99999999-' });
        assert.equal(response.statusCode, 416);
        assertApiVersion(response);
        assert.equal(header(response, 'content-range'), `bytes */${layer.bytes.length}`);
        // RANGE_INVALID is distribution's code, not the spec's: plain text (conformance.test.ts, "Error codes").
        assert.equal(header(response, 'content-type'), 'text/plain; charset=utf-8');
        assert.match(response.body, /^RANGE_INVALID: /);
      });

      test('the 416 of an unsatisfiable Range is not marked cacheable for a year', async () => {
        const response = await blob({ range: 'bytes=99999999-' });
        assert.equal(response.statusCode, 416);
        assert.doesNotMatch(header(response, 'cache-control') ?? '', /immutable|max-age=[1-9]/);
      });

      test('Range in the middle of the 8 MiB blob → 206, those bytes', async () => {
        const start = 3 * 1024 * 1024 + 17;
        const end = start + 1024 * 1024;
        const response = await app.inject({
          method: 'GET',
          url: `/v2/big/app/blobs/${big.digest}`,
          headers: { range: `bytes=${start}-${end}` },
        });
        assert.equal(response.statusCode, 206);
        assert.deepEqual(response.rawPayload, big.bytes.subarray(start, end + 1));
      });

      test('If-Range with the blob’s ETag → the Range applies (206)', async () => {
        const response = await blob({ range: 'bytes=0-9', 'if-range': `"${layer.digest}"` });
        assert.equal(response.statusCode, 206);
        assert.deepEqual(response.rawPayload, layer.bytes.subarray(0, 10));
      });

      test('If-Range with a different ETag → 200, the whole blob', async () => {
        const response = await blob({ range: 'bytes=0-9', 'if-range': `"${foreign.digest}"` });
        assert.equal(response.statusCode, 200);
        assert.equal(header(response, 'content-range'), undefined);
        assert.deepEqual(response.rawPayload, layer.bytes);
      });
    });

    describe('conditional requests', () => {
      test('If-None-Match with the blob’s ETag → 304, no body', async () => {
        const response = await blob({ 'if-none-match': `"${layer.digest}"` });
        assert.equal(response.statusCode, 304);
        assertApiVersion(response);
        assert.equal(response.rawPayload.length, 0);
      });

      test('If-None-Match with another ETag → 200, the bytes', async () => {
        const response = await blob({ 'if-none-match': `"${foreign.digest}"` });
        assert.equal(response.statusCode, 200);
        assert.deepEqual(response.rawPayload, layer.bytes);
      });
    });

    describe('membership', () => {
      test('a blob of another repository of the same tree → 404 BLOB_UNKNOWN', async () => {
        // The bytes are in v2/content, but team/app never published them.
        const tree = await openTree(spot);
        const stored = await tree.backend.stat(contentKey(foreign.digest));
        await tree.backend.close();
        assert.ok(stored, 'the foreign blob is not in the tree');
        assertOciError(await blob({}, 'GET', foreign.digest), 404, 'BLOB_UNKNOWN');
      });

      test('HEAD of a blob of another repository → 404, no body', async () => {
        const response = await blob({}, 'HEAD', foreign.digest);
        assert.equal(response.statusCode, 404);
        assert.equal(response.rawPayload.length, 0);
      });

      test('an unknown digest → 404 BLOB_UNKNOWN', async () => {
        assertOciError(await blob({}, 'GET', `sha256:${'d'.repeat(64)}`), 404, 'BLOB_UNKNOWN');
      });

      test('a blob of an unknown repository → 404 NAME_UNKNOWN', async () => {
        const response = await app.inject({ method: 'GET', url: `/v2/nobody/blobs/${layer.digest}` });
        assertOciError(response, 404, 'NAME_UNKNOWN');
      });
    });

    describe('clients that go away', () => {
      /** Starts a GET of the big blob and destroys the socket on the first chunk; resolves once it is closed. */
      function abortAfterFirstChunk(): Promise<number> {
        return new Promise((resolve, reject) => {
          const request = http.get(
            { host: '127.0.0.1', port, path: `/v2/big/app/blobs/${big.digest}`, agent: false },
            (response) => {
              response.once('data', (chunk: Buffer) => {
                request.destroy();
                resolve(chunk.length);
              });
            },
          );
          request.on('error', (error: NodeJS.ErrnoException) => {
            if (!request.destroyed) reject(error);
          });
        });
      }

      test('a client that disconnects mid-blob → the server keeps serving the next request', async () => {
        const received = await abortAfterFirstChunk();
        assert.ok(received < BIG_SIZE);
        const next = await rawRequest(port, 'GET', `/v2/big/app/blobs/${big.digest}`);
        assert.equal(next.statusCode, 200);
        assert.equal(sha256Of(next.bytes), big.digest);
        const base = await rawRequest(port, 'GET', '/v2/');
        assert.equal(base.statusCode, 200);
      });

      // Blob files are the file system's (on S3 there is no file to leave open): a test of that back end only.
      if (backend === 'fs')
        test('twenty clients disconnecting mid-blob leave no blob file open', async () => {
          const openBlobs = async (): Promise<number> => {
            const fds = await fs.readdir('/proc/self/fd');
            let count = 0;
            for (const fd of fds) {
              const target = await fs.readlink(`/proc/self/fd/${fd}`).catch(() => '');
              if (target.includes(big.digest.slice('sha256:'.length))) count++;
            }
            return count;
          };
          await Promise.all(Array.from({ length: 20 }, () => abortAfterFirstChunk()));
          // The server closes each file when it notices its client left: wait for that, up to 5 s.
          const deadline = Date.now() + 5000;
          let open = await openBlobs();
          while (open > 0 && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 50));
            open = await openBlobs();
          }
          assert.equal(open, 0, `${open} blob file(s) still open`);
          const next = await rawRequest(port, 'GET', `/v2/big/app/blobs/${big.digest}`);
          assert.equal(next.statusCode, 200);
        });
    });
  });
