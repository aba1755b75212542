/**
 * unpublish, gc, verify and ls through the real CLI on real trees: one suite, two back ends (a directory, and a
 * prefix of a bucket on the tests' Ceph RGW). Damage is done behind the tool's back: to the files, or through a
 * plain S3 client.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { blobLinkKey, CONTENT_PREFIX, recordKey, webPrefix } from '../../src/store/keys.ts';
import { openBackend } from '../../src/store/open-backend.ts';
import { Tree } from '../../src/store/tree.ts';
import { BACKENDS, freshTree, type BackendName, type TreeSpot } from '../helpers/backends.ts';
import { runDerrick, tempDir } from '../helpers/cli.ts';
import { imageWithReferrerLayout, multiPlatformLayout, singleImageLayout } from '../helpers/images.ts';
import { rawClient } from '../helpers/s3.ts';

const temp = tempDir();
after(() => temp.cleanup());
let counter = 0;
const fresh = (label: string): string => path.join(temp.dir, `${label}-${++counter}`);

/** The tree of this test on `backend`, and what derrick needs to reach it. */
async function treeOn(
  backend: BackendName,
  t: TestContext,
): Promise<{ spot: TreeSpot; data: string; derrick: (args: string[], code?: number) => Promise<string> }> {
  const spot = await freshTree(backend, t);
  const derrick = async (args: string[], expectedCode = 0): Promise<string> => {
    const result = await runDerrick(args, { env: { ...spot.env, DERRICK_DEBUG: '' } });
    assert.equal(result.code, expectedCode, `derrick ${args.join(' ')}: ${result.stderr}${result.stdout}`);
    return result.stdout + result.stderr;
  };
  return { spot, data: spot.location, derrick };
}

/** The tree opened in this process, closed after the test. */
async function opened(spot: TreeSpot, t: TestContext): Promise<Tree> {
  const tree = new Tree(await openBackend(spot.location));
  t.after(() => tree.backend.close());
  return tree;
}

/** Replaces (or, with undefined, deletes) the object at `key` behind derrick's back. */
async function damage(spot: TreeSpot, key: string, bytes: Buffer | undefined): Promise<void> {
  if (spot.bucket === undefined) {
    const file = path.join(spot.location, key);
    await (bytes === undefined ? fs.rm(file) : fs.writeFile(file, bytes));
    return;
  }
  const client = await rawClient();
  try {
    const Key = `tree/${key}`;
    await client.send(
      bytes === undefined
        ? new DeleteObjectCommand({ Bucket: spot.bucket, Key })
        : new PutObjectCommand({ Bucket: spot.bucket, Key, Body: bytes }),
    );
  } finally {
    client.destroy();
  }
}

async function countBelow(tree: Tree, prefix: string): Promise<number> {
  let count = 0;
  for await (const _object of tree.backend.list(prefix)) count++;
  return count;
}

for (const backend of BACKENDS) {
  describe(`unpublish (${backend})`, { concurrency: 3 }, () => {
    test('a tag: the tag goes, what only it reached leaves the record, other tags stay', async (t) => {
      const { spot, data, derrick } = await treeOn(backend, t);
      const one = fresh('layout');
      const two = fresh('layout');
      const first = await singleImageLayout(one, 'latest', 'one');
      const second = await singleImageLayout(two, 'latest', 'two');
      await derrick(['publish', `oci:${one}`, 'app:1', '--data-dir', data]);
      await derrick(['publish', `oci:${two}`, 'app:2', '--data-dir', data]);
      await derrick(['unpublish', 'app:1', '--data-dir', data]);
      const lookup = await (await opened(spot, t)).readRecord('app');
      assert.ok(lookup.found);
      assert.deepEqual([...lookup.repository.tags], [['2', second.digest]]);
      assert.equal(lookup.repository.manifests.has(first.digest), false);
      await derrick(['verify', '--data-dir', data]);
    });

    test('the last tag removes the repository; a whole repository goes at once', async (t) => {
      const { data, derrick } = await treeOn(backend, t);
      const layout = fresh('layout');
      await singleImageLayout(layout);
      await derrick(['publish', `oci:${layout}`, 'x:1', 'y:1', '--data-dir', data]);
      assert.match(await derrick(['unpublish', 'x:1', '--data-dir', data]), /no tags left: x removed/);
      await derrick(['unpublish', 'y', '--data-dir', data]);
      assert.equal((await derrick(['ls', '--data-dir', data])).trim(), '');
    });

    test('a manifest by digest removes the tags on it; a referrer goes with its subject', async (t) => {
      const { spot, data, derrick } = await treeOn(backend, t);
      const layout = fresh('layout');
      const other = fresh('layout');
      const { image, artifact } = await imageWithReferrerLayout(layout);
      await singleImageLayout(other, 'latest', 'keep');
      await derrick(['publish', `oci:${layout}`, 'sig:a', 'sig:b', '--data-dir', data]);
      await derrick(['publish', `oci:${other}`, 'sig:keep', '--data-dir', data]);
      await derrick(['unpublish', `sig@${image.digest}`, '--data-dir', data]);
      const lookup = await (await opened(spot, t)).readRecord('sig');
      assert.ok(lookup.found);
      assert.deepEqual([...lookup.repository.tags.keys()], ['keep']);
      assert.equal(lookup.repository.manifests.has(artifact.digest), false);
    });

    test('a child of an index cannot be unpublished alone', async (t) => {
      const { data, derrick } = await treeOn(backend, t);
      const layout = fresh('layout');
      const { children } = await multiPlatformLayout(layout);
      await derrick(['publish', `oci:${layout}`, 'idx', '--data-dir', data]);
      const out = await derrick(['unpublish', `idx@${children[0]?.digest ?? ''}`, '--data-dir', data], 1);
      assert.match(out, /is part of index .*; unpublish the index instead/);
    });

    test('an unknown repository or tag is a one-line error', async (t) => {
      const { data, derrick } = await treeOn(backend, t);
      const layout = fresh('layout');
      await singleImageLayout(layout);
      await derrick(['publish', `oci:${layout}`, 'some', '--data-dir', data]);
      assert.match(
        await derrick(['unpublish', 'nothing', '--data-dir', data], 1),
        /^derrick: there is no repository "nothing"/,
      );
      assert.match(
        await derrick(['unpublish', 'some:nope', '--data-dir', data], 1),
        /some has no tag "nope"/,
      );
    });
  });

  describe(`gc (${backend})`, { concurrency: 2 }, () => {
    /** On a bucket gc takes only what is older than --min-age: 0 here, with no publisher running. */
    const now = backend === 's3' ? ['--min-age', '0'] : [];

    test('with nothing to free it says so: "would free nothing" with --dry-run, "nothing to free" without', async (t) => {
      const { data, derrick } = await treeOn(backend, t);
      const layout = fresh('layout');
      await singleImageLayout(layout);
      await derrick(['publish', '-q', `oci:${layout}`, 'kept', '--data-dir', data]);
      assert.equal(await derrick(['gc', '--dry-run', ...now, '--data-dir', data]), 'would free nothing\n');
      assert.equal(await derrick(['gc', ...now, '--data-dir', data]), 'nothing to free\n');
    });

    test('--dry-run reports the bytes it would free and deletes nothing; gc then frees them', async (t) => {
      const { spot, data, derrick } = await treeOn(backend, t);
      const keep = fresh('layout');
      const drop = fresh('layout');
      await singleImageLayout(keep, 'latest', 'keep');
      await singleImageLayout(drop, 'latest', 'drop me');
      await derrick(['publish', `oci:${keep}`, 'keep', '--data-dir', data]);
      await derrick(['publish', `oci:${drop}`, 'drop', '--data-dir', data]);
      await derrick(['unpublish', 'drop', '--data-dir', data]);
      const tree = await opened(spot, t);
      const before = await countBelow(tree, CONTENT_PREFIX);
      const dry = JSON.parse(await derrick(['gc', '--dry-run', '--json', ...now, '--data-dir', data])) as {
        bytes: number;
        contentFiles: number;
      };
      assert.equal(dry.contentFiles, 3); // the dropped image's manifest, config and layer
      assert.ok(dry.bytes > 0);
      assert.equal(await countBelow(tree, CONTENT_PREFIX), before);
      const real = JSON.parse(await derrick(['gc', '--json', ...now, '--data-dir', data])) as {
        bytes: number;
        links: number;
      };
      assert.equal(real.bytes, dry.bytes);
      assert.equal(real.links, 3);
      assert.equal(await countBelow(tree, CONTENT_PREFIX), before - 3);
      assert.equal(
        await countBelow(tree, webPrefix('drop')),
        0,
        'the unpublished repository’s links are left',
      );
      assert.equal(await tree.backend.hasChildren(webPrefix('drop').slice(0, -1)), false);
      await derrick(['verify', '--data-dir', data]);
      assert.match(await derrick(['gc', ...now, '--data-dir', data]), /^nothing to free\n$/);
    });

    test('gc refuses to run while a record is unreadable, deleting nothing', async (t) => {
      const { spot, data, derrick } = await treeOn(backend, t);
      const layout = fresh('layout');
      await singleImageLayout(layout);
      await derrick(['publish', `oci:${layout}`, 'ok', '--data-dir', data]);
      const tree = await opened(spot, t);
      await tree.backend.write(recordKey('broken'), Buffer.from('{"type": "derrick-repository"'));
      const before = await countBelow(tree, 'v2/');
      const out = await derrick(['gc', ...now, '--data-dir', data], 1);
      assert.match(out, /gc stopped before deleting anything: .*v2\/app\/broken\.json: not valid JSON/);
      assert.equal(await countBelow(tree, 'v2/'), before);
    });
  });

  describe(`verify and ls (${backend})`, { concurrency: 2 }, () => {
    test('verify lists a corrupted, a resized and a missing object, and exits 1', async (t) => {
      const { spot, data, derrick } = await treeOn(backend, t);
      const layout = fresh('layout');
      const { children } = await multiPlatformLayout(layout);
      await derrick(['publish', `oci:${layout}`, 'broken', '--data-dir', data]);
      const lookup = await (await opened(spot, t)).readRecord('broken');
      assert.ok(lookup.found);
      const [a, b, c] = [...lookup.repository.blobs.keys()] as [string, string, string];
      const sizeOf = (digest: string): number => lookup.repository.blobs.get(digest) ?? 0;
      // What nginx, a CDN or a presigned URL serves: the repository's own copy (on a file system, a hard link).
      await damage(spot, blobLinkKey('broken', a), Buffer.alloc(sizeOf(a), 1));
      await damage(spot, blobLinkKey('broken', b), Buffer.alloc(sizeOf(b) + 1, 2));
      await damage(spot, blobLinkKey('broken', c), undefined);
      const out = await derrick(['verify', '--data-dir', data], 1);
      assert.match(out, new RegExp(`blobs/${a} hashes to sha256:`));
      assert.match(out, new RegExp(`blobs/${b} is ${sizeOf(b) + 1} bytes; the record says ${sizeOf(b)}`));
      assert.match(out, new RegExp(`blobs/${c} is missing`));
      assert.match(out, /3 problem\(s\)/);
      assert.equal(children.length, 2);
    });

    test('verify reports an invalid record by key', async (t) => {
      const { spot, data, derrick } = await treeOn(backend, t);
      const layout = fresh('layout');
      await singleImageLayout(layout);
      await derrick(['publish', `oci:${layout}`, 'good', '--data-dir', data]);
      await damage(
        spot,
        recordKey('bad'),
        Buffer.from(JSON.stringify({ type: 'derrick-repository', version: 1 })),
      );
      assert.match(await derrick(['verify', '--data-dir', data], 1), /bad: .*v2\/app\/bad\.json: name: /);
    });

    test('ls lists repositories in order with their tags, under a prefix, and as JSON', async (t) => {
      const { data, derrick } = await treeOn(backend, t);
      const layout = fresh('layout');
      await singleImageLayout(layout);
      await derrick([
        'publish',
        `oci:${layout}`,
        'team/b:1',
        'team/a:2',
        'team/a:1',
        'other:x',
        '--data-dir',
        data,
      ]);
      assert.equal(await derrick(['ls', '--data-dir', data]), 'other\tx\nteam/a\t1 2\nteam/b\t1\n');
      assert.equal(await derrick(['ls', 'team', '--data-dir', data]), 'team/a\t1 2\nteam/b\t1\n');
      const listing = JSON.parse(await derrick(['ls', '--json', 'other', '--data-dir', data])) as {
        name: string;
      }[];
      assert.deepEqual(
        listing.map((entry) => entry.name),
        ['other'],
      );
    });
  });
}
