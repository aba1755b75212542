/**
 * `derrick serve` as a command: defaults, configuration errors, TLS; what it does over a tree, on both back ends.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { helpText } from '../../src/cli/serve-command.ts';
import { flagName, KEY_NAMES, keyInfo } from '../../src/config/keys.ts';
import { BACKENDS, freshTree, type TreeSpot } from '../helpers/backends.ts';
import { collectOutput, REPO_ROOT, run, runDerrick, startDerrick, tempDir } from '../helpers/cli.ts';
import { htpasswdLine } from '../helpers/pki.ts';
import { publishInto, suiteTree } from '../helpers/server.ts';

const temp = tempDir();

after(() => temp.cleanup());
const demo = `oci:${path.join(REPO_ROOT, 'demo', 'hello')}:latest`;

/** Starts `derrick serve <args>` and resolves with its port once it says it is serving. */
async function serve(args: string[], cwd?: string, env?: NodeJS.ProcessEnv) {
  const child = startDerrick(['serve', '--listen', '127.0.0.1:0', ...args], {
    ...(cwd === undefined ? {} : { cwd }),
    ...(env === undefined ? {} : { env }),
  });
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

// No tree read here (configuration, --help, the default ./data): these run once, not per back end.
describe('derrick serve', { concurrency: 3 }, () => {
  // File system only: the default data directory is a directory.
  test('with no data dir given it serves the tree at ./data', async () => {
    const cwd = path.join(temp.dir, 'cwd');
    await run('mkdir', ['-p', path.join(cwd, 'data', 'v2')]);
    const server = await serve(['--no-access-log'], cwd);
    const response = await fetch(`http://127.0.0.1:${server.port}/v2/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('docker-distribution-api-version'), 'registry/2.0');
    const result = await server.stop();
    assert.equal(result.code, 0, 'SIGTERM closes the server cleanly');
  });

  test('an invalid configuration stops it with the source, the key and what was expected', async () => {
    const result = await runDerrick(['serve', '--mode', 'proxy']);
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      'derrick: invalid configuration: --mode: mode: expected serve or redirect, got "proxy"\n',
    );
    assert.doesNotMatch(result.stderr, /\n\s+at /);
    const file = path.join(temp.dir, 'bad.yaml');
    writeFileSync(file, 'catalog:\n  maxPageSize: -3\n');
    const fromFile = await runDerrick(['serve', '--config', file], {
      env: { DERRICK_LISTEN: '127.0.0.1:0' },
    });
    assert.equal(fromFile.code, 1);
    assert.match(fromFile.stderr, /bad\.yaml: catalog\.maxPageSize: /);
  });

  test('a YAML value of the wrong type, a misspelt key and a missing TLS key each get one helpful line', async () => {
    const cases: [string[], string][] = [
      [['listen: 5005\n'], 'listen: expected host:port, e.g. 127.0.0.1:5000, got 5005'],
      [['workrs: 2\n'], 'workrs: not a configuration key; did you mean "workers"?'],
    ];
    for (const [[yaml], line] of cases) {
      const file = path.join(temp.dir, `case-${cases.findIndex(([[text]]) => text === yaml)}.yaml`);
      writeFileSync(file, yaml ?? '');
      const result = await runDerrick(['serve', '--config', file]);
      assert.equal(result.stderr, `derrick: invalid configuration: ${file}: ${line}\n`);
      assert.equal(result.code, 1);
    }
    const noKey = await runDerrick(['serve', '--tls-cert', path.join(temp.dir, 'tls.crt')]);
    assert.equal(
      noKey.stderr,
      'derrick: invalid configuration: --tls-cert: tls.key: missing: tls.cert is set, and HTTPS needs both a certificate and its key\n',
    );
    assert.equal(noKey.code, 1);
  });

  test('serve --help gives every flag a meaning and its default, from the key table', async () => {
    const result = await runDerrick(['serve', '--help']);
    assert.equal(result.code, 0);
    assert.doesNotMatch(result.stdout, /config key/);
    const flags = (help: string): string[] =>
      [...help.matchAll(/^ {2}(--[a-z-]+)/gm)].map(([, flag]) => flag ?? '');
    assert.equal(
      flags(result.stdout).length,
      1 + KEY_NAMES.length + KEY_NAMES.filter((key) => keyInfo(key).type === 'boolean').length,
      '--config, the keys and the --no- forms of the boolean ones',
    );
    for (const key of KEY_NAMES) {
      const flag = `--${flagName(key)}`;
      const line = result.stdout.split('\n').find((text) => text.startsWith(`  ${flag} `));
      assert.ok(line, `${flag} is listed`);
      assert.ok(
        line.replace(/\s+/g, ' ').includes(helpText(key)),
        `${flag} has its meaning and default: ${line}`,
      );
    }
    assert.match(result.stdout, /^ {2}--listen <host:port> +host:port .*\(default: 127\.0\.0\.1:5000\)$/m);
    assert.match(result.stdout, /^ {2}--access-log +One log line per request .*\(default: on\)$/m);
    assert.match(result.stdout, /^ {2}--no-access-log +/m);
    assert.match(result.stdout, /^ {2}--access <json> +JSON: /m);
  });
});

/** What serve does over a tree (a demo image published once per back end, read by every server of the block). */
for (const backend of BACKENDS)
  describe(backend, { concurrency: 3 }, () => {
    let spot!: TreeSpot;
    let removeTree!: () => Promise<void>;
    before(async () => {
      ({ spot, remove: removeTree } = await suiteTree(backend));
      await publishInto(spot, demo, ['demo/hello:latest']);
    });
    after(() => removeTree());

    for (const workers of ['1', '2']) {
      test(`an address already in use is one line naming it and --listen, with ${workers} worker(s)`, async () => {
        const server = await serve(['--no-access-log', '--workers', '1', '--data-dir', spot.location]);
        const result = await runDerrick([
          'serve',
          '--listen',
          `127.0.0.1:${server.port}`,
          '--workers',
          workers,
          '--data-dir',
          spot.location,
        ]);
        await server.stop();
        assert.equal(result.code, 1);
        assert.equal(
          result.stderr,
          `derrick: cannot listen on 127.0.0.1:${server.port}: the address is already in use; stop what is using it or pass --listen <host:port>\n`,
        );
      });

      test(`an address this machine does not have is one line with the fix, with ${workers} worker(s)`, async () => {
        // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): no machine has it.
        const result = await runDerrick([
          'serve',
          '--listen',
          '192.0.2.1:5000',
          '--workers',
          workers,
          '--data-dir',
          spot.location,
        ]);
        assert.equal(result.code, 1);
        assert.equal(
          result.stderr,
          'derrick: cannot listen on 192.0.2.1:5000: this machine has no address 192.0.2.1; pass --listen with one of its addresses (127.0.0.1, or 0.0.0.0 for all of them)\n',
        );
      });
    }

    test('htpasswd beside anonymous rules, over plain HTTP: both warnings once at start, naming what to set', async () => {
      const htpasswd = path.join(temp.dir, `htpasswd-${backend}`);
      writeFileSync(htpasswd, `${htpasswdLine('alice', 'alice-secret')}\n`);
      const server = await serve([
        '--no-access-log',
        '--workers',
        '2',
        '--data-dir',
        spot.location,
        '--auth-htpasswd',
        htpasswd,
        '--access',
        '[{"match":"public/**","pull":["anonymous"]},{"match":"**","pull":["user:alice"]}]',
      ]);
      const result = await server.stop();
      assert.deepEqual(
        result.stderr.split('\n').filter((line) => line.startsWith('derrick: warning: ')),
        [
          'derrick: warning: passwords and tokens are accepted over plain HTTP; set tls.cert and tls.key, or put derrick behind a TLS proxy',
          'derrick: warning: anonymous clients may pull, but with auth.htpasswd and no auth.token docker cannot pull without logging in ("no basic auth credentials"); set auth.token.service and auth.token.key to let it (docs/security.md)',
        ],
      );
    });

    test('with tls.cert and tls.key it speaks HTTPS', async () => {
      const key = path.join(temp.dir, `tls-${backend}.key`);
      const cert = path.join(temp.dir, `tls-${backend}.crt`);
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
      const server = await serve([
        '--no-access-log',
        '--tls-cert',
        cert,
        '--tls-key',
        key,
        '--data-dir',
        spot.location,
      ]);
      const status = await new Promise<number | undefined>((resolve, reject) => {
        https
          .get(
            {
              host: '127.0.0.1',
              port: server.port,
              path: '/v2/demo/hello/tags/list',
              rejectUnauthorized: false,
            },
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

    test('a boolean key is a flag: --access-log logs each request, --no-access-log does not', async () => {
      const logged = async (flag: string): Promise<boolean> => {
        const server = await serve([flag, '--workers', '1', '--data-dir', spot.location]);
        await (await fetch(`http://127.0.0.1:${server.port}/v2/?probe=1`)).arrayBuffer();
        const result = await server.stop();
        return result.stdout.includes('/v2/?probe=1');
      };
      assert.equal(await logged('--access-log'), true);
      assert.equal(await logged('--no-access-log'), false);
    });

    test('a DERRICK_* variable that is no key is warned about once, even with several workers', async () => {
      const server = await serve(
        ['--no-access-log', '--workers', '2', '--data-dir', spot.location],
        undefined,
        { DERRICK_WORKRS: '2' },
      );
      const result = await server.stop();
      const warnings = result.stderr.split('\n').filter((line) => line.includes('DERRICK_WORKRS'));
      assert.deepEqual(warnings, [
        'derrick: warning: environment variable DERRICK_WORKRS is not a configuration key (did you mean DERRICK_WORKERS?); it is ignored',
      ]);
    });
  });

describe('redirect mode without redirect.url', () => {
  /** The warnings of a `serve` over `dataDir` with `args` (two workers: said once, by the primary). */
  async function warnings(dataDir: string, args: string[]): Promise<string[]> {
    const server = await serve(['--no-access-log', '--workers', '2', '--data-dir', dataDir, ...args]);
    const result = await server.stop();
    return result.stderr.split('\n').filter((line) => line.startsWith('derrick: warning: '));
  }

  // File system only: on S3 such a repository is redirected to presigned URLs of the bucket (the next test).
  test('on a file system it is warned about once at start, naming the keys', async (t) => {
    const { location } = await freshTree('fs', t);
    mkdirSync(path.join(location, 'v2'), { recursive: true });
    assert.deepEqual(await warnings(location, ['--mode', 'redirect']), [
      'derrick: warning: mode is redirect but redirect.url is not set: a repository published without a base URL is served from the tree; set redirect.url (--redirect-url), or publish with derrick publish --base-url',
    ]);
    const byRule = await warnings(location, ['--repositories', '[{"match":"cdn/**","mode":"redirect"}]']);
    assert.equal(byRule.length, 1);
    assert.match(
      byRule[0] ?? '',
      /^derrick: warning: repositories "cdn\/\*\*" are in redirect mode but redirect\.url is not set: .*derrick publish --base-url$/,
    );
    assert.deepEqual(
      await warnings(location, ['--mode', 'redirect', '--redirect-url', 'https://cdn.example.com']),
      [],
    );
  });

  test('on S3 it is no mistake, and not warned about: a repository with no base URL is redirected to presigned URLs of the bucket', async (t) => {
    const spot = await freshTree('s3', t);
    await publishInto(spot, demo, ['demo/hello:latest']);
    assert.deepEqual(await warnings(spot.location, ['--mode', 'redirect']), []);
    assert.deepEqual(
      await warnings(spot.location, ['--repositories', '[{"match":"cdn/**","mode":"redirect"}]']),
      [],
    );
  });
});
