/**
 * derrick serve over Pulp 2 records (`"type": "pulp-docker-redirect"`, versions 2–4), written as pulp_docker
 * wrote them: every manifest request redirects below the record's `url` by Crane's table (src/http/crane.ts),
 * blobs to <url>/blobs/<digest>, and the tag list to <url>/tags/list.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { BACKENDS } from '../helpers/backends.ts';
import { MT } from '../helpers/images.ts';
import {
  assertApiVersion,
  header,
  serveTree,
  suiteTree,
  writeRecordFile,
  type Answered,
} from '../helpers/server.ts';

/** Pulp's urls end with "/"; redirects must not double it. */
const URL2 = 'https://pulp.example.test/pulp/docker/v2/redhat-two/';
const URL3 = 'https://pulp.example.test/pulp/docker/v2/redhat-three/';
const URL4 = 'https://pulp.example.test/pulp/docker/v2/redhat-four/';
const BASE2 = URL2.slice(0, -1);
const BASE3 = URL3.slice(0, -1);
const BASE4 = URL4.slice(0, -1);

const digest = (char: string): string => `sha256:${char.repeat(64)}`;
/** A tag and a digest with a schema 2 manifest. */
const S2_DIGEST = digest('2');
/** A manifest list (by tag `list` and by this digest), whose linux/amd64 image is schema 2 AMD64_DIGEST. */
const LIST_DIGEST = digest('1');
const AMD64_DIGEST = digest('a');
/** A manifest list `oldlist` whose linux/amd64 image is a schema 1 manifest V1_AMD64_DIGEST. */
const V1_AMD64_DIGEST = digest('b');

for (const backend of BACKENDS)
  describe(backend, () => {
    let app!: FastifyInstance;
    let removeTree!: () => Promise<void>;

    before(async () => {
      const { spot: dataDir, remove } = await suiteTree(backend);
      removeTree = remove;
      await writeRecordFile(dataDir, 'pulp/two', {
        type: 'pulp-docker-redirect',
        version: 2,
        repository: 'redhat-two',
        'repo-registry-id': 'pulp/two',
        url: URL2,
        protected: false,
      });
      await writeRecordFile(dataDir, 'pulp/three', {
        type: 'pulp-docker-redirect',
        version: 3,
        repository: 'redhat-three',
        'repo-registry-id': 'pulp/three',
        url: URL3,
        protected: false,
        schema2_data: ['s2', S2_DIGEST],
        // Fields of version 4 in a version 3 record: pulp_docker 2.4 never wrote them, Crane ignored them.
        manifest_list_data: ['s2'],
        manifest_list_amd64_tags: { s2: [AMD64_DIGEST, 2] },
      });
      await writeRecordFile(dataDir, 'pulp/four', {
        type: 'pulp-docker-redirect',
        version: 4,
        repository: 'redhat-four',
        'repo-registry-id': 'pulp/four',
        url: URL4,
        protected: false,
        schema2_data: ['s2', S2_DIGEST, AMD64_DIGEST],
        manifest_list_data: ['list', 'oldlist', LIST_DIGEST],
        manifest_list_amd64_tags: { list: [AMD64_DIGEST, 2], oldlist: [V1_AMD64_DIGEST, 1] },
      });
      app = await serveTree(dataDir);
    });

    after(async () => {
      await app.close();
      await removeTree();
    });

    function assertRedirect(response: Answered, location: string): void {
      assert.equal(response.statusCode, 302, response.body);
      assertApiVersion(response);
      assert.equal(header(response, 'location'), location);
    }

    async function manifest(
      name: string,
      reference: string,
      accept: string[] | undefined,
    ): Promise<Answered> {
      return app.inject({
        method: 'GET',
        url: `/v2/${name}/manifests/${reference}`,
        headers: accept === undefined ? {} : { accept: accept.join(', ') },
      });
    }

    const LIST = MT.dockerList;
    const S2 = MT.dockerManifest;

    describe('version 4 (pulp_docker 3.x): Crane’s table', () => {
      test('1. list accepted, tag in manifest_list_data → manifests/list/<tag>', async () => {
        assertRedirect(await manifest('pulp/four', 'list', [LIST, S2]), `${BASE4}/manifests/list/list`);
      });

      test('1. list accepted, digest in manifest_list_data → manifests/list/<digest>', async () => {
        const response = await manifest('pulp/four', LIST_DIGEST, [LIST]);
        assertRedirect(response, `${BASE4}/manifests/list/${LIST_DIGEST}`);
      });

      test('2. list not accepted, tag in manifest_list_amd64_tags, schema 2 accepted → manifests/<v>/<amd64 digest>', async () => {
        const response = await manifest('pulp/four', 'list', [S2]);
        assertRedirect(response, `${BASE4}/manifests/2/${AMD64_DIGEST}`);
      });

      test('2. list not accepted, amd64 image of schema 1, schema 2 accepted → manifests/1/<amd64 digest>', async () => {
        const response = await manifest('pulp/four', 'oldlist', [S2]);
        assertRedirect(response, `${BASE4}/manifests/1/${V1_AMD64_DIGEST}`);
      });

      test('2. schema 2 not accepted, amd64 image of schema 1 → manifests/1/<amd64 digest>', async () => {
        const response = await manifest('pulp/four', 'oldlist', undefined);
        assertRedirect(response, `${BASE4}/manifests/1/${V1_AMD64_DIGEST}`);
      });

      test('2. schema 2 not accepted, amd64 image of schema 2 → manifests/1/<tag>', async () => {
        assertRedirect(await manifest('pulp/four', 'list', undefined), `${BASE4}/manifests/1/list`);
      });

      test('3. schema 2 accepted, tag in schema2_data → manifests/2/<tag>', async () => {
        assertRedirect(await manifest('pulp/four', 's2', [S2]), `${BASE4}/manifests/2/s2`);
      });

      test('3. schema 2 accepted, digest in schema2_data → manifests/2/<digest>', async () => {
        assertRedirect(await manifest('pulp/four', S2_DIGEST, [S2]), `${BASE4}/manifests/2/${S2_DIGEST}`);
      });

      test('3. list and schema 2 accepted, tag only in schema2_data → manifests/2/<tag>', async () => {
        assertRedirect(await manifest('pulp/four', 's2', [LIST, S2]), `${BASE4}/manifests/2/s2`);
      });

      test('4. schema 2 accepted, tag not in schema2_data → manifests/1/<tag>', async () => {
        assertRedirect(await manifest('pulp/four', 'v1only', [S2]), `${BASE4}/manifests/1/v1only`);
      });

      test('4. no Accept, tag in schema2_data → manifests/1/<tag>', async () => {
        assertRedirect(await manifest('pulp/four', 's2', undefined), `${BASE4}/manifests/1/s2`);
      });

      test('4. Accept */* only (Crane compared literal types), tag in schema2_data → manifests/1/<tag>', async () => {
        assertRedirect(await manifest('pulp/four', 's2', ['*/*']), `${BASE4}/manifests/1/s2`);
      });

      test('4. list accepted, tag neither a list nor schema 2 → manifests/1/<tag>', async () => {
        assertRedirect(await manifest('pulp/four', 'v1only', [LIST]), `${BASE4}/manifests/1/v1only`);
      });
    });

    describe('version 3 (pulp_docker 2.4): schema 2 or schema 1', () => {
      test('schema 2 accepted, tag in schema2_data → manifests/2/<tag>', async () => {
        assertRedirect(await manifest('pulp/three', 's2', [S2]), `${BASE3}/manifests/2/s2`);
      });

      test('schema 2 accepted, digest in schema2_data → manifests/2/<digest>', async () => {
        assertRedirect(await manifest('pulp/three', S2_DIGEST, [S2]), `${BASE3}/manifests/2/${S2_DIGEST}`);
      });

      test('schema 2 accepted, tag not in schema2_data → manifests/1/<tag>', async () => {
        assertRedirect(await manifest('pulp/three', 'v1only', [S2]), `${BASE3}/manifests/1/v1only`);
      });

      test('no Accept, tag in schema2_data → manifests/1/<tag>', async () => {
        assertRedirect(await manifest('pulp/three', 's2', undefined), `${BASE3}/manifests/1/s2`);
      });

      test('list and schema 2 accepted: a version 3 record knows no lists → manifests/2/<tag>', async () => {
        assertRedirect(await manifest('pulp/three', 's2', [LIST, S2]), `${BASE3}/manifests/2/s2`);
      });

      test('only the list accepted: version 3 ignores manifest_list_amd64_tags → manifests/1/<tag>', async () => {
        assertRedirect(await manifest('pulp/three', 's2', [LIST]), `${BASE3}/manifests/1/s2`);
      });
    });

    describe('version 2 (pulp_docker 2.0–2.3): manifests/<ref>', () => {
      test('a tag → manifests/<tag>, whatever is accepted', async () => {
        assertRedirect(await manifest('pulp/two', 'latest', [LIST, S2]), `${BASE2}/manifests/latest`);
      });

      test('a tag without Accept → manifests/<tag>', async () => {
        assertRedirect(await manifest('pulp/two', 'latest', undefined), `${BASE2}/manifests/latest`);
      });

      test('a digest → manifests/<digest>', async () => {
        assertRedirect(await manifest('pulp/two', S2_DIGEST, [S2]), `${BASE2}/manifests/${S2_DIGEST}`);
      });
    });

    describe('blobs and tags of Pulp records', () => {
      for (const [name, base] of [
        ['pulp/two', BASE2],
        ['pulp/three', BASE3],
        ['pulp/four', BASE4],
      ] as const) {
        test(`${name}: GET blob → <url>/blobs/<digest>`, async () => {
          const blob = digest('c');
          const response = await app.inject({ method: 'GET', url: `/v2/${name}/blobs/${blob}` });
          assertRedirect(response, `${base}/blobs/${blob}`);
        });

        test(`${name}: GET tags/list → <url>/tags/list`, async () => {
          const response = await app.inject({ method: 'GET', url: `/v2/${name}/tags/list` });
          assertRedirect(response, `${base}/tags/list`);
        });
      }

      test('a Pulp repository is listed by its repo-registry-id in the catalog', async () => {
        const response = await app.inject({ method: 'GET', url: '/v2/_catalog' });
        assert.deepEqual(response.json(), { repositories: ['pulp/four', 'pulp/three', 'pulp/two'] });
      });
    });
  });
