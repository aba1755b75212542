/**
 * `derrick publish`: lays images from a source into the published tree.
 *
 * Phase A (nothing visible changes): register as a running publisher (so gc leaves alone what we are about to
 * reference), read and verify the whole manifest graph, and stage every blob and manifest the content store lacks
 * (backend.ts: into staging, or the parts of unfinished uploads), each verified against its digest, `jobs` blobs at
 * once (copy-blobs.ts). Any bad byte, missing blob, full disk or read-only tree stops here and only our own staged
 * bytes are thrown away. (From a registry, each verified blob is committed at once instead, still invisible, so
 * that a publish killed with `kill -9` resumes without fetching it again: copy-blobs.ts.)
 * Phase B: commit the staged content under its content addresses, link it under each repository's v2/web, then
 * merge into its record with a compare-and-swap (read and merged again when another publisher got there first):
 * the one step that makes the publish visible.
 *
 * An abort (the CLI's SIGINT/SIGTERM) is honoured through phase A — it stops a copy mid-stream, and the publish
 * ends in PublishInterruptedError with only its own staging files removed — and ignored once phase B has begun:
 * a commit that has started finishes, so "nothing was published" is never said of a publish that was.
 */
import { Readable } from 'node:stream';
import { validateName, validateTag } from '../oci/names.ts';
import type { ManifestMediaType } from '../oci/media-types.ts';
import type { Pending } from '../store/backend.ts';
import { blobLinkKey, contentKey, manifestLinkKey } from '../store/keys.ts';
import { derrickRecordSchema, type ManifestEntry } from '../store/record-schema.ts';
import { emptyRepository } from '../store/record.ts';
import type { Tree } from '../store/tree.ts';
import { atOnce } from './at-once.ts';
import { collect, type Collected, type CollectedManifest } from './collect.ts';
import { copyBlobs } from './copy-blobs.ts';
import type { PlatformSpec } from './platforms.ts';
import type { Progress } from './progress.ts';
import { SourceError, type ImageSource, type SourceManifest } from './source.ts';

export class PublishError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PublishError';
  }
}

/** The publish was stopped (its signal aborted) before anything was committed: the tree is as it was. */
export class PublishInterruptedError extends Error {
  constructor() {
    super('interrupted: nothing was published');
    this.name = 'PublishInterruptedError';
  }
}

export interface Destination {
  name: string;
  tags: string[];
}

export interface PublishOptions {
  tree: Tree;
  /** Opens the source; called after registration so gc never removes what the source stages. */
  openSource: () => Promise<ImageSource>;
  destinations: Destination[];
  allTags: boolean;
  baseUrl: string | undefined;
  protected: boolean | undefined;
  lockTimeoutMs: number;
  progress: Progress;
  /** Stops the publish while nothing is committed yet (see above); the source should get it too. */
  signal?: AbortSignal;
  /** Called when `signal` aborts too late, once phase B has begun: the publish will complete. */
  onLateAbort?: () => void;
  /** Keep only these platforms of an index root (`--platform`, platforms.ts); every child when not given. */
  platforms?: readonly PlatformSpec[];
  /** Blobs copied at once (`--jobs`), JOBS_MIN..JOBS_MAX; DEFAULT_JOBS when not given. */
  jobs?: number;
}

export const DEFAULT_JOBS = 4;
export const JOBS_MIN = 1;
export const JOBS_MAX = 32;

export interface PublishResult {
  source: string;
  repositories: { name: string; tags: Record<string, string>; untagged: string[] }[];
  manifests: number;
  blobsCopied: number;
  blobsReused: number;
  bytesCopied: number;
  /** Non-distributable layers the source did not carry: recorded in manifests, fetched by clients from `urls`. */
  foreignLayers: string[];
}

/** Checks names and tags before anything is opened or written. */
export function validateDestinations(destinations: Destination[], allTags: boolean): void {
  if (destinations.length === 0)
    throw new PublishError('name the repository to publish into: <name>[:<tag>]');
  for (const { name, tags } of destinations) {
    const nameCheck = validateName(name);
    if (!nameCheck.ok) throw new PublishError(`invalid repository name: ${nameCheck.reason}`);
    for (const tag of tags) {
      const tagCheck = validateTag(tag);
      if (!tagCheck.ok) throw new PublishError(`invalid tag for ${name}: ${tagCheck.reason}`);
    }
    if (allTags && tags.length > 0) {
      throw new PublishError('--all-tags takes the tags from the source; give the repository without :<tag>');
    }
  }
}

export async function publish(options: PublishOptions): Promise<PublishResult> {
  const { tree, destinations, progress } = options;
  validateDestinations(destinations, options.allTags);
  const jobs = options.jobs ?? DEFAULT_JOBS;
  if (!Number.isInteger(jobs) || jobs < JOBS_MIN || jobs > JOBS_MAX)
    throw new PublishError(
      `--jobs ${jobs} is not a whole number from ${JOBS_MIN} to ${JOBS_MAX}, e.g. --jobs 4`,
    );
  // The record's own check, so that publish never writes a record derrick then cannot read.
  if (options.baseUrl !== undefined && !derrickRecordSchema.shape.baseUrl.safeParse(options.baseUrl).success)
    throw new PublishError(
      `--base-url "${options.baseUrl}" is not a valid http(s) URL, e.g. https://cdn.example.com/v2/web`,
    );
  for (const { name } of destinations) {
    const collision = await tree.findCollision(name);
    if (collision !== undefined)
      throw new PublishError(`cannot publish: ${collision}; rename one of the repositories`);
  }

  const { signal } = options;
  /** Whether phase B has begun: from then on an abort is not honoured. */
  let committing = false;
  const interrupted = (error: unknown): unknown =>
    signal?.aborted && !committing ? new PublishInterruptedError() : error;
  const { backend } = tree;
  const registration = await backend
    .beginPublish({
      timeoutMs: options.lockTimeoutMs,
      onWait: () => progress.note('waiting for a running derrick gc to finish'),
      ...(signal ? { signal } : {}),
    })
    .catch((error: unknown) => {
      throw interrupted(error);
    });
  let source: ImageSource | undefined;
  const pending: Pending[] = [];
  try {
    signal?.throwIfAborted();
    const opened = await options.openSource();
    source = opened;
    const roots = await source.roots(options.allTags);
    for (const root of roots) {
      if (options.allTags && (root.refName === undefined || !validateTag(root.refName).ok)) {
        throw new SourceError(
          `${source.description}: image name "${root.refName ?? ''}" is not a valid tag for --all-tags`,
        );
      }
    }
    const collected = await collect(source, roots, {
      ...(options.platforms ? { platforms: options.platforms } : {}),
      note: (message) => progress.note(message),
    });

    // Phase A: store what the content store lacks, verifying each digest as the bytes flow.
    let blobsReused = 0;
    const toCopy: { digest: string; size: number }[] = [];
    const blobs = [...collected.blobs.values()];
    const present = await atOnce(blobs, (blob) => reuse(tree, blob.digest, blob.size));
    blobs.forEach((blob, i) => {
      if (present[i]) blobsReused++;
      else toCopy.push(blob);
    });
    progress.phase(
      'copying',
      toCopy.reduce((sum, blob) => sum + blob.size, 0),
    );
    const copied = await copyBlobs({
      tree,
      source: opened,
      collected,
      toCopy,
      jobs,
      progress,
      pending,
      signal,
    });
    const { foreignLayers, blobsCopied, bytesCopied } = copied;
    for (const manifest of collected.manifests.values()) {
      if (await reuse(tree, manifest.digest, manifest.bytes.length)) continue;
      const stream = Readable.from([manifest.bytes]);
      const put = { source: `manifest ${manifest.digest}`, size: manifest.bytes.length };
      pending.push(
        await backend.stage(contentKey(manifest.digest), { kind: 'stream', stream }, manifest.digest, {
          ...put,
          ...(signal ? { signal } : {}),
        }),
      );
    }

    // Phase B: content under its addresses, links per repository, then each record. The last moment an abort stops
    // the publish is here; after it, the publish completes.
    signal?.throwIfAborted();
    committing = true;
    signal?.addEventListener('abort', () => options.onLateAbort?.(), { once: true });
    // Each commit makes one verified object appear and none depends on another: they go together. After a failure
    // the ones not yet begun are thrown away instead, as a commit in turn would have.
    let failure: { error: unknown } | undefined;
    await atOnce(pending.splice(0), (staged) =>
      failure
        ? staged.discard()
        : staged.commit().catch((error: unknown) => {
            failure ??= { error };
          }),
    );
    if (failure) throw failure.error;
    const repositories = [];
    for (const destination of destinations) {
      await linkContent(tree, destination.name, collected, foreignLayers);
      repositories.push(await commitRecord(options, destination, collected.roots, collected, foreignLayers));
    }
    progress.done();
    return {
      source: source.description,
      repositories,
      manifests: collected.manifests.size,
      blobsCopied,
      blobsReused,
      bytesCopied,
      foreignLayers,
    };
  } catch (error) {
    throw interrupted(error);
  } finally {
    await Promise.all(pending.map((staged) => staged.discard()));
    await source?.close();
    await registration.release();
  }
}

/** Whether the content store has `digest` with the expected size, kept safe from gc until our record is written. */
async function reuse(tree: Tree, digest: string, size: number): Promise<boolean> {
  const key = contentKey(digest);
  const info = await tree.backend.stat(key);
  if (info?.size !== size) return false;
  await tree.backend.keep(key, info);
  return true;
}

async function linkContent(tree: Tree, name: string, collected: Collected, foreign: string[]): Promise<void> {
  const { backend } = tree;
  const links: [string, string][] = [];
  for (const blob of collected.blobs.values()) {
    if (!foreign.includes(blob.digest)) links.push([contentKey(blob.digest), blobLinkKey(name, blob.digest)]);
  }
  for (const manifest of collected.manifests.values()) {
    const { digest } = manifest;
    links.push([contentKey(digest), manifestLinkKey(name, manifest.parsed.mediaType, digest)]);
  }
  await atOnce(links, ([from, to]) => backend.link(from, to));
}

function entryFor(manifest: CollectedManifest, foreign: string[]): ManifestEntry {
  const { parsed } = manifest;
  const entry: ManifestEntry = {
    mediaType: parsed.mediaType satisfies ManifestMediaType,
    size: manifest.bytes.length,
  };
  if (parsed.blobs.length > 0) {
    entry.blobs = [...new Set(parsed.blobs.map((blob) => blob.digest))].filter(
      (digest) => !foreign.includes(digest),
    );
  }
  if (parsed.children.length > 0) {
    entry.children = parsed.children.map((child) =>
      child.platform ? { digest: child.digest, platform: child.platform } : { digest: child.digest },
    );
  }
  if (parsed.subject) {
    entry.subject = parsed.subject.digest;
    if (parsed.artifactType !== undefined) entry.artifactType = parsed.artifactType;
    if (parsed.annotations) entry.annotations = parsed.annotations;
  }
  return entry;
}

async function commitRecord(
  options: PublishOptions,
  destination: Destination,
  roots: Pick<SourceManifest, 'digest' | 'refName' | 'tag'>[],
  collected: Collected,
  foreign: string[],
): Promise<PublishResult['repositories'][number]> {
  const { tree } = options;
  return tree.updateRecord(
    destination.name,
    (current) => {
      const base = current ?? emptyRepository(destination.name);
      if (base.format !== 'derrick') {
        throw new PublishError(
          `${destination.name} is a Pulp 2 record (${tree.describeRecord(destination.name)}); unpublish it first to replace it with a derrick one`,
        );
      }
      const manifests = new Map(base.manifests);
      const blobs = new Map(base.blobs);
      const tags = new Map(base.tags);
      for (const manifest of collected.manifests.values())
        manifests.set(manifest.digest, entryFor(manifest, foreign));
      for (const blob of collected.blobs.values())
        if (!foreign.includes(blob.digest)) blobs.set(blob.digest, blob.size);

      const assigned: Record<string, string> = {};
      const untagged: string[] = [];
      for (const root of roots) {
        let rootTags = options.allTags
          ? [root.refName ?? '']
          : destination.tags.length > 0
            ? destination.tags
            : collected.manifests.get(root.digest)?.parsed.subject
              ? [] // an artifact attached to an image: published untagged, found through the referrers API
              : ['latest'];
        // Found by its tag (a cosign signature, sha256-<hex>.sig): exactly that tag, so cosign finds it here too.
        if (root.tag !== undefined) rootTags = [root.tag];
        if (rootTags.length === 0) untagged.push(root.digest);
        for (const tag of rootTags) {
          tags.set(tag, root.digest);
          assigned[tag] = root.digest;
        }
      }
      return {
        next: {
          ...base,
          baseUrl: options.baseUrl ?? base.baseUrl,
          protected: options.protected ?? base.protected,
          tags,
          manifests,
          blobs,
          updatedAt: new Date().toISOString(),
        },
        result: { name: destination.name, tags: assigned, untagged },
      };
    },
    {
      wait: {
        timeoutMs: options.lockTimeoutMs,
        onWait: () => options.progress.note(`waiting for another publisher of ${destination.name}`),
      },
      onRetry: () =>
        options.progress.note(`another publisher of ${destination.name} got there first; merging again`),
    },
  );
}
