/**
 * `derrick sync <sync.yaml>` through the command line, with another derrick tree as the upstream (the
 * disconnected workflow's far end): a glob over the upstream's repositories, a semver range with the newest N, a
 * destination prefix; a second run that finds nothing new publishes nothing; `prune` removes what left the
 * upstream; `--dry-run` changes nothing; a repository that fails is counted while the others finish; a file with
 * a bad regex or an unknown key is one line naming the file, the line and the key.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { runDerrick, snapshotTree, tempDir } from '../helpers/cli.ts';
import { LayoutBuilder } from '../helpers/images.ts';
import { publishInto } from '../helpers/server.ts';

async function upstreamTree(t: TestContext): Promise<string> {
  const scratch = tempDir('derrick-sync-src-');
  const upstream = tempDir('derrick-sync-up-');
  t.after(() => {
    scratch.cleanup();
    upstream.cleanup();
  });
  const builder = new LayoutBuilder(scratch.dir);
  // Shared files make shared layers: the second image of a repository reuses what the first brought.
  for (const tag of ['1.0', '1.1', '2.0-rc1', 'latest'])
    builder.add(await builder.image({ files: { 'base.txt': 'shared\n', 'v.txt': `${tag}\n` } }), tag);
  builder.add(await builder.image({ files: { 'o.txt': 'other\n' } }), 'other');
  builder.write();
  for (const tag of ['1.0', '1.1', '2.0-rc1', 'latest'])
    await publishInto(upstream.dir, `oci:${scratch.dir}:${tag}`, [`team/app:${tag}`]);
  await publishInto(upstream.dir, `oci:${scratch.dir}:other`, ['team/tool:1', 'elsewhere/x:1']);
  return upstream.dir;
}

function syncFile(dir: string, body: string): string {
  const file = path.join(dir, 'sync.yaml');
  writeFileSync(file, body);
  return file;
}

test('sync from a tree: filters, prefix, a no-op second run, a dry run, prune, a failing repository', async (t) => {
  const upstream = await upstreamTree(t);
  const work = tempDir('derrick-sync-dst-');
  t.after(() => work.cleanup());
  const dataDir = path.join(work.dir, 'tree');
  const file = syncFile(
    work.dir,
    `upstreams:
  site: { tree: ${JSON.stringify(upstream)} }
repositories:
  - from: site
    glob: "team/*"
    prefix: mirror/
    tags: { semver: ">=1", newest: 2 }
  - from: site
    name: team/missing
`,
  );
  const sync = (...args: string[]) => runDerrick(['sync', file, '--data-dir', dataDir, ...args]);

  const first = await sync('--json');
  assert.equal(first.code, 1, first.stderr);
  const summary = JSON.parse(first.stdout) as {
    added: number;
    failed: number;
    images: { repository: string; tag: string; action: string; problem?: string }[];
  };
  const added = summary.images
    .filter((image) => image.action === 'added')
    .map((image) => `${image.repository}:${image.tag}`);
  // semver ">=1" leaves out the prerelease 2.0-rc1 and "latest"; newest 2 of 1.0, 1.1, 1 (team/tool).
  assert.deepEqual(added.sort(), ['mirror/team/app:1.0', 'mirror/team/app:1.1', 'mirror/team/tool:1']);
  const failed = summary.images.find((image) => image.action === 'failed');
  assert.match(failed?.problem ?? '', /has no repository team\/missing/);

  // Nothing new upstream: nothing published, the tree byte for byte as it was.
  const before = await snapshotTree(dataDir);
  const second = await sync();
  assert.match(second.stdout, /0 added, 0 updated, 3 unchanged, 0 pruned, 1 failed; 0 blob\(s\) copied/);
  assert.deepEqual(await snapshotTree(dataDir), before);

  // 1.0 leaves the upstream: with prune it leaves the mirror too (never without).
  assert.equal((await runDerrick(['unpublish', 'team/app:1.0', '--data-dir', upstream])).code, 0);
  writeFileSync(
    file,
    `upstreams:
  site: { tree: ${JSON.stringify(upstream)} }
repositories:
  - from: site
    name: team/app
    prefix: mirror/
    tags: { semver: ">=1", newest: 2 }
    prune: true
`,
  );
  const unpruned = await snapshotTree(dataDir);
  const dry = await sync('--dry-run');
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /would be pruned mirror\/team\/app:1\.0/);
  assert.match(dry.stdout, /dry run: 0 added, 0 updated, 1 unchanged, 1 pruned, 0 failed/);
  assert.deepEqual(await snapshotTree(dataDir), unpruned);
  const pruning = await sync();
  assert.equal(pruning.code, 0, pruning.stderr);
  assert.match(pruning.stdout, /pruned mirror\/team\/app:1\.0/);
  const listing = await runDerrick(['ls', 'mirror/team/app', '--data-dir', dataDir]);
  assert.doesNotMatch(listing.stdout, /\b1\.0\b/);
  assert.match(listing.stdout, /\b1\.1\b/);
  assert.equal((await runDerrick(['verify', '--data-dir', dataDir])).code, 0);
});

test('a sync file with a bad regular expression or an unknown key: one line with the file, line and key', async (t) => {
  const work = tempDir('derrick-sync-bad-');
  t.after(() => work.cleanup());
  const badRegex = syncFile(
    work.dir,
    'upstreams:\n  up: { registry: "127.0.0.1:1" }\nrepositories:\n  - from: up\n    name: a\n    tags:\n      include: "^1\\\\.("\n',
  );
  const one = await runDerrick(['sync', badRegex, '--data-dir', path.join(work.dir, 'tree')]);
  assert.equal(one.code, 1);
  assert.equal(one.stderr.trim().split('\n').length, 1, one.stderr);
  assert.match(one.stderr, /sync\.yaml:7: repositories\[0\]\.tags\.include.*not a valid regular expression/);

  const unknown = syncFile(
    work.dir,
    'upstreams:\n  up: { registry: "127.0.0.1:1" }\nrepositories:\n  - from: up\n    name: a\n    tagz: {}\n',
  );
  const two = await runDerrick(['sync', unknown, '--data-dir', path.join(work.dir, 'tree')]);
  assert.equal(two.code, 1);
  assert.match(two.stderr, /sync\.yaml:6: repositories\[0\]\.tagz: not a key here; did you mean "tags"\?/);
  assert.equal(two.stderr.trim().split('\n').length, 1, two.stderr);
});
