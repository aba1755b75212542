/**
 * derrick migrate: Pulp 2 records named by repository id → laid out by repository name, content untouched.
 */
import { fsLayout } from '../helpers/fs-tree.ts';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { Tree } from '../../src/store/tree.ts';
import { runDerrick, snapshotTree, tempDir } from '../helpers/cli.ts';

const temp = tempDir();
after(() => temp.cleanup());
let counter = 0;
const fresh = (label: string): string => path.join(temp.dir, `${label}-${++counter}`);
const d = (n: string): string => `sha256:${n.repeat(64)}`;

function pulpRecord(id: string, name: string, version: 2 | 3 | 4): Record<string, unknown> {
  return {
    type: 'pulp-docker-redirect',
    version,
    repository: id,
    'repo-registry-id': name,
    url: `https://cdn.example.com/pulp/docker/${id}/`,
    protected: false,
    ...(version >= 3 ? { schema2_data: ['latest', d('a')] } : {}),
    ...(version === 4
      ? { manifest_list_data: ['multi'], manifest_list_amd64_tags: { multi: [d('b'), 2] } }
      : {}),
  };
}

async function pulpTree(records: Record<string, unknown>): Promise<string> {
  const dir = fresh('pulp');
  await fs.mkdir(path.join(dir, 'v2', 'app'), { recursive: true });
  await fs.mkdir(path.join(dir, 'v2', 'web', 'some-id'), { recursive: true });
  await fs.writeFile(path.join(dir, 'v2', 'web', 'some-id', 'content'), 'published content');
  for (const [file, value] of Object.entries(records)) {
    await fs.writeFile(
      path.join(dir, 'v2', 'app', file),
      typeof value === 'string' ? value : JSON.stringify(value),
    );
  }
  return dir;
}

describe('migrate', { concurrency: 3 }, () => {
  test('records of versions 2, 3 and 4 are laid by repo-registry-id, byte for byte, content untouched', async () => {
    const records = {
      'rhel-7-id.json': pulpRecord('rhel-7-id', 'rhel7/app', 2),
      'fedora-id.json': pulpRecord('fedora-id', 'fedora', 3),
      'multi-id.json': pulpRecord('multi-id', 'team/multi', 4),
    };
    const pulp = await pulpTree(records);
    const pulpBefore = await snapshotTree(pulp);
    const data = fresh('data');
    const result = await runDerrick(['migrate', pulp, '--data-dir', data]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /3 migrated, 0 unchanged, 0 conflict\(s\), 0 invalid/);
    const tree = new Tree(data);
    for (const [file, value] of Object.entries(records)) {
      const name = value['repo-registry-id'] as string;
      assert.equal(
        await fs.readFile(fsLayout(tree).recordPath(name), 'utf8'),
        await fs.readFile(path.join(pulp, 'v2', 'app', file), 'utf8'),
      );
      const lookup = await tree.readRecord(name);
      assert.ok(lookup.found && lookup.repository.format === 'pulp2');
    }
    assert.deepEqual(await snapshotTree(pulp), pulpBefore);
    const ls = await runDerrick(['ls', '--data-dir', data]);
    assert.match(
      ls.stdout,
      /^fedora\t\(Pulp 2 v3 record → https:\/\/cdn\.example\.com\/pulp\/docker\/fedora-id\/\)$/m,
    );
    // Running it again changes nothing.
    const again = await runDerrick(['migrate', pulp, '--data-dir', data]);
    assert.match(again.stdout, /0 migrated, 3 unchanged/);
  });

  test('two records claiming one name are reported as a conflict and neither is laid', async () => {
    const pulp = await pulpTree({
      'one.json': pulpRecord('one', 'shared/name', 3),
      'two.json': pulpRecord('two', 'shared/name', 4),
      'fine.json': pulpRecord('fine', 'fine', 2),
    });
    const data = fresh('data');
    const result = await runDerrick(['migrate', pulp, '--data-dir', data]);
    assert.equal(result.code, 1);
    assert.match(
      result.stdout,
      /conflict shared\/name: several records claim this name: .*one\.json, .*two\.json/,
    );
    const tree = new Tree(data);
    assert.equal((await tree.readRecord('shared/name')).found, false);
    assert.equal((await tree.readRecord('fine')).found, true);
  });

  test('invalid records are listed with file and key; --dry-run writes nothing', async () => {
    const pulp = await pulpTree({
      'bad-json.json': '{',
      'v1.json': { ...pulpRecord('v1', 'old', 2), version: 1 },
      'bad-name.json': pulpRecord('bad', 'Not/Valid', 3),
      'good.json': pulpRecord('good', 'good', 3),
    });
    const data = fresh('data');
    const result = await runDerrick(['migrate', pulp, '--dry-run', '--data-dir', data]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /would migrate .*good\.json → good/);
    assert.match(result.stdout, /invalid .*bad-json\.json: not valid JSON/);
    assert.match(result.stdout, /invalid .*v1\.json: version: 1 is the retired/);
    assert.match(result.stdout, /invalid .*bad-name\.json: repo-registry-id/);
    assert.deepEqual([...(await snapshotTree(data)).keys()], []);
  });

  test('in place: the data directory’s id-named records become name-based and the originals go', async () => {
    const data = await pulpTree({
      'abc-123.json': pulpRecord('abc-123', 'team/abc', 4),
      'same.json': pulpRecord('same', 'same', 3),
    });
    const result = await runDerrick(['migrate', data, '--data-dir', data]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const files = [...(await snapshotTree(path.join(data, 'v2', 'app'))).keys()].sort();
    assert.deepEqual(files, ['same.json', 'team/abc.json']);
  });

  test('a record already in the data directory under that name is a conflict, not overwritten', async () => {
    const pulp = await pulpTree({ 'x.json': pulpRecord('x', 'taken', 3) });
    const data = fresh('data');
    await fs.mkdir(path.join(data, 'v2', 'app'), { recursive: true });
    const existing = JSON.stringify(pulpRecord('other', 'taken', 2));
    await fs.writeFile(path.join(data, 'v2', 'app', 'taken.json'), existing);
    const result = await runDerrick(['migrate', pulp, '--data-dir', data]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /conflict taken: v2\/app\/taken\.json already holds another record/);
    assert.equal(await fs.readFile(path.join(data, 'v2', 'app', 'taken.json'), 'utf8'), existing);
  });

  test('a directory without records is a one-line error', async () => {
    const result = await runDerrick(['migrate', path.join(temp.dir, 'nowhere')]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^derrick: .*nowhere is not a directory of Pulp 2 records/);
  });
});
