/**
 * derrick migrate: Pulp 2 records named by repository id → laid out by repository name, content untouched. The
 * Pulp directory is local; the tree it migrates into is a directory or a prefix of a bucket (one suite, two back
 * ends). Migrating in place and a Pulp directory that is not one are about local directories: file system only.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { recordKey } from '../../src/store/keys.ts';
import { openBackend } from '../../src/store/open-backend.ts';
import { Tree } from '../../src/store/tree.ts';
import { BACKENDS, freshTree, type BackendName, type TreeSpot } from '../helpers/backends.ts';
import { runDerrick, snapshotTree, tempDir, type RunResult } from '../helpers/cli.ts';

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

/** A new tree on `backend`, opened in this process too (closed after the test), and derrick run on it. */
async function target(backend: BackendName, t: TestContext) {
  const spot: TreeSpot = await freshTree(backend, t);
  const tree = new Tree(await openBackend(spot.location));
  t.after(() => tree.backend.close());
  const derrick = (args: string[]): Promise<RunResult> =>
    runDerrick(args, { env: { ...spot.env, DERRICK_DEBUG: '' } });
  const recordText = async (name: string): Promise<string | undefined> => {
    const read = await tree.backend.read(recordKey(name));
    return read.status === 'found' ? read.bytes.toString('utf8') : undefined;
  };
  return { spot, data: spot.location, tree, derrick, recordText };
}

for (const backend of BACKENDS) {
  describe(`migrate into a tree (${backend})`, { concurrency: 3 }, () => {
    test('records of versions 2, 3 and 4 are laid by repo-registry-id, byte for byte, content untouched', async (t) => {
      const records = {
        'rhel-7-id.json': pulpRecord('rhel-7-id', 'rhel7/app', 2),
        'fedora-id.json': pulpRecord('fedora-id', 'fedora', 3),
        'multi-id.json': pulpRecord('multi-id', 'team/multi', 4),
      };
      const pulp = await pulpTree(records);
      const pulpBefore = await snapshotTree(pulp);
      const { data, tree, derrick, recordText } = await target(backend, t);
      const result = await derrick(['migrate', pulp, '--data-dir', data]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /3 migrated, 0 unchanged, 0 conflict\(s\), 0 invalid/);
      for (const [file, value] of Object.entries(records)) {
        const name = value['repo-registry-id'] as string;
        assert.equal(await recordText(name), await fs.readFile(path.join(pulp, 'v2', 'app', file), 'utf8'));
        const lookup = await tree.readRecord(name);
        assert.ok(lookup.found && lookup.repository.format === 'pulp2');
      }
      assert.deepEqual(await snapshotTree(pulp), pulpBefore);
      const ls = await derrick(['ls', '--data-dir', data]);
      assert.match(
        ls.stdout,
        /^fedora\t\(Pulp 2 v3 record → https:\/\/cdn\.example\.com\/pulp\/docker\/fedora-id\/\)$/m,
      );
      // Running it again changes nothing.
      const again = await derrick(['migrate', pulp, '--data-dir', data]);
      assert.match(again.stdout, /0 migrated, 3 unchanged/);
    });

    test('two records claiming one name are reported as a conflict and neither is laid', async (t) => {
      const pulp = await pulpTree({
        'one.json': pulpRecord('one', 'shared/name', 3),
        'two.json': pulpRecord('two', 'shared/name', 4),
        'fine.json': pulpRecord('fine', 'fine', 2),
      });
      const { data, tree, derrick } = await target(backend, t);
      const result = await derrick(['migrate', pulp, '--data-dir', data]);
      assert.equal(result.code, 1);
      assert.match(
        result.stdout,
        /conflict shared\/name: several records claim this name: .*one\.json, .*two\.json/,
      );
      assert.equal((await tree.readRecord('shared/name')).found, false);
      assert.equal((await tree.readRecord('fine')).found, true);
    });

    test('invalid records are listed with file and key; --dry-run writes nothing', async (t) => {
      const pulp = await pulpTree({
        'bad-json.json': '{',
        'v1.json': { ...pulpRecord('v1', 'old', 2), version: 1 },
        'bad-name.json': pulpRecord('bad', 'Not/Valid', 3),
        'good.json': pulpRecord('good', 'good', 3),
      });
      const { data, tree, derrick } = await target(backend, t);
      const result = await derrick(['migrate', pulp, '--dry-run', '--data-dir', data]);
      assert.equal(result.code, 1);
      assert.match(result.stdout, /would migrate .*good\.json → good/);
      assert.match(result.stdout, /invalid .*bad-json\.json: not valid JSON/);
      assert.match(result.stdout, /invalid .*v1\.json: version: 1 is the retired/);
      assert.match(result.stdout, /invalid .*bad-name\.json: repo-registry-id/);
      assert.equal(await tree.backend.hasChildren('v2'), false, '--dry-run wrote into the tree');
    });

    test('a record already in the data directory under that name is a conflict, not overwritten', async (t) => {
      const pulp = await pulpTree({ 'x.json': pulpRecord('x', 'taken', 3) });
      const { data, tree, derrick, recordText } = await target(backend, t);
      const existing = JSON.stringify(pulpRecord('other', 'taken', 2));
      await tree.backend.write(recordKey('taken'), Buffer.from(existing));
      const result = await derrick(['migrate', pulp, '--data-dir', data]);
      assert.equal(result.code, 1);
      assert.match(result.stdout, /conflict taken: .*v2\/app\/taken\.json already holds another record/);
      assert.equal(await recordText('taken'), existing);
    });
  });
}

describe(
  'migrate: the Pulp directory itself (file system only: it is a local directory)',
  { concurrency: 2 },
  () => {
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

    test('a directory without records is a one-line error', async () => {
      const result = await runDerrick(['migrate', path.join(temp.dir, 'nowhere')]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /^derrick: .*nowhere is not a directory of Pulp 2 records/);
    });
  },
);
