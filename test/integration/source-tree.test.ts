/**
 * A derrick tree as an image source (src/publish/source-tree.ts): what is published into tree A — an index with
 * its children and a referrer of the index — is published from A into tree B with the same digests, B verifies
 * clean, and nothing of A's other images comes along. A is a directory, or a prefix of a bucket on the tests'
 * Ceph RGW. A corrupt object in A stops the publish and leaves B as it was.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { silentProgress } from '../../src/publish/progress.ts';
import { publish, type Destination } from '../../src/publish/publisher.ts';
import { openTreeSource, type TreeReference } from '../../src/publish/source-tree.ts';
import { SourceError } from '../../src/publish/source.ts';
import { verifyTree } from '../../src/publish/verify.ts';
import { contentKey } from '../../src/store/keys.ts';
import type { Repository } from '../../src/store/record.ts';
import type { Tree } from '../../src/store/tree.ts';
import { freshTree, type BackendName, type TreeSpot } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { LayoutBuilder, type Descriptor } from '../helpers/images.ts';
import { openTree, publishInto, writeRecordFile, writeTreeObject } from '../helpers/server.ts';

interface Published {
  spot: TreeSpot;
  index: Descriptor;
  children: Descriptor[];
  referrer: Descriptor;
  /** Another image of the same repository, with a referrer of its own: not part of tag 1. */
  other: Descriptor;
  otherReferrer: Descriptor;
}

/** Tree A on `backend`: team/app:1 an index (two children) with a signature, team/app:2 another signed image. */
async function treeA(backend: BackendName, t: TestContext): Promise<Published> {
  const scratch = tempDir('derrick-source-tree-');
  t.after(() => scratch.cleanup());
  const builder = new LayoutBuilder(scratch.dir);
  const children = [
    await builder.image({ platform: { os: 'linux', architecture: 'amd64' }, files: { 'a.txt': 'amd64\n' } }),
    await builder.image({ platform: { os: 'linux', architecture: 'arm64' }, files: { 'a.txt': 'arm64\n' } }),
  ];
  const index = builder.index(children);
  const referrer = builder.artifact(index, 'application/vnd.example.signature.v1', 'index-signature');
  const other = await builder.image({ files: { 'other.txt': 'other\n' } });
  const otherReferrer = builder.artifact(other, 'application/vnd.example.sbom.v1', 'other-sbom');
  builder.add(index, 'one').add(other, 'two').add(referrer).add(otherReferrer).write();
  const spot = await freshTree(backend, t);
  await publishInto(spot, `oci:${scratch.dir}:one`, ['team/app:1']);
  await publishInto(spot, `oci:${scratch.dir}:two`, ['team/app:2']);
  return { spot, index, children, referrer, other, otherReferrer };
}

async function opened(spot: TreeSpot, t: TestContext): Promise<Tree> {
  const tree = await openTree(spot);
  t.after(() => tree.backend.close());
  return tree;
}

function publishFromTree(from: Tree, name: string, ref: TreeReference, into: Tree, to: Destination) {
  return publish({
    tree: into,
    openSource: () => Promise.resolve(openTreeSource(from, name, ref)),
    destinations: [to],
    allTags: false,
    baseUrl: undefined,
    protected: undefined,
    lockTimeoutMs: 10_000,
    progress: silentProgress,
  });
}

async function recordOf(tree: Tree, name: string): Promise<Repository | undefined> {
  const lookup = await tree.readRecord(name);
  return lookup.found ? lookup.repository : undefined;
}

for (const backend of ['fs', 's3'] as const)
  describe(`publish from a derrick tree (tree A on ${backend}, tree B a directory)`, () => {
    test('the index, its children and its referrer come over with their digests; B verifies clean; the other image and its referrer stay behind', async (t) => {
      const a = await treeA(backend, t);
      const from = await opened(a.spot, t);
      const into = await opened(await freshTree('fs', t), t);
      const result = await publishFromTree(from, 'team/app', { tag: '1' }, into, {
        name: 'mirror/app',
        tags: ['1'],
      });
      assert.deepEqual(result.repositories[0]?.tags, { '1': a.index.digest });

      const theirs = await recordOf(from, 'team/app');
      const ours = await recordOf(into, 'mirror/app');
      assert.ok(theirs && ours);
      const expected = [a.index, ...a.children, a.referrer].map((d) => d.digest).sort();
      assert.deepEqual([...ours.manifests.keys()].sort(), expected);
      for (const digest of expected)
        assert.deepEqual(ours.manifests.get(digest), theirs.manifests.get(digest));
      for (const [digest, size] of ours.blobs) assert.equal(theirs.blobs.get(digest), size, digest);
      assert.equal(ours.manifests.has(a.other.digest), false);
      assert.equal(ours.manifests.has(a.otherReferrer.digest), false);
      assert.deepEqual([...ours.tags], [['1', a.index.digest]]);
      assert.deepEqual((await verifyTree(into, { hash: true })).problems, []);
    });
  });

describe('publish from a derrick tree: references and refusals', () => {
  test('by digest: the manifest the record lists under that digest, published under the destination tag', async (t) => {
    const a = await treeA('fs', t);
    const from = await opened(a.spot, t);
    const into = await opened(await freshTree('fs', t), t);
    await publishFromTree(from, 'team/app', { digest: a.other.digest }, into, {
      name: 'm/other',
      tags: ['x'],
    });
    const ours = await recordOf(into, 'm/other');
    assert.deepEqual([...(ours?.tags ?? [])], [['x', a.other.digest]]);
    assert.equal(ours?.manifests.has(a.otherReferrer.digest), true);
  });

  test('every repository and tag of A, found with walkNames and the records’ tags, mirrored into B', async (t) => {
    const a = await treeA('fs', t);
    const from = await opened(a.spot, t);
    const into = await opened(await freshTree('fs', t), t);
    for await (const name of from.walkNames()) {
      const repository = await recordOf(from, name);
      for (const tag of repository?.tags.keys() ?? [])
        await publishFromTree(from, name, { tag }, into, { name, tags: [tag] });
    }
    const theirs = await recordOf(from, 'team/app');
    const ours = await recordOf(into, 'team/app');
    assert.deepEqual([...(ours?.tags ?? [])], [...(theirs?.tags ?? [])]);
    assert.deepEqual(
      [...(ours?.manifests.keys() ?? [])].sort(),
      [...(theirs?.manifests.keys() ?? [])].sort(),
    );
  });

  test('a blob whose bytes were changed in A: the publish fails naming it, and B has no record and no links', async (t) => {
    const a = await treeA('fs', t);
    const from = await opened(a.spot, t);
    const spotB = await freshTree('fs', t);
    const into = await opened(spotB, t);
    const theirs = await recordOf(from, 'team/app');
    // The largest blob that is no manifest: a layer. Same length, other bytes.
    const [layer = '', size = 0] = [...(theirs?.blobs ?? [])].sort((x, y) => y[1] - x[1])[0] ?? [];
    await writeTreeObject(a.spot, contentKey(layer), Buffer.alloc(size, 0x41));
    await assert.rejects(
      publishFromTree(from, 'team/app', { tag: '1' }, into, { name: 'mirror/app', tags: ['1'] }),
      (error: Error) => error.message.includes(layer) && !error.message.includes('\n'),
    );
    assert.equal(await recordOf(into, 'mirror/app'), undefined);
    const web = await fs.readdir(path.join(spotB.location, 'v2', 'web')).catch(() => []);
    assert.deepEqual(web, []);
  });

  test('a repository or tag A does not have: a SourceError naming the tree and the name', async (t) => {
    const a = await treeA('fs', t);
    const from = await opened(a.spot, t);
    const into = await opened(await freshTree('fs', t), t);
    const cases: [string, TreeReference, RegExp][] = [
      ['team/nope', { tag: '1' }, /has no repository team\/nope/],
      ['team/app', { tag: 'nope' }, /team\/app has no tag nope \(its tags: 1, 2\)/],
      ['team/app', { digest: `sha256:${'0'.repeat(64)}` }, /team\/app has no manifest sha256:0{64}/],
    ];
    for (const [name, ref, why] of cases) {
      await assert.rejects(
        publishFromTree(from, name, ref, into, { name: 'mirror/app', tags: ['1'] }),
        (error: Error) =>
          error instanceof SourceError && why.test(error.message) && error.message.includes(from.location),
      );
    }
    assert.equal(await recordOf(into, 'mirror/app'), undefined);
  });

  test('a Pulp 2 record: refused, its content is behind its url', async (t) => {
    const spot = await freshTree('fs', t);
    await writeRecordFile(spot, 'pulp/app', {
      type: 'pulp-docker-redirect',
      version: 2,
      repository: 'pulp-app',
      'repo-registry-id': 'pulp/app',
      url: 'https://cdn.example.com/pulp/app/',
      protected: false,
    });
    const from = await opened(spot, t);
    const into = await opened(await freshTree('fs', t), t);
    await assert.rejects(
      publishFromTree(from, 'pulp/app', { tag: 'latest' }, into, { name: 'mirror/app', tags: ['1'] }),
      (error: Error) => error instanceof SourceError && /is a Pulp 2 record/.test(error.message),
    );
  });
});
