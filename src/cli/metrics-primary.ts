/**
 * `/metrics` for a whole cluster: a scrape reaching any worker (or the primary's own `metrics.listen`) is answered
 * by the primary, which asks every worker for its metrics over the cluster's IPC channel and sums them with
 * prom-client's AggregatorRegistry.aggregate. One scrape gives the whole server, not one worker's share.
 *
 * Not prom-client's own cluster protocol (AggregatorRegistry#clusterMetrics): it fails the whole scrape after 5 s
 * when one worker is slow or dies before answering. Here a worker that is gone, or has not answered within
 * COLLECT_TIMEOUT_MS, is left out of that scrape — counted in `derrick_metrics_workers{state="missing"}` — and the
 * others' sums are answered. Its messages are `derrick: 'metrics-…'`, apart from the failed-login relay's.
 */
import cluster, { type Worker } from 'node:cluster';
import http from 'node:http';
import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';
import type { Config } from '../config/schema.ts';
import { METRICS_CONTENT_TYPE, type Metrics } from '../http/metrics.ts';
import { listenProblem, splitListen } from './listen.ts';

/** How long a scrape waits for a worker's share. */
export const COLLECT_TIMEOUT_MS = 2000;

type MetricsJson = Prom.MetricObjectWithValues<Prom.MetricValue<string>>[];

/** primary → worker: send your metrics. worker → primary: here they are. */
interface CollectMessage {
  derrick: 'metrics-collect';
  id: number;
}
interface PartMessage {
  derrick: 'metrics-part';
  id: number;
  metrics: MetricsJson;
}
/** worker → primary: a client scraped me, give me the cluster's text. primary → worker: here it is. */
interface ScrapeMessage {
  derrick: 'metrics-scrape';
  id: number;
}
interface TextMessage {
  derrick: 'metrics-text';
  id: number;
  text: string;
}

function kind(message: unknown): string | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const { derrick, id } = message as Record<string, unknown>;
  return typeof derrick === 'string' && typeof id === 'number' ? derrick : undefined;
}

const prom = (): typeof Prom => createRequire(import.meta.url)('prom-client') as typeof Prom;

/** The primary's side: collects from the workers and answers the scrapes they pass on. */
export class ClusterMetrics {
  private next = 0;
  private readonly waiting = new Map<number, (metrics: MetricsJson | undefined) => void>();
  /**
   * Workers that listen. One still starting (forked by a rolling restart or after a crash) has counted nothing
   * and cannot answer yet: asking it would hold every scrape for the whole timeout.
   */
  private readonly listening = new WeakSet<Worker>();

  constructor(private readonly timeoutMs = COLLECT_TIMEOUT_MS) {
    cluster.on('listening', (worker) => this.listening.add(worker));
  }

  /** Handles a worker's message if it is about metrics (true), else leaves it to the caller (false). */
  handle(worker: Worker, message: unknown): boolean {
    switch (kind(message)) {
      case 'metrics-part': {
        const part = message as PartMessage;
        this.waiting.get(part.id)?.(part.metrics);
        return true;
      }
      case 'metrics-scrape': {
        const { id } = message as ScrapeMessage;
        void this.collect().then((text) => {
          if (worker.isConnected())
            worker.send({ derrick: 'metrics-text', id, text } satisfies TextMessage, () => {});
        });
        return true;
      }
      default:
        return false;
    }
  }

  /** One worker's metrics, or undefined when it is gone or too slow. */
  private ask(worker: Worker): Promise<MetricsJson | undefined> {
    const id = this.next++;
    return new Promise((resolve) => {
      const settle = (metrics: MetricsJson | undefined): void => {
        if (!this.waiting.delete(id)) return;
        clearTimeout(timer);
        worker.off('disconnect', gone);
        resolve(metrics);
      };
      const gone = (): void => settle(undefined);
      const timer = setTimeout(gone, this.timeoutMs);
      this.waiting.set(id, settle);
      worker.once('disconnect', gone);
      if (!worker.isConnected()) return gone();
      worker.send({ derrick: 'metrics-collect', id } satisfies CollectMessage, (error) => {
        if (error) gone();
      });
    });
  }

  /** The text format of every worker's metrics, summed. */
  async collect(): Promise<string> {
    const workers = Object.values(cluster.workers ?? {}).filter(
      (worker): worker is Worker => worker !== undefined && this.listening.has(worker),
    );
    const parts = await Promise.all(workers.map((worker) => this.ask(worker)));
    const answered = parts.filter((part) => part !== undefined);
    const { AggregatorRegistry, Gauge, Registry } = prom();
    const own = new Registry();
    const state = new Gauge({
      name: 'derrick_metrics_workers',
      help: 'Workers whose metrics this scrape sums (answered), and those gone or too slow to answer (missing).',
      labelNames: ['state'],
      registers: [own],
    });
    state.set({ state: 'answered' }, answered.length);
    state.set({ state: 'missing' }, parts.length - answered.length);
    return AggregatorRegistry.aggregate([...answered, await own.getMetricsAsJSON()]).metrics();
  }
}

/** A worker's side: answers the primary's collections, and asks it for the cluster's text when scraped. */
export function workerMetrics(timeoutMs = COLLECT_TIMEOUT_MS * 2): {
  text: () => Promise<string>;
  answer: (metrics: Metrics | undefined) => void;
} {
  let next = 0;
  const waiting = new Map<number, (text: string) => void>();
  let registry: Prom.Registry | undefined;
  process.on('message', (message: unknown) => {
    switch (kind(message)) {
      case 'metrics-collect': {
        const { id } = message as CollectMessage;
        void (registry?.getMetricsAsJSON() ?? Promise.resolve([])).then((metrics) => {
          if (process.connected)
            process.send?.({ derrick: 'metrics-part', id, metrics } satisfies PartMessage, () => {});
        });
        return;
      }
      case 'metrics-text': {
        const { id, text } = message as TextMessage;
        waiting.get(id)?.(text);
      }
    }
  });
  return {
    answer: (metrics) => {
      registry = metrics?.registry;
    },
    text: () =>
      new Promise((resolve, reject) => {
        const id = next++;
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error('the primary did not answer with the metrics'));
        }, timeoutMs);
        waiting.set(id, (text) => {
          waiting.delete(id);
          clearTimeout(timer);
          resolve(text);
        });
        if (!process.connected) return reject(new Error('no primary to ask for the metrics'));
        process.send?.({ derrick: 'metrics-scrape', id } satisfies ScrapeMessage, () => {});
      }),
  };
}

/**
 * The `metrics.listen` listener, answering GET /metrics with `text()` (and 404 to anything else); resolves when
 * it listens, or with the error that prevented it. It does not keep the process alive by itself.
 */
export function metricsListener(
  config: Config,
  text: () => Promise<string>,
): Promise<http.Server | NodeJS.ErrnoException> {
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
      return;
    }
    text().then(
      (body) => {
        response.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE });
        response.end(request.method === 'HEAD' ? undefined : body);
      },
      (error: unknown) => {
        response.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
        response.end(`${(error as Error).message}\n`);
      },
    );
  });
  const { host, port } = splitListen(config.metrics.listen ?? '');
  return new Promise((resolve) => {
    server.once('error', resolve);
    server.listen({ host, port }, () => {
      server.off('error', resolve);
      server.unref();
      resolve(server);
    });
  });
}

/**
 * Starts the `metrics.listen` listener when the configuration asks for one; false after saying on stderr why it
 * cannot listen (the reason and fix for an address, as for the main listener).
 */
export async function startMetricsListener(config: Config, text: () => Promise<string>): Promise<boolean> {
  const listen = config.metrics.listen;
  if (!config.metrics.enabled || listen === undefined) return true;
  const server = await metricsListener(config, text);
  if (server instanceof http.Server) {
    const address = server.address();
    const shown = typeof address === 'object' && address ? `${address.address}:${address.port}` : listen;
    process.stderr.write(`derrick: metrics on http://${shown}/metrics\n`);
    return true;
  }
  const why = listenProblem(server, listen).replaceAll('--listen', '--metrics-listen');
  process.stderr.write(`derrick: cannot listen on ${listen} (metrics.listen): ${why}\n`);
  return false;
}
