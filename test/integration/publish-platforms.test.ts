/**
 * `derrick publish --platform` from an OCI layout with a linux/amd64 + linux/arm64/v8 index, through the CLI: the
 * tag names the filtered index, whose bytes are in the tree like any manifest's, and only the kept platform's
 * manifest and blobs are published; a filter that keeps everything publishes the upstream index as it is.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { filterIndex, parsePlatforms } from '../../src/publish/platforms.ts';
import { verifyTree } from '../../src/publish/verify.ts';
import { contentKey } from '../../src/store/keys.ts';
import { openBackend } from '../../src/store/open-backend.ts';
import { Tree } from '../../src/store/tree.ts';
import { runDerrick, tempDir } from '../helpers/cli.ts';
import { multiPlatformLayout, type Descriptor } from '../helpers/images.ts';

const temp = tempDir('derrick-platforms-');
after(() => temp.cleanup());
let counter = 0;
const fresh = (label: string): string => path.join(temp.dir, `${label}-${++counter}`);

let layout = '';
let index: Descriptor;
let children: Descriptor[] = [];
before(async () => {
  layout = fresh('layout');
  ({ index, children } = await multiPlatformLayout(layout, 'latest'));
});

async function withTree<T>(dir: string, use: (tree: Tree) => Promise<T>): Promise<T> {
  const tree = new Tree(await openBackend(dir));
  try {
    return await use(tree);
  } finally {
    await tree.backend.close();
  }
}

describe('publish --platform', () => {
  test('linux/arm64: the tag names a new index holding only the arm64/v8 child; verify is clean', async () => {
    const data = fresh('tree');
    const result = await runDerrick([
      'publish',
      `oci:${layout}:latest`,
      'multi/app:1',
      '--platform',
      'linux/arm64',
      '--data-dir',
      data,
    ]);
    assert.equal(result.code, 0, result.stderr);
    const upstream = await fs.readFile(path.join(layout, 'blobs', 'sha256', index.digest.slice(7)));
    const wanted = parsePlatforms('linux/arm64');
    assert.ok(!('error' in wanted));
    const expected = filterIndex(upstream, wanted);
    assert.ok(!('error' in expected) && expected.changed);
    assert.notEqual(expected.digest, index.digest);
    assert.match(result.stdout, new RegExp(`^published multi/app:1 ${expected.digest}$`, 'm'));
    assert.match(result.stderr, /keeps linux\/arm64\/v8 and drops linux\/amd64/);

    await withTree(data, async (tree) => {
      const lookup = await tree.readRecord('multi/app');
      assert.ok(lookup.found && lookup.repository.format === 'derrick');
      const { repository } = lookup;
      assert.equal(repository.tags.get('1'), expected.digest);
      assert.deepEqual(
        [...repository.manifests.keys()].sort(),
        [expected.digest, children[1]?.digest].sort(),
      );
      const stored = await tree.backend.read(contentKey(expected.digest));
      assert.ok(stored.status === 'found' && stored.bytes.equals(expected.bytes));
      assert.deepEqual((await verifyTree(tree, { hash: true })).problems, []);
    });
  });

  test('every platform asked for: the upstream index, under its own digest', async () => {
    const data = fresh('tree');
    const result = await runDerrick([
      'publish',
      `oci:${layout}:latest`,
      'multi/app:all',
      '--platform',
      'linux/amd64',
      '--platform',
      'linux/arm64/v8',
      '--data-dir',
      data,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`^published multi/app:all ${index.digest}$`, 'm'));
  });

  test('a platform the index lacks: nothing published, one line naming the platforms it has', async () => {
    const data = fresh('tree');
    const result = await runDerrick([
      'publish',
      `oci:${layout}:latest`,
      'multi/app:1',
      '--platform',
      'linux/s390x',
      '--data-dir',
      data,
    ]);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /^derrick: .*--platform linux\/s390x matches no image in the index; it has linux\/amd64, linux\/arm64\/v8\n$/,
    );
  });
});
