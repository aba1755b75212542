/**
 * `derrick unpublish <name>[:<tag>|@<digest>]`: removes a repository, a tag, or a manifest (and the tags on it).
 * Manifests and blobs no remaining tag reaches leave the record with it; their files go at the next `derrick gc`.
 * Unpublishing the last tag removes the repository.
 */
import { parseDigest } from '../oci/digest.ts';
import { validateName, validateTag } from '../oci/names.ts';
import { pruned } from '../store/reachable.ts';
import type { Repository } from '../store/record.ts';
import type { RecordChange, Tree } from '../store/tree.ts';
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
  // Registered like a publisher, so that gc and this change see each other.
  const registration = await tree.backend.beginPublish({ timeoutMs: lockTimeoutMs });
  try {
    return await tree.updateRecord(target.name, (repository) => change(tree, target, repository), {
      wait: { timeoutMs: lockTimeoutMs },
    });
  } finally {
    await registration.release();
  }
}

/** What the record becomes; throws PublishError when there is nothing to unpublish. */
function change(
  tree: Tree,
  target: UnpublishTarget,
  repository: Repository | undefined,
): RecordChange<UnpublishResult> {
  if (!repository) throw new PublishError(`there is no repository "${target.name}" in ${tree.location}`);
  const removed = target.tag === undefined ? 'manifest' : 'tag';
  if (target.tag === undefined && target.digest === undefined) {
    return { next: undefined, result: { name: target.name, removed: 'repository', repositoryRemoved: true } };
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
    return { next: undefined, result: { name: target.name, removed, repositoryRemoved: true } };
  }
  return {
    next: pruned({ ...repository, tags, manifests, updatedAt: new Date().toISOString() }),
    result: { name: target.name, removed, repositoryRemoved: false },
  };
}
