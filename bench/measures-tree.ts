/**
 * The measures that are not HTTP load: start-up time and memory against the size of the tree, how soon a publish
 * is visible, and how fast a big image is published compared with merely hashing it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openSource } from '../src/publish/open-source.ts';
import { silentProgress } from '../src/publish/progress.ts';
import { publish } from '../src/publish/publisher.ts';
import { unpublish } from '../src/publish/unpublish.ts';
import { Tree } from '../src/store/tree.ts';
import { derrickCli, generatedName, layoutsOf, randomImageLayout, REPO_ROOT } from './fixtures.ts';
import { derrickServeArgs, MANIFEST_ACCEPT, SERVING_LINE } from './servers.ts';
import type { Fixtures, Row } from './types.ts';
import { exited, waitForExit } from '../test/helpers/processes.ts';

// ---------------------------------------------------------------------------------------------------------------
// Small tools

function elapsedMs(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e6;
}

function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Nearest-rank percentile. */
function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] ?? Number.NaN;
}

function round(value: number, digits = 1): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

interface Answer {
  status: number;
  body: string;
}

/** One request with node:http (lighter than fetch, whose first use loads undici — not what start-up measures). */
function request(
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
function runQuiet(command: string, args: string[]): Promise<void> {
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

async function timedRun(command: string, args: string[]): Promise<number> {
  const start = process.hrtime.bigint();
  await runQuiet(command, args);
  return elapsedMs(start);
}

/** Resident memory of a process and all its descendants (workers), in kB, from /proc. */
async function residentKb(pid: number): Promise<number> {
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
const ONE_WORKER = ['--workers', '1'];

interface Serving {
  child: ChildProcess;
  pid: number;
  url: string;
  /** SIGTERM, then SIGKILL after 5 s; harmless when already stopped. */
  stop: () => Promise<void>;
}

/**
 * Starts `derrick serve --data-dir <dir> --listen 127.0.0.1:0 --no-access-log <args>` (the compiled CLI when
 * built) and resolves once it prints the line naming its port. Stops it if it does not get there.
 */
async function startServe(dataDir: string, args: string[], timeoutMs = 60_000): Promise<Serving> {
  const cli = derrickCli();
  const child = spawn(cli.command, [...cli.args, ...derrickServeArgs(dataDir, '127.0.0.1:0'), ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
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
      child.stderr.on('data', (chunk: Buffer) => {
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
// Start-up and memory against the size of the tree

/** The `last=` values of `count` catalog pages spread evenly over a generated tree of `repositories`. */
function spreadLasts(repositories: number, count: number): (string | undefined)[] {
  const lasts: (string | undefined)[] = [undefined];
  for (let i = 1; i < count; i++) lasts.push(generatedName(Math.floor((i * repositories) / count)));
  return lasts;
}

/**
 * For each generated tree: the time from spawning `derrick serve` to its first successful `GET /v2/_catalog?n=10`,
 * and its resident memory after 200 catalog pages (n=100) spread over the tree — each the median over `rounds`
 * fresh servers.
 */
export async function measureStartup(fixtures: Fixtures, options: { rounds: number }): Promise<Row[]> {
  const results: { repositories: number; startup: number[]; rss: number[]; rssAtStart: number[] }[] = [];
  for (const tree of [...fixtures.trees].sort((a, b) => a.repositories - b.repositories)) {
    const startup: number[] = [];
    const rss: number[] = [];
    const rssAtStart: number[] = [];
    const lasts = spreadLasts(tree.repositories, 200);
    for (let round = 0; round < options.rounds; round++) {
      const spawnedAt = process.hrtime.bigint();
      const server = await startServe(tree.dataDir, ONE_WORKER);
      try {
        // The server listens once it prints its port; the first answer is what a client (or a probe) waits for.
        const deadline = Date.now() + 30_000;
        for (;;) {
          const answer = await request(`${server.url}/v2/_catalog?n=10`).catch(() => undefined);
          if (answer?.status === 200) break;
          if (Date.now() > deadline) {
            throw new Error(`no 200 from ${server.url}/v2/_catalog within 30 s (last: ${answer?.status})`);
          }
          await sleep(5);
        }
        startup.push(elapsedMs(spawnedAt));
        rssAtStart.push((await residentKb(server.pid)) / 1024);

        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        try {
          for (const last of lasts) {
            const query = last === undefined ? '' : `&last=${encodeURIComponent(last)}`;
            const answer = await request(`${server.url}/v2/_catalog?n=100${query}`, { agent });
            if (answer.status !== 200) throw new Error(`_catalog answered ${answer.status}: ${answer.body}`);
          }
        } finally {
          agent.destroy();
        }
        rss.push((await residentKb(server.pid)) / 1024);
      } finally {
        await server.stop();
      }
    }
    results.push({ repositories: tree.repositories, startup, rss, rssAtStart });
  }

  const rows: Row[] = [];
  const smallest = results[0];
  const largest = results[results.length - 1];
  const rule = (bound: string) =>
    `met when the largest tree is ${bound} and at most 1.5× the smallest tree (${smallest?.repositories ?? 0} repositories)`;
  const cliNote = `derrick serve --workers 1 from ${derrickCli().from}`;
  for (const [kind, unit, bound, limit] of [
    ['startup', 'ms', '< 500 ms', 500],
    ['rss', 'MB', '< 100 MB', 100],
  ] as const) {
    for (const result of results) {
      const values = result[kind];
      const value = round(median(values));
      const row: Row = {
        measure:
          kind === 'startup'
            ? `start-up to first answer, ${result.repositories.toLocaleString('en-US')} repositories`
            : `RSS after 200 catalog pages, ${result.repositories.toLocaleString('en-US')} repositories`,
        value,
        unit,
        note: `median of ${values.length} (${round(Math.min(...values))}–${round(Math.max(...values))}); ${
          kind === 'startup'
            ? 'spawn to first 200 of GET /v2/_catalog?n=10'
            : `VmRSS (process and children) after 200 × GET /v2/_catalog?n=100&last=… spread over the tree (${round(median(result.rssAtStart))} MB at the first answer)`
        }; ${cliNote}`,
      };
      if (result === largest && smallest) {
        const base = median(smallest[kind]);
        row.reference = {
          name: `${smallest.repositories.toLocaleString('en-US')} repositories`,
          value: round(base),
        };
        row.ratio = round(value / base, 2);
        row.target = `${bound} and no growth with N`;
        row.met = value < limit && value <= 1.5 * base;
        row.note = `${row.note ?? ''}; ${rule(bound)}`;
      }
      rows.push(row);
    }
  }
  return rows;
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
