/**
 * End to end, on a tree in a bucket of the test S3 server (Ceph RGW, scripts/s3.sh), the ways of serving S3 that
 * test/e2e/pull.test.ts does not run over every back end:
 * - redirect mode for a repository published with `--base-url`: its GETs go to that URL, here a real nginx serving
 *   a directory that `derrick copy-tree s3://… <dir>` made from the bucket (the way to put a CDN origin or a
 *   disconnected site in front of a bucket), while a repository without one is sent to presigned URLs of the
 *   bucket, by the same server; skopeo and podman pull both, every digest checked;
 * - containerd (`ctr content fetch`, containerd's docker resolver: what Kubernetes nodes pull with) from derrick in
 *   serve mode, every byte streamed from the bucket, every fetched digest the published one.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freshTree } from '../helpers/backends.ts';
import { digestOf, run, runDerrick, tempDir, type RunResult } from '../helpers/cli.ts';
import { startContainerd, type Containerd } from '../helpers/containerd.ts';
import { containersClientConfig, podmanStateArgs } from '../helpers/containers.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { multiPlatformLayout, singleImageLayout, type Descriptor } from '../helpers/images.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';

// Short: podman refuses a runroot path over 50 characters.
const temp = tempDir('derrick-s3c-');
// nginx started as root reads the copy as `nobody`: every directory above it must be searchable.
chmodSync(temp.dir, 0o755);
after(() => temp.cleanup());
let counter = 0;
const fresh = (label: string): string => path.join(temp.dir, `${label}-${++counter}`);

const tree = await freshTree('s3', {
  after: (cleanup) =>
    after(async () => {
      await cleanup?.(undefined as never, () => undefined);
    }),
});

const { policy: POLICY, env: CLIENT_ENV } = containersClientConfig(path.join(temp.dir, 'client-config'));
const skopeo = (args: string[]): Promise<RunResult> =>
  run('skopeo', ['--policy', POLICY, ...args], { env: CLIENT_ENV });
const podman = (dir: string, args: string[]): Promise<RunResult> =>
  run('podman', [...podmanStateArgs(dir), ...args], { env: CLIENT_ENV });

async function derrick(args: string[]): Promise<string> {
  const result = await runDerrick(args, { env: tree.env });
  assert.equal(result.code, 0, `derrick ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

/** The blobs an image manifest in an OCI layout names: config, then layers. */
async function blobsIn(layout: string, manifest: Descriptor): Promise<string[]> {
  const parsed = JSON.parse(
    await fs.readFile(path.join(layout, 'blobs', ...manifest.digest.split(':')), 'utf8'),
  ) as { config: { digest: string }; layers: { digest: string }[] };
  return [parsed.config.digest, ...parsed.layers.map((layer) => layer.digest)];
}

/** A skopeo copy into an `oci:` layout holds exactly `digest` and its `blobs`, each file hashing to its name. */
async function assertOciCopy(layout: string, digest: string, blobs: string[]): Promise<void> {
  const raw = (await skopeo(['inspect', '--raw', `oci:${layout}:copy`])).stdout;
  assert.equal(digestOf(raw), digest, 'skopeo copied another manifest');
  for (const blob of [digest, ...blobs]) {
    const bytes = await fs.readFile(path.join(layout, 'blobs', ...blob.split(':')));
    assert.equal(digestOf(bytes), blob, `${layout}: ${blob} is corrupt`);
  }
}

describe('an S3 tree in redirect mode: --base-url repositories go to nginx over a copy-tree of the bucket, the others to presigned URLs', () => {
  let nginx: NginxServer | undefined;
  let server: DerrickServer | undefined;
  const images = new Map<string, { digest: string; blobs: string[] }>();
  const copy = path.join(temp.dir, 'copy');

  const host = (): string => {
    assert.ok(server, 'derrick serve did not start');
    return server.host;
  };
  const web = (): string => {
    assert.ok(nginx, 'nginx did not start');
    return nginx.url;
  };
  const image = (name: string): { digest: string; blobs: string[] } => {
    const found = images.get(name);
    assert.ok(found, `${name} was not published`);
    return found;
  };

  before(async () => {
    // nginx serves the copy's v2/web, which copy-tree fills once the repository is published with nginx's URL.
    mkdirSync(path.join(copy, 'v2', 'web'), { recursive: true });
    nginx = await startNginx(path.join(copy, 'v2', 'web'));
    for (const [name, baseUrl] of [
      ['cdn/app', `${nginx.url}/cdn/app`],
      ['bucket/app', undefined],
    ] as const) {
      const layout = fresh('layout');
      const manifest = await singleImageLayout(layout, 'v1', `content of ${name}`);
      images.set(name, { digest: manifest.digest, blobs: await blobsIn(layout, manifest) });
      await derrick([
        'publish',
        `oci:${layout}:v1`,
        `${name}:v1`,
        '--data-dir',
        tree.location,
        ...(baseUrl === undefined ? [] : ['--base-url', baseUrl]),
      ]);
    }
    await derrick(['copy-tree', tree.location, copy]);
    server = await startDerrickServer(tree.location, { args: ['--mode', 'redirect'], env: tree.env });
  });

  after(async () => {
    const ended = await server?.stop();
    await nginx?.stop();
    if (ended)
      assert.deepEqual(ended, { code: 0, signal: null, killed: false }, 'derrick serve ends cleanly');
    assert.doesNotMatch(server?.output() ?? '', /"level":[56]0/, 'derrick serve logged errors');
  });

  test('a --base-url repository is redirected below its base URL (nginx), the other to the bucket', async () => {
    const bucketUrl = `${tree.env.AWS_ENDPOINT_URL ?? ''}/${tree.bucket ?? ''}/`;
    for (const [name, prefix] of [
      ['cdn/app', `${web()}/cdn/app/`],
      ['bucket/app', bucketUrl],
    ] as const) {
      const { digest, blobs } = image(name);
      for (const [endpoint, reference] of [['manifests', 'v1'], ...blobs.map((blob) => ['blobs', blob])]) {
        const url = `http://${host()}/v2/${name}/${endpoint}/${reference}`;
        const answer = await fetch(url, { redirect: 'manual', headers: { accept: '*/*' } });
        assert.equal(answer.status, 302, `${url}: not redirected`);
        const location = answer.headers.get('location') ?? '';
        assert.ok(location.startsWith(prefix), `${url} → ${location}, not below ${prefix}`);
        const content = await fetch(location);
        assert.equal(content.status, 200, location);
        const expected = endpoint === 'manifests' ? digest : reference;
        assert.equal(digestOf(Buffer.from(await content.arrayBuffer())), expected, location);
      }
    }
  });

  test('skopeo copy and podman pull of both repositories: the published digests, every blob intact', async () => {
    for (const name of ['cdn/app', 'bucket/app']) {
      const { digest, blobs } = image(name);
      const raw = (await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host()}/${name}:v1`]))
        .stdout;
      assert.equal(digestOf(raw), digest, `skopeo inspect --raw ${name}`);
      const layout = fresh('copy-oci');
      await skopeo([
        'copy',
        '--quiet',
        '--src-tls-verify=false',
        `docker://${host()}/${name}:v1`,
        `oci:${layout}:copy`,
      ]);
      await assertOciCopy(layout, digest, blobs);
      const state = fresh('podman');
      const reference = `${host()}/${name}:v1`;
      await podman(state, ['pull', '--quiet', '--tls-verify=false', '--signature-policy', POLICY, reference]);
      const [inspected] = JSON.parse((await podman(state, ['image', 'inspect', reference])).stdout) as {
        Digest: string;
      }[];
      assert.equal(inspected?.Digest, digest, `podman pulled another ${reference}`);
    }
  });
});

describe('containerd (ctr content fetch) from an S3 tree in serve mode', () => {
  let containerd: Containerd | undefined;
  let server: DerrickServer | undefined;
  /** What a fetch of `repository:v1` must store: every digest. */
  const expected = new Map<string, string[]>();

  const ctr = (): Containerd => {
    assert.ok(containerd, 'containerd did not start');
    return containerd;
  };

  before(async () => {
    const singleLayout = fresh('single');
    const single = await singleImageLayout(singleLayout, 'v1', 'containerd from a bucket');
    expected.set('ctr/single', [single.digest, ...(await blobsIn(singleLayout, single))]);
    const multiLayout = fresh('multi');
    const { index, children } = await multiPlatformLayout(multiLayout, 'v1');
    const amd64 = children.find((child) => child.platform?.architecture === 'amd64');
    assert.ok(amd64);
    // ctr fetches the index and the image of its own platform (linux/amd64 here).
    expected.set('ctr/multi', [index.digest, amd64.digest, ...(await blobsIn(multiLayout, amd64))]);
    await derrick(['publish', `oci:${singleLayout}:v1`, 'ctr/single:v1', '--data-dir', tree.location]);
    await derrick(['publish', `oci:${multiLayout}:v1`, 'ctr/multi:v1', '--data-dir', tree.location]);
    [server, containerd] = await Promise.all([
      startDerrickServer(tree.location, { args: ['--mode', 'serve'], env: tree.env }),
      startContainerd(path.join(temp.dir, 'containerd')),
    ]);
  });

  after(async () => {
    const ended = await server?.stop();
    await containerd?.stop();
    if (ended)
      assert.deepEqual(ended, { code: 0, signal: null, killed: false }, 'derrick serve ends cleanly');
    assert.doesNotMatch(server?.output() ?? '', /"level":[56]0/, 'derrick serve logged errors');
  });

  for (const repository of ['ctr/single', 'ctr/multi'])
    test(`${repository}: containerd stores exactly the published manifests and blobs, each checked against its digest`, async () => {
      assert.ok(server, 'derrick serve did not start');
      await ctr().removeContent();
      const fetched = await ctr().ctr([
        'content',
        'fetch',
        '--plain-http',
        `${server.host}/${repository}:v1`,
      ]);
      assert.equal(fetched.code, 0, fetched.stderr);
      // containerd's content store commits a blob only under the digest its bytes hash to.
      assert.deepEqual((await ctr().storedDigests()).sort(), [...(expected.get(repository) ?? [])].sort());
    });
});
