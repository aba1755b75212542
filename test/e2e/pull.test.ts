/**
 * End to end: real clients (skopeo, podman) pull from `derrick serve`, started as the real CLI, over a tree on
 * each back end (BACKENDS: a directory, a bucket of the test S3 server), in both modes — serve (derrick streams
 * the bytes from the tree) and redirect (on a file system derrick sends GETs of manifests and blobs to a real
 * nginx serving the tree's v2/web with test/helpers/nginx.ts's configuration; on S3 to presigned URLs of the
 * bucket). Both modes share one published tree per back end, and every digest a client ends up with is compared
 * with the one derrick published.
 */
import assert from 'node:assert/strict';
import { chmodSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { BACKENDS, freshTree, type BackendName, type TreeSpot } from '../helpers/backends.ts';
import { digestOf, REPO_ROOT, run, runDerrick, tempDir, type RunResult } from '../helpers/cli.ts';
import { containersClientConfig, podmanStateArgs } from '../helpers/containers.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import {
  imageWithReferrerLayout,
  LayoutBuilder,
  MT,
  multiPlatformLayout,
  singleImageLayout,
} from '../helpers/images.ts';
import { NGINX_CONTENT_TYPES, startNginx, type NginxServer } from '../helpers/nginx.ts';

const temp = tempDir('derrick-e2e-');
// nginx started as root reads the tree as `nobody`: every directory above the tree must be searchable.
chmodSync(temp.dir, 0o755);
/** What the trees need undone after the file's tests (a bucket deleted, a directory removed). */
const cleanups: (() => unknown)[] = [];
/** freshTree's `after`, for trees made in a suite's hook: their cleanups run at the end of the file. */
const onCleanup: Pick<TestContext, 'after'> = {
  after: (cleanup) => {
    if (cleanup) cleanups.push(() => cleanup(undefined as never, () => undefined));
  },
};
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  temp.cleanup();
});
let counter = 0;
const fresh = (label: string): string => path.join(temp.dir, `${label}-${++counter}`);

// The clients' configuration, independent of the host's: no search registries, no credentials, any image.
const { policy: POLICY, env: CLIENT_ENV } = containersClientConfig(path.join(temp.dir, 'client-config'));

/** `skopeo [--policy <test policy>] <globals> <args>` */
function skopeo(args: string[], globals: string[] = []): Promise<RunResult> {
  return run('skopeo', ['--policy', POLICY, ...globals, ...args], { env: CLIENT_ENV });
}

/** podman as root with vfs storage and all its state in `dir`. */
function podman(dir: string, args: string[]): Promise<RunResult> {
  return run('podman', [...podmanStateArgs(dir), ...args], { env: CLIENT_ENV });
}

/** The manifest digest and the blobs (config, then layers) of an image. */
interface Image {
  digest: string;
  blobs: string[];
}

interface Published {
  spot: TreeSpot;
  /** e2e/single: one OCI image under three tags. */
  single: Image & { tags: string[] };
  /** e2e/multi:latest: an OCI index of linux/amd64 and linux/arm64/v8. */
  multi: { digest: string; amd64: Image; arm64: Image };
  /** e2e/docker:v1: a Docker schema 2 image (skopeo copy --format v2s2, then publish dir:). */
  docker: Image;
  /** e2e/docker-list:latest: a Docker manifest list of two Docker schema 2 images, amd64 and arm64/v8. */
  dockerList: { digest: string; amd64: Image; arm64: Image };
  /** e2e/signed:1.0 and, untagged, an artifact whose subject it is. */
  signed: { image: string; artifact: string };
  /** demo/hello: the README's demo image. */
  demo: string;
}

function mediaTypeOf(manifest: string | Buffer): string | undefined {
  return (JSON.parse(manifest.toString()) as { mediaType?: string }).mediaType;
}

function blobsOf(manifest: Buffer): string[] {
  const parsed = JSON.parse(manifest.toString('utf8')) as {
    config: { digest: string };
    layers: { digest: string }[];
  };
  return [parsed.config.digest, ...parsed.layers.map((layer) => layer.digest)];
}

const ociBlobPath = (layout: string, digest: string): string =>
  path.join(layout, 'blobs', ...digest.split(':'));
const dirBlobPath = (dir: string, digest: string): string => path.join(dir, digest.replace(/^sha256:/, ''));

async function ociImage(layout: string, digest: string): Promise<Image> {
  return { digest, blobs: blobsOf(await fs.readFile(ociBlobPath(layout, digest))) };
}

interface PublishResult {
  repositories: { name: string; tags: Record<string, string>; untagged: string[] }[];
}

async function publish(spot: TreeSpot, source: string, targets: string[]): Promise<PublishResult> {
  const result = await runDerrick(['publish', source, ...targets, '--data-dir', spot.location, '--json'], {
    env: spot.env,
  });
  assert.equal(result.code, 0, `derrick publish ${source} failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as PublishResult;
}

async function buildTree(backend: BackendName): Promise<Published> {
  const spot = await freshTree(backend, onCleanup);
  // The directory nginx reads a tree on a file system from (its parent is the temp directory freshTree made).
  if (backend === 'fs') chmodSync(path.dirname(spot.location), 0o755);

  // The sources, built offline.
  const singleLayout = fresh('single');
  const singleImage = await singleImageLayout(singleLayout, 'v1', 'e2e single');
  const singleTags = ['v1', 'latest', '1.0'];

  const multiLayout = fresh('multi');
  const { index, children } = await multiPlatformLayout(multiLayout);
  const [amd64, arm64] = children;
  assert.ok(amd64 && arm64?.platform?.architecture === 'arm64');

  const dockerLayout = fresh('docker-oci');
  await singleImageLayout(dockerLayout, 'v1', 'e2e docker');
  const dockerDir = fresh('docker-dir');
  await skopeo(['copy', '--quiet', '--format', 'v2s2', `oci:${dockerLayout}:v1`, `dir:${dockerDir}`]);
  const dockerManifest = await fs.readFile(path.join(dockerDir, 'manifest.json'));
  assert.equal(mediaTypeOf(dockerManifest), MT.dockerManifest);

  const listLayout = fresh('docker-list');
  const builder = new LayoutBuilder(listLayout);
  const listChildren = [
    await builder.image({
      docker: true,
      platform: { os: 'linux', architecture: 'amd64' },
      files: { 'arch.txt': 'docker amd64\n' },
    }),
    await builder.image({
      docker: true,
      platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
      files: { 'arch.txt': 'docker arm64\n' },
    }),
  ];
  const list = builder.index(listChildren, true);
  builder.add(list, 'latest').write();

  const signedLayout = fresh('signed');
  const { image, artifact } = await imageWithReferrerLayout(signedLayout);

  // The README's demo, exactly as scripts/demo.sh publishes it (a path relative to the checkout).
  const demoDigest = digestOf(
    (await skopeo(['inspect', '--raw', `oci:${REPO_ROOT}/demo/hello:latest`])).stdout,
  );

  // Published side by side into one tree, as concurrent publishers may.
  const expected: [string, string[], Record<string, string>][] = [
    [
      `oci:${singleLayout}:v1`,
      singleTags.map((tag) => `e2e/single:${tag}`),
      Object.fromEntries(singleTags.map((tag) => [tag, singleImage.digest])),
    ],
    [`oci:${multiLayout}:latest`, ['e2e/multi:latest'], { latest: index.digest }],
    [`dir:${dockerDir}`, ['e2e/docker:v1'], { v1: digestOf(dockerManifest) }],
    [`oci:${listLayout}:latest`, ['e2e/docker-list:latest'], { latest: list.digest }],
    [`oci:${signedLayout}:latest`, ['e2e/signed:1.0'], { '1.0': image.digest }],
    ['oci:demo/hello:latest', ['demo/hello'], { latest: demoDigest }],
  ];
  const results = await Promise.all(expected.map(([source, targets]) => publish(spot, source, targets)));
  expected.forEach(([source, , tags], i) =>
    assert.deepEqual(results[i]?.repositories[0]?.tags, tags, source),
  );

  return {
    spot,
    single: { ...(await ociImage(singleLayout, singleImage.digest)), tags: singleTags },
    multi: {
      digest: index.digest,
      amd64: await ociImage(multiLayout, amd64.digest),
      arm64: await ociImage(multiLayout, arm64.digest),
    },
    docker: { digest: digestOf(dockerManifest), blobs: blobsOf(dockerManifest) },
    dockerList: {
      digest: list.digest,
      amd64: await ociImage(listLayout, listChildren[0]?.digest ?? ''),
      arm64: await ociImage(listLayout, listChildren[1]?.digest ?? ''),
    },
    signed: { image: image.digest, artifact: artifact.digest },
    demo: demoDigest,
  };
}

const building = new Map<BackendName, Promise<Published>>();
/** The published tree on `backend`, built once by whichever of its suites asks first. */
function publishedTree(backend: BackendName): Promise<Published> {
  const built = building.get(backend) ?? buildTree(backend);
  building.set(backend, built);
  return built;
}

async function assertFileDigest(file: string, digest: string): Promise<void> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch {
    assert.fail(`${digest} was not copied: no ${file}`);
  }
  assert.equal(digestOf(bytes), digest, `${file} does not hash to its digest`);
}

/** An `oci:` copy holds `image` byte for byte: its manifest hashes to the digest, and every blob is there. */
async function assertOciCopy(layout: string, reference: string, image: Image): Promise<void> {
  const raw = (await skopeo(['inspect', '--raw', `oci:${layout}:${reference}`])).stdout;
  assert.equal(digestOf(raw), image.digest, 'the copied manifest is not the published one');
  assert.deepEqual(blobsOf(Buffer.from(raw)), image.blobs);
  for (const blob of image.blobs) await assertFileDigest(ociBlobPath(layout, blob), blob);
}

/** A `dir:` copy holds `image` byte for byte. */
async function assertDirCopy(dir: string, image: Image): Promise<Buffer> {
  const manifest = await fs.readFile(path.join(dir, 'manifest.json'));
  assert.equal(digestOf(manifest), image.digest, 'the copied manifest is not the published one');
  assert.deepEqual(blobsOf(manifest), image.blobs);
  for (const blob of image.blobs) await assertFileDigest(dirBlobPath(dir, blob), blob);
  return manifest;
}

interface Inspect {
  Name: string;
  Digest: string;
  RepoTags: string[];
  Architecture: string;
  Layers: string[];
}

interface PodmanImage {
  Digest: string;
  RepoDigests: string[];
  Architecture: string;
}

for (const backend of BACKENDS) {
  for (const mode of ['serve', 'redirect'] as const) {
    describe(`${backend} tree, derrick serve --mode ${mode}, pulled by skopeo and podman`, () => {
      let tree: Published | undefined;
      let nginx: NginxServer | undefined;
      let server: DerrickServer | undefined;

      const published = (): Published => {
        assert.ok(tree, 'the tree was not published');
        return tree;
      };
      const host = (): string => {
        assert.ok(server, 'derrick serve did not start');
        return server.host;
      };
      const docker = (reference: string): string => `docker://${host()}/${reference}`;
      const inspect = async (reference: string): Promise<Inspect> =>
        JSON.parse((await skopeo(['inspect', '--tls-verify=false', docker(reference)])).stdout) as Inspect;
      const inspectRaw = async (reference: string): Promise<string> =>
        (await skopeo(['inspect', '--raw', '--tls-verify=false', docker(reference)])).stdout;

      before(async () => {
        tree = await publishedTree(backend);
        const args = ['--mode', mode];
        // On S3, redirect mode needs no web server: the bucket's presigned URLs are where the bytes are.
        if (mode === 'redirect' && backend === 'fs') {
          nginx = await startNginx(path.join(tree.spot.location, 'v2', 'web'));
          args.push('--redirect-url', nginx.url);
        }
        server = await startDerrickServer(tree.spot.location, { args, env: tree.spot.env });
        assert.equal(server.mode, mode);
      });

      after(async () => {
        const ended = await server?.stop();
        await nginx?.stop();
        if (!server || !ended) return;
        assert.deepEqual(
          ended,
          { code: 0, signal: null, killed: false },
          'derrick serve ends cleanly on SIGTERM',
        );
        // pino's error (50) and fatal (60) levels: nothing a client did here is the operator's problem.
        assert.doesNotMatch(server.output(), /"level":[56]0/, 'derrick serve logged errors');
      });

      if (mode === 'serve') {
        test('manifests and blobs come from derrick itself', async () => {
          const { single } = published();
          const manifest = await fetch(`http://${host()}/v2/e2e/single/manifests/v1`, {
            redirect: 'manual',
            headers: { accept: MT.ociManifest },
          });
          assert.equal(manifest.status, 200);
          assert.equal(manifest.headers.get('content-type'), MT.ociManifest);
          assert.equal(digestOf(Buffer.from(await manifest.arrayBuffer())), single.digest);
          const layer = single.blobs[1] ?? '';
          const blob = await fetch(`http://${host()}/v2/e2e/single/blobs/${layer}`, { redirect: 'manual' });
          assert.equal(blob.status, 200);
          assert.equal(digestOf(Buffer.from(await blob.arrayBuffer())), layer);
        });
      } else if (backend === 's3') {
        test('GETs of manifests and blobs go to presigned URLs of the bucket, which answer each manifest with its media type; HEADs are answered by derrick', async () => {
          const { single, multi, docker: dockerImage, dockerList, spot } = published();
          const bucketUrl = `${spot.env.AWS_ENDPOINT_URL ?? ''}/${spot.bucket ?? ''}/`;
          const cases: { repository: string; reference: string; mediaType: string; digest: string }[] = [
            { repository: 'e2e/single', reference: 'v1', mediaType: MT.ociManifest, digest: single.digest },
            { repository: 'e2e/multi', reference: 'latest', mediaType: MT.ociIndex, digest: multi.digest },
            {
              repository: 'e2e/docker',
              reference: 'v1',
              mediaType: MT.dockerManifest,
              digest: dockerImage.digest,
            },
            {
              repository: 'e2e/docker-list',
              reference: 'latest',
              mediaType: MT.dockerList,
              digest: dockerList.digest,
            },
            ...single.blobs.map((blob) => ({
              repository: 'e2e/single',
              reference: blob,
              mediaType: 'application/octet-stream',
              digest: blob,
            })),
          ];
          const accept = [MT.ociManifest, MT.ociIndex, MT.dockerManifest, MT.dockerList].join(', ');
          for (const { repository, reference, mediaType, digest } of cases) {
            const endpoint = mediaType === 'application/octet-stream' ? 'blobs' : 'manifests';
            const url = `http://${host()}/v2/${repository}/${endpoint}/${reference}`;
            const head = await fetch(url, { method: 'HEAD', redirect: 'manual', headers: { accept } });
            assert.equal(head.status, 200, `${url}: a HEAD is answered from the record, not redirected`);
            assert.equal(head.headers.get('docker-content-digest'), digest);
            const answer = await fetch(url, { redirect: 'manual', headers: { accept } });
            assert.equal(answer.status, 302, `${url}: not redirected`);
            const location = answer.headers.get('location') ?? '';
            assert.ok(location.startsWith(bucketUrl), `${url} → ${location}, not into ${bucketUrl}`);
            assert.match(location, /[?&]X-Amz-Signature=/, 'the URL is presigned');
            const content = await fetch(location);
            assert.equal(content.status, 200, `the bucket: ${location}`);
            assert.equal(content.headers.get('content-type'), mediaType, `${repository} ${reference}`);
            assert.equal(digestOf(Buffer.from(await content.arrayBuffer())), digest);
          }
          assert.doesNotMatch(
            server?.output() ?? '',
            /redirect\.url is not set/,
            'a warning that does not apply',
          );
        });
      } else {
        test('GETs of manifests and blobs go to nginx, which gives each manifest kind its media type', async () => {
          const { single, multi, docker: dockerImage, dockerList } = published();
          assert.ok(nginx);
          const web = nginx.url;
          type Kind = keyof typeof NGINX_CONTENT_TYPES;
          const cases: { repository: string; reference: string; kind: Kind; digest: string }[] = [
            {
              repository: 'e2e/single',
              reference: 'v1',
              kind: 'manifests/oci-manifest',
              digest: single.digest,
            },
            {
              repository: 'e2e/multi',
              reference: 'latest',
              kind: 'manifests/oci-index',
              digest: multi.digest,
            },
            {
              repository: 'e2e/docker',
              reference: 'v1',
              kind: 'manifests/docker-v2',
              digest: dockerImage.digest,
            },
            {
              repository: 'e2e/docker-list',
              reference: 'latest',
              kind: 'manifests/docker-list',
              digest: dockerList.digest,
            },
            ...single.blobs.map((blob) => ({
              repository: 'e2e/single',
              reference: blob,
              kind: 'blobs' as const,
              digest: blob,
            })),
          ];
          const accept = [MT.ociManifest, MT.ociIndex, MT.dockerManifest, MT.dockerList].join(', ');
          for (const { repository, reference, kind, digest } of cases) {
            const endpoint = kind === 'blobs' ? 'blobs' : 'manifests';
            const url = `http://${host()}/v2/${repository}/${endpoint}/${reference}`;
            const answer = await fetch(url, { redirect: 'manual', headers: { accept } });
            assert.equal(answer.status, 302, `${url}: not redirected`);
            const location = `${web}/${repository}/${kind}/${digest}`;
            assert.equal(answer.headers.get('location'), location);
            const content = await fetch(location);
            assert.equal(content.status, 200, `nginx: ${location}`);
            assert.equal(content.headers.get('content-type'), NGINX_CONTENT_TYPES[kind]);
            assert.equal(digestOf(Buffer.from(await content.arrayBuffer())), digest);
          }
        });
      }

      test('skopeo inspect: each tag has the published digest', async () => {
        const { single, multi, docker: dockerImage, signed } = published();
        const [v1, latest, index, dockerV1, signedImage] = await Promise.all([
          inspect('e2e/single:v1'),
          inspect('e2e/single:latest'),
          inspect('e2e/multi:latest'),
          inspect('e2e/docker:v1'),
          inspect('e2e/signed:1.0'),
        ]);
        assert.equal(v1.Digest, single.digest);
        assert.equal(v1.Name, `${host()}/e2e/single`);
        assert.deepEqual(v1.Layers, single.blobs.slice(1));
        assert.deepEqual(v1.RepoTags, [...single.tags].sort());
        assert.equal(latest.Digest, single.digest);
        assert.equal(index.Digest, multi.digest);
        assert.equal(dockerV1.Digest, dockerImage.digest);
        assert.deepEqual(dockerV1.Layers, dockerImage.blobs.slice(1));
        assert.equal(signedImage.Digest, signed.image);
      });

      test('skopeo inspect --raw: the bytes hash to the published digest, by tag and by digest', async () => {
        const { single, multi, signed } = published();
        const cases: [string, string][] = [
          ['e2e/single:v1', single.digest],
          [`e2e/single@${single.digest}`, single.digest],
          ['e2e/multi:latest', multi.digest],
          [`e2e/multi@${multi.arm64.digest}`, multi.arm64.digest],
          [`e2e/signed@${signed.artifact}`, signed.artifact], // untagged: only its digest reaches it
        ];
        const raws = await Promise.all(cases.map(([reference]) => inspectRaw(reference)));
        cases.forEach(([reference, digest], i) => assert.equal(digestOf(raws[i] ?? ''), digest, reference));
        const index = JSON.parse(raws[2] ?? '') as { mediaType: string; manifests: { digest: string }[] };
        assert.equal(index.mediaType, MT.ociIndex);
        assert.deepEqual(
          index.manifests.map((child) => child.digest),
          [multi.amd64.digest, multi.arm64.digest],
        );
      });

      test('skopeo copy to oci: keeps a single-platform image byte for byte', async () => {
        const { single } = published();
        const destination = fresh('copy-oci');
        await skopeo([
          'copy',
          '--quiet',
          '--src-tls-verify=false',
          docker('e2e/single:v1'),
          `oci:${destination}:v1`,
        ]);
        await assertOciCopy(destination, 'v1', single);
      });

      test('skopeo copy to dir: keeps a single-platform image byte for byte', async () => {
        const { single } = published();
        const destination = fresh('copy-dir');
        await skopeo([
          'copy',
          '--quiet',
          '--src-tls-verify=false',
          docker('e2e/single:1.0'),
          `dir:${destination}`,
        ]);
        await assertDirCopy(destination, single);
      });

      test('skopeo copy --all keeps the index digest and copies both platforms', async () => {
        const { multi } = published();
        const destination = fresh('copy-all');
        await skopeo([
          'copy',
          '--quiet',
          '--all',
          '--src-tls-verify=false',
          docker('e2e/multi:latest'),
          `oci:${destination}:latest`,
        ]);
        const raw = (await skopeo(['inspect', '--raw', `oci:${destination}:latest`])).stdout;
        assert.equal(digestOf(raw), multi.digest, 'the copied index is not the published one');
        for (const child of [multi.amd64, multi.arm64]) {
          await assertFileDigest(ociBlobPath(destination, child.digest), child.digest);
          for (const blob of child.blobs) await assertFileDigest(ociBlobPath(destination, blob), blob);
        }
      });

      test('skopeo copy --override-arch arm64 --override-variant v8 copies the arm64 image', async () => {
        const { multi } = published();
        const destination = fresh('copy-arm64');
        await skopeo(
          [
            'copy',
            '--quiet',
            '--src-tls-verify=false',
            docker('e2e/multi:latest'),
            `oci:${destination}:arm64`,
          ],
          ['--override-arch', 'arm64', '--override-variant', 'v8'],
        );
        await assertOciCopy(destination, 'arm64', multi.arm64);
      });

      test('the Docker schema 2 image keeps its digest and media type', async () => {
        const { docker: image } = published();
        const raw = await inspectRaw('e2e/docker:v1');
        assert.equal(digestOf(raw), image.digest);
        assert.equal(mediaTypeOf(raw), MT.dockerManifest);
        const destination = fresh('copy-docker');
        await skopeo([
          'copy',
          '--quiet',
          '--src-tls-verify=false',
          docker('e2e/docker:v1'),
          `dir:${destination}`,
        ]);
        const manifest = await assertDirCopy(destination, image);
        assert.equal(mediaTypeOf(manifest), MT.dockerManifest);
      });

      test('a Docker manifest list keeps its digest and media type; --override-arch picks its arm64 image', async () => {
        const { dockerList } = published();
        const raw = await inspectRaw('e2e/docker-list:latest');
        assert.equal(digestOf(raw), dockerList.digest);
        assert.equal(mediaTypeOf(raw), MT.dockerList);
        const destination = fresh('copy-docker-arm64');
        await skopeo(
          [
            'copy',
            '--quiet',
            '--src-tls-verify=false',
            docker('e2e/docker-list:latest'),
            `dir:${destination}`,
          ],
          ['--override-arch', 'arm64', '--override-variant', 'v8'],
        );
        const manifest = await assertDirCopy(destination, dockerList.arm64);
        assert.equal(mediaTypeOf(manifest), MT.dockerManifest);
      });

      test('skopeo list-tags lists the tags, sorted', async () => {
        const { single } = published();
        const { stdout } = await skopeo(['list-tags', '--tls-verify=false', docker('e2e/single')]);
        const listed = JSON.parse(stdout) as { Repository: string; Tags: string[] };
        assert.equal(listed.Repository, `${host()}/e2e/single`);
        assert.deepEqual(listed.Tags, [...single.tags].sort());
      });

      test('podman pull: the stored image has the published digest', async () => {
        const { single } = published();
        const state = fresh('podman');
        const reference = `${host()}/e2e/single:v1`;
        await podman(state, [
          'pull',
          '--quiet',
          '--tls-verify=false',
          '--signature-policy',
          POLICY,
          reference,
        ]);
        const [image] = JSON.parse(
          (await podman(state, ['image', 'inspect', reference])).stdout,
        ) as PodmanImage[];
        assert.equal(image?.Digest, single.digest);
        assert.ok(
          image.RepoDigests.includes(`${host()}/e2e/single@${single.digest}`),
          image.RepoDigests.join(),
        );
      });

      test('podman pull of the Docker schema 2 image and of the arm64 image of the index', async () => {
        const { docker: dockerImage, multi } = published();
        const state = fresh('podman');
        const pull = (args: string[]) =>
          podman(state, ['pull', '--quiet', '--tls-verify=false', '--signature-policy', POLICY, ...args]);
        const dockerReference = `${host()}/e2e/docker:v1`;
        const multiReference = `${host()}/e2e/multi:latest`;
        await pull([dockerReference]);
        await pull(['--arch', 'arm64', '--variant', 'v8', multiReference]);
        const images = JSON.parse(
          (await podman(state, ['image', 'inspect', dockerReference, multiReference])).stdout,
        ) as PodmanImage[];
        assert.equal(images[0]?.Digest, dockerImage.digest);
        assert.equal(images[1]?.Architecture, 'arm64');
        assert.equal(images[1].Digest, multi.digest, 'podman records the digest of what it was asked for');
        for (const digest of [multi.digest, multi.arm64.digest])
          assert.ok(
            images[1].RepoDigests.includes(`${host()}/e2e/multi@${digest}`),
            `${digest} is not among ${images[1].RepoDigests.join(', ')}`,
          );
      });

      test("the README's demo: skopeo inspect docker://<host>/demo/hello", async () => {
        const { demo } = published();
        const inspected = await inspect('demo/hello');
        assert.equal(inspected.Digest, demo);
        assert.deepEqual(inspected.RepoTags, ['latest']);
      });
    });
  }
}
