/**
 * `derrick copy-tree <from> <to>`: copies a whole tree, or the repositories below a namespace, between any two back
 * ends (a directory, a bucket) — the way to move a site onto object storage and to carry a tree to a disconnected
 * site. Only what the destination lacks is sent; every object is verified against its digest on the way (a corrupt
 * source object stops its repository, never lands); a repository's record is written last, after all it
 * references, by compare-and-swap over what was read, so a destination being served is never left with a record
 * whose content is missing, and a publish into it meanwhile is not overwritten unseen.
 */
import { contentKey, blobLinkKey, manifestLinkKey, recordKey } from '../store/keys.ts';
import { DigestMismatchError } from '../store/content.ts';
import { RecordError, type Repository } from '../store/record.ts';
import type { Tree } from '../store/tree.ts';

/** A repository that cannot be copied as it is: said, and the others go on. */
class CopyError extends Error {}

export interface CopyResult {
  repositories: number;
  recordsCopied: number;
  recordsUnchanged: number;
  objectsCopied: number;
  objectsPresent: number;
  bytesCopied: number;
  problems: { repository: string; problem: string }[];
}

export interface CopyOptions {
  prefix?: string;
  dryRun: boolean;
  lockTimeoutMs: number;
  /** Called after each repository, for progress. */
  onRepository?: (name: string) => void;
}

export async function copyTree(from: Tree, to: Tree, options: CopyOptions): Promise<CopyResult> {
  const result: CopyResult = {
    repositories: 0,
    recordsCopied: 0,
    recordsUnchanged: 0,
    objectsCopied: 0,
    objectsPresent: 0,
    bytesCopied: 0,
    problems: [],
  };
  const registration = options.dryRun
    ? undefined
    : await to.backend.beginPublish({ timeoutMs: options.lockTimeoutMs });
  try {
    for await (const name of from.walkNames(options.prefix === undefined ? {} : { prefix: options.prefix })) {
      result.repositories++;
      try {
        await copyRepository(from, to, name, options, result);
      } catch (error) {
        const known =
          error instanceof DigestMismatchError || error instanceof RecordError || error instanceof CopyError;
        if (!known) throw error;
        result.problems.push({ repository: name, problem: error.message });
      }
      options.onRepository?.(name);
    }
    return result;
  } finally {
    await registration?.release();
  }
}

async function copyRepository(
  from: Tree,
  to: Tree,
  name: string,
  options: CopyOptions,
  result: CopyResult,
): Promise<void> {
  const source = await from.readRecord(name);
  if (!source.found) return; // unpublished while we walked
  const key = recordKey(name);
  const current = await to.backend.read(key);
  if (current.status === 'found' && current.bytes.equals(source.bytes)) {
    result.recordsUnchanged++;
    return;
  }
  if (collision(await to.findCollision(name), name, result)) return;
  if (source.repository.format === 'derrick') await copyContent(from, to, source.repository, options, result);
  if (options.dryRun) {
    result.recordsCopied++;
    return;
  }
  const expect = current.status === 'found' ? { version: current.version } : ('absent' as const);
  const outcome = await to.backend.write(key, source.bytes, expect, { timeoutMs: options.lockTimeoutMs });
  if (outcome === 'conflict')
    result.problems.push({
      repository: name,
      problem: `${to.describeRecord(name)} changed while it was copied; run copy-tree again`,
    });
  else result.recordsCopied++;
}

function collision(message: string | undefined, name: string, result: CopyResult): boolean {
  if (message === undefined) return false;
  result.problems.push({ repository: name, problem: `cannot copy: ${message}` });
  return true;
}

/** Every manifest and blob the record lists, into the content store and the repository's links. */
async function copyContent(
  from: Tree,
  to: Tree,
  repository: Repository,
  options: CopyOptions,
  result: CopyResult,
): Promise<void> {
  const objects: { digest: string; size: number; link: string }[] = [];
  for (const [digest, entry] of repository.manifests)
    objects.push({
      digest,
      size: entry.size,
      link: manifestLinkKey(repository.name, entry.mediaType, digest),
    });
  for (const [digest, size] of repository.blobs)
    objects.push({ digest, size, link: blobLinkKey(repository.name, digest) });
  for (const { digest, size, link } of objects) {
    const key = contentKey(digest);
    const present = await to.backend.stat(key);
    if (present?.size === size) {
      result.objectsPresent++;
      if (!options.dryRun) await to.backend.keep(key, present);
    } else {
      result.objectsCopied++;
      result.bytesCopied += size;
      if (!options.dryRun) await copyObject(from, to, key, digest, size);
    }
    if (!options.dryRun) await to.backend.link(key, link);
  }
}

async function copyObject(from: Tree, to: Tree, key: string, digest: string, size: number): Promise<void> {
  const opened = await from.backend.open(key);
  if (!opened)
    throw new DigestMismatchError(from.backend.describe(key), digest, 'nothing (it is missing)', size, 0);
  const pending = await to.backend.stage(key, { kind: 'stream', stream: opened.stream }, digest, {
    source: `${from.location}: ${from.backend.describe(key)}`,
    size,
  });
  await pending.commit();
}
