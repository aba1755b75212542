/**
 * `/livez` and `/readyz` through the real app on each back end: never behind auth (a server where every
 * repository needs a login still answers its probes), never in the access log, GET and HEAD; `/readyz` fails when
 * the tree does not answer, while the drain file exists, and once the app drains — and says which check failed —
 * while the registry itself goes on serving.
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApp } from '../../src/http/app.ts';
import { drain } from '../../src/http/health.ts';
import { authTree, basicOf, request, type AuthTree } from '../helpers/auth.ts';
import { BACKENDS, freshTree, type TreeSpot } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { openTree, serveConfig, serveTree, suiteTree } from '../helpers/server.ts';

const scratch = tempDir('derrick-serve-health-');
after(() => scratch.cleanup());

interface Readiness {
  status: string;
  checks: Record<string, string>;
}

function readiness(body: string): Readiness {
  return JSON.parse(body) as Readiness;
}

for (const backend of BACKENDS)
  describe(backend, () => {
    let tree!: AuthTree;
    let spot!: TreeSpot;
    let removeTree!: () => Promise<void>;
    const drainFile = path.join(scratch.dir, `drain-${backend}`);
    /** Everything the protected app logged, one JSON line each. */
    const logged: string[] = [];
    let app!: FastifyInstance;

    before(async () => {
      ({ spot, remove: removeTree } = await suiteTree(backend));
      tree = await authTree(path.join(scratch.dir, backend), spot);
      const logger = pino(
        { level: 'info' },
        new Writable({
          write(chunk: Buffer, _encoding, done) {
            logged.push(...chunk.toString().split('\n').filter(Boolean));
            done();
          },
        }),
      );
      // Every repository needs a login, and every request is logged.
      app = await serveTree(
        spot,
        {
          'auth.htpasswd': tree.htpasswd,
          access: JSON.stringify([{ match: '**', pull: ['authenticated'] }]),
          'health.drainFile': drainFile,
          accessLog: 'true',
          logLevel: 'info',
        },
        logger,
      );
    });
    after(async () => {
      await app.close();
      await removeTree();
    });

    test('/livez and /readyz answer 200 without credentials on a server where /v2/ needs a login', async () => {
      assert.equal((await request(app, 'GET', '/v2/')).statusCode, 401);
      for (const method of ['GET', 'HEAD']) {
        const live = await request(app, method, '/livez');
        assert.equal(live.statusCode, 200, `${method} /livez`);
        const ready = await request(app, method, '/readyz');
        assert.equal(ready.statusCode, 200, `${method} /readyz: ${ready.body}`);
        assert.match(String(ready.headers['content-type']), /^application\/json/);
        assert.equal(ready.headers['cache-control'], 'no-store');
        if (method === 'GET')
          assert.deepEqual(readiness(ready.body), {
            status: 'ok',
            checks: { storage: 'ok', drainFile: 'ok', shutdown: 'ok' },
          });
        else assert.equal(ready.body, '');
      }
    });

    test('the probes are not in the access log; the requests beside them are', async () => {
      logged.length = 0;
      await request(app, 'GET', '/livez');
      await request(app, 'HEAD', '/readyz');
      await request(app, 'GET', '/readyz');
      await request(app, 'GET', '/v2/', basicOf('alice'));
      // The access log's one line per request (src/http/access-log.ts) names the request by its path.
      const urls = logged.map((line) => (JSON.parse(line) as { path?: string }).path);
      assert.ok(urls.includes('/v2/'), `the /v2/ request is logged:\n${logged.join('\n')}`);
      assert.deepEqual(
        logged.filter((line) => /livez|readyz/.test(line)),
        [],
        'no line about a probe',
      );
    });

    test('while the drain file exists /readyz answers 503 and says so, and pulls are served; then 200 again', async () => {
      writeFileSync(drainFile, '');
      try {
        const ready = await request(app, 'GET', '/readyz');
        assert.equal(ready.statusCode, 503);
        assert.deepEqual(readiness(ready.body), {
          status: 'unavailable',
          checks: { storage: 'ok', drainFile: `failed: the drain file ${drainFile} exists`, shutdown: 'ok' },
        });
        assert.equal((await request(app, 'HEAD', '/readyz')).statusCode, 503);
        const pulled = await request(app, 'GET', '/v2/team/app/manifests/1', basicOf('alice'));
        assert.equal(pulled.statusCode, 200);
        assert.equal(pulled.headers['docker-content-digest'], tree.image.digest);
      } finally {
        rmSync(drainFile, { force: true });
      }
      assert.equal((await request(app, 'GET', '/readyz')).statusCode, 200);
    });

    test('a tree that does not answer (nothing published at the location) fails the storage check', async (t) => {
      const empty = await freshTree(backend, t);
      const unready = await serveTree(empty);
      t.after(() => unready.close());
      const ready = await unready.inject({ method: 'GET', url: '/readyz' });
      assert.equal(ready.statusCode, 503);
      const { status, checks } = readiness(ready.body);
      assert.equal(status, 'unavailable');
      assert.match(checks.storage ?? '', /^failed: .*no published tree/);
      assert.equal(checks.drainFile, 'ok');
      assert.equal((await unready.inject({ method: 'GET', url: '/livez' })).statusCode, 200);
    });

    test('a storm of probes asks the store once, not once per probe', async (t) => {
      const tree = await openTree(spot);
      // The real back end, its checkTree counted.
      let asked = 0;
      const checkTree = tree.backend.checkTree.bind(tree.backend);
      tree.backend.checkTree = (use) => {
        asked++;
        return checkTree(use);
      };
      const probed = buildApp(serveConfig(spot.location), tree, { logger: pino({ level: 'silent' }) });
      t.after(async () => {
        await probed.close();
        await tree.backend.close();
      });
      const answers = await Promise.all(
        Array.from({ length: 50 }, () => probed.inject({ method: 'GET', url: '/readyz' })),
      );
      assert.deepEqual(new Set(answers.map((answer) => answer.statusCode)), new Set([200]));
      // One look is shared by every probe for a second (two if the burst straddles the end of one).
      assert.ok(asked >= 1 && asked <= 2, `the store was asked ${asked} times for 50 probes`);
    });

    // Last: a drained app stays drained.
    test('once draining, /readyz fails and every answer says Connection: close; requests are still served', async () => {
      drain(app);
      const ready = await request(app, 'GET', '/readyz');
      assert.equal(ready.statusCode, 503);
      assert.equal(readiness(ready.body).checks.shutdown, 'failed: draining');
      const pulled = await request(app, 'GET', '/v2/team/app/manifests/1', basicOf('alice'));
      assert.equal(pulled.statusCode, 200);
      assert.equal(pulled.headers.connection, 'close');
      assert.equal((await request(app, 'GET', '/livez')).statusCode, 200);
    });
  });
