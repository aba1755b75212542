/**
 * `derrick serve` as the real CLI (from source, through tsx), on 127.0.0.1 and a port the kernel picks, for
 * end-to-end tests with real clients. The port comes from the line the CLI prints once it listens:
 * `derrick: serving <dir> on http://127.0.0.1:<port> (mode …)`.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { startDerrick } from './cli.ts';
import { exited, waitForExit, waitForPrinted } from './processes.ts';

const READY = /^derrick: serving (.+) on (https?):\/\/127\.0\.0\.1:(\d+) \(mode (\w+)\)$/m;

export interface DerrickServer {
  /** `127.0.0.1:<port>`: what goes before the repository name in an image reference. */
  host: string;
  port: number;
  /** `http://127.0.0.1:<port>`, or `https://…` when the configuration sets tls. */
  url: string;
  /** The mode the CLI reports. */
  mode: string;
  /** The serving process (the cluster primary when there are workers). */
  pid: number;
  /** Everything the server printed so far (stdout and stderr). */
  output: () => string;
  /** What it printed on stdout alone (the access log). */
  stdout: () => string;
  /**
   * Resolves with the output once `pattern` (made global here) has matched `count` (default 1) times in what was
   * printed from offset `from` (default 0: all of it; pass `output().length` taken before a signal to see only
   * what followed it). Rejects when the server exits first, or after `timeoutMs` (a safety net, default 30 s).
   */
  waitForOutput: (pattern: RegExp, options?: WaitForOutputOptions) => Promise<string>;
  /**
   * SIGTERM, then SIGKILL if it has not exited after `graceMs`. Resolves to how it ended; `killed` says the
   * SIGKILL was needed. Stopping twice is harmless.
   */
  stop: (graceMs?: number) => Promise<{ code: number | null; signal: string | null; killed: boolean }>;
  /**
   * How it ended, once it exits by itself (after a signal the test sent: a second SIGTERM from stop() could meet
   * a process already on its way out). Rejects after `timeoutMs` (default 60 s).
   */
  ended: (timeoutMs?: number) => Promise<{ code: number | null; signal: string | null }>;
}

export interface WaitForOutputOptions {
  from?: number;
  count?: number;
  timeoutMs?: number;
}

export interface DerrickServerOptions {
  /** More `serve` flags, e.g. `['--mode', 'redirect', '--redirect-url', url]`. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** An installed `derrick` executable to run instead of the CLI from source. */
  bin?: string;
  /** How long to wait for the "serving" line (tsx compiles the CLI first, which is slow on a busy box). */
  timeoutMs?: number;
  /** false: no `--listen` flag, the configuration file names the address (a 127.0.0.1 one). */
  listenFlag?: boolean;
}

/**
 * Starts `derrick serve --data-dir <dataDir> --listen 127.0.0.1:0 --no-access-log <args>`. serve refuses a
 * directory that is not a published tree, so a `dataDir` nothing has been published into yet is made an empty tree
 * (a directory only: a URL such as `s3://bucket/prefix` is left to the back end).
 */
export async function startDerrickServer(
  dataDir: string,
  options: DerrickServerOptions = {},
): Promise<DerrickServer> {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(dataDir)) mkdirSync(path.join(dataDir, 'v2'), { recursive: true });
  const args = [
    'serve',
    '--data-dir',
    dataDir,
    ...(options.listenFlag === false ? [] : ['--listen', '127.0.0.1:0']),
    '--no-access-log',
    ...(options.args ?? []),
  ];
  const child = startDerrick(args, {
    ...(options.env ? { env: options.env } : {}),
    ...(options.bin ? { bin: options.bin } : {}),
  });
  let output = '';
  let stderr = '';
  let stdout = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    stderr += chunk.toString();
  });
  let killed = false;
  const stop = async (graceMs = 5000) => {
    if (!exited(child)) {
      child.kill('SIGTERM');
      if (!(await waitForExit(child, graceMs))) {
        killed = true;
        child.kill('SIGKILL');
        await waitForExit(child, 5000);
      }
    }
    return { code: child.exitCode, signal: child.signalCode, killed };
  };

  const timeoutMs = options.timeoutMs ?? 30000;
  await waitForPrinted(
    child,
    () => READY.test(stderr),
    (ended) =>
      new Error(
        ended === undefined
          ? `derrick serve printed no "serving" line within ${timeoutMs} ms:\n${output}`
          : `derrick serve exited (${ended}) before listening:\n${output}`,
      ),
    timeoutMs,
  ).catch(async (error: unknown) => {
    await stop();
    throw error;
  });
  const ready = READY.exec(stderr) ?? [];

  const waitForOutput = async (pattern: RegExp, options: WaitForOutputOptions = {}): Promise<string> => {
    const { from = 0, count = 1, timeoutMs: waitMs = 30000 } = options;
    const global = new RegExp(
      pattern.source,
      pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`,
    );
    await waitForPrinted(
      child,
      // The output listeners above were added first, so `output` already holds each chunk.
      () => (output.slice(from).match(global)?.length ?? 0) >= count,
      (ended) =>
        new Error(
          ended === undefined
            ? `derrick serve did not print ${pattern} ×${count} within ${waitMs} ms:\n${output.slice(from)}`
            : `derrick serve exited (${ended}) before printing ${pattern}:\n${output.slice(from)}`,
        ),
      waitMs,
    );
    return output;
  };

  const [, , scheme = 'http', port = '', mode = ''] = ready;
  return {
    host: `127.0.0.1:${port}`,
    port: Number(port),
    url: `${scheme}://127.0.0.1:${port}`,
    mode,
    pid: child.pid ?? 0,
    output: () => output,
    stdout: () => stdout,
    waitForOutput,
    stop,
    ended: async (waitMs = 60_000) => {
      if (!(await waitForExit(child, waitMs)))
        throw new Error(`derrick serve still runs after ${waitMs} ms:\n${output}`);
      return { code: child.exitCode, signal: child.signalCode };
    },
  };
}
