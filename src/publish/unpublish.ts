/**
 * `derrick unpublish <name>[:<tag>|@<digest>]`: removes a repository, a tag, or a manifest (and the tags on it).
 * Manifests and blobs no remaining tag reaches leave the record with it; their files go at the next `derrick gc`.
 * Unpublishing the last tag removes the repository.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseDigest } from '../oci/digest.ts';
import { validateName, validateTag } from '../oci/names.ts';
import { fsyncDir } from '../store/atomic.ts';
import { acquireLock, registerPublisher, repositoryLockKey } from '../store/locks.ts';
import { pruned } from '../store/reachable.ts';
import type { Tree } from '../store/tree.ts';
import { PublishError } from './publisher.ts';

export interface UnpublishTarget {
  name: string;
  tag: string | undefined;
  digest: string | undefined;
}

export function parseUnpublishTarget(spec: string): UnpublishTarget {
  const at = spec.indexOf('@');
  if (at !== -1) {
    const digest = spec.slice(at + 1);
    const parsed = parseDigest(digest);
    if ('error' in parsed) throw new PublishError(parsed.error);
    return { ...checkedName(spec.slice(0, at)), tag: undefined, digest };
  }
  const colon = spec.lastIndexOf(':');
  if (colon === -1) return { ...checkedName(spec), tag: undefined, digest: undefined };
  const tag = spec.slice(colon + 1);
  const check = validateTag(tag);
  if (!check.ok) throw new PublishError(`invalid tag: ${check.reason}`);
  return { ...checkedName(spec.slice(0, colon)), tag, digest: undefined };
}

function checkedName(name: string): { name: string } {
  const check = validateName(name);
  if (!check.ok) throw new PublishError(`invalid repository name: ${check.reason}`);
  return { name };
}

export interface UnpublishResult {
  name: string;
  removed: 'repository' | 'tag' | 'manifest';
  repositoryRemoved: boolean;
}

export async function unpublish(
  tree: Tree,
  target: UnpublishTarget,
  lockTimeoutMs: number,
): Promise<UnpublishResult> {
  // Registered like a publisher: gc must not sweep our staged record before we rename it.
  const registration = await registerPublisher(tree.layout, lockTimeoutMs);
  let lock;
  try {
    lock = await acquireLock(tree.layout, repositoryLockKey(target.name), lockTimeoutMs);
  } catch (error) {
    await registration.release();
    throw error;
  }
  try {
    const lookup = await tree.readRecord(target.name);
    if (!lookup.found)
      throw new PublishError(`there is no repository "${target.name}" in ${tree.layout.root}`);
    const repository = lookup.repository;
    const removeRecord = async (): Promise<void> => {
      const file = tree.layout.recordPath(target.name);
      await fs.rm(file);
      await fsyncDir(path.dirname(file));
    };
    if (target.tag === undefined && target.digest === undefined) {
      await removeRecord();
      return { name: target.name, removed: 'repository', repositoryRemoved: true };
    }
    if (repository.format !== 'derrick') {
      throw new PublishError(
        `${target.name} is a Pulp 2 record; its tags live behind its url. Unpublish the whole repository instead`,
      );
    }
    const tags = new Map(repository.tags);
    const manifests = new Map(repository.manifests);
    if (target.tag !== undefined) {
      if (!tags.delete(target.tag)) throw new PublishError(`${target.name} has no tag "${target.tag}"`);
    } else if (target.digest !== undefined) {
      const digest = target.digest;
      if (!manifests.has(digest)) throw new PublishError(`${target.name} has no manifest ${digest}`);
      for (const [parentDigest, entry] of manifests) {
        if (entry.children?.some((child) => child.digest === digest)) {
          throw new PublishError(
            `${digest} is part of index ${parentDigest} in ${target.name}; unpublish the index instead`,
          );
        }
      }
      manifests.delete(digest);
      for (const [tag, tagged] of [...tags]) if (tagged === digest) tags.delete(tag);
    }
    if (tags.size === 0) {
      await removeRecord();
      return {
        name: target.name,
        removed: target.tag === undefined ? 'manifest' : 'tag',
        repositoryRemoved: true,
      };
    }
    await tree.writeRecord(pruned({ ...repository, tags, manifests, updatedAt: new Date().toISOString() }));
    return {
      name: target.name,
      removed: target.tag === undefined ? 'manifest' : 'tag',
      repositoryRemoved: false,
    };
  } finally {
    await lock.release();
    await registration.release();
  }
}
