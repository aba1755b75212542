/**
 * derrick serve sees every change to the tree on the very next request, with no sleep in between: a tag and a
 * repository published with the real CLI while serving, a tag published over, a record edited in place (the same
 * file rewritten, as an operator's editor does), and a repository or tag unpublished with the CLI.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { recordKey } from '../../src/store/keys.ts';
import { BACKENDS } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { MT } from '../helpers/images.ts';
import {
  assertOciError,
  buildFixtures,
  derrickOk,
  header,
  openTree,
  serveTree,
  suiteTree,
  writeRecordFile,
  type Fixtures,
} from '../helpers/server.ts';

const scratch = tempDir('derrick-serve-freshness-');
const ACCEPT = [MT.ociIndex, MT.ociManifest].join(', ');
let fixtures!: Fixtures;
before(async () => {
  fixtures = await buildFixtures(path.join(scratch.dir, 'layout'));
});
after(() => scratch.cleanup());

for (const backend of BACKENDS)
  describe(backend, () => {
    let app!: FastifyInstance;
    let dataDir!: string;
    let removeTree!: () => Promise<void>;

    const recordFile = (name: string): string =>
      path.join(dataDir, 'v2', 'app', ...name.split('/')) + '.json';

    /** The record of `name` as stored (a file, an object). */
    async function recordText(name: string): Promise<string> {
      const tree = await openTree(dataDir);
      const read = await tree.backend.read(recordKey(name));
      await tree.backend.close();
      assert.ok(read.status === 'found', `no record of ${name}: ${read.status}`);
      return read.bytes.toString('utf8');
    }

    /**
     * Replaces the record of `name` behind derrick's back: on a file system edited in place (the same file, as an
     * operator's editor writes it: same inode), in a bucket a raw PutObject.
     */
    async function editRecord(name: string, text: string): Promise<void> {
      if (backend === 's3') {
        await writeRecordFile(dataDir, name, text);
        return;
      }
      const file = recordFile(name);
      const inode = (await fs.stat(file)).ino;
      await fs.writeFile(file, text);
      assert.equal((await fs.stat(file)).ino, inode, 'the edit must keep the file (same inode)');
    }

    async function digestOf(name: string, tag: string): Promise<string | undefined> {
      const response = await app.inject({
        method: 'GET',
        url: `/v2/${name}/manifests/${tag}`,
        headers: { accept: ACCEPT },
      });
      return response.statusCode === 200 ? header(response, 'docker-content-digest') : undefined;
    }

    async function publishCli(ref: string, ...targets: string[]): Promise<void> {
      await derrickOk(dataDir, ['publish', '--quiet', `oci:${fixtures.dir}:${ref}`, ...targets]);
    }

    before(async () => {
      const { spot, remove } = await suiteTree(backend);
      dataDir = spot.location;
      removeTree = remove;
      await publishCli(
        'single',
        'fresh/tagged:v1',
        'fresh/replaced:v1',
        'fresh/edited:v1',
        'fresh/edited:v2',
        'fresh/same-size:v1',
        'fresh/removed:v1',
        'fresh/untagged:v1',
        'fresh/untagged:v2',
      );
      app = await serveTree(dataDir);
    });

    after(async () => {
      await app.close();
      await removeTree();
    });

    describe('changes are seen by the very next request', () => {
      test('a tag published (CLI) while serving → served by the next request', async () => {
        assert.equal(await digestOf('fresh/tagged', 'v1'), fixtures.single.digest);
        assertOciError(
          await app.inject({ method: 'GET', url: '/v2/fresh/tagged/manifests/v2' }),
          404,
          'MANIFEST_UNKNOWN',
        );
        await publishCli('other', 'fresh/tagged:v2');
        assert.equal(await digestOf('fresh/tagged', 'v2'), fixtures.other.digest);
        const tags = await app.inject({ method: 'GET', url: '/v2/fresh/tagged/tags/list' });
        assert.deepEqual(tags.json(), { name: 'fresh/tagged', tags: ['v1', 'v2'] });
      });

      test('a repository published (CLI) while serving → served, and listed, by the next request', async () => {
        assertOciError(
          await app.inject({ method: 'GET', url: '/v2/fresh/new/manifests/latest' }),
          404,
          'NAME_UNKNOWN',
        );
        await publishCli('other', 'fresh/new:latest');
        assert.equal(await digestOf('fresh/new', 'latest'), fixtures.other.digest);
        const catalog = await app.inject({ method: 'GET', url: '/v2/_catalog' });
        assert.ok(catalog.json<{ repositories: string[] }>().repositories.includes('fresh/new'));
      });

      test('a tag published over (CLI) → the next request has the new digest', async () => {
        assert.equal(await digestOf('fresh/replaced', 'v1'), fixtures.single.digest);
        await publishCli('other', 'fresh/replaced:v1');
        assert.equal(await digestOf('fresh/replaced', 'v1'), fixtures.other.digest);
      });

      test('the record edited in place (a tag removed) → the next request no longer has the tag', async () => {
        assert.equal(await digestOf('fresh/edited', 'v2'), fixtures.single.digest);
        const record = JSON.parse(await recordText('fresh/edited')) as { tags: Record<string, string> };
        delete record.tags.v2;
        await editRecord('fresh/edited', JSON.stringify(record, null, 1) + '\n');
        assertOciError(
          await app.inject({ method: 'GET', url: '/v2/fresh/edited/manifests/v2' }),
          404,
          'MANIFEST_UNKNOWN',
        );
        const tags = await app.inject({ method: 'GET', url: '/v2/fresh/edited/tags/list' });
        assert.deepEqual(tags.json(), { name: 'fresh/edited', tags: ['v1'] });
      });

      test('the record edited in place to the same size (a tag moved) → the next request has the new digest', async () => {
        // Make the other image's manifest known to the record first (published by digest under another tag).
        await publishCli('other', 'fresh/same-size:other');
        assert.equal(await digestOf('fresh/same-size', 'v1'), fixtures.single.digest);
        const before = await recordText('fresh/same-size');
        const record = JSON.parse(before) as { tags: Record<string, string> };
        record.tags.v1 = fixtures.other.digest;
        const edited = JSON.stringify(record, null, 1) + '\n';
        assert.equal(edited.length, before.length);
        await editRecord('fresh/same-size', edited);
        assert.equal(await digestOf('fresh/same-size', 'v1'), fixtures.other.digest);
      });

      test('a tag unpublished (CLI) → the next request is 404 MANIFEST_UNKNOWN for it', async () => {
        assert.equal(await digestOf('fresh/untagged', 'v2'), fixtures.single.digest);
        await derrickOk(dataDir, ['unpublish', 'fresh/untagged:v2']);
        assertOciError(
          await app.inject({ method: 'GET', url: '/v2/fresh/untagged/manifests/v2' }),
          404,
          'MANIFEST_UNKNOWN',
        );
        assert.equal(await digestOf('fresh/untagged', 'v1'), fixtures.single.digest);
      });

      test('a repository unpublished (CLI) → the next request is 404 NAME_UNKNOWN, and _catalog drops it', async () => {
        assert.equal(await digestOf('fresh/removed', 'v1'), fixtures.single.digest);
        await derrickOk(dataDir, ['unpublish', 'fresh/removed']);
        assertOciError(
          await app.inject({ method: 'GET', url: '/v2/fresh/removed/manifests/v1' }),
          404,
          'NAME_UNKNOWN',
        );
        assertOciError(
          await app.inject({ method: 'GET', url: '/v2/fresh/removed/tags/list' }),
          404,
          'NAME_UNKNOWN',
        );
        const catalog = await app.inject({ method: 'GET', url: '/v2/_catalog' });
        assert.ok(!catalog.json<{ repositories: string[] }>().repositories.includes('fresh/removed'));
      });

      test('a tree served before its first publish → the first repository published (CLI) is served', async () => {
        // A directory made empty; a prefix of the bucket nothing was ever written below.
        const emptyData = backend === 'fs' ? path.join(scratch.dir, 'empty') : `${dataDir}-empty`;
        if (backend === 'fs') await fs.mkdir(emptyData);
        const early = await serveTree(emptyData);
        try {
          assertOciError(
            await early.inject({ method: 'GET', url: '/v2/first/manifests/latest' }),
            404,
            'NAME_UNKNOWN',
          );
          await derrickOk(emptyData, ['publish', '--quiet', `oci:${fixtures.dir}:single`, 'first:latest']);
          const response = await early.inject({ method: 'GET', url: '/v2/first/manifests/latest' });
          assert.equal(response.statusCode, 200, response.body);
          assert.equal(header(response, 'docker-content-digest'), fixtures.single.digest);
        } finally {
          await early.close();
        }
      });

      // Symbolic links are the file system's.
      if (backend === 'fs')
        test('a tree served before its first publish, through a symlinked data dir → the first repository is served', async () => {
          const real = path.join(scratch.dir, 'real-data');
          const link = path.join(scratch.dir, 'linked-data');
          await fs.mkdir(real);
          await fs.symlink(real, link);
          const early = await serveTree(link);
          try {
            await derrickOk(link, ['publish', '--quiet', `oci:${fixtures.dir}:single`, 'first:latest']);
            const response = await early.inject({ method: 'GET', url: '/v2/first/manifests/latest' });
            assert.equal(response.statusCode, 200, response.body);
            assert.equal(header(response, 'docker-content-digest'), fixtures.single.digest);
          } finally {
            await early.close();
          }
        });
    });
  });
