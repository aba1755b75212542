/** What a derrick repository's tags reach: their manifests, index children, referrers, and blobs. */
import type { Repository } from './record.ts';

export interface Reachable {
  manifests: Set<string>;
  blobs: Set<string>;
}

export function reachable(repository: Repository): Reachable {
  const manifests = new Set<string>();
  const pending = [...repository.tags.values()];
  const visit = (): void => {
    for (let digest = pending.pop(); digest !== undefined; digest = pending.pop()) {
      if (manifests.has(digest)) continue;
      const entry = repository.manifests.get(digest);
      if (!entry) continue;
      manifests.add(digest);
      for (const child of entry.children ?? []) pending.push(child.digest);
    }
  };
  visit();
  // Referrers live as long as their subject does (and referrers of referrers, to a fixed point).
  for (let grew = true; grew;) {
    grew = false;
    for (const [digest, entry] of repository.manifests) {
      if (!manifests.has(digest) && entry.subject !== undefined && manifests.has(entry.subject)) {
        pending.push(digest);
        visit();
        grew = true;
      }
    }
  }
  const blobs = new Set<string>();
  for (const digest of manifests)
    for (const blob of repository.manifests.get(digest)?.blobs ?? []) blobs.add(blob);
  return { manifests, blobs };
}

/** The repository with only what its tags reach. */
export function pruned(repository: Repository): Repository {
  const keep = reachable(repository);
  return {
    ...repository,
    manifests: new Map([...repository.manifests].filter(([digest]) => keep.manifests.has(digest))),
    blobs: new Map([...repository.blobs].filter(([digest]) => keep.blobs.has(digest))),
  };
}
