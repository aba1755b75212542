/**
 * Where things live in the published tree. Every path is built from a name, tag or digest that has already been
 * validated (src/oci), so no path built here can leave the data directory.
 *
 *   <data>/v2/app/<name>.json                          repository records (one per repository)
 *   <data>/v2/web/<name>/blobs/<digest>                per-repository hard links to content, for nginx / a CDN
 *   <data>/v2/web/<name>/manifests/<kind>/<digest>     (kind = oci-manifest | oci-index | docker-v2 | docker-list)
 *   <data>/v2/content/<algorithm>/<hex>                every blob and manifest, once for the whole tree
 *   <data>/v2/.staging/                                in-flight writes (same file system, so rename is atomic)
 *   <data>/v2/.inflight/                               running publishers, so gc never races them
 */
import path from 'node:path';
import { isValidName } from '../oci/names.ts';
import { parseDigest } from '../oci/digest.ts';
import { MANIFEST_KIND, type ManifestMediaType } from '../oci/media-types.ts';

export const RECORD_SUFFIX = '.json';

export class TreeLayout {
  readonly root: string;
  readonly appDir: string;
  readonly webDir: string;
  readonly contentDir: string;
  readonly stagingDir: string;
  readonly inflightDir: string;

  constructor(dataDir: string) {
    this.root = path.resolve(dataDir);
    this.appDir = path.join(this.root, 'v2', 'app');
    this.webDir = path.join(this.root, 'v2', 'web');
    this.contentDir = path.join(this.root, 'v2', 'content');
    this.stagingDir = path.join(this.root, 'v2', '.staging');
    this.inflightDir = path.join(this.root, 'v2', '.inflight');
  }

  recordPath(name: string): string {
    assertName(name);
    return path.join(this.appDir, ...name.split('/')) + RECORD_SUFFIX;
  }

  repoWebDir(name: string): string {
    assertName(name);
    return path.join(this.webDir, ...name.split('/'));
  }

  blobLinkPath(name: string, digest: string): string {
    return path.join(this.repoWebDir(name), 'blobs', checkedDigest(digest));
  }

  manifestLinkPath(name: string, mediaType: ManifestMediaType, digest: string): string {
    return path.join(this.repoWebDir(name), 'manifests', MANIFEST_KIND[mediaType], checkedDigest(digest));
  }

  /** The web-relative path of a manifest or blob: what a redirect appends to the repository's base URL. */
  static manifestUrlPath(mediaType: ManifestMediaType, digest: string): string {
    return `manifests/${MANIFEST_KIND[mediaType]}/${checkedDigest(digest)}`;
  }

  static blobUrlPath(digest: string): string {
    return `blobs/${checkedDigest(digest)}`;
  }

  contentPath(digest: string): string {
    const parsed = parseDigest(digest);
    if ('error' in parsed) throw new Error(`internal: unchecked digest ${JSON.stringify(digest)}`);
    return path.join(this.contentDir, parsed.algorithm, parsed.hex);
  }

  stagingPath(id: string): string {
    return path.join(this.stagingDir, id);
  }
}

function assertName(name: string): void {
  // Callers validate and report; this is the last line of defence against a path leaving the tree.
  if (!isValidName(name)) throw new Error(`internal: unchecked repository name ${JSON.stringify(name)}`);
}

function checkedDigest(digest: string): string {
  if ('error' in parseDigest(digest)) throw new Error(`internal: unchecked digest ${JSON.stringify(digest)}`);
  return digest;
}
