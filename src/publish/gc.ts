/**
 * `derrick gc`: deletes content no record references — content-store files, per-repository links (including
 * those of unpublished repositories), staging debris, and directories left empty. Runs under the gc lock, after
 * every running publisher has finished, and publishers wait for it: a blob a publish is about to reference is
 * never deleted. Refuses to run while any record is unreadable, since it cannot know what that record needs.
 */
import { promises as fs, type Dirent } from 'node:fs';
import path from 'node:path';
import { isDigest } from '../oci/digest.ts';
import { MANIFEST_KIND } from '../oci/media-types.ts';
import { acquireGcLock } from '../store/locks.ts';
import type { Tree } from '../store/tree.ts';
import { PublishError } from './publisher.ts';

export interface GcResult {
  dryRun: boolean;
  contentFiles: number;
  links: number;
  stagingFiles: number;
  /** Bytes freed (or, with dryRun, that would be): content and staging files, each counted once. */
  bytes: number;
}

const KINDS = new Set(Object.values(MANIFEST_KIND));

async function readdirSafe(dir: string): Promise<Dirent[]> {
  try {
    return await fs.readdir(dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

export async function gc(
  tree: Tree,
  options: { dryRun: boolean; waitMs: number; onWait?: () => void },
): Promise<GcResult> {
  const { layout } = tree;
  const lock = await acquireGcLock(layout, options.waitMs, options.onWait);
  try {
    // Mark: what every record references, globally and per repository.
    const referenced = new Set<string>();
    const links = new Set<string>();
    for await (const item of tree.walkRecords()) {
      if (item.error) {
        throw new PublishError(
          `gc stopped before deleting anything: ${item.error.message}. Fix or unpublish that record, then run gc again`,
        );
      }
      const repository = item.repository;
      if (repository?.format !== 'derrick') continue;
      for (const [digest, entry] of repository.manifests) {
        referenced.add(digest);
        links.add(layout.manifestLinkPath(repository.name, entry.mediaType, digest));
      }
      for (const digest of repository.blobs.keys()) {
        referenced.add(digest);
        links.add(layout.blobLinkPath(repository.name, digest));
      }
    }

    const result: GcResult = { dryRun: options.dryRun, contentFiles: 0, links: 0, stagingFiles: 0, bytes: 0 };
    const remove = async (file: string): Promise<void> => {
      if (!options.dryRun) await fs.rm(file, { force: true });
    };

    // Sweep the content store.
    for (const algorithm of await readdirSafe(layout.contentDir)) {
      if (!algorithm.isDirectory()) continue;
      const dir = path.join(layout.contentDir, algorithm.name);
      for (const entry of await readdirSafe(dir)) {
        const digest = `${algorithm.name}:${entry.name}`;
        if (entry.isFile() && isDigest(digest) && referenced.has(digest)) continue;
        const file = path.join(dir, entry.name);
        result.bytes += (await fs.lstat(file)).size;
        result.contentFiles++;
        await remove(file);
      }
    }

    // Sweep per-repository links: <name>/blobs/<digest> and <name>/manifests/<kind>/<digest>.
    const sweepWeb = async (dir: string): Promise<boolean> => {
      let empty = true;
      for (const entry of await readdirSafe(dir)) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) {
          if (await sweepWeb(full)) {
            if (!options.dryRun) await fs.rmdir(full).catch(() => undefined);
          } else empty = false;
          continue;
        }
        const parent = path.basename(dir);
        const isLink =
          isDigest(entry.name) &&
          (parent === 'blobs' || (KINDS.has(parent) && path.basename(path.dirname(dir)) === 'manifests'));
        if (isLink && links.has(full)) {
          empty = false;
          continue;
        }
        if (isLink) {
          result.links++;
          await remove(full);
        } else empty = false; // not ours: leave it
      }
      return empty;
    };
    await sweepWeb(layout.webDir);

    // Staging debris: no publisher is running, so everything here was left by one that died.
    for (const entry of await readdirSafe(layout.stagingDir)) {
      const file = path.join(layout.stagingDir, entry.name);
      const stat = await fs.lstat(file);
      result.bytes += stat.isFile() && stat.nlink === 1 ? stat.size : 0;
      result.stagingFiles++;
      if (!options.dryRun) await fs.rm(file, { recursive: true, force: true });
    }

    // Namespace directories left empty by unpublish.
    const sweepApp = async (dir: string): Promise<boolean> => {
      let empty = true;
      for (const entry of await readdirSafe(dir)) {
        if (entry.isDirectory() && (await sweepApp(path.join(dir, entry.name)))) {
          if (!options.dryRun) await fs.rmdir(path.join(dir, entry.name)).catch(() => undefined);
        } else empty = false;
      }
      return empty;
    };
    await sweepApp(layout.appDir);
    return result;
  } finally {
    await lock.release();
  }
}
