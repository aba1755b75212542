/**
 * `derrick publish docker://…` killed with `kill -9` mid-way, then run again: the blobs the first run had verified
 * are in the content store already, so the second run fetches only the rest, and the tree verifies clean.
 *
 * The upstream is a small registry of our own on loopback serving one image of four blobs (a config and three
 * layers); on the first run the last layer's transfer stops half-way and hangs. The test waits — on what the
 * server has served and the tree holds, never on a clock — until the three other blobs are in the content store,
 * kills derrick, and compares what the server was asked the second time. (A derrick that kept verified blobs
 * back until the end would never put them there: the test fails on its timeout.)
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { contentKey } from '../../src/store/keys.ts';
import { collectOutput, runDerrick, startDerrick, tempDir } from '../helpers/cli.ts';

const scratch = tempDir('derrick-mirror-resume-');
const digestOf = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

const layers = [randomBytes(512 * 1024), randomBytes(512 * 1024), randomBytes(2 * 1024 * 1024)];
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
    layers: layers.map((layer) => ({
      mediaType: 'application/vnd.oci.image.layer.v1.tar',
      digest: digestOf(layer),
      size: layer.length,
    })),
  }),
);
const blobs = new Map([config, ...layers].map((bytes) => [digestOf(bytes), bytes]));
const hanging = digestOf(layers[2] as Buffer);

/** While true, the hanging layer sends half its bytes and then nothing. */
let hang = true;
/** Blob digests asked for, in order. */
const requested: string[] = [];
let server: http.Server;
let address = '';

function answer(request: http.IncomingMessage, response: http.ServerResponse): void {
  const url = new URL(request.url ?? '/', 'http://x');
  if (url.pathname === '/v2/x/manifests/1') {
    response.setHeader('content-type', 'application/vnd.oci.image.manifest.v1+json');
    response.end(manifest);
    return;
  }
  const blob = /^\/v2\/x\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
  const bytes = blob ? blobs.get(blob[1] ?? '') : undefined;
  if (blob && bytes) {
    const digest = blob[1] ?? '';
    requested.push(digest);
    response.setHeader('content-length', bytes.length);
    if (hang && digest === hanging) response.write(bytes.subarray(0, bytes.length / 2));
    else response.end(bytes);
    return;
  }
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

/** Whether the tree's content store holds `digest` whole. */
async function stored(dataDir: string, digest: string): Promise<boolean> {
  const info = await fs.stat(path.join(dataDir, contentKey(digest))).catch(() => undefined);
  return info?.size === blobs.get(digest)?.length;
}

test(
  'kill -9 mid-publish, then again: only the blobs not yet verified are fetched, and verify is clean',
  { timeout: 120_000 },
  async () => {
    const dataDir = path.join(scratch.dir, 'data');
    const args = ['publish', `docker://${address}/x:1`, 'x:1', '--tls-verify=false', '--data-dir', dataDir];
    const first = startDerrick(args, { env: { DERRICK_DEBUG: '' } });
    const firstDone = collectOutput(first);
    const others = [...blobs.keys()].filter((digest) => digest !== hanging);
    // Until the three other blobs are committed and the hanging one has been asked for (or derrick gave up).
    const firstRun = { exited: false };
    void firstDone.then(() => (firstRun.exited = true));
    for (;;) {
      const ready = await Promise.all(others.map((digest) => stored(dataDir, digest)));
      if ((ready.every(Boolean) && requested.includes(hanging)) || firstRun.exited) break;
      await sleep(50);
    }
    if (firstRun.exited) assert.fail(`the first publish ended by itself: ${(await firstDone).stderr}`);
    first.kill('SIGKILL');
    const killed = await firstDone;
    assert.equal(killed.signal, 'SIGKILL');
    assert.deepEqual(
      [...requested].sort(),
      [...blobs.keys()].sort(),
      'the first run asked for every blob once',
    );
    // What the killed run committed is content no record references: no problem for verify, debris for gc.
    const between = await runDerrick(['verify', '--data-dir', dataDir]);
    assert.equal(between.code, 0, between.stderr + between.stdout);
    const gc = await runDerrick(['gc', '--dry-run', '--json', '--data-dir', dataDir]);
    assert.equal(gc.code, 0, gc.stderr);
    assert.equal((JSON.parse(gc.stdout) as { contentFiles: number }).contentFiles, 3);

    hang = false;
    requested.length = 0;
    const second = await runDerrick(args, { env: { DERRICK_DEBUG: '' } });
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /^published x:1 sha256:/m);
    assert.match(second.stdout, /1 blob\(s\) copied .*, 3 already present/);
    assert.deepEqual(requested, [hanging], 'the second run fetched only the blob the first had not finished');

    const verify = await runDerrick(['verify', '--data-dir', dataDir]);
    assert.equal(verify.code, 0, verify.stderr + verify.stdout);
  },
);
