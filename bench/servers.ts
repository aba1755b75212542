/**
 * The servers the benchmark compares, each started on 127.0.0.1 and a free port and returned as
 * `{ name, port, pid, url, stop() }`, where `pid` is the root of the server's process tree (a cluster's primary,
 * nginx's master): load.ts measures the CPU time of the whole tree.
 *
 * - derrick: `node bin/derrick.js serve` (the compiled CLI, as installed), serve or redirect mode.
 * - docker-registry: Debian's CNCF distribution 2.8, filesystem storage in a temporary directory, no auth.
 * - nginx: serving `<data>/v2/web` with the documented configuration (test/helpers/nginx.ts).
 * - bare: a node:http server answering every request with one fixed response (derrick's 302, or `/v2/`'s 200),
 *   with as many cluster workers as derrick runs: the floor any Node.js registry could reach.
 *
 * Every server started is remembered until stopped: `stopAllServers()` stops what is left (errors, SIGINT).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, startNginx, type NginxServer } from '../test/helpers/nginx.ts';
import { startSendfileNginx } from '../test/helpers/nginx-sendfile.ts';
import { exited, waitForExit } from '../test/helpers/processes.ts';
import { processTree } from './load.ts';

export const REPO_ROOT = path.resolve(import.meta.dirname, '..');
export const DERRICK_BIN = path.join(REPO_ROOT, 'bin', 'derrick.js');

/**
 * The node flags bin/derrick.js runs `command` with when started as a program (its second line, for /bin/sh:
 * `[ "$1" = serve ] && exec node <flags> "$0" "$@"; exec node <flags> "$0" "$@"`), which `node bin/derrick.js`
 * would not get: every derrick the bench spawns is given them, as an installed one runs.
 */
export function derrickNodeFlags(command: 'serve' | 'other' = 'other'): string[] {
  const line = /^\/\/usr\/bin\/env true;.*$/m.exec(readFileSync(DERRICK_BIN, 'utf8'))?.[0] ?? '';
  const flags = (pattern: RegExp): string[] | undefined =>
    pattern.exec(line)?.[1]?.trim().split(/\s+/).filter(Boolean);
  const serve = flags(/\[ "\$1" = serve \] && exec node((?: \S+)*?) "\$0" "\$@"/);
  const other = flags(/(?:^|; )exec node((?: \S+)*?) "\$0" "\$@"$/);
  if (other === undefined) throw new Error(`bench: no exec node line in ${DERRICK_BIN}`);
  return command === 'serve' ? (serve ?? other) : other;
}

/** What a registry client sends: every manifest type (so docker-registry serves OCI manifests too). */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** `serve --data-dir <dataDir> --listen <listen> --no-access-log`: how every derrick of the benchmark starts. */
export function derrickServeArgs(dataDir: string, listen: string): string[] {
  return ['serve', '--data-dir', dataDir, '--listen', listen, '--no-access-log'];
}

/**
 * The line `derrick serve` prints once it listens (with workers: once every one of them does), naming its port:
 * `derrick: serving <dir> on http://127.0.0.1:<port> (mode …)`.
 */
export const SERVING_LINE = /derrick: serving .+ on (https?):\/\/127\.0\.0\.1:(\d+) \(mode \w+\)/;

export interface BenchServer {
  /** e.g. "derrick (redirect)", "docker-registry". */
  name: string;
  port: number;
  /** Root of the server's process tree. */
  pid: number;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Stops the server and everything it started (SIGTERM, then SIGKILL). Stopping twice is harmless. */
  stop: () => Promise<void>;
}

const live = new Set<BenchServer>();

/** Stops every server started here and not stopped yet. */
export async function stopAllServers(): Promise<void> {
  await Promise.all([...live].map((server) => server.stop()));
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** SIGTERM, then SIGKILL to the whole tree (so no cluster worker or nginx worker is left behind). */
async function stopChild(child: ChildProcess): Promise<void> {
  if (exited(child) || child.pid === undefined) return;
  const tree = processTree(child.pid);
  child.kill('SIGTERM');
  if (!(await waitForExit(child, 5000))) {
    killAll(processTree(child.pid));
    await waitForExit(child, 5000);
  }
  // Children that outlived their parent (they should not).
  await sleep(50);
  killAll(tree.slice(1).filter((pid) => existsProcess(pid)));
}

function existsProcess(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request on a fresh connection (no pooling: nothing lingers on the servers measured). */
export function request(
  url: string,
  options: { method?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(options.timeoutMs ?? 5000, () => req.destroy(new Error(`timed out: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

/** Waits until the tree below `pid` has had the same number of processes for a moment (cluster workers up). */
async function settle(pid: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  let stable = 0;
  while (Date.now() < deadline && stable < 3) {
    const count = processTree(pid).length;
    stable = count === last ? stable + 1 : 0;
    last = count;
    await sleep(100);
  }
}

export interface SpawnSpec {
  name: string;
  command: string;
  args: (port: number) => string[];
  env?: NodeJS.ProcessEnv;
  /** Path asked until the server answers (any status). */
  readyPath?: string;
  /** A line the server prints once it is ready (derrick: once every cluster worker listens). */
  readyLine?: RegExp;
  timeoutMs?: number;
}

/**
 * Spawns a server on a free port and resolves once it answers HTTP. A port taken between freePort() and the
 * server's bind is retried with another.
 */
export async function startProcess(spec: SpawnSpec): Promise<BenchServer> {
  const timeoutMs = spec.timeoutMs ?? 30000;
  let lastOutput = '';
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    const child = spawn(spec.command, spec.args(port), {
      cwd: REPO_ROOT,
      env: spec.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    // Its output is read until it is ready (the ready line, errors to report); after that only drained, so that a
    // server writing an access log to its stdout is not slowed by a full pipe, nor its measures by this process
    // decoding and joining megabytes a second on the same cores (3-4% of a core at 10,000 lines a second).
    let ready = false;
    const keep = (chunk: Buffer): void => {
      if (!ready) output = (output + chunk.toString()).slice(-65536);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let spawnError: Error | undefined;
    child.on('error', (error) => (spawnError = error));
    const url = `http://127.0.0.1:${port}`;
    const server: BenchServer = {
      name: spec.name,
      port,
      pid: child.pid ?? -1,
      url,
      stop: async () => {
        live.delete(server);
        await stopChild(child);
      },
    };
    live.add(server);
    const deadline = Date.now() + timeoutMs;
    while (!ready && !exited(child) && spawnError === undefined && Date.now() < deadline) {
      try {
        if (spec.readyLine && !spec.readyLine.test(output)) throw new Error('not yet');
        await request(`${url}${spec.readyPath ?? '/'}`, { timeoutMs: 1000 });
        ready = true;
      } catch {
        await sleep(50);
      }
    }
    if (ready && child.pid !== undefined) {
      await settle(child.pid);
      if (!exited(child)) return server;
    }
    await server.stop();
    if (spawnError) throw new Error(`cannot start ${spec.name} (${spec.command}): ${spawnError.message}`);
    lastOutput = output;
    if (!/address already in use|EADDRINUSE/i.test(output)) break;
  }
  throw new Error(`${spec.name} did not start:\n${lastOutput}`);
}

export interface DerrickOptions {
  dataDir: string;
  mode: 'serve' | 'redirect';
  /** Redirect mode: the base URL (nginx serving v2/web). */
  redirectUrl?: string;
  /** `--workers N`; derrick's default (the CPU count) when undefined. */
  workers?: number;
  /** A label for tables ("derrick (redirect)" by default). */
  name?: string;
  /** A YAML configuration file (`--config`), for what flags do not carry well (access rules). */
  config?: string;
  /** More `serve` flags, last (so they override the ones above). */
  args?: string[];
}

/** `node bin/derrick.js serve --data-dir … --listen 127.0.0.1:<port> --no-access-log --log-level warn …` */
export function startDerrick(options: DerrickOptions): Promise<BenchServer> {
  return startProcess({
    name: options.name ?? `derrick (${options.mode})`,
    command: process.execPath,
    args: (port) => [
      ...derrickNodeFlags('serve'),
      DERRICK_BIN,
      ...derrickServeArgs(options.dataDir, `127.0.0.1:${port}`),
      '--log-level',
      'warn',
      '--mode',
      options.mode,
      ...(options.redirectUrl === undefined ? [] : ['--redirect-url', options.redirectUrl]),
      ...(options.workers === undefined ? [] : ['--workers', String(options.workers)]),
      ...(options.config === undefined ? [] : ['--config', options.config]),
      ...(options.args ?? []),
    ],
    // Only what derrick is told on its command line: no DERRICK_* from the caller's environment.
    env: Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('DERRICK_'))),
    readyPath: '/v2/',
    readyLine: SERVING_LINE,
  });
}

/** The configuration of Debian's docker-registry for the benchmark: filesystem storage, no auth, quiet. */
export function dockerRegistryConfig(storageDir: string, port: number): string {
  return [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  cache:',
    '    blobdescriptor: inmemory',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(storageDir)}`,
    '  delete:',
    '    enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '',
  ].join('\n');
}

/** `/usr/bin/docker-registry serve <config.yml>` with its storage in `<workDir>/docker-registry`. */
export function startDockerRegistry(workDir: string): Promise<BenchServer> {
  const dir = path.join(workDir, 'docker-registry');
  const storage = path.join(dir, 'storage');
  mkdirSync(storage, { recursive: true });
  return startProcess({
    name: 'docker-registry',
    command: 'docker-registry',
    args: (port) => {
      const config = path.join(dir, `config-${port}.yml`);
      writeFileSync(config, dockerRegistryConfig(storage, port));
      return ['serve', config];
    },
    // REGISTRY_* variables override the file: none from the caller's environment.
    env: Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('REGISTRY_'))),
    readyPath: '/v2/',
  });
}

/** The pid of the process (ours or a descendant) that listens on 127.0.0.1:<port>, via /proc/net/tcp. */
function listenerPid(port: number): number | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      if (local?.endsWith(`:${hexPort}`) && fields[3] === '0A' && fields[9] !== undefined)
        inodes.add(fields[9]);
    }
  }
  const holders: number[] = [];
  const ours = processTree(process.pid);
  for (const pid of ours) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode !== undefined && inodes.has(inode)) {
        holders.push(pid);
        break;
      }
    }
  }
  // nginx's master and its workers all hold the socket: the master is the one whose tree holds the others.
  return holders.find((pid) => {
    const tree = processTree(pid);
    return holders.every((other) => tree.includes(other));
  });
}

/** nginx serving `webRoot` (a tree's `v2/web`) with the documented configuration. */
export async function startNginxServer(webRoot: string): Promise<BenchServer> {
  return benchNginx(await startNginx(webRoot), 'nginx');
}

/** nginx in front of derrick (`upstream`) with the sendfile configuration docs/operations.md documents. */
export async function startSendfileNginxServer(upstream: string, contentDir: string): Promise<BenchServer> {
  return benchNginx(await startSendfileNginx(upstream, contentDir), 'nginx → derrick (x-accel-redirect)');
}

async function benchNginx(nginx: NginxServer, name: string): Promise<BenchServer> {
  const pid = listenerPid(nginx.port);
  const server: BenchServer = {
    name,
    port: nginx.port,
    pid: pid ?? -1,
    url: nginx.url,
    stop: async () => {
      live.delete(server);
      await nginx.stop();
    },
  };
  live.add(server);
  if (pid === undefined) {
    await server.stop();
    throw new Error(`nginx listens on ${nginx.port}, but no process of ours holds the socket`);
  }
  return server;
}

/** A fixed HTTP response: what the bare server answers to every request. */
export interface FixedResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The bare server: node:http, no framework, one precomputed answer; cluster workers when asked. */
const BARE_SERVER = `// derrick bench: a bare node:http server answering every request with one fixed response.
import cluster from 'node:cluster';
import http from 'node:http';
const [port, workers, spec] = process.argv.slice(2);
const { status, headers, body } = JSON.parse(spec);
if (cluster.isPrimary && Number(workers) > 1) {
  for (let i = 0; i < Number(workers); i++) cluster.fork();
  const stop = () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} else {
  const payload = Buffer.from(body);
  const all = { ...headers, 'content-length': String(payload.length) };
  http
    .createServer((req, res) => {
      res.writeHead(status, all);
      res.end(req.method === 'HEAD' ? undefined : payload);
    })
    .listen(Number(port), '127.0.0.1');
  process.once('SIGTERM', () => process.exit(0));
}
`;

/**
 * The bare node:http server, as its own process (so its CPU is measured as derrick's is), answering `response`
 * to every request, with `workers` cluster workers (1: a single process).
 */
export function startBareServer(
  workDir: string,
  response: FixedResponse,
  options: { workers: number; name?: string },
): Promise<BenchServer> {
  const script = path.join(workDir, 'bare-server.mjs');
  writeFileSync(script, BARE_SERVER);
  return startProcess({
    name: options.name ?? `node:http ${response.status}`,
    command: process.execPath,
    args: (port) => [script, String(port), String(options.workers), JSON.stringify(response)],
  });
}
