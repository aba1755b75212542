/**
 * End to end: three stateless `derrick serve` replicas over ONE tree, behind Debian's haproxy with the
 * configuration docs/storage.md shows (read from there), behave as one registry. Publishes are answered at the
 * very next request by every replica, asked directly, while skopeo and podman pull through the balancer; a replica
 * killed with SIGKILL under load costs no client a wrong byte (every body is hashed against its digest), and
 * nothing sent after it died fails. In both modes: serve (bytes from the tree) and redirect (bytes from nginx, or
 * from the back end's own URLs).
 *
 * The tree's location is a parameter (TREES): the test touches the tree only through the derrick CLI (publish,
 * unpublish) and HTTP, never through the file system, so the same test runs over any back end.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { digestOf, run, runDerrick, tempDir, type RunResult } from '../helpers/cli.ts';
import { containersClientConfig, podmanStateArgs } from '../helpers/containers.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { startHaproxy, type Haproxy } from '../helpers/haproxy.ts';
import { LayoutBuilder, MT } from '../helpers/images.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';

/** Where the one tree lives, as every derrick command takes it. */
interface TreeLocation {
  name: string;
  /** `--data-dir`: a directory, or `s3://bucket/prefix`. */
  dataDir: string;
  /** What every derrick process gets besides the test's environment (endpoint, credentials…). */
  env?: Record<string, string>;
  /**
   * Redirect mode's target, for a tree on a file system: the directory nginx serves (the tree's `v2/web`; nginx
   * reads it, the test does not). Without it redirect mode uses the back end's own URLs (presigned).
   */
  webRoot?: string;
}

const temp = tempDir('derrick-replicas-');
// nginx started as root reads the tree as `nobody`: every directory above the tree must be searchable.
chmodSync(temp.dir, 0o755);
after(() => temp.cleanup());
let counter = 0;
const fresh = (label: string): string => path.join(temp.dir, `${label}-${++counter}`);

// The places the one tree may live. An S3 bucket is one more entry, `{ name: 's3', dataDir: 's3://bucket/prefix',
// env: { AWS_ENDPOINT_URL, … } }`, with no webRoot: its redirect mode sends clients to the bucket's own URLs.
const fsTree = path.join(temp.dir, 'tree');
const TREES: TreeLocation[] = [{ name: 'fs', dataDir: fsTree, webRoot: path.join(fsTree, 'v2', 'web') }];

const REPLICAS = 3;
/** Publishes while the clients pull. */
const PUBLISHES = 4;
/** GETs through haproxy while a replica is killed, how many at once, and after how many it is killed. */
const LOAD_REQUESTS = 240;
const LOAD_CONCURRENCY = 12;
const KILL_AFTER = 60;
const LOAD_ATTEMPTS = 4;

const { policy: POLICY, env: CLIENT_ENV } = containersClientConfig(path.join(temp.dir, 'client-config'));
const skopeo = (args: string[]): Promise<RunResult> =>
  run('skopeo', ['--policy', POLICY, ...args], { env: CLIENT_ENV });
const podman = (dir: string, args: string[]): Promise<RunResult> =>
  run('podman', [...podmanStateArgs(dir), ...args], { env: CLIENT_ENV });

/** An image as published: its manifest's digest and its blobs (config, then layers). */
interface Image {
  digest: string;
  blobs: string[];
}

/** Builds an OCI layout (outside the tree) with one image named `latest`: `files` are its one layer. */
async function buildImage(files: Record<string, string | Buffer>): Promise<{ layout: string; image: Image }> {
  const layout = fresh('layout');
  const builder = new LayoutBuilder(layout);
  const manifest = await builder.image({ files });
  builder.add(manifest, 'latest').write();
  const parsed = JSON.parse(
    await fs.readFile(path.join(layout, 'blobs', ...manifest.digest.split(':')), 'utf8'),
  ) as { config: { digest: string }; layers: { digest: string }[] };
  return {
    layout,
    image: { digest: manifest.digest, blobs: [parsed.config.digest, ...parsed.layers.map((l) => l.digest)] },
  };
}

async function publish(tree: TreeLocation, layout: string, targets: string[]): Promise<void> {
  const result = await runDerrick(
    ['publish', `oci:${layout}:latest`, ...targets, '--data-dir', tree.dataDir],
    {
      ...(tree.env ? { env: tree.env } : {}),
    },
  );
  assert.equal(result.code, 0, `derrick publish ${targets.join(' ')} failed: ${result.stderr}`);
}

async function unpublish(tree: TreeLocation, target: string): Promise<void> {
  const result = await runDerrick(['unpublish', target, '--data-dir', tree.dataDir], {
    ...(tree.env ? { env: tree.env } : {}),
  });
  assert.equal(result.code, 0, `derrick unpublish ${target} failed: ${result.stderr}`);
}

const ACCEPT = [MT.ociManifest, MT.ociIndex, MT.dockerManifest, MT.dockerList].join(', ');

/** What `base` answers for a HEAD of `repository:tag`: the digest it names, or the status. */
async function headDigest(base: string, repository: string, tag: string): Promise<string> {
  const answer = await fetch(`${base}/v2/${repository}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: ACCEPT },
  });
  if (answer.status !== 200) return `HTTP ${answer.status}`;
  return answer.headers.get('docker-content-digest') ?? 'no Docker-Content-Digest';
}

/** What `base` answers for a GET of `repository:tag`, redirects followed: the digest of the body, or the status. */
async function bodyDigest(base: string, repository: string, tag: string): Promise<string> {
  const answer = await fetch(`${base}/v2/${repository}/manifests/${tag}`, { headers: { accept: ACCEPT } });
  if (answer.status !== 200) return `HTTP ${answer.status}`;
  return digestOf(Buffer.from(await answer.arrayBuffer()));
}

async function tagList(base: string, repository: string): Promise<string[] | string> {
  const answer = await fetch(`${base}/v2/${repository}/tags/list`);
  if (answer.status !== 200) return `HTTP ${answer.status}`;
  return ((await answer.json()) as { tags: string[] }).tags;
}

/** The image a skopeo copy into an `oci:` layout holds, every file hashed against its digest. */
async function assertLayoutHolds(layout: string, image: Image): Promise<void> {
  const file = (digest: string): string => path.join(layout, 'blobs', ...digest.split(':'));
  const raw = (await skopeo(['inspect', '--raw', `oci:${layout}:copy`])).stdout;
  assert.equal(digestOf(raw), image.digest, 'skopeo copied another manifest');
  for (const digest of [image.digest, ...image.blobs])
    assert.equal(digestOf(await fs.readFile(file(digest))), digest, `${layout}: ${digest} is corrupt`);
}

for (const tree of TREES) {
  for (const mode of ['serve', 'redirect'] as const) {
    describe(`${tree.name} tree, ${REPLICAS} replicas behind haproxy, --mode ${mode}`, () => {
      const repository = `replicas/${mode}`;
      let replicas: DerrickServer[] = [];
      let haproxy: Haproxy | undefined;
      let nginx: NginxServer | undefined;
      let base: Image | undefined;
      /** The images published during the tests: `v<i>` → image. */
      const versions = new Map<string, Image>();
      let killed: DerrickServer | undefined;

      const balancer = (): Haproxy => {
        assert.ok(haproxy, 'haproxy did not start');
        return haproxy;
      };
      const baseImage = (): Image => {
        assert.ok(base, 'the base image was not published');
        return base;
      };
      const alive = (): DerrickServer[] => replicas.filter((replica) => replica !== killed);
      /** Every address a client may reach the registry at: each live replica directly, and haproxy. */
      const everyAddress = (): { name: string; url: string }[] => [
        ...alive().map((replica) => ({ name: `replica ${replica.host}`, url: replica.url })),
        { name: 'haproxy', url: balancer().url },
      ];

      /**
       * Publishes `tag` and `latest` to a new image and asks every address at once, right after the publish
       * returned (HEAD by the new tag, GET of the moved `latest` with its body hashed, the tag list): what each
       * answers that is not that image is a miss.
       */
      async function publishAndAsk(tag: string): Promise<string[]> {
        const { layout, image } = await buildImage({ 'version.txt': `${mode} ${tag}\n` });
        await publish(tree, layout, [`${repository}:${tag}`, `${repository}:latest`]);
        versions.set(tag, image);
        const misses: string[] = [];
        await Promise.all(
          everyAddress().map(async ({ name, url }) => {
            const [byTag, latest, tags] = await Promise.all([
              headDigest(url, repository, tag),
              bodyDigest(url, repository, 'latest'),
              tagList(url, repository),
            ]);
            if (byTag !== image.digest) misses.push(`${name}: ${tag} → ${byTag}, not ${image.digest}`);
            if (latest !== image.digest) misses.push(`${name}: latest → ${latest}, not ${image.digest}`);
            if (!Array.isArray(tags) || !tags.includes(tag))
              misses.push(`${name}: tags/list ${JSON.stringify(tags)} lacks ${tag}`);
          }),
        );
        return misses;
      }

      before(async () => {
        // The base image: one ~2 MiB layer, so that a kill finds blobs in flight.
        const built = await buildImage({ 'noise.bin': randomBytes(2 * 1024 * 1024), 'hello.txt': 'base\n' });
        await publish(tree, built.layout, [`${repository}:base`]);
        base = built.image;

        const args = ['--mode', mode, '--workers', '1'];
        if (mode === 'redirect' && tree.webRoot) {
          nginx = await startNginx(tree.webRoot);
          args.push('--redirect-url', nginx.url);
        }
        const env = tree.env ? { env: tree.env } : {};
        const started = await Promise.allSettled(
          Array.from({ length: REPLICAS }, () => startDerrickServer(tree.dataDir, { args, ...env })),
        );
        replicas = started.flatMap((start) => (start.status === 'fulfilled' ? [start.value] : []));
        for (const start of started) if (start.status === 'rejected') throw start.reason;
        for (const replica of replicas) assert.equal(replica.mode, mode);
        haproxy = await startHaproxy(
          replicas.map((replica, i) => ({ name: `derrick${i + 1}`, address: replica.host })),
        );
        // Every replica has passed a health check on /v2/ before the first request.
        for (let i = 1; i <= REPLICAS; i++)
          await haproxy.waitForServer(`derrick${i}`, (stat) => stat.status === 'UP' && stat.check === 'L7OK');
      });

      after(async () => {
        await haproxy?.stop();
        const ended = await Promise.all(alive().map((replica) => replica.stop()));
        await killed?.stop();
        await nginx?.stop();
        for (const [i, end] of ended.entries()) {
          assert.deepEqual(
            end,
            { code: 0, signal: null, killed: false },
            'a replica ends cleanly on SIGTERM',
          );
          // pino's error (50) and fatal (60) levels: nothing here is the operator's problem.
          assert.doesNotMatch(alive()[i]?.output() ?? '', /"level":[56]0/, 'a replica logged errors');
        }
      });

      test('haproxy sends requests round-robin to every replica, and each answers from the one tree', async () => {
        const earlier = await balancer().stats();
        const digests = await Promise.all(
          Array.from({ length: 6 * REPLICAS }, () => headDigest(balancer().url, repository, 'base')),
        );
        assert.deepEqual(new Set(digests), new Set([baseImage().digest]));
        const later = await balancer().stats();
        for (let i = 1; i <= REPLICAS; i++) {
          const sessions = (stats: typeof earlier): number =>
            stats.find((stat) => stat.name === `derrick${i}`)?.sessions ?? 0;
          assert.ok(sessions(later) > sessions(earlier), `derrick${i} took none of the requests`);
        }
      });

      test('while skopeo and podman pull through haproxy, every publish is answered at the very next request by every replica, and every pull has the published digests', async (t) => {
        /** Tags every address has answered, oldest first: the base image until a version is out. */
        const out: [string, Image][] = [['base', baseImage()]];
        const progress = { publishing: true, announce: () => {} };
        let announced = new Promise<void>((resolve) => (progress.announce = resolve));
        const announce = (): void => {
          const wake = progress.announce;
          announced = new Promise<void>((resolve) => (progress.announce = resolve));
          wake();
        };
        const pulled: string[] = [];

        /** Pulls the newest tag out, then waits for a newer one, until the publishes are done. */
        const puller = async (client: string, pull: (tag: string, image: Image) => Promise<void>) => {
          for (let seen = 0; ;) {
            if (seen === out.length) {
              if (!progress.publishing) return;
              await announced;
              continue;
            }
            seen = out.length;
            const [tag, image] = out[seen - 1] ?? ['base', baseImage()];
            await pull(tag, image);
            pulled.push(`${client} ${tag}`);
          }
        };
        const skopeoPulls = puller('skopeo', async (tag, image) => {
          const layout = fresh('skopeo');
          await skopeo([
            'copy',
            '--quiet',
            '--src-tls-verify=false',
            `docker://${balancer().host}/${repository}:${tag}`,
            `oci:${layout}:copy`,
          ]);
          await assertLayoutHolds(layout, image);
        });
        const podmanState = fresh('podman');
        const podmanPulls = puller('podman', async (tag, image) => {
          const reference = `${balancer().host}/${repository}:${tag}`;
          await podman(podmanState, [
            'pull',
            '--quiet',
            '--tls-verify=false',
            '--signature-policy',
            POLICY,
            reference,
          ]);
          const [inspected] = JSON.parse(
            (await podman(podmanState, ['image', 'inspect', reference])).stdout,
          ) as {
            Digest: string;
          }[];
          assert.equal(inspected?.Digest, image.digest, `podman pulled another ${reference}`);
        });

        // Settled handlers at once: a pull that fails is reported after the publishes, not as an unhandled rejection.
        const pulls = Promise.allSettled([skopeoPulls, podmanPulls]);
        const misses: string[] = [];
        try {
          for (let i = 1; i <= PUBLISHES; i++) {
            const tag = `v${i}`;
            const missed = await publishAndAsk(tag);
            misses.push(...missed);
            const image = versions.get(tag);
            if (image && missed.length === 0) out.push([tag, image]);
            announce();
          }
        } finally {
          progress.publishing = false;
          announce();
        }
        assert.deepEqual(misses, [], 'an address answered something else than the publish just made');
        for (const pull of await pulls) if (pull.status === 'rejected') throw pull.reason;
        assert.ok(pulled.includes(`skopeo v${PUBLISHES}`), 'skopeo did not pull the last publish');
        assert.ok(pulled.includes(`podman v${PUBLISHES}`), 'podman did not pull the last publish');
        t.diagnostic(`pulled through haproxy while publishing: ${pulled.join(', ')}`);
      });

      test('an unpublished tag is answered 404 at the very next request by every replica, the other tags as before', async () => {
        const [v1, v2] = [versions.get('v1'), versions.get('v2')];
        assert.ok(v1 && v2, 'v1 and v2 were not published');
        const ask = (): Promise<{ name: string; v1: string; v2: string; tags: string[] | string }[]> =>
          Promise.all(
            everyAddress().map(async ({ name, url }) => ({
              name,
              v1: await headDigest(url, repository, 'v1'),
              v2: await headDigest(url, repository, 'v2'),
              tags: await tagList(url, repository),
            })),
          );
        // Every replica has the record with v1 in hand before the unpublish.
        for (const answer of await ask()) assert.equal(answer.v1, v1.digest, `${answer.name} lacks v1`);
        await unpublish(tree, `${repository}:v1`);
        for (const { name, v1: head, v2: other, tags } of await ask()) {
          assert.equal(head, 'HTTP 404', `${name} still answers v1`);
          assert.ok(Array.isArray(tags) && !tags.includes('v1'), `${name} still lists v1: ${String(tags)}`);
          assert.equal(other, v2.digest, `${name} lost v2`);
        }
      });

      test('kill -9 of a replica under load: every GET through haproxy is answered in full and hashes to its digest, none sent after it died fails, and skopeo copy goes on', async (t) => {
        const image = baseImage();
        const [config = '', layer = ''] = image.blobs;
        const other = versions.get(`v${PUBLISHES}`) ?? image;
        // Manifests by tag and by digest, the config, the large layer, another image: what a pull asks.
        const targets: { path: string; digest: string }[] = [
          { path: `manifests/base`, digest: image.digest },
          { path: `blobs/${layer}`, digest: layer },
          { path: `manifests/${image.digest}`, digest: image.digest },
          { path: `blobs/${layer}`, digest: layer },
          { path: `blobs/${config}`, digest: config },
          { path: `manifests/${other.digest}`, digest: other.digest },
          ...other.blobs.map((blob) => ({ path: `blobs/${blob}`, digest: blob })),
        ];
        const victim = replicas[1];
        assert.ok(victim);
        const victimName = 'derrick2';

        /** 'before' the kill; 'killing' once SIGKILL is sent; 'dead' once the process is gone. */
        let phase: 'before' | 'killing' | 'dead' = 'before';
        let inFlight = 0;
        let completed = 0;
        let inFlightAtKill = 0;
        const corrupt: string[] = [];
        const failures: { request: number; phase: string; error: string }[] = [];
        const unanswered: number[] = [];
        let kill: Promise<unknown> | undefined;

        const fetchOnce = async (request: number): Promise<boolean> => {
          const target = targets[request % targets.length];
          assert.ok(target);
          const sentIn = phase;
          inFlight++;
          try {
            const answer = await fetch(`${balancer().url}/v2/${repository}/${target.path}`, {
              headers: { accept: ACCEPT },
            });
            if (answer.status !== 200) throw new Error(`HTTP ${answer.status}`);
            const body = Buffer.from(await answer.arrayBuffer());
            const digest = digestOf(body);
            if (digest !== target.digest) {
              corrupt.push(`${target.path}: ${body.length} bytes hashing to ${digest}`);
              return false;
            }
            return true;
          } catch (error) {
            failures.push({ request, phase: sentIn, error: String(error) });
            return false;
          } finally {
            inFlight--;
          }
        };
        const load = async (queue: number[]): Promise<void> => {
          for (let request = queue.pop(); request !== undefined; request = queue.pop()) {
            let ok = false;
            for (let attempt = 1; attempt <= LOAD_ATTEMPTS && !ok; attempt++) ok = await fetchOnce(request);
            if (!ok) unanswered.push(request);
            // Under load, and while a skopeo copy is running.
            if (++completed >= KILL_AFTER && phase === 'before' && copies.running) {
              inFlightAtKill = inFlight;
              phase = 'killing';
              process.kill(victim.pid, 'SIGKILL');
              killed = victim;
              kill = victim.stop().then((end) => {
                phase = 'dead';
                return end;
              });
            }
          }
        };

        // skopeo copies back to back (retrying as clients do) until the load is over, each checked.
        const copies = { running: false, done: 0, loadOver: false };
        const skopeoCopies = (async () => {
          for (let n = 0; n < 10 && (n === 0 || !copies.loadOver); n++) {
            const copy = fresh('skopeo-under-kill');
            copies.running = true;
            await skopeo([
              'copy',
              '--quiet',
              '--retry-times',
              '3',
              '--src-tls-verify=false',
              `docker://${balancer().host}/${repository}:base`,
              `oci:${copy}:copy`,
            ]).finally(() => (copies.running = false));
            await assertLayoutHolds(copy, image);
            copies.done++;
          }
        })();
        const copied = Promise.allSettled([skopeoCopies]);
        const queue = Array.from({ length: LOAD_REQUESTS }, (_, i) => LOAD_REQUESTS - 1 - i);
        await Promise.all(Array.from({ length: LOAD_CONCURRENCY }, () => load(queue)));
        copies.loadOver = true;
        for (const copy of await copied) if (copy.status === 'rejected') throw copy.reason;
        assert.notEqual(phase, 'before', 'the load ended before a replica could be killed under it');
        const ended = await kill;

        t.diagnostic(
          `${LOAD_REQUESTS} GETs, ${inFlightAtKill} in flight at the kill, ${copies.done} skopeo copies; failed attempts: ` +
            `${failures.length} (${failures.map((f) => `#${f.request} sent ${f.phase}: ${f.error}`).join('; ')})`,
        );
        assert.deepEqual(
          ended,
          { code: null, signal: 'SIGKILL', killed: false },
          'the replica died of SIGKILL',
        );
        assert.ok(inFlightAtKill > 0, 'no request was in flight at the kill');
        const victimStats = (await balancer().stats()).find((stat) => stat.name === victimName);
        assert.ok((victimStats?.sessions ?? 0) > 0, 'the killed replica had taken none of the load');
        assert.deepEqual(corrupt, [], 'a body did not hash to its digest');
        assert.deepEqual(unanswered, [], `requests not answered in ${LOAD_ATTEMPTS} attempts`);
        assert.deepEqual(
          failures.filter((failure) => failure.phase === 'dead'),
          [],
          'a request sent after the replica died failed: haproxy did not retry it elsewhere',
        );
        // And the health checks take it out.
        await balancer().waitForServer(victimName, (stat) => stat.status === 'DOWN');
      });

      test('with a replica dead, a publish is answered at the very next request by haproxy and every live replica', async () => {
        assert.ok(killed, 'no replica was killed');
        assert.deepEqual(await publishAndAsk('after-kill'), []);
      });
    });
  }
}
