/**
 * `/metrics` of a real `derrick serve --workers 2`: a known number of requests, spread over both workers (a new
 * connection each), then scrapes — on the main listener (whichever worker takes it) and on `metrics.listen` (the
 * primary) — parsed by the text format's grammar (test/helpers/prometheus.ts) and checked against those numbers:
 * each scrape counts the whole cluster. On a protected server it needs no credentials and names no repository
 * outside metrics.repositories; the failed-login relay between the workers still holds beside it; a worker that
 * is gone or stopped is left out of a scrape, which still answers.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { basic, writeHtpasswd } from '../helpers/auth.ts';
import { BACKENDS } from '../helpers/backends.ts';
import { REPO_ROOT, runDerrickWithoutServing, tempDir } from '../helpers/cli.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { observations, parseMetrics, value, type Family } from '../helpers/prometheus.ts';
import { derrickOk, suiteTree } from '../helpers/server.ts';

const demo = `oci:${path.join(REPO_ROOT, 'demo', 'hello')}:latest`;
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';

interface Got {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request on a connection of its own, so that the cluster spreads them over its workers. */
function get(port: number, url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Got> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: '127.0.0.1', port, path: url, method, headers, agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks),
          }),
        );
      },
    );
    request.on('error', reject);
    request.end();
  });
}

async function scrape(port: number): Promise<{ text: string; families: Map<string, Family> }> {
  const answer = await get(port, '/metrics');
  assert.equal(answer.status, 200, answer.body.toString());
  assert.match(answer.headers['content-type'] ?? '', /^text\/plain; version=0\.0\.4/);
  const text = answer.body.toString();
  return { text, families: parseMetrics(text) };
}

/** Live worker processes of the primary (not its esbuild helper, which tsx starts). */
function workerPids(server: DerrickServer): number[] {
  return execFileSync('ps', ['--ppid', String(server.pid), '-o', 'pid=,stat=,comm='], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(
      ([pid, stat, comm]) => pid !== undefined && pid !== '' && !stat?.startsWith('Z') && comm === 'node',
    )
    .map(([pid]) => Number(pid));
}

const GETS = 12;
const HEADS = 8;
const MISSING = 3;

for (const backend of BACKENDS)
  describe(`metrics of a cluster of 2 workers (${backend})`, () => {
    let removeTree!: () => Promise<void>;
    let server!: DerrickServer;
    let manifestBytes = 0;
    const dir = tempDir();

    before(async () => {
      const { spot, remove } = await suiteTree(backend);
      removeTree = remove;
      await derrickOk(spot.location, ['publish', demo, 'demo/hello']);
      await derrickOk(spot.location, ['publish', demo, 'secret/app']);
      const htpasswd = path.join(dir.dir, 'htpasswd');
      writeHtpasswd(htpasswd, { alice: 'alice-secret' });
      server = await startDerrickServer(spot.location, {
        env: spot.env,
        args: [
          '--workers',
          '2',
          '--access-log',
          '--auth-htpasswd',
          htpasswd,
          '--auth-failed-logins-limit',
          '3',
          '--access',
          JSON.stringify([
            { match: 'demo/**', pull: ['anonymous'] },
            { match: '**', pull: ['user:alice'] },
          ]),
          '--metrics-repositories',
          '["demo/*"]',
        ],
      });
    });
    after(async () => {
      await server.stop();
      await removeTree();
      dir.cleanup();
    });

    test('one scrape counts the requests of both workers, whichever process answers it', async () => {
      const alice = { authorization: basic('alice', 'alice-secret'), accept: ACCEPT };
      for (let i = 0; i < GETS; i++) {
        const answer = await get(server.port, '/v2/demo/hello/manifests/latest', { accept: ACCEPT });
        assert.equal(answer.status, 200);
        manifestBytes = answer.body.length;
        assert.equal(
          `sha256:${createHash('sha256').update(answer.body).digest('hex')}`,
          answer.headers['docker-content-digest'],
        );
      }
      for (let i = 0; i < HEADS; i++)
        assert.equal((await get(server.port, '/v2/demo/hello/manifests/latest', {}, 'HEAD')).status, 200);
      for (let i = 0; i < MISSING; i++)
        assert.equal((await get(server.port, '/v2/demo/hello/manifests/nope')).status, 404);
      assert.equal((await get(server.port, '/v2/secret/app/manifests/latest', alice)).status, 200);
      // The requests were spread over both workers (their access-log lines name two processes).
      await server.waitForOutput(/"msg":"request"/, { count: GETS + HEADS + MISSING + 1 });
      const pids = new Set(
        server
          .output()
          .split('\n')
          .filter((line) => line.includes('"msg":"request"'))
          .map((line) => (JSON.parse(line) as { pid: number }).pid),
      );
      assert.equal(pids.size, 2, `requests answered by ${pids.size} process(es)`);

      // Scrapes land on either worker (a connection each): every one counts the whole cluster.
      for (let scrapes = 0; scrapes < 4; scrapes++) {
        const port = server.port;
        const { text, families } = await scrape(port);
        const requests = (labels: Record<string, string>) =>
          value(families, 'registry_http_requests_total', { handler: 'manifest', ...labels });
        assert.equal(requests({ code: '200', method: 'get' }), GETS + 1);
        assert.equal(requests({ code: '200', method: 'head' }), HEADS);
        assert.equal(requests({ code: '404', method: 'get' }), MISSING);
        assert.equal(
          observations(families, 'registry_http_request_duration_seconds', {
            handler: 'manifest',
            method: 'get',
          }),
          GETS + MISSING + 1,
        );
        assert.equal(
          observations(families, 'registry_http_response_size_bytes', { handler: 'manifest' }),
          GETS + HEADS + MISSING + 1,
        );
        assert.equal(value(families, 'derrick_served_total', { handler: 'manifest' }), GETS + 1);
        assert.equal(
          value(families, 'derrick_served_bytes_total', { handler: 'manifest' }),
          (GETS + 1) * manifestBytes,
        );
        assert.equal(value(families, 'derrick_pulls_total', { repository: 'demo/hello' }), GETS);
        assert.equal(value(families, 'derrick_pulls_total', { repository: 'other' }), 1);
        assert.equal(value(families, 'derrick_metrics_workers', { state: 'answered' }), 2);
        assert.equal(value(families, 'derrick_metrics_workers', { state: 'missing' }), 0);
        assert.ok(
          observations(families, 'derrick_storage_operation_duration_seconds', {
            backend,
            operation: 'read',
          }) >= 1,
        );
        // A protected server: the scrape needed no credentials, and names only the allow-listed repository.
        assert.doesNotMatch(text, /secret/);
      }
    });

    test('the failed-login limit still holds across the workers while they are scraped', async () => {
      const wrong = { authorization: basic('alice', 'wrong') };
      const url = '/v2/secret/app/manifests/latest';
      for (let i = 0; i < 3; i++) {
        assert.equal((await get(server.port, url, wrong)).status, 401);
        await scrape(server.port);
      }
      // Whichever worker takes it has heard of the three failures, wherever they happened.
      assert.equal((await get(server.port, url, wrong)).status, 429);
      const { families } = await scrape(server.port);
      assert.equal(value(families, 'derrick_failed_logins_total'), 3);
      assert.equal(value(families, 'derrick_login_throttled_total'), 1);
      assert.equal(value(families, 'registry_http_requests_total', { handler: 'manifest', code: '429' }), 1);
    });
  });

describe('metrics.listen, served by the primary of a cluster of 2 workers', () => {
  let removeTree!: () => Promise<void>;
  let server!: DerrickServer;
  let metricsPort = 0;

  before(async () => {
    const { spot, remove } = await suiteTree('fs');
    removeTree = remove;
    await derrickOk(spot.location, ['publish', demo, 'demo/hello']);
    server = await startDerrickServer(spot.location, {
      args: ['--workers', '2', '--metrics-listen', '127.0.0.1:0'],
    });
    const listening = /^derrick: metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics$/m.exec(server.output());
    assert.ok(listening, server.output());
    metricsPort = Number(listening[1]);
    for (let i = 0; i < GETS; i++)
      assert.equal((await get(server.port, '/v2/demo/hello/manifests/latest', {}, 'HEAD')).status, 200);
  });
  after(async () => {
    await server.stop();
    await removeTree();
  });

  test('it counts the whole cluster; the main listener answers /metrics 404', async () => {
    const { families } = await scrape(metricsPort);
    assert.equal(
      value(families, 'registry_http_requests_total', { handler: 'manifest', method: 'head' }),
      GETS,
    );
    assert.equal(value(families, 'derrick_metrics_workers', { state: 'answered' }), 2);
    assert.equal((await get(server.port, '/metrics')).status, 404);
  });

  test('metrics.listen answers /metrics only', async () => {
    assert.equal((await get(metricsPort, '/v2/')).status, 404);
  });

  test('a stopped worker is left out of a scrape, which still answers with the other’s share', async () => {
    const [stopped] = workerPids(server);
    assert.ok(stopped !== undefined);
    process.kill(stopped, 'SIGSTOP');
    try {
      const { families } = await scrape(metricsPort);
      assert.equal(value(families, 'derrick_metrics_workers', { state: 'answered' }), 1);
      assert.equal(value(families, 'derrick_metrics_workers', { state: 'missing' }), 1);
      assert.ok(value(families, 'registry_http_requests_total', { handler: 'manifest' }) > 0);
    } finally {
      process.kill(stopped, 'SIGCONT');
    }
    const { families } = await scrape(metricsPort);
    assert.equal(value(families, 'derrick_metrics_workers', { state: 'answered' }), 2);
  });

  test('a worker gone is left out too, and the scrape still answers', async () => {
    const [victim] = workerPids(server);
    assert.ok(victim !== undefined);
    process.kill(victim, 'SIGKILL');
    await server.waitForOutput(new RegExp(`worker ${victim} exited`));
    const { families } = await scrape(metricsPort);
    // The replacement may be up, or still starting (then missing, or not forked yet): never an error.
    assert.ok(value(families, 'derrick_metrics_workers', { state: 'answered' }) >= 1);
  });
});

describe('metrics.listen on an address in use', () => {
  for (const workers of ['1', '2'])
    test(`is refused in one line, and nothing serves (workers ${workers})`, async (t) => {
      const { spot, remove } = await suiteTree('fs');
      t.after(remove);
      mkdirSync(path.join(spot.location, 'v2'), { recursive: true }); // an empty tree
      const taken = net.createServer();
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
      t.after(() => taken.close());
      const address = taken.address();
      assert.ok(address && typeof address === 'object');
      const listen = `127.0.0.1:${address.port}`;
      const result = await runDerrickWithoutServing([
        'serve',
        '--data-dir',
        spot.location,
        '--listen',
        '127.0.0.1:0',
        '--workers',
        workers,
        '--metrics-listen',
        listen,
      ]);
      assert.equal(result.served, false, result.stderr);
      assert.equal(result.code, 1);
      assert.deepEqual(
        result.stderr.split('\n').filter((line) => line.startsWith('derrick: ') && !line.includes('warning')),
        [
          `derrick: cannot listen on ${listen} (metrics.listen): the address is already in use; stop what is using it or pass --metrics-listen <host:port>`,
        ],
      );
    });
});
