/**
 * End to end: `derrick serve --mode serve --serve-sendfile x-accel-redirect` (the real CLI, two workers) behind a
 * real nginx configured exactly as docs/operations.md shows (test/helpers/nginx-sendfile.ts reads it from there).
 * skopeo copies and podman pulls through nginx with their digests checked; curl checks what nginx answers — the
 * bytes and ranges from the file, derrick's headers (digest, type, ETag, caching), HEAD and the errors from derrick
 * (its OCI bodies, not nginx's pages) — that the internal location is unreachable from outside, and that a
 * protected repository is refused to an anonymous client and sent to a logged-in one.
 */
import assert from 'node:assert/strict';
import { chmodSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { writeHtpasswd } from '../helpers/auth.ts';
import { digestOf, execute, run, tempDir } from '../helpers/cli.ts';
import { containersClientConfig, podmanStateArgs } from '../helpers/containers.ts';
import { assertDerrickError, curl as curlAt, one, type Curled } from '../helpers/curl.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { largeImageLayout, layoutDigest, singleImageLayout } from '../helpers/images.ts';
import type { NginxServer } from '../helpers/nginx.ts';
import { startSendfileNginx } from '../helpers/nginx-sendfile.ts';
import { largestLayer, publishInto } from '../helpers/server.ts';

const temp = tempDir('derrick-e2e-sendfile-');
// nginx's workers (nobody, when the tests run as root) read the content files.
chmodSync(temp.dir, 0o755);
const { policy: POLICY, env: CLIENT_ENV } = containersClientConfig(path.join(temp.dir, 'client-config'));
const dataDir = path.join(temp.dir, 'data');
const LAYER_SIZE = 5 * 1024 * 1024 + 17;
const PASSWORD = 'alice-pw';

let derrick!: DerrickServer;
let nginx!: NginxServer;
let openDigest = '';
let secretDigest = '';
let smallDigest = '';
let layer = { digest: '', size: 0 };
let secretLayer = '';

const proxied = (): string => nginx.url.replace(/^http:\/\//, '');

/** curl through nginx. */
const curl = (url: string, args: string[] = []): Promise<Curled> =>
  curlAt(`${nginx.url}${url}`, args, temp.dir);

const blobFile = (digest: string): string => path.join(dataDir, 'v2', 'content', ...digest.split(':'));

before(async () => {
  const big = path.join(temp.dir, 'big');
  openDigest = (await largeImageLayout(big, LAYER_SIZE)).digest;
  const secret = path.join(temp.dir, 'secret');
  secretDigest = (await singleImageLayout(secret, 'latest', 'for alice only')).digest;
  const small = path.join(temp.dir, 'small');
  smallDigest = (await singleImageLayout(small, 'latest', 'a real tar layer')).digest;
  await publishInto(dataDir, `oci:${big}:latest`, ['open/app:v1']);
  await publishInto(dataDir, `oci:${small}:latest`, ['open/small:v1']);
  await publishInto(dataDir, `oci:${secret}:latest`, ['secret/app:v1'], { protected: true });
  layer = await largestLayer(dataDir, 'open/app');
  secretLayer = (await largestLayer(dataDir, 'secret/app')).digest;
  const htpasswd = path.join(temp.dir, 'htpasswd');
  writeHtpasswd(htpasswd, { alice: PASSWORD });
  derrick = await startDerrickServer(dataDir, {
    args: [
      '--serve-sendfile',
      'x-accel-redirect',
      '--workers',
      '2',
      '--auth-htpasswd',
      htpasswd,
      '--trusted-proxies',
      '["127.0.0.1"]',
    ],
  });
  nginx = await startSendfileNginx(derrick.host, path.join(dataDir, 'v2', 'content'));
});

after(async () => {
  await nginx.stop();
  await derrick.stop();
  temp.cleanup();
});

describe('derrick with serve.sendfile: x-accel-redirect behind the documented nginx', () => {
  test('the configuration the test runs is the documented one, with only its addresses replaced', () => {
    assert.match(nginx.config, /location \/_derrick_content\/ \{\n\s+internal;/);
    assert.match(nginx.config, new RegExp(`proxy_pass http://${derrick.host.replace(/\./g, '\\.')};`));
  });

  test('skopeo copy through nginx: the published digest, every blob verified', async () => {
    const destination = path.join(temp.dir, 'skopeo-copy');
    const result = await execute(
      'skopeo',
      [
        '--policy',
        POLICY,
        'copy',
        '--quiet',
        '--src-tls-verify=false',
        '--preserve-digests',
        `docker://${proxied()}/open/app:v1`,
        `oci:${destination}:v1`,
      ],
      { env: CLIENT_ENV },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await layoutDigest(destination), openDigest);
    const copied = readFileSync(path.join(destination, 'blobs', ...layer.digest.split(':')));
    assert.equal(copied.length, LAYER_SIZE);
    assert.equal(digestOf(copied), layer.digest);
  });

  test('podman pull through nginx, anonymous and logged in: the stored images have the published digests', async () => {
    const state = path.join(temp.dir, 'podman');
    const podman = (args: string[]) =>
      run('podman', [...podmanStateArgs(state), ...args], { env: CLIENT_ENV });
    const pull = ['pull', '--quiet', '--tls-verify=false', '--signature-policy', POLICY];
    const open = `${proxied()}/open/small:v1`;
    const secret = `${proxied()}/secret/app:v1`;
    await podman([...pull, open]);
    await assert.rejects(podman([...pull, secret]), 'anonymous podman is refused the protected image');
    await podman([...pull, '--creds', `alice:${PASSWORD}`, secret]);
    const images = JSON.parse((await podman(['image', 'inspect', open, secret])).stdout) as {
      Digest: string;
    }[];
    assert.deepEqual(
      images.map((image) => image.Digest),
      [smallDigest, secretDigest],
    );
  });

  test('a blob GET: the file’s bytes from nginx, with derrick’s headers, each once', async () => {
    const answer = await curl(`/v2/open/app/blobs/${layer.digest}`);
    assert.equal(answer.status, 200, answer.raw);
    assert.equal(answer.body.length, LAYER_SIZE);
    assert.equal(digestOf(answer.body), layer.digest);
    assert.equal(one(answer, 'content-length'), String(LAYER_SIZE));
    assert.equal(one(answer, 'docker-content-digest'), layer.digest);
    assert.equal(one(answer, 'etag'), `"${layer.digest}"`);
    assert.equal(one(answer, 'content-type'), 'application/octet-stream');
    assert.equal(one(answer, 'cache-control'), 'public, max-age=31536000, immutable');
    assert.equal(one(answer, 'accept-ranges'), 'bytes');
    assert.equal(one(answer, 'docker-distribution-api-version'), 'registry/2.0');
    assert.equal(answer.headers.get('x-accel-redirect'), undefined, 'nginx does not pass it on');
    // derrick never sends Last-Modified; nginx's static module does: the bytes came from nginx.
    assert.ok(one(answer, 'last-modified'), 'sent by nginx from the file');
  });

  test('Range through nginx: 206 with the bytes of the file; If-Range with derrick’s ETag holds', async () => {
    const whole = readFileSync(blobFile(layer.digest));
    const url = `/v2/open/app/blobs/${layer.digest}`;
    const cases: [string[], number, number][] = [
      [['-r', '0-99'], 0, 99],
      [['-r', `${LAYER_SIZE - 10}-`], LAYER_SIZE - 10, LAYER_SIZE - 1],
      [['-H', 'Range: bytes=-5'], LAYER_SIZE - 5, LAYER_SIZE - 1],
      [['-r', '1000-1999', '-H', `If-Range: "${layer.digest}"`], 1000, 1999],
    ];
    for (const [args, start, end] of cases) {
      const answer = await curl(url, args);
      assert.equal(answer.status, 206, answer.raw);
      assert.equal(one(answer, 'content-range'), `bytes ${start}-${end}/${LAYER_SIZE}`);
      assert.deepEqual(answer.body, whole.subarray(start, end + 1));
      assert.equal(one(answer, 'docker-content-digest'), layer.digest);
    }
    const stale = await curl(url, ['-r', '0-9', '-H', 'If-Range: "sha256:other"']);
    assert.equal(stale.status, 200, 'an If-Range that does not match: the whole blob');
    assert.equal(stale.body.length, LAYER_SIZE);
    const outside = await curl(url, ['-r', `${LAYER_SIZE}-`]);
    assert.equal(outside.status, 416);
    assert.equal(one(outside, 'content-range'), `bytes */${LAYER_SIZE}`);
    assert.equal(one(outside, 'docker-distribution-api-version'), 'registry/2.0', 'derrick’s 416');
  });

  test('HEAD and If-None-Match are derrick’s answers through nginx', async () => {
    const url = `/v2/open/app/blobs/${layer.digest}`;
    const head = await curl(url, ['-I']);
    assert.equal(head.status, 200);
    assert.equal(one(head, 'content-length'), String(LAYER_SIZE));
    assert.equal(one(head, 'docker-content-digest'), layer.digest);
    assert.equal(head.headers.get('last-modified'), undefined, 'derrick answered, not nginx’s file');
    const cached = await curl(url, ['-H', `If-None-Match: "${layer.digest}"`]);
    assert.equal(cached.status, 304);
    assert.equal(cached.body.length, 0);
  });

  test('a manifest by tag comes from derrick with its media type', async () => {
    const answer = await curl('/v2/open/app/manifests/v1', [
      '-H',
      'Accept: application/vnd.oci.image.manifest.v1+json',
    ]);
    assert.equal(answer.status, 200);
    assert.equal(one(answer, 'content-type'), 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(one(answer, 'docker-content-digest'), openDigest);
    assert.equal(digestOf(answer.body), openDigest);
  });

  test('404s are derrick’s OCI errors, not nginx’s pages', async () => {
    assertDerrickError(await curl(`/v2/open/app/blobs/sha256:${'0'.repeat(64)}`), 404, 'BLOB_UNKNOWN');
    assertDerrickError(await curl(`/v2/no/such/blobs/${layer.digest}`), 404, 'NAME_UNKNOWN');
    assertDerrickError(await curl(`/v2/open/app/blobs/${secretLayer}`), 404, 'BLOB_UNKNOWN');
  });

  test('the internal location cannot be asked for from outside, and a client’s X-Accel-Redirect is ignored', async () => {
    const direct = await curl(`/_derrick_content/${layer.digest.replace(':', '/')}`);
    assert.equal(direct.status, 404);
    assert.equal(direct.headers.get('docker-distribution-api-version'), undefined, 'nginx refused it');
    assert.notEqual(direct.body.length, LAYER_SIZE);
    const forged = await curl('/v2/open/small/manifests/v1', [
      '-H',
      `X-Accel-Redirect: /_derrick_content/${layer.digest.replace(':', '/')}`,
    ]);
    assert.equal(forged.status, 200);
    assert.equal(digestOf(forged.body), smallDigest);
    const sideways = await curl(`/v2/open/app/blobs/${layer.digest}`, [
      '-H',
      'X-Accel-Redirect: /_derrick_content/../../../etc/passwd',
      '-H',
      'X-Sendfile: /etc/passwd',
      '-r',
      '0-9',
    ]);
    assert.equal(sideways.status, 206);
    assert.deepEqual(sideways.body, readFileSync(blobFile(layer.digest)).subarray(0, 10));
  });

  test('a protected repository: 401 with a challenge to an anonymous client, the bytes to a logged-in one', async () => {
    const url = `/v2/secret/app/blobs/${secretLayer}`;
    const anonymous = await curl(url);
    assertDerrickError(anonymous, 401, 'UNAUTHORIZED');
    assert.match(one(anonymous, 'www-authenticate') ?? '', /^Basic realm=/);
    const wrong = await curl(url, ['-u', 'alice:wrong']);
    assertDerrickError(wrong, 401, 'UNAUTHORIZED');
    const alice = await curl(url, ['-u', `alice:${PASSWORD}`]);
    assert.equal(alice.status, 200);
    assert.equal(digestOf(alice.body), secretLayer);
    assert.equal(one(alice, 'cache-control'), 'private, max-age=31536000, immutable');
    const refused = await execute(
      'skopeo',
      ['--policy', POLICY, 'inspect', '--tls-verify=false', `docker://${proxied()}/secret/app:v1`],
      { env: CLIENT_ENV },
    );
    assert.notEqual(refused.code, 0, 'skopeo without credentials is refused');
    const destination = path.join(temp.dir, 'secret-copy');
    const copied = await execute(
      'skopeo',
      [
        '--policy',
        POLICY,
        'copy',
        '--quiet',
        '--src-tls-verify=false',
        '--src-creds',
        `alice:${PASSWORD}`,
        `docker://${proxied()}/secret/app:v1`,
        `oci:${destination}:v1`,
      ],
      { env: CLIENT_ENV },
    );
    assert.equal(copied.code, 0, copied.stderr);
    assert.equal(await layoutDigest(destination), secretDigest);
  });
});
