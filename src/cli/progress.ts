/** Progress for a terminal (a bar with bytes, rate and ETA), for a pipe (plain lines), or none (--json). */
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

export function terminalProgress(stream: NodeJS.WriteStream): Progress {
  let bar: cliProgress.SingleBar | undefined;
  let total = 0;
  let done = 0;
  let startedAt = Date.now();
  const stop = (): void => {
    bar?.stop();
    bar = undefined;
  };
  return {
    phase(label, totalBytes) {
      stop();
      total = totalBytes;
      done = 0;
      startedAt = Date.now();
      if (totalBytes === 0) return;
      bar = new cliProgress.SingleBar(
        {
          stream,
          format: `${label} [{bar}] {percentage}% | {doneText}/{totalText} | {rate}/s | ETA {eta_formatted}`,
          hideCursor: true,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(totalBytes, 0, { doneText: formatBytes(0), totalText: formatBytes(totalBytes), rate: '0 B' });
    },
    bytes(count) {
      done += count;
      if (!bar) return;
      const seconds = Math.max((Date.now() - startedAt) / 1000, 0.001);
      bar.update(Math.min(done, total), { doneText: formatBytes(done), rate: formatBytes(done / seconds) });
    },
    note(message) {
      if (bar) stream.write('\n');
      stream.write(`${message}\n`);
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
    note: (message) => stream.write(`${message}\n`),
    done: () => undefined,
  };
}
