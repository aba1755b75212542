/**
 * `serve.sendfile`: in serve mode derrick answers a blob GET with every header it sends when it streams, and
 * `X-Accel-Redirect: <prefix><algorithm>/<hex>` (nginx) or `X-Sendfile: <content file>` (Apache) instead of the
 * bytes. HEAD, 304, 416, errors, refusals and manifests are answered by derrick as without it and never hand
 * anything over; a missing, symlinked or wrong-sized content file is derrick's 500, not the proxy's 404; a
 * client's own X-Accel-Redirect / X-Sendfile request header is never echoed; an s3:// tree refuses the key at
 * start. The real app over a real published directory (the bytes through a real nginx: test/e2e/nginx-sendfile).
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { basic, writeHtpasswd } from '../helpers/auth.ts';
import { runDerrick, tempDir } from '../helpers/cli.ts';
import { singleImageLayout } from '../helpers/images.ts';
import { assertOciError, header, largestLayer, publishInto, serveApp } from '../helpers/server.ts';

const scratch = tempDir('derrick-serve-sendfile-');
const dataDir = path.join(scratch.dir, 'data');
const htpasswd = path.join(scratch.dir, 'htpasswd');
const HANDOVER = ['x-accel-redirect', 'x-sendfile'];

/** The layers of open/app and of the protected secret/app, and the manifest of open/app:1. */
let layer = '';
let secretLayer = '';
let manifest = '';
let layerSize = 0;

const contentFile = (digest: string): string => path.join(dataDir, 'v2', 'content', ...digest.split(':'));

before(async () => {
  await singleImageLayout(path.join(scratch.dir, 'open'), 'latest', 'open for all');
  await singleImageLayout(path.join(scratch.dir, 'secret'), 'latest', 'logged-in only');
  manifest = (await publishInto(dataDir, `oci:${path.join(scratch.dir, 'open')}`, ['open/app:1']))
    .repositories[0]?.tags['1'] as string;
  await publishInto(dataDir, `oci:${path.join(scratch.dir, 'secret')}`, ['secret/app:1'], {
    protected: true,
  });
  ({ digest: layer, size: layerSize } = await largestLayer(dataDir, 'open/app'));
  secretLayer = (await largestLayer(dataDir, 'secret/app')).digest;
  writeHtpasswd(htpasswd, { alice: 'alice-pw' });
});
after(() => scratch.cleanup());

/** No hand-over header on this answer, whatever the request carried. */
function assertNotHandedOver(answer: { headers: Record<string, unknown> }, what: string): void {
  for (const name of HANDOVER) assert.equal(header(answer as never, name), undefined, `${what}: ${name}`);
}

describe('serve.sendfile: x-accel-redirect', () => {
  let app!: FastifyInstance;
  before(() => {
    app = serveApp(dataDir, { 'serve.sendfile': 'x-accel-redirect', 'auth.htpasswd': htpasswd });
  });
  after(() => app.close());

  test('a blob GET: every header derrick sends when it streams, the redirect to its content path, no body', async () => {
    const answer = await app.inject({ url: `/v2/open/app/blobs/${layer}` });
    assert.equal(answer.statusCode, 200);
    const [algorithm, hex] = layer.split(':');
    assert.equal(header(answer, 'x-accel-redirect'), `/_derrick_content/${algorithm}/${hex}`);
    assert.equal(header(answer, 'docker-content-digest'), layer);
    assert.equal(header(answer, 'etag'), `"${layer}"`);
    assert.equal(header(answer, 'content-type'), 'application/octet-stream');
    assert.equal(header(answer, 'cache-control'), 'public, max-age=31536000, immutable');
    assert.equal(header(answer, 'docker-distribution-api-version'), 'registry/2.0');
    assert.equal(header(answer, 'content-length'), '0');
    assert.equal(header(answer, 'accept-ranges'), undefined, 'nginx adds its own');
    assert.equal(header(answer, 'x-sendfile'), undefined);
    assert.equal(answer.rawPayload.length, 0);
  });

  test('a satisfiable Range is left to nginx: the same hand-over, whole-blob headers', async () => {
    const answer = await app.inject({ url: `/v2/open/app/blobs/${layer}`, headers: { range: 'bytes=0-3' } });
    assert.equal(answer.statusCode, 200);
    assert.match(header(answer, 'x-accel-redirect') ?? '', /^\/_derrick_content\/sha256\/[0-9a-f]{64}$/);
    assert.equal(header(answer, 'content-range'), undefined);
  });

  test('HEAD is answered by derrick, with the size, and never handed over', async () => {
    const answer = await app.inject({ method: 'HEAD', url: `/v2/open/app/blobs/${layer}` });
    assert.equal(answer.statusCode, 200);
    assert.equal(header(answer, 'content-length'), String(layerSize));
    assert.equal(header(answer, 'docker-content-digest'), layer);
    assertNotHandedOver(answer, 'HEAD');
  });

  test('If-None-Match (304) and an unsatisfiable Range (416) are derrick’s answers', async () => {
    const url = `/v2/open/app/blobs/${layer}`;
    const cached = await app.inject({ url, headers: { 'if-none-match': `"${layer}"` } });
    assert.equal(cached.statusCode, 304);
    assertNotHandedOver(cached, '304');
    const outside = await app.inject({ url, headers: { range: `bytes=${layerSize}-` } });
    assert.equal(outside.statusCode, 416);
    assert.equal(header(outside, 'content-range'), `bytes */${layerSize}`);
    assertNotHandedOver(outside, '416');
  });

  test('a manifest is answered by derrick with its bytes and media type, not handed over', async () => {
    const answer = await app.inject({ url: '/v2/open/app/manifests/1' });
    assert.equal(answer.statusCode, 200);
    assert.equal(header(answer, 'docker-content-digest'), manifest);
    assert.match(header(answer, 'content-type') ?? '', /^application\/vnd\.oci\.image\.(manifest|index)/);
    assert.ok(answer.rawPayload.length > 0);
    assertNotHandedOver(answer, 'manifest');
  });

  test('unknown blobs, names and digests are derrick’s OCI errors, with nothing handed over', async () => {
    const other = `sha256:${'0'.repeat(64)}`;
    const cases: [string, number, string][] = [
      [`/v2/open/app/blobs/${other}`, 404, 'BLOB_UNKNOWN'],
      [`/v2/open/app/blobs/${secretLayer}`, 404, 'BLOB_UNKNOWN'],
      [`/v2/no/such/blobs/${layer}`, 404, 'NAME_UNKNOWN'],
      ['/v2/open/app/blobs/sha256:xyz', 400, 'DIGEST_INVALID'],
    ];
    for (const [url, status, code] of cases) {
      const answer = await app.inject({ url });
      assertOciError(answer, status, code);
      assertNotHandedOver(answer, url);
    }
  });

  test('a protected repository: refused to an anonymous client, handed over to a logged-in one', async () => {
    const url = `/v2/secret/app/blobs/${secretLayer}`;
    const anonymous = await app.inject({ url });
    assertOciError(anonymous, 401, 'UNAUTHORIZED');
    assert.match(header(anonymous, 'www-authenticate') ?? '', /^Basic /);
    assertNotHandedOver(anonymous, 'anonymous');
    const wrong = await app.inject({ url, headers: { authorization: basic('alice', 'nope') } });
    assertOciError(wrong, 401, 'UNAUTHORIZED');
    assertNotHandedOver(wrong, 'wrong password');
    const alice = await app.inject({ url, headers: { authorization: basic('alice', 'alice-pw') } });
    assert.equal(alice.statusCode, 200);
    assert.equal(header(alice, 'x-accel-redirect'), `/_derrick_content/${secretLayer.replace(':', '/')}`);
    assert.equal(header(alice, 'cache-control'), 'private, max-age=31536000, immutable');
  });

  test('a client’s own X-Accel-Redirect or X-Sendfile header is never echoed', async () => {
    const headers = { 'x-accel-redirect': '/_derrick_content/../../etc/passwd', 'x-sendfile': '/etc/passwd' };
    const blob = await app.inject({ url: `/v2/open/app/blobs/${layer}`, headers });
    assert.equal(header(blob, 'x-accel-redirect'), `/_derrick_content/${layer.replace(':', '/')}`);
    assert.equal(header(blob, 'x-sendfile'), undefined);
    for (const url of ['/v2/', '/v2/open/app/manifests/1', '/v2/nothing/here/blobs/x', '/elsewhere']) {
      const answer = await app.inject({ url, headers });
      assertNotHandedOver(answer, url);
    }
  });

  test('a content file that is missing, a symlink or of the wrong size is derrick’s 500, never handed over', async () => {
    const file = contentFile(layer);
    const url = `/v2/open/app/blobs/${layer}`;
    const saved = await fs.readFile(file);
    const breakages: [string, () => Promise<void>][] = [
      ['missing', () => fs.rm(file)],
      ['a symlink', () => fs.rm(file).then(() => fs.symlink(path.join(scratch.dir, 'htpasswd'), file))],
      ['too short', () => fs.writeFile(file, saved.subarray(1))],
    ];
    try {
      for (const [what, breakIt] of breakages) {
        await breakIt();
        const answer = await app.inject({ url });
        assertOciError(answer, 500, 'UNKNOWN');
        assertNotHandedOver(answer, what);
        await fs.rm(file, { force: true });
        await fs.writeFile(file, saved);
      }
    } finally {
      await fs.rm(file, { force: true });
      await fs.writeFile(file, saved);
    }
    assert.equal((await app.inject({ url })).statusCode, 200);
  });
});

describe('serve.sendfile: x-sendfile and serve.sendfilePrefix', () => {
  test('x-sendfile names the absolute path of the content file, and nothing else', async () => {
    const app = serveApp(dataDir, { 'serve.sendfile': 'x-sendfile' });
    try {
      const answer = await app.inject({ url: `/v2/open/app/blobs/${layer}` });
      assert.equal(answer.statusCode, 200);
      assert.equal(header(answer, 'x-sendfile'), contentFile(layer));
      assert.equal(header(answer, 'accept-ranges'), 'bytes', 'Apache keeps the upstream’s');
      assert.ok(path.isAbsolute(header(answer, 'x-sendfile') ?? ''));
      assert.equal(header(answer, 'x-accel-redirect'), undefined);
      assert.equal(header(answer, 'docker-content-digest'), layer);
      assert.equal(answer.rawPayload.length, 0);
    } finally {
      await app.close();
    }
  });

  test('another prefix is used as given; one with a dot segment or without slashes is refused', async () => {
    const app = serveApp(dataDir, {
      'serve.sendfile': 'x-accel-redirect',
      'serve.sendfilePrefix': '/internal/blobs/',
    });
    try {
      const answer = await app.inject({ url: `/v2/open/app/blobs/${layer}` });
      assert.equal(header(answer, 'x-accel-redirect'), `/internal/blobs/${layer.replace(':', '/')}`);
    } finally {
      await app.close();
    }
    for (const prefix of ['/', '/../', '/a/./', 'internal/', '/internal', '/a b/', '/%2e%2e/'])
      assert.throws(
        () => loadConfig({ flags: { dataDir, 'serve.sendfilePrefix': prefix } }),
        ConfigError,
        prefix,
      );
  });

  test('off (the default) streams the bytes as before', async () => {
    const app = serveApp(dataDir);
    try {
      const answer = await app.inject({ url: `/v2/open/app/blobs/${layer}` });
      assertNotHandedOver(answer, 'off');
      assert.equal(answer.rawPayload.length, layerSize);
    } finally {
      await app.close();
    }
  });
});

describe('serve.sendfile on an s3:// tree', () => {
  test('is refused at start: one line naming the key, where it was set, and the fix', async () => {
    const result = await runDerrick([
      'serve',
      '--data-dir',
      's3://some-bucket/registry',
      '--serve-sendfile',
      'x-accel-redirect',
    ]);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.match(
      result.stderr,
      /^derrick: invalid configuration: --serve-sendfile: serve\.sendfile: x-accel-redirect needs a tree on a local file system, and s3:\/\/some-bucket\/registry is a bucket; set serve\.sendfile to off[^\n]*\n$/,
    );
  });

  test('off is accepted there (the default)', () => {
    const config = loadConfig({ flags: { dataDir: 's3://some-bucket/registry' } });
    assert.equal(config.serve.sendfile, 'off');
  });
});
