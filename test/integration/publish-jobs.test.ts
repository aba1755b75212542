/**
 * `jobs`: the publisher stages several blobs at once, and the first that fails stops the others and leaves the tree
 * as it was. The source is a real OCI layout read through a wrapper that counts the blob streams open at one time
 * and can hold a stream back until enough are open — a count, never a clock. A test that waits for more streams
 * than the publisher opens fails on its timeout instead of hanging.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { publish, type PublishOptions } from '../../src/publish/publisher.ts';
import { silentProgress } from '../../src/publish/progress.ts';
import { openOciLayout } from '../../src/publish/source-oci.ts';
import type { ImageSource } from '../../src/publish/source.ts';
import { openBackend } from '../../src/store/open-backend.ts';
import { Tree } from '../../src/store/tree.ts';
import { REPO_ROOT, runDerrick, tempDir } from '../helpers/cli.ts';
import { LayoutBuilder } from '../helpers/images.ts';

const temp = tempDir('derrick-jobs-');
after(() => temp.cleanup());
let counter = 0;
const fresh = (label: string): string => path.join(temp.dir, `${label}-${++counter}`);

/** An OCI layout whose image has `layers` layers plus its config: layers + 1 blobs. */
async function manyBlobLayout(layers: number): Promise<string> {
  const dir = fresh('layout');
  const builder = new LayoutBuilder(dir);
  const extraLayers = [];
  for (let i = 0; i < layers; i++)
    extraLayers.push(await builder.layer({ [`file-${i}.txt`]: `layer ${i}\n` }));
  builder.add(await builder.image({ extraLayers }), 'latest').write();
  return dir;
}

interface Watched {
  source: ImageSource;
  /** The most blob streams that were open at one time. */
  maxOpen: () => number;
  /** Blob streams closed before their last byte: failed, or stopped by the publisher. */
  cutShort: () => number;
}

/** What the nth blob stream opened does: nothing until `after` streams have been opened, then `then`. */
type Plan = (nth: number) => { after: number; then: 'pass' | 'fail' | 'hang' };

/** The layout's source, its blob streams run by `plan`. */
function watched(inner: ImageSource, plan: Plan): Watched {
  let open = 0;
  let opened = 0;
  let maxOpen = 0;
  let cutShort = 0;
  const waiting: { after: number; go: () => void }[] = [];
  const wake = (): void => {
    for (const waiter of [...waiting]) {
      if (opened < waiter.after) continue;
      waiting.splice(waiting.indexOf(waiter), 1);
      waiter.go();
    }
  };
  return {
    maxOpen: () => maxOpen,
    cutShort: () => cutShort,
    source: {
      ...inner,
      description: inner.description,
      async blob(digest) {
        const bytes = await inner.blob(digest);
        if (bytes?.kind !== 'stream') return bytes;
        return {
          ...bytes,
          open: async () => {
            const nth = opened++;
            open++;
            maxOpen = Math.max(maxOpen, open);
            const content = await whole(await bytes.open());
            let ended = false;
            const stream = new Readable({ read: () => undefined });
            stream.on('end', () => (ended = true));
            stream.on('close', () => {
              open--;
              if (!ended) cutShort++;
            });
            const { after, then } = plan(nth);
            waiting.push({
              after,
              go: () => {
                if (then === 'fail') stream.destroy(new Error(`blob stream ${nth} broke`));
                else if (then === 'pass') {
                  stream.push(content);
                  stream.push(null);
                }
              },
            });
            wake();
            return stream;
          },
        };
      },
    },
  };
}

/** A stream's bytes, whole. */
async function whole(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function freshTree(): Promise<Tree> {
  const backend = await openBackend(fresh('tree'));
  await backend.checkTree('new-or-existing');
  return new Tree(backend);
}

function options(tree: Tree, source: ImageSource, jobs: number): PublishOptions {
  return {
    tree,
    openSource: () => Promise.resolve(source),
    destinations: [{ name: 'jobs/app', tags: ['1'] }],
    allTags: false,
    baseUrl: undefined,
    protected: undefined,
    lockTimeoutMs: 10_000,
    progress: silentProgress,
    jobs,
  };
}

async function filesBelow(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile()).map((entry) => entry.name);
}

describe('publish with jobs', { timeout: 60_000 }, () => {
  test('jobs 4 with 6 blobs: 4 blob streams open at once, never more', async () => {
    const layout = await manyBlobLayout(5);
    const tree = await freshTree();
    const probe = watched(await openOciLayout(layout, 'latest'), () => ({ after: 4, then: 'pass' }));
    try {
      const result = await publish(options(tree, probe.source, 4));
      assert.equal(result.blobsCopied, 6);
      assert.equal(probe.maxOpen(), 4);
    } finally {
      await tree.backend.close();
    }
  });

  test('jobs 1: one blob stream at a time', async () => {
    const layout = await manyBlobLayout(3);
    const tree = await freshTree();
    const probe = watched(await openOciLayout(layout, 'latest'), () => ({ after: 1, then: 'pass' }));
    try {
      const result = await publish(options(tree, probe.source, 1));
      assert.equal(result.blobsCopied, 4);
      assert.equal(probe.maxOpen(), 1);
    } finally {
      await tree.backend.close();
    }
  });

  test('one blob fails: the copies in flight are stopped, every staged file is discarded, nothing is stored', async () => {
    const layout = await manyBlobLayout(5);
    const tree = await freshTree();
    // Six blobs, four at a time. The first is staged whole; the fifth is opened only once it is, and then the
    // second fails. The third, fourth and fifth never end by themselves: the publish ends only if it stops them.
    const failing = watched(await openOciLayout(layout, 'latest'), (nth) =>
      nth === 0
        ? { after: 0, then: 'pass' }
        : nth === 1
          ? { after: 5, then: 'fail' }
          : { after: 0, then: 'hang' },
    );
    try {
      await assert.rejects(publish(options(tree, failing.source, 4)), /blob stream 1 broke/);
      assert.equal(failing.cutShort(), 4, 'the failed stream and the three in flight were all cut short');
      const root = tree.backend.localPath('v2');
      assert.ok(root);
      assert.deepEqual(await filesBelow(path.join(root, '.staging')), []);
      assert.deepEqual(await filesBelow(path.join(root, 'content')), []);
      assert.equal((await tree.readRecord('jobs/app')).found, false);
    } finally {
      await tree.backend.close();
    }
  });

  test('--jobs 0 is refused in one line naming the range', async () => {
    const demo = `oci:${path.join(REPO_ROOT, 'demo', 'hello')}:latest`;
    const result = await runDerrick([
      'publish',
      demo,
      'jobs/demo',
      '--jobs',
      '0',
      '--data-dir',
      fresh('cli'),
    ]);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      'derrick: --jobs 0 for derrick publish: expected a whole number from 1 to 32; see derrick publish --help\n',
    );
  });
});
