/**
 * The cluster of `derrick serve` (workers ≥ 2): the primary forks the workers, which share the listening socket,
 * says "serving" once all of them listen, replaces one that dies, relays failed logins between them, stops them
 * gracefully on SIGTERM, and on SIGUSR2 replaces them one at a time with freshly forked ones (a rolling restart:
 * new code from disk, the configuration read again) — each new worker listening before an old one is told to
 * drain, so that the socket always has a worker behind it.
 *
 * Workers talk to the primary in messages `{ derrick: <kind>, … }`; every kind the primary understands is one entry
 * of its `handlers` table (onWorkerMessage adds one), so a primary-side feature is a handler, not another listener.
 */
import cluster, { type Worker } from 'node:cluster';
import { performance } from 'node:perf_hooks';
import type { FailureRelay } from '../auth/failed-logins.ts';
import type { Config } from '../config/schema.ts';

/** A message between a worker and the primary. */
export interface WorkerMessage {
  derrick: string;
  [field: string]: unknown;
}

function isWorkerMessage(message: unknown): message is WorkerMessage {
  return (
    typeof message === 'object' &&
    message !== null &&
    typeof (message as Record<string, unknown>).derrick === 'string'
  );
}

/** What a worker says to the primary: nothing while it is not connected (shutting down, or not a worker). */
export function toPrimary(message: WorkerMessage): void {
  // The callback takes a send error (the channel closed meanwhile) that would otherwise be emitted as an
  // unhandled 'error' event.
  if (cluster.isWorker && process.connected) process.send?.(message, () => {});
}

/** A worker's side of the failed-login relay: its failures go to the primary, the others' come from it. */
export function workerRelay(): FailureRelay {
  return {
    publish: (key, at) => toPrimary({ derrick: 'failed-login', key, at }),
    subscribe: (listener) => {
      process.on('message', (message: unknown) => {
        if (!isWorkerMessage(message) || message.derrick !== 'failed-login') return;
        const { key, at } = message;
        if (typeof key === 'string' && typeof at === 'number') listener(key, at);
      });
    },
  };
}

/**
 * A worker about to leave its cluster, after closing its listener: resolves once the primary has taken that in
 * (or after 2 s). Node's primary may have handed the worker a connection just before it saw the listener close;
 * the worker hands such a connection back, but only while it is connected. The primary answers in order, after
 * any such hand-over, so once its answer is here none is on the way.
 */
export function leaveCluster(): Promise<void> {
  if (!cluster.isWorker || !process.connected) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, 2000);
    function onMessage(message: unknown): void {
      if (isWorkerMessage(message) && message.derrick === 'leave-ok') done();
    }
    function done(): void {
      clearTimeout(timer);
      process.off('message', onMessage);
      resolve();
    }
    process.on('message', onMessage);
    toPrimary({ derrick: 'leave' });
  });
}

export type WorkerMessageHandler = (worker: Worker, message: WorkerMessage) => void;

const handlers = new Map<string, WorkerMessageHandler>();

/** Lets a primary-side feature handle one kind of worker message (call it before servePrimary). */
export function onWorkerMessage(kind: string, handler: WorkerMessageHandler): void {
  handlers.set(kind, handler);
}

function say(line: string): void {
  process.stderr.write(`derrick: ${line}\n`);
}

/** The workers alive and not leaving. */
function serving(retiring: Set<Worker>): Worker[] {
  return Object.values(cluster.workers ?? {}).filter(
    (worker): worker is Worker => worker !== undefined && !worker.isDead() && !retiring.has(worker),
  );
}

export interface PrimaryOptions {
  workers: number;
  /** The address the workers share; a rolling restart keeps it (a new one would close the socket). */
  listen: string;
  drainSeconds: number;
  /** The "serving" line, for the address the first worker reports. */
  readyLine: (address: string) => string;
  /** The configuration read again for a rolling restart; undefined after saying on stderr why it is not valid. */
  reload: () => Config | undefined;
}

/** How long after a worker was told to drain the primary kills it: its drain timeout, and a little more. */
const killAfterMs = (drainSeconds: number): number => drainSeconds * 1000 + 5000;

export function servePrimary(options: PrimaryOptions): void {
  const { workers } = options;
  let drainSeconds = options.drainSeconds;
  let stopping = false;
  /** Read after an await: a SIGTERM may have come meanwhile. */
  const stopped = (): boolean => stopping;
  let ready = 0;
  let announced = false;
  /** Workers told to drain: their exit is expected, not a crash to replace. */
  const retiring = new Set<Worker>();
  /** New workers of a rolling restart, and what learns whether each serves ('ready') or how it ended. */
  const waiting = new Map<Worker, (outcome: string) => void>();
  let rolling: { replaced: number; total: number } | undefined;

  const stopAll = (code: number): void => {
    stopping = true;
    process.exitCode = code;
    for (const worker of Object.values(cluster.workers ?? {})) retire(worker, false);
  };
  function retire(worker: Worker | undefined, expected = true): void {
    if (!worker || worker.isDead()) return;
    if (expected) retiring.add(worker);
    worker.process.kill('SIGTERM');
    // A drain that outlives its timeout (a stuck handler) is not waited for forever.
    setTimeout(() => {
      if (!worker.isDead()) worker.process.kill('SIGKILL');
    }, killAfterMs(drainSeconds)).unref();
  }

  onWorkerMessage('listen-failed', (worker, message) => {
    if (stopping) return;
    if (typeof message.line === 'string') process.stderr.write(message.line);
    // A new worker of a rolling restart that cannot listen: that restart stops, the old workers go on.
    if (waiting.has(worker)) worker.process.kill('SIGTERM');
    else stopAll(1);
  });
  onWorkerMessage('leave', (worker) => {
    if (worker.isConnected()) worker.send({ derrick: 'leave-ok' }, () => {});
  });
  onWorkerMessage('failed-login', (worker, message) => {
    for (const other of Object.values(cluster.workers ?? {}))
      if (other && other !== worker && other.isConnected()) other.send(message, () => {});
  });
  onWorkerMessage('ready', (worker, message) => {
    const waiter = waiting.get(worker);
    if (waiter) {
      waiting.delete(worker);
      waiter('ready');
      return;
    }
    if (announced) return;
    ready++;
    if (ready === workers) {
      announced = true;
      say(`${workers} workers`);
      process.stderr.write(options.readyLine(String(message.address)));
    }
  });

  const fork = (): Worker => {
    const worker = cluster.fork();
    // The primary answers a worker's listen even after telling it to stop (another worker could not listen): a
    // worker gone by then makes that send fail with EPIPE, which unhandled would crash the primary. The worker's
    // 'exit' below is what counts.
    worker.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE' && error.code !== 'ERR_IPC_CHANNEL_CLOSED') throw error;
    });
    worker.on('message', (message: unknown) => {
      if (isWorkerMessage(message)) handlers.get(message.derrick)?.(worker, message);
    });
    return worker;
  };

  cluster.on('exit', (worker, code, signal) => {
    const how = signal || `code ${code}`;
    const waiter = waiting.get(worker);
    if (waiter) {
      waiting.delete(worker);
      waiter(how);
      return;
    }
    if (retiring.delete(worker)) return;
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exitCode = process.exitCode ?? 0;
      return;
    }
    if (!announced) {
      // A worker that cannot even start (port in use, bad TLS files) will not do better when forked again.
      say(`a worker exited before serving (${how}); stopping`);
      stopAll(1);
      return;
    }
    say(`worker ${worker.process.pid ?? '?'} exited (${how}); starting another`);
    setTimeout(fork, 100);
  });

  /** A new worker: resolves 'ready' once it listens, or how it ended when it exits first. */
  const forkServing = (): { pid: number | undefined; outcome: Promise<string> } => {
    const worker = fork();
    const outcome = new Promise<string>((resolve) => waiting.set(worker, resolve));
    return { pid: worker.process.pid, outcome };
  };

  const rollingRestart = async (): Promise<void> => {
    if (stopping) return;
    if (rolling) {
      say(
        `SIGUSR2 ignored: a rolling restart is running (${rolling.replaced} of ${rolling.total} workers replaced)`,
      );
      return;
    }
    if (!announced) {
      say('SIGUSR2 ignored: the workers are still starting');
      return;
    }
    const config = options.reload();
    if (!config) {
      say('rolling restart not started; the workers keep serving');
      return;
    }
    if (config.listen !== options.listen) {
      say(
        `rolling restart not started: listen changed (${options.listen} → ${config.listen}), and a rolling restart keeps the socket; restart derrick to move it, or set listen back`,
      );
      return;
    }
    drainSeconds = config.shutdown.drainSeconds;
    const old = serving(retiring);
    rolling = { replaced: 0, total: old.length };
    const started = performance.now();
    say(`rolling restart: replacing ${old.length} workers one at a time`);
    for (const previous of old) {
      const fresh = forkServing();
      const outcome = await fresh.outcome;
      if (stopped()) break;
      if (outcome !== 'ready') {
        say(
          `rolling restart stopped: a new worker exited before serving (${outcome}); ${serving(retiring).length} workers keep serving`,
        );
        rolling = undefined;
        return;
      }
      rolling.replaced++;
      say(
        `rolling restart: worker ${fresh.pid} serves, worker ${previous.process.pid ?? '?'} drains (${rolling.replaced} of ${rolling.total})`,
      );
      retire(previous);
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    if (!stopped()) say(`rolling restart done: ${old.length} workers replaced in ${seconds} s`);
    rolling = undefined;
  };

  const stop = (): void => {
    if (!stopping) stopAll(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('SIGUSR2', () => void rollingRestart());
  // Each worker reloads by itself (and says so); the primary only passes the signal on.
  process.on('SIGHUP', () => {
    for (const worker of serving(retiring)) worker.process.kill('SIGHUP');
  });
  for (let i = 0; i < workers; i++) fork();
}
