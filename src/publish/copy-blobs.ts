/**
 * Phase A's blob copies (publisher.ts): every blob the content store lacks, staged from the source and verified
 * against its digest as the bytes flow, `jobs` at once. The first copy that fails stops the others — they share
 * a signal of their own, chained to the caller's (Ctrl-C) — and whatever was staged is in `pending`, which the
 * publisher commits in phase B or discards, so a failure leaves only the tree as it was.
 *
 * From a remote source (a registry) each blob is committed under its content address as soon as it is verified
 * instead: a publish killed with `kill -9` and run again then finds it (the publisher's reuse()) and does not
 * fetch it again. That changes nothing a client sees — only a record and the links under a repository make
 * content visible, and the publish writes those in phase B — and a blob no record ever references is unreferenced
 * content, which `derrick gc` removes (and `derrick verify`, which checks what records reference, ignores).
 */
import type { Pending } from '../store/backend.ts';
import { contentKey } from '../store/keys.ts';
import type { Tree } from '../store/tree.ts';
import { atOnce } from './at-once.ts';
import { mayBeAbsent, type Collected } from './collect.ts';
import type { Progress } from './progress.ts';
import { SourceError, type ImageSource } from './source.ts';

export interface CopyJob {
  tree: Tree;
  source: ImageSource;
  collected: Collected;
  toCopy: readonly { digest: string; size: number }[];
  jobs: number;
  progress: Progress;
  /** Where each staged blob goes, as soon as it is staged: the caller commits or discards them all. */
  pending: Pending[];
  signal: AbortSignal | undefined;
}

export interface Copied {
  /** Non-distributable layers the source does not carry, in the manifests' order. */
  foreignLayers: string[];
  blobsCopied: number;
  bytesCopied: number;
}

export async function copyBlobs(job: CopyJob): Promise<Copied> {
  const { tree, source, collected, progress, pending, signal } = job;
  const foreign = new Set<string>();
  let blobsCopied = 0;
  let bytesCopied = 0;
  const copies = new AbortController();
  const stopCopies = (): void => copies.abort(signal?.reason);
  if (signal?.aborted) stopCopies();
  else signal?.addEventListener('abort', stopCopies, { once: true });

  const copyOne = async (blob: { digest: string; size: number }): Promise<void> => {
    copies.signal.throwIfAborted();
    const bytes = await source.blob(blob.digest);
    if (!bytes) {
      const info = collected.blobs.get(blob.digest);
      if (info && mayBeAbsent(info)) {
        foreign.add(blob.digest);
        return;
      }
      throw new SourceError(
        `${source.description}: blob ${blob.digest} (used by manifest ${info?.usedBy ?? '?'}) is missing from the source`,
      );
    }
    const put = { source: bytes.where, size: blob.size, signal: copies.signal };
    const key = contentKey(blob.digest);
    let staged: Pending;
    if (bytes.kind === 'staged') {
      staged = await tree.backend.stage(key, { kind: 'staged', file: bytes.file }, blob.digest, put);
      progress.bytes(bytes.file.size);
    } else {
      progress.blobStart(blob.digest, blob.size);
      try {
        const stream = await bytes.open();
        const onBytes = (count: number): void => progress.blobBytes(blob.digest, count);
        staged = await tree.backend.stage(key, { kind: 'stream', stream }, blob.digest, { ...put, onBytes });
      } finally {
        progress.blobDone(blob.digest);
      }
    }
    if (source.remote) await commitNow(staged);
    else pending.push(staged);
    blobsCopied++;
    bytesCopied += blob.size;
  };

  let failure: { error: unknown } | undefined;
  try {
    await atOnce(
      job.toCopy,
      (blob) =>
        failure
          ? Promise.resolve()
          : copyOne(blob).catch((error: unknown) => {
              failure ??= { error };
              copies.abort(error);
            }),
      job.jobs,
    );
  } finally {
    signal?.removeEventListener('abort', stopCopies);
  }
  if (failure) throw failure.error;
  const foreignLayers = job.toCopy.map((blob) => blob.digest).filter((digest) => foreign.has(digest));
  return { foreignLayers, blobsCopied, bytesCopied };
}

/** Commits a verified blob at once (a remote source: see above); a commit that fails leaves nothing staged. */
async function commitNow(staged: Pending): Promise<void> {
  try {
    await staged.commit();
  } catch (error) {
    await staged.discard();
    throw error;
  }
}
