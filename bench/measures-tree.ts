/**
 * The measures that are not HTTP load: how soon a publish is visible, and how fast a big image is published
 * compared with merely hashing it; and the tools they share with bench/measures-startup.ts (start-up and memory).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { openSource } from '../src/publish/open-source.ts';
import { silentProgress } from '../src/publish/progress.ts';
import { publish } from '../src/publish/publisher.ts';
import { unpublish } from '../src/publish/unpublish.ts';
import { Tree } from '../src/store/tree.ts';
import { derrickCli, layoutsOf, randomImageLayout, REPO_ROOT, type DerrickCli } from './fixtures.ts';
import { derrickServeArgs, MANIFEST_ACCEPT, SERVING_LINE } from './servers.ts';
import type { Fixtures, Row } from './types.ts';
import { exited, waitForExit } from '../test/helpers/processes.ts';

// ---------------------------------------------------------------------------------------------------------------
// Small tools

export function elapsedMs(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e6;
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Nearest-rank percentile. */
function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] ?? Number.NaN;
}

export function round(value: number, digits = 1): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

interface Answer {
  status: number;
  body: string;
}

/** One request with node:http (lighter than fetch, whose first use loads undici — not what start-up measures). */
export function request(
  url: string,
  options: { method?: string; headers?: http.OutgoingHttpHeaders; agent?: http.Agent | false } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: options.method ?? 'GET', headers: options.headers ?? {}, agent: options.agent ?? false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Runs a command with its output discarded; resolves when it exits 0. */
export function runQuiet(command: string, args: string[]): Promise<void> {
  const child = spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`${command} ${args.join(' ')} exited ${signal ?? code}: ${stderr}`)),
    );
  });
}

export async function timedRun(command: string, args: string[]): Promise<number> {
  const start = process.hrtime.bigint();
  await runQuiet(command, args);
  return elapsedMs(start);
}

/** Resident memory of a process and all its descendants (workers), in kB, from /proc. */
export async function residentKb(pid: number): Promise<number> {
  let total = 0;
  try {
    const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
    total += Number(/^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1] ?? 0);
  } catch {
    return 0; // gone
  }
  const tasks = await fs.readdir(`/proc/${pid}/task`).catch(() => []);
  for (const task of tasks) {
    const children = await fs.readFile(`/proc/${pid}/task/${task}/children`, 'utf8').catch(() => '');
    for (const child of children.split(/\s+/).filter(Boolean)) total += await residentKb(Number(child));
  }
  return total;
}

// ---------------------------------------------------------------------------------------------------------------
// derrick serve

/** One process (`--workers 1`), so start-up and memory are those of one server whatever the default becomes. */
export const ONE_WORKER = ['--workers', '1'];

export interface Serving {
  child: ChildProcess;
  pid: number;
  url: string;
  /** SIGTERM, then SIGKILL after 5 s; harmless when already stopped. */
  stop: () => Promise<void>;
}

/**
 * Starts `derrick serve --data-dir <dir> --listen 127.0.0.1:0 --no-access-log <args>` (`cli`, by default the
 * bundled CLI when built) and resolves once it prints the line naming its port. Stops it if it does not get there.
 * Its stdout goes to `onStdout` when given (else nowhere).
 */
export async function startServe(
  dataDir: string,
  args: string[],
  options: { cli?: DerrickCli; timeoutMs?: number; onStdout?: (chunk: Buffer) => void } = {},
): Promise<Serving> {
  const { cli = derrickCli('serve'), timeoutMs = 60_000, onStdout } = options;
  const child = spawn(cli.command, [...cli.args, ...derrickServeArgs(dataDir, '127.0.0.1:0'), ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', onStdout ? 'pipe' : 'ignore', 'pipe'],
  });
  if (onStdout) child.stdout?.on('data', onStdout);
  const stop = async (): Promise<void> => {
    if (exited(child)) return;
    child.kill('SIGTERM');
    if (!(await waitForExit(child, 5000))) {
      child.kill('SIGKILL');
      await waitForExit(child, 5000);
    }
  };
  let stderr = '';
  try {
    const port = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`derrick serve did not listen within ${timeoutMs} ms: ${stderr}`)),
        timeoutMs,
      );
      child.stderr?.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        const match = SERVING_LINE.exec(stderr);
        if (match) {
          clearTimeout(timer);
          resolve(match[2] ?? '');
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`derrick serve exited (${signal ?? code}) before listening: ${stderr}`));
      });
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    if (child.pid === undefined) throw new Error('derrick serve has no pid');
    return { child, pid: child.pid, url: `http://127.0.0.1:${port}`, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Publish → visible

const VISIBLE = 'bench/visible';

async function removeVisible(tree: Tree): Promise<void> {
  const lookup = await tree.readRecord(VISIBLE);
  if (lookup.found) await unpublish(tree, { name: VISIBLE, tag: undefined, digest: undefined }, 60_000);
}

/**
 * With `derrick serve` (serve mode) running on the main tree: `publishes` times, publish a new tag `v<i>` of the
 * small image into bench/visible (in process, as the CLI does: the same publish(), openSource and progress), and
 * the moment publish() resolves, HEAD the new tag. Anything but 200 is a miss. bench/visible is removed after.
 */
export async function measureVisibility(fixtures: Fixtures, options: { publishes: number }): Promise<Row[]> {
  const tree = new Tree(fixtures.dataDir);
  const source = `oci:${layoutsOf(fixtures).small}:latest`;
  await removeVisible(tree);
  const server = await startServe(fixtures.dataDir, ['--mode', 'serve', ...ONE_WORKER]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const delays: number[] = [];
  const publishTimes: number[] = [];
  const missed: string[] = [];
  try {
    for (let i = 0; i < options.publishes; i++) {
      const tag = `v${i}`;
      const started = process.hrtime.bigint();
      await publish({
        tree,
        openSource: () => openSource(source, tree.backend.scratchDir),
        destinations: [{ name: VISIBLE, tags: [tag] }],
        allTags: false,
        baseUrl: undefined,
        protected: undefined,
        lockTimeoutMs: 600_000,
        progress: silentProgress,
      });
      const published = process.hrtime.bigint();
      publishTimes.push(Number(published - started) / 1e6);
      const answer = await request(`${server.url}/v2/${VISIBLE}/manifests/${tag}`, {
        method: 'HEAD',
        headers: { accept: MANIFEST_ACCEPT },
        agent,
      });
      delays.push(elapsedMs(published));
      if (answer.status !== 200) missed.push(`${tag}: ${answer.status}`);
    }
  } finally {
    agent.destroy();
    await server.stop();
    await removeVisible(tree);
  }
  const n = options.publishes.toLocaleString('en-US');
  return [
    {
      measure: `publish → visible: misses in ${n} publishes`,
      value: missed.length,
      unit: 'misses',
      target: '0 misses',
      met: missed.length === 0,
      note: `HEAD /v2/${VISIBLE}/manifests/v<i> the moment publish() resolves (in process; serve mode)${
        missed.length > 0 ? `; missed: ${missed.slice(0, 5).join(', ')}${missed.length > 5 ? ', …' : ''}` : ''
      }`,
    },
    {
      measure: 'publish → visible delay',
      value: round(median(delays), 2),
      unit: 'ms',
      note: `median ${round(median(delays), 2)} ms, p99 ${round(percentile(delays, 99), 2)} ms over ${n} publishes, from publish() resolving to the HEAD's answer (keep-alive); each publish took ${round(median(publishTimes))} ms median`,
    },
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Publish throughput

function sizeLabel(bytes: number): string {
  const gib = 1024 ** 3;
  const mib = 1024 ** 2;
  if (bytes >= gib && bytes % gib === 0) return `${bytes / gib} GiB`;
  if (bytes >= mib && bytes % mib === 0) return `${bytes / mib} MiB`;
  return `${bytes} B`;
}

/**
 * An image with one random layer of `bytes`: `derrick publish` (the real CLI, into a fresh tree each round,
 * start-up and fsync included) against `sha256sum` of the layer file — both reading from the page cache after a
 * warm-up `cat` — 3 rounds alternating, medians. MB = 10^6 bytes.
 */
export async function measurePublishThroughput(
  fixtures: Fixtures,
  options: { bytes: number },
): Promise<Row[]> {
  const dir = path.join(fixtures.workDir, 'throughput');
  await fs.rm(dir, { recursive: true, force: true });
  try {
    // The full-size fixtures already hold a 1 GiB random image: publish that one rather than write another.
    const reuse = fixtures.blob1GiB?.size === options.bytes ? fixtures.blob1GiB : undefined;
    const layout = reuse ? layoutsOf(fixtures).blob1g : path.join(dir, 'layout');
    const layerFile = reuse
      ? path.join(layout, 'blobs', 'sha256', reuse.digest.slice(7))
      : (await randomImageLayout(layout, options.bytes)).layerFile;
    await runQuiet('cat', [layerFile]);
    const cli = derrickCli();
    const startupMs = await timedRun(cli.command, [...cli.args, '--version']);
    const hashMs: number[] = [];
    const publishMs: number[] = [];
    for (let round = 0; round < 3; round++) {
      hashMs.push(await timedRun('sha256sum', [layerFile]));
      const dataDir = path.join(dir, `data-${round}`);
      publishMs.push(
        await timedRun(cli.command, [
          ...cli.args,
          'publish',
          `oci:${layout}:latest`,
          'bench/throughput',
          '--data-dir',
          dataDir,
          '-q',
        ]),
      );
      await fs.rm(dataDir, { recursive: true, force: true });
    }
    const mbPerSecond = (ms: number) => options.bytes / 1e6 / (ms / 1000);
    const value = round(mbPerSecond(median(publishMs)));
    const reference = round(mbPerSecond(median(hashMs)));
    const ratio = round(value / reference, 2);
    return [
      {
        measure: `publish of a ${sizeLabel(options.bytes)} image`,
        value,
        unit: 'MB/s',
        reference: { name: 'sha256sum', value: reference },
        ratio,
        target: '≥ 0.8× sha256sum',
        met: ratio >= 0.8,
        note: `median of 3: publish ${round(median(publishMs))} ms, sha256sum ${round(median(hashMs))} ms (page cache warm); publish includes derrick's start-up (~${round(startupMs)} ms for --version, from ${cli.from}), the copy into a fresh tree and its fsync`,
      },
    ];
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
