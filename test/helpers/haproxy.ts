/**
 * Debian's haproxy in front of derrick replicas, for end-to-end tests: the configuration docs/storage.md shows
 * (haproxyConfig reads it from there, so the documented one is the tested one), a real haproxy started and
 * stopped by a test (startHaproxy), and its stats socket read the way an operator reads it (`show stat`).
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT, tempDir } from './cli.ts';
import { freePort } from './nginx.ts';
import { exited, stopChild } from './processes.ts';

/** Where the documented configuration is: the first `haproxy` code block under this heading. */
export const HAPROXY_DOC = path.join(REPO_ROOT, 'docs', 'storage.md');
export const HAPROXY_DOC_HEADING = '## Any number of replicas';

export interface HaproxyConfigOptions {
  /** `host:port` of the frontend. */
  listen: string;
  /** The replicas, `name` → `host:port`, as many as the documented configuration lists. */
  servers: { name: string; address: string }[];
  /** The admin socket's path. */
  statsSocket: string;
}

/** The documented configuration block, verbatim. */
export function documentedHaproxyConfig(): string {
  const doc = readFileSync(HAPROXY_DOC, 'utf8');
  const start = doc.indexOf(`\n${HAPROXY_DOC_HEADING}\n`);
  if (start < 0) throw new Error(`${HAPROXY_DOC}: no "${HAPROXY_DOC_HEADING}" section`);
  const next = doc.indexOf('\n## ', start + 1);
  const section = doc.slice(start, next < 0 ? undefined : next);
  const block = /\n```haproxy\n([\s\S]*?)\n```\n/.exec(section)?.[1];
  if (block === undefined) throw new Error(`${HAPROXY_DOC}: no haproxy block under "${HAPROXY_DOC_HEADING}"`);
  return `${block}\n`;
}

/**
 * The documented configuration with the test's addresses: the `bind` line's address, each `server` line's name and
 * address (in order), the `stats socket` path. Everything else is left as written; a documented block whose shape
 * no longer fits these replacements (no bind, another number of servers) is an error, not a silent mismatch.
 */
export function haproxyConfig({ listen, servers, statsSocket }: HaproxyConfigOptions): string {
  const documented = documentedHaproxyConfig();
  const replace = (pattern: RegExp, expected: number, by: (match: string[], i: number) => string): void => {
    let count = 0;
    config = config.replace(pattern, (...match: string[]) => by(match, count++));
    if (count !== expected)
      throw new Error(
        `${HAPROXY_DOC}: the haproxy block has ${count} lines like ${pattern}, not ${expected}`,
      );
  };
  let config = documented;
  replace(/^(\s*bind )\S+/gm, 1, ([, lead]) => `${lead}${listen}`);
  replace(/^(\s*stats socket )\S+/gm, 1, ([, lead]) => `${lead}${statsSocket}`);
  replace(/^(\s*server )\S+ \S+/gm, servers.length, ([, lead], i) => {
    const server = servers[i];
    if (!server) throw new Error(`${HAPROXY_DOC}: more server lines than the ${servers.length} given`);
    return `${lead}${server.name} ${server.address}`;
  });
  return config;
}

/** One line of `show stat`: a frontend, a backend or one of its servers. */
export interface HaproxyStat {
  proxy: string;
  /** The server's name, or FRONTEND / BACKEND. */
  name: string;
  /** UP, DOWN, `UP 1/2` (going down), `DOWN 1/2` (coming up), MAINT, OPEN (a frontend)… */
  status: string;
  /** The last health check's result: `L7OK` (passed), `L4CON` (connection refused), `INI` (none yet)… */
  check: string;
  /** The sessions it has taken in all (each request haproxy sends a server counts one). */
  sessions: number;
}

export interface Haproxy {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** `127.0.0.1:<port>`: what goes before the repository name in an image reference. */
  host: string;
  config: string;
  /** Everything haproxy printed so far. */
  output: () => string;
  /** `show stat` on the admin socket. */
  stats: () => Promise<HaproxyStat[]>;
  /**
   * Resolves once `server`'s line of `show stat` satisfies `wanted`; rejects after `timeoutMs` (a safety net,
   * default 30 s), saying what it was.
   */
  waitForServer: (
    server: string,
    wanted: (stat: HaproxyStat) => boolean,
    timeoutMs?: number,
  ) => Promise<void>;
  /** SIGTERM (haproxy's hard stop), SIGKILL if it lingers; removes its run directory. */
  stop: () => Promise<void>;
}

/** Sends one command to a stats socket and resolves with the whole answer (haproxy closes after it). */
function adminCommand(socket: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = '';
    const connection = net.createConnection(socket, () => connection.end(`${command}\n`));
    connection.setEncoding('utf8');
    connection.on('data', (chunk: string) => (answer += chunk));
    connection.on('end', () => resolve(answer));
    connection.on('error', reject);
  });
}

function parseStats(csv: string): HaproxyStat[] {
  const [header = '', ...lines] = csv.trim().split('\n');
  const columns = header.replace(/^# /, '').split(',');
  const at = (name: string): number => {
    const index = columns.indexOf(name);
    if (index < 0) throw new Error(`haproxy show stat: no ${name} column in ${header}`);
    return index;
  };
  return lines.map((line) => {
    const fields = line.split(',');
    const field = (name: string): string => fields[at(name)] ?? '';
    return {
      proxy: field('pxname'),
      name: field('svname'),
      status: field('status'),
      check: field('check_status').replace(/^\* /, ''),
      sessions: Number(field('stot')),
    };
  });
}

/**
 * Starts `haproxy -db -f <config>` with the documented configuration for `servers` on a free 127.0.0.1 port, and
 * resolves once its admin socket answers (haproxy binds its frontend before it opens the socket).
 */
export async function startHaproxy(
  servers: { name: string; address: string }[],
  options: { timeoutMs?: number } = {},
): Promise<Haproxy> {
  const timeoutMs = options.timeoutMs ?? 15000;
  const run = tempDir('derrick-haproxy-');
  const statsSocket = path.join(run.dir, 'admin.sock');
  let lastError = '';
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = await freePort();
    const config = haproxyConfig({ listen: `127.0.0.1:${port}`, servers, statsSocket });
    const file = path.join(run.dir, `haproxy-${attempt}.cfg`);
    writeFileSync(file, config);
    // -db: stay in the foreground, the test owns the process.
    const child = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    let spawnError: Error | undefined;
    child.on('error', (error) => (spawnError = error));
    const stats = async (): Promise<HaproxyStat[]> =>
      parseStats(await adminCommand(statsSocket, 'show stat'));
    const stop = (): Promise<void> => stopChild(child);
    const deadline = Date.now() + timeoutMs;
    while (!exited(child) && spawnError === undefined && Date.now() < deadline) {
      const ready = await stats().then(
        () => true,
        () => false,
      );
      if (ready && !exited(child)) {
        return {
          url: `http://127.0.0.1:${port}`,
          host: `127.0.0.1:${port}`,
          config,
          output: () => output,
          stats,
          waitForServer: async (server, wanted, waitMs = 30000) => {
            const until = Date.now() + waitMs;
            for (;;) {
              const line = (await stats()).find((stat) => stat.name === server && stat.proxy !== 'registry');
              if (line && wanted(line)) return;
              if (Date.now() > until)
                throw new Error(`haproxy: ${server} did not get there: ${JSON.stringify(line)}\n${output}`);
              await sleep(100);
            }
          },
          stop: async () => {
            await stop();
            run.cleanup();
          },
        };
      }
      await sleep(50);
    }
    await stop();
    if (spawnError) {
      run.cleanup();
      throw new Error(`cannot run haproxy: ${spawnError.message}`);
    }
    lastError = output;
    if (!/cannot bind socket|Address already in use/i.test(lastError)) break;
  }
  run.cleanup();
  throw new Error(`haproxy did not start:\n${lastError}`);
}
