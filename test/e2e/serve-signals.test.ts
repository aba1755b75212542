/**
 * `derrick serve` under a supervisor: once it has said it is serving, a SIGTERM must close it cleanly (exit 0),
 * however soon it comes — which is how the e2e suites (and systemd, Kubernetes, a test runner) stop it. Over a
 * tree on each back end (BACKENDS: a directory, a bucket of the test S3 server, whose client must not keep a
 * stopping server alive).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, type TreeSpot } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { startDerrickServer } from '../helpers/derrick-server.ts';
import { singleImageLayout } from '../helpers/images.ts';
import { publishInto, suiteTree } from '../helpers/server.ts';

const temp = tempDir('derrick-e2e-signals-');
after(() => temp.cleanup());

describe('derrick serve and SIGTERM', () => {
  /** One published tree per back end, in BACKENDS' order; serving only reads it, so its servers share it. */
  const trees: { spot: TreeSpot; remove: () => Promise<void> }[] = [];
  before(async () => {
    const layout = path.join(temp.dir, 'layout');
    await singleImageLayout(layout, 'v1', 'served, then stopped');
    for (const backend of BACKENDS) {
      const tree = await suiteTree(backend);
      trees.push(tree);
      await publishInto(tree.spot, `oci:${layout}:v1`, ['signals/app:v1']);
    }
  });
  after(async () => {
    for (const tree of trees) await tree.remove();
  });

  test('a SIGTERM right after the "serving" line ends it cleanly, every time, on each back end', async () => {
    // The window between the line and the signal handler is short: several servers at once, twice each,
    // make a busy box that finds it (a handler installed before the line leaves no window at all). The servers
    // take the back ends in turn, so each back end is stopped as often while the box is as busy.
    const parallel = 4;
    const rounds = 2;
    const outcomes = await Promise.all(
      Array.from({ length: parallel }, async (_, i) => {
        const { spot } = trees[i % trees.length] ?? assert.fail('no tree');
        const ended = [];
        for (let round = 0; round < rounds; round++) {
          // A generous wait for the "serving" line: four tsx start-ups at once on a shared CI box can take 30 s.
          const server = await startDerrickServer(spot.location, { env: spot.env, timeoutMs: 120_000 });
          ended.push({ backend: spot.backend, ...(await server.stop()) });
        }
        return ended;
      }),
    );
    assert.deepEqual(new Set(outcomes.flat().map((ended) => ended.backend)), new Set(BACKENDS));
    const unclean = outcomes.flat().filter((ended) => ended.code !== 0);
    assert.deepEqual(
      unclean,
      [],
      `${unclean.length} of ${parallel * rounds} servers did not exit 0 on SIGTERM after saying they serve`,
    );
  });
});
