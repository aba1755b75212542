/**
 * End to end: derrick behind a real nginx reverse proxy, configured as docs/deploy.md shows (nginxProxyConfig), with
 * the proxy's address in `trustedProxies`. skopeo logs in and pulls through the proxy, following a token realm that
 * derrick built from X-Forwarded-Proto and -Host (nginx sends derrick its own address as Host). Clients on
 * different loopback addresses (curl --interface 127.0.0.x) are told apart by X-Forwarded-For: one client's wrong
 * passwords lock out that client only — in both of derrick's worker processes — and the access log names each
 * client, not the proxy. On a tree on each back end (BACKENDS: a directory, a bucket of the test S3 server), with
 * a derrick and an nginx of its own.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { BACKENDS, type TreeSpot } from '../helpers/backends.ts';
import { execute, tempDir, type RunResult } from '../helpers/cli.ts';
import { containersClientConfig } from '../helpers/containers.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { singleImageLayout } from '../helpers/images.ts';
import { startNginxProxy, type NginxServer } from '../helpers/nginx.ts';
import { htpasswdLine, tokenKey } from '../helpers/pki.ts';
import { publishInto, suiteTree } from '../helpers/server.ts';

const temp = tempDir('derrick-e2e-proxy-');
const { policy: POLICY, env: CLIENT_ENV } = containersClientConfig(path.join(temp.dir, 'client-config'));
const PASSWORD = 'alice-pw';

/** The derrick and the nginx in front of it of the back end whose suite runs now (the suites run one by one). */
let derrick!: DerrickServer;
let nginx!: NginxServer;
let digest = '';
let layout = '';
let configFile = '';

/** Runs a command to completion, whatever its exit code, with the clients' own configuration. */
const exec = (command: string, args: string[]): Promise<RunResult> =>
  execute(command, args, { env: CLIENT_ENV });

/** A GET through the proxy from loopback address `from`: status and headers (curl -D). */
async function curlFrom(
  from: string,
  url: string,
  credentials?: string,
): Promise<{ status: number; headers: string }> {
  const result = await exec('curl', [
    '-s',
    '-o',
    '/dev/null',
    '-D',
    '-',
    '--interface',
    from,
    ...(credentials === undefined ? [] : ['-u', credentials]),
    `${nginx.url}${url}`,
  ]);
  assert.equal(result.code, 0, `curl ${url} from ${from}: ${result.stderr}`);
  const status = /^HTTP\/[\d.]+ (\d{3})/.exec(result.stdout);
  assert.ok(status, result.stdout);
  return { status: Number(status[1]), headers: result.stdout };
}

/** `127.0.0.1:<nginx port>`: where the image references point. */
const proxied = (): string => nginx.url.replace(/^http:\/\//, '');

/** skopeo inspect of team/app:v1 through the proxy, logged in as alice. */
const inspectThroughProxy = (): Promise<RunResult> =>
  exec('skopeo', [
    '--policy',
    POLICY,
    'inspect',
    '--tls-verify=false',
    '--creds',
    `alice:${PASSWORD}`,
    `docker://${proxied()}/team/app:v1`,
  ]);

before(async () => {
  layout = path.join(temp.dir, 'layout');
  digest = (await singleImageLayout(layout, 'latest', 'behind a proxy')).digest;
  const htpasswd = path.join(temp.dir, 'htpasswd');
  writeFileSync(htpasswd, `${htpasswdLine('alice', PASSWORD)}\n`);
  configFile = path.join(temp.dir, 'derrick.yaml');
  writeFileSync(
    configFile,
    stringify({
      // Two workers: the connections nginx opens are spread over both, and the failed-login limit still holds
      // for the whole server (each worker tells the others through the primary).
      workers: 2,
      trustedProxies: ['127.0.0.1'],
      auth: {
        htpasswd,
        token: { key: tokenKey(path.join(temp.dir, 'token.key')), service: 'derrick-proxy-e2e' },
        failedLogins: { limit: 2, windowSeconds: 600 },
      },
      access: [{ match: '**', pull: ['authenticated'] }],
    }),
  );
});

after(() => temp.cleanup());

for (const backend of BACKENDS)
  describe(`${backend} tree: behind nginx, with the proxy trusted`, () => {
    let tree: { spot: TreeSpot; remove: () => Promise<void> } | undefined;
    before(async () => {
      tree = await suiteTree(backend);
      const { spot } = tree;
      await publishInto(spot, `oci:${layout}:latest`, ['team/app:v1']);
      derrick = await startDerrickServer(spot.location, {
        args: ['--config', configFile, '--access-log'],
        env: spot.env,
      });
      nginx = await startNginxProxy(derrick.host);
    });

    after(async () => {
      await nginx.stop();
      await derrick.stop();
      await tree?.remove();
    });

    test('the token realm is the proxy’s address, and skopeo logs in and copies through it', async () => {
      const challenge = await curlFrom('127.0.0.1', '/v2/');
      assert.equal(challenge.status, 401);
      assert.match(
        challenge.headers,
        new RegExp(`^www-authenticate: Bearer realm="http://127\\.0\\.0\\.1:${nginx.port}/auth/token"`, 'im'),
      );
      const inspected = await inspectThroughProxy();
      assert.equal(inspected.code, 0, inspected.stderr);
      assert.equal((JSON.parse(inspected.stdout) as { Digest: string }).Digest, digest);
      const copied = await exec('skopeo', [
        '--policy',
        POLICY,
        'copy',
        '--src-tls-verify=false',
        '--src-creds',
        `alice:${PASSWORD}`,
        `docker://${proxied()}/team/app:v1`,
        `oci:${path.join(temp.dir, `copy-${backend}`)}:v1`,
      ]);
      assert.equal(copied.code, 0, copied.stderr);
      assert.match(derrick.output(), /"msg":"token issued"/);
    });

    test('one client’s wrong passwords lock out that client, not the others behind the same proxy', async () => {
      const url = '/v2/team/app/tags/list';
      for (const wrong of ['wrong-1', 'wrong-2'])
        assert.equal((await curlFrom('127.0.0.2', url, `alice:${wrong}`)).status, 401);
      const limited = await curlFrom('127.0.0.2', url, `alice:${PASSWORD}`);
      assert.equal(limited.status, 429);
      assert.match(limited.headers, /^retry-after: \d+/im);
      assert.equal((await curlFrom('127.0.0.3', url, `alice:${PASSWORD}`)).status, 200);
      const skopeo = await inspectThroughProxy();
      assert.equal(skopeo.code, 0, skopeo.stderr);
    });

    test('the access log names each client, not the proxy', async () => {
      await curlFrom('127.0.0.4', '/v2/');
      // A request's line is written once its response has closed, so it may follow the answer by a moment.
      await derrick.waitForOutput(/"client":"127\.0\.0\.4"/);
      const lines = derrick
        .output()
        .split('\n')
        .filter((line) => line.includes('"msg":"request"'));
      const addresses = new Set(lines.map((line) => (JSON.parse(line) as { client: string }).client));
      for (const client of ['127.0.0.2', '127.0.0.3', '127.0.0.4'])
        assert.ok(addresses.has(client), `${client} in ${JSON.stringify([...addresses])}`);
      // The premise of the failed-login test: the requests were spread over both workers.
      const pids = new Set(lines.map((line) => (JSON.parse(line) as { pid: number }).pid));
      assert.equal(pids.size, 2, `requests answered by ${pids.size} process(es)`);
    });
  });
