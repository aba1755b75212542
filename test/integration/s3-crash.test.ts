/**
 * Crash safety of `derrick publish` into a bucket (the tests' real Ceph RGW): a publisher killed with SIGKILL at
 * any moment — while node starts, in the middle of the multipart upload of its 12 MiB layer, after the layer was
 * committed under its address but before the record — leaves a bucket that `verify` finds clean, whose record is
 * the old one or the new one (and the real app serves it), and where no object under a content address holds
 * other bytes. `derrick gc --min-age 0` then removes the debris (unfinished multipart uploads, unreferenced
 * content) and the next publish simply works.
 *
 * As in crash.test.ts, kills are spread at random over ~1.2× the measured rest of a publish from one of three
 * moments, in turn: the spawn, the start of the layer's multipart upload (seen by ListMultipartUploads), and the
 * layer's appearance under its content address (seen by HeadObject); attempts go on until each phase that writes
 * into the bucket has been hit.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { buildApp } from '../../src/http/app.ts';
import { unpublish } from '../../src/publish/unpublish.ts';
import { verifyTree } from '../../src/publish/verify.ts';
import { CONTENT_PREFIX, contentKey } from '../../src/store/keys.ts';
import { openBackend } from '../../src/store/open-backend.ts';
import { Tree } from '../../src/store/tree.ts';
import { freshTree, type TreeSpot } from '../helpers/backends.ts';
import { collectOutput, runDerrick, startDerrick, tempDir, type RunResult, killAll } from '../helpers/cli.ts';
import { LayoutBuilder, MT } from '../helpers/images.ts';
import { rawClient } from '../helpers/s3.ts';
import { serveConfig } from '../helpers/server.ts';

const NAME = 'crash/app';
const TAG = 'stable';
const LAYER_BYTES = 12 * 1024 * 1024;
/** Attempts give up here (each phase below is usually hit within a dozen). */
const MAX_ATTEMPTS = 40;
/** Kills that must land in each phase that writes into the bucket. */
const REQUIRED_PER_PHASE = 2;

interface Image {
  source: string;
  digest: string;
  layer: string;
}

type Anchor = 'spawn' | 'uploading' | 'committed';
const ANCHORS: Anchor[] = ['spawn', 'uploading', 'committed'];

interface Attempt {
  result: RunResult;
  at: Record<Anchor | 'exit', number | undefined>;
  killedAt: number | undefined;
}

const scratch = tempDir('derrick-s3-crash-');
const running = new Set<ChildProcess>();
const randomLayer = randomBytes(LAYER_BYTES);
let imageCount = 0;
let spot: TreeSpot;
let tree: Tree;
let client: S3Client;

async function nextImage(): Promise<Image> {
  const index = imageCount++;
  const dir = path.join(scratch.dir, `image-${index}`);
  const builder = new LayoutBuilder(dir);
  const bytes = Buffer.from(randomLayer);
  bytes.writeUInt32BE(index, 0);
  const layer = builder.blob(bytes, MT.ociLayerGzip);
  const image = await builder.image({
    extraLayers: [{ descriptor: layer, diffId: layer.digest }],
    cmd: ['/crash', String(index)],
  });
  builder.add(image, 'latest').write();
  return { source: `oci:${dir}`, digest: image.digest, layer: layer.digest };
}

const fullKey = (key: string): string => `tree/${key}`;

async function uploading(key: string): Promise<boolean> {
  const answer = await client.send(
    new ListMultipartUploadsCommand({ Bucket: spot.bucket, Prefix: fullKey(key) }),
  );
  return (answer.Uploads ?? []).length > 0;
}

async function stored(key: string): Promise<boolean> {
  try {
    await client.send(new HeadObjectCommand({ Bucket: spot.bucket, Key: fullKey(key) }));
    return true;
  } catch (error) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404)
      return false;
    throw error;
  }
}

async function publishAttempt(image: Image, plan?: { from: Anchor; delayMs: number }): Promise<Attempt> {
  const started = performance.now();
  const at: Attempt['at'] = { spawn: 0, uploading: undefined, committed: undefined, exit: undefined };
  let killedAt: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  const child = startDerrick(['publish', '-q', image.source, `${NAME}:${TAG}`, '--data-dir', spot.location], {
    env: { ...spot.env, DERRICK_DEBUG: '' },
  });
  running.add(child);
  const reached = (anchor: Anchor): void => {
    at[anchor] = performance.now() - started;
    if (plan?.from !== anchor) return;
    timer = setTimeout(() => {
      killedAt = performance.now() - started;
      child.kill('SIGKILL');
    }, plan.delayMs);
  };
  const output = collectOutput(child);
  reached('spawn');
  const watch = { done: false };
  const layerKey = contentKey(image.layer);
  const watching = (async () => {
    while (!watch.done && at.committed === undefined) {
      if (at.uploading === undefined && (await uploading(layerKey))) reached('uploading');
      if (await stored(layerKey)) reached('committed');
      await sleep(20);
    }
  })();
  try {
    const result = await output;
    at.exit = performance.now() - started;
    return { result, at, killedAt };
  } finally {
    watch.done = true;
    await watching;
    clearTimeout(timer);
    running.delete(child);
  }
}

/** What the real app over the bucket answers for NAME:TAG: the digest it serves. */
async function servedDigest(): Promise<string> {
  const config = serveConfig(spot.location);
  const served = new Tree(await openBackend(spot.location, { s3: config.s3 }));
  const app = buildApp(config, served, { logger: pino({ level: 'silent' }) });
  try {
    const response = await app.inject({ url: `/v2/${NAME}/manifests/${TAG}` });
    assert.equal(response.statusCode, 200, response.body);
    const digest = response.headers['docker-content-digest'];
    assert.equal(typeof digest, 'string');
    assert.equal(`sha256:${createHash('sha256').update(response.rawPayload).digest('hex')}`, digest);
    return String(digest);
  } finally {
    await app.close();
    await served.backend.close();
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
};

describe('publish into a bucket under SIGKILL', { timeout: 600_000 }, () => {
  let published: string | undefined;
  const movedTo = async (digest: string): Promise<void> => {
    if (published !== undefined)
      await unpublish(tree, { name: NAME, tag: undefined, digest: published }, 5_000);
    published = digest;
  };

  /** The bucket's removal, run after the last test. */
  const cleanups: (() => unknown)[] = [];

  before(async () => {
    spot = await freshTree('s3', { after: (fn) => cleanups.push(fn as () => unknown) });
    tree = new Tree(await openBackend(spot.location));
    client = await rawClient();
  });

  after(async () => {
    await killAll(running);
    client.destroy();
    await tree.backend.close();
    for (const cleanup of cleanups) await cleanup();
    scratch.cleanup();
  });

  test('a publisher killed at any point leaves a verify-clean bucket whose record, old or new, is served', async (t) => {
    const rest: Record<Anchor, number[]> = { spawn: [], uploading: [], committed: [] };
    /** How long the multipart upload lasted (its start seen → the layer at its address): the narrowest phase. */
    let uploads: number[] = [];
    const learn = (at: Attempt['at']): void => {
      for (const anchor of ANCHORS) {
        const from = at[anchor];
        if (from !== undefined && at.exit !== undefined)
          rest[anchor] = [...rest[anchor], at.exit - from].slice(-5);
      }
      if (at.uploading !== undefined && at.committed !== undefined)
        uploads = [...uploads, at.committed - at.uploading].slice(-5);
    };
    for (let i = 0; i < 2; i++) {
      const image = await nextImage();
      const { result, at } = await publishAttempt(image);
      assert.equal(result.code, 0, result.stderr);
      for (const anchor of ANCHORS)
        assert.ok(at[anchor] !== undefined, `the publish never reached "${anchor}"`);
      learn(at);
      await movedTo(image.digest);
    }

    const phases = {
      'before the upload': 0,
      'mid-multipart upload': 0,
      'after the layer commit, before the record': 0,
      'after the record': 0,
    };
    let attempts = 0;
    let completed = 0;
    const enough = (): boolean =>
      phases['mid-multipart upload'] >= REQUIRED_PER_PHASE &&
      phases['after the layer commit, before the record'] >= REQUIRED_PER_PHASE;
    while (!enough() && attempts < MAX_ATTEMPTS) {
      const from = ANCHORS[attempts % ANCHORS.length]!;
      attempts++;
      const image = await nextImage();
      // From the upload's start, within the upload itself: a spread over the whole rest of the publish lands there
      // too rarely on a machine where the upload is quick.
      const span = from === 'uploading' ? 0.9 * median(uploads) : 1.2 * median(rest[from]);
      const plan = { from, delayMs: Math.random() * span };
      const { result, at, killedAt } = await publishAttempt(image, plan);
      const context = `after attempt ${attempts} (kill planned ${plan.delayMs.toFixed(0)} ms after ${from}, sent at ${killedAt?.toFixed(0) ?? '-'} ms; exit ${result.signal ?? String(result.code)})`;
      if (result.code === 0) {
        completed++;
        learn(at);
      } else if (result.signal !== 'SIGKILL')
        assert.fail(`the publisher failed on its own ${context}: ${result.stderr}`);

      const { problems } = await verifyTree(tree, { hash: true });
      assert.deepEqual(problems, [], `verify found problems ${context}`);
      const lookup = await tree.readRecord(NAME);
      assert.ok(lookup.found, `the record of ${NAME} is gone ${context}`);
      const tagged = lookup.repository.tags.get(TAG);
      assert.ok(
        tagged === published || tagged === image.digest,
        `${NAME}:${TAG} is ${tagged ?? 'missing'}, neither the old nor the new image ${context}`,
      );
      if (result.code === 0)
        assert.equal(tagged, image.digest, `a publish that exited 0 is not visible ${context}`);
      assert.equal(
        await servedDigest(),
        tagged,
        `the app serves another manifest than the record's ${context}`,
      );

      if (result.signal === 'SIGKILL') {
        if (tagged === image.digest) phases['after the record']++;
        else if (await stored(contentKey(image.layer))) phases['after the layer commit, before the record']++;
        else if (at.uploading !== undefined) phases['mid-multipart upload']++;
        else phases['before the upload']++;
      }
      if (tagged === image.digest) await movedTo(image.digest);
    }
    t.diagnostic(
      `${attempts} attempts, ${completed} finished before the kill; kills by phase ${JSON.stringify(phases)}`,
    );
    assert.ok(enough(), `the kills did not hit every phase: ${JSON.stringify(phases)}`);
  });

  test('no object under a content address holds bytes other than its digest’s, and gc --min-age 0 removes the debris', async (t) => {
    const wrong: string[] = [];
    let objects = 0;
    for await (const object of tree.backend.list(CONTENT_PREFIX)) {
      objects++;
      const answer = await client.send(
        new GetObjectCommand({ Bucket: spot.bucket, Key: fullKey(object.key) }),
      );
      const hex = createHash('sha256')
        .update(await answer.Body!.transformToByteArray())
        .digest('hex');
      if (object.key !== `${CONTENT_PREFIX}sha256/${hex}`) wrong.push(`${object.key} hashes to ${hex}`);
    }
    assert.deepEqual(wrong, []);
    const before = await client.send(new ListMultipartUploadsCommand({ Bucket: spot.bucket }));
    t.diagnostic(`${objects} content objects, ${(before.Uploads ?? []).length} unfinished uploads before gc`);
    assert.ok((before.Uploads ?? []).length > 0, 'no kill left an unfinished multipart upload');

    const result = await runDerrick(['gc', '--json', '--min-age', '0', '--data-dir', spot.location], {
      env: { ...spot.env, DERRICK_DEBUG: '' },
    });
    assert.equal(result.code, 0, result.stderr);
    const freed = JSON.parse(result.stdout) as { contentFiles: number; stagingFiles: number };
    assert.ok(freed.contentFiles > 0, 'gc found no content of replaced or killed publishes');
    assert.equal(freed.stagingFiles, (before.Uploads ?? []).length);
    const afterGc = await client.send(new ListMultipartUploadsCommand({ Bucket: spot.bucket }));
    assert.deepEqual(afterGc.Uploads ?? [], [], 'gc left unfinished uploads');

    const lookup = await tree.readRecord(NAME);
    assert.ok(lookup.found);
    const left: string[] = [];
    for await (const object of tree.backend.list(CONTENT_PREFIX)) left.push(object.key);
    assert.deepEqual(
      left.sort(),
      [...lookup.repository.manifests.keys(), ...lookup.repository.blobs.keys()].map(contentKey).sort(),
    );
    const { problems } = await verifyTree(tree, { hash: true });
    assert.deepEqual(problems, []);
  });

  test('an uninterrupted publish after the kills and gc succeeds and is served', async () => {
    const image = await nextImage();
    const { result } = await publishAttempt(image);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await servedDigest(), image.digest);
  });
});
