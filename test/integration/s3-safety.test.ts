/**
 * What keeps a tree on S3 safe with no lock service, on the tests' real Ceph RGW: the record is replaced by
 * compare-and-swap with merge-and-retry (If-Match on its ETag; If-None-Match: * for a new one), so concurrent
 * publishers of one repository never lose a tag; content appears under its address only once verified, so no
 * reader ever sees other bytes there; and gc's age rule (it takes only unreferenced objects older than --min-age,
 * a publisher renews the old objects it reuses) never takes what a running publish relies on.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { gc } from '../../src/publish/gc.ts';
import { openSource } from '../../src/publish/open-source.ts';
import { silentProgress } from '../../src/publish/progress.ts';
import { publish } from '../../src/publish/publisher.ts';
import { unpublish } from '../../src/publish/unpublish.ts';
import { verifyTree } from '../../src/publish/verify.ts';
import type { Backend } from '../../src/store/backend.ts';
import { CONTENT_PREFIX, blobLinkKey, contentKey } from '../../src/store/keys.ts';
import { openBackend } from '../../src/store/open-backend.ts';
import { emptyRepository } from '../../src/store/record.ts';
import { Tree } from '../../src/store/tree.ts';
import { freshTree, type TreeSpot } from '../helpers/backends.ts';
import { collectOutput, startDerrick, tempDir, type RunResult, killAll } from '../helpers/cli.ts';
import { LayoutBuilder, MT } from '../helpers/images.ts';
import { rawClient } from '../helpers/s3.ts';

interface Blob {
  digest: string;
  size: number;
}

interface Image {
  source: string;
  digest: string;
  /** The manifest, its config and its layers. */
  files: Blob[];
}

const scratch = tempDir('derrick-s3-safety-');
const sourceDir = path.join(scratch.dir, 'source');
const running = new Set<ChildProcess>();
const images = new Map<string, Image>();
/** A 12 MiB layer every image has: more than one part of a multipart upload, raced for by every publisher. */
let baseLayer: Blob;
const REFS = ['one', 'two', 'three', 'four', 'old', 'young', 'reused'];

function image(ref: string): Image {
  const found = images.get(ref);
  assert.ok(found, `no test image ${ref}`);
  return found;
}

before(async () => {
  const builder = new LayoutBuilder(sourceDir);
  const base = builder.blob(randomBytes(12 * 1024 * 1024), MT.ociLayerGzip);
  baseLayer = { digest: base.digest, size: base.size };
  for (const ref of REFS) {
    const shared = ref === 'old' || ref === 'young' ? [] : [{ descriptor: base, diffId: base.digest }];
    const descriptor = await builder.image({ files: { 'etc/app.txt': `${ref}\n` }, extraLayers: shared });
    builder.add(descriptor, ref);
    const manifest = JSON.parse(
      await fs.readFile(path.join(sourceDir, 'blobs', 'sha256', descriptor.digest.slice(7)), 'utf8'),
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

/** Runs `derrick <args>` on the tree's bucket; the after hook kills it if the test gives up first. */
async function derrick(spot: TreeSpot, args: string[]): Promise<RunResult> {
  const child = startDerrick(args, { env: { ...spot.env, DERRICK_DEBUG: '' } });
  running.add(child);
  try {
    return await collectOutput(child);
  } finally {
    running.delete(child);
  }
}

async function publishOk(spot: TreeSpot, ref: string, ...targets: string[]): Promise<RunResult> {
  const result = await derrick(spot, [
    'publish',
    '--verbose',
    image(ref).source,
    ...targets,
    '--data-dir',
    spot.location,
  ]);
  assert.equal(result.code, 0, `publish of ${ref} to ${targets.join(' ')} failed: ${result.stderr}`);
  return result;
}

async function openTree(t: { after: (fn: () => Promise<void>) => void }, spot: TreeSpot): Promise<Tree> {
  const tree = new Tree(await openBackend(spot.location));
  t.after(() => tree.backend.close());
  return tree;
}

async function tagsOf(tree: Tree, name: string): Promise<Record<string, string>> {
  const lookup = await tree.readRecord(name);
  assert.ok(lookup.found, `${name} has no record`);
  return Object.fromEntries(lookup.repository.tags);
}

async function assertVerifyClean(tree: Tree, repositories: number): Promise<void> {
  const result = await verifyTree(tree, { hash: true });
  assert.deepEqual(result.problems, []);
  assert.equal(result.repositories, repositories);
}

const retriesIn = (results: RunResult[]): number =>
  results.filter((result) => result.stderr.includes('got there first; merging again')).length;

describe('publishers racing on one record on S3', { concurrency: 1 }, () => {
  test('six publishers of different tags into one repository at the same time, round after round, all succeed and the record keeps every tag', async (t) => {
    const spot = await freshTree('s3', t);
    const tree = await openTree(t, spot);
    const expected: Record<string, string> = {};
    let retries = 0;
    const ROUNDS = 4;
    const PUBLISHERS = 6;
    for (let round = 0; round < ROUNDS; round++) {
      const jobs = Array.from({ length: PUBLISHERS }, (_, i) => {
        const ref = REFS[i % 4]!;
        expected[`r${round}-p${i}`] = image(ref).digest;
        return publishOk(spot, ref, `team/app:r${round}-p${i}`);
      });
      retries += retriesIn(await Promise.all(jobs));
      assert.deepEqual(await tagsOf(tree, 'team/app'), expected, `a tag was lost in round ${round}`);
    }
    t.diagnostic(`${retries} of ${ROUNDS * PUBLISHERS} publishers lost a compare-and-swap and merged again`);
    await assertVerifyClean(tree, 1);
  });

  test('publishers racing to create a repository that does not exist yet (If-None-Match: *) all keep their tag', async (t) => {
    const spot = await freshTree('s3', t);
    const tree = await openTree(t, spot);
    let retries = 0;
    for (let round = 0; round < 3; round++) {
      const name = `new/app-${round}`;
      const results = await Promise.all(
        ['one', 'two', 'three'].map((ref) => publishOk(spot, ref, `${name}:${ref}`)),
      );
      retries += retriesIn(results);
      assert.deepEqual(await tagsOf(tree, name), {
        one: image('one').digest,
        two: image('two').digest,
        three: image('three').digest,
      });
    }
    t.diagnostic(`${retries} of 9 publishers found the record created under them and merged again`);
    await assertVerifyClean(tree, 3);
  });

  test('thirty-two updates of one record at once through one S3 back end, all of them starting with no record there, lose nothing', async (t) => {
    // The same race as above, made certain: every update reads the record before any of them writes it.
    const spot = await freshTree('s3', t);
    const tree = await openTree(t, spot);
    let conflicts = 0;
    await Promise.all(
      Array.from({ length: 32 }, (_, i) =>
        tree.updateRecord(
          'hammered',
          (current) => {
            const base = current ?? emptyRepository('hammered');
            assert.equal(base.format, 'derrick');
            const tags = new Map(base.tags);
            const manifests = new Map(base.manifests);
            const { digest, size } = image('one').files[0]!;
            manifests.set(digest, { mediaType: MT.ociManifest, size });
            tags.set(`t${i}`, digest);
            return { next: { ...base, tags, manifests }, result: undefined };
          },
          { onRetry: () => conflicts++ },
        ),
      ),
    );
    const tags = await tagsOf(tree, 'hammered');
    assert.deepEqual(Object.keys(tags).sort(), Array.from({ length: 32 }, (_, i) => `t${i}`).sort());
    assert.ok(conflicts > 0, 'no update lost a compare-and-swap: the test raced nothing');
  });
});

describe('concurrent publishers of the same content on S3', () => {
  test('while four publishers store the same image into four repositories, every GET of its content addresses is absent or exactly its bytes', async (t) => {
    const spot = await freshTree('s3', t);
    assert.ok(spot.bucket !== undefined);
    const client = await rawClient();
    t.after(() => client.destroy());
    const names = ['c0', 'c1', 'c2', 'c3'];
    const { files } = image('one');
    assert.ok(files.some((file) => file.digest === baseLayer.digest && file.size > 8 * 1024 * 1024));
    const keys = [
      ...files.map((file) => ({ digest: file.digest, key: contentKey(file.digest) })),
      ...names.flatMap((name) =>
        files
          .filter((file) => file.digest !== image('one').digest)
          .map((file) => ({ digest: file.digest, key: blobLinkKey(name, file.digest) })),
      ),
    ];
    let publishing = true;
    const seen = { absent: 0, exact: 0 };
    const wrong: string[] = [];
    const poll = async (): Promise<void> => {
      while (publishing) {
        for (const { digest, key } of keys) {
          const hash = createHash('sha256');
          try {
            const answer = await client.send(
              new GetObjectCommand({ Bucket: spot.bucket, Key: `tree/${key}` }),
            );
            hash.update(await answer.Body!.transformToByteArray());
          } catch (error) {
            if ((error as { name?: string }).name === 'NoSuchKey') {
              seen.absent++;
              continue;
            }
            throw error;
          }
          const got = `sha256:${hash.digest('hex')}`;
          if (got === digest) seen.exact++;
          else wrong.push(`${key} held bytes hashing to ${got}`);
        }
      }
    };
    const polling = [poll(), poll()];
    try {
      await Promise.all(names.map((name) => publishOk(spot, 'one', `${name}:latest`)));
    } finally {
      publishing = false;
      await Promise.all(polling);
    }
    t.diagnostic(`${seen.absent} GETs found nothing yet, ${seen.exact} found the exact bytes`);
    assert.deepEqual(wrong, []);
    assert.ok(seen.absent > 0, 'the polling began after the content had been stored');
    const tree = await openTree(t, spot);
    await assertVerifyClean(tree, 4);
  });
});

describe('gc on S3: the age rule', { concurrency: 1 }, () => {
  test('gc --min-age takes unreferenced objects older than it and keeps the younger ones, counted as young in --json', async (t) => {
    const spot = await freshTree('s3', t);
    const tree = await openTree(t, spot);
    await publishOk(spot, 'old', 'old:1');
    await unpublish(tree, { name: 'old', tag: undefined, digest: undefined }, 5_000);
    const oldest = await newestModified(tree);
    // S3 keeps LastModified to the second; leave gc's cutoff room to fall between the two images' objects.
    await sleep(10_000);
    await publishOk(spot, 'young', 'young:1');
    await publishOk(spot, 'one', 'kept:1');
    await unpublish(tree, { name: 'young', tag: undefined, digest: undefined }, 5_000);
    const youngest = await oldestModified(tree, image('young'));
    assert.ok(youngest.getTime() - oldest.getTime() >= 10_000);
    // A cutoff half-way between them, allowing for gc's start-up (a few seconds on a loaded machine).
    const midpoint = (oldest.getTime() + youngest.getTime()) / 2;
    const minAge = Math.round((Date.now() + 2_500 - midpoint) / 1000);
    const result = await derrick(spot, [
      'gc',
      '--json',
      '--min-age',
      String(minAge),
      '--data-dir',
      spot.location,
    ]);
    assert.equal(result.code, 0, result.stderr);
    const freed = JSON.parse(result.stdout) as Record<string, unknown>;
    assert.deepEqual(
      { contentFiles: freed.contentFiles, links: freed.links, young: freed.young },
      { contentFiles: 3, links: 3, young: 6 }, // each image: manifest, config, layer and their links
    );
    assert.match(String(freed.rule), new RegExp(`last modified more than ${minAge} s ago`));
    for (const file of image('old').files)
      assert.equal(await tree.backend.stat(contentKey(file.digest)), undefined, `gc kept ${file.digest}`);
    for (const file of image('young').files)
      assert.ok(await tree.backend.stat(contentKey(file.digest)), `gc took the young ${file.digest}`);
    await assertVerifyClean(tree, 1);
  });

  test('a publish that reuses old unreferenced content, with a gc marking before it and sweeping during it, ends with every object its record needs', async (t) => {
    const spot = await freshTree('s3', t);
    const tree = await openTree(t, spot);
    await publishOk(spot, 'reused', 'app:1');
    await unpublish(tree, { name: 'app', tag: undefined, digest: undefined }, 5_000);
    // Unreferenced now, and older than the gc's minimum age below.
    await sleep(5_000);

    // The publisher is told its content is old (as if stored long before), so that it renews what it reuses; it
    // lets gc sweep between its reuse of the content and its links and record, the moment gc must not win.
    let reused!: () => void;
    const publisherReused = new Promise<void>((resolve) => (reused = resolve));
    let swept!: () => void;
    const gcSwept = new Promise<void>((resolve) => (swept = resolve));
    const publisherBackend = interpose(tree.backend, {
      stat: async (key) => {
        const info = await tree.backend.stat(key);
        return info && { ...info, modified: new Date(info.modified.getTime() - 7_200_000) };
      },
      link: async (from, to) => {
        reused();
        await gcSwept;
        return tree.backend.link(from, to);
      },
    });
    const gcBackend = interpose(tree.backend, {
      list: (prefix, startAfter) =>
        (async function* () {
          if (prefix === CONTENT_PREFIX) await publisherReused;
          yield* tree.backend.list(prefix, startAfter);
        })(),
    });
    const publishing = publish({
      tree: new Tree(publisherBackend),
      openSource: () => openSource(image('reused').source, tree.backend.scratchDir),
      destinations: [{ name: 'app', tags: ['2'] }],
      allTags: false,
      baseUrl: undefined,
      protected: undefined,
      lockTimeoutMs: 5_000,
      progress: silentProgress,
    });
    const collecting = gc(new Tree(gcBackend), { dryRun: false, waitMs: 5_000, minAgeSeconds: 3 }).finally(
      swept,
    );
    const [published, collected] = await Promise.all([publishing, collecting]);
    assert.equal(published.blobsReused, 3, 'the publisher did not reuse the stored content');
    assert.equal(collected.contentFiles, 0, 'gc took content the publisher had renewed');
    assert.ok(collected.young >= 3);
    assert.deepEqual(await tagsOf(tree, 'app'), { 2: image('reused').digest });
    await assertVerifyClean(tree, 1);
  });
});

/** The back end with some operations replaced; the rest (and `this` inside them) go to the real one. */
function interpose(backend: Backend, overrides: Partial<Backend>): Backend {
  return new Proxy(backend, {
    get(target, property, receiver): unknown {
      if (Object.hasOwn(overrides, property)) return overrides[property as keyof Backend] as unknown;
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/**
 * To the second, as oldestModified's HEADs give it: a listing's LastModified has milliseconds, a HEAD's
 * Last-Modified (an HTTP date) none, and mixing the two made a 10 s sleep measure as 9.1 s.
 */
async function newestModified(tree: Tree): Promise<Date> {
  let newest = new Date(0);
  for await (const object of tree.backend.list('v2/')) if (object.modified > newest) newest = object.modified;
  return new Date(Math.floor(newest.getTime() / 1000) * 1000);
}

async function oldestModified(tree: Tree, of: Image): Promise<Date> {
  let oldest = new Date(8.64e15);
  for (const file of of.files) {
    const info = await tree.backend.stat(contentKey(file.digest));
    assert.ok(info, `${file.digest} is not stored`);
    if (info.modified < oldest) oldest = info.modified;
  }
  return oldest;
}
