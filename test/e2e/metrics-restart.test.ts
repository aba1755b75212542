/**
 * A scrape during a rolling restart (issue 11, bad input): `/metrics` of a real `derrick serve --workers 2`,
 * scraped over and over — on the main listener, where a worker old or new takes it, and on `metrics.listen`, where
 * the primary does — while `kill -USR2` replaces the workers. Every scrape answers 200 in the text format's
 * grammar and sums the workers it reached; afterwards the counts are those of the new workers alone (a replaced
 * worker's counts go with it: to Prometheus a counter reset, as docs/operations.md says).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/cli.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { freePort } from '../helpers/nginx.ts';
import { parseMetrics, value, type Family } from '../helpers/prometheus.ts';
import { derrickOk, suiteTree } from '../helpers/server.ts';

const demo = `oci:${path.join(REPO_ROOT, 'demo', 'hello')}:latest`;
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
const DONE = /derrick: rolling restart done: 2 workers replaced/;

/** One GET on a connection of its own (so the cluster spreads them): its status and body. */
function get(
  port: number,
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: url, headers, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', reject);
  });
}

async function scrape(port: number): Promise<Map<string, Family>> {
  const answer = await get(port, '/metrics');
  assert.equal(answer.status, 200, answer.body);
  return parseMetrics(answer.body);
}

const manifestGets = (families: Map<string, Family>): number =>
  value(families, 'registry_http_requests_total', { handler: 'manifest', code: '200', method: 'get' });

for (const listener of ['main', 'metrics.listen'] as const)
  describe(`scrapes on the ${listener} listener during a rolling restart`, () => {
    let server!: DerrickServer;
    let removeTree!: () => Promise<void>;
    let metricsPort = 0;

    before(async () => {
      const { spot, remove } = await suiteTree('fs');
      removeTree = remove;
      await derrickOk(spot.location, ['publish', demo, 'demo/hello']);
      const args = ['--workers', '2'];
      if (listener === 'metrics.listen') {
        metricsPort = await freePort();
        args.push('--metrics-listen', `127.0.0.1:${metricsPort}`);
      }
      server = await startDerrickServer(spot.location, { env: spot.env, args });
      if (listener === 'main') metricsPort = server.port;
    });
    after(async () => {
      await server.stop();
      await removeTree();
    });

    test('every scrape answers and sums the workers it reached; after it, the new workers count alone', async () => {
      for (let i = 0; i < 5; i++)
        assert.equal(
          (await get(server.port, '/v2/demo/hello/manifests/latest', { accept: ACCEPT })).status,
          200,
        );
      assert.equal(manifestGets(await scrape(metricsPort)), 5);

      const from = server.output().length;
      process.kill(server.pid, 'SIGUSR2');
      const restart = { done: false };
      const restarted = server
        .waitForOutput(DONE, { from, timeoutMs: 120_000 })
        .then(() => (restart.done = true));
      let scrapes = 0;
      while (!restart.done) {
        const families = await scrape(metricsPort);
        scrapes++;
        // Old, new or both: at least one worker answered, and what it counted is no more than was sent.
        assert.ok(value(families, 'derrick_metrics_workers', { state: 'answered' }) >= 1);
        assert.ok(manifestGets(families) <= 5);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await restarted;
      assert.ok(scrapes >= 2, `${scrapes} scrapes during the restart`);

      // "done" is said once the last old worker is told to drain; it leaves once its connections are closed.
      const settled = (f: Map<string, Family>): boolean =>
        value(f, 'derrick_metrics_workers', { state: 'answered' }) === 2 &&
        value(f, 'derrick_metrics_workers', { state: 'missing' }) === 0;
      let families = await scrape(metricsPort);
      for (let i = 0; i < 100 && !settled(families); i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        families = await scrape(metricsPort);
      }
      assert.equal(value(families, 'derrick_metrics_workers', { state: 'answered' }), 2);
      assert.equal(value(families, 'derrick_metrics_workers', { state: 'missing' }), 0);
      assert.equal(manifestGets(families), 0, 'the new workers have served no manifest yet');
      for (let i = 0; i < 3; i++)
        assert.equal(
          (await get(server.port, '/v2/demo/hello/manifests/latest', { accept: ACCEPT })).status,
          200,
        );
      assert.equal(manifestGets(await scrape(metricsPort)), 3);
    });
  });
