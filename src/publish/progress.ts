/**
 * How long operations report progress; the CLI renders it (bars on a TTY, plain lines otherwise, JSON lines with
 * --json, or nothing). A publish copies several blobs at once, so besides the phase's total it reports each blob
 * it copies: when it starts, its bytes as they arrive, and when it is done.
 */
export interface Progress {
  /** A new phase with the bytes it will move (0 when unknown). */
  phase(label: string, totalBytes: number): void;
  /** Bytes of the phase's total moved outside any blob's copy (a docker-archive read, a blob already staged). */
  bytes(count: number): void;
  /** A blob's copy has begun. */
  blobStart(digest: string, size: number): void;
  /** Bytes of that blob (they count towards the phase's total too). */
  blobBytes(digest: string, count: number): void;
  /** That blob's copy has ended (stored, or stopped). */
  blobDone(digest: string): void;
  /** Something worth a line of its own (waiting for a lock, a layer skipped). */
  note(message: string): void;
  done(): void;
}

export const silentProgress: Progress = {
  phase: () => undefined,
  bytes: () => undefined,
  blobStart: () => undefined,
  blobBytes: () => undefined,
  blobDone: () => undefined,
  note: () => undefined,
  done: () => undefined,
};
