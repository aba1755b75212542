/**
 * nginx in front of a published tree, for `derrick serve --mode redirect`: the recommended configuration
 * (nginxConfig, also the one the docs show) and a real nginx started and stopped by a test (startNginx).
 *
 * nginx serves `<data>/v2/web` as plain files. A redirect from derrick points at
 * `<redirect-url>/<name>/manifests/<kind>/<digest>` or `<redirect-url>/<name>/blobs/<digest>`, and since a
 * manifest's media type is its directory (`kind`), nginx gives every manifest its exact `Content-Type` by location,
 * with no mime.types and no look inside the file. Blobs are `application/octet-stream`.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from './cli.ts';
import { exited, stopChild } from './processes.ts';

/** Directory of the web tree → the Content-Type nginx must answer with (see docs/record-format.md). */
export const NGINX_CONTENT_TYPES = {
  'manifests/oci-manifest': 'application/vnd.oci.image.manifest.v1+json',
  'manifests/oci-index': 'application/vnd.oci.image.index.v1+json',
  'manifests/docker-v2': 'application/vnd.docker.distribution.manifest.v2+json',
  'manifests/docker-list': 'application/vnd.docker.distribution.manifest.list.v2+json',
  blobs: 'application/octet-stream',
} as const;

export interface NginxConfigOptions {
  /** The tree's `v2/web` directory (`<data>/v2/web`): what nginx serves. */
  webRoot: string;
  /** `host:port` to listen on, e.g. `127.0.0.1:8080`. */
  listen: string;
  /** A writable directory for the pid file, the error log and nginx's temporary files. */
  runDir: string;
}

/** A double-quoted nginx string. `$` would start a variable in `root`, so such paths are refused, not escaped. */
function quote(value: string): string {
  if (/["\\$\p{Cc}]/u.test(value))
    throw new Error(`nginxConfig: unsupported character in ${JSON.stringify(value)}`);
  return `"${value}"`;
}

/**
 * A complete nginx.conf serving a published tree's `v2/web` for derrick's redirect mode: one server; each
 * manifest kind with its media type, blobs as octet streams. The locations are anchored at the last path segment
 * (`/manifests/<kind>/<digest>`, `/blobs/<digest>`), so a repository name that itself contains `blobs` or
 * `manifests/<kind>` cannot give its files the wrong type. Run it with `nginx -c <file> -p <runDir>`.
 */
export function nginxConfig({ webRoot, listen, runDir }: NginxConfigOptions): string {
  const locations = Object.entries(NGINX_CONTENT_TYPES).map(
    ([dir, type]) => `    location ~ /${dir}/[^/]+$ { types {} default_type ${type}; }`,
  );
  return wholeConfig(runDir, [`    listen ${listen};`, `    root ${quote(webRoot)};`, ...locations]);
}

/**
 * A complete nginx.conf with nginx as a reverse proxy in front of derrick (`upstream`: `127.0.0.1:<port>`), as
 * docs/deploy.md shows it: it appends the client's address to X-Forwarded-For and says the scheme and host the
 * client used, which derrick believes because the proxy's address is in `trustedProxies`. The Host header derrick
 * sees stays nginx's default (the upstream's address), so only X-Forwarded-Host can give the token realm.
 */
export function nginxProxyConfig({
  upstream,
  listen,
  runDir,
}: {
  upstream: string;
  listen: string;
  runDir: string;
}): string {
  return wholeConfig(runDir, [
    `    listen ${listen};`,
    '    location / {',
    `      proxy_pass http://${upstream};`,
    '      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '      proxy_set_header X-Forwarded-Proto $scheme;',
    '      proxy_set_header X-Forwarded-Host $http_host;',
    '      proxy_buffering off;',
    '    }',
  ]);
}

/** The nginx.conf around one server block (`server` lines), with every file nginx writes under `runDir`. */
export function wholeConfig(runDir: string, server: string[]): string {
  const run = (name: string): string => quote(path.join(runDir, name));
  return [
    'daemon off;',
    `pid ${run('nginx.pid')};`,
    `error_log ${run('error.log')};`,
    'events {}',
    'http {',
    '  access_log off;',
    `  client_body_temp_path ${run('client_body')};`,
    `  proxy_temp_path ${run('proxy')};`,
    `  fastcgi_temp_path ${run('fastcgi')};`,
    `  uwsgi_temp_path ${run('uwsgi')};`,
    `  scgi_temp_path ${run('scgi')};`,
    '  server {',
    ...server,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** A port on 127.0.0.1 that was free a moment ago (the caller retries if something takes it first). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('freePort: no address');
  return address.port;
}

export interface NginxServer {
  /** `http://127.0.0.1:<port>`: what `derrick serve --redirect-url` takes. */
  url: string;
  port: number;
  /** The configuration it runs with. */
  config: string;
  /** nginx's error log so far. */
  errorLog: () => string;
  /** SIGTERM (fast shutdown), then SIGKILL if it lingers; removes its run directory. */
  stop: () => Promise<void>;
}

/** As root, nginx's workers are `nobody`: refuse early, and say why, if they could not reach `webRoot`. */
function assertWorldSearchable(webRoot: string): void {
  if (process.getuid?.() !== 0) return;
  for (let dir = path.resolve(webRoot); ; dir = path.dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0)
      throw new Error(
        `nginx's workers (nobody) cannot read ${webRoot}: ${dir} is not searchable by others (o+x)`,
      );
    if (path.dirname(dir) === dir) return;
  }
}

/**
 * Starts `nginx -c <conf> -p <runDir>` serving `webRoot` on a free 127.0.0.1 port, and resolves once it has
 * bound its socket (nginx writes its pid file only after that). When run as root, nginx's workers run as
 * `nobody`: every directory down to `webRoot` must be world-searchable and the files world-readable.
 */
export async function startNginx(
  webRoot: string,
  options: { timeoutMs?: number } = {},
): Promise<NginxServer> {
  assertWorldSearchable(webRoot);
  return startNginxWith((listen, runDir) => nginxConfig({ webRoot, listen, runDir }), options);
}

/** Starts nginx as a reverse proxy in front of `upstream` (`127.0.0.1:<port>`): see nginxProxyConfig. */
export async function startNginxProxy(
  upstream: string,
  options: { timeoutMs?: number } = {},
): Promise<NginxServer> {
  return startNginxWith((listen, runDir) => nginxProxyConfig({ upstream, listen, runDir }), options);
}

/** Starts nginx with the configuration `build` makes for a free 127.0.0.1 port and a fresh run directory. */
export async function startNginxWith(
  build: (listen: string, runDir: string) => string,
  options: { timeoutMs?: number },
): Promise<NginxServer> {
  const timeoutMs = options.timeoutMs ?? 15000;
  const run = tempDir('derrick-nginx-');
  let lastError = '';
  for (let attempt = 1; attempt <= 5; attempt++) {
    const runDir = path.join(run.dir, `attempt-${attempt}`);
    mkdirSync(runDir);
    const port = await freePort();
    const config = build(`127.0.0.1:${port}`, runDir);
    const confFile = path.join(runDir, 'nginx.conf');
    const errorLogFile = path.join(runDir, 'error.log');
    const pidFile = path.join(runDir, 'nginx.pid');
    writeFileSync(confFile, config);
    // -e: the error log before the configuration is read (else nginx tries /var/log/nginx/error.log).
    const child = spawn('nginx', ['-e', errorLogFile, '-p', `${runDir}/`, '-c', confFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    let spawnError: Error | undefined;
    child.on('error', (error) => (spawnError = error));
    const errorLog = (): string => (existsSync(errorLogFile) ? readFileSync(errorLogFile, 'utf8') : '');
    const deadline = Date.now() + timeoutMs;
    while (!exited(child) && spawnError === undefined && Date.now() < deadline) {
      if (existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() === String(child.pid)) {
        return {
          url: `http://127.0.0.1:${port}`,
          port,
          config,
          errorLog,
          stop: async () => {
            await stopChild(child);
            run.cleanup();
          },
        };
      }
      await sleep(25);
    }
    await stopChild(child);
    if (spawnError) {
      run.cleanup();
      throw new Error(`cannot run nginx: ${spawnError.message}`);
    }
    lastError = `${output}${errorLog()}`;
    if (!/Address already in use/i.test(lastError)) break;
  }
  run.cleanup();
  throw new Error(`nginx did not start:\n${lastError}`);
}
