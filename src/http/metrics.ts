/**
 * The Prometheus metrics of one serving process (prom-client): distribution's `registry_http_*` (same names,
 * labels and buckets, so its dashboards work) and derrick's own `derrick_*`, all documented in docs/operations.md.
 * The hot path only increments plain numbers (metric-families.ts); prom-client writes the text format. A cluster's primary asks every worker for `registry.getMetricsAsJSON()` and sums them
 * (src/cli/metrics-primary.ts), so one scrape gives the whole server.
 *
 * Repository names appear only in `derrick_pulls_total`, and only those matching `metrics.repositories`: the
 * others count as `other`, so a scrape (which needs no credentials) names nothing an operator did not choose to
 * show, and the number of series stays bounded.
 */
import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';
import type { Config } from '../config/schema.ts';
import { compileGlobs } from '../config/globs.ts';
import type { Backend } from '../store/backend.ts';
import type { RecordCacheEvent } from '../store/record-cache.ts';
import { Family } from './metric-families.ts';

/** prom-client, loaded only when metrics are on (module loading is start-up time). */
function promClient(): typeof Prom {
  return createRequire(import.meta.url)('prom-client') as typeof Prom;
}

/** distribution's route names (registry/api/v2/routes.go), and derrick's token endpoint; `other` for the rest. */
export type Handler =
  'base' | 'catalog' | 'tags' | 'manifest' | 'blob' | 'referrers' | 'token' | 'metrics' | 'other';

/** docker/go-metrics' defaults, which distribution uses. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60];
/** 1 KiB to 4 GiB, doubling (prometheus.ExponentialBuckets(1024, 2, 22)). */
const SIZE_BUCKETS = Array.from({ length: 22 }, (_, i) => 1024 * 2 ** i);
const STORAGE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The content type of the text format. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** What one finished request adds. */
export interface RequestOutcome {
  handler: Handler;
  method: string;
  status: number;
  /** Body bytes sent. */
  bytes: number;
  seconds: number;
  /** The repository named in the path, if any. */
  repository: string | undefined;
  redirected: boolean;
}

export class Metrics {
  readonly registry: Prom.Registry;
  private readonly requests: Family;
  private readonly durations: Family;
  private readonly sizes: Family;
  private readonly inFlight: Family;
  private readonly redirects: Family;
  private readonly served: Family;
  private readonly servedBytes: Family;
  private readonly recordCache: Family;
  private readonly storage: Family;
  private readonly storageErrors: Family;
  private readonly pulls: Family;
  private readonly failedLogins: Family;
  private readonly throttled: Family;
  private readonly tokens: Family;
  private readonly catalogPages: Family;
  private readonly named: ((name: string) => boolean)[];

  constructor(config: Pick<Config, 'metrics'>) {
    const registry = new (promClient().Registry)();
    this.registry = registry;
    const counter = (name: string, help: string, labels: string[] = []): Family => {
      const family = new Family(registry, name, help, 'counter', labels);
      if (labels.length === 0) family.add(0); // shown as 0 before the first
      return family;
    };
    const histogram = (name: string, help: string, labels: string[], buckets: number[]): Family =>
      new Family(registry, name, help, 'histogram', labels, buckets);
    this.requests = counter('registry_http_requests_total', 'Total number of HTTP requests made.', [
      'handler',
      'code',
      'method',
    ]);
    this.durations = histogram(
      'registry_http_request_duration_seconds',
      'The HTTP request latencies in seconds.',
      ['handler', 'method'],
      DURATION_BUCKETS,
    );
    this.sizes = histogram(
      'registry_http_response_size_bytes',
      'The HTTP response sizes in bytes.',
      ['handler'],
      SIZE_BUCKETS,
    );
    this.inFlight = new Family(
      registry,
      'registry_http_in_flight_requests',
      'The in-flight HTTP requests',
      'gauge',
      ['handler'],
    );
    this.redirects = counter(
      'derrick_redirects_total',
      'Manifest and blob GETs answered with a redirect (to a base URL or a presigned URL).',
      ['handler'],
    );
    this.served = counter('derrick_served_total', 'Manifest and blob GETs whose bytes derrick sent itself.', [
      'handler',
    ]);
    this.servedBytes = counter(
      'derrick_served_bytes_total',
      'Body bytes of the manifest and blob GETs derrick answered itself.',
      ['handler'],
    );
    this.recordCache = counter(
      'derrick_record_cache_total',
      'Record look-ups by outcome: hit (used without asking), revalidated (asked, unchanged), reread (changed), miss.',
      ['result'],
    );
    this.storage = histogram(
      'derrick_storage_operation_duration_seconds',
      "Latency of the tree's storage operations, by back end (fs, s3) and operation.",
      ['backend', 'operation'],
      STORAGE_BUCKETS,
    );
    this.storageErrors = counter(
      'derrick_storage_errors_total',
      'Storage operations that failed, by back end and operation.',
      ['backend', 'operation'],
    );
    this.pulls = counter(
      'derrick_pulls_total',
      'Manifest GETs answered 200, by repository: the names matching metrics.repositories, `other` for the rest.',
      ['repository'],
    );
    this.failedLogins = counter(
      'derrick_failed_logins_total',
      'Failed logins (bad credentials or certificates).',
    );
    this.throttled = counter(
      'derrick_login_throttled_total',
      'Requests refused with 429 because their client failed to log in too often.',
    );
    this.tokens = counter('derrick_tokens_issued_total', 'Bearer tokens issued by /auth/token.');
    this.catalogPages = counter('derrick_catalog_pages_total', '_catalog pages answered 200.');
    this.named = compileGlobs(config.metrics.repositories);
  }

  /** A request has started, for `handler` (the in-flight gauge). */
  started(handler: Handler): void {
    this.inFlight.add(1, handler);
  }

  /** A request has ended (after started(outcome.handler)). */
  finished(outcome: RequestOutcome): void {
    const { handler, method, status } = outcome;
    const lower = method === 'GET' ? 'get' : method === 'HEAD' ? 'head' : method.toLowerCase();
    this.inFlight.add(-1, handler);
    this.requests.add(1, handler, String(status), lower);
    this.durations.observe(outcome.seconds, handler, lower);
    this.sizes.observe(outcome.bytes, handler);
    if (status === 429) this.throttled.add(1);
    const get = method === 'GET';
    if (!get) return;
    if (handler === 'manifest' || handler === 'blob') {
      if (outcome.redirected) this.redirects.add(1, handler);
      else if (status === 200 || status === 206) {
        this.served.add(1, handler);
        this.servedBytes.add(outcome.bytes, handler);
      }
    }
    if (status !== 200) return;
    if (handler === 'manifest') this.pulls.add(1, this.repositoryLabel(outcome.repository));
    else if (handler === 'token') this.tokens.add(1);
    else if (handler === 'catalog') this.catalogPages.add(1);
  }

  /** The name itself when metrics.repositories lists it, else `other`. */
  repositoryLabel(name: string | undefined): string {
    if (name !== undefined) for (const test of this.named) if (test(name)) return name;
    return 'other';
  }

  failedLogin(): void {
    this.failedLogins.add(1);
  }

  readonly recordCacheEvent = (event: RecordCacheEvent): void => {
    this.recordCache.add(1, event);
  };

  /** The operation's latency (and failure) under `backend`/`operation`. */
  timeStorage(backend: string, operation: string, seconds: number, failed: boolean): void {
    this.storage.observe(seconds, backend, operation);
    if (failed) this.storageErrors.add(1, backend, operation);
  }
}

/** The Backend operations a request may wait on: timed per call. */
const TIMED = new Set(['read', 'stat', 'open', 'presign', 'hasChildren']);
/** Listings: timed from the first item asked to the last given. */
const LISTINGS = new Set(['list', 'recordNames']);

/**
 * `backend` with its request-path operations timed into `metrics` (as `kind`: fs, s3). Everything else is the
 * back end's own, bound to it.
 */
export function timedBackend(backend: Backend, kind: string, metrics: Metrics): Backend {
  const seconds = (from: number): number => (performance.now() - from) / 1000;
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(backend, {
    get(target, property, receiver) {
      const known = bound.get(property);
      if (known !== undefined) return known;
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      const operation = String(property);
      const call = value as (...args: unknown[]) => unknown;
      let wrapped: unknown;
      if (TIMED.has(operation))
        wrapped = async (...args: unknown[]) => {
          const from = performance.now();
          try {
            const result = await (call.apply(target, args) as Promise<unknown>);
            metrics.timeStorage(kind, operation, seconds(from), false);
            return result;
          } catch (error) {
            metrics.timeStorage(kind, operation, seconds(from), true);
            throw error;
          }
        };
      else if (LISTINGS.has(operation))
        wrapped = async function* (...args: unknown[]) {
          const from = performance.now();
          let failed = false;
          try {
            yield* call.apply(target, args) as AsyncIterable<unknown>;
          } catch (error) {
            failed = true;
            throw error;
          } finally {
            metrics.timeStorage(kind, operation, seconds(from), failed);
          }
        };
      else wrapped = call.bind(target);
      bound.set(property, wrapped);
      return wrapped;
    },
  });
}
