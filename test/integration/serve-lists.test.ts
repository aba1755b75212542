/**
 * derrick serve, the listing endpoints: tags/list and _catalog (byte order, n/last pagination, the Link header
 * exactly when more remain, invalid n), at scale (10,000 tags, 150 repositories), and the OCI 1.1 referrers API.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { compareStrings, emptyRepository } from '../../src/store/record.ts';
import { BACKENDS } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { MT } from '../helpers/images.ts';
import {
  assertApiVersion,
  assertOciError,
  buildFixtures,
  header,
  openTree,
  publishInto,
  serveTree,
  suiteTree,
  type Answered,
  type Fixtures,
} from '../helpers/server.ts';

const scratch = tempDir('derrick-serve-lists-');

const TAGS = ['latest', 'b', 'a', 'c', '1.0', 'Z', 'a-b', 'a_b', 'a.b'];
const SORTED_TAGS = [...TAGS].sort(compareStrings);
const MANY_TAGS = Array.from({ length: 10_000 }, (_, i) => `t${i}`).sort(compareStrings);
const CATALOG_NAMES = Array.from({ length: 150 }, (_, i) => {
  if (i % 3 === 0) return `flat-${i}`;
  if (i % 3 === 1) return `ns${i % 4}/r${i}`;
  return `ns${i % 4}/deep/r${i}`;
}).sort(compareStrings);
const NESTED_NAMES = ['a', 'a/b', 'a-b', 'a.b', 'a/b/c', 'a0', 'a_b', 'b', 'a/a'];

/** A 4xx whose code the spec does not list: the code and a message as plain text, not an OCI JSON body. */
function assertPlainError(response: Answered, status: number, code: string): void {
  assert.equal(response.statusCode, status, response.body);
  assertApiVersion(response);
  assert.equal(header(response, 'content-type'), 'text/plain; charset=utf-8');
  assert.match(response.body, new RegExp(`^${code}: .+\\n$`));
}

let fixtures!: Fixtures;

before(async () => {
  fixtures = await buildFixtures(path.join(scratch.dir, 'layout'));
});

after(() => scratch.cleanup());

for (const backend of BACKENDS)
  describe(backend, () => {
    let app!: FastifyInstance;
    let catalogApp!: FastifyInstance;
    let nestedApp!: FastifyInstance;

    /** team/app with a handful of tags, many (10,000 tags), signed (an image and a signature). */
    let dataDir!: string;
    /** 150 repositories, flat and nested, records only. */
    let catalogDir!: string;
    /** a, a/b, a-b, a.b and a few more, records only. */
    let nestedDir!: string;
    let removeTree!: () => Promise<void>;

    /** Writes records for `names`, each tagging the one image of `template` (a published repository record). */
    async function writeRecords(dir: string, names: string[]): Promise<void> {
      const source = await openTree(dataDir);
      const lookup = await source.readRecord('team/app');
      await source.backend.close();
      assert.ok(lookup.found);
      const tree = await openTree(dir);
      for (const name of names) {
        await tree.writeRecord({
          ...emptyRepository(name),
          tags: new Map([['latest', fixtures.single.digest]]),
          manifests: lookup.repository.manifests,
          blobs: lookup.repository.blobs,
        });
      }
      await tree.backend.close();
    }

    before(async () => {
      const { spot, remove } = await suiteTree(backend);
      removeTree = remove;
      dataDir = spot.location;
      catalogDir = `${spot.location}-catalog`;
      nestedDir = `${spot.location}-nested`;
      await publishInto(
        dataDir,
        `oci:${fixtures.dir}:single`,
        TAGS.map((tag) => `team/app:${tag}`),
      );
      await publishInto(dataDir, `oci:${fixtures.dir}:signed`, ['signed:latest']);
      const tree = await openTree(dataDir);
      const lookup = await tree.readRecord('team/app');
      assert.ok(lookup.found);
      await tree.writeRecord({
        ...emptyRepository('many'),
        tags: new Map(MANY_TAGS.map((tag) => [tag, fixtures.single.digest])),
        manifests: lookup.repository.manifests,
        blobs: lookup.repository.blobs,
      });
      await tree.backend.close();
      await writeRecords(catalogDir, CATALOG_NAMES);
      await writeRecords(nestedDir, NESTED_NAMES);
      app = await serveTree(dataDir);
      catalogApp = await serveTree(catalogDir);
      nestedApp = await serveTree(nestedDir);
    });

    after(async () => {
      await Promise.all([app.close(), catalogApp.close(), nestedApp.close()]);
      await removeTree();
    });

    interface Tags {
      name: string;
      tags: string[];
    }
    interface Catalog {
      repositories: string[];
    }
    interface Page<T> {
      status: number;
      body: T;
      link: string | undefined;
    }

    async function getPage(target: FastifyInstance, url: string): Promise<Page<unknown>> {
      const response = await target.inject({ method: 'GET', url });
      assertApiVersion(response);
      return { status: response.statusCode, body: response.json(), link: header(response, 'link') };
    }

    /** A page of tags/list of the main tree. */
    const tagsPage = async (url: string): Promise<Page<Tags>> => (await getPage(app, url)) as Page<Tags>;

    /** A page of _catalog of `target`. */
    const catalogPage =
      (target: () => FastifyInstance) =>
      async (url: string): Promise<Page<Catalog>> =>
        (await getPage(target(), url)) as Page<Catalog>;
    const nestedCatalog = catalogPage(() => nestedApp);
    const bigCatalog = catalogPage(() => catalogApp);

    const nextLink = (url: string): string => `<${url}>; rel="next"`;

    /** The URL a `Link: <url>; rel="next"` header names, or undefined without one. */
    function nextUrl(link: string | undefined): string | undefined {
      if (link === undefined) return undefined;
      const match = /^<([^>]+)>; rel="next"$/.exec(link);
      assert.ok(match, `malformed Link ${link}`);
      return match[1];
    }

    /** Every page from `first`, following the Links (at most `limit` pages). */
    async function followLinks<T>(
      fetchPage: (url: string) => Promise<Page<T>>,
      first: string,
      limit: number,
    ): Promise<Page<T>[]> {
      const pages: Page<T>[] = [];
      let url: string | undefined = first;
      while (url !== undefined) {
        assert.ok(pages.length < limit, 'the Links do not end');
        const page: Page<T> = await fetchPage(url);
        pages.push(page);
        url = nextUrl(page.link);
      }
      return pages;
    }

    describe('tags/list', () => {
      test('tags/list → 200 {name, tags}, tags in byte order', async () => {
        const { status, body, link } = await tagsPage('/v2/team/app/tags/list');
        assert.equal(status, 200);
        assert.deepEqual(body, { name: 'team/app', tags: SORTED_TAGS });
        assert.equal(link, undefined);
      });

      test('tags/list?n=2 → the first two, and a Link to the rest', async () => {
        const { body, link } = await tagsPage('/v2/team/app/tags/list?n=2');
        assert.deepEqual(body.tags, SORTED_TAGS.slice(0, 2));
        assert.equal(link, nextLink(`/v2/team/app/tags/list?n=2&last=${SORTED_TAGS[1] ?? ''}`));
      });

      test('tags/list?n=2&last=<second> → the next two, and a Link', async () => {
        const last = SORTED_TAGS[1] ?? '';
        const { body, link } = await tagsPage(`/v2/team/app/tags/list?n=2&last=${last}`);
        assert.deepEqual(body.tags, SORTED_TAGS.slice(2, 4));
        assert.equal(link, nextLink(`/v2/team/app/tags/list?n=2&last=${SORTED_TAGS[3] ?? ''}`));
      });

      test('following the Links with n=2 returns every tag once, in order, and the last page has no Link', async () => {
        const pages = await followLinks(tagsPage, '/v2/team/app/tags/list?n=2', SORTED_TAGS.length);
        const seen = pages.flatMap((page) => page.body.tags);
        assert.deepEqual(seen, SORTED_TAGS);
        assert.equal(pages.length, Math.ceil(SORTED_TAGS.length / 2));
      });

      test('tags/list?n=<exactly the number of tags> → all of them, no Link', async () => {
        const { body, link } = await tagsPage(`/v2/team/app/tags/list?n=${SORTED_TAGS.length}`);
        assert.deepEqual(body.tags, SORTED_TAGS);
        assert.equal(link, undefined);
      });

      test('tags/list?n=<more than remain> → the rest, no Link', async () => {
        const last = SORTED_TAGS[SORTED_TAGS.length - 3] ?? '';
        const { body, link } = await tagsPage(`/v2/team/app/tags/list?n=5&last=${last}`);
        assert.deepEqual(body.tags, SORTED_TAGS.slice(-2));
        assert.equal(link, undefined);
      });

      test('tags/list?last=<a value between tags> → the tags after it', async () => {
        const { body } = await tagsPage('/v2/team/app/tags/list?last=a0');
        assert.deepEqual(
          body.tags,
          SORTED_TAGS.filter((tag) => compareStrings(tag, 'a0') > 0),
        );
      });

      test('tags/list?last=<the last tag> → an empty list, no Link', async () => {
        const last = SORTED_TAGS[SORTED_TAGS.length - 1] ?? '';
        const { status, body, link } = await tagsPage(`/v2/team/app/tags/list?n=2&last=${last}`);
        assert.equal(status, 200);
        assert.deepEqual(body, { name: 'team/app', tags: [] });
        assert.equal(link, undefined);
      });

      // n=0 is not invalid: "When `n` is zero, this endpoint MUST return an empty list" (test/integration/conformance.test.ts).
      for (const n of ['-1', 'abc']) {
        test(`tags/list?n=${n} → 400 PAGINATION_NUMBER_INVALID (as plain text: the spec does not list the code)`, async () => {
          const response = await app.inject({ method: 'GET', url: `/v2/team/app/tags/list?n=${n}` });
          assertPlainError(response, 400, 'PAGINATION_NUMBER_INVALID');
        });
      }

      test('tags/list with a repeated last (?last=a&last=b) → a page or a 4xx, never a 500', async () => {
        const response = await app.inject({ method: 'GET', url: '/v2/team/app/tags/list?n=2&last=a&last=b' });
        assert.ok(response.statusCode < 500, `${response.statusCode}: ${response.body}`);
        assertApiVersion(response);
      });

      test('tags/list of an unknown repository → 404 NAME_UNKNOWN', async () => {
        const response = await app.inject({ method: 'GET', url: '/v2/team/nobody/tags/list' });
        assertOciError(response, 404, 'NAME_UNKNOWN');
      });

      test('10,000 tags without n → all of them, in order, no Link', async () => {
        const { body, link } = await tagsPage('/v2/many/tags/list');
        assert.deepEqual(body.tags, MANY_TAGS);
        assert.equal(link, undefined);
      });

      test('10,000 tags paged at n=100 from a last deep inside → every following tag once, in order', async () => {
        const from = 6_789;
        const expected = MANY_TAGS.slice(from + 1);
        const pages = await followLinks(
          tagsPage,
          `/v2/many/tags/list?n=100&last=${MANY_TAGS[from] ?? ''}`,
          100,
        );
        const seen: string[] = [];
        for (const { body, link } of pages) {
          assert.ok(body.tags.length <= 100);
          seen.push(...body.tags);
          const lastOfPage = body.tags[body.tags.length - 1] ?? '';
          const more = seen.length < expected.length;
          assert.equal(
            link,
            more ? nextLink(`/v2/many/tags/list?n=100&last=${lastOfPage}`) : undefined,
            `Link after ${lastOfPage}`,
          );
        }
        assert.deepEqual(seen, expected);
      });
    });

    describe('_catalog', () => {
      test('_catalog → every repository in byte order: a, a-b, a.b, a/…, a0, a_b, b', async () => {
        const { status, body, link } = await nestedCatalog('/v2/_catalog');
        assert.equal(status, 200);
        assert.deepEqual(body.repositories, [...NESTED_NAMES].sort(compareStrings));
        assert.deepEqual(body.repositories, ['a', 'a-b', 'a.b', 'a/a', 'a/b', 'a/b/c', 'a0', 'a_b', 'b']);
        assert.equal(link, undefined);
      });

      test('_catalog?n=2 → the first two and a Link to the rest', async () => {
        const { body, link } = await nestedCatalog('/v2/_catalog?n=2');
        assert.deepEqual(body.repositories, ['a', 'a-b']);
        assert.equal(link, nextLink('/v2/_catalog?n=2&last=a-b'));
      });

      test('_catalog?n=2&last=a.b → continues inside the a/ namespace', async () => {
        const { body } = await nestedCatalog('/v2/_catalog?n=2&last=a.b');
        assert.deepEqual(body.repositories, ['a/a', 'a/b']);
      });

      test('_catalog?n=3&last=a/a → continues below a/b, then after the namespace', async () => {
        const { body } = await nestedCatalog('/v2/_catalog?n=3&last=a/a');
        assert.deepEqual(body.repositories, ['a/b', 'a/b/c', 'a0']);
      });

      test('following the Links with n=2 over nested names returns each once, in order', async () => {
        const pages = await followLinks(nestedCatalog, '/v2/_catalog?n=2', NESTED_NAMES.length);
        const seen = pages.flatMap((page) => page.body.repositories);
        assert.deepEqual(seen, [...NESTED_NAMES].sort(compareStrings));
      });

      test('150 repositories paged by n=50 → each exactly once, in order, a Link on all but the last page', async () => {
        const pages = (await followLinks(bigCatalog, '/v2/_catalog?n=50', 10)).map(
          (page) => page.body.repositories,
        );
        assert.deepEqual(pages.flat(), CATALOG_NAMES);
        assert.deepEqual(
          pages.map((page) => page.length),
          [50, 50, 50],
        );
      });

      test('_catalog?n=50&last=<the 100th> → the last 50, no Link', async () => {
        const last = CATALOG_NAMES[99] ?? '';
        const { body, link } = await bigCatalog(`/v2/_catalog?n=50&last=${last}`);
        assert.deepEqual(body.repositories, CATALOG_NAMES.slice(100));
        assert.equal(link, undefined);
      });

      test('_catalog with a repeated last (?last=a&last=b) → a page or a 4xx, never a 500', async () => {
        const response = await nestedApp.inject({ method: 'GET', url: '/v2/_catalog?n=2&last=a&last=b' });
        assert.ok(response.statusCode < 500, `${response.statusCode}: ${response.body}`);
        assertApiVersion(response);
      });

      test('_catalog?n=0 → an empty list and no Link, as tags/list answers n=0 (and distribution the catalog)', async () => {
        const response = await nestedApp.inject({ method: 'GET', url: '/v2/_catalog?n=0' });
        assert.equal(response.statusCode, 200);
        assert.deepEqual(response.json(), { repositories: [] });
        assert.equal(header(response, 'link'), undefined);
      });

      for (const n of ['-1', 'abc']) {
        test(`_catalog?n=${n} → 400 PAGINATION_NUMBER_INVALID (as plain text: the spec does not list the code)`, async () => {
          const response = await nestedApp.inject({ method: 'GET', url: `/v2/_catalog?n=${n}` });
          assertPlainError(response, 400, 'PAGINATION_NUMBER_INVALID');
        });
      }
    });

    describe('referrers', () => {
      type Index = { schemaVersion: number; mediaType: string; manifests: Record<string, unknown>[] };

      test('GET referrers of an image → 200, an OCI index listing its artifact', async () => {
        const response = await app.inject({
          method: 'GET',
          url: `/v2/signed/referrers/${fixtures.signed.image.digest}`,
        });
        assert.equal(response.statusCode, 200);
        assertApiVersion(response);
        assert.equal(header(response, 'content-type'), MT.ociIndex);
        assert.deepEqual(response.json<Index>(), {
          schemaVersion: 2,
          mediaType: MT.ociIndex,
          manifests: [fixtures.signed.referrer],
        });
        assert.equal(header(response, 'oci-filters-applied'), undefined);
      });

      test('?artifactType=<its type> → the same list, and OCI-Filters-Applied: artifactType', async () => {
        const type = encodeURIComponent(fixtures.signed.artifactType);
        const response = await app.inject({
          method: 'GET',
          url: `/v2/signed/referrers/${fixtures.signed.image.digest}?artifactType=${type}`,
        });
        assert.equal(response.statusCode, 200);
        assert.equal(header(response, 'content-type'), MT.ociIndex);
        assert.deepEqual(response.json<Index>().manifests, [fixtures.signed.referrer]);
        assert.equal(header(response, 'oci-filters-applied'), 'artifactType');
      });

      test('?artifactType=<another type> → an empty list, and OCI-Filters-Applied: artifactType', async () => {
        const type = encodeURIComponent('application/vnd.example.sbom.v1');
        const response = await app.inject({
          method: 'GET',
          url: `/v2/signed/referrers/${fixtures.signed.image.digest}?artifactType=${type}`,
        });
        assert.equal(response.statusCode, 200);
        assert.deepEqual(response.json<Index>(), { schemaVersion: 2, mediaType: MT.ociIndex, manifests: [] });
        assert.equal(header(response, 'oci-filters-applied'), 'artifactType');
      });

      test('GET referrers of a manifest that has none → 200, an empty index', async () => {
        const response = await app.inject({
          method: 'GET',
          url: `/v2/signed/referrers/${fixtures.signed.artifact.digest}`,
        });
        assert.equal(response.statusCode, 200);
        assert.equal(header(response, 'content-type'), MT.ociIndex);
        assert.deepEqual(response.json<Index>(), { schemaVersion: 2, mediaType: MT.ociIndex, manifests: [] });
      });

      test('GET referrers of a digest the repository does not hold → 200, an empty index (never 404)', async () => {
        const response = await app.inject({
          method: 'GET',
          url: `/v2/signed/referrers/sha256:${'9'.repeat(64)}`,
        });
        assert.equal(response.statusCode, 200);
        assert.deepEqual(response.json<Index>().manifests, []);
      });

      test('GET referrers of an invalid digest → 400 DIGEST_INVALID', async () => {
        const response = await app.inject({ method: 'GET', url: '/v2/signed/referrers/sha256:nothex' });
        assertOciError(response, 400, 'DIGEST_INVALID');
      });
    });
  });
