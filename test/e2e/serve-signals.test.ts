/**
 * `derrick serve` under a supervisor: once it has said it is serving, a SIGTERM must close it cleanly (exit 0),
 * however soon it comes — which is how the e2e suites (and systemd, Kubernetes, a test runner) stop it.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { tempDir } from '../helpers/cli.ts';
import { startDerrickServer } from '../helpers/derrick-server.ts';

const temp = tempDir('derrick-e2e-signals-');
after(() => temp.cleanup());

describe('derrick serve and SIGTERM', () => {
  test('a SIGTERM right after the "serving" line ends it cleanly, every time', async () => {
    // The window between the line and the signal handler is short: several servers at once, twice each,
    // make a busy box that finds it (a handler installed before the line leaves no window at all).
    const parallel = 4;
    const rounds = 2;
    const outcomes = await Promise.all(
      Array.from({ length: parallel }, async (_, i) => {
        const ended = [];
        for (let round = 0; round < rounds; round++) {
          const server = await startDerrickServer(path.join(temp.dir, `data-${i}`));
          ended.push(await server.stop());
        }
        return ended;
      }),
    );
    const unclean = outcomes.flat().filter((ended) => ended.code !== 0);
    assert.deepEqual(
      unclean,
      [],
      `${unclean.length} of ${parallel * rounds} servers did not exit 0 on SIGTERM after saying they serve`,
    );
  });
});
