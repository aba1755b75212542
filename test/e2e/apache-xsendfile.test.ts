/**
 * End to end: `derrick serve --serve-sendfile x-sendfile` (the real CLI) behind Debian's Apache with mod_xsendfile,
 * configured as docs/operations.md shows (test/helpers/apache.ts reads the block from there). skopeo copies through
 * Apache with the digests checked; curl checks the bytes and ranges Apache sends from the content file with
 * derrick's headers, HEAD and errors from derrick, a protected repository (refused anonymously, sent logged in), and
 * that a client's own X-Sendfile request header sends nothing else.
 */
import assert from 'node:assert/strict';
import { chmodSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApache } from '../helpers/apache.ts';
import { writeHtpasswd } from '../helpers/auth.ts';
import { digestOf, execute, tempDir } from '../helpers/cli.ts';
import { containersClientConfig } from '../helpers/containers.ts';
import { assertDerrickError, curl as curlAt, one, type Curled } from '../helpers/curl.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { largeImageLayout, layoutDigest, singleImageLayout } from '../helpers/images.ts';
import type { NginxServer } from '../helpers/nginx.ts';
import { largestLayer, publishInto } from '../helpers/server.ts';

const temp = tempDir('derrick-e2e-xsendfile-');
// Apache's workers (nobody, when the tests run as root) read the content files.
chmodSync(temp.dir, 0o755);
const { policy: POLICY, env: CLIENT_ENV } = containersClientConfig(path.join(temp.dir, 'client-config'));
const dataDir = path.join(temp.dir, 'data');
const LAYER_SIZE = 3 * 1024 * 1024 + 5;
const PASSWORD = 'alice-pw';

let derrick!: DerrickServer;
let apache!: NginxServer;
let openDigest = '';
let layer = '';
let secretLayer = '';

const curl = (url: string, args: string[] = []): Promise<Curled> =>
  curlAt(`${apache.url}${url}`, args, temp.dir);
const blobFile = (digest: string): string => path.join(dataDir, 'v2', 'content', ...digest.split(':'));

before(async () => {
  const big = path.join(temp.dir, 'big');
  openDigest = (await largeImageLayout(big, LAYER_SIZE)).digest;
  const secret = path.join(temp.dir, 'secret');
  await singleImageLayout(secret, 'latest', 'for alice only');
  await publishInto(dataDir, `oci:${big}:latest`, ['open/app:v1']);
  await publishInto(dataDir, `oci:${secret}:latest`, ['secret/app:v1'], { protected: true });
  layer = (await largestLayer(dataDir, 'open/app')).digest;
  secretLayer = (await largestLayer(dataDir, 'secret/app')).digest;
  const htpasswd = path.join(temp.dir, 'htpasswd');
  writeHtpasswd(htpasswd, { alice: PASSWORD });
  derrick = await startDerrickServer(dataDir, {
    args: ['--serve-sendfile', 'x-sendfile', '--workers', '1', '--auth-htpasswd', htpasswd],
  });
  apache = await startApache(derrick.host, path.join(dataDir, 'v2', 'content'));
});

after(async () => {
  await apache.stop();
  await derrick.stop();
  temp.cleanup();
});

describe('derrick with serve.sendfile: x-sendfile behind the documented Apache', () => {
  test('skopeo copy through Apache: the published digest, the layer’s bytes', async () => {
    const destination = path.join(temp.dir, 'copy');
    const proxied = apache.url.replace(/^http:\/\//, '');
    const result = await execute(
      'skopeo',
      [
        '--policy',
        POLICY,
        'copy',
        '--quiet',
        '--src-tls-verify=false',
        '--preserve-digests',
        `docker://${proxied}/open/app:v1`,
        `oci:${destination}:v1`,
      ],
      { env: CLIENT_ENV },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await layoutDigest(destination), openDigest);
    assert.equal(digestOf(readFileSync(path.join(destination, 'blobs', ...layer.split(':')))), layer);
  });

  test('a blob GET and a Range: the file’s bytes from Apache, with derrick’s headers, each once', async () => {
    const url = `/v2/open/app/blobs/${layer}`;
    const whole = await curl(url);
    assert.equal(whole.status, 200, whole.raw);
    assert.equal(digestOf(whole.body), layer);
    assert.equal(one(whole, 'content-length'), String(LAYER_SIZE));
    assert.equal(one(whole, 'docker-content-digest'), layer);
    assert.equal(one(whole, 'etag'), `"${layer}"`);
    assert.equal(one(whole, 'content-type'), 'application/octet-stream');
    assert.equal(whole.headers.get('x-sendfile'), undefined, 'Apache does not pass it on');
    assert.ok(one(whole, 'last-modified'), 'sent by Apache from the file (derrick sends no Last-Modified)');
    const part = await curl(url, ['-r', '100-199']);
    assert.equal(part.status, 206, part.raw);
    assert.equal(one(part, 'content-range'), `bytes 100-199/${LAYER_SIZE}`);
    assert.deepEqual(part.body, readFileSync(blobFile(layer)).subarray(100, 200));
  });

  test('HEAD, 416 and 404s are derrick’s answers through Apache', async () => {
    const head = await curl(`/v2/open/app/blobs/${layer}`, ['-I']);
    assert.equal(head.status, 200);
    assert.equal(one(head, 'content-length'), String(LAYER_SIZE));
    assert.equal(head.headers.get('last-modified'), undefined);
    const outside = await curl(`/v2/open/app/blobs/${layer}`, ['-r', `${LAYER_SIZE}-`]);
    assert.equal(outside.status, 416);
    assert.equal(one(outside, 'content-range'), `bytes */${LAYER_SIZE}`);
    assertDerrickError(await curl(`/v2/open/app/blobs/sha256:${'0'.repeat(64)}`), 404, 'BLOB_UNKNOWN');
    assertDerrickError(await curl(`/v2/no/such/blobs/${layer}`), 404, 'NAME_UNKNOWN');
  });

  test('a protected repository: 401 to an anonymous client, the bytes to a logged-in one', async () => {
    const url = `/v2/secret/app/blobs/${secretLayer}`;
    assertDerrickError(await curl(url), 401, 'UNAUTHORIZED');
    const alice = await curl(url, ['-u', `alice:${PASSWORD}`]);
    assert.equal(alice.status, 200);
    assert.equal(digestOf(alice.body), secretLayer);
  });

  test('a client’s X-Sendfile request header sends nothing but the blob', async () => {
    const forged = await curl(`/v2/open/app/blobs/${layer}`, [
      '-H',
      'X-Sendfile: /etc/passwd',
      '-H',
      `X-Sendfile-Temporary: ${blobFile(secretLayer)}`,
    ]);
    assert.equal(forged.status, 200);
    assert.equal(digestOf(forged.body), layer);
    const manifest = await curl('/v2/open/app/manifests/v1', ['-H', 'X-Sendfile: /etc/passwd']);
    assert.equal(manifest.status, 200);
    assert.equal(digestOf(manifest.body), openDigest);
  });
});
