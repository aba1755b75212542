/**
 * `derrick serve --workers N`: a cluster sharing one socket. Whichever worker answers, it answers from the tree,
 * so a publish is seen by the very next request on every worker; a worker that dies is replaced.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BACKENDS } from '../helpers/backends.ts';
import { REPO_ROOT } from '../helpers/cli.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { derrickOk, suiteTree } from '../helpers/server.ts';

const demo = `oci:${path.join(REPO_ROOT, 'demo', 'hello')}:latest`;

for (const backend of BACKENDS)
  describe(backend, () => {
    let dataDir = '';
    let removeTree!: () => Promise<void>;
    let server!: DerrickServer;

    /** Live worker processes of the primary (zombies not yet reaped excluded). */
    const workerPids = (): number[] =>
      execFileSync('ps', ['--ppid', String(server.pid), '-o', 'pid=,stat='], { encoding: 'utf8' })
        .split('\n')
        .map((line) => line.trim().split(/\s+/))
        .filter(([pid, stat]) => pid !== undefined && pid !== '' && !stat?.startsWith('Z'))
        .map(([pid]) => Number(pid));

    before(async () => {
      const { spot, remove } = await suiteTree(backend);
      removeTree = remove;
      dataDir = spot.location;
      await derrickOk(dataDir, ['publish', demo, 'demo/hello']);
      server = await startDerrickServer(dataDir, { args: ['--workers', '2'], env: spot.env });
    });
    after(async () => {
      await server.stop();
      await removeTree();
    });

    describe('serve with workers', () => {
      test('two workers serve, and a publish is seen by every next request, whichever worker takes it', async () => {
        assert.equal(workerPids().length, 2);
        await derrickOk(dataDir, ['publish', demo, 'demo/hello:fresh']);
        const answers = await Promise.all(
          Array.from({ length: 40 }, () =>
            fetch(`http://127.0.0.1:${server.port}/v2/demo/hello/manifests/fresh`, { method: 'HEAD' }),
          ),
        );
        assert.deepEqual(new Set(answers.map((answer) => answer.status)), new Set([200]));
      });

      test('a worker killed with SIGKILL is replaced and serving goes on', async () => {
        const [victim] = workerPids();
        assert.ok(victim !== undefined);
        process.kill(victim, 'SIGKILL');
        // The replacement compiles the CLI first (tsx): wait, generously on a loaded machine, until two workers
        // without the victim have been there for three checks in a row.
        let stable = 0;
        for (let i = 0; i < 200 && stable < 3; i++) {
          await new Promise((resolve) => setTimeout(resolve, 150));
          const pids = workerPids();
          stable = pids.length === 2 && !pids.includes(victim) ? stable + 1 : 0;
        }
        assert.equal(stable, 3, `workers now: ${workerPids().join(', ')}\n${server.output()}`);
        assert.match(server.output(), new RegExp(`worker ${victim} exited \\(SIGKILL\\); starting another`));
        const answer = await fetch(`http://127.0.0.1:${server.port}/v2/_catalog`);
        assert.equal(answer.status, 200);
      });

      test('SIGTERM stops the primary and every worker cleanly', async () => {
        const result = await server.stop(20_000);
        assert.equal(result.code, 0);
        assert.equal(result.killed, false);
      });
    });
  });
