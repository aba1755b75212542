/**
 * `derrick serve` as a command: defaults, configuration errors, TLS.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { collectOutput, run, runDerrick, startDerrick, tempDir } from '../helpers/cli.ts';

const temp = tempDir();
after(() => temp.cleanup());

/** Starts `derrick serve <args>` and resolves with its port once it says it is serving. */
async function serve(args: string[], cwd?: string) {
  const child = startDerrick(
    ['serve', '--listen', '127.0.0.1:0', '--access-log', 'false', ...args],
    cwd === undefined ? {} : { cwd },
  );
  const done = collectOutput(child);
  const port = await new Promise<number>((resolve, reject) => {
    let seen = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      const match = /serving .* on https?:\/\/127\.0\.0\.1:(\d+)/.exec(seen);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', () => reject(new Error(`derrick serve exited: ${seen}`)));
  });
  return {
    port,
    stop: async () => {
      child.kill('SIGTERM');
      return done;
    },
  };
}

describe('derrick serve', { concurrency: 3 }, () => {
  test('with no data dir given it serves the tree at ./data', async () => {
    const cwd = path.join(temp.dir, 'cwd');
    await run('mkdir', ['-p', path.join(cwd, 'data', 'v2')]);
    const server = await serve([], cwd);
    const response = await fetch(`http://127.0.0.1:${server.port}/v2/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('docker-distribution-api-version'), 'registry/2.0');
    const result = await server.stop();
    assert.equal(result.code, 0, 'SIGTERM closes the server cleanly');
  });

  test('an invalid configuration stops it with the source, the key and what was expected', async () => {
    const result = await runDerrick(['serve', '--mode', 'proxy']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^derrick: invalid configuration: --mode: mode: .*"redirect"\|"serve"/);
    assert.doesNotMatch(result.stderr, /\n\s+at /);
    const file = path.join(temp.dir, 'bad.yaml');
    writeFileSync(file, 'catalog:\n  maxPageSize: -3\n');
    const fromFile = await runDerrick(['serve', '--config', file], {
      env: { DERRICK_LISTEN: '127.0.0.1:0' },
    });
    assert.equal(fromFile.code, 1);
    assert.match(fromFile.stderr, /bad\.yaml: catalog\.maxPageSize: /);
  });

  test('an address already in use is a one-line error', async () => {
    const busy = path.join(temp.dir, 'busy');
    mkdirSync(path.join(busy, 'v2'), { recursive: true });
    const server = await serve(['--data-dir', busy]);
    const result = await runDerrick(['serve', '--listen', `127.0.0.1:${server.port}`, '--data-dir', busy]);
    await server.stop();
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^derrick: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
  });

  test('with tls.cert and tls.key it speaks HTTPS', async () => {
    const key = path.join(temp.dir, 'tls.key');
    const cert = path.join(temp.dir, 'tls.crt');
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ]);
    mkdirSync(path.join(temp.dir, 'tls-data', 'v2'), { recursive: true });
    const server = await serve([
      '--tls-cert',
      cert,
      '--tls-key',
      key,
      '--data-dir',
      path.join(temp.dir, 'tls-data'),
    ]);
    const status = await new Promise<number | undefined>((resolve, reject) => {
      https
        .get(
          { host: '127.0.0.1', port: server.port, path: '/v2/', rejectUnauthorized: false },
          (response) => {
            response.resume();
            resolve(response.statusCode);
          },
        )
        .on('error', reject);
    });
    await server.stop();
    assert.equal(status, 200);
  });
});
