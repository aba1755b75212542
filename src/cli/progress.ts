/**
 * Progress for a terminal (a bar for the phase's total with bytes, rate and ETA, and one bar per blob being copied,
 * removed when it is done), for a pipe (plain lines), or none. --json has its own: progress-json.ts.
 */
import cliProgress from 'cli-progress';
import type { Progress } from '../publish/progress.ts';

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit] ?? 'B'}`;
}

/** A digest as a bar names it: its first 12 hex digits, as docker and podman show image IDs. */
export function shortDigest(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1, digest.indexOf(':') + 13);
}

export function terminalProgress(stream: NodeJS.WriteStream): Progress {
  let bars: cliProgress.MultiBar | undefined;
  let totalBar: cliProgress.SingleBar | undefined;
  const blobs = new Map<string, { bar: cliProgress.SingleBar; done: number }>();
  let total = 0;
  let done = 0;
  let startedAt = Date.now();
  const stop = (): void => {
    bars?.stop();
    bars = undefined;
    totalBar = undefined;
    blobs.clear();
  };
  const moved = (count: number): void => {
    done += count;
    const seconds = Math.max((Date.now() - startedAt) / 1000, 0.001);
    totalBar?.update(Math.min(done, total), {
      doneText: formatBytes(done),
      rate: formatBytes(done / seconds),
    });
  };
  return {
    phase(label, totalBytes) {
      stop();
      total = totalBytes;
      done = 0;
      startedAt = Date.now();
      if (totalBytes === 0) return;
      bars = new cliProgress.MultiBar(
        {
          stream,
          format: `${label} [{bar}] {percentage}% | {doneText}/{totalText} | {rate}/s | ETA {eta_formatted}`,
          hideCursor: true,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
      totalBar = bars.create(totalBytes, 0, {
        doneText: formatBytes(0),
        totalText: formatBytes(totalBytes),
        rate: '0 B',
      });
    },
    bytes: moved,
    blobStart(digest, size) {
      if (!bars) return;
      const bar = bars.create(
        Math.max(size, 1),
        0,
        { digest: shortDigest(digest), doneText: formatBytes(0), totalText: formatBytes(size) },
        { format: '  {digest} [{bar}] {percentage}% | {doneText}/{totalText}' },
      );
      blobs.set(digest, { bar, done: 0 });
      bars.update(); // drawn now, not at the next tick: a blob shorter than a tick is still seen
    },
    blobBytes(digest, count) {
      moved(count);
      const blob = blobs.get(digest);
      if (!blob) return;
      blob.done += count;
      blob.bar.update(blob.done, { doneText: formatBytes(blob.done) });
    },
    blobDone(digest) {
      const blob = blobs.get(digest);
      if (!blob) return;
      blobs.delete(digest);
      bars?.remove(blob.bar);
    },
    note(message) {
      if (!bars) {
        stream.write(`${message}\n`);
        return;
      }
      bars.log(`${message}\n`);
      bars.update();
    },
    done: stop,
  };
}

/** Plain lines: notes always, each phase and its size only with `phases` (--verbose). */
export function lineProgress(stream: NodeJS.WritableStream, options: { phases: boolean }): Progress {
  return {
    phase(label, totalBytes) {
      if (options.phases && totalBytes > 0) stream.write(`${label} ${formatBytes(totalBytes)}\n`);
    },
    bytes: () => undefined,
    blobStart: () => undefined,
    blobBytes: () => undefined,
    blobDone: () => undefined,
    note: (message) => stream.write(`${message}\n`),
    done: () => undefined,
  };
}
