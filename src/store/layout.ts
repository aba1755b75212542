/**
 * Where the keys of the published tree (keys.ts) live in a directory on a file system, and the file-system back
 * end's own directories beside them:
 *
 *   <data>/v2/.staging/      in-flight writes (same file system, so rename is atomic)
 *   <data>/v2/.inflight/     running publishers, so gc never races them
 */
import path from 'node:path';
import type { ManifestMediaType } from '../oci/media-types.ts';
import { blobLinkKey, contentKey, manifestLinkKey, recordKey, webPrefix } from './keys.ts';

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

  /** The file of a key (keys are built from validated parts, so the path stays inside the tree). */
  pathOf(key: string): string {
    return path.join(this.root, ...key.split('/'));
  }

  /** The key of a file inside the tree. */
  keyOf(file: string): string {
    return path.relative(this.root, file).split(path.sep).join('/');
  }

  recordPath(name: string): string {
    return this.pathOf(recordKey(name));
  }

  repoWebDir(name: string): string {
    return this.pathOf(webPrefix(name).slice(0, -1));
  }

  blobLinkPath(name: string, digest: string): string {
    return this.pathOf(blobLinkKey(name, digest));
  }

  manifestLinkPath(name: string, mediaType: ManifestMediaType, digest: string): string {
    return this.pathOf(manifestLinkKey(name, mediaType, digest));
  }

  contentPath(digest: string): string {
    return this.pathOf(contentKey(digest));
  }
}
