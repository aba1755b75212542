/**
 * `derrick publish`: lays images from a source into the published tree.
 *
 * Phase A (nothing visible changes): register as a running publisher (so gc waits), read and verify the whole
 * manifest graph, stage every blob that the content store lacks into v2/.staging while hashing it. Any bad byte,
 * missing blob, full disk or read-only tree stops here and only our own staging files are removed.
 * Phase B: move staged content into v2/content, hard-link it under each repository's v2/web directory, then —
 * holding only that repository's lock — merge into its record and rename the record into place: the one step
 * that makes the publish visible.
 *
 * An abort (the CLI's SIGINT/SIGTERM) is honoured through phase A — it stops a copy mid-stream, and the publish
 * ends in PublishInterruptedError with only its own staging files removed — and ignored once phase B has begun:
 * a commit that has started finishes, so "nothing was published" is never said of a publish that was.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { validateName, validateTag } from '../oci/names.ts';
import type { ManifestMediaType } from '../oci/media-types.ts';
import { fsyncDir, linkAtomic, sameFile } from '../store/atomic.ts';
import {
  commitStaged,
  DigestMismatchError,
  existingContent,
  stageStream,
  type StagedFile,
} from '../store/content.ts';
import { acquireLock, registerPublisher, repositoryLockKey } from '../store/locks.ts';
import { derrickRecordSchema, type ManifestEntry } from '../store/record-schema.ts';
import { emptyRepository } from '../store/record.ts';
import type { Tree } from '../store/tree.ts';
import { collect, mayBeAbsent, type Collected, type CollectedManifest } from './collect.ts';
import type { Progress } from './progress.ts';
import { SourceError, type ImageSource } from './source.ts';

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
}

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
  const registration = await registerPublisher(
    tree.layout,
    options.lockTimeoutMs,
    () => progress.note('waiting for a running derrick gc to finish'),
    signal,
  ).catch((error: unknown) => {
    throw interrupted(error);
  });
  let source: ImageSource | undefined;
  const staged = new Map<string, StagedFile>();
  try {
    signal?.throwIfAborted();
    source = await options.openSource();
    const roots = await source.roots(options.allTags);
    for (const root of roots) {
      if (options.allTags && (root.refName === undefined || !validateTag(root.refName).ok)) {
        throw new SourceError(
          `${source.description}: image name "${root.refName ?? ''}" is not a valid tag for --all-tags`,
        );
      }
    }
    const collected = await collect(source, roots);

    // Phase A: stage what the content store lacks, verifying each digest as the bytes flow.
    const foreignLayers: string[] = [];
    let blobsReused = 0;
    let blobsCopied = 0;
    let bytesCopied = 0;
    const toCopy: { digest: string; size: number }[] = [];
    for (const blob of collected.blobs.values()) {
      if (await existingContent(tree.layout, blob.digest, blob.size)) blobsReused++;
      else toCopy.push(blob);
    }
    progress.phase(
      'copying',
      toCopy.reduce((sum, blob) => sum + blob.size, 0),
    );
    for (const blob of toCopy) {
      const bytes = await source.blob(blob.digest);
      if (!bytes) {
        const info = collected.blobs.get(blob.digest);
        if (info && mayBeAbsent(info)) {
          foreignLayers.push(blob.digest);
          continue;
        }
        throw new SourceError(
          `${source.description}: blob ${blob.digest} (used by manifest ${info?.usedBy ?? '?'}) is missing from the source`,
        );
      }
      let file: StagedFile;
      if (bytes.kind === 'staged') {
        file = bytes.file;
        progress.bytes(file.size);
      } else {
        file = await stageStream(
          tree.layout,
          await bytes.open(),
          blob.digest,
          (count) => progress.bytes(count),
          signal,
        );
      }
      staged.set(blob.digest, file);
      if (file.digest !== blob.digest || file.size !== blob.size) {
        throw new DigestMismatchError(bytes.where, blob.digest, file.digest, blob.size, file.size);
      }
      blobsCopied++;
      bytesCopied += file.size;
    }
    for (const manifest of collected.manifests.values()) {
      if (await existingContent(tree.layout, manifest.digest, manifest.bytes.length)) continue;
      staged.set(
        manifest.digest,
        await stageStream(tree.layout, Readable.from([manifest.bytes]), manifest.digest),
      );
    }

    // Phase B: content into the store, links per repository, then each record in one rename. The last moment an
    // abort stops the publish is here; after it, the publish completes.
    signal?.throwIfAborted();
    committing = true;
    signal?.addEventListener('abort', () => options.onLateAbort?.(), { once: true });
    for (const file of staged.values()) await commitStaged(tree.layout, file);
    staged.clear();
    const repositories = [];
    for (const destination of destinations) {
      await linkContent(tree, destination.name, collected, foreignLayers);
      repositories.push(await commitRecord(options, destination, roots, collected, foreignLayers));
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
    await Promise.all([...staged.values()].map((file) => fs.rm(file.path, { force: true })));
    await source?.close();
    await registration.release();
  }
}

async function linkContent(tree: Tree, name: string, collected: Collected, foreign: string[]): Promise<void> {
  const { layout } = tree;
  const dirs = new Set<string>();
  const link = async (digest: string, target: string): Promise<void> => {
    const content = layout.contentPath(digest);
    if (!(await sameFile(content, target))) await linkAtomic(content, target, layout.stagingDir);
    dirs.add(path.dirname(target));
  };
  for (const blob of collected.blobs.values()) {
    if (!foreign.includes(blob.digest)) await link(blob.digest, layout.blobLinkPath(name, blob.digest));
  }
  for (const manifest of collected.manifests.values()) {
    await link(manifest.digest, layout.manifestLinkPath(name, manifest.parsed.mediaType, manifest.digest));
  }
  for (const dir of dirs) await fsyncDir(dir);
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
  roots: { digest: string; refName: string | undefined }[],
  collected: Collected,
  foreign: string[],
): Promise<PublishResult['repositories'][number]> {
  const { tree } = options;
  const lock = await acquireLock(
    tree.layout,
    repositoryLockKey(destination.name),
    options.lockTimeoutMs,
    () => options.progress.note(`waiting for another publisher of ${destination.name}`),
  );
  try {
    const current = await tree.readRecord(destination.name);
    if (!current.found && current.reason === 'collision') {
      throw new PublishError(
        `cannot publish ${destination.name}: ${current.detail ?? 'its record path is taken'}`,
      );
    }
    const base = current.found ? current.repository : emptyRepository(destination.name);
    if (base.format !== 'derrick') {
      throw new PublishError(
        `${destination.name} is a Pulp 2 record (${tree.relative(tree.layout.recordPath(destination.name))}); unpublish it first to replace it with a derrick one`,
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
      const rootTags = options.allTags
        ? [root.refName ?? '']
        : destination.tags.length > 0
          ? destination.tags
          : collected.manifests.get(root.digest)?.parsed.subject
            ? [] // an artifact attached to an image: published untagged, found through the referrers API
            : ['latest'];
      if (rootTags.length === 0) untagged.push(root.digest);
      for (const tag of rootTags) {
        tags.set(tag, root.digest);
        assigned[tag] = root.digest;
      }
    }
    await tree.writeRecord({
      ...base,
      baseUrl: options.baseUrl ?? base.baseUrl,
      protected: options.protected ?? base.protected,
      tags,
      manifests,
      blobs,
      updatedAt: new Date().toISOString(),
    });
    return { name: destination.name, tags: assigned, untagged };
  } finally {
    await lock.release();
  }
}
