/**
 * An upstream of `derrick sync`: what the sync engine asks of a registry or of another derrick tree — the
 * repositories, their tags, the digest a tag names now (the one request a sync makes per tag when nothing
 * changed), manifests and small blobs (for a platform filter and created times), and a source to publish from.
 */
import { SourceError, type ImageSource } from '../source.ts';

export interface Upstream {
  /** How messages name it (`registry.example.com`, `/srv/registry`, `s3://bucket/prefix`). */
  readonly description: string;
  /** Every repository the upstream lists (a registry's `_catalog`, a tree's records). */
  repositories(): Promise<string[]>;
  /** The tags of `name`; undefined when there is no such repository. */
  tags(name: string): Promise<string[] | undefined>;
  /** The digest `name:tag` names now; undefined when the tag is gone. */
  digestOf(name: string, tag: string): Promise<string | undefined>;
  /** A manifest's bytes by digest (verified). */
  manifest(name: string, digest: string): Promise<Buffer>;
  /** A small blob (an image config) by digest, verified, at most 4 MiB. */
  smallBlob(name: string, digest: string): Promise<Buffer>;
  /** Opens `name@digest` as a publish source. */
  open(name: string, digest: string): Promise<ImageSource>;
  close(): Promise<void>;
}

/** An upstream that cannot answer (down, refusing, broken): the repository fails, the sync goes on. */
export class UpstreamError extends SourceError {
  constructor(message: string) {
    super(message);
    this.name = 'UpstreamError';
  }
}
