/**
 * `derrick publish --json`: progress for a program, as JSON lines on stderr (stdout keeps the one JSON document of
 * the result, as before). One object a line, each with an `event`:
 *
 *   {"event":"phase","label":"copying","totalBytes":N}
 *   {"event":"blob-start","digest":"sha256:…","size":N}
 *   {"event":"blob","digest":"sha256:…","size":N,"done":N}      at most every 250 ms per blob
 *   {"event":"blob-done","digest":"sha256:…","size":N,"done":N}
 *   {"event":"total","done":N,"totalBytes":N}                    at most every 250 ms
 *   {"event":"note","message":"…"}
 *   {"event":"end","done":N,"totalBytes":N}                      once, whether the publish succeeded or not
 *
 * An error is still the one line `derrick: …` (not JSON), after which the process exits non-zero.
 */
import type { Progress } from '../publish/progress.ts';

/** The least time between two `blob` events of one blob, or two `total` events. */
const EVERY_MS = 250;

export function jsonProgress(stream: NodeJS.WritableStream, now: () => number = Date.now): Progress {
  const emit = (event: Record<string, unknown>): void => {
    stream.write(`${JSON.stringify(event)}\n`);
  };
  const blobs = new Map<string, { size: number; done: number; saidAt: number }>();
  let total = 0;
  let done = 0;
  let totalSaidAt = 0;
  let ended = false;
  const moved = (count: number): void => {
    done += count;
    if (now() - totalSaidAt < EVERY_MS) return;
    totalSaidAt = now();
    emit({ event: 'total', done, totalBytes: total });
  };
  return {
    phase(label, totalBytes) {
      total = totalBytes;
      done = 0;
      totalSaidAt = now();
      emit({ event: 'phase', label, totalBytes });
    },
    bytes: moved,
    blobStart(digest, size) {
      blobs.set(digest, { size, done: 0, saidAt: now() });
      emit({ event: 'blob-start', digest, size });
    },
    blobBytes(digest, count) {
      moved(count);
      const blob = blobs.get(digest);
      if (!blob) return;
      blob.done += count;
      if (now() - blob.saidAt < EVERY_MS) return;
      blob.saidAt = now();
      emit({ event: 'blob', digest, size: blob.size, done: blob.done });
    },
    blobDone(digest) {
      const blob = blobs.get(digest);
      if (!blob) return;
      blobs.delete(digest);
      emit({ event: 'blob-done', digest, size: blob.size, done: blob.done });
    },
    note: (message) => emit({ event: 'note', message }),
    done() {
      if (ended) return;
      ended = true;
      emit({ event: 'end', done, totalBytes: total });
    },
  };
}
