/**
 * unpublish, gc, verify and ls through the real CLI on real trees.
 */
import { fsLayout } from '../helpers/fs-tree.ts';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { Tree } from '../../src/store/tree.ts';
import { runDerrick, tempDir } from '../helpers/cli.ts';
import { imageWithReferrerLayout, multiPlatformLayout, singleImageLayout } from '../helpers/images.ts';

const temp = tempDir();
after(() => temp.cleanup());
let counter = 0;
const fresh = (label: string): string => path.join(temp.dir, `${label}-${++counter}`);

async function derrick(args: string[], expectedCode = 0): Promise<string> {
  const result = await runDerrick(args);
  assert.equal(result.code, expectedCode, `derrick ${args.join(' ')}: ${result.stderr}${result.stdout}`);
  return result.stdout + result.stderr;
}

describe('unpublish', { concurrency: 3 }, () => {
  test('a tag: the tag goes, what only it reached leaves the record, other tags stay', async () => {
    const data = fresh('data');
    const one = fresh('layout');
    const two = fresh('layout');
    const first = await singleImageLayout(one, 'latest', 'one');
    const second = await singleImageLayout(two, 'latest', 'two');
    await derrick(['publish', `oci:${one}`, 'app:1', '--data-dir', data]);
    await derrick(['publish', `oci:${two}`, 'app:2', '--data-dir', data]);
    await derrick(['unpublish', 'app:1', '--data-dir', data]);
    const lookup = await new Tree(data).readRecord('app');
    assert.ok(lookup.found);
    assert.deepEqual([...lookup.repository.tags], [['2', second.digest]]);
    assert.equal(lookup.repository.manifests.has(first.digest), false);
    await derrick(['verify', '--data-dir', data]);
  });

  test('the last tag removes the repository; a whole repository goes at once', async () => {
    const data = fresh('data');
    const layout = fresh('layout');
    await singleImageLayout(layout);
    await derrick(['publish', `oci:${layout}`, 'x:1', 'y:1', '--data-dir', data]);
    assert.match(await derrick(['unpublish', 'x:1', '--data-dir', data]), /no tags left: x removed/);
    await derrick(['unpublish', 'y', '--data-dir', data]);
    assert.equal((await derrick(['ls', '--data-dir', data])).trim(), '');
  });

  test('a manifest by digest removes the tags on it; a referrer goes with its subject', async () => {
    const data = fresh('data');
    const layout = fresh('layout');
    const other = fresh('layout');
    const { image, artifact } = await imageWithReferrerLayout(layout);
    await singleImageLayout(other, 'latest', 'keep');
    await derrick(['publish', `oci:${layout}`, 'sig:a', 'sig:b', '--data-dir', data]);
    await derrick(['publish', `oci:${other}`, 'sig:keep', '--data-dir', data]);
    await derrick(['unpublish', `sig@${image.digest}`, '--data-dir', data]);
    const lookup = await new Tree(data).readRecord('sig');
    assert.ok(lookup.found);
    assert.deepEqual([...lookup.repository.tags.keys()], ['keep']);
    assert.equal(lookup.repository.manifests.has(artifact.digest), false);
  });

  test('a child of an index cannot be unpublished alone', async () => {
    const data = fresh('data');
    const layout = fresh('layout');
    const { children } = await multiPlatformLayout(layout);
    await derrick(['publish', `oci:${layout}`, 'idx', '--data-dir', data]);
    const out = await derrick(['unpublish', `idx@${children[0]?.digest ?? ''}`, '--data-dir', data], 1);
    assert.match(out, /is part of index .*; unpublish the index instead/);
  });

  test('an unknown repository or tag is a one-line error', async () => {
    const data = fresh('data');
    await fs.mkdir(path.join(data, 'v2'), { recursive: true });
    assert.match(
      await derrick(['unpublish', 'nothing', '--data-dir', data], 1),
      /^derrick: there is no repository "nothing"/,
    );
    const layout = fresh('layout');
    await singleImageLayout(layout);
    await derrick(['publish', `oci:${layout}`, 'some', '--data-dir', data]);
    assert.match(await derrick(['unpublish', 'some:nope', '--data-dir', data], 1), /some has no tag "nope"/);
  });
});

describe('gc', { concurrency: 2 }, () => {
  test('with nothing to free it says so: "would free nothing" with --dry-run, "nothing to free" without', async () => {
    const data = fresh('data');
    const layout = fresh('layout');
    await singleImageLayout(layout);
    await derrick(['publish', '-q', `oci:${layout}`, 'kept', '--data-dir', data]);
    assert.equal(await derrick(['gc', '--dry-run', '--data-dir', data]), 'would free nothing\n');
    assert.equal(await derrick(['gc', '--data-dir', data]), 'nothing to free\n');
  });

  test('--dry-run reports the bytes it would free and deletes nothing; gc then frees them', async () => {
    const data = fresh('data');
    const keep = fresh('layout');
    const drop = fresh('layout');
    await singleImageLayout(keep, 'latest', 'keep');
    await singleImageLayout(drop, 'latest', 'drop me');
    await derrick(['publish', `oci:${keep}`, 'keep', '--data-dir', data]);
    await derrick(['publish', `oci:${drop}`, 'drop', '--data-dir', data]);
    await derrick(['unpublish', 'drop', '--data-dir', data]);
    const tree = new Tree(data);
    const before = (await fs.readdir(path.join(fsLayout(tree).contentDir, 'sha256'))).length;
    const dry = JSON.parse(await derrick(['gc', '--dry-run', '--json', '--data-dir', data])) as {
      bytes: number;
      contentFiles: number;
    };
    assert.equal(dry.contentFiles, 3); // the dropped image's manifest, config and layer
    assert.ok(dry.bytes > 0);
    assert.equal((await fs.readdir(path.join(fsLayout(tree).contentDir, 'sha256'))).length, before);
    const real = JSON.parse(await derrick(['gc', '--json', '--data-dir', data])) as {
      bytes: number;
      links: number;
    };
    assert.equal(real.bytes, dry.bytes);
    assert.equal(real.links, 3);
    assert.equal((await fs.readdir(path.join(fsLayout(tree).contentDir, 'sha256'))).length, before - 3);
    await fs.access(fsLayout(tree).repoWebDir('drop')).then(
      () => assert.fail('the unpublished repository’s web directory should be gone'),
      () => undefined,
    );
    await derrick(['verify', '--data-dir', data]);
    assert.match(await derrick(['gc', '--data-dir', data]), /^nothing to free\n$/);
  });

  test('gc refuses to run while a record is unreadable, deleting nothing', async () => {
    const data = fresh('data');
    const layout = fresh('layout');
    await singleImageLayout(layout);
    await derrick(['publish', `oci:${layout}`, 'ok', '--data-dir', data]);
    await fs.writeFile(path.join(data, 'v2', 'app', 'broken.json'), '{"type": "derrick-repository"');
    const out = await derrick(['gc', '--data-dir', data], 1);
    assert.match(out, /gc stopped before deleting anything: v2\/app\/broken\.json: not valid JSON/);
  });
});

describe('verify and ls', { concurrency: 2 }, () => {
  test('verify lists a corrupted, a resized and a missing file, and exits 1', async () => {
    const data = fresh('data');
    const layout = fresh('layout');
    const { children } = await multiPlatformLayout(layout);
    await derrick(['publish', `oci:${layout}`, 'broken', '--data-dir', data]);
    const tree = new Tree(data);
    const lookup = await tree.readRecord('broken');
    assert.ok(lookup.found);
    const [a, b, c] = [...lookup.repository.blobs.keys()];
    const sizeOf = (digest: string | undefined): number => lookup.repository.blobs.get(digest ?? '') ?? 0;
    // Corrupt through the content store (the links share its inode), keeping the size.
    await fs.writeFile(fsLayout(tree).contentPath(a ?? ''), Buffer.alloc(sizeOf(a), 1));
    await fs.appendFile(fsLayout(tree).contentPath(b ?? ''), 'x');
    await fs.rm(fsLayout(tree).blobLinkPath('broken', c ?? ''));
    const out = await derrick(['verify', '--data-dir', data], 1);
    assert.match(out, new RegExp(`blobs/${a ?? ''} hashes to sha256:`));
    assert.match(out, new RegExp(`blobs/${b ?? ''} is ${sizeOf(b) + 1} bytes; the record says ${sizeOf(b)}`));
    assert.match(out, new RegExp(`blobs/${c ?? ''} is missing`));
    assert.match(out, /3 problem\(s\)/);
    assert.equal(children.length, 2);
  });

  test('verify reports an invalid record by file and key', async () => {
    const data = fresh('data');
    await fs.mkdir(path.join(data, 'v2', 'app'), { recursive: true });
    await fs.writeFile(
      path.join(data, 'v2', 'app', 'bad.json'),
      JSON.stringify({ type: 'derrick-repository', version: 1 }),
    );
    assert.match(await derrick(['verify', '--data-dir', data], 1), /bad: v2\/app\/bad\.json: name: /);
  });

  test('ls lists repositories in order with their tags, under a prefix, and as JSON', async () => {
    const data = fresh('data');
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
