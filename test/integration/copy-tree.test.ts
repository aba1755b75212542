/**
 * `derrick copy-tree <from> <to>` between every pair of back ends: a directory and a prefix of a bucket on the
 * test S3 server (Ceph RGW). What it copies is checked by the real tools on the destination (verify, ls) and by
 * the real app answering from it; what it must not do (copy again what is there, land a corrupt object or a record
 * whose content is missing) is checked behind its back.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { buildApp } from '../../src/http/app.ts';
import { contentKey } from '../../src/store/keys.ts';
import { openBackend } from '../../src/store/open-backend.ts';
import { Tree } from '../../src/store/tree.ts';
import { BACKENDS, freshTree, type TreeSpot } from '../helpers/backends.ts';
import { runDerrick, tempDir, type RunResult } from '../helpers/cli.ts';
import { multiPlatformLayout, singleImageLayout } from '../helpers/images.ts';
import { rawClient } from '../helpers/s3.ts';
import { serveConfig } from '../helpers/server.ts';

async function derrick(spot: TreeSpot | undefined, args: string[]): Promise<RunResult> {
  return runDerrick(args, { env: { DERRICK_DEBUG: '', ...(spot?.env ?? {}) } });
}

async function ok(spot: TreeSpot | undefined, args: string[]): Promise<string> {
  const result = await derrick(spot, args);
  assert.equal(result.code, 0, `derrick ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

/** A source tree with a namespaced multi-platform repository, a plain one, and one outside the namespace. */
async function publishedSource(t: TestContext, spot: TreeSpot): Promise<void> {
  const layouts = tempDir('derrick-copy-layouts-');
  t.after(() => layouts.cleanup());
  await multiPlatformLayout(path.join(layouts.dir, 'multi'));
  await singleImageLayout(path.join(layouts.dir, 'single'), 'latest', 'single');
  await singleImageLayout(path.join(layouts.dir, 'other'), 'latest', 'other');
  await ok(spot, [
    'publish',
    `oci:${path.join(layouts.dir, 'multi')}`,
    'team/multi:1',
    '--data-dir',
    spot.location,
    '-q',
  ]);
  await ok(spot, [
    'publish',
    `oci:${path.join(layouts.dir, 'single')}`,
    'team/single:1',
    'team/single:2',
    '--data-dir',
    spot.location,
    '-q',
  ]);
  await ok(spot, [
    'publish',
    `oci:${path.join(layouts.dir, 'other')}`,
    'other:latest',
    '--data-dir',
    spot.location,
    '-q',
  ]);
}

/** What `derrick copy-tree --json` printed. */
interface Copied {
  repositories: number;
  recordsCopied: number;
  recordsUnchanged: number;
  objectsCopied: number;
  objectsPresent: number;
  problems: { repository: string; problem: string }[];
}

async function copy(
  env: NodeJS.ProcessEnv,
  from: string,
  to: string,
  extra: string[] = [],
): Promise<RunResult & { copied: Copied }> {
  const result = await runDerrick(['copy-tree', from, to, '--json', ...extra], {
    env: { DERRICK_DEBUG: '', ...env },
  });
  assert.notEqual(result.stdout, '', `copy-tree printed nothing: ${result.stderr}`);
  return { ...result, copied: JSON.parse(result.stdout) as Copied };
}

for (const fromBackend of BACKENDS) {
  for (const toBackend of BACKENDS) {
    describe(`copy-tree from ${fromBackend} to ${toBackend}`, () => {
      test('copies every repository so that the destination lists, verifies and serves the same, then copies nothing again', async (t) => {
        const from = await freshTree(fromBackend, t);
        const to = await freshTree(toBackend, t);
        await publishedSource(t, from);
        const env = { ...from.env, ...to.env };

        const first = await copy(env, from.location, to.location);
        assert.equal(first.code, 0, first.stderr);
        assert.equal(first.copied.repositories, 3);
        assert.equal(first.copied.recordsCopied, 3);
        assert.ok(first.copied.objectsCopied > 0);
        assert.deepEqual(first.copied.problems, []);

        assert.equal(
          await ok(to, ['ls', '--json', '--data-dir', to.location]),
          await ok(from, ['ls', '--json', '--data-dir', from.location]),
        );
        assert.match(
          await ok(to, ['verify', '--data-dir', to.location]),
          /^3 repositories, \d+ files checked: no problems$/m,
        );

        // The real app over the copy answers the manifest the source answers, byte for byte.
        const answer = async (spot: TreeSpot): Promise<{ status: number; body: string; digest: unknown }> => {
          const config = serveConfig(spot.location);
          const tree = new Tree(await openBackend(spot.location, { s3: config.s3 }));
          const app = buildApp(config, tree, { logger: pino({ level: 'silent' }) });
          try {
            const response = await app.inject({ url: '/v2/team/single/manifests/2' });
            return {
              status: response.statusCode,
              body: response.body,
              digest: response.headers['docker-content-digest'],
            };
          } finally {
            await app.close();
            await tree.backend.close();
          }
        };
        const served = await answer(to);
        assert.equal(served.status, 200);
        assert.deepEqual(served, await answer(from));

        const again = await copy(env, from.location, to.location);
        assert.equal(again.code, 0, again.stderr);
        assert.equal(again.copied.recordsCopied, 0);
        assert.equal(again.copied.recordsUnchanged, 3);
        assert.equal(again.copied.objectsCopied, 0);
      });

      test('--prefix copies only the repositories below that namespace', async (t) => {
        const from = await freshTree(fromBackend, t);
        const to = await freshTree(toBackend, t);
        await publishedSource(t, from);
        const result = await copy({ ...from.env, ...to.env }, from.location, to.location, [
          '--prefix',
          'team',
        ]);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.copied.recordsCopied, 2);
        const listed = JSON.parse(await ok(to, ['ls', '--json', '--data-dir', to.location])) as {
          name: string;
        }[];
        assert.deepEqual(
          listed.map((entry) => entry.name),
          ['team/multi', 'team/single'],
        );
      });

      test('an object of the source whose bytes do not match its digest never lands, nor does its record; the others are copied, exit 1', async (t) => {
        const from = await freshTree(fromBackend, t);
        const to = await freshTree(toBackend, t);
        await publishedSource(t, from);
        const source = new Tree(await openBackend(from.location));
        t.after(() => source.backend.close());
        const lookup = await source.readRecord('other');
        assert.ok(lookup.found);
        const [layer] = [...lookup.repository.blobs].sort(([, a], [, b]) => b - a);
        assert.ok(layer);
        const key = contentKey(layer[0]);
        const forged = Buffer.alloc(layer[1], 7);
        if (from.bucket === undefined) await fs.writeFile(path.join(from.location, key), forged);
        else {
          const client = await rawClient();
          await client.send(new PutObjectCommand({ Bucket: from.bucket, Key: `tree/${key}`, Body: forged }));
          client.destroy();
        }

        const result = await copy({ ...from.env, ...to.env }, from.location, to.location);
        assert.equal(result.code, 1);
        assert.equal(result.copied.recordsCopied, 2);
        assert.deepEqual(
          result.copied.problems.map((problem) => problem.repository),
          ['other'],
        );
        assert.match(
          result.copied.problems.map((problem) => problem.problem).join('\n'),
          new RegExp(`does not match ${layer[0]}`),
        );
        const destination = new Tree(await openBackend(to.location));
        t.after(() => destination.backend.close());
        assert.equal((await destination.readRecord('other')).found, false);
        assert.equal(
          await destination.backend.stat(key),
          undefined,
          'the forged bytes landed under the digest',
        );
      });
    });
  }
}

describe('copy-tree refuses what it cannot copy to or from', () => {
  test('a source that is no tree, and a destination that is a non-empty directory holding no tree: one line each, exit 1', async (t) => {
    const temp = tempDir();
    t.after(() => temp.cleanup());
    const notTree = path.join(temp.dir, 'empty');
    await fs.mkdir(notTree);
    const from = await derrick(undefined, ['copy-tree', notTree, path.join(temp.dir, 'to')]);
    assert.equal(from.code, 1);
    assert.match(from.stderr, /^derrick: no published tree at .*empty \(no v2\/ inside\)/);
    const source = await freshTree('fs', t);
    await publishedSource(t, source);
    const busy = path.join(temp.dir, 'busy');
    await fs.mkdir(busy);
    await fs.writeFile(path.join(busy, 'notes.txt'), 'mine');
    const to = await derrick(undefined, ['copy-tree', source.location, busy]);
    assert.equal(to.code, 1);
    assert.match(to.stderr, /^derrick: .*busy is not empty and holds no published tree/);
    assert.equal(to.stderr.trimEnd().split('\n').length, 1);
  });
});
