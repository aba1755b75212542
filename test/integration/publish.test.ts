/**
 * derrick publish from every source format, checked against what skopeo reads from the same source.
 */
import { fsLayout } from '../helpers/fs-tree.ts';
import assert from 'node:assert/strict';
import { promises as fs, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Tree } from '../../src/store/tree.ts';
import { verifyTree } from '../../src/publish/verify.ts';
import { run, runDerrick, tempDir } from '../helpers/cli.ts';
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

async function publishOk(args: string[]): Promise<string> {
  const result = await runDerrick(['publish', ...args]);
  assert.equal(result.code, 0, `publish failed: ${result.stderr}`);
  return result.stdout;
}

async function assertVerifyClean(dataDir: string): Promise<void> {
  const result = await verifyTree(new Tree(dataDir), { hash: true });
  assert.deepEqual(result.problems, []);
}

async function record(dataDir: string, name: string) {
  const lookup = await new Tree(dataDir).readRecord(name);
  assert.ok(lookup.found, `no record for ${name}`);
  return lookup.repository;
}

describe('publish from an OCI layout', { concurrency: 4 }, () => {
  test('a single image: verify is clean and the tag is the digest skopeo inspect --raw shows', async () => {
    const layout = fresh('layout');
    const data = fresh('data');
    await singleImageLayout(layout, 'v1');
    const out = await publishOk([`oci:${layout}:v1`, 'team/app:v1', '--data-dir', data]);
    const { digest } = await skopeoRawDigest(`oci:${layout}:v1`);
    assert.match(out, new RegExp(`published team/app:v1 ${digest}`));
    assert.equal((await record(data, 'team/app')).tags.get('v1'), digest);
    await assertVerifyClean(data);
  });

  test('a multi-platform index is published with all its children and their platforms', async () => {
    const layout = fresh('layout');
    const data = fresh('data');
    const { index, children } = await multiPlatformLayout(layout);
    await publishOk([`oci:${layout}:latest`, 'multi', '--data-dir', data]);
    const repository = await record(data, 'multi');
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
    await assertVerifyClean(data);
  });

  test('an artifact with a subject is published untagged beside its image, with what referrers needs', async () => {
    const layout = fresh('layout');
    const data = fresh('data');
    const { image, artifact } = await imageWithReferrerLayout(layout);
    await publishOk([`oci:${layout}:latest`, 'signed:1.0', '--data-dir', data]);
    const repository = await record(data, 'signed');
    assert.deepEqual([...repository.tags], [['1.0', image.digest]]);
    const entry = repository.manifests.get(artifact.digest);
    assert.equal(entry?.subject, image.digest);
    assert.equal(entry.artifactType, 'application/vnd.example.signature.v1');
    assert.deepEqual(entry.annotations, { 'org.example.signer': 'test' });
    await assertVerifyClean(data);
  });

  test('several tags in one call, and into several repositories', async () => {
    const layout = fresh('layout');
    const data = fresh('data');
    const image = await singleImageLayout(layout);
    await publishOk([`oci:${layout}`, 'a:1', 'a:1.0', 'a:latest', 'b:x', '--data-dir', data]);
    assert.deepEqual([...(await record(data, 'a')).tags.keys()], ['1', '1.0', 'latest']);
    assert.equal((await record(data, 'b')).tags.get('x'), image.digest);
    // Content is stored once: both repositories' links are the content store's inode.
    const tree = new Tree(data);
    const layer = [...(await record(data, 'a')).blobs.keys()][0] ?? '';
    const inode = statSync(fsLayout(tree).contentPath(layer)).ino;
    assert.equal(statSync(fsLayout(tree).blobLinkPath('a', layer)).ino, inode);
    assert.equal(statSync(fsLayout(tree).blobLinkPath('b', layer)).ino, inode);
  });

  test('a bare name beside tagged ones means latest too', async () => {
    const layout = fresh('layout');
    const data = fresh('data');
    await singleImageLayout(layout);
    await publishOk([`oci:${layout}`, 'bare', 'bare:v1', '--data-dir', data]);
    assert.deepEqual([...(await record(data, 'bare')).tags.keys()], ['latest', 'v1']);
  });

  test('--all-tags publishes every named image under its own name', async () => {
    const layout = fresh('layout');
    const data = fresh('data');
    const builder = new LayoutBuilder(layout);
    const one = await builder.image({ files: { f: '1' } });
    const two = await builder.image({ files: { f: '2' } });
    builder.add(one, 'one').add(two, 'two').write();
    await publishOk([`oci:${layout}`, 'many', '--all-tags', '--data-dir', data]);
    assert.deepEqual(Object.fromEntries((await record(data, 'many')).tags), {
      one: one.digest,
      two: two.digest,
    });
  });

  test('--base-url and --protected are recorded; --json prints the result', async () => {
    const layout = fresh('layout');
    const data = fresh('data');
    const image = await singleImageLayout(layout);
    const out = await publishOk([
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
    const repository = await record(data, 'cdn/app');
    assert.equal(repository.baseUrl, 'https://cdn.example.com/cdn/app');
    assert.equal(repository.protected, true);
  });

  test('publishing again reuses content; moving a tag keeps the old manifest pullable by digest', async () => {
    const data = fresh('data');
    const first = fresh('layout');
    const second = fresh('layout');
    const old = await singleImageLayout(first, 'latest', 'one');
    const next = await singleImageLayout(second, 'latest', 'two');
    await publishOk([`oci:${first}`, 'moving', '--data-dir', data]);
    const again = await runDerrick(['publish', `oci:${first}`, 'moving', '--json', '--data-dir', data]);
    assert.equal((JSON.parse(again.stdout) as { blobsReused: number }).blobsReused, 2);
    await publishOk([`oci:${second}`, 'moving', '--data-dir', data]);
    const repository = await record(data, 'moving');
    assert.equal(repository.tags.get('latest'), next.digest);
    assert.ok(repository.manifests.has(old.digest));
    await assertVerifyClean(data);
  });

  test('zstd layers are published byte for byte, and an absent non-distributable layer is recorded, not copied', async () => {
    const layout = fresh('layout');
    const data = fresh('data');
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
    const out = await publishOk([`oci:${layout}`, 'zstd', '--data-dir', data]);
    assert.match(out, /non-distributable layer sha256:f{64}/);
    const repository = await record(data, 'zstd');
    assert.equal(repository.blobs.get(zstdLayer.digest), zstdLayer.size);
    assert.equal(repository.blobs.has(foreign.digest), false);
    await assertVerifyClean(data);
  });

  test('a layout written by umoci publishes with the digest umoci recorded', async () => {
    const layout = fresh('umoci');
    const data = fresh('data');
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
    await publishOk([`oci:${layout}:configured`, 'umoci/img:configured', '--data-dir', data]);
    const { digest } = await skopeoRawDigest(`oci:${layout}:configured`);
    assert.equal((await record(data, 'umoci/img')).tags.get('configured'), digest);
    await assertVerifyClean(data);
  });
});

describe('publish from skopeo formats', { concurrency: 3 }, () => {
  let layout = '';
  let multi = '';
  before(async () => {
    layout = fresh('layout');
    multi = fresh('multi');
    await singleImageLayout(layout, 'latest', 'docker');
    await multiPlatformLayout(multi);
  });

  test('a Docker schema 2 image in dir: format keeps the digest skopeo shows', async () => {
    const dir = fresh('dir');
    const data = fresh('data');
    await skopeoCopy(`oci:${layout}:latest`, `dir:${dir}`, ['--format', 'v2s2']);
    const { digest, raw } = await skopeoRawDigest(`dir:${dir}`);
    assert.match(raw, /application\/vnd\.docker\.distribution\.manifest\.v2\+json/);
    await publishOk([`dir:${dir}`, 'docker/v2s2:1', '--data-dir', data]);
    const repository = await record(data, 'docker/v2s2');
    assert.equal(repository.tags.get('1'), digest);
    assert.equal(repository.manifests.get(digest)?.mediaType, MT.dockerManifest);
    await assertVerifyClean(data);
  });

  test('a multi-platform index copied with skopeo --all to dir: publishes every child', async () => {
    const dir = fresh('dir');
    const data = fresh('data');
    await skopeoCopy(`oci:${multi}:latest`, `dir:${dir}`, ['--all']);
    const { digest } = await skopeoRawDigest(`dir:${dir}`);
    await publishOk([`dir:${dir}`, 'multi/dir', '--data-dir', data]);
    const repository = await record(data, 'multi/dir');
    assert.equal(repository.tags.get('latest'), digest);
    assert.equal(repository.manifests.size, 3);
    await assertVerifyClean(data);
  });

  test('a docker-archive tarball publishes the digest skopeo inspect --raw shows for it', async () => {
    const archive = `${fresh('archive')}.tar`;
    const data = fresh('data');
    await skopeoCopy(`oci:${layout}:latest`, `docker-archive:${archive}:example/app:7`);
    const { digest } = await skopeoRawDigest(`docker-archive:${archive}`);
    const out = await publishOk([`docker-archive:${archive}`, 'archived:7', '--data-dir', data]);
    assert.match(out, new RegExp(digest));
    assert.equal((await record(data, 'archived')).tags.get('7'), digest);
    await assertVerifyClean(data);
    // Nothing of the archive is left in staging.
    assert.deepEqual(await fs.readdir(fsLayout(new Tree(data)).stagingDir), []);
  });

  test('a gzipped docker-archive and a RepoTag reference are read too', async () => {
    const archive = `${fresh('archive')}.tar`;
    const data = fresh('data');
    await skopeoCopy(`oci:${layout}:latest`, `docker-archive:${archive}:example/app:7`);
    const { digest } = await skopeoRawDigest(`docker-archive:${archive}`);
    await run('gzip', ['-k', archive]);
    await publishOk([`docker-archive:${archive}.gz:example/app:7`, 'gz', '--data-dir', data]);
    assert.equal((await record(data, 'gz')).tags.get('latest'), digest);
    await publishOk([`docker-archive:${archive}`, 'all', '--all-tags', '--data-dir', data]);
    assert.equal((await record(data, 'all')).tags.get('7'), digest);
  });
});

describe('--protected and --public', { concurrency: 3 }, () => {
  /** `derrick ls` of one repository, as text and as JSON. */
  async function listed(data: string, name: string): Promise<{ line: string; json: unknown }> {
    const text = await runDerrick(['ls', name, '--data-dir', data]);
    assert.equal(text.code, 0, text.stderr);
    const json = await runDerrick(['ls', name, '--json', '--data-dir', data]);
    assert.equal(json.code, 0, json.stderr);
    const entries = JSON.parse(json.stdout) as { name: string; protected: unknown }[];
    return { line: text.stdout, json: entries.find((entry) => entry.name === name)?.protected };
  }

  test('ls shows a protected repository as protected, in text and in JSON; a public one as public', async () => {
    const layout = fresh('layout');
    const data = fresh('data');
    await singleImageLayout(layout);
    await publishOk([`oci:${layout}`, 'secret:1', '--protected', '-q', '--data-dir', data]);
    await publishOk([`oci:${layout}`, 'open:1', '-q', '--data-dir', data]);
    assert.deepEqual(await listed(data, 'secret'), { line: 'secret\t1\tprotected\n', json: true });
    assert.deepEqual(await listed(data, 'open'), { line: 'open\t1\n', json: false });
  });

  test('a re-publish without either flag keeps --protected; --public clears it; --protected sets it again', async () => {
    const layout = fresh('layout');
    const data = fresh('data');
    await singleImageLayout(layout);
    await publishOk([`oci:${layout}`, 'app:1', '--protected', '-q', '--data-dir', data]);
    await publishOk([`oci:${layout}`, 'app:2', '-q', '--data-dir', data]);
    assert.equal((await record(data, 'app')).protected, true);
    await publishOk([`oci:${layout}`, 'app:3', '--public', '-q', '--data-dir', data]);
    assert.equal((await record(data, 'app')).protected, false);
    assert.deepEqual(await listed(data, 'app'), { line: 'app\t1 2 3\n', json: false });
    await publishOk([`oci:${layout}`, 'app:4', '--protected', '-q', '--data-dir', data]);
    assert.equal((await record(data, 'app')).protected, true);
  });

  test('--protected --public together is refused as a usage error, and nothing is published', async () => {
    const layout = fresh('layout');
    const data = fresh('data');
    await singleImageLayout(layout);
    const result = await runDerrick([
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
    await assert.rejects(fs.stat(data));
  });
});
