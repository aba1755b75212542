/**
 * `derrick serve`: load the configuration, then serve — in one process, or in a Node cluster of `workers`
 * processes sharing the listening socket. Workers hold no state of their own (every request is answered from the
 * tree), so any of them may answer any request, and a worker that dies is replaced.
 */
import cluster from 'node:cluster';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import { ConfigError, loadConfig } from '../config/load.ts';
import type { Config, ScalarKey } from '../config/schema.ts';
import { buildApp } from '../http/app.ts';
import { Tree } from '../store/tree.ts';

export function splitListen(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(colon + 1)) };
}

interface ReadyMessage {
  derrick: 'ready';
  address: string;
}

function isReady(message: unknown): message is ReadyMessage {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as Record<string, unknown>).derrick === 'ready'
  );
}

function readyLine(config: Config, root: string, address: string): string {
  return `derrick: serving ${root} on ${config.tls ? 'https' : 'http'}://${address} (mode ${config.mode})\n`;
}

/** One serving process: build the app, listen, and close cleanly on SIGINT/SIGTERM. */
async function serveOne(config: Config): Promise<void> {
  const tree = new Tree(config.dataDir, { listingCache: config.cache.listings });
  const app = buildApp(config, tree);
  const { host, port } = splitListen(config.listen);
  // Handlers before listening: a supervisor may signal as soon as it reads the ready line.
  const stop = (): void => {
    void app.close().then(() => {
      process.exitCode = 0;
      if (cluster.isWorker) process.disconnect();
    });
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await app.listen({ host, port });
  } catch (error) {
    process.stderr.write(`derrick: cannot listen on ${config.listen}: ${(error as Error).message}\n`);
    process.exitCode = 1;
    if (cluster.isWorker) process.disconnect();
    return;
  }
  const address = app.server.address();
  const shown = typeof address === 'object' && address ? `${address.address}:${address.port}` : config.listen;
  if (cluster.isWorker) process.send?.({ derrick: 'ready', address: shown } satisfies ReadyMessage);
  else process.stderr.write(readyLine(config, tree.layout.root, shown));
}

/** The primary of a cluster: fork the workers, say ready once all listen, replace the ones that die. */
function servePrimary(config: Config, workers: number): void {
  let stopping = false;
  let ready = 0;
  let announced = false;
  const fork = (): void => {
    const worker = cluster.fork();
    worker.on('message', (message: unknown) => {
      if (!isReady(message) || announced) return;
      ready++;
      if (ready === workers) {
        announced = true;
        process.stderr.write(`derrick: ${workers} workers\n`);
        process.stderr.write(readyLine(config, new Tree(config.dataDir).layout.root, message.address));
      }
    });
  };
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exitCode = process.exitCode ?? 0;
      return;
    }
    if (!announced) {
      // A worker that cannot even start (port in use, bad TLS files) will not do better when forked again.
      process.stderr.write(
        `derrick: a worker exited before serving (${signal || `code ${code}`}); stopping\n`,
      );
      stopping = true;
      process.exitCode = 1;
      for (const other of Object.values(cluster.workers ?? {})) other?.kill('SIGTERM');
      return;
    }
    process.stderr.write(
      `derrick: worker ${worker.process.pid ?? '?'} exited (${signal || `code ${code}`}); starting another\n`,
    );
    setTimeout(fork, 100);
  });
  const stop = (): void => {
    stopping = true;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM');
    // Workers close idle connections at once; one stuck in a long download is not waited for forever.
    setTimeout(() => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGKILL');
    }, 10_000).unref();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  for (let i = 0; i < workers; i++) fork();
}

/** `derrick serve` with the configuration file (if any) and flag values given. */
export async function serve(
  file: string | undefined,
  flags: Partial<Record<ScalarKey, string>>,
): Promise<void> {
  let config;
  try {
    config = loadConfig({ file, env: process.env, flags });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`derrick: invalid configuration: ${error.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw error;
  }
  const workers = config.workers === 0 ? os.availableParallelism() : config.workers;
  if (cluster.isPrimary) mkdirSync(config.dataDir, { recursive: true });
  if (workers > 1 && cluster.isPrimary) servePrimary(config, workers);
  else await serveOne(config);
}
