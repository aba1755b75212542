/**
 * `derrick serve`: load the configuration, then serve — in one process, or in a Node cluster of `workers`
 * processes sharing the listening socket. Workers hold no state of their own (every request is answered from the
 * tree), so any of them may answer any request, and a worker that dies is replaced. The one thing they share is
 * failed logins: each worker tells the primary, which tells the others, so the limit holds for the cluster.
 */
import cluster from 'node:cluster';
import os from 'node:os';
import { anonymousDockerWarning } from '../auth/auth.ts';
import { AuthConfigError } from '../auth/errors.ts';
import { ConfigError, loadConfig } from '../config/load.ts';
import type { Config, ScalarKey } from '../config/schema.ts';
import { appMetrics, buildApp, checkConfigFiles, reloadApp } from '../http/app.ts';
import type { Backend } from '../store/backend.ts';
import { isS3Location, openBackend } from '../store/open-backend.ts';
import { StorageError } from '../store/storage-error.ts';
import { Tree } from '../store/tree.ts';
import { ClusterMetrics, startMetricsListener, workerMetrics } from './metrics-primary.ts';
import { onWorkerMessage, servePrimary, toPrimary, workerRelay } from './cluster.ts';
import { stopOnSignals } from './drain.ts';
import { listenProblem, splitListen } from './listen.ts';

/**
 * What to say once at start about a configuration that holds but may not do what was meant: passwords over plain
 * HTTP; anonymous rules that docker cannot use beside Basic logins (docs/security.md); redirect mode with no URL to
 * redirect to on a file system (a repository published without --base-url is then served from the tree).
 */
export function configWarnings(config: Config): string[] {
  const warnings: string[] = [];
  if (!config.tls && (config.auth.htpasswd !== undefined || config.auth.token !== undefined))
    warnings.push(
      'passwords and tokens are accepted over plain HTTP; set tls.cert and tls.key, or put derrick behind a TLS proxy',
    );
  const docker = anonymousDockerWarning(config);
  if (docker !== undefined) warnings.push(docker);
  // On S3 a repository with no base URL is redirected to presigned URLs of the bucket: nothing to warn about.
  if (config.redirect.url !== undefined || isS3Location(config.dataDir)) return warnings;
  const rules = config.repositories
    .filter((rule) => rule.mode === 'redirect')
    .map((rule) => `"${rule.match}"`);
  if (config.mode !== 'redirect' && rules.length === 0) return warnings;
  const where =
    config.mode === 'redirect' ? 'mode is redirect' : `repositories ${rules.join(', ')} are in redirect mode`;
  warnings.push(
    `${where} but redirect.url is not set: a repository published without a base URL is served from the tree; set redirect.url (--redirect-url), or publish with derrick publish --base-url`,
  );
  return warnings;
}

function readyLine(config: Config, root: string, address: string): string {
  return `derrick: serving ${root} on ${config.tls ? 'https' : 'http'}://${address} (mode ${config.mode})\n`;
}

type Load = () => Config;

/**
 * `step()`, or undefined after saying on stderr why the configuration it uses is not valid (file or key, and what
 * to fix): a ConfigError from loading, or an AuthConfigError from reading the files it names.
 */
function attempt<T>(what: string, step: () => T): T | undefined {
  try {
    return step();
  } catch (error) {
    if (error instanceof ConfigError || error instanceof AuthConfigError) {
      process.stderr.write(`derrick: ${what}: ${error.message}\n`);
      return undefined;
    }
    throw error;
  }
}

const NOT_RELOADED = 'configuration not reloaded, the previous one stays in force';

/** SIGHUP: read the configuration again and apply its access rules, users and TLS files; on error keep the old. */
function reloadOnHangup(load: Load, apply: (config: Config) => string[]): void {
  process.on('SIGHUP', () => {
    const config = attempt(NOT_RELOADED, load);
    // apply() reads and checks every file before it changes anything.
    const restart = config && attempt(NOT_RELOADED, () => apply(config));
    if (!restart) return;
    const note = restart.length > 0 ? ` (${restart.join(', ')} changed: restart to apply)` : '';
    process.stderr.write(`derrick: configuration reloaded${note}\n`);
  });
}

/**
 * Once per server, when its configuration holds: the data directory must be a published tree (a DataDirError, for
 * the CLI to say, otherwise — serve never creates one).
 */
async function prepare(config: Config, backend: Backend): Promise<void> {
  try {
    await backend.checkTree('existing');
  } catch (error) {
    // An object store that is down now may be up at the next request: serve (503 meanwhile), and say so.
    if (!(error instanceof StorageError && error.transient)) throw error;
    process.stderr.write(`derrick: warning: ${error.message}; serving anyway, 503 until it answers\n`);
  }
}

/** The tree of the configuration: its back end opened with the serve settings. */
async function openServedTree(config: Config): Promise<Tree> {
  const backend = await openBackend(config.dataDir, { listingCache: config.cache.listings, s3: config.s3 });
  return new Tree(backend);
}

/** One serving process: build the app, listen, and close cleanly on SIGINT/SIGTERM; SIGHUP reloads. */
async function serveOne(config: Config, load: Load): Promise<void> {
  const tree = await openServedTree(config);
  const metrics = cluster.isWorker ? workerMetrics() : undefined;
  const app = attempt('invalid configuration', () =>
    buildApp(config, tree, metrics ? { failedLogins: workerRelay(), metricsText: metrics.text } : {}),
  );
  metrics?.answer(app && appMetrics(app));
  if (app && cluster.isPrimary) {
    const own = appMetrics(app);
    if (own && !(await startMetricsListener(config, () => own.registry.metrics()))) {
      process.exitCode = 1;
      return;
    }
  }
  if (!app) {
    process.exitCode = 1;
    // Not disconnect(): a worker that leaves its cluster so exits 0, and the primary must see the failure.
    if (cluster.isWorker) process.exit(1);
    return;
  }
  if (cluster.isPrimary) await prepare(config, tree.backend);
  reloadOnHangup(load, (next) => reloadApp(app, next));
  const { host, port } = splitListen(config.listen);
  // Handlers before listening: a supervisor may signal as soon as it reads the ready line.
  stopOnSignals(app, config.shutdown.drainSeconds);
  // A rolling restart is the primary's; a worker that gets USR2 too (signalled as a group) carries on.
  process.on('SIGUSR2', () => {
    if (cluster.isPrimary)
      process.stderr.write(
        'derrick: SIGUSR2 ignored: a rolling restart needs workers ≥ 2 (this server is one process); restart it instead\n',
      );
  });
  try {
    await app.listen({ host, port });
  } catch (error) {
    const line = `derrick: cannot listen on ${config.listen}: ${listenProblem(error, config.listen)}\n`;
    process.exitCode = 1;
    // A worker leaves it to the primary, which says it once for all of them and stops them.
    if (cluster.isWorker) toPrimary({ derrick: 'listen-failed', line });
    else process.stderr.write(line);
    return;
  }
  const address = app.server.address();
  const shown = typeof address === 'object' && address ? `${address.address}:${address.port}` : config.listen;
  if (cluster.isWorker) toPrimary({ derrick: 'ready', address: shown });
  else process.stderr.write(readyLine(config, tree.location, shown));
}

/** `derrick serve` with the configuration file (if any) and flag values given. */
export async function serve(
  file: string | undefined,
  flags: Partial<Record<ScalarKey, string | boolean>>,
): Promise<void> {
  const load: Load = () => loadConfig({ file, env: process.env, flags });
  // Warnings once per server, at start: by the primary, not by each worker.
  const warn = (message: string): void => {
    if (cluster.isPrimary) process.stderr.write(`derrick: warning: ${message}\n`);
  };
  const config = attempt('invalid configuration', () => loadConfig({ file, env: process.env, flags, warn }));
  if (!config) {
    process.exitCode = 1;
    return;
  }
  for (const message of configWarnings(config)) warn(message);
  const workers = config.workers === 0 ? os.availableParallelism() : config.workers;
  if (workers > 1 && cluster.isPrimary) {
    // Every worker would refuse the same bad file: say it once, before forking.
    const checked = attempt('invalid configuration', () => {
      checkConfigFiles(config);
      return config;
    });
    if (!checked) {
      process.exitCode = 1;
      return;
    }
    const tree = await openServedTree(config);
    await prepare(config, tree.backend);
    await tree.backend.close();
    const metrics = new ClusterMetrics();
    if (!(await startMetricsListener(config, () => metrics.collect()))) {
      process.exitCode = 1;
      return;
    }
    for (const kind of ['metrics-part', 'metrics-scrape'])
      onWorkerMessage(kind, (worker, message) => metrics.handle(worker, message));
    servePrimary({
      workers,
      listen: config.listen,
      drainSeconds: config.shutdown.drainSeconds,
      readyLine: (address) => readyLine(config, tree.location, address),
      reload: () => attempt('invalid configuration, rolling restart refused', load),
    });
  } else await serveOne(config, load);
}
