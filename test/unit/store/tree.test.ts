import { fsLayout } from '../../helpers/fs-tree.ts';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { emptyRepository } from '../../../src/store/record.ts';
import { Tree } from '../../../src/store/tree.ts';
import { tempDir } from '../../helpers/cli.ts';

describe('walking v2/app in catalog order', () => {
  const temp = tempDir();
  const tree = new Tree(temp.dir);
  const names = ['a', 'a-b', 'a/b', 'a/b/c', 'a.b', 'b', 'library/busybox', 'library/alpine', 'z9/x', 'a0'];

  before(async () => {
    for (const name of names)
      await tree.writeRecord({ ...emptyRepository(name), updatedAt: '2026-01-01T00:00:00.000Z' });
    // Things that are not records are ignored: stray files, invalid names, temp files.
    writeFileSync(path.join(fsLayout(tree).appDir, 'README'), 'x');
    writeFileSync(path.join(fsLayout(tree).appDir, 'Bad.json'), '{}');
    mkdirSync(path.join(fsLayout(tree).appDir, '.hidden'));
    writeFileSync(path.join(fsLayout(tree).appDir, '.hidden', 'x.json'), '{}');
  });
  after(() => temp.cleanup());

  const collect = async (options: { after?: string; prefix?: string } = {}): Promise<string[]> => {
    const out = [];
    for await (const name of tree.walkNames(options)) out.push(name);
    return out;
  };

  test('yields every repository in byte order', async () => {
    assert.deepEqual(await collect(), [...names].sort());
  });

  test('starts strictly after `last`, skipping directories that sort before it', async () => {
    const sorted = [...names].sort();
    for (const [i, last] of sorted.entries())
      assert.deepEqual(await collect({ after: last }), sorted.slice(i + 1));
    assert.deepEqual(
      await collect({ after: 'a/' }),
      sorted.filter((name) => name > 'a/'),
    );
    assert.deepEqual(await collect({ after: 'zzz' }), []);
  });

  test('a prefix lists that repository and those below it', async () => {
    assert.deepEqual(await collect({ prefix: 'a' }), ['a', 'a/b', 'a/b/c']);
    assert.deepEqual(await collect({ prefix: 'library/' }), ['library/alpine', 'library/busybox']);
    assert.deepEqual(await collect({ prefix: 'nothing' }), []);
  });
});

describe('the listing cache', () => {
  const temp = tempDir();
  after(() => temp.cleanup());

  test('a cached listing is re-read as soon as a repository is added or removed', async () => {
    const cached = new Tree(temp.dir, { listingCache: 10 });
    const write = (name: string) =>
      cached.writeRecord({ ...emptyRepository(name), updatedAt: '2026-01-01T00:00:00.000Z' });
    const names = async (): Promise<string[]> => {
      const out = [];
      for await (const name of cached.walkNames()) out.push(name);
      return out;
    };
    await write('b');
    await write('ns/x');
    assert.deepEqual(await names(), ['b', 'ns/x']);
    await write('a');
    await write('ns/y');
    assert.deepEqual(await names(), ['a', 'b', 'ns/x', 'ns/y']);
    rmSync(fsLayout(cached).recordPath('b'));
    assert.deepEqual(await names(), ['a', 'ns/x', 'ns/y']);
  });
});

describe('layout collisions', () => {
  const temp = tempDir();
  const tree = new Tree(temp.dir);
  after(() => temp.cleanup());

  test('a.json/b collides with the record of a', async () => {
    await tree.writeRecord({ ...emptyRepository('a'), updatedAt: '2026-01-01T00:00:00.000Z' });
    assert.match((await tree.findCollision('a.json/b')) ?? '', /the record of repository "a"/);
    assert.equal(await tree.findCollision('a/b'), undefined);
  });

  test('x collides with the directory of x.json/y', async () => {
    await tree.writeRecord({ ...emptyRepository('x.json/y'), updatedAt: '2026-01-01T00:00:00.000Z' });
    assert.match((await tree.findCollision('x')) ?? '', /is a directory/);
  });

  test('layout paths refuse unchecked names instead of leaving the tree', () => {
    assert.throws(() => fsLayout(tree).recordPath('../../etc/passwd'), /unchecked repository name/);
    assert.throws(() => fsLayout(tree).blobLinkPath('a', 'sha256:../../x'), /unchecked digest/);
  });
});
