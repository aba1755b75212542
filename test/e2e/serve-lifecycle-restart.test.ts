/**
 * `kill -USR2 <primary>`: a rolling restart of the real cluster. The workers are replaced one at a time by freshly
 * forked ones that read the configuration again (a key that needs a restart changes what they answer), each old
 * one drained only after its replacement serves; a USR2 during a rolling restart is ignored with a line; a new
 * worker that cannot start leaves the old ones serving; one process (`workers: 1`) refuses USR2 with a line. And
 * under a load of 16 keep-alive clients pulling and checking digests, five rolling restarts fail no request.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, tempDir } from '../helpers/cli.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { freePort } from '../helpers/nginx.ts';
import { pullTargets, startPullLoad } from '../helpers/pull-load.ts';
import { publishInto } from '../helpers/server.ts';

const demo = `oci:${path.join(REPO_ROOT, 'demo', 'hello')}:latest`;
const DONE = /derrick: rolling restart done: 2 workers replaced/;

const temp = tempDir('derrick-e2e-restart-');
after(() => temp.cleanup());

let dataDir = '';
before(async () => {
  dataDir = path.join(temp.dir, 'data');
  await publishInto(dataDir, demo, ['one/app:1', 'two/app:1', 'three/app:1']);
});

/**
 * The length of a `_catalog` page, asked on a new connection (a kept-alive one may still reach an old worker,
 * which answers it during its drain: correctly, with the old configuration).
 */
async function catalogSize(server: DerrickServer): Promise<number> {
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: server.port, path: '/v2/_catalog', agent: false }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      })
      .on('error', reject)
      .setTimeout(10_000, function (this: http.ClientRequest) {
        this.destroy(new Error(`GET /v2/_catalog: no answer in 10 s:\n${server.output()}`));
      });
  });
  assert.equal(answer.status, 200);
  return (JSON.parse(answer.body) as { repositories: string[] }).repositories.length;
}

/** The YAML file `derrick serve --config` reads, rewritten between restarts. */
function configFile(name: string): { file: string; write: (yaml: string) => void } {
  const file = path.join(temp.dir, `${name}.yaml`);
  return { file, write: (yaml) => writeFileSync(file, yaml) };
}

/** A cluster of two workers over the tree, with `yaml` as its configuration file. */
async function cluster(name: string, yaml: string) {
  const config = configFile(name);
  config.write(yaml);
  const server = await startDerrickServer(dataDir, { args: ['--config', config.file, '--workers', '2'] });
  return { server, config };
}

/** Sends USR2 and resolves with what the server printed after it, once `until` shows. */
async function usr2(server: DerrickServer, until: RegExp): Promise<string> {
  const from = server.output().length;
  process.kill(server.pid, 'SIGUSR2');
  return (await server.waitForOutput(until, { from, timeoutMs: 120_000 })).slice(from);
}

describe('derrick serve and SIGUSR2: rolling restarts', () => {
  test('new workers read the changed configuration; the old ones drain only after; a second USR2 meanwhile is ignored', async (t) => {
    const { server, config } = await cluster('reread', 'catalog:\n  defaultPageSize: 1\n');
    t.after(() => server.stop());
    assert.equal(await catalogSize(server), 1);
    config.write('catalog:\n  defaultPageSize: 2\n');
    const from = server.output().length;
    await usr2(server, /rolling restart: replacing/);
    // Signals of one kind do not queue: the second is sent once the first is seen.
    await usr2(server, DONE);
    const said = (await server.waitForOutput(/worker \d+ draining/, { from, count: 2 })).slice(from);
    assert.match(said, /SIGUSR2 ignored: a rolling restart is running \(\d of 2 workers replaced\)/);
    // Each old worker is told to drain only once a new one serves, and the old ones are the ones drained.
    const steps = [...said.matchAll(/worker (\d+) serves, worker (\d+) drains \((\d) of 2\)/g)];
    assert.deepEqual(
      steps.map((step) => step[3]),
      ['1', '2'],
      said,
    );
    for (const [line, , old] of steps) {
      const drained = said.indexOf(`worker ${old} draining`);
      assert.ok(drained > said.indexOf(line), `worker ${old} drains after: ${line}`);
    }
    for (let i = 0; i < 6; i++)
      assert.equal(await catalogSize(server), 2, 'every new worker uses the new key');
    assert.deepEqual(await server.stop(60_000), { code: 0, signal: null, killed: false });
  });

  test('a new worker that cannot start stops the rolling restart; the old workers serve on; a later one succeeds', async (t) => {
    const { server, config } = await cluster('broken', 'catalog:\n  defaultPageSize: 1\n');
    t.after(() => server.stop());
    // A file the loader accepts but a worker cannot read: the primary forks, the new worker fails.
    config.write(`auth:\n  htpasswd: ${path.join(temp.dir, 'no-such-htpasswd')}\n`);
    const said = await usr2(server, /rolling restart stopped/);
    assert.match(said, /derrick: invalid configuration: .*no-such-htpasswd/);
    assert.match(said, /a new worker exited before serving \(code 1\); 2 workers keep serving/);
    assert.doesNotMatch(said, /draining/);
    for (let i = 0; i < 6; i++) assert.equal(await catalogSize(server), 1, 'the old workers answer');

    config.write('catalog:\n  defaultPageSize: [');
    const refused = await usr2(server, /rolling restart not started/);
    assert.match(refused, /derrick: invalid configuration, rolling restart refused: /);
    assert.equal(await catalogSize(server), 1);

    config.write('catalog:\n  defaultPageSize: 3\n');
    const from = server.output().length;
    await usr2(server, DONE);
    // Until an old worker has closed its listener it still answers new connections, as it should: with the
    // configuration it has. Once both have, only the new ones do.
    await server.waitForOutput(/worker \d+ draining/, { from, count: 2 });
    assert.equal(await catalogSize(server), 3);
    assert.deepEqual(await server.stop(60_000), { code: 0, signal: null, killed: false });
  });

  test('a configuration that moves listen is refused: a rolling restart keeps the socket', async (t) => {
    const port = await freePort();
    const config = configFile('listen');
    config.write(`listen: 127.0.0.1:${port}\n`);
    const server = await startDerrickServer(dataDir, {
      args: ['--config', config.file, '--workers', '2'],
      listenFlag: false,
    });
    t.after(() => server.stop());
    assert.equal(server.port, port);
    config.write(`listen: 127.0.0.1:${port + 1}\n`);
    const said = await usr2(server, /rolling restart not started/);
    assert.match(
      said,
      new RegExp(`listen changed \\(127\\.0\\.0\\.1:${port} → 127\\.0\\.0\\.1:${port + 1}\\)`),
    );
    assert.doesNotMatch(said, /draining/);
    assert.equal(await catalogSize(server), 3);
  });

  test('workers: 1 refuses USR2 with a line and serves on', async (t) => {
    const server = await startDerrickServer(dataDir, { args: ['--workers', '1'] });
    t.after(() => server.stop());
    const said = await usr2(server, /SIGUSR2 ignored/);
    assert.match(
      said,
      /a rolling restart needs workers ≥ 2 \(this server is one process\); restart it instead/,
    );
    assert.equal(await catalogSize(server), 3);
    assert.deepEqual(await server.stop(60_000), { code: 0, signal: null, killed: false });
  });

  test('16 keep-alive clients pulling and checking digests through 5 rolling restarts: 0 failed requests', async (t) => {
    const { server } = await cluster('load', '');
    t.after(() => server.stop());
    const targets = await pullTargets(server.url, 'one/app', '1');
    const load = startPullLoad(server.port, targets, 16);
    let result;
    try {
      for (let restart = 0; restart < 5; restart++) await usr2(server, DONE);
    } finally {
      result = await load.stop();
    }
    assert.deepEqual(result.failures, {}, `${result.failed} of ${result.requests} requests failed`);
    assert.ok(result.requests > 0);
    assert.equal(server.output().match(new RegExp(DONE.source, 'g'))?.length, 5);
  });
});
