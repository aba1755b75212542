/**
 * `derrick publish` refuses bad input cleanly: every refusal exits 1 with exactly one `derrick: …` line on
 * stderr that names the problem (no stack trace), and leaves the published tree byte for byte as it was —
 * staging files and publisher registrations included.
 *
 * Most of these run on a file-system tree only: what they refuse is the source or the name, checked before the
 * back end is written (the same code for both), or a local file system's own failures (permissions, a full or
 * read-only disk, names colliding with directories). Content that does not match its digest is the back end's
 * business, so that part also runs on a bucket: nothing lands, not even an unfinished multipart upload.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { freshTree, type TreeSpot } from '../helpers/backends.ts';
import { bucketSnapshot } from '../helpers/s3.ts';
import {
  CLI,
  collectOutput,
  REPO_ROOT,
  run,
  runDerrick,
  snapshotTree,
  tempDir,
  type RunResult,
} from '../helpers/cli.ts';
import { LayoutBuilder, multiPlatformLayout, singleImageLayout, skopeoCopy } from '../helpers/images.ts';

/** The capabilities that let root read any file: without them, a mode-000 file is unreadable to root too. */
const DAC_CAPABILITIES = '-dac_override,-dac_read_search';
/** DERRICK_DEBUG would add a stack to every error; these tests check what users see. */
const QUIET_ENV = { DERRICK_DEBUG: '' };

const cleanups: (() => void)[] = [];
const mounts: string[] = [];

function scratch(prefix: string): string {
  const { dir, cleanup } = tempDir(`derrick-bad-input-${prefix}-`);
  cleanups.push(cleanup);
  return dir;
}

/** Fixtures built once: a published tree (a multi-platform image) to copy, and sources to publish. */
let templateTree!: string;
let baseLayout!: string;
let twoImageLayout!: string;
let goodArchive!: string;
let fixtures!: string;

before(async () => {
  fixtures = scratch('fixtures');
  baseLayout = path.join(fixtures, 'base');
  await multiPlatformLayout(baseLayout);
  templateTree = path.join(fixtures, 'tree');
  await publishOk(templateTree, `oci:${baseLayout}`, 'library/base:1.0', 'library/base:latest');

  twoImageLayout = path.join(fixtures, 'two');
  const builder = new LayoutBuilder(twoImageLayout);
  const one = await builder.image({ files: { 'which.txt': 'one\n' } });
  const two = await builder.image({ files: { 'which.txt': 'two\n' } });
  builder.add(one, 'one').add(two, 'two').write();

  const archiveLayout = path.join(fixtures, 'for-archive');
  await singleImageLayout(archiveLayout, 'latest', 'archived');
  goodArchive = path.join(fixtures, 'good.tar');
  await skopeoCopy(`oci:${archiveLayout}:latest`, `docker-archive:${goodArchive}`);
});

after(async () => {
  for (const mount of mounts.splice(0)) {
    await run('umount', ['-l', mount]).catch(() => undefined);
  }
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

async function publishOk(dataDir: string, source: string, ...targets: string[]): Promise<void> {
  const result = await runDerrick(['publish', '--quiet', '--data-dir', dataDir, source, ...targets], {
    env: QUIET_ENV,
  });
  assert.equal(result.code, 0, `setup publish of ${source} failed: ${result.stderr}`);
}

/** A fresh copy of the template tree: a data dir that already holds library/base:1.0 and :latest. */
async function publishedTree(): Promise<string> {
  const dataDir = path.join(scratch('tree'), 'data');
  await run('cp', ['-a', templateTree, dataDir]);
  return dataDir;
}

/** A new single-image OCI layout whose blobs the template tree does not hold, and the path of its layer. */
async function freshLayout(text: string): Promise<{ dir: string; layerFile: string; manifestFile: string }> {
  const dir = path.join(scratch('layout'), 'layout');
  const image = await singleImageLayout(dir, 'latest', text);
  const manifestFile = path.join(dir, 'blobs', 'sha256', image.digest.slice('sha256:'.length));
  const manifest = JSON.parse(await fs.readFile(manifestFile, 'utf8')) as { layers: { digest: string }[] };
  const layer = manifest.layers[0]!.digest;
  return { dir, layerFile: path.join(dir, 'blobs', 'sha256', layer.slice('sha256:'.length)), manifestFile };
}

/** What stderr must say: a substring, a pattern, or (`absent`) a pattern it must not match. */
type Mention = string | RegExp | { absent: RegExp };

/** What is wrong with a refusal as users see it: not exit 1, not one `derrick: ` line naming the problem, a stack. */
function refusalProblems(result: RunResult, mentions: Mention[]): string[] {
  const { code, signal, stderr } = result;
  const problems: string[] = [];
  if (signal !== null) problems.push(`derrick was killed by ${signal}`);
  if (code !== 1) problems.push(`exit code ${String(code)}, expected 1`);
  if (stderr.includes('    at ')) problems.push('stderr holds a stack trace');
  if (!/^derrick: [^\n]+\n$/.test(stderr))
    problems.push('stderr is not exactly one line starting "derrick: "');
  for (const mention of mentions) {
    if (typeof mention === 'string') {
      if (!stderr.includes(mention)) problems.push(`stderr does not mention ${JSON.stringify(mention)}`);
    } else if (mention instanceof RegExp) {
      if (!mention.test(stderr)) problems.push(`stderr does not match ${String(mention)}`);
    } else if (mention.absent.test(stderr)) {
      problems.push(`stderr matches ${String(mention.absent)}, which it must not`);
    }
  }
  return problems;
}

/** The files that differ between two snapshots, as `added|removed|changed <path>`. */
function treeChanges(before: Map<string, string>, after: Map<string, string>): string[] {
  const changes: string[] = [];
  for (const [file, hash] of after) {
    if (!before.has(file)) changes.push(`added ${file}`);
    else if (before.get(file) !== hash) changes.push(`changed ${file}`);
  }
  for (const file of before.keys()) if (!after.has(file)) changes.push(`removed ${file}`);
  return changes.sort();
}

/**
 * Runs `derrick publish --quiet --data-dir <dataDir> <args>` (quiet: progress lines are not errors) and asserts
 * that it is refused as users should see it and that the tree, staging and registrations included, is unchanged.
 * Every problem is reported at once.
 */
async function expectRefused(
  dataDir: string,
  args: string[],
  mentions: Mention[],
  runner: (args: string[]) => Promise<RunResult> = (all) => runDerrick(all, { env: QUIET_ENV }),
): Promise<RunResult> {
  const before = await snapshotTree(dataDir);
  assert.ok(before.size > 0, 'the data dir should already hold a published repository');
  const result = await runner(['publish', '--quiet', '--data-dir', dataDir, ...args]);
  const after = await snapshotTree(dataDir);
  const problems = refusalProblems(result, mentions);
  const changes = treeChanges(before, after);
  if (changes.length > 0) problems.push(`the published tree changed: ${changes.join(', ')}`);
  assert.equal(problems.length, 0, `${problems.join('\n')}\n--- stderr:\n${result.stderr}`);
  assert.deepEqual(after, before);
  return result;
}

/** The entries of an uncompressed (ustar) tar: name, where the data starts, and its size. */
function tarEntries(archive: Buffer): { name: string; offset: number; size: number }[] {
  const entries = [];
  for (let at = 0; at + 512 <= archive.length;) {
    const header = archive.subarray(at, at + 512);
    if (header.every((byte) => byte === 0)) break;
    const field = (start: number, length: number): string =>
      header
        .subarray(start, start + length)
        .toString('utf8')
        .replace(/\0[\s\S]*$/, '');
    const prefix = field(345, 155);
    const name = prefix === '' ? field(0, 100) : `${prefix}/${field(0, 100)}`;
    const size = parseInt(field(124, 12).trim() || '0', 8);
    entries.push({ name, offset: at + 512, size });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return entries;
}

/**
 * Runs derrick without the capabilities that bypass file permissions (setpriv drops them from the bounding set),
 * so a mode-000 file is unreadable to it as to any unprivileged user — while the checkout stays readable to it
 * wherever CI cloned it (a mode-0700 temp directory is out of another user's reach). HOME and TMPDIR of its own
 * for tsx's cache.
 */
function runDerrickUnprivileged(home: string): (args: string[]) => Promise<RunResult> {
  return (args) =>
    collectOutput(
      spawn(
        'setpriv',
        [
          '--bounding-set',
          DAC_CAPABILITIES,
          '--inh-caps',
          DAC_CAPABILITIES,
          process.execPath,
          '--import',
          'tsx',
          CLI,
          ...args,
        ],
        {
          cwd: REPO_ROOT,
          env: { ...process.env, ...QUIET_ENV, HOME: home, TMPDIR: home },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    );
}

/**
 * A home, and a data dir below it into which the unprivileged derrick has published library/base — which also
 * proves the CLI runs that way at all.
 */
async function unprivilegedTree(): Promise<{
  home: string;
  dataDir: string;
  asUnprivileged: (args: string[]) => Promise<RunResult>;
}> {
  const home = scratch('unprivileged');
  const asUnprivileged = runDerrickUnprivileged(home);
  const dataDir = path.join(home, 'data');
  const baseline = await asUnprivileged([
    'publish',
    '--quiet',
    '--data-dir',
    dataDir,
    `oci:${baseLayout}`,
    'library/base',
  ]);
  assert.equal(baseline.code, 0, `derrick does not run without ${DAC_CAPABILITIES}: ${baseline.stderr}`);
  return { home, dataDir, asUnprivileged };
}

/** Mounts a tmpfs of `size` at a new directory (unmounted by the after hook). */
async function tmpfs(size: string): Promise<string> {
  const mountPoint = path.join(scratch('tmpfs'), 'mnt');
  await fs.mkdir(mountPoint);
  await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mountPoint]);
  mounts.push(mountPoint);
  return mountPoint;
}

describe('publish from a source that does not exist', { concurrency: 4 }, () => {
  for (const source of [
    'oci:/nonexistent/path',
    'docker-archive:/nonexistent.tar',
    'dir:/nonexistent',
    'oci:./nope',
    'docker-archive:./nope.tar',
    'dir:./nope',
  ]) {
    const missing = source.slice(source.indexOf(':') + 1);
    test(`publish ${source} → exit 1, says ${missing} does not exist, tree unchanged`, async () => {
      const what = source.startsWith('docker-archive:') ? 'file' : 'directory';
      await expectRefused(
        await publishedTree(),
        [source, 'x'],
        [`${source}: the ${what} ${missing} does not exist`],
      );
    });
  }
});

describe('publish from a source that cannot be read', { concurrency: 4 }, () => {
  test('publish of a docker-archive path that is a directory → exit 1, says it is not a file, tree unchanged', async () => {
    const dir = scratch('archive-dir');
    await expectRefused(await publishedTree(), [`docker-archive:${dir}`, 'x'], [dir, 'is not a file']);
  });

  test('publish of an OCI layout whose layer blob is a directory → exit 1, names the blob, tree unchanged', async () => {
    const { dir, layerFile } = await freshLayout('blob-is-a-directory');
    await fs.rm(layerFile);
    await fs.mkdir(layerFile);
    await expectRefused(await publishedTree(), [`oci:${dir}`, 'x'], [layerFile, 'not a regular file']);
  });

  test('publish of an OCI layout whose manifest blob is a directory → exit 1, names the blob, tree unchanged', async () => {
    const { dir, manifestFile } = await freshLayout('manifest-is-a-directory');
    await fs.rm(manifestFile);
    await fs.mkdir(manifestFile);
    await expectRefused(await publishedTree(), [`oci:${dir}`, 'x'], [manifestFile, 'directory']);
  });

  test('publish, by a process without permission to read it, of an OCI layout whose layer blob has mode 000 → exit 1, names the blob and "permission denied", tree unchanged', async () => {
    const { dataDir, asUnprivileged } = await unprivilegedTree();
    const { dir, layerFile } = await freshLayout('unreadable-blob');
    await fs.chmod(layerFile, 0o000);
    await expectRefused(
      dataDir,
      [`oci:${dir}`, 'x'],
      [layerFile, 'permission denied', { absent: /cannot write|--data-dir/ }],
      asUnprivileged,
    );
  });

  test('publish, by a process without permission to read it, of a docker-archive file with mode 000 → exit 1, says it cannot read the file, tree unchanged', async () => {
    const { home, dataDir, asUnprivileged } = await unprivilegedTree();
    const archive = path.join(home, 'unreadable.tar');
    await fs.copyFile(goodArchive, archive);
    await fs.chmod(archive, 0o000);
    // The problem is reading the source: the message must not send the user to fix --data-dir.
    await expectRefused(
      dataDir,
      [`docker-archive:${archive}`, 'x'],
      [archive, 'permission denied', { absent: /cannot write|--data-dir/ }],
      asUnprivileged,
    );
  });
});

describe('publish from a source string derrick does not understand', { concurrency: 4 }, () => {
  test('publish containers-storage:x (an unknown transport) → exit 1, names the source and the forms derrick reads, tree unchanged', async () => {
    await expectRefused(
      await publishedTree(),
      ['containers-storage:x', 'x'],
      ['"containers-storage:x" is not a source', 'oci:<dir>', 'docker://<registry>'],
    );
  });

  test('publish docker://Bad_Host:5/x (not a registry host) → exit 1, names it, before any connection', async () => {
    await expectRefused(
      await publishedTree(),
      ['docker://Bad_Host:5/x', 'x'],
      ['"Bad_Host:5" is not a registry host[:port]'],
    );
  });

  for (const source of ['oci:', 'dir:']) {
    test(`publish ${source} (no path) → exit 1, says it names no path, tree unchanged`, async () => {
      await expectRefused(await publishedTree(), [source, 'x'], [`"${source}" names no path`]);
    });
  }
});

describe('publish from a broken docker-archive', { concurrency: 4 }, () => {
  test('publish of a docker-archive truncated to half its size → exit 1, names the archive as truncated or corrupt, tree unchanged', async () => {
    const archive = path.join(scratch('truncated'), 'truncated.tar');
    await fs.copyFile(goodArchive, archive);
    const { size } = await fs.stat(archive);
    await fs.truncate(archive, Math.floor(size / 2));
    await expectRefused(
      await publishedTree(),
      [`docker-archive:${archive}`, 'x'],
      [archive, /truncated|corrupt/],
    );
  });

  test('publish of a docker-archive of random bytes → exit 1, names the archive as not readable, tree unchanged', async () => {
    const archive = path.join(scratch('random'), 'random.tar');
    await fs.writeFile(archive, randomBytes(8192));
    await expectRefused(
      await publishedTree(),
      [`docker-archive:${archive}`, 'x'],
      [archive, /truncated|corrupt/],
    );
  });

  test('publish of a docker-archive with a flipped byte inside a layer → exit 1, names the layer and its diff_id, tree unchanged', async () => {
    const archive = path.join(scratch('flipped'), 'flipped.tar');
    const bytes = await fs.readFile(goodArchive);
    const entries = tarEntries(bytes);
    const manifestEntry = entries.find((entry) => entry.name === 'manifest.json');
    assert.ok(manifestEntry, 'skopeo wrote no manifest.json');
    const manifest = JSON.parse(
      bytes.subarray(manifestEntry.offset, manifestEntry.offset + manifestEntry.size).toString('utf8'),
    ) as { Layers: string[] }[];
    const layerName = manifest[0]!.Layers[0]!;
    const layer = entries.find((entry) => entry.name === layerName && entry.size > 0);
    assert.ok(layer, `the archive has no entry ${layerName}`);
    const at = layer.offset + Math.floor(layer.size / 2);
    bytes[at] = bytes[at]! ^ 0xff;
    await fs.writeFile(archive, bytes);
    await expectRefused(
      await publishedTree(),
      [`docker-archive:${archive}`, 'x'],
      [archive, layerName, 'diff_id'],
    );
  });
});

describe('publish from an OCI layout that does not hold what it claims', { concurrency: 4 }, () => {
  test('publish of a layout whose blob does not match its digest (same size) → exit 1, names the blob, tree unchanged', async () => {
    const { dir, layerFile } = await freshLayout('same-size-mismatch');
    const { size } = await fs.stat(layerFile);
    await fs.writeFile(layerFile, randomBytes(size));
    await expectRefused(await publishedTree(), [`oci:${dir}`, 'x'], [layerFile, 'does not match']);
  });

  test('publish of a layout whose blob does not match its digest (other size) → exit 1, names the blob and both sizes, tree unchanged', async () => {
    const { dir, layerFile } = await freshLayout('other-size-mismatch');
    const { size } = await fs.stat(layerFile);
    await fs.writeFile(layerFile, randomBytes(size + 1000));
    await expectRefused(
      await publishedTree(),
      [`oci:${dir}`, 'x'],
      [layerFile, 'does not match', `${size + 1000} bytes`, `${size} were declared`],
    );
  });

  test('publish of a layout whose manifest references a blob it does not have → exit 1, names the blob as missing, tree unchanged', async () => {
    const { dir, layerFile } = await freshLayout('missing-blob');
    await fs.rm(layerFile);
    const layer = `sha256:${path.basename(layerFile)}`;
    await expectRefused(await publishedTree(), [`oci:${dir}`, 'x'], [layer, 'missing']);
  });

  test('publish of a layout with several images and no ref → exit 1, lists the refs, tree unchanged', async () => {
    await expectRefused(
      await publishedTree(),
      [`oci:${twoImageLayout}`, 'x'],
      [twoImageLayout, '2 images', 'one, two'],
    );
  });

  test('publish of a ref the layout does not have → exit 1, names the ref and the refs it has, tree unchanged', async () => {
    await expectRefused(await publishedTree(), [`oci:${twoImageLayout}:three`, 'x'], ['"three"', 'one, two']);
  });
});

describe('publish to a repository name or tag that is not valid', { concurrency: 4 }, () => {
  const longName = `${'a'.repeat(127)}/${'b'.repeat(128)}`;
  const digest = `sha256:${'a'.repeat(64)}`;
  const invalidName = 'invalid repository name';
  // [what, target, what stderr must mention]
  const cases: [string, string, Mention[]][] = [
    ['a name with ..', '../etc', [invalidName, '"../etc"']],
    ['a name with a .. component', 'a/../b', [invalidName, '"a/../b"']],
    ['an absolute path', '/abs/path', [invalidName, '"/abs/path"']],
    ['a name with upper case', 'Upper/Case', [invalidName, '"Upper"']],
    ['a name with an empty component', 'a//b', [invalidName, '"a//b"']],
    ['a name of 256 characters', longName, [invalidName, '256 characters']],
    ["a component starting with '-'", 'ns/-dash', [invalidName, '"-dash"']],
    ["a component starting with '.'", 'ns/.dot', [invalidName, '".dot"']],
    ['a name holding a : (name:tag splits at the last :)', 'a:b:c', [invalidName, '"a:b"']],
    [
      'a name with a registry host and port',
      '127.0.0.1:5000/me/app:1',
      [
        '"127.0.0.1:5000/me/app:1": a registry host is not part of a repository name; publish to me/app:1 and pull it as 127.0.0.1:5000/me/app:1',
      ],
    ],
    [
      'a name with a registry domain',
      'registry.example.com/me/app',
      [
        '"registry.example.com/me/app": a registry host is not part of a repository name; publish to me/app and pull it as',
      ],
    ],
    [
      'a name with localhost:<port>',
      'localhost:5000/app',
      ['"localhost:5000/app": a registry host is not part of a repository name; publish to app '],
    ],
    [
      'a name with localhost',
      'localhost/me/app:2',
      ['"localhost/me/app:2": a registry host is not part of a repository name; publish to me/app:2 '],
    ],
    ["a tag starting with '-'", 'repo:-bad', ['invalid tag', '"-bad"']],
    ['a tag of 129 characters', `repo:${'t'.repeat(129)}`, ['invalid tag', '129 characters']],
    ['a digest', `repo@${digest}`, [`repo@${digest}`, 'not to a digest']],
  ];
  for (const [what, target, mentions] of cases) {
    test(`publish to ${what} (${target.length > 40 ? `${target.slice(0, 40)}…` : target}) → exit 1, names it, tree unchanged`, async () => {
      await expectRefused(await publishedTree(), [`oci:${baseLayout}`, target], mentions);
    });
  }
});

describe('publish to a name that collides with the layout of the tree', { concurrency: 4 }, () => {
  // In a namespace: a first component with a dot (`a.json/b`) is read as a registry host, as docker reads it.
  test('publish ns/a.json/b after ns/a → exit 1, names the record of ns/a, tree unchanged', async () => {
    const dataDir = path.join(scratch('collide-a'), 'data');
    await publishOk(dataDir, `oci:${baseLayout}`, 'ns/a');
    const { dir } = await freshLayout('collide-a');
    await expectRefused(
      dataDir,
      [`oci:${dir}`, 'ns/a.json/b'],
      ['"ns/a.json/b"', 'v2/app/ns/a.json', 'record of repository "ns/a"'],
    );
  });

  test('publish ns/x after ns/x.json/y → exit 1, names the directory of ns/x.json/…, tree unchanged', async () => {
    const dataDir = path.join(scratch('collide-x'), 'data');
    await publishOk(dataDir, `oci:${baseLayout}`, 'ns/x.json/y');
    const { dir } = await freshLayout('collide-x');
    await expectRefused(dataDir, [`oci:${dir}`, 'ns/x'], ['"ns/x"', 'v2/app/ns/x.json', 'ns/x.json/']);
  });
});

describe('publish into a tree that cannot be written', { concurrency: 4 }, () => {
  test('publish of a 4 MiB layer into a full 2 MiB file system → exit 1, says no space, tree unchanged', async () => {
    const dataDir = path.join(await tmpfs('2m'), 'data');
    await publishOk(dataDir, `oci:${baseLayout}`, 'small');
    const big = path.join(scratch('big'), 'layout');
    const builder = new LayoutBuilder(big);
    const image = await builder.image({ files: { 'random.bin': randomBytes(4 * 1024 * 1024) } });
    builder.add(image, 'latest').write();
    await expectRefused(dataDir, [`oci:${big}`, 'big'], [/no space/i]);
  });

  test('publish of a 4 MiB docker-archive into a full 2 MiB file system → exit 1, says no space, tree unchanged', async () => {
    const dataDir = path.join(await tmpfs('2m'), 'data');
    await publishOk(dataDir, `oci:${baseLayout}`, 'small');
    const work = scratch('big-archive');
    const builder = new LayoutBuilder(path.join(work, 'layout'));
    const image = await builder.image({ files: { 'random.bin': randomBytes(4 * 1024 * 1024) } });
    builder.add(image, 'latest').write();
    const archive = path.join(work, 'big.tar');
    await skopeoCopy(`oci:${path.join(work, 'layout')}:latest`, `docker-archive:${archive}`);
    await expectRefused(dataDir, [`docker-archive:${archive}`, 'big'], [/no space/i]);
  });

  test('publish into a data dir on a read-only file system → exit 1, says read-only, tree unchanged', async () => {
    const mountPoint = await tmpfs('8m');
    const dataDir = path.join(mountPoint, 'data');
    await publishOk(dataDir, `oci:${baseLayout}`, 'library/base');
    await run('mount', ['-o', 'remount,ro', mountPoint]);
    const { dir } = await freshLayout('read-only');
    await expectRefused(dataDir, [`oci:${dir}`, 'library/other'], [/read-only/]);
  });
});

/** A prefix of a new bucket holding library/base, published by the CLI. */
async function publishedBucket(t: TestContext): Promise<TreeSpot & { bucket: string }> {
  const spot = await freshTree('s3', t);
  const result = await runDerrick(
    ['publish', '--quiet', '--data-dir', spot.location, `oci:${baseLayout}`, 'library/base'],
    { env: { ...QUIET_ENV, ...spot.env } },
  );
  assert.equal(result.code, 0, `setup publish into ${spot.location} failed: ${result.stderr}`);
  assert.ok(spot.bucket !== undefined);
  return { ...spot, bucket: spot.bucket };
}

/** expectRefused for a tree in a bucket: the refusal as users see it, and the bucket unchanged. */
async function expectRefusedOnS3(t: TestContext, args: string[], mentions: Mention[]): Promise<void> {
  const spot = await publishedBucket(t);
  const before = await bucketSnapshot(spot.bucket);
  const result = await runDerrick(['publish', '--quiet', '--data-dir', spot.location, ...args], {
    env: { ...QUIET_ENV, ...spot.env },
  });
  const problems = refusalProblems(result, mentions);
  const changes = treeChanges(before, await bucketSnapshot(spot.bucket));
  if (changes.length > 0) problems.push(`the bucket changed: ${changes.join(', ')}`);
  assert.equal(problems.length, 0, `${problems.join('\n')}\n--- stderr:\n${result.stderr}`);
}

describe(
  'publish into a bucket from an OCI layout that does not hold what it claims',
  { concurrency: 3 },
  () => {
    test('a layer that does not match its digest (same size) → exit 1, names the blob, bucket unchanged', async (t) => {
      const { dir, layerFile } = await freshLayout('s3-same-size-mismatch');
      const { size } = await fs.stat(layerFile);
      await fs.writeFile(layerFile, randomBytes(size));
      await expectRefusedOnS3(t, [`oci:${dir}`, 'x'], [layerFile, 'does not match']);
    });

    test('a 4 MiB layer (a multipart upload) that does not match its digest → exit 1, names the blob, no object and no unfinished upload left', async (t) => {
      const dir = path.join(scratch('s3-big-mismatch'), 'layout');
      const builder = new LayoutBuilder(dir);
      const image = await builder.image({ files: { 'random.bin': randomBytes(4 * 1024 * 1024) } });
      builder.add(image, 'latest').write();
      const manifest = JSON.parse(
        await fs.readFile(path.join(dir, 'blobs', 'sha256', image.digest.slice(7)), 'utf8'),
      ) as { layers: { digest: string; size: number }[] };
      const layer = manifest.layers[0]!;
      assert.ok(layer.size > 1024 * 1024, 'the layer is too small for a multipart upload');
      const layerFile = path.join(dir, 'blobs', 'sha256', layer.digest.slice(7));
      const bytes = await fs.readFile(layerFile);
      bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff; // the very last byte: found only at the end
      await fs.writeFile(layerFile, bytes);
      await expectRefusedOnS3(t, [`oci:${dir}`, 'x'], [layerFile, 'does not match']);
    });

    test('a layer of another size than declared → exit 1, names both sizes, bucket unchanged', async (t) => {
      const { dir, layerFile } = await freshLayout('s3-other-size-mismatch');
      const { size } = await fs.stat(layerFile);
      await fs.writeFile(layerFile, randomBytes(size + 1000));
      await expectRefusedOnS3(
        t,
        [`oci:${dir}`, 'x'],
        [layerFile, 'does not match', `${size + 1000} bytes`, `${size} were declared`],
      );
    });

    test('a layer missing from the layout → exit 1, names it as missing, bucket unchanged', async (t) => {
      const { dir, layerFile } = await freshLayout('s3-missing-blob');
      await fs.rm(layerFile);
      await expectRefusedOnS3(t, [`oci:${dir}`, 'x'], [`sha256:${path.basename(layerFile)}`, 'missing']);
    });
  },
);
