/**
 * `derrick sync <sync.yaml>`: keeps repositories of the tree equal to what upstreams hold, as the file selects.
 * For each repository entry: the upstream repositories (a name, or a glob over the upstream's listing), their
 * tags, the filters (select.ts); then for each selected tag one question — the digest it names now — compared
 * with the destination's tag. Equal: unchanged, nothing else is asked (a sync that finds nothing new costs one
 * manifest HEAD per tag). Otherwise the image is published from the upstream by that digest, with the publisher's
 * guarantees (every digest verified, content already in the tree never fetched, atomic per image).
 *
 * Failures stay with their image or repository: the rest go on, and the summary counts them (the CLI exits 1).
 * `prune: true` removes, in one record write, the destination tags the selection no longer has — never by
 * default; tags of the cosign scheme (`sha256-<hex>.sig`) stay while the digest they name is still tagged.
 */
import { validateName } from '../../oci/names.ts';
import { parseManifest } from '../../oci/media-types.ts';
import type { SyncConfig, SyncRepository } from '../../config/sync-schema.ts';
import { pruned } from '../../store/reachable.ts';
import type { Tree } from '../../store/tree.ts';
import { compileGlobs } from '../../config/globs.ts';
import { publish, PublishInterruptedError } from '../publisher.ts';
import { silentProgress, type Progress } from '../progress.ts';
import { selectTags } from './select.ts';
import type { Upstream } from './upstream.ts';

export type SyncAction = 'added' | 'updated' | 'unchanged' | 'pruned' | 'failed';

export interface SyncImage {
  /** The destination repository. */
  repository: string;
  tag: string;
  /** upstream repository:tag, or the upstream repository when it failed before its tags were known. */
  from: string;
  action: SyncAction;
  /** The digest published (or that would be), when known. */
  digest?: string;
  problem?: string;
}

export interface SyncSummary {
  dryRun: boolean;
  added: number;
  updated: number;
  unchanged: number;
  pruned: number;
  failed: number;
  bytesCopied: number;
  blobsCopied: number;
  blobsReused: number;
  images: SyncImage[];
}

export interface SyncOptions {
  tree: Tree;
  config: SyncConfig;
  /** The opened upstreams, by their key in the file. */
  upstreams: ReadonlyMap<string, Upstream>;
  dryRun: boolean;
  lockTimeoutMs: number;
  /** Per image: the publisher's progress. */
  progress?: Progress;
  /** Told each image's outcome as it is known (a line of output). */
  onImage?: (image: SyncImage) => void;
  signal?: AbortSignal;
}

/** cosign's tag for what signs, attests or describes a digest: `sha256-<hex>.sig|.att|.sbom`. */
const COSIGN_TAG = /^(sha256)-([a-f0-9]{64})\.(?:sig|att|sbom)$/;

export async function sync(options: SyncOptions): Promise<SyncSummary> {
  const summary: SyncSummary = {
    dryRun: options.dryRun,
    added: 0,
    updated: 0,
    unchanged: 0,
    pruned: 0,
    failed: 0,
    bytesCopied: 0,
    blobsCopied: 0,
    blobsReused: 0,
    images: [],
  };
  const told = (image: SyncImage): void => {
    summary.images.push(image);
    summary[image.action]++;
    options.onImage?.(image);
  };
  for (const entry of options.config.repositories) {
    const upstream = options.upstreams.get(entry.from);
    if (!upstream) throw new Error(`sync: upstream ${entry.from} was not opened`); // the schema checked the key
    let names: string[];
    try {
      names = await upstreamNames(upstream, entry);
    } catch (error) {
      rethrowInterrupt(error, options.signal);
      told({
        repository: entry.glob ?? entry.name ?? '',
        tag: '',
        from: upstream.description,
        action: 'failed',
        problem: message(error),
      });
      continue;
    }
    for (const name of names) await syncRepository(options, upstream, entry, name, told, summary);
  }
  return summary;
}

async function upstreamNames(upstream: Upstream, entry: SyncRepository): Promise<string[]> {
  if (entry.name !== undefined) return [entry.name];
  const [matches] = compileGlobs([entry.glob ?? '']);
  return (await upstream.repositories()).filter((name) => matches?.(name)).sort();
}

async function syncRepository(
  options: SyncOptions,
  upstream: Upstream,
  entry: SyncRepository,
  name: string,
  told: (image: SyncImage) => void,
  summary: SyncSummary,
): Promise<void> {
  const { tree } = options;
  const destination = entry.rename ?? `${entry.prefix}${name}`;
  const failRepository = (problem: string): void =>
    told({
      repository: destination,
      tag: '',
      from: `${upstream.description}/${name}`,
      action: 'failed',
      problem,
    });
  const valid = validateName(destination);
  if (!valid.ok) return failRepository(`destination ${destination}: ${valid.reason}`);
  // Each tag's digest is asked once: by its created time (`by: created`) and again by the comparison below.
  const digests = new Map<string, Promise<string | undefined>>();
  const digestOf = (tag: string): Promise<string | undefined> => {
    let digest = digests.get(tag);
    if (!digest) digests.set(tag, (digest = upstream.digestOf(name, tag)));
    return digest;
  };
  let selected: string[];
  let current: ReadonlyMap<string, string>;
  try {
    const tags = await upstream.tags(name);
    if (tags === undefined) return failRepository(`${upstream.description} has no repository ${name}`);
    selected = await selectTags(tags, entry.tags, async (tag) =>
      createdOf(upstream, name, await digestOf(tag)),
    );
    const record = await tree.readRecord(destination);
    current = record.found ? record.repository.tags : new Map();
  } catch (error) {
    rethrowInterrupt(error, options.signal);
    return failRepository(message(error));
  }
  let failures = 0;
  const kept = new Map<string, string>();
  for (const tag of selected) {
    const from = `${upstream.description}/${name}:${tag}`;
    try {
      const digest = await digestOf(tag);
      if (digest === undefined) continue; // listed, then gone before we asked: nothing to mirror
      let expected = digest;
      const had = current.get(tag);
      if (had === expected) {
        kept.set(tag, expected);
        told({ repository: destination, tag, from, action: 'unchanged', digest: expected });
        continue;
      }
      if (!options.dryRun) {
        const result = await publish({
          tree,
          openSource: () => upstream.open(name, digest),
          destinations: [{ name: destination, tags: [tag] }],
          allTags: false,
          baseUrl: undefined,
          protected: undefined,
          lockTimeoutMs: options.lockTimeoutMs,
          progress: options.progress ?? silentProgress,
          ...(options.signal ? { signal: options.signal } : {}),
        });
        summary.bytesCopied += result.bytesCopied;
        summary.blobsCopied += result.blobsCopied;
        summary.blobsReused += result.blobsReused;
        expected = result.repositories[0]?.tags[tag] ?? expected;
      }
      kept.set(tag, expected);
      told({
        repository: destination,
        tag,
        from,
        action: had === undefined ? 'added' : 'updated',
        digest: expected,
      });
    } catch (error) {
      rethrowInterrupt(error, options.signal);
      failures++;
      told({ repository: destination, tag, from, action: 'failed', problem: message(error) });
    }
  }
  // Pruning after a failure could remove a tag only because its image failed: not then.
  if (entry.prune && failures === 0) await prune(options, destination, upstream, name, kept, told);
}

async function prune(
  options: SyncOptions,
  destination: string,
  upstream: Upstream,
  name: string,
  kept: ReadonlyMap<string, string>,
  told: (image: SyncImage) => void,
): Promise<void> {
  const keptDigests = new Set(kept.values());
  /** A selected tag stays, and so does a signature (cosign's tag) of a digest still tagged. */
  const stays = (tag: string): boolean => {
    if (kept.has(tag)) return true;
    const cosign = COSIGN_TAG.exec(tag);
    return cosign !== null && keptDigests.has(`${cosign[1]}:${cosign[2]}`);
  };
  const from = `${upstream.description}/${name}`;
  const gone: { tag: string; digest: string }[] = [];
  try {
    if (options.dryRun) {
      const record = await options.tree.readRecord(destination);
      if (record.found)
        for (const [tag, digest] of record.repository.tags) if (!stays(tag)) gone.push({ tag, digest });
    } else {
      const registration = await options.tree.backend.beginPublish({ timeoutMs: options.lockTimeoutMs });
      try {
        await options.tree.updateRecord(
          destination,
          (repository) => {
            gone.length = 0;
            if (!repository || repository.format !== 'derrick')
              return { next: repository, result: undefined };
            const tags = new Map(repository.tags);
            for (const [tag, digest] of repository.tags) {
              if (stays(tag)) continue;
              tags.delete(tag);
              gone.push({ tag, digest });
            }
            if (gone.length === 0) return { next: repository, result: undefined };
            if (tags.size === 0) return { next: undefined, result: undefined };
            return {
              next: pruned({ ...repository, tags, updatedAt: new Date().toISOString() }),
              result: undefined,
            };
          },
          { wait: { timeoutMs: options.lockTimeoutMs } },
        );
      } finally {
        await registration.release();
      }
    }
  } catch (error) {
    rethrowInterrupt(error, options.signal);
    told({ repository: destination, tag: '', from, action: 'failed', problem: `prune: ${message(error)}` });
    return;
  }
  for (const { tag, digest } of gone) told({ repository: destination, tag, from, action: 'pruned', digest });
}

/** The image's created time (its config's `created`; for an index, its first child's). */
async function createdOf(
  upstream: Upstream,
  name: string,
  digest: string | undefined,
): Promise<number | undefined> {
  if (digest === undefined) return undefined;
  let parsed = parseManifest(await upstream.manifest(name, digest));
  if ('error' in parsed) return undefined;
  const child = parsed.children[0];
  if (child) {
    parsed = parseManifest(await upstream.manifest(name, child.digest));
    if ('error' in parsed) return undefined;
  }
  const config = parsed.blobs[0];
  if (!config) return undefined;
  try {
    const { created } = JSON.parse((await upstream.smallBlob(name, config.digest)).toString('utf8')) as {
      created?: unknown;
    };
    const time = typeof created === 'string' ? Date.parse(created) : NaN;
    return Number.isNaN(time) ? undefined : time;
  } catch {
    return undefined;
  }
}

function rethrowInterrupt(error: unknown, signal: AbortSignal | undefined): void {
  if (error instanceof PublishInterruptedError || signal?.aborted) throw error;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
