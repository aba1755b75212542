/**
 * Publishers running at the same time: into one repository (each waits its turn for the record, none loses a
 * tag), into different repositories (they never wait for each other), and alongside gc (gc never deletes under
 * a running publisher, and a publisher never starts under a running gc).
 *
 * File system only: these check the per-machine locks and publisher registrations (abstract sockets, the
 * staging and in-flight directories) that coordinate a tree on a file system. A bucket has none; its
 * equivalents — compare-and-swap on the record, gc's age rule — are tested in s3-safety.test.ts.
 */
import { fsLayout } from '../helpers/fs-tree.ts';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gc } from '../../src/publish/gc.ts';
import { unpublish } from '../../src/publish/unpublish.ts';
import { verifyTree } from '../../src/publish/verify.ts';
import {
  acquireGcLock,
  acquireLock,
  LockTimeoutError,
  registerPublisher,
  repositoryLockKey,
} from '../../src/store/locks.ts';
import { Tree } from '../../src/store/tree.ts';
import {
  collectOutput,
  snapshotTree,
  startDerrick,
  tempDir,
  type RunResult,
  killAll,
} from '../helpers/cli.ts';
import { LayoutBuilder, MT } from '../helpers/images.ts';

interface Blob {
  digest: string;
  size: number;
}

/** An image in the shared source layout: its manifest, and the manifest's config and layers. */
interface Image {
  source: string;
  digest: string;
  files: Blob[];
}

const scratch = tempDir('derrick-concurrency-');
const sourceDir = path.join(scratch.dir, 'source');
const running = new Set<ChildProcess>();
const images = new Map<string, Image>();
/** A 4 MiB layer every image has (as images built on one base do), so publishers race to store the same blob. */
let baseLayer: Blob;
let trees = 0;

const REFS = [
  ...Array.from({ length: 8 }, (_, i) => `app-${i}`),
  'a-old',
  'a-new',
  'b',
  'c-old',
  'c-new',
  'c-next',
  'keep',
  'gone',
];

function image(ref: string): Image {
  const found = images.get(ref);
  assert.ok(found, `no test image ${ref}`);
  return found;
}

/** Runs `derrick <args>` to completion; the after hook kills it if the test gives up first. */
async function derrick(args: string[]): Promise<RunResult> {
  const child = startDerrick(args);
  running.add(child);
  try {
    return await collectOutput(child);
  } finally {
    running.delete(child);
  }
}

function publish(ref: string, target: string, dataDir: string, ...options: string[]): Promise<RunResult> {
  return derrick(['publish', image(ref).source, target, '--data-dir', dataDir, ...options]);
}

function assertExit0(result: RunResult, what: string): void {
  assert.equal(result.code, 0, `${what} failed: ${result.stderr}${result.stdout}`);
}

/** A new, empty data directory. */
function freshTree(): { dataDir: string; tree: Tree } {
  const dataDir = path.join(scratch.dir, `data-${trees++}`);
  return { dataDir, tree: new Tree(dataDir) };
}

async function assertVerifyClean(tree: Tree, repositories: number): Promise<void> {
  const result = await verifyTree(tree, { hash: true });
  assert.deepEqual(result.problems, []);
  assert.equal(result.repositories, repositories);
}

async function recordBytes(tree: Tree, name: string): Promise<Buffer> {
  const lookup = await tree.readRecord(name);
  assert.ok(lookup.found, `${name} has no record`);
  return lookup.bytes;
}

async function tagsOf(tree: Tree, name: string): Promise<Record<string, string>> {
  const lookup = await tree.readRecord(name);
  assert.ok(lookup.found, `${name} has no record`);
  return Object.fromEntries(lookup.repository.tags);
}

const exists = (file: string): Promise<boolean> =>
  fs.stat(file).then(
    () => true,
    () => false,
  );

before(async () => {
  const builder = new LayoutBuilder(sourceDir);
  const base = builder.blob(randomBytes(4 * 1024 * 1024), MT.ociLayerGzip);
  baseLayer = { digest: base.digest, size: base.size };
  for (const ref of REFS) {
    const descriptor = await builder.image({
      files: { 'etc/app.txt': `${ref}\n` },
      extraLayers: [{ descriptor: base, diffId: base.digest }],
    });
    builder.add(descriptor, ref);
    const manifest = JSON.parse(
      await fs.readFile(
        path.join(sourceDir, 'blobs', 'sha256', descriptor.digest.slice('sha256:'.length)),
        'utf8',
      ),
    ) as { config: Blob; layers: Blob[] };
    images.set(ref, {
      source: `oci:${sourceDir}:${ref}`,
      digest: descriptor.digest,
      files: [descriptor, manifest.config, ...manifest.layers].map(({ digest, size }) => ({ digest, size })),
    });
  }
  builder.write();
});

after(async () => {
  await killAll(running);
  scratch.cleanup();
});

describe('publishers of one repository', () => {
  test('eight publishers of eight different tags into one repository at the same time all succeed and the record keeps every tag', async (t) => {
    const { dataDir, tree } = freshTree();
    const refs = REFS.filter((ref) => ref.startsWith('app-'));
    const results = await Promise.all(refs.map((ref, i) => publish(ref, `team/app:v${i}`, dataDir)));

    const expected: Record<string, string> = {};
    let waited = 0;
    results.forEach((result, i) => {
      const ref = refs[i]!;
      assertExit0(result, `the publisher of ${ref}`);
      assert.equal(result.stdout.split('\n')[0], `published team/app:v${i} ${image(ref).digest}`);
      if (result.stderr.includes('waiting for another publisher of team/app')) waited++;
      expected[`v${i}`] = image(ref).digest;
    });
    t.diagnostic(`${waited} of ${refs.length} publishers waited for another one's hold on the record`);
    assert.deepEqual(await tagsOf(tree, 'team/app'), expected);
    const lookup = await tree.readRecord('team/app');
    assert.ok(lookup.found);
    assert.deepEqual(
      [...lookup.repository.manifests.keys()].sort(),
      refs.map((ref) => image(ref).digest).sort(),
    );
    assert.equal(lookup.repository.blobs.get(baseLayer.digest), baseLayer.size);
    await assertVerifyClean(tree, 1);
  });
});

describe('publishers of different repositories', () => {
  test('a publisher of one repository does not wait for the lock of another, and one of the locked repository times out leaving its record unchanged', async () => {
    const { dataDir, tree } = freshTree();
    assertExit0(await publish('a-old', 'a:latest', dataDir, '-q'), 'the first publish of a');
    const recordOfA = await recordBytes(tree, 'a');

    const lock = await acquireLock(fsLayout(tree), repositoryLockKey('a'), 1000);
    try {
      // A generous timeout: were b's publisher to wait for a's lock, it would fail here rather than hang.
      const intoB = await publish('b', 'b:latest', dataDir, '-q', '--lock-timeout', '10');
      assertExit0(intoB, 'the publish into b while a is locked');
      assert.deepEqual(await tagsOf(tree, 'b'), { latest: image('b').digest });

      const intoA = await publish('a-new', 'a:latest', dataDir, '-q', '--lock-timeout', '1');
      assert.notEqual(intoA.code, 0, 'the publish into the locked repository a succeeded');
      assert.equal(intoA.stdout, '');
      const lines = intoA.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, `expected a one-line error, got: ${intoA.stderr}`);
      assert.match(lines[0]!, /^derrick: timed out after 1000 ms\b.*\ba\b/);
      assert.deepEqual(await recordBytes(tree, 'a'), recordOfA);
      await assertVerifyClean(tree, 2);
    } finally {
      await lock.release();
    }

    // The lock was all that stood in the way.
    assertExit0(
      await publish('a-new', 'a:latest', dataDir, '-q', '--lock-timeout', '10'),
      'the publish into a',
    );
    assert.deepEqual(await tagsOf(tree, 'a'), { latest: image('a-new').digest });
    await assertVerifyClean(tree, 2);
  });
});

describe('publishers and gc', () => {
  test('gc waits for a running publisher and, when its wait runs out, fails having deleted nothing', async () => {
    const { dataDir, tree } = freshTree();
    // Garbage for gc: an image no tag reaches any more, and a staging file left by a dead publisher.
    assertExit0(await publish('c-old', 'c:latest', dataDir, '-q'), 'the publish of c-old');
    assertExit0(await publish('c-new', 'c:latest', dataDir, '-q'), 'the publish of c-new');
    await unpublish(tree, { name: 'c', tag: undefined, digest: image('c-old').digest }, 5_000);
    await fs.writeFile(path.join(fsLayout(tree).stagingDir, 'left-by-a-dead-publisher.blob'), 'partial');

    const registration = await registerPublisher(fsLayout(tree), 1000);
    try {
      const before = await snapshotTree(dataDir);
      await assert.rejects(gc(tree, { dryRun: false, waitMs: 500 }), (error: unknown) => {
        assert.ok(error instanceof LockTimeoutError, String(error));
        assert.match(error.message, /timed out after 500 ms waiting for 1 running publisher/);
        return true;
      });
      assert.deepEqual(await snapshotTree(dataDir), before);
    } finally {
      await registration.release();
    }

    // With the publisher gone, the same gc runs: c-old's manifest, config and own layer, their links, the debris.
    const result = await gc(tree, { dryRun: false, waitMs: 500 });
    assert.deepEqual(
      { contentFiles: result.contentFiles, links: result.links, stagingFiles: result.stagingFiles },
      { contentFiles: 3, links: 3, stagingFiles: 1 },
    );
    assert.ok(await exists(fsLayout(tree).contentPath(baseLayer.digest)), 'gc deleted the layer c-new uses');
    await assertVerifyClean(tree, 1);
  });

  test('a publisher waits for a running gc and, when its lock timeout runs out, fails leaving the tree unchanged, then succeeds once gc is done', async () => {
    const { dataDir, tree } = freshTree();
    assertExit0(await publish('c-old', 'c:latest', dataDir, '-q'), 'the publish of c-old');

    const gcLock = await acquireGcLock(fsLayout(tree), 1000);
    try {
      const before = await snapshotTree(dataDir);
      const result = await publish('c-next', 'c:latest', dataDir, '-q', '--lock-timeout', '1');
      assert.notEqual(result.code, 0, 'the publish under a running gc succeeded');
      const lines = result.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, `expected a one-line error, got: ${result.stderr}`);
      assert.match(lines[0]!, /^derrick: timed out after 1000 ms\b.*\bgc\b/);
      assert.deepEqual(await snapshotTree(dataDir), before);
    } finally {
      await gcLock.release();
    }

    assertExit0(
      await publish('c-next', 'c:latest', dataDir, '-q', '--lock-timeout', '10'),
      'the publish after gc',
    );
    assert.deepEqual(await tagsOf(tree, 'c'), { latest: image('c-next').digest });
    await assertVerifyClean(tree, 1);
  });

  test('gc after an unpublish frees the unpublished content and leaves the still-published repository verify-clean', async () => {
    const { dataDir, tree } = freshTree();
    const [keep, gone] = await Promise.all([
      publish('keep', 'keep/app:1', dataDir, '-q'),
      publish('gone', 'gone/app:1', dataDir, '-q'),
    ]);
    assertExit0(keep, 'the publish of keep/app');
    assertExit0(gone, 'the publish of gone/app');
    const recordOfKeep = await recordBytes(tree, 'keep/app');
    assertExit0(await derrick(['unpublish', 'gone/app', '--data-dir', dataDir]), 'the unpublish');

    const result = await derrick(['gc', '--json', '--data-dir', dataDir]);
    assertExit0(result, 'gc');
    // gone/app's manifest, config and own layer; not the base layer keep/app shares.
    const goneOnly = image('gone').files.filter((file) => file.digest !== baseLayer.digest);
    assert.equal(goneOnly.length, 3);
    assert.deepEqual(JSON.parse(result.stdout), {
      dryRun: false,
      contentFiles: 3,
      links: 4, // gone/app's links to all four
      stagingFiles: 0,
      bytes: goneOnly.reduce((sum, file) => sum + file.size, 0),
      young: 0,
      rule: 'every publisher has finished and new ones wait for this gc',
    });
    for (const file of goneOnly)
      assert.equal(
        await exists(fsLayout(tree).contentPath(file.digest)),
        false,
        `${file.digest} survived gc`,
      );
    for (const file of image('keep').files)
      assert.ok(
        await exists(fsLayout(tree).contentPath(file.digest)),
        `gc deleted ${file.digest} of keep/app`,
      );
    assert.equal(
      await exists(path.join(fsLayout(tree).webDir, 'gone')),
      false,
      'gc left gone/app’s web directory',
    );
    assert.equal(
      await exists(path.join(fsLayout(tree).appDir, 'gone')),
      false,
      'gc left the empty namespace',
    );

    assert.deepEqual(await recordBytes(tree, 'keep/app'), recordOfKeep);
    await assertVerifyClean(tree, 1);
  });
});
