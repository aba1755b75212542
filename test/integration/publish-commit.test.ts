/**
 * Phase B of a publish commits what it staged several objects at a time (publisher.ts). A commit that fails there
 * fails the publish the way one commit after another did: that error, no record, every other staged object
 * committed or thrown away (none left staged, no debris), and the next publish succeeds. One suite, two back ends.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { openSource } from '../../src/publish/open-source.ts';
import { silentProgress } from '../../src/publish/progress.ts';
import { publish } from '../../src/publish/publisher.ts';
import type { Backend, Pending } from '../../src/store/backend.ts';
import { openBackend } from '../../src/store/open-backend.ts';
import { Tree } from '../../src/store/tree.ts';
import { BACKENDS, freshTree } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { LayoutBuilder } from '../helpers/images.ts';

/** The back end with `stage` replaced; the rest (and `this` inside them) go to the real one. */
function withStage(backend: Backend, stage: Backend['stage']): Backend {
  return new Proxy(backend, {
    get(target, property, receiver): unknown {
      if (property === 'stage') return stage;
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

function publishInto(tree: Tree, layout: string) {
  return publish({
    tree,
    openSource: () => openSource(`oci:${layout}:latest`, tree.backend.scratchDir),
    destinations: [{ name: 'team/app', tags: ['v1'] }],
    allTags: false,
    baseUrl: undefined,
    protected: undefined,
    lockTimeoutMs: 10_000,
    progress: silentProgress,
  });
}

for (const backend of BACKENDS)
  describe(`publish: a commit that fails in phase B (${backend})`, () => {
    test('fails the publish with its error, writes no record, commits or throws away every other staged object; the next publish succeeds', async (t) => {
      const scratch = tempDir();
      t.after(() => scratch.cleanup());
      // Twelve layers over 1 MiB (multipart uploads on S3), a config and a manifest: more objects than one
      // publish commits at once.
      const builder = new LayoutBuilder(scratch.dir);
      const layers = Array.from({ length: 12 }, () => {
        const bytes = randomBytes(1024 * 1024 + 4096);
        const descriptor = builder.blob(bytes, 'application/vnd.oci.image.layer.v1.tar');
        return { descriptor, diffId: descriptor.digest };
      });
      builder.add(await builder.image({ extraLayers: layers }), 'latest').write();

      const spot = await freshTree(backend, t);
      const tree = new Tree(await openBackend(spot.location));
      t.after(() => tree.backend.close());
      const real = tree.backend;
      let staged = 0;
      let committed = 0;
      let discarded = 0;
      const cleanups: Promise<void>[] = [];
      const flaky = withStage(real, async (key, input, digest, options): Promise<Pending> => {
        const pending = await real.stage(key, input, digest, options);
        const first = staged++ === 0;
        return {
          commit: () => {
            if (!first)
              return pending.commit().then(() => {
                committed++;
              });
            // A commit that fails cleans up after itself, as both back ends' do.
            cleanups.push(pending.discard());
            return Promise.reject(new Error('the store went away'));
          },
          discard: () => {
            discarded++;
            return pending.discard();
          },
        };
      });

      await assert.rejects(publishInto(new Tree(flaky), scratch.dir), /the store went away/);
      await Promise.all(cleanups);
      assert.equal(staged, 14);
      assert.equal(
        committed + discarded,
        staged - 1,
        'each other staged object committed or thrown away, once',
      );
      assert.ok(discarded > 0, 'the commits not yet begun when one failed were thrown away, not made');
      assert.equal((await tree.readRecord('team/app')).found, false);
      const debris = await real.sweepDebris(new Date(Date.now() + 3_600_000), true);
      assert.equal(debris.count, 0, 'nothing left staged');

      await publishInto(tree, scratch.dir);
      const lookup = await tree.readRecord('team/app');
      assert.ok(lookup.found);
      assert.equal(lookup.repository.tags.size, 1);
    });
  });
