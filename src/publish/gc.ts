/**
 * `derrick gc`: deletes content no record references — content-store objects, per-repository links (including
 * those of unpublished repositories), what interrupted writers left, and directories left empty. What it may
 * delete is its back end's rule (backend.ts, beginGc): on a file system it runs after every running publisher has
 * finished and publishers wait for it; on a bucket, where there is no lock to take, it deletes only what was last
 * modified before `minAgeSeconds` ago, and a publisher refreshes any old object it reuses. Either way a blob a
 * publish is about to reference is never deleted. Refuses to run while any record is unreadable, since it cannot
 * know what that record needs.
 */
import { isDigest } from '../oci/digest.ts';
import { MANIFEST_KIND } from '../oci/media-types.ts';
import { DEFAULT_GC_MIN_AGE_SECONDS, type ListedObject } from '../store/backend.ts';
import {
  APP_PREFIX,
  blobLinkKey,
  CONTENT_PREFIX,
  contentKey,
  manifestLinkKey,
  WEB_PREFIX,
} from '../store/keys.ts';
import type { Tree } from '../store/tree.ts';
import { PublishError } from './publisher.ts';

export interface GcResult {
  dryRun: boolean;
  contentFiles: number;
  links: number;
  stagingFiles: number;
  /** Bytes freed (or, with dryRun, that would be): content and staging files, each counted once. */
  bytes: number;
  /** Unreferenced objects kept because they are newer than the back end's rule allows gc to take. */
  young: number;
  /** The back end's rule, in one sentence. */
  rule: string;
}

const KINDS = new Set(Object.values(MANIFEST_KIND));

/** Whether a key of v2/web is one of derrick's links: `<name>/blobs/<digest>`, `<name>/manifests/<kind>/<digest>`. */
function isLinkKey(key: string): boolean {
  const parts = key.split('/');
  const digest = parts.at(-1) ?? '';
  if (!isDigest(digest)) return false;
  if (parts.at(-2) === 'blobs') return true;
  return KINDS.has(parts.at(-2) ?? '') && parts.at(-3) === 'manifests';
}

export async function gc(
  tree: Tree,
  options: { dryRun: boolean; waitMs: number; onWait?: () => void; minAgeSeconds?: number },
): Promise<GcResult> {
  const { backend } = tree;
  const window = await backend.beginGc({
    timeoutMs: options.waitMs,
    minAgeSeconds: options.minAgeSeconds ?? DEFAULT_GC_MIN_AGE_SECONDS,
    ...(options.onWait ? { onWait: options.onWait } : {}),
  });
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
        referenced.add(contentKey(digest));
        links.add(manifestLinkKey(repository.name, entry.mediaType, digest));
      }
      for (const digest of repository.blobs.keys()) {
        referenced.add(contentKey(digest));
        links.add(blobLinkKey(repository.name, digest));
      }
    }

    const result: GcResult = {
      dryRun: options.dryRun,
      contentFiles: 0,
      links: 0,
      stagingFiles: 0,
      bytes: 0,
      young: 0,
      rule: window.rule,
    };
    /** Deletes an unreferenced object if the rule lets gc take it; true when it went (or would have). */
    const take = async (object: ListedObject): Promise<boolean> => {
      // Looked at again just before the delete: a publisher may have refreshed or rewritten it since the listing.
      const now = object.modified < window.cutoff ? await backend.stat(object.key) : object;
      if (!now) return false;
      if (now.modified >= window.cutoff) {
        result.young++;
        return false;
      }
      if (!options.dryRun) await backend.delete(object.key);
      return true;
    };

    // Sweep the content store: anything under v2/content that is not a referenced digest's key.
    for await (const object of backend.list(CONTENT_PREFIX)) {
      if (referenced.has(object.key)) continue;
      if (await take(object)) {
        result.bytes += object.size;
        result.contentFiles++;
      }
    }
    // Sweep per-repository links; whatever else is in v2/web is not ours: left alone.
    for await (const object of backend.list(WEB_PREFIX)) {
      if (links.has(object.key) || !isLinkKey(object.key)) continue;
      if (await take(object)) result.links++;
    }
    // What interrupted writers left.
    const debris = await backend.sweepDebris(window.cutoff, options.dryRun);
    result.stagingFiles = debris.count;
    result.bytes += debris.bytes;
    if (!options.dryRun) {
      await backend.tidy(WEB_PREFIX);
      await backend.tidy(APP_PREFIX);
    }
    return result;
  } finally {
    await window.release();
  }
}
