/**
 * `derrick verify`: every record valid, and everything each derrick record references present in the content
 * store and in the repository's web tree with the right size and digest. Each distinct object (by version: an
 * inode, an ETag) is hashed once, however many repositories link it.
 */
import { hasherFor } from '../oci/digest.ts';
import { blobLinkKey, contentKey, manifestLinkKey } from '../store/keys.ts';
import type { Repository } from '../store/record.ts';
import type { Tree } from '../store/tree.ts';

export interface Problem {
  repository: string;
  problem: string;
}

export interface VerifyResult {
  repositories: number;
  files: number;
  problems: Problem[];
}

async function hashObject(tree: Tree, key: string, like: string): Promise<string | undefined> {
  const opened = await tree.backend.open(key);
  if (!opened) return undefined;
  const { hash, algorithm } = hasherFor(like);
  for await (const chunk of opened.stream) hash.update(chunk as Buffer);
  return `${algorithm}:${hash.digest('hex')}`;
}

export async function verifyTree(
  tree: Tree,
  options: { hash: boolean; prefix?: string },
): Promise<VerifyResult> {
  const problems: Problem[] = [];
  const verified = new Map<string, string>(); // "<algorithm>@<version>" → the digest it hashed to
  let repositories = 0;
  let files = 0;

  /** Checks one object; gives its version (undefined when it is missing). */
  const check = async (
    repository: string,
    key: string,
    digest: string,
    size: number,
  ): Promise<string | undefined> => {
    files++;
    const where = tree.backend.describe(key);
    const stat = await tree.backend.stat(key);
    if (!stat) {
      problems.push({ repository, problem: `${where} is missing` });
      return undefined;
    }
    if (stat.size !== size) {
      problems.push({ repository, problem: `${where} is ${stat.size} bytes; the record says ${size}` });
      return stat.version;
    }
    if (!options.hash) return stat.version;
    const seen = `${digest.slice(0, digest.indexOf(':'))}@${stat.version}`;
    let actual = verified.get(seen);
    if (actual === undefined) {
      actual = (await hashObject(tree, key, digest)) ?? 'nothing (it went away)';
      verified.set(seen, actual);
    }
    if (actual !== digest)
      problems.push({ repository, problem: `${where} hashes to ${actual}, not ${digest}` });
    return stat.version;
  };

  /** A repository's link (what nginx or a CDN serves), then the content store's object unless it is that file. */
  const checkBoth = async (repository: string, link: string, digest: string, size: number): Promise<void> => {
    const linked = await check(repository, link, digest, size);
    const stored = await tree.backend.stat(contentKey(digest));
    if (linked !== undefined && stored?.version === linked) return; // one file (a hard link): checked once
    await check(repository, contentKey(digest), digest, size);
  };

  const checkRepository = async (repository: Repository): Promise<void> => {
    if (repository.format !== 'derrick') return; // Pulp 2 content lives behind its url
    const { name } = repository;
    for (const [digest, entry] of repository.manifests)
      await checkBoth(name, manifestLinkKey(name, entry.mediaType, digest), digest, entry.size);
    for (const [digest, size] of repository.blobs)
      await checkBoth(name, blobLinkKey(name, digest), digest, size);
  };

  for await (const item of tree.walkRecords(options.prefix)) {
    repositories++;
    if (item.error) problems.push({ repository: item.name, problem: item.error.message });
    else if (item.repository) await checkRepository(item.repository);
  }
  return { repositories, files, problems };
}
