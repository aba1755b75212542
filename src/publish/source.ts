/**
 * Image sources: where `derrick publish` reads images from. Each source yields the images a reference selects,
 * manifest bytes, and blob bytes; the publisher verifies every digest itself, so a source only has to find bytes.
 */
import { promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import type { StagedFile } from '../store/content.ts';

/** A manifest the source names: a root to publish, or a candidate referrer. */
export interface SourceManifest {
  digest: string;
  mediaType: string | undefined;
  size: number | undefined;
  /** The name the source gives it (an OCI ref name, a docker-archive RepoTag's tag), if any. */
  refName: string | undefined;
  /**
   * A root always published under exactly this tag, whatever tags the destination names: a cosign signature found
   * by its tag `sha256-<hex>.sig`, which is how cosign finds it in the destination too.
   */
  tag?: string;
}

export type BlobBytes =
  | { kind: 'stream'; open: () => Promise<Readable>; where: string }
  /** Already hashed and fsynced into staging while the source was read (docker-archive). */
  | { kind: 'staged'; file: StagedFile; where: string };

export interface ImageSource {
  /** How the user wrote it, for messages. */
  readonly description: string;
  /**
   * Whether reading it again costs a transfer (a registry): then each blob is committed to the content store as
   * soon as it is verified, so a publish killed mid-way and run again does not fetch it again (publisher.ts).
   */
  readonly remote?: boolean;
  /** The images the reference selects (`allTags`: every image the source names). */
  roots(allTags: boolean): Promise<SourceManifest[]>;
  /** Other manifests the source holds that may be referrers (OCI 1.1 `subject`) of what is published. */
  candidateReferrers(): Promise<SourceManifest[]>;
  /** Manifest bytes by digest; undefined when the source does not have it. */
  readManifest(digest: string): Promise<{ bytes: Buffer; where: string } | undefined>;
  /** Blob bytes by digest; undefined when the source does not have it. */
  blob(digest: string): Promise<BlobBytes | undefined>;
  /** Releases what the source holds (staging files it made and the publisher did not adopt). */
  close(): Promise<void>;
}

/** A source that cannot be read as the user asked: the message says what and what to do. */
export class SourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SourceError';
  }
}

/** The reason an I/O error gives, in words (no stack, no errno jargon for the common cases). */
export function ioReason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'no such file or directory';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'it is a directory';
  return error instanceof Error ? error.message : String(error);
}

/** A manifest file of a directory source: its bytes, or undefined when there is no such file. */
export async function readManifestFile(file: string): Promise<{ bytes: Buffer; where: string } | undefined> {
  try {
    return { bytes: await fs.readFile(file), where: file };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SourceError(`cannot read ${file}: ${ioReason(error)}`);
  }
}

/** A blob file of a directory source, streamed when the publisher needs it; undefined when absent. */
export async function fileBlob(file: string): Promise<BlobBytes | undefined> {
  const stat = await fs.stat(file).catch(() => undefined);
  if (!stat) return undefined;
  if (!stat.isFile()) throw new SourceError(`${file} is not a regular file`);
  const open = async (): Promise<Readable> => {
    // Open first, so a permission error is an answer here, not an 'error' event nobody listens to yet.
    const handle = await fs.open(file, 'r').catch((error: unknown) => {
      throw new SourceError(`cannot read ${file}: ${ioReason(error)}`);
    });
    // 1 MiB reads, not the default 64 KiB: a sixteenth of the reads, callbacks and buffers for the collector.
    return handle.createReadStream({ highWaterMark: 1024 * 1024 });
  };
  return { kind: 'stream', open, where: file };
}
