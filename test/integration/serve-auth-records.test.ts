/**
 * Protected Pulp 2 records and unreadable records, behind a login. A protected Pulp repository is answered only
 * with signed redirects (its content is not in the tree, so without redirect.token it cannot be served at all:
 * 500 and a log line, never an unsigned URL); its referrers, which Pulp 2 never had, are an empty list either
 * way. An unreadable record is named by `_catalog` only to a client that could pull it even if it were protected.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { basic, writeHtpasswd } from '../helpers/auth.ts';
import { BACKENDS } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { assertOciError, serveTree, suiteTree, writeRecordFile, type Flags } from '../helpers/server.ts';

const scratch = tempDir('derrick-serve-auth-records-');
const htpasswd = path.join(scratch.dir, 'htpasswd');
const SECRET = '00112233445566778899aabbccddeeff';
const PULP_URL = 'https://pulp.example.test/pulp/docker/v2/vault/';
const S2 = `sha256:${'2'.repeat(64)}`;
const BLOB = `sha256:${'b'.repeat(64)}`;
const ALICE = basic('alice', 'alice-secret');

before(() => writeHtpasswd(htpasswd, { alice: 'alice-secret' }));
after(() => scratch.cleanup());

for (const backend of BACKENDS)
  describe(backend, () => {
    let dataDir!: string;
    let removeTree!: () => Promise<void>;
    const apps: FastifyInstance[] = [];
    async function app(flags: Flags = {}): Promise<FastifyInstance> {
      const made = await serveTree(dataDir, { 'auth.htpasswd': htpasswd, ...flags });
      apps.push(made);
      return made;
    }

    before(async () => {
      const { spot, remove } = await suiteTree(backend);
      dataDir = spot.location;
      removeTree = remove;
      await writeRecordFile(dataDir, 'pulp/vault', {
        type: 'pulp-docker-redirect',
        version: 3,
        repository: 'vault',
        'repo-registry-id': 'pulp/vault',
        url: PULP_URL,
        protected: true,
        schema2_data: ['1.0', S2],
      });
      await writeRecordFile(dataDir, 'pulp/open', {
        type: 'pulp-docker-redirect',
        version: 2,
        repository: 'open',
        'repo-registry-id': 'pulp/open',
        url: 'https://pulp.example.test/pulp/docker/v2/open/',
        protected: false,
      });
      await writeRecordFile(dataDir, 'broken/app', '{ this is not JSON');
    });
    after(async () => {
      await Promise.all(apps.map((made) => made.close()));
      await removeTree();
    });

    describe('a protected Pulp 2 record', () => {
      test('anonymous: 401 with a challenge, no redirect', async () => {
        const answer = await (
          await app({ 'redirect.token.secret': SECRET })
        ).inject({
          url: '/v2/pulp/vault/manifests/1.0',
        });
        assertOciError(answer, 401, 'UNAUTHORIZED');
        assert.match(String(answer.headers['www-authenticate']), /^Basic realm=/);
        assert.equal(answer.headers.location, undefined);
      });

      test('a user, with redirect.token: every redirect is signed', async () => {
        const served = await app({ 'redirect.token.secret': SECRET });
        for (const url of [
          '/v2/pulp/vault/manifests/1.0',
          `/v2/pulp/vault/blobs/${BLOB}`,
          '/v2/pulp/vault/tags/list',
        ]) {
          const answer = await served.inject({ url, headers: { authorization: ALICE } });
          assert.equal(answer.statusCode, 302, `${url}: ${answer.body}`);
          const location = String(answer.headers.location);
          assert.ok(location.startsWith(PULP_URL.slice(0, -1)), location);
          assert.match(location, /[?&]_auth_=exp=\d+~hmac=[0-9a-f]{64}$/, location);
        }
      });

      test('a user, without redirect.token: 500 UNKNOWN, never an unsigned URL; an open Pulp record still redirects', async () => {
        const served = await app();
        for (const url of [
          '/v2/pulp/vault/manifests/1.0',
          `/v2/pulp/vault/blobs/${BLOB}`,
          '/v2/pulp/vault/tags/list',
        ]) {
          const answer = await served.inject({ url, headers: { authorization: ALICE } });
          assertOciError(answer, 500, 'UNKNOWN');
          assert.equal(answer.headers.location, undefined, url);
          assert.doesNotMatch(answer.body, /pulp\.example\.test/, 'the answer names no Pulp URL');
        }
        const open = await served.inject({ url: `/v2/pulp/open/blobs/${BLOB}` });
        assert.equal(open.statusCode, 302);
        assert.doesNotMatch(String(open.headers.location), /_auth_=/);
      });
    });

    describe('referrers of a Pulp 2 record', () => {
      const url = (name: string) => `/v2/${name}/referrers/${S2}`;
      const INDEX = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] };

      test('none (Pulp 2 has no referrers API and stores no OCI index): 200 and an empty index, never a redirect, signed or not', async () => {
        for (const served of [await app(), await app({ 'redirect.token.secret': SECRET })]) {
          const cases = [
            ['pulp/open', undefined, undefined],
            ['pulp/vault', ALICE, 'private, no-cache'],
          ] as const;
          for (const [name, authorization, cacheControl] of cases) {
            const answer = await served.inject({
              url: url(name),
              headers: authorization === undefined ? {} : { authorization },
            });
            assert.equal(answer.statusCode, 200, `${name}: ${answer.body}`);
            assert.equal(answer.headers['content-type'], INDEX.mediaType);
            assert.equal(answer.headers['cache-control'], cacheControl, name);
            assert.equal(answer.headers.location, undefined, name);
            assert.deepEqual(JSON.parse(answer.body), INDEX);
          }
        }
      });

      test('a protected one, to an anonymous client: 401 with a challenge, as on every endpoint', async () => {
        assertOciError(await (await app()).inject({ url: url('pulp/vault') }), 401, 'UNAUTHORIZED');
      });
    });

    describe('an unreadable record in _catalog', () => {
      test('named to a logged-in client, not to an anonymous one (it might be protected)', async () => {
        const served = await app();
        const anonymous = await served.inject({ url: '/v2/_catalog' });
        assert.equal(anonymous.statusCode, 200);
        assert.deepEqual(JSON.parse(anonymous.body), { repositories: ['pulp/open'] });
        const alice = await served.inject({ url: '/v2/_catalog', headers: { authorization: ALICE } });
        assert.deepEqual(JSON.parse(alice.body), { repositories: ['broken/app', 'pulp/open', 'pulp/vault'] });
      });

      test('pulling it: 500 UNKNOWN to a client the rules admit, with no detail of the file (its referrers too)', async () => {
        for (const url of ['/v2/broken/app/tags/list', `/v2/broken/app/referrers/${S2}`]) {
          const answer = await (await app()).inject({ url, headers: { authorization: ALICE } });
          assertOciError(answer, 500, 'UNKNOWN');
          assert.doesNotMatch(answer.body, /json|broken\/app\.json|v2\/app/i);
        }
      });
    });
  });
