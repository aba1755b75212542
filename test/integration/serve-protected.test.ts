/**
 * A repository published with --protected is never served to anonymous clients, and looks exactly like one that
 * does not exist (as Crane answered clients without an entitling certificate). Until authentication exists,
 * every client is anonymous.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { assertNoReferrers, comparable, isReferrers } from '../helpers/auth.ts';
import { BACKENDS } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { imageWithReferrerLayout, singleImageLayout, type Descriptor } from '../helpers/images.ts';
import { assertOciError, openTree, publishInto, serveTree, suiteTree } from '../helpers/server.ts';

const scratch = tempDir('derrick-serve-protected-');
after(() => scratch.cleanup());

for (const backend of BACKENDS)
  describe(backend, () => {
    let app!: FastifyInstance;
    let image!: Descriptor;
    let layer = '';
    let removeTree!: () => Promise<void>;

    before(async () => {
      const secret = path.join(scratch.dir, `secret-${backend}`);
      const open = path.join(scratch.dir, `open-${backend}`);
      ({ image } = await imageWithReferrerLayout(secret));
      await singleImageLayout(open);
      const { spot: dataDir, remove } = await suiteTree(backend);
      removeTree = remove;
      const result = await publishInto(dataDir, `oci:${secret}:latest`, ['secret/app:1'], {
        protected: true,
      });
      assert.equal(result.repositories[0]?.tags['1'], image.digest);
      await publishInto(dataDir, `oci:${open}`, ['open/app:1']);
      const tree = await openTree(dataDir);
      const lookup = await tree.readRecord('secret/app');
      await tree.backend.close();
      assert.ok(lookup.found);
      layer =
        [...lookup.repository.blobs.keys()].find((digest) => !lookup.repository.manifests.has(digest)) ?? '';
      app = await serveTree(dataDir, { mode: 'redirect', 'redirect.url': 'http://cdn.example.test' });
    });
    after(async () => {
      await app.close();
      await removeTree();
    });

    describe('a protected repository, to an anonymous client', () => {
      const urls = (): [string, string][] => [
        ['manifest by tag', '/v2/secret/app/manifests/1'],
        ['manifest by digest', `/v2/secret/app/manifests/${image.digest}`],
        ['blob', `/v2/secret/app/blobs/${layer}`],
        ['tags/list', '/v2/secret/app/tags/list'],
        ['referrers', `/v2/secret/app/referrers/${image.digest}`],
      ];
      for (const method of ['GET', 'HEAD'] as const) {
        test(`${method} of each endpoint → 404 NAME_UNKNOWN (referrers: 200 and an empty index), exactly a missing repository’s answer, and no redirect`, async () => {
          for (const [what, url] of urls()) {
            const answer = await app.inject({ method, url });
            if (isReferrers(url)) assertNoReferrers(answer, method, what);
            else {
              assert.equal(answer.statusCode, 404, `${what}: ${answer.statusCode}`);
              assert.equal(answer.headers.location, undefined, `${what} must not redirect`);
              if (method === 'GET') assertOciError(answer, 404, 'NAME_UNKNOWN');
            }
            const missing = await app.inject({ method, url: url.replace('/secret/app/', '/secret/xyz/') });
            assert.deepEqual(
              comparable(answer, 'secret/app', 'secret/xyz'),
              comparable(missing, 'secret/xyz', 'secret/xyz'),
              what,
            );
          }
        });
      }

      test('_catalog does not name it, and its pages are still full', async () => {
        const answer = await app.inject({ url: '/v2/_catalog' });
        assert.deepEqual(JSON.parse(answer.body), { repositories: ['open/app'] });
        const paged = await app.inject({ url: '/v2/_catalog?n=1' });
        assert.deepEqual(JSON.parse(paged.body), { repositories: ['open/app'] });
        assert.equal(paged.headers.link, undefined);
      });

      test('an unprotected repository beside it is served', async () => {
        const answer = await app.inject({ url: '/v2/open/app/tags/list' });
        assert.equal(answer.statusCode, 200);
      });
    });
  });
