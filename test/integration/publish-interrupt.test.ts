/**
 * Ctrl-C (SIGINT) and SIGTERM during `derrick publish`, on a terminal (a pseudo-terminal through script(1), where
 * Ctrl-C is the keystroke) and on a pipe. Before the publish has begun committing: the terminal gets its cursor and
 * line wrapping back, this publish's staging files go (another publisher's stay), one line says
 * `interrupted: nothing was published`, the exit status is 130 / 143, and the tree is file for file as before.
 * After it has begun: the commit finishes, and the line says so.
 *
 * Into a bucket too, mid-copy: the multipart upload under way is aborted and the bucket is object for object as
 * before. The tests that hold gc's or a record's lock stay on a file system: a bucket has no such locks.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream, promises as fs, readFileSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { acquireGcLock, acquireLock, repositoryLockKey } from '../../src/store/locks.ts';
import { TreeLayout } from '../../src/store/layout.ts';
import { Tree } from '../../src/store/tree.ts';
import { verifyTree } from '../../src/publish/verify.ts';
import {
  CLI,
  collectOutput,
  REPO_ROOT,
  runDerrick,
  snapshotTree,
  startDerrick,
  tempDir,
  type RunResult,
} from '../helpers/cli.ts';
import { ListMultipartUploadsCommand, ListPartsCommand } from '@aws-sdk/client-s3';
import { freshTree, type TreeSpot } from '../helpers/backends.ts';
import { largeImageLayout } from '../helpers/images.ts';
import { bucketSnapshot, rawClient } from '../helpers/s3.ts';
import { waitForPrinted } from '../helpers/processes.ts';

const temp = tempDir('derrick-interrupt-');
after(() => temp.cleanup());
let counter = 0;
const fresh = (label: string): string => path.join(temp.dir, `${label}-${++counter}`);
const demo = `oci:${path.join(REPO_ROOT, 'demo', 'hello')}:latest`;
/** Large enough that the copy is still running when the signal lands, whatever the machine. */
const LAYER_BYTES = 256 * 1024 * 1024;
const env = { DERRICK_DEBUG: '' };

let bigLayout = '';
let bigArchive = '';
before(async () => {
  bigLayout = fresh('big');
  const manifest = await largeImageLayout(bigLayout, LAYER_BYTES);
  bigArchive = `${fresh('big')}.tar`;
  await dockerArchiveOf(bigLayout, manifest.digest, bigArchive);
});

/** A `docker save` tarball of the layout's image, its big layer first (so reading it stages that first). */
async function dockerArchiveOf(layout: string, manifestDigest: string, archive: string): Promise<void> {
  const blob = (digest: string): string =>
    path.join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length));
  const manifest = JSON.parse(await fs.readFile(blob(manifestDigest), 'utf8')) as {
    config: { digest: string };
    layers: { digest: string; size: number }[];
  };
  const layer = manifest.layers[0];
  assert.ok(layer);
  const pack = tar.pack();
  const written = pipeline(pack, createWriteStream(archive));
  const layerName = `${layer.digest.slice('sha256:'.length)}/layer.tar`;
  const configName = `${manifest.config.digest.slice('sha256:'.length)}.json`;
  await pipeline(
    createReadStream(blob(layer.digest)),
    pack.entry({ name: layerName, size: layer.size }) as unknown as NodeJS.WritableStream,
  );
  pack.entry({ name: configName }, await fs.readFile(blob(manifest.config.digest)));
  pack.entry(
    { name: 'manifest.json' },
    JSON.stringify([{ Config: configName, RepoTags: ['big/app:1'], Layers: [layerName] }]),
  );
  pack.finalize();
  await written;
}

/**
 * A published tree (demo/hello) with a staging file of another, running publisher in it: what an interrupted
 * publish must leave exactly as it is.
 */
async function treeWithNeighbour(): Promise<string> {
  const dataDir = fresh('data');
  const result = await runDerrick(['publish', '-q', demo, 'demo/hello', '--data-dir', dataDir], { env });
  assert.equal(result.code, 0, result.stderr);
  await fs.writeFile(path.join(dataDir, 'v2', '.staging', 'another-publisher.blob'), 'not mine\n');
  return dataDir;
}

interface Publishing {
  child: ChildProcess;
  output: () => string;
  /** Resolves once the output matches `pattern`; rejects if the publish ends first. */
  waitFor: (pattern: RegExp) => Promise<void>;
  /** Sends `signal` as a user would: Ctrl-C typed on the terminal, or kill(2). */
  interrupt: (signal: 'SIGINT' | 'SIGTERM') => void;
  done: Promise<RunResult>;
}

const quote = (arg: string): string => `'${arg.replaceAll("'", `'\\''`)}'`;

/** The node process running the CLI below `pid` (script → sh → node), found through /proc. */
function cliProcess(pid: number): number | undefined {
  const children = (parent: number): number[] => {
    try {
      return readFileSync(`/proc/${parent}/task/${parent}/children`, 'utf8')
        .split(' ')
        .filter(Boolean)
        .map(Number);
    } catch {
      return [];
    }
  };
  const queue = [pid];
  while (queue.length > 0) {
    const current = queue.shift() ?? 0;
    const cmdline = (() => {
      try {
        return readFileSync(`/proc/${current}/cmdline`, 'utf8');
      } catch {
        return '';
      }
    })();
    const argv = cmdline.split('\0');
    if (argv[0] === process.execPath && argv.includes(CLI)) return current;
    queue.push(...children(current));
  }
  return undefined;
}

/** Starts `derrick publish <args>` on a pseudo-terminal (`tty`) or on pipes. */
function startPublish(args: string[], tty: boolean): Publishing {
  const child = tty
    ? spawn(
        'script',
        [
          '-qfec',
          [process.execPath, '--import', 'tsx', CLI, 'publish', ...args].map(quote).join(' '),
          '/dev/null',
        ],
        { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] },
      )
    : startDerrick(['publish', ...args], { env });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const done = collectOutput(child);
  const waitFor = (pattern: RegExp): Promise<void> =>
    waitForPrinted(
      child,
      () => pattern.test(output),
      () => new Error(`the publish ended before printing ${String(pattern)}:\n${output}`),
    );
  const interrupt = (signal: 'SIGINT' | 'SIGTERM'): void => {
    if (!tty) {
      child.kill(signal);
      return;
    }
    if (signal === 'SIGINT') {
      child.stdin?.write('\u0003'); // Ctrl-C: the terminal sends SIGINT to the foreground process group
      return;
    }
    const pid = cliProcess(child.pid ?? 0);
    assert.ok(pid, 'found no derrick process under script');
    process.kill(pid, signal);
  };
  return { child, output: () => output, waitFor, interrupt, done };
}

/** A staging file of this publish (not the neighbour's) holding bytes: the copy is under way. */
async function waitForStagedBytes(dataDir: string, publishing: Publishing): Promise<void> {
  const staging = path.join(dataDir, 'v2', '.staging');
  for (;;) {
    if (publishing.child.exitCode !== null) assert.fail(`the publish ended first:\n${publishing.output()}`);
    for (const name of await fs.readdir(staging).catch(() => [] as string[])) {
      if (name === 'another-publisher.blob') continue;
      const stat = await fs.stat(path.join(staging, name)).catch(() => undefined);
      if (stat && stat.size > 0) return;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const EXIT = { SIGINT: 130, SIGTERM: 143 } as const;

/** Everything the terminal must be left with: cursor shown and line wrapping on after the last time they went. */
function assertTerminalRestored(output: string): void {
  const hidden = output.lastIndexOf('\u001b[?25l');
  assert.ok(hidden !== -1, 'the bar never hid the cursor: the test did not see a bar');
  assert.ok(output.lastIndexOf('\u001b[?25h') > hidden, 'the cursor is left hidden (\\e[?25l never undone)');
  const unwrapped = output.lastIndexOf('\u001b[?7l');
  if (unwrapped !== -1)
    assert.ok(
      output.lastIndexOf('\u001b[?7h') > unwrapped,
      'line wrapping is left off (\\e[?7l never undone)',
    );
}

describe('an interrupted publish, before it commits', { concurrency: 2 }, () => {
  for (const tty of [true, false]) {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const where = tty ? 'on a terminal' : 'on a pipe';
      test(`${signal} mid-copy ${where} → "interrupted: nothing was published", exit ${EXIT[signal]}, the tree file for file as before${tty ? ', the cursor and line wrapping restored' : ''}`, async () => {
        const dataDir = await treeWithNeighbour();
        const before = await snapshotTree(dataDir);
        const publishing = startPublish(
          [`oci:${bigLayout}`, 'big/app:1', '--data-dir', dataDir, ...(tty ? [] : ['--verbose'])],
          tty,
        );
        // The progress output first (the bar, or the phase line), then bytes in staging: mid-copy for certain.
        await publishing.waitFor(tty ? /copying \[/ : /^copying 256\.0 MiB$/m);
        await waitForStagedBytes(dataDir, publishing);
        publishing.interrupt(signal);
        const result = await publishing.done;
        const output = publishing.output();
        assert.equal(result.code, EXIT[signal], output);
        assert.doesNotMatch(output, /\n\s+at /, 'no stack trace');
        assert.doesNotMatch(output, /^published /m);
        // On its own line, not after the bar.
        assert.match(output, /(^|\n)derrick: interrupted: nothing was published\r?\n$/);
        if (tty) assertTerminalRestored(output);
        assert.deepEqual(await snapshotTree(dataDir), before);
      });
    }
  }

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    test(`${signal} while a docker-archive is read into staging → "interrupted: nothing was published", exit ${EXIT[signal]}, the tree file for file as before`, async () => {
      const dataDir = await treeWithNeighbour();
      const before = await snapshotTree(dataDir);
      const publishing = startPublish(
        [`docker-archive:${bigArchive}`, 'big/archived', '--data-dir', dataDir],
        false,
      );
      await waitForStagedBytes(dataDir, publishing);
      publishing.interrupt(signal);
      const result = await publishing.done;
      assert.equal(result.code, EXIT[signal], publishing.output());
      assert.equal(result.stderr, 'derrick: interrupted: nothing was published\n');
      assert.deepEqual(await snapshotTree(dataDir), before);
    });
  }

  test('SIGINT while waiting for a running gc → "interrupted: nothing was published", exit 130, no registration left', async () => {
    const dataDir = await treeWithNeighbour();
    const before = await snapshotTree(dataDir);
    const gcLock = await acquireGcLock(new TreeLayout(dataDir), 1000);
    try {
      const publishing = startPublish([demo, 'other/app', '--data-dir', dataDir], false);
      await publishing.waitFor(/waiting for a running derrick gc to finish/);
      publishing.interrupt('SIGINT');
      const result = await publishing.done;
      assert.equal(result.code, 130, publishing.output());
      assert.equal(
        result.stderr,
        'waiting for a running derrick gc to finish\nderrick: interrupted: nothing was published\n',
      );
    } finally {
      await gcLock.release();
    }
    assert.deepEqual(await snapshotTree(dataDir), before);
  });
});

describe('an interrupted publish, once it has begun committing', { concurrency: 2 }, () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    test(`${signal} while the record waits for its lock → says at once the commit will complete, completes it, exit ${EXIT[signal]}, verify clean`, async () => {
      const dataDir = await treeWithNeighbour();
      // Another process holds the repository's lock: the publish has moved its content in and waits to merge.
      const lock = await acquireLock(new TreeLayout(dataDir), repositoryLockKey('demo/hello'), 1000);
      let publishing: Publishing;
      try {
        publishing = startPublish([demo, 'demo/hello:2', '--data-dir', dataDir], false);
        await publishing.waitFor(/waiting for another publisher of demo\/hello/);
        publishing.interrupt(signal);
        await publishing.waitFor(/^derrick: interrupted/m);
      } finally {
        await lock.release();
      }
      const result = await publishing.done;
      assert.equal(result.code, EXIT[signal], publishing.output());
      assert.match(result.stdout, /^published demo\/hello:2 sha256:/m);
      assert.equal(
        result.stderr,
        'waiting for another publisher of demo/hello\nderrick: interrupted too late to stop: the publish has begun committing and will complete\n',
      );
      const lookup = await new Tree(dataDir).readRecord('demo/hello');
      assert.ok(lookup.found);
      assert.deepEqual([...lookup.repository.tags.keys()], ['2', 'latest']);
      const verified = await verifyTree(new Tree(dataDir), { hash: true });
      assert.deepEqual(verified.problems, []);
      // Nothing of this publish is left in staging; the neighbour's file is.
      assert.deepEqual(await fs.readdir(path.join(dataDir, 'v2', '.staging')), ['another-publisher.blob']);
    });
  }
});

/** Resolves once a multipart upload into the bucket has a part stored: the copy is under way. */
async function waitForUploadedPart(spot: TreeSpot, publishing: Publishing): Promise<void> {
  const client = await rawClient();
  try {
    for (;;) {
      if (publishing.child.exitCode !== null) assert.fail(`the publish ended first:\n${publishing.output()}`);
      const { Uploads } = await client.send(new ListMultipartUploadsCommand({ Bucket: spot.bucket }));
      for (const { Key, UploadId } of Uploads ?? []) {
        const { Parts } = await client.send(new ListPartsCommand({ Bucket: spot.bucket, Key, UploadId }));
        if ((Parts ?? []).length > 0) return;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    client.destroy();
  }
}

describe('an interrupted publish into a bucket, before it commits', { concurrency: 2 }, () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    test(`${signal} mid-upload on a pipe → "interrupted: nothing was published", exit ${EXIT[signal]}, the bucket object for object as before, no unfinished upload`, async (t) => {
      const spot = await freshTree('s3', t);
      assert.ok(spot.bucket !== undefined);
      const neighbour = await runDerrick(['publish', '-q', demo, 'demo/hello', '--data-dir', spot.location], {
        env: { ...env, ...spot.env },
      });
      assert.equal(neighbour.code, 0, neighbour.stderr);
      const before = await bucketSnapshot(spot.bucket);
      const publishing = startPublish([`oci:${bigLayout}`, 'big/app:1', '--data-dir', spot.location], false);
      await waitForUploadedPart(spot, publishing);
      publishing.interrupt(signal);
      const result = await publishing.done;
      assert.equal(result.code, EXIT[signal], publishing.output());
      assert.equal(result.stderr, 'derrick: interrupted: nothing was published\n');
      assert.deepEqual(await bucketSnapshot(spot.bucket), before);
    });
  }
});
