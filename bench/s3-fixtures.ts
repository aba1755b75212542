/**
 * The S3 benchmarks' fixtures: the same repositories as the file-system trees of bench/fixtures.ts, in a bucket
 * for derrick and in a bucket for docker-registry, written straight into the buckets (10,000 pushes through
 * docker-registry would take most of an hour).
 *
 * - derrick (`bench-derrick`): each generated tree `<workDir>/tree-<n>` and the main tree are uploaded file by
 *   file under a prefix (`tree-<n>/`, `main/`) — the very bytes of the file-system trees, the keys being their
 *   paths (src/store/keys.ts: `v2/app/<name>.json`, `v2/content/…`, `v2/web/…`).
 * - docker-registry (`bench-registry`, `rootdirectory: /r-<n>`): the storage layout distribution 2.x writes for a
 *   push (registry/storage/paths.go), one repository per generated name, each with the small image under the tag
 *   `latest`:
 *
 *     docker/registry/v2/blobs/sha256/<hex[0:2]>/<hex>/data                           manifest, config and layer
 *     docker/registry/v2/repositories/<name>/_layers/sha256/<hex>/link                config and layer, per repo
 *     docker/registry/v2/repositories/<name>/_manifests/revisions/sha256/<hex>/link   the manifest
 *     docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link       the tag
 *     docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/index/sha256/<hex>/link
 *
 *   every link holding the digest as text, as linkedblobstore.go's linkBlob and tagstore.go's Tag write it. Its
 *   catalog walks `repositories/` and lists a directory holding `_layers` (catalog.go, handleRepository).
 *
 * A marker object under each prefix records what was written (the template record's digest and the count), so a
 * reused RGW keeps its fixtures from one run to the next.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { generatedName, layoutsOf } from './fixtures.ts';
import { deletePrefix, ensureBucket, getText, putAll, uploadTree, type PutItem } from './s3-store.ts';
import { count, log } from './summary.ts';
import type { Fixtures } from './types.ts';

export const DERRICK_BUCKET = 'bench-derrick';
export const REGISTRY_BUCKET = 'bench-registry';
const MARKER = '.bench-fixture';
/** Bump when what the writers below produce changes, so that old fixtures in a reused RGW are rewritten. */
const FORMAT = 1;

/** Where each tree is, in the buckets. */
export interface S3Fixtures {
  /** `s3://bench-derrick/<prefix>` of each generated tree, by repository count. */
  derrickTrees: Map<number, string>;
  /** `s3://bench-derrick/main`: the main tree (without the 1 GiB image). */
  derrickMain: string;
  /** docker-registry's `rootdirectory` in bench-registry for each generated tree, by repository count. */
  registryRoots: Map<number, string>;
}

interface SmallImage {
  manifest: { digest: string; mediaType: string; bytes: Buffer };
  blobs: { digest: string; bytes: Buffer }[];
}

/** The small image of the layout (bench/fixtures.ts smallLayout): its manifest, config and layers. */
async function readSmallImage(layout: string): Promise<SmallImage> {
  const blob = (digest: string) => fs.readFile(path.join(layout, 'blobs', 'sha256', digest.slice(7)));
  const index = JSON.parse(await fs.readFile(path.join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string; mediaType: string }[];
  };
  const top = index.manifests[0];
  if (!top) throw new Error(`bench: ${layout} has no manifest`);
  const bytes = await blob(top.digest);
  const manifest = JSON.parse(bytes.toString()) as {
    config: { digest: string };
    layers: { digest: string }[];
  };
  const digests = [manifest.config.digest, ...manifest.layers.map((layer) => layer.digest)];
  return {
    manifest: { digest: top.digest, mediaType: top.mediaType, bytes },
    blobs: await Promise.all(digests.map(async (digest) => ({ digest, bytes: await blob(digest) }))),
  };
}

function hexOf(digest: string): string {
  return digest.slice('sha256:'.length);
}

/** The objects a push of `image` as `name:tag` leaves in distribution's storage (blobs not included). */
export function registryLinks(root: string, name: string, tag: string, image: SmallImage): PutItem[] {
  const repo = `${root}docker/registry/v2/repositories/${name}`;
  const { digest } = image.manifest;
  return [
    ...image.blobs.map((blob) => ({
      key: `${repo}/_layers/sha256/${hexOf(blob.digest)}/link`,
      body: blob.digest,
    })),
    { key: `${repo}/_manifests/revisions/sha256/${hexOf(digest)}/link`, body: digest },
    { key: `${repo}/_manifests/tags/${tag}/index/sha256/${hexOf(digest)}/link`, body: digest },
    { key: `${repo}/_manifests/tags/${tag}/current/link`, body: digest },
  ];
}

function registryBlobs(root: string, image: SmallImage): PutItem[] {
  return [image.manifest, ...image.blobs].map((blob) => ({
    key: `${root}docker/registry/v2/blobs/sha256/${hexOf(blob.digest).slice(0, 2)}/${hexOf(blob.digest)}/data`,
    body: blob.bytes,
  }));
}

/** Writes `work` under `prefix` unless the marker there already says `fingerprint`; clears the prefix first. */
async function once(
  client: S3Client,
  bucket: string,
  prefix: string,
  fingerprint: string,
  what: string,
  work: () => Promise<number>,
): Promise<void> {
  if ((await getText(client, bucket, `${prefix}${MARKER}`)) === fingerprint) {
    log(`S3 fixtures: ${what} already in s3://${bucket}/${prefix}`);
    return;
  }
  const started = Date.now();
  const removed = await deletePrefix(client, bucket, prefix);
  const written = await work();
  await putAll(client, bucket, [{ key: `${prefix}${MARKER}`, body: fingerprint }]);
  log(
    `S3 fixtures: ${what} into s3://${bucket}/${prefix}: ${count(written)} objects in ${((Date.now() - started) / 1000).toFixed(1)} s${removed > 0 ? ` (${count(removed)} old ones removed first)` : ''}`,
  );
}

function fingerprint(...parts: (string | number)[]): string {
  return createHash('sha256')
    .update(JSON.stringify([FORMAT, ...parts]))
    .digest('hex');
}

/** A record's hash, its `updatedAt` left out (it changes at every build of the same tree). */
async function recordHash(file: string): Promise<string> {
  const text = (await fs.readFile(file, 'utf8')).replace(/"updatedAt":\s*"[^"]*"/, '');
  return createHash('sha256').update(text).digest('hex');
}

/** The file-system tree's bytes that identify it: its template record (org-0/repo-0) and its size. */
async function treeFingerprint(dataDir: string, repositories: number): Promise<string> {
  const record = await recordHash(path.join(dataDir, 'v2', 'app', `${generatedName(0)}.json`));
  return fingerprint('tree', repositories, record);
}

/**
 * Puts the trees of `fixtures` whose repository count is in `sizes` (and the main tree) into the buckets, for
 * derrick and for docker-registry.
 */
export async function buildS3Fixtures(
  client: S3Client,
  fixtures: Fixtures,
  sizes: readonly number[],
): Promise<S3Fixtures> {
  await ensureBucket(client, DERRICK_BUCKET);
  await ensureBucket(client, REGISTRY_BUCKET);
  const image = await readSmallImage(layoutsOf(fixtures).small);
  const result: S3Fixtures = {
    derrickTrees: new Map(),
    derrickMain: `s3://${DERRICK_BUCKET}/main`,
    registryRoots: new Map(),
  };
  for (const tree of fixtures.trees.filter((tree) => sizes.includes(tree.repositories))) {
    const n = tree.repositories;
    const print = await treeFingerprint(tree.dataDir, n);
    await once(client, DERRICK_BUCKET, `tree-${n}/`, print, `derrick's ${count(n)}-repository tree`, () =>
      uploadTree(client, DERRICK_BUCKET, `tree-${n}/`, tree.dataDir),
    );
    result.derrickTrees.set(n, `s3://${DERRICK_BUCKET}/tree-${n}`);

    const root = `r-${n}/`;
    const registryPrint = fingerprint('registry', n, image.manifest.digest);
    await once(
      client,
      REGISTRY_BUCKET,
      root,
      registryPrint,
      `docker-registry's ${count(n)} repositories`,
      async () => {
        const items = registryBlobs(root, image);
        for (let i = 0; i < n; i++) items.push(...registryLinks(root, generatedName(i), 'latest', image));
        await putAll(client, REGISTRY_BUCKET, items);
        return items.length;
      },
    );
    result.registryRoots.set(n, `/r-${n}`);
  }
  // The main tree: tags/list's repositories (and the rest, but the 1 GiB image).
  const mainRecord = await recordHash(path.join(fixtures.dataDir, 'v2', 'app', `${fixtures.tags10k}.json`));
  const mainPrint = fingerprint('main', mainRecord);
  const big = fixtures.blob1GiB;
  const skip = (file: string): boolean =>
    big !== undefined &&
    (file === `v2/content/sha256/${hexOf(big.digest)}` ||
      file === `v2/app/${big.name}.json` ||
      file.startsWith(`v2/web/${big.name}/`));
  await once(client, DERRICK_BUCKET, 'main/', mainPrint, "derrick's main tree", () =>
    uploadTree(client, DERRICK_BUCKET, 'main/', fixtures.dataDir, skip),
  );
  return result;
}
