/**
 * Debian's Apache (apache2-bin) with mod_xsendfile in front of `derrick serve --serve-sendfile x-sendfile`,
 * configured as docs/operations.md shows: the documented `<VirtualHost>` block is read from the doc and only its
 * addresses are replaced (the listen address, derrick's address, the content directory), inside a minimal
 * httpd.conf of the test's own (the modules it needs, every file it writes in a fresh run directory).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from './cli.ts';
import { freePort, type NginxServer } from './nginx.ts';
import { SENDFILE_DOC, SENDFILE_DOC_HEADING } from './nginx-sendfile.ts';
import { exited, stopChild } from './processes.ts';

const MODULES = '/usr/lib/apache2/modules';

/** The first `apache` code block under the sendfile heading, verbatim. */
export function documentedApacheConfig(): string {
  const doc = readFileSync(SENDFILE_DOC, 'utf8');
  const start = doc.indexOf(`\n${SENDFILE_DOC_HEADING}\n`);
  if (start < 0) throw new Error(`${SENDFILE_DOC}: no "${SENDFILE_DOC_HEADING}" section`);
  const next = doc.indexOf('\n## ', start + 1);
  const block = /\n```apache\n([\s\S]*?)\n```\n/.exec(doc.slice(start, next < 0 ? undefined : next))?.[1];
  if (block === undefined)
    throw new Error(`${SENDFILE_DOC}: no apache block under "${SENDFILE_DOC_HEADING}"`);
  return block;
}

/** The documented block with the test's addresses; each replaced pattern must occur as often as expected. */
export function apacheConfig(options: {
  listen: string;
  upstream: string;
  contentDir: string;
  runDir: string;
}): string {
  let block = documentedApacheConfig();
  const replace = (pattern: RegExp, expected: number, by: string): void => {
    let count = 0;
    block = block.replace(pattern, () => {
      count++;
      return by;
    });
    if (count !== expected)
      throw new Error(`${SENDFILE_DOC}: ${count} matches of ${pattern} in the apache block, not ${expected}`);
  };
  replace(/<VirtualHost \S+>/g, 1, `<VirtualHost ${options.listen}>`);
  replace(/http:\/\/127\.0\.0\.1:5000\//g, 2, `http://${options.upstream}/`);
  replace(/(?<=XSendFilePath )\S+/g, 1, `"${options.contentDir}"`);
  const run = (name: string): string => `"${path.join(options.runDir, name)}"`;
  return [
    ...['mpm_event', 'authz_core', 'proxy', 'proxy_http', 'xsendfile'].map(
      (name) => `LoadModule ${name}_module ${MODULES}/mod_${name}.so`,
    ),
    `ServerRoot ${run('')}`,
    'ServerName 127.0.0.1',
    `Listen ${options.listen}`,
    `PidFile ${run('httpd.pid')}`,
    `ErrorLog ${run('error.log')}`,
    `DefaultRuntimeDir ${run('')}`,
    `Mutex file:${options.runDir}`,
    ...(process.getuid?.() === 0 ? ['User nobody', 'Group nogroup'] : []),
    block,
    '',
  ].join('\n');
}

/** Starts `apache2 -f <conf> -DFOREGROUND` in front of `upstream` on a free 127.0.0.1 port. */
export async function startApache(upstream: string, contentDir: string): Promise<NginxServer> {
  const run = tempDir('derrick-apache-');
  let lastError = '';
  for (let attempt = 1; attempt <= 5; attempt++) {
    const runDir = path.join(run.dir, `attempt-${attempt}`);
    const port = await freePort();
    mkdirSync(runDir);
    const config = apacheConfig({ listen: `127.0.0.1:${port}`, upstream, contentDir, runDir });
    const confFile = path.join(runDir, 'httpd.conf');
    writeFileSync(confFile, config);
    const errorLogFile = path.join(runDir, 'error.log');
    const pidFile = path.join(runDir, 'httpd.pid');
    const child = spawn('/usr/sbin/apache2', ['-f', confFile, '-DFOREGROUND'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const errorLog = (): string => (existsSync(errorLogFile) ? readFileSync(errorLogFile, 'utf8') : '');
    const stop = (): Promise<void> => stopChild(child);
    const deadline = Date.now() + 15000;
    while (!exited(child) && Date.now() < deadline) {
      if (existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() === String(child.pid))
        return {
          url: `http://127.0.0.1:${port}`,
          port,
          config,
          errorLog,
          stop: async () => {
            await stop();
            run.cleanup();
          },
        };
      await sleep(25);
    }
    await stop();
    lastError = `${output}${errorLog()}`;
    if (!/Address already in use/i.test(lastError)) break;
  }
  run.cleanup();
  throw new Error(`apache2 did not start:\n${lastError}`);
}
