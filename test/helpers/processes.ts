/** Waiting for child processes (to exit, to print), shared by the test helpers and the benchmark harness. */
import type { ChildProcess } from 'node:child_process';

export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Resolves true once `child` has exited, or false after `ms` milliseconds. */
export function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Stops `child`: SIGTERM, then SIGKILL if it has not exited 5 s later; resolves once it has exited. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (exited(child)) return;
  child.kill('SIGTERM');
  if (await waitForExit(child, 5000)) return;
  child.kill('SIGKILL');
  await waitForExit(child, 5000);
}

/**
 * Resolves once `printed()` holds: at once, or after a chunk `child` writes to stdout or stderr (collect its output
 * in listeners added before this is called, so that `printed` sees each chunk). Rejects with `failure(ended)` when
 * the child has exited or exits first (`ended`: its signal or exit code), or when `timeoutMs` is given and passes
 * first (`ended`: undefined); with the error when the child cannot be started.
 */
export function waitForPrinted(
  child: ChildProcess,
  printed: () => boolean,
  failure: (ended: string | undefined) => Error,
  timeoutMs?: number,
): Promise<void> {
  if (printed()) return Promise.resolve();
  if (exited(child)) return Promise.reject(failure(String(child.signalCode ?? child.exitCode)));
  return new Promise((resolve, reject) => {
    const timer =
      timeoutMs === undefined ? undefined : setTimeout(() => finish(failure(undefined)), timeoutMs);
    const onData = (): void => {
      if (printed()) finish();
    };
    const onExit = (code: number | null, signal: string | null): void =>
      finish(failure(String(signal ?? code)));
    const onError = (error: Error): void => finish(error);
    function finish(error?: Error): void {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
      if (error) reject(error);
      else resolve();
    }
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}
