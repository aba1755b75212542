/**
 * derrick publish from every source format, checked against what skopeo reads from the same source: one suite,
 * two back ends (a directory, and a prefix of a bucket on the tests' Ceph RGW).
 */
import { fsLayout } from '../helpers/fs-tree.ts';
import assert from 'node:assert/strict';
import { promises as fs, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { blobLinkKey, contentKey } from '../../src/store/keys.ts';
import { openBackend } from '../../src/store/open-backend.ts';
import { Tree } from '../../src/store/tree.ts';
import { verifyTree } from '../../src/publish/verify.ts';
import { BACKENDS, freshTree, type TreeSpot } from '../helpers/backends.ts';
import { run, runDerrick, tempDir, type RunResult } from '../helpers/cli.ts';
import {
  imageWithReferrerLayout,
  LayoutBuilder,
  MT,
  multiPlatformLayout,
  singleImageLayout,
  skopeoCopy,
  skopeoRawDigest,
} from '../helpers/images.ts';

const temp = tempDir();
after(() => temp.cleanup());
let counter = 0;
const fresh = (label: string): string => path.join(temp.dir, `${label}-${++counter}`);

function derrick(spot: TreeSpot, args: string[]): Promise<RunResult> {
  return runDerrick(args, { env: { ...spot.env, DERRICK_DEBUG: '' } });
}

async function publishOk(spot: TreeSpot, args: string[]): Promise<string> {
  const result = await derrick(spot, ['publish', ...args]);
  assert.equal(result.code, 0, `publish failed: ${result.stderr}`);
  return result.stdout;
}

/** The tree opened in this process (closed when `use` is done). */
async function withTree<T>(spot: TreeSpot, use: (tree: Tree) => Promise<T>): Promise<T> {
  const tree = new Tree(await openBackend(spot.location));
  try {
    return await use(tree);
  } finally {
    await tree.backend.close();
  }
}

async function assertVerifyClean(spot: TreeSpot): Promise<void> {
  const result = await withTree(spot, (tree) => verifyTree(tree, { hash: true }));
  assert.deepEqual(result.problems, []);
}

async function record(spot: TreeSpot, name: string) {
  const lookup = await withTree(spot, (tree) => tree.readRecord(name));
  assert.ok(lookup.found, `no record for ${name}`);
  return lookup.repository;
}

/** A new tree for one test on `backend`: `spot` for the helpers, `data` for --data-dir. */
async function treeFor(
  backend: (typeof BACKENDS)[number],
  t: TestContext,
): Promise<{ spot: TreeSpot; data: string }> {
  const spot = await freshTree(backend, t);
  return { spot, data: spot.location };
}

for (const backend of BACKENDS) {
  describe(`publish from an OCI layout (${backend})`, { concurrency: 4 }, () => {
    test('a single image: verify is clean and the tag is the digest skopeo inspect --raw shows', async (t) => {
      const layout = fresh('layout');
      const { spot, data } = await treeFor(backend, t);
      await singleImageLayout(layout, 'v1');
      const out = await publishOk(spot, [`oci:${layout}:v1`, 'team/app:v1', '--data-dir', data]);
      const { digest } = await skopeoRawDigest(`oci:${layout}:v1`);
      assert.match(out, new RegExp(`published team/app:v1 ${digest}`));
      assert.equal((await record(spot, 'team/app')).tags.get('v1'), digest);
      await assertVerifyClean(spot);
    });

    test('a multi-platform index is published with all its children and their platforms', async (t) => {
      const layout = fresh('layout');
      const { spot, data } = await treeFor(backend, t);
      const { index, children } = await multiPlatformLayout(layout);
      await publishOk(spot, [`oci:${layout}:latest`, 'multi', '--data-dir', data]);
      const repository = await record(spot, 'multi');
      assert.equal(repository.tags.get('latest'), index.digest);
      assert.equal((await skopeoRawDigest(`oci:${layout}:latest`)).digest, index.digest);
      const entry = repository.manifests.get(index.digest);
      assert.equal(entry?.mediaType, MT.ociIndex);
      assert.deepEqual(
        entry.children?.map((child) => child.digest),
        children.map((child) => child.digest),
      );
      assert.deepEqual(
        entry.children.map((child) => child.platform),
        [
          { os: 'linux', architecture: 'amd64' },
          { os: 'linux', architecture: 'arm64', variant: 'v8' },
        ],
      );
      for (const child of children)
        assert.equal(repository.manifests.get(child.digest)?.mediaType, MT.ociManifest);
      await assertVerifyClean(spot);
    });

    test('an artifact with a subject is published untagged beside its image, with what referrers needs', async (t) => {
      const layout = fresh('layout');
      const { spot, data } = await treeFor(backend, t);
      const { image, artifact } = await imageWithReferrerLayout(layout);
      await publishOk(spot, [`oci:${layout}:latest`, 'signed:1.0', '--data-dir', data]);
      const repository = await record(spot, 'signed');
      assert.deepEqual([...repository.tags], [['1.0', image.digest]]);
      const entry = repository.manifests.get(artifact.digest);
      assert.equal(entry?.subject, image.digest);
      assert.equal(entry.artifactType, 'application/vnd.example.signature.v1');
      assert.deepEqual(entry.annotations, { 'org.example.signer': 'test' });
      await assertVerifyClean(spot);
    });

    test('several tags in one call, and into several repositories', async (t) => {
      const layout = fresh('layout');
      const { spot, data } = await treeFor(backend, t);
      const image = await singleImageLayout(layout);
      await publishOk(spot, [`oci:${layout}`, 'a:1', 'a:1.0', 'a:latest', 'b:x', '--data-dir', data]);
      assert.deepEqual([...(await record(spot, 'a')).tags.keys()], ['1', '1.0', 'latest']);
      assert.equal((await record(spot, 'b')).tags.get('x'), image.digest);
      const layer = [...(await record(spot, 'a')).blobs.keys()][0] ?? '';
      if (backend === 'fs') {
        // Content is stored once on a file system: both repositories' links are the content store's inode.
        const tree = new Tree(data);
        const inode = statSync(fsLayout(tree).contentPath(layer)).ino;
        assert.equal(statSync(fsLayout(tree).blobLinkPath('a', layer)).ino, inode);
        assert.equal(statSync(fsLayout(tree).blobLinkPath('b', layer)).ino, inode);
      } else {
        // A bucket has no hard links: each repository's copy is made server-side, the same object (ETag).
        const versions = await withTree(spot, async (tree) =>
          Promise.all(
            [contentKey(layer), blobLinkKey('a', layer), blobLinkKey('b', layer)].map(
              async (key) => (await tree.backend.stat(key))?.version,
            ),
          ),
        );
        assert.ok(versions[0] !== undefined);
        assert.deepEqual(versions, [versions[0], versions[0], versions[0]]);
      }
    });

    test('a bare name beside tagged ones means latest too', async (t) => {
      const layout = fresh('layout');
      const { spot, data } = await treeFor(backend, t);
      await singleImageLayout(layout);
      await publishOk(spot, [`oci:${layout}`, 'bare', 'bare:v1', '--data-dir', data]);
      assert.deepEqual([...(await record(spot, 'bare')).tags.keys()], ['latest', 'v1']);
    });

    test('--all-tags publishes every named image under its own name', async (t) => {
      const layout = fresh('layout');
      const { spot, data } = await treeFor(backend, t);
      const builder = new LayoutBuilder(layout);
      const one = await builder.image({ files: { f: '1' } });
      const two = await builder.image({ files: { f: '2' } });
      builder.add(one, 'one').add(two, 'two').write();
      await publishOk(spot, [`oci:${layout}`, 'many', '--all-tags', '--data-dir', data]);
      assert.deepEqual(Object.fromEntries((await record(spot, 'many')).tags), {
        one: one.digest,
        two: two.digest,
      });
    });

    test('--base-url and --protected are recorded; --json prints the result', async (t) => {
      const layout = fresh('layout');
      const { spot, data } = await treeFor(backend, t);
      const image = await singleImageLayout(layout);
      const out = await publishOk(spot, [
        `oci:${layout}`,
        'cdn/app:1',
        '--base-url',
        'https://cdn.example.com/cdn/app',
        '--protected',
        '--json',
        '--data-dir',
        data,
      ]);
      const result = JSON.parse(out) as {
        repositories: { name: string; tags: Record<string, string> }[];
        blobsCopied: number;
      };
      assert.deepEqual(result.repositories[0]?.tags, { 1: image.digest });
      assert.equal(result.blobsCopied, 2);
      const repository = await record(spot, 'cdn/app');
      assert.equal(repository.baseUrl, 'https://cdn.example.com/cdn/app');
      assert.equal(repository.protected, true);
    });

    test('publishing again reuses content; moving a tag keeps the old manifest pullable by digest', async (t) => {
      const { spot, data } = await treeFor(backend, t);
      const first = fresh('layout');
      const second = fresh('layout');
      const old = await singleImageLayout(first, 'latest', 'one');
      const next = await singleImageLayout(second, 'latest', 'two');
      await publishOk(spot, [`oci:${first}`, 'moving', '--data-dir', data]);
      const again = await derrick(spot, ['publish', `oci:${first}`, 'moving', '--json', '--data-dir', data]);
      assert.equal((JSON.parse(again.stdout) as { blobsReused: number }).blobsReused, 2);
      await publishOk(spot, [`oci:${second}`, 'moving', '--data-dir', data]);
      const repository = await record(spot, 'moving');
      assert.equal(repository.tags.get('latest'), next.digest);
      assert.ok(repository.manifests.has(old.digest));
      await assertVerifyClean(spot);
    });

    test('zstd layers are published byte for byte, and an absent non-distributable layer is recorded, not copied', async (t) => {
      const layout = fresh('layout');
      const { spot, data } = await treeFor(backend, t);
      const builder = new LayoutBuilder(layout);
      const raw = Buffer.from('pretend tar content '.repeat(100));
      const zstdFile = path.join(temp.dir, `layer-${counter}.zst`);
      await fs.writeFile(`${zstdFile}.in`, raw);
      await run('zstd', ['-q', '-f', `${zstdFile}.in`, '-o', zstdFile]);
      const zstdLayer = builder.blob(await fs.readFile(zstdFile), MT.ociLayerZstd);
      const foreign = {
        mediaType: MT.ociNondistributable,
        digest: `sha256:${'f'.repeat(64)}`,
        size: 1234,
        urls: ['https://example.com/layer'],
      };
      const image = await builder.image({
        files: { a: 'a' },
        extraLayers: [
          { descriptor: zstdLayer, diffId: `sha256:${'0'.repeat(64)}` },
          { descriptor: foreign, diffId: `sha256:${'1'.repeat(64)}` },
        ],
      });
      builder.add(image, 'latest').write();
      const out = await publishOk(spot, [`oci:${layout}`, 'zstd', '--data-dir', data]);
      assert.match(out, /non-distributable layer sha256:f{64}/);
      const repository = await record(spot, 'zstd');
      assert.equal(repository.blobs.get(zstdLayer.digest), zstdLayer.size);
      assert.equal(repository.blobs.has(foreign.digest), false);
      await assertVerifyClean(spot);
    });

    test('a layout written by umoci publishes with the digest umoci recorded', async (t) => {
      const layout = fresh('umoci');
      const { spot, data } = await treeFor(backend, t);
      await run('umoci', ['init', '--layout', layout]);
      await run('umoci', ['new', '--image', `${layout}:base`]);
      await run('umoci', [
        'config',
        '--image',
        `${layout}:base`,
        '--config.cmd=/bin/true',
        '--tag',
        'configured',
      ]);
      await publishOk(spot, [`oci:${layout}:configured`, 'umoci/img:configured', '--data-dir', data]);
      const { digest } = await skopeoRawDigest(`oci:${layout}:configured`);
      assert.equal((await record(spot, 'umoci/img')).tags.get('configured'), digest);
      await assertVerifyClean(spot);
    });
  });

  describe(`publish from skopeo formats (${backend})`, { concurrency: 3 }, () => {
    let layout = '';
    let multi = '';
    before(async () => {
      layout = fresh('layout');
      multi = fresh('multi');
      await singleImageLayout(layout, 'latest', 'docker');
      await multiPlatformLayout(multi);
    });

    test('a Docker schema 2 image in dir: format keeps the digest skopeo shows', async (t) => {
      const dir = fresh('dir');
      const { spot, data } = await treeFor(backend, t);
      await skopeoCopy(`oci:${layout}:latest`, `dir:${dir}`, ['--format', 'v2s2']);
      const { digest, raw } = await skopeoRawDigest(`dir:${dir}`);
      assert.match(raw, /application\/vnd\.docker\.distribution\.manifest\.v2\+json/);
      await publishOk(spot, [`dir:${dir}`, 'docker/v2s2:1', '--data-dir', data]);
      const repository = await record(spot, 'docker/v2s2');
      assert.equal(repository.tags.get('1'), digest);
      assert.equal(repository.manifests.get(digest)?.mediaType, MT.dockerManifest);
      await assertVerifyClean(spot);
    });

    test('a multi-platform index copied with skopeo --all to dir: publishes every child', async (t) => {
      const dir = fresh('dir');
      const { spot, data } = await treeFor(backend, t);
      await skopeoCopy(`oci:${multi}:latest`, `dir:${dir}`, ['--all']);
      const { digest } = await skopeoRawDigest(`dir:${dir}`);
      await publishOk(spot, [`dir:${dir}`, 'multi/dir', '--data-dir', data]);
      const repository = await record(spot, 'multi/dir');
      assert.equal(repository.tags.get('latest'), digest);
      assert.equal(repository.manifests.size, 3);
      await assertVerifyClean(spot);
    });

    test('a docker-archive tarball publishes the digest skopeo inspect --raw shows for it', async (t) => {
      const archive = `${fresh('archive')}.tar`;
      const { spot, data } = await treeFor(backend, t);
      await skopeoCopy(`oci:${layout}:latest`, `docker-archive:${archive}:example/app:7`);
      const { digest } = await skopeoRawDigest(`docker-archive:${archive}`);
      const out = await publishOk(spot, [`docker-archive:${archive}`, 'archived:7', '--data-dir', data]);
      assert.match(out, new RegExp(digest));
      assert.equal((await record(spot, 'archived')).tags.get('7'), digest);
      await assertVerifyClean(spot);
      // Nothing of the archive is left in staging (a directory of a tree on a file system; on S3 the scratch
      // directory of the back end, removed with it).
      if (backend === 'fs') assert.deepEqual(await fs.readdir(fsLayout(new Tree(data)).stagingDir), []);
    });

    test('a gzipped docker-archive and a RepoTag reference are read too', async (t) => {
      const archive = `${fresh('archive')}.tar`;
      const { spot, data } = await treeFor(backend, t);
      await skopeoCopy(`oci:${layout}:latest`, `docker-archive:${archive}:example/app:7`);
      const { digest } = await skopeoRawDigest(`docker-archive:${archive}`);
      await run('gzip', ['-k', archive]);
      await publishOk(spot, [`docker-archive:${archive}.gz:example/app:7`, 'gz', '--data-dir', data]);
      assert.equal((await record(spot, 'gz')).tags.get('latest'), digest);
      await publishOk(spot, [`docker-archive:${archive}`, 'all', '--all-tags', '--data-dir', data]);
      assert.equal((await record(spot, 'all')).tags.get('7'), digest);
    });
  });

  describe(`--protected and --public (${backend})`, { concurrency: 3 }, () => {
    /** `derrick ls` of one repository, as text and as JSON. */
    async function listed(spot: TreeSpot, name: string): Promise<{ line: string; json: unknown }> {
      const data = spot.location;
      const text = await derrick(spot, ['ls', name, '--data-dir', data]);
      assert.equal(text.code, 0, text.stderr);
      const json = await derrick(spot, ['ls', name, '--json', '--data-dir', data]);
      assert.equal(json.code, 0, json.stderr);
      const entries = JSON.parse(json.stdout) as { name: string; protected: unknown }[];
      return { line: text.stdout, json: entries.find((entry) => entry.name === name)?.protected };
    }

    test('ls shows a protected repository as protected, in text and in JSON; a public one as public', async (t) => {
      const layout = fresh('layout');
      const { spot, data } = await treeFor(backend, t);
      await singleImageLayout(layout);
      await publishOk(spot, [`oci:${layout}`, 'secret:1', '--protected', '-q', '--data-dir', data]);
      await publishOk(spot, [`oci:${layout}`, 'open:1', '-q', '--data-dir', data]);
      assert.deepEqual(await listed(spot, 'secret'), { line: 'secret\t1\tprotected\n', json: true });
      assert.deepEqual(await listed(spot, 'open'), { line: 'open\t1\n', json: false });
    });

    test('a re-publish without either flag keeps --protected; --public clears it; --protected sets it again', async (t) => {
      const layout = fresh('layout');
      const { spot, data } = await treeFor(backend, t);
      await singleImageLayout(layout);
      await publishOk(spot, [`oci:${layout}`, 'app:1', '--protected', '-q', '--data-dir', data]);
      await publishOk(spot, [`oci:${layout}`, 'app:2', '-q', '--data-dir', data]);
      assert.equal((await record(spot, 'app')).protected, true);
      await publishOk(spot, [`oci:${layout}`, 'app:3', '--public', '-q', '--data-dir', data]);
      assert.equal((await record(spot, 'app')).protected, false);
      assert.deepEqual(await listed(spot, 'app'), { line: 'app\t1 2 3\n', json: false });
      await publishOk(spot, [`oci:${layout}`, 'app:4', '--protected', '-q', '--data-dir', data]);
      assert.equal((await record(spot, 'app')).protected, true);
    });

    test('--protected --public together is refused as a usage error, and nothing is published', async (t) => {
      const layout = fresh('layout');
      const { spot, data } = await treeFor(backend, t);
      await singleImageLayout(layout);
      const result = await derrick(spot, [
        'publish',
        `oci:${layout}`,
        'both:1',
        '--protected',
        '--public',
        '--data-dir',
        data,
      ]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /--protected.*--public|--public.*--protected/);
      if (backend === 'fs') await assert.rejects(fs.stat(data));
      else
        assert.equal(
          await withTree(spot, (tree) => tree.backend.hasChildren('v2')),
          false,
          'the refused publish wrote into the bucket',
        );
    });
  });
}
