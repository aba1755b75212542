/**
 * The access log of a real `derrick serve`: its stdout captured and parsed line by line. One line per request
 * (not Fastify's two), in pino JSON by default or in nginx's combined log format, with the client as the trusted
 * proxies give it, the identity, the repository, the bytes and whether it was redirected. Health probes and
 * scrapes are logged at debug only.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { basic, writeHtpasswd } from '../helpers/auth.ts';
import { REPO_ROOT, tempDir } from '../helpers/cli.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { derrickOk } from '../helpers/server.ts';

const demo = `oci:${path.join(REPO_ROOT, 'demo', 'hello')}:latest`;
const scratch = tempDir('derrick-serve-access-log-');
const dataDir = path.join(scratch.dir, 'data');
const htpasswd = path.join(scratch.dir, 'htpasswd');
const servers: DerrickServer[] = [];

before(async () => {
  await derrickOk(dataDir, ['publish', demo, 'demo/hello']);
  writeHtpasswd(htpasswd, { alice: 'alice-secret' });
});
after(async () => {
  for (const server of servers) await server.stop();
  scratch.cleanup();
});

async function serve(args: string[]): Promise<DerrickServer> {
  const server = await startDerrickServer(dataDir, {
    args: ['--workers', '1', '--access-log', '--trusted-proxies', '["127.0.0.1"]', ...args],
  });
  servers.push(server);
  return server;
}

function get(
  server: DerrickServer,
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: server.port, path: url, headers, agent: false }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }));
      })
      .on('error', reject);
  });
}

interface JsonLine {
  level: number;
  msg: string;
  method: string;
  path?: string;
  status: number;
  bytes: number;
  durationMs: number;
  client: string;
  user?: string;
  repository?: string;
  redirected: boolean;
  userAgent?: string;
}

/** The access-log lines on stdout so far (every stdout line is JSON; the others are not the access log). */
function jsonLines(server: DerrickServer): JsonLine[] {
  return server
    .stdout()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as JsonLine)
    .filter((line) => line.path !== undefined);
}

/** nginx's `log_format combined`, exactly. */
const COMBINED =
  /^(\S+) - (\S+) \[(\d{2})\/([A-Z][a-z]{2})\/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-]\d{4})\] "([A-Z]+) (\S+) HTTP\/(1\.[01])" (\d{3}) (\d+) "((?:[^"\\]|\\x[0-9A-F]{2})*)" "((?:[^"\\]|\\x[0-9A-F]{2})*)"$/;

describe('the JSON access log', () => {
  let server!: DerrickServer;
  before(async () => {
    server = await serve(['--auth-htpasswd', htpasswd]);
  });

  test('one line per request, with what an operator looks for', async () => {
    const manifest = await get(server, '/v2/demo/hello/manifests/latest', {
      'x-forwarded-for': '203.0.113.7',
      authorization: basic('alice', 'alice-secret'),
      'user-agent': 'containerd/2.0',
    });
    assert.equal(manifest.status, 200);
    assert.equal((await get(server, '/v2/demo/hello/manifests/missing')).status, 404);
    assert.equal((await get(server, '/v2/')).status, 401); // a login is asked for
    await server.waitForOutput(/"msg":"request"/, { count: 3 });
    const lines = jsonLines(server);
    assert.equal(lines.length, 3, server.stdout());
    assert.doesNotMatch(server.output(), /incoming request|request completed/);
    const [first, second, third] = lines;
    assert.ok(first && second && third);
    assert.deepEqual(
      { ...first, durationMs: typeof first.durationMs },
      {
        ...first,
        level: 30,
        msg: 'request',
        method: 'GET',
        path: '/v2/demo/hello/manifests/latest',
        status: 200,
        bytes: manifest.body.length,
        durationMs: 'number',
        client: '203.0.113.7',
        user: 'user:alice',
        repository: 'demo/hello',
        redirected: false,
        userAgent: 'containerd/2.0',
      },
    );
    assert.equal(second.status, 404);
    assert.equal(second.client, '127.0.0.1');
    assert.equal(second.user, undefined);
    assert.equal(third.status, 401);
    assert.equal(third.repository, undefined);
  });

  test('health probes and scrapes are not logged at info', async () => {
    const before = jsonLines(server).length;
    for (const url of ['/livez', '/readyz', '/metrics', '/readyz?verbose'])
      assert.ok((await get(server, url)).status > 0);
    assert.equal((await get(server, '/v2/')).status, 401);
    await server.waitForOutput(/"msg":"request"/, { count: before + 1 });
    const paths = jsonLines(server)
      .slice(before)
      .map((line) => line.path);
    assert.deepEqual(paths, ['/v2/']);
  });
});

describe('at debug level', () => {
  test('health probes are logged, at debug', async () => {
    const server = await serve(['--log-level', 'debug']);
    assert.equal((await get(server, '/metrics')).status, 200);
    await server.waitForOutput(/"path":"\/metrics"/);
    const line = jsonLines(server).find((entry) => entry.path === '/metrics');
    assert.equal(line?.level, 20);
  });
});

describe('redirect mode', () => {
  test('a redirected request says so', async () => {
    const server = await serve(['--mode', 'redirect', '--redirect-url', 'https://cdn.example.com']);
    assert.equal((await get(server, '/v2/demo/hello/manifests/latest')).status, 302);
    await server.waitForOutput(/"msg":"request"/);
    const [line] = jsonLines(server);
    assert.ok(line);
    assert.equal(line.status, 302);
    assert.equal(line.redirected, true);
    assert.equal(line.bytes, 0);
  });
});

describe('the combined access log', () => {
  test('every stdout line is in the combined log format, and says what the request was', async () => {
    const server = await serve(['--access-log-format', 'combined', '--auth-htpasswd', htpasswd]);
    const manifest = await get(server, '/v2/demo/hello/manifests/latest?x=1', {
      'x-forwarded-for': '198.51.100.4',
      authorization: basic('alice', 'alice-secret'),
      'user-agent': 'skopeo "quoted"',
      referer: 'https://example.com/',
    });
    assert.equal(manifest.status, 200);
    assert.equal((await get(server, '/v2/nothing/here/manifests/1')).status, 404);
    await server.waitForOutput(/HTTP\/1\.1" 404/);
    const lines = server
      .stdout()
      .split('\n')
      .filter((line) => line !== '');
    assert.equal(lines.length, 2, server.stdout());
    const fields = lines.map((line) => {
      const match = COMBINED.exec(line);
      assert.ok(match, `not the combined log format: ${line}`);
      return match;
    });
    const [first, second] = fields;
    assert.ok(first && second);
    assert.equal(first[1], '198.51.100.4');
    assert.equal(first[2], 'user:alice');
    assert.equal(first[10], 'GET');
    assert.equal(first[11], '/v2/demo/hello/manifests/latest?x=1');
    assert.equal(first[13], '200');
    assert.equal(Number(first[14]), manifest.body.length);
    assert.equal(first[15], 'https://example.com/');
    assert.equal(first[16], 'skopeo \\x22quoted\\x22');
    assert.equal(second[2], '-');
    assert.equal(second[13], '404');
    assert.equal(second[15], '-');
    // derrick's other lines went to stderr.
    assert.match(server.output(), /Server listening/);
  });
});
