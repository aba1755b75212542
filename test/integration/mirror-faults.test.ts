/**
 * `derrick publish docker://…` against an upstream that misbehaves on purpose: a small registry of our own on
 * loopback (started here) serving one image, with a fault chosen per test — 429 with `Retry-After`, a
 * connection dropped in the middle of a blob, a blob whose bytes do not match its digest, a Bearer token that
 * expires after one use, an index naming a child the registry does not have.
 *
 * RFC 9110 §10.2.3: "Servers send the "Retry-After" header field to indicate how long the user agent ought to
 * wait before making a follow-up request … When sent with a 503 (Service Unavailable) response, Retry-After
 * indicates how long the service is expected to be unavailable to the client" (and RFC 6585 §4 for 429).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { runDerrick, tempDir, type RunResult } from '../helpers/cli.ts';

const scratch = tempDir('derrick-mirror-faults-');
const digestOf = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

const layer = randomBytes(3 * 1024 * 1024);
const config = Buffer.from(
  JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
);
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: digestOf(config),
      size: config.length,
    },
    layers: [
      { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digestOf(layer), size: layer.length },
    ],
  }),
);
const blobs = new Map([
  [digestOf(layer), layer],
  [digestOf(config), config],
]);

/** An index of the image and of a child the registry answers 404 for. */
const missingChild = digestOf(Buffer.from('a manifest nobody pushed'));
const index = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: digestOf(manifest),
        size: manifest.length,
        platform: { os: 'linux', architecture: 'amd64' },
      },
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: missingChild,
        size: 512,
        platform: { os: 'linux', architecture: 'arm64' },
      },
    ],
  }),
);

type Fault = 'none' | '429' | 'drop' | 'mismatch' | 'expiring-token' | 'redirect' | 'missing-child';
let fault: Fault = 'none';
const seen: {
  path: string;
  at: number;
  range: string | undefined;
  status: number;
  authorization: string | undefined;
}[] = [];
let tokensIssued = 0;
let validToken: string | undefined;
let server: http.Server;
let address = '';

function answer(request: http.IncomingMessage, response: http.ServerResponse): void {
  const url = new URL(request.url ?? '/', 'http://x');
  const note = (status: number): void => {
    seen.push({
      path: url.pathname,
      at: Date.now(),
      range: request.headers.range,
      status,
      authorization: request.headers.authorization,
    });
  };
  if (url.pathname === '/token') {
    tokensIssued++;
    validToken = `token-${tokensIssued}`;
    note(200);
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ token: validToken }));
    return;
  }
  if (fault === 'expiring-token') {
    // Each token is good for one request: the next one is refused, as an expired token would be.
    const given = request.headers.authorization;
    if (given !== `Bearer ${validToken ?? ''}`) {
      note(401);
      response.statusCode = 401;
      response.setHeader(
        'www-authenticate',
        `Bearer realm="http://${address}/token",service="faults",scope="repository:team/app:pull"`,
      );
      response.end('{"errors":[{"code":"UNAUTHORIZED","message":"token expired"}]}');
      return;
    }
    validToken = undefined;
  }
  if (fault === 'redirect' && url.pathname.startsWith('/v2/')) {
    // Basic credentials on the registry's API; the blobs at another origin (a CDN's), which needs none.
    if (request.headers.authorization !== `Basic ${Buffer.from('alice:secret').toString('base64')}`) {
      note(401);
      response.statusCode = 401;
      response.setHeader('www-authenticate', 'Basic realm="faults"');
      response.end();
      return;
    }
    const blob = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (blob) {
      note(307);
      response.statusCode = 307;
      response.setHeader('location', `http://localhost:${address.split(':')[1] ?? ''}/cdn/${blob[1] ?? ''}`);
      response.end();
      return;
    }
  }
  const cdn = /^\/cdn\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
  if (cdn) {
    note(200);
    response.end(blobs.get(cdn[1] ?? ''));
    return;
  }
  if (fault === 'missing-child' && url.pathname.startsWith('/v2/team/app/manifests/')) {
    const ref = url.pathname.slice('/v2/team/app/manifests/'.length);
    const bytes = ref === '1' ? index : ref === digestOf(manifest) ? manifest : undefined;
    if (bytes) {
      note(200);
      response.setHeader('content-type', (JSON.parse(bytes.toString()) as { mediaType: string }).mediaType);
      response.end(bytes);
      return;
    }
  }
  if (url.pathname === '/v2/team/app/manifests/1') {
    if (fault === '429' && !seen.some((entry) => entry.status === 429)) {
      note(429);
      response.statusCode = 429;
      response.setHeader('retry-after', '1');
      response.end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
      return;
    }
    note(200);
    response.setHeader('content-type', 'application/vnd.oci.image.manifest.v1+json');
    response.end(manifest);
    return;
  }
  const blob = /^\/v2\/team\/app\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
  const bytes = blob ? blobs.get(blob[1] ?? '') : undefined;
  if (bytes) {
    if (fault === 'mismatch' && bytes === layer) {
      note(200);
      response.setHeader('content-length', bytes.length);
      response.end(randomBytes(bytes.length));
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(request.headers.range ?? '');
    const from = range ? Number(range[1]) : 0;
    const status = range ? 206 : 200;
    note(status);
    response.statusCode = status;
    response.setHeader('content-length', bytes.length - from);
    if (range) response.setHeader('content-range', `bytes ${from}-${bytes.length - 1}/${bytes.length}`);
    if (fault === 'drop' && bytes === layer && !range) {
      // Half the blob, then the connection goes.
      response.write(bytes.subarray(0, bytes.length / 2), () => response.socket?.destroy());
      return;
    }
    response.end(bytes.subarray(from));
    return;
  }
  note(404);
  response.statusCode = 404;
  response.end('{"errors":[{"code":"NOT_FOUND","message":"no such thing"}]}');
}

before(async () => {
  server = http.createServer(answer);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  scratch.cleanup();
});
beforeEach(() => {
  seen.length = 0;
});

async function publishFrom(dataDir: string, extra: string[] = []): Promise<RunResult> {
  return runDerrick([
    'publish',
    `docker://${address}/team/app:1`,
    'mirror/app:1',
    '--data-dir',
    dataDir,
    '--tls-verify=false',
    ...extra,
  ]);
}

describe('derrick publish docker://… from a faulty upstream', () => {
  test('429 with Retry-After: 1 — asked again after a second, then published', async () => {
    fault = '429';
    const result = await publishFrom(path.join(scratch.dir, 'retry'));
    assert.equal(result.code, 0, result.stderr);
    const manifests = seen.filter((entry) => entry.path.endsWith('/manifests/1'));
    assert.deepEqual(
      manifests.map((entry) => entry.status),
      [429, 200],
    );
    const [refused, retried] = manifests;
    assert.ok(retried && refused && retried.at - refused.at >= 900, 'waited for Retry-After');
  });

  test('a connection dropped in the middle of a blob: resumed with Range from the byte it broke at', async () => {
    fault = 'drop';
    const dataDir = path.join(scratch.dir, 'drop');
    const result = await publishFrom(dataDir);
    assert.equal(result.code, 0, result.stderr);
    const layerGets = seen.filter((entry) => entry.path.endsWith(digestOf(layer)));
    assert.equal(layerGets.length, 2);
    const resumedGet = layerGets[1];
    assert.ok(resumedGet);
    assert.equal(resumedGet.status, 206);
    assert.match(String(resumedGet.range), /^bytes=[1-9]\d*-$/);
    const verify = await runDerrick(['verify', '--data-dir', dataDir]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  });

  test('a blob whose bytes do not match its digest: refused, nothing published', async () => {
    fault = 'mismatch';
    const dataDir = path.join(scratch.dir, 'mismatch');
    const result = await publishFrom(dataDir);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, new RegExp(digestOf(layer)));
    assert.doesNotMatch(result.stderr, /unexpected/);
    const ls = await runDerrick(['ls', '--data-dir', dataDir]);
    assert.doesNotMatch(ls.stdout, /mirror\/app/);
  });

  test('an index naming a child the registry answers 404 for: one line naming the index and the child, nothing published', async () => {
    fault = 'missing-child';
    const dataDir = path.join(scratch.dir, 'missing-child');
    const result = await publishFrom(dataDir);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, new RegExp(`index ${digestOf(index)} names manifest ${missingChild}`));
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.ok(
      seen.some((entry) => entry.path.endsWith(`/manifests/${missingChild}`) && entry.status === 404),
    );
    const ls = await runDerrick(['ls', '--data-dir', dataDir]);
    assert.doesNotMatch(ls.stdout, /mirror\/app/);
    assert.deepEqual(await fs.readdir(path.join(dataDir, 'v2', 'web')).catch(() => []), []);
    assert.deepEqual(await fs.readdir(path.join(dataDir, 'v2', 'app')).catch(() => []), []);
  });

  test('a token that expires after each request: a new one fetched every time, published', async () => {
    fault = 'expiring-token';
    tokensIssued = 0;
    // One blob at a time: a token good for a single request cannot serve two requests in flight at once (a real
    // registry's tokens expire with time, and concurrent requests each fetch a new one).
    const result = await publishFrom(path.join(scratch.dir, 'token'), ['--jobs', '1']);
    assert.equal(result.code, 0, result.stderr);
    // The manifest, the config and the layer: each refused once, then asked with a fresh token.
    assert.ok(tokensIssued >= 3, `tokens issued: ${tokensIssued}`);
  });

  test('blobs redirected to another origin: followed, and the credentials are not sent there', async () => {
    fault = 'redirect';
    const result = await publishFrom(path.join(scratch.dir, 'redirect'), ['--creds', 'alice:secret']);
    assert.equal(result.code, 0, result.stderr);
    const fromCdn = seen.filter((entry) => entry.path.startsWith('/cdn/'));
    assert.equal(fromCdn.length, 2);
    assert.deepEqual(
      fromCdn.map((entry) => entry.authorization),
      [undefined, undefined],
    );
    assert.ok(seen.some((entry) => entry.status === 307 && entry.authorization?.startsWith('Basic ')));
  });
});
