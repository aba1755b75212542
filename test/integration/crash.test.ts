/**
 * Crash safety of `derrick publish`: a publisher killed with SIGKILL at any moment — while node starts, while it
 * stages a big layer, while it commits and links content, around the record rename — must leave a tree that
 * verifies clean and whose record is either the one before that publish or the one it was writing. gc then
 * removes every leftover of the killed publishers, and the next publish simply works.
 *
 * Every attempt publishes a different image (its own 16 MiB layer of random bytes) to the same repository and
 * tag, so the old and the new record are told apart by the tag's digest. Kills are spread at random over ~1.2×
 * the measured rest of a publish from one of three moments, in turn: the spawn (mostly node starting up), the
 * publisher's "copying" line (staging), and the layer's arrival in the content store (commit, links, record).
 * How long a publish lasts after each moment is measured by two uninterrupted publishes first, then kept up to
 * date from every attempt that finished before its kill (the machine's load changes while the test runs).
 *
 * File system only: the kill points and leftovers are a file system's (staging files, renames, hard links,
 * registrations); s3-crash.test.ts does the same for a bucket, killing mid-multipart upload and before the record.
 */
import { fsLayout } from '../helpers/fs-tree.ts';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs, watch } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { unpublish } from '../../src/publish/unpublish.ts';
import { verifyTree } from '../../src/publish/verify.ts';
import { Tree } from '../../src/store/tree.ts';
import { collectOutput, runDerrick, startDerrick, tempDir, type RunResult, killAll } from '../helpers/cli.ts';
import { LayoutBuilder, MT } from '../helpers/images.ts';

const NAME = 'crash/app';
const TAG = 'stable';
const LAYER_BYTES = 16 * 1024 * 1024;
/** Kills that must land while the publisher is still running (not after it exited 0). */
const REQUIRED_INTERRUPTIONS = 50;
/** Attempts give up here: with ~80% of kills interrupting, 50 interruptions take ~60 attempts. */
const MAX_ATTEMPTS = 120;
/** Kills that must land after the publisher started copying (the phases that write into the tree). */
const REQUIRED_KILLS_WHILE_WRITING = 15;

interface Image {
  source: string;
  dir: string;
  digest: string;
  layer: string;
}

type Anchor = 'spawn' | 'copying' | 'committed';
const ANCHORS: Anchor[] = ['spawn', 'copying', 'committed'];

interface Attempt {
  result: RunResult;
  /** Milliseconds after the spawn: when it exited, printed "copying …", had its layer in the content store. */
  at: Record<Anchor | 'exit', number | undefined>;
  /** When the test sent SIGKILL (ms after the spawn), if it did. */
  killedAt: number | undefined;
}

const scratch = tempDir('derrick-crash-');
const dataDir = path.join(scratch.dir, 'data');
const sourcesDir = path.join(scratch.dir, 'sources');
const tree = new Tree(dataDir);
const running = new Set<ChildProcess>();
/** One buffer of random bytes; each image's layer is a copy with its index written into the first bytes. */
const randomLayer = randomBytes(LAYER_BYTES);
let imageCount = 0;

/** A new OCI layout holding one image with its own incompressible 16 MiB layer. */
async function nextImage(): Promise<Image> {
  const index = imageCount++;
  const dir = path.join(sourcesDir, `image-${index}`);
  const builder = new LayoutBuilder(dir);
  const bytes = Buffer.from(randomLayer);
  bytes.writeUInt32BE(index, 0);
  const layer = builder.blob(bytes, MT.ociLayerGzip);
  const image = await builder.image({
    extraLayers: [{ descriptor: layer, diffId: layer.digest }],
    cmd: ['/crash', String(index)],
  });
  builder.add(image, 'latest').write();
  return { source: `oci:${dir}`, dir, digest: image.digest, layer: layer.digest };
}

/** Publishes `image` to NAME:TAG; with a plan, sends SIGKILL `delayMs` after the plan's anchor moment. */
async function publishAttempt(image: Image, plan?: { from: Anchor; delayMs: number }): Promise<Attempt> {
  const layerFile = fsLayout(tree).contentPath(image.layer);
  await fs.mkdir(path.dirname(layerFile), { recursive: true }); // so it can be watched from the start
  const started = performance.now();
  const at: Attempt['at'] = { spawn: 0, copying: undefined, committed: undefined, exit: undefined };
  let killedAt: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  const reached = (anchor: Anchor): void => {
    at[anchor] = performance.now() - started;
    if (plan?.from !== anchor) return;
    timer = setTimeout(() => {
      killedAt = performance.now() - started;
      child.kill('SIGKILL');
    }, plan.delayMs);
  };

  // The rename of the staged layer into the content store is the first step of phase B.
  const watcher = watch(path.dirname(layerFile), (_event, file) => {
    if (at.committed === undefined && file === path.basename(layerFile)) reached('committed');
  });
  const child = startDerrick(['publish', '--verbose', image.source, `${NAME}:${TAG}`, '--data-dir', dataDir]);
  running.add(child);
  const output = collectOutput(child);
  reached('spawn');
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    if (at.copying !== undefined) return;
    stderr += chunk.toString();
    if (stderr.includes('copying ')) reached('copying');
  });
  try {
    const result = await output;
    at.exit = performance.now() - started;
    return { result, at, killedAt };
  } finally {
    clearTimeout(timer);
    watcher.close();
    running.delete(child);
  }
}

async function assertVerifyClean(context: string): Promise<void> {
  const { problems } = await verifyTree(tree, { hash: true });
  assert.deepEqual(problems, [], `verify found problems ${context}`);
}

async function entries(dir: string): Promise<string[]> {
  return fs.readdir(dir).catch(() => []);
}

/** Every file below `dir` (directories left out), as sorted paths relative to it. */
async function filesBelow(dir: string): Promise<string[]> {
  const found = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return found
    .filter((entry) => !entry.isDirectory())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
    .sort();
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
};

describe('publish under SIGKILL', { timeout: 300_000 }, () => {
  /** The digest NAME:TAG points at, as far as the test knows. */
  let published: string | undefined;

  /** NAME:TAG moved to `digest`: unpublish the replaced manifest, so each verify hashes one image, not all. */
  const movedTo = async (digest: string): Promise<void> => {
    if (published !== undefined)
      await unpublish(tree, { name: NAME, tag: undefined, digest: published }, 5_000);
    published = digest;
  };

  before(async () => {
    await fs.mkdir(sourcesDir, { recursive: true });
  });

  after(async () => {
    await killAll(running);
    scratch.cleanup();
  });

  test('a publisher killed with SIGKILL at any point leaves a verify-clean tree with the old or the new record', async (t) => {
    // How long a publish lasts after each anchor moment, from its last few uninterrupted runs.
    const rest: Record<Anchor, number[]> = { spawn: [], copying: [], committed: [] };
    const learn = (at: Attempt['at']): void => {
      for (const anchor of ANCHORS) {
        const from = at[anchor];
        if (from !== undefined && at.exit !== undefined)
          rest[anchor] = [...rest[anchor], at.exit - from].slice(-5);
      }
    };
    const restMs = (anchor: Anchor): number => median(rest[anchor]);
    for (let i = 0; i < 2; i++) {
      const image = await nextImage();
      const { result, at } = await publishAttempt(image);
      assert.equal(result.code, 0, result.stderr);
      for (const anchor of ANCHORS)
        assert.ok(at[anchor] !== undefined, `the publish never reached "${anchor}"`);
      learn(at);
      const lookup = await tree.readRecord(NAME);
      assert.ok(lookup.found);
      assert.equal(lookup.repository.tags.get(TAG), image.digest);
      await fs.rm(image.dir, { recursive: true });
      await movedTo(image.digest);
    }
    const describeRest = (): string =>
      ANCHORS.map((anchor) => `${restMs(anchor).toFixed(0)} ms after ${anchor}`).join(', ');
    t.diagnostic(`measured: a publish lasts ${describeRest()}`);

    let interrupted = 0;
    let completed = 0;
    const phases = {
      'before copying': 0,
      'while staging': 0,
      'after the layer commit, before the record rename': 0,
      'after the record rename': 0,
    };
    let attempts = 0;
    while (interrupted < REQUIRED_INTERRUPTIONS && attempts < MAX_ATTEMPTS) {
      const from = ANCHORS[attempts % ANCHORS.length]!;
      attempts++;
      const image = await nextImage();
      const plan = { from, delayMs: Math.random() * 1.2 * restMs(from) };
      const { result, at, killedAt } = await publishAttempt(image, plan);
      const exit = result.signal ?? `code ${result.code ?? '?'}`;
      const context = `after attempt ${attempts} (kill planned ${plan.delayMs.toFixed(0)} ms after ${from}, sent at ${killedAt?.toFixed(0) ?? '-'} ms; exit ${exit})`;

      if (result.signal === 'SIGKILL') interrupted++;
      else if (result.code === 0) {
        completed++;
        learn(at);
      } else assert.fail(`the publisher failed on its own ${context}: ${result.stderr}`);

      await assertVerifyClean(context);
      const lookup = await tree.readRecord(NAME);
      assert.ok(lookup.found, `the record of ${NAME} is gone ${context}`);
      const tagged = lookup.repository.tags.get(TAG);
      assert.ok(
        tagged === published || tagged === image.digest,
        `${NAME}:${TAG} is ${tagged ?? 'missing'}, neither the old ${published ?? '-'} nor the new ${image.digest} ${context}`,
      );
      assert.deepEqual(
        [...lookup.repository.manifests.keys()].filter(
          (digest) => digest !== published && digest !== image.digest,
        ),
        [],
        `the record holds manifests of neither image ${context}`,
      );
      if (result.code === 0)
        assert.equal(tagged, image.digest, `a publish that exited 0 is not visible ${context}`);

      if (result.signal === 'SIGKILL') {
        if (at.copying === undefined) phases['before copying']++;
        else if (tagged === image.digest) phases['after the record rename']++;
        else if (await fs.stat(fsLayout(tree).contentPath(image.layer)).catch(() => undefined))
          phases['after the layer commit, before the record rename']++;
        else phases['while staging']++;
      }
      if (tagged === image.digest) await movedTo(image.digest); // the replaced image's files stay for gc
      await fs.rm(image.dir, { recursive: true });
    }

    t.diagnostic(`finally: a publish lasts ${describeRest()}`);
    t.diagnostic(
      `${attempts} attempts: ${interrupted} killed mid-publish, ${completed} finished before the kill; ` +
        `kills by phase ${JSON.stringify(phases)}; ` +
        `${(await entries(fsLayout(tree).stagingDir)).length} file(s) of staging debris`,
    );
    assert.ok(
      interrupted >= REQUIRED_INTERRUPTIONS,
      `only ${interrupted} of ${attempts} kills interrupted a running publisher`,
    );
    const whileWriting = interrupted - phases['before copying'];
    assert.ok(
      whileWriting >= REQUIRED_KILLS_WHILE_WRITING,
      `only ${whileWriting} kills landed after the publisher started copying`,
    );
  });

  test('gc after the kills removes every leftover of the killed publishers and leaves the tree verify-clean', async (t) => {
    const result = await runDerrick(['gc', '--json', '--data-dir', dataDir]);
    assert.equal(result.code, 0, result.stderr);
    t.diagnostic(`gc: ${result.stdout.replace(/\s+/g, ' ')}`);
    const freed = JSON.parse(result.stdout) as { contentFiles: number; stagingFiles: number };
    assert.ok(freed.contentFiles > 0, 'gc found no content of replaced or killed publishes to delete');
    assert.ok(freed.stagingFiles > 0, 'gc found no staging debris of killed publishers to delete');

    await assertVerifyClean('after gc');
    assert.deepEqual(await entries(fsLayout(tree).stagingDir), [], 'gc left staging debris');
    assert.deepEqual(
      await entries(fsLayout(tree).inflightDir),
      [],
      'gc left registrations of dead publishers',
    );

    // What the record references is all that is left, in the content store and in the repository's web directory.
    const lookup = await tree.readRecord(NAME);
    assert.ok(lookup.found);
    const { manifests, blobs } = lookup.repository;
    const { contentDir } = fsLayout(tree);
    assert.deepEqual(
      await filesBelow(contentDir),
      [...manifests.keys(), ...blobs.keys()]
        .map((digest) => path.relative(contentDir, fsLayout(tree).contentPath(digest)))
        .sort(),
    );
    const webDir = fsLayout(tree).repoWebDir(NAME);
    assert.deepEqual(
      await filesBelow(webDir),
      [
        ...[...manifests].map(([digest, entry]) =>
          fsLayout(tree).manifestLinkPath(NAME, entry.mediaType, digest),
        ),
        ...[...blobs.keys()].map((digest) => fsLayout(tree).blobLinkPath(NAME, digest)),
      ]
        .map((file) => path.relative(webDir, file))
        .sort(),
    );
  });

  test('an uninterrupted publish after the kills and gc succeeds', async () => {
    const image = await nextImage();
    const { result } = await publishAttempt(image);
    assert.equal(result.code, 0, result.stderr);
    const lookup = await tree.readRecord(NAME);
    assert.ok(lookup.found);
    assert.equal(lookup.repository.tags.get(TAG), image.digest);
    await assertVerifyClean('after the final publish');
  });
});
