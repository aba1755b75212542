/**
 * Rolling restart under load (issue 11): 16 keep-alive clients pull the bench image (manifest by tag and by digest,
 * config, layers) and check every digest, while `kill -USR2` replaces derrick's two workers, several times over.
 * Reported: the failed requests (connection refused or reset, non-2xx, digest mismatch: target 0), against the
 * same load through as many stop-and-start restarts (SIGTERM, then a new `derrick serve` on the same port: the
 * way a restart went before USR2, which failed 1,723 requests in two restarts when the issue was filed); and the
 * time one rolling restart takes (USR2 to the primary's "done" line), against a cold start of the same cluster.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { startPullLoad, pullTargets, type PullResult } from '../test/helpers/pull-load.ts';
import { exited, waitForExit } from '../test/helpers/processes.ts';
import { processTree } from './load.ts';
import { DERRICK_BIN, derrickServeArgs, REPO_ROOT, SERVING_LINE } from './servers.ts';
import { fmt, log } from './summary.ts';
import type { BenchSize, Fixtures, Row } from './types.ts';

const CLIENTS = 16;
const WORKERS = 2;
const RESTARTS: Record<BenchSize, number> = { tiny: 1, quick: 2, full: 5 };
const DONE = /rolling restart done: \d+ workers replaced in ([\d.]+) s/g;

interface Cluster {
  child: ChildProcess;
  port: number;
  output: () => string;
  /** Resolves once `pattern` has matched `count` times in the output. */
  waitFor: (pattern: RegExp, count: number) => Promise<void>;
  stop: () => Promise<void>;
}

/** `derrick serve --workers 2` (the compiled CLI) on `listen`; resolves once it says it serves. */
async function startCluster(dataDir: string, listen: string): Promise<Cluster> {
  const child = spawn(
    process.execPath,
    [DERRICK_BIN, ...derrickServeArgs(dataDir, listen), '--log-level', 'warn', '--workers', String(WORKERS)],
    { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let output = '';
  const watchers = new Set<() => void>();
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    for (const watcher of watchers) watcher();
  });
  const waitFor = (pattern: RegExp, count: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const global = new RegExp(pattern.source, 'g');
      const check = (): void => {
        if ((output.match(global)?.length ?? 0) >= count) {
          watchers.delete(check);
          resolve();
        } else if (exited(child)) {
          watchers.delete(check);
          reject(new Error(`derrick serve exited before printing ${pattern}:\n${output}`));
        }
      };
      watchers.add(check);
      child.once('exit', check);
      check();
    });
  const stop = async (): Promise<void> => {
    if (exited(child)) return;
    const tree = processTree(child.pid ?? -1);
    child.kill('SIGTERM');
    if (!(await waitForExit(child, 40_000)))
      for (const pid of tree) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
  };
  try {
    await waitFor(SERVING_LINE, 1);
  } catch (error) {
    await stop();
    throw error;
  }
  const port = Number(SERVING_LINE.exec(output)?.[2]);
  return { child, port, output: () => output, waitFor, stop };
}

function failures(result: PullResult): string {
  const kinds = Object.entries(result.failures).map(([kind, count]) => `${fmt(count)} ${kind}`);
  return kinds.length === 0 ? 'none' : kinds.join(', ');
}

export async function restartMeasures(fixtures: Fixtures, size: BenchSize): Promise<Row[]> {
  const restarts = RESTARTS[size];
  const { name, tag } = fixtures.image;

  // Reference: the same load through stop-and-start restarts on one port.
  const coldStart = process.hrtime.bigint();
  let cluster = await startCluster(fixtures.dataDir, '127.0.0.1:0');
  const startSeconds = Number(process.hrtime.bigint() - coldStart) / 1e9;
  const port = cluster.port;
  const targets = await pullTargets(`http://127.0.0.1:${port}`, name, tag);
  let load = startPullLoad(port, targets, CLIENTS);
  let naive: PullResult;
  try {
    for (let restart = 0; restart < restarts; restart++) {
      await cluster.stop();
      cluster = await startCluster(fixtures.dataDir, `127.0.0.1:${port}`);
    }
  } finally {
    naive = await load.stop();
  }
  log(`stop-and-start restarts: ${fmt(naive.failed)} of ${fmt(naive.requests)} requests failed`);

  // derrick's: kill -USR2, the same number of times, under the same load.
  load = startPullLoad(port, targets, CLIENTS);
  let rolling: PullResult;
  try {
    for (let restart = 1; restart <= restarts; restart++) {
      process.kill(cluster.child.pid ?? -1, 'SIGUSR2');
      await cluster.waitFor(DONE, restart);
    }
  } finally {
    rolling = await load.stop();
    await cluster.stop();
  }
  const took = [...cluster.output().matchAll(DONE)].map((match) => Number(match[1]));
  const median = [...took].sort((a, b) => a - b)[Math.floor(took.length / 2)] ?? Number.NaN;
  const load16 = `${CLIENTS} keep-alive clients pulling ${name}:${tag} and checking digests, ${WORKERS} workers, ${restarts} restart(s)`;
  return [
    {
      measure: 'rolling restart under load: failed requests',
      value: rolling.failed,
      unit: 'failed requests',
      reference: { name: 'stop-and-start restarts', value: naive.failed },
      target: '0',
      met: rolling.failed === 0,
      note: `${load16}; kill -USR2: ${fmt(rolling.failed)} of ${fmt(rolling.requests)} failed (${failures(rolling)}); SIGTERM and start again: ${fmt(naive.failed)} of ${fmt(naive.requests)} (${failures(naive)})`,
    },
    {
      measure: 'rolling restart under load: time one takes',
      value: median,
      unit: 's',
      reference: { name: 'cold start of the cluster', value: startSeconds },
      ratio: median / startSeconds,
      note: `USR2 to "done", median of ${took.map((seconds) => fmt(seconds)).join(', ')} s; each new worker serves before an old one drains`,
    },
  ];
}
