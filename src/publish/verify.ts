/**
 * `derrick verify`: every record valid, and everything each derrick record references present in the web tree
 * with the right size and digest. Each distinct file (by inode) is hashed once, however many repositories link it.
 */
import { createReadStream, promises as fs } from 'node:fs';
import { hasherFor } from '../oci/digest.ts';
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

async function hashFile(file: string, like: string): Promise<string> {
  const { hash, algorithm } = hasherFor(like);
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return `${algorithm}:${hash.digest('hex')}`;
}

export async function verifyTree(
  tree: Tree,
  options: { hash: boolean; prefix?: string },
): Promise<VerifyResult> {
  const problems: Problem[] = [];
  const verified = new Map<string, string>(); // "dev:ino" → digest it hashed to
  let repositories = 0;
  let files = 0;

  const checkFile = async (repository: string, file: string, digest: string, size: number): Promise<void> => {
    files++;
    const stat = await fs.stat(file).catch(() => undefined);
    if (!stat?.isFile()) {
      problems.push({ repository, problem: `${tree.relative(file)} is missing` });
      return;
    }
    if (stat.size !== size) {
      problems.push({
        repository,
        problem: `${tree.relative(file)} is ${stat.size} bytes; the record says ${size}`,
      });
      return;
    }
    if (!options.hash) return;
    const key = `${stat.dev}:${stat.ino}`;
    let actual = verified.get(key);
    if (actual === undefined || !actual.startsWith(digest.slice(0, digest.indexOf(':') + 1))) {
      actual = await hashFile(file, digest);
      verified.set(key, actual);
    }
    if (actual !== digest) {
      problems.push({ repository, problem: `${tree.relative(file)} hashes to ${actual}, not ${digest}` });
    }
  };

  const checkRepository = async (repository: Repository): Promise<void> => {
    if (repository.format !== 'derrick') return; // Pulp 2 content lives behind its url
    const { name } = repository;
    for (const [digest, entry] of repository.manifests) {
      await checkFile(name, tree.layout.manifestLinkPath(name, entry.mediaType, digest), digest, entry.size);
    }
    for (const [digest, size] of repository.blobs) {
      await checkFile(name, tree.layout.blobLinkPath(name, digest), digest, size);
    }
  };

  for await (const item of tree.walkRecords(options.prefix)) {
    repositories++;
    if (item.error) problems.push({ repository: item.name, problem: item.error.message });
    else if (item.repository) await checkRepository(item.repository);
  }
  return { repositories, files, problems };
}
