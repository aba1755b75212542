/**
 * The OCI distribution spec, line by line, for what derrick implements: the Pull and Content Discovery
 * categories (spec v1.1.1, https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md, and where
 * the spec's main branch has since tightened a SHOULD into a MUST, that sentence too). Each test quotes the
 * sentence it checks, and for the checks of the spec's conformance suite (conformance/01_pull_test.go and
 * 03_discovery_test.go at v1.1.1) the name of the suite's check. Every check runs on both back ends: a tree in a
 * directory and one in a bucket of the test S3 server.
 *
 * Out of scope, because derrick has no write API (images are published with `derrick publish`):
 * - Push (blob uploads, mounts, manifest PUT, `OCI-Subject`): a registry "SHOULD also support" it and claims
 *   conformance only for the categories it implements. Writes answer 405 UNSUPPORTED (tested below).
 * - Content Management (DELETE of tags, manifests, blobs): "Registries MAY implement deletion or they MAY disable
 *   it" — disabled, with the 405 the spec names (tested below).
 * - `/v2/_catalog`: no longer part of the spec (serve-lists.test.ts tests it as distribution answers it).
 *
 * To run the suite itself against a derrick serving this kind of tree, skip its (push) setup as its README says:
 * OCI_TEST_PULL=1 OCI_TEST_CONTENT_DISCOVERY=1 with OCI_TAG_NAME, OCI_MANIFEST_DIGEST, OCI_BLOB_DIGEST and
 * OCI_TAG_LIST naming published content.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { ERROR_CODES, hasJsonBody, type ErrorCode } from '../../src/oci/errors.ts';
import { emptyRepository } from '../../src/store/record.ts';
import { BACKENDS, type TreeSpot } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { LayoutBuilder, MT, type Descriptor } from '../helpers/images.ts';
import {
  assertApiVersion,
  assertOciError,
  buildFixtures,
  header,
  openTree,
  publishInto,
  removeTreeObject,
  serveTree,
  sha256Of,
  suiteTree,
  writeRecordFile,
  writeTreeObject,
  type Answered,
  type Fixtures,
} from '../helpers/server.ts';

const scratch = tempDir('derrick-conformance-');
after(() => scratch.cleanup());
const REPO = 'conformance/app';
/** Tags in byte order ("ASCIIbetical": upper case first). */
const TAGS = ['Z', 'latest', 'tagtest0', 'test0', 'test1', 'test2', 'test3'];
/** The suite's digest of a blob no registry holds: sha256("hello world"). */
const DUMMY_DIGEST = sha256Of('hello world');
/** The suite's nonexistent manifest: a reference that is neither a tag nor a digest. */
const NONEXISTENT_MANIFEST = '.INVALID_MANIFEST_NAME';
/** The error codes the spec lists ("The `code` field MUST be one of the following"). */
const SPEC_CODES = [
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
];

const SBOM_CONFIG = 'application/vnd.example.sbom.config.v1+json';
const SIGNATURE = 'application/vnd.example.signature.v1';
const EMPTY_FIELD_CONFIG = 'application/vnd.example.empty-field.config.v1+json';

/** conformance/refs: an image and five referrers, each deriving its artifactType its own way. */
interface Referrers {
  subject: Descriptor;
  /** An image manifest with no artifactType and a config of type SBOM_CONFIG. */
  byConfig: Descriptor;
  /** An image manifest with artifactType SIGNATURE (and the empty config). */
  byField: Descriptor;
  /** An index with a subject and no artifactType. */
  index: Descriptor;
  /** An image manifest with `"artifactType": ""` and a config of type EMPTY_FIELD_CONFIG. */
  emptyField: Descriptor;
  /** An index with `"artifactType": ""`. */
  emptyIndex: Descriptor;
}

async function buildReferrers(dir: string): Promise<Referrers> {
  const builder = new LayoutBuilder(dir);
  const subject = await builder.image({ files: { 'hello.txt': 'referred to\n' } });
  const { platform: _platform, ...subjectDescriptor } = subject;
  const annotations = (which: string) => ({ 'org.opencontainers.conformance.test': which });
  const layer = builder.blob(Buffer.from('payload'), 'text/plain');
  const byConfig = builder.json(
    {
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config: builder.blob(Buffer.from('{"sbom": true}'), SBOM_CONFIG),
      layers: [layer],
      subject: subjectDescriptor,
      annotations: annotations('by config'),
    },
    MT.ociManifest,
  );
  const byField = builder.artifact(subject, SIGNATURE, 'signature', annotations('by field'));
  const index = builder.json(
    {
      schemaVersion: 2,
      mediaType: MT.ociIndex,
      manifests: [],
      subject: subjectDescriptor,
      annotations: annotations('index'),
    },
    MT.ociIndex,
  );
  const emptyField = builder.json(
    {
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      artifactType: '',
      config: builder.blob(Buffer.from('{"empty": "field"}'), EMPTY_FIELD_CONFIG),
      layers: [layer],
      subject: subjectDescriptor,
      annotations: annotations('empty field'),
    },
    MT.ociManifest,
  );
  const emptyIndex = builder.json(
    {
      schemaVersion: 2,
      mediaType: MT.ociIndex,
      artifactType: '',
      manifests: [],
      subject: subjectDescriptor,
      annotations: annotations('empty index'),
    },
    MT.ociIndex,
  );
  builder
    .add(subject, 'subject')
    .add(byConfig)
    .add(byField)
    .add(index)
    .add(emptyField)
    .add(emptyIndex)
    .write();
  return { subject, byConfig, byField, index, emptyField, emptyIndex };
}

/** An OCI error answer whose code is one the spec lists. */
function assertSpecError(answer: Answered, status: number, code: string): void {
  assert.ok(SPEC_CODES.includes(code), `${code} is not one of the spec's codes`);
  assertOciError(answer, status, code);
}

/** A HEAD answer: `status`, the API version header, and no body. */
function assertHeadOnly(answer: Answered, status: number): void {
  assert.equal(answer.statusCode, status, answer.body);
  assertApiVersion(answer);
  assert.equal(answer.body, '');
}

for (const backend of BACKENDS)
  describe(backend, () => {
    let fixtures!: Fixtures;
    let refs!: Referrers;
    let app!: FastifyInstance;
    /** The same tree, with at most two tags a page. */
    let smallPages!: FastifyInstance;
    /** The config blob of the image (what the suite's pull checks fetch as configs[0]). */
    let config!: { digest: string; size: number };
    /** The exact bytes of the image manifest. */
    let manifestBytes!: Buffer;
    let dataDir!: TreeSpot;
    let removeTree!: () => Promise<void>;

    before(async () => {
      ({ spot: dataDir, remove: removeTree } = await suiteTree(backend));
      fixtures = await buildFixtures(path.join(scratch.dir, `layout-${backend}`));
      await publishInto(
        dataDir,
        `oci:${fixtures.dir}:single`,
        TAGS.map((tag) => `${REPO}:${tag}`),
      );
      await publishInto(dataDir, `oci:${fixtures.dir}:signed`, ['conformance/signed:1']);
      const referrersDir = path.join(scratch.dir, `referrers-${backend}`);
      refs = await buildReferrers(referrersDir);
      await publishInto(dataDir, `oci:${referrersDir}:subject`, ['conformance/refs:1']);
      const tree = await openTree(dataDir);
      const lookup = await tree.readRecord(REPO);
      assert.ok(lookup.found);
      // A repository whose manifests are all untagged.
      await tree.writeRecord({
        ...emptyRepository('conformance/untagged'),
        manifests: lookup.repository.manifests,
        blobs: lookup.repository.blobs,
      });
      // conformance/refs as a derrick that kept an empty artifactType wrote it: "" in the record.
      const published = await tree.readRecord('conformance/refs');
      assert.ok(published.found);
      const manifests = new Map(published.repository.manifests);
      for (const { digest } of [refs.emptyField, refs.emptyIndex]) {
        const entry = manifests.get(digest);
        assert.ok(entry);
        manifests.set(digest, { ...entry, artifactType: '' });
      }
      await tree.writeRecord({ ...published.repository, name: 'conformance/legacy', manifests });
      await tree.backend.close();
      // A record that cannot be parsed: any request that reads it is answered 500.
      await writeRecordFile(dataDir, 'conformance/broken', '{"type": "derrick-repository", "vers');
      manifestBytes = await fs.readFile(
        path.join(fixtures.dir, 'blobs', 'sha256', fixtures.single.digest.slice('sha256:'.length)),
      );
      config = (JSON.parse(manifestBytes.toString('utf8')) as { config: { digest: string; size: number } })
        .config;
      app = await serveTree(dataDir);
      smallPages = await serveTree(dataDir, { 'tags.maxPageSize': '2' });
    });

    after(async () => {
      await Promise.all([app.close(), smallPages.close()]);
      await removeTree();
    });

    const get = (url: string, headers: Record<string, string> = {}) =>
      app.inject({ method: 'GET', url, headers });
    const head = (url: string, headers: Record<string, string> = {}) =>
      app.inject({ method: 'HEAD', url, headers });
    const ACCEPT = { accept: MT.ociManifest };

    describe('Determining support (end-1)', () => {
      test('“If the response is `200 OK`, then the registry implements this specification”: GET /v2/ → 200', async () => {
        const answer = await get('/v2/');
        assert.equal(answer.statusCode, 200);
        // "When a `200 OK` or `401 Unauthorized` response is returned, the "Docker-Distribution-API-Version" header
        // SHOULD be set to "registry/2.0"" (the spec before 1.0, which docker's clients still read).
        assertApiVersion(answer);
      });
    });

    describe('Pulling manifests (end-3)', () => {
      test('“A GET request to an existing manifest URL MUST provide the expected manifest, with a response code that MUST be `200 OK`” (suite: GET request to manifest path (tag) should yield 200 response)', async () => {
        const answer = await get(`/v2/${REPO}/manifests/tagtest0`, ACCEPT);
        assert.equal(answer.statusCode, 200);
        assert.deepEqual(answer.rawPayload, manifestBytes);
      });

      test('by digest, the same (suite: GET request to manifest[0] path (digest) should yield 200 response)', async () => {
        const answer = await get(`/v2/${REPO}/manifests/${fixtures.single.digest}`, ACCEPT);
        assert.equal(answer.statusCode, 200);
        assert.deepEqual(answer.rawPayload, manifestBytes);
      });

      test('“In a successful response, the `Content-Type` header will indicate the type of the returned manifest”, and “The registry SHOULD NOT include parameters on the `Content-Type` header”', async () => {
        for (const reference of ['latest', fixtures.single.digest]) {
          const answer = await get(`/v2/${REPO}/manifests/${reference}`, ACCEPT);
          assert.equal(header(answer, 'content-type'), MT.ociManifest, reference);
          // "If the manifest has a `mediaType` field, clients SHOULD reject unless the `mediaType` field's value
          // matches the type specified by the `Content-Type` header."
          assert.equal((JSON.parse(answer.body) as { mediaType: string }).mediaType, MT.ociManifest);
        }
      });

      test('“A successful response MUST contain the digest of the uploaded blob in the header `Docker-Content-Digest`”, and it “MUST verify the value matches the returned manifest”', async () => {
        for (const reference of ['latest', fixtures.single.digest]) {
          const answer = await get(`/v2/${REPO}/manifests/${reference}`, ACCEPT);
          assert.equal(header(answer, 'docker-content-digest'), fixtures.single.digest, reference);
          assert.equal(sha256Of(answer.rawPayload), fixtures.single.digest, reference);
        }
      });

      test('“If the manifest is not found in the repository, the response code MUST be `404 Not Found`” (suite: GET nonexistent manifest should return 404)', async () => {
        const answer = await get(`/v2/${REPO}/manifests/${NONEXISTENT_MANIFEST}`, ACCEPT);
        assertSpecError(answer, 404, 'MANIFEST_UNKNOWN');
      });

      test('“The `<reference>` MUST NOT be in any other format” than a digest or a tag: such a reference names no manifest → 404 MANIFEST_UNKNOWN, the only failure end-3 lists', async () => {
        const impossible = [
          NONEXISTENT_MANIFEST,
          '-latest',
          'a+b',
          't'.repeat(129),
          'sha256:abc',
          `sha256:${'A'.repeat(64)}`,
          `md5:${'0'.repeat(32)}`,
          `sha384:${'0'.repeat(96)}`,
          ':',
        ];
        for (const reference of impossible) {
          const answer = await get(`/v2/${REPO}/manifests/${encodeURI(reference)}`, ACCEPT);
          assertSpecError(answer, 404, 'MANIFEST_UNKNOWN');
          assert.deepEqual(JSON.parse(answer.body), {
            errors: [
              {
                code: 'MANIFEST_UNKNOWN',
                message: (JSON.parse(answer.body) as { errors: { message: string }[] }).errors[0]?.message,
                detail: { name: REPO, reference },
              },
            ],
          });
        }
      });

      test('a tag or digest the repository does not hold → 404 MANIFEST_UNKNOWN', async () => {
        for (const reference of ['nosuchtag', DUMMY_DIGEST, fixtures.other.digest]) {
          assertSpecError(await get(`/v2/${REPO}/manifests/${reference}`, ACCEPT), 404, 'MANIFEST_UNKNOWN');
        }
      });

      test('a reference that is neither a tag nor a digest never reaches the tree: the repository’s record is not read', async () => {
        // Reading conformance/broken's record answers 500; a reference refused before the record is read answers 404.
        assertOciError(await get('/v2/conformance/broken/manifests/latest'), 500, 'UNKNOWN');
        for (const reference of [NONEXISTENT_MANIFEST, 'sha256:abc']) {
          const answer = await get(`/v2/conformance/broken/manifests/${reference}`);
          assertSpecError(answer, 404, 'MANIFEST_UNKNOWN');
        }
      });

      test('a reference that is neither a tag nor a digest never reaches the tree: a content object of that name is not served', async () => {
        const planted = 'v2/content/sha256/abc';
        await writeTreeObject(dataDir, planted, manifestBytes);
        try {
          for (const answer of [
            await get(`/v2/${REPO}/manifests/sha256:abc`, ACCEPT),
            await head(`/v2/${REPO}/manifests/sha256:abc`, ACCEPT),
          ]) {
            assert.equal(answer.statusCode, 404);
            assert.equal(header(answer, 'docker-content-digest'), undefined);
            assert.ok(!answer.body.includes('schemaVersion'), 'served the planted file');
          }
        } finally {
          await removeTreeObject(dataDir, planted);
        }
      });

      test('“An attempt to pull a nonexistent repository MUST return response code `404 Not Found`”', async () => {
        assertSpecError(await get('/v2/conformance/nobody/manifests/latest', ACCEPT), 404, 'NAME_UNKNOWN');
        // A reference that names no manifest anywhere is answered the same whether or not the repository exists.
        const impossible = await get(`/v2/conformance/nobody/manifests/${NONEXISTENT_MANIFEST}`);
        assertSpecError(impossible, 404, 'MANIFEST_UNKNOWN');
      });
    });

    describe('Checking if content exists in the registry (end-2, end-3 HEAD)', () => {
      test('“A HEAD request to an existing blob or manifest URL MUST return `200 OK`” (suite: HEAD request to manifest path (tag) should yield 200 response; HEAD request to manifest[0] path (digest) should yield 200 response)', async () => {
        for (const reference of ['tagtest0', fixtures.single.digest]) {
          assertHeadOnly(await head(`/v2/${REPO}/manifests/${reference}`, ACCEPT), 200);
        }
      });

      test('“A successful response MUST contain the digest of the uploaded blob or manifest in the header `Docker-Content-Digest`” and “the size in bytes … in the header `Content-Length`” (manifests)', async () => {
        for (const reference of ['tagtest0', fixtures.single.digest]) {
          const answer = await head(`/v2/${REPO}/manifests/${reference}`, ACCEPT);
          assert.equal(header(answer, 'docker-content-digest'), fixtures.single.digest);
          assert.equal(header(answer, 'content-length'), String(manifestBytes.length));
          assert.equal(header(answer, 'content-type'), MT.ociManifest);
        }
      });

      test('the same for blobs (suite: HEAD request to existing blob should yield 200)', async () => {
        const answer = await head(`/v2/${REPO}/blobs/${config.digest}`);
        assertHeadOnly(answer, 200);
        assert.equal(header(answer, 'docker-content-digest'), config.digest);
        assert.equal(header(answer, 'content-length'), String(config.size));
      });

      test('“If the blob or manifest is not found in the repository, the response code MUST be `404 Not Found`” (suite: HEAD request to nonexistent manifest should return 404; HEAD request to nonexistent blob should result in 404 response)', async () => {
        assertHeadOnly(await head(`/v2/${REPO}/manifests/${NONEXISTENT_MANIFEST}`), 404);
        assertHeadOnly(await head(`/v2/${REPO}/manifests/nosuchtag`), 404);
        assertHeadOnly(await head(`/v2/${REPO}/blobs/${DUMMY_DIGEST}`), 404);
      });
    });

    describe('Pulling blobs (end-2)', () => {
      test('“A GET request to an existing blob URL MUST provide the expected blob, with a response code that MUST be `200 OK`” (suite: GET request to existing blob URL should yield 200)', async () => {
        const answer = await get(`/v2/${REPO}/blobs/${config.digest}`);
        assert.equal(answer.statusCode, 200);
        assert.equal(answer.rawPayload.length, config.size);
        assert.equal(sha256Of(answer.rawPayload), config.digest);
      });

      test('“A successful response MUST contain the digest of the uploaded blob in the header `Docker-Content-Digest`. If present, the value of this header MUST be a digest matching that of the response body”', async () => {
        const answer = await get(`/v2/${REPO}/blobs/${config.digest}`);
        assert.equal(header(answer, 'docker-content-digest'), sha256Of(answer.rawPayload));
      });

      test('“If the blob is not found in the repository, the response code MUST be `404 Not Found`” (suite: GET nonexistent blob should result in 404 response)', async () => {
        assertSpecError(await get(`/v2/${REPO}/blobs/${DUMMY_DIGEST}`), 404, 'BLOB_UNKNOWN');
        assertSpecError(await get(`/v2/conformance/nobody/blobs/${DUMMY_DIGEST}`), 404, 'NAME_UNKNOWN');
      });

      test('“A registry SHOULD support the `Range` request header in accordance with RFC 9110” → 206 and the bytes asked for', async () => {
        const answer = await get(`/v2/${REPO}/blobs/${config.digest}`, { range: 'bytes=0-9' });
        assert.equal(answer.statusCode, 206);
        assert.equal(header(answer, 'content-range'), `bytes 0-9/${config.size}`);
        assert.equal(answer.rawPayload.length, 10);
      });

      test('a blob digest that is not a digest → 400 DIGEST_INVALID, as distribution and zot answer it (the spec asks 400 for “a `<digest>` with an invalid syntax” of referrers)', async () => {
        for (const digest of ['sha256:abc', `md5:${'0'.repeat(32)}`, 'latest']) {
          assertSpecError(await get(`/v2/${REPO}/blobs/${digest}`), 400, 'DIGEST_INVALID');
        }
      });
    });

    describe('Listing tags (end-8a, end-8b)', () => {
      type TagList = { name: string; tags: string[] };
      const tags = async (app_: FastifyInstance, query = '') => {
        const answer = await app_.inject({ method: 'GET', url: `/v2/${REPO}/tags/list${query}` });
        assert.equal(answer.statusCode, 200, answer.body);
        return { body: answer.json<TagList>(), link: header(answer, 'link') };
      };
      const next = (query: string) => `</v2/${REPO}/tags/list${query}>; rel="next"`;

      test('“Assuming a repository is found, this request MUST return a `200 OK` response code”, with “a json body in the following format” {name, tags} (suite: GET request to list tags should yield 200 response)', async () => {
        const { body, link } = await tags(app);
        assert.deepEqual(body, { name: REPO, tags: TAGS });
        assert.equal(link, undefined);
      });

      test('“the tags MUST be in lexical (i.e. case-insensitive alphanumeric order) or "ASCIIbetical" (Go’s `sort.Strings`) order”: byte order', async () => {
        const { body } = await tags(app);
        assert.deepEqual(body.tags, [...body.tags].sort());
      });

      test('“The list of tags MAY be empty if there are no tags on the repository”', async () => {
        const answer = await get('/v2/conformance/untagged/tags/list');
        assert.equal(answer.statusCode, 200);
        assert.deepEqual(answer.json(), { name: 'conformance/untagged', tags: [] });
      });

      test('“Otherwise, the response MUST include `<int>` results”, and a `Link` header “set according to RFC5988 with the Relation Type `rel="next"`” (suite: GET number of tags should be limitable by `n` query parameter)', async () => {
        const { body, link } = await tags(app, '?n=3');
        assert.deepEqual(body.tags, TAGS.slice(0, 3));
        assert.equal(link, next(`?n=3&last=${TAGS[2] ?? ''}`));
      });

      test('“The response to such a request MAY return fewer than `<int>` results, but only when the total number of tags attached to the repository is less than `<int>` or a `Link` header is provided”', async () => {
        const all = await tags(app, '?n=100');
        assert.deepEqual(all.body.tags, TAGS);
        assert.equal(all.link, undefined);
        // More than a page holds (tags.maxPageSize 2): fewer, with a Link.
        const capped = await tags(smallPages, '?n=100');
        assert.deepEqual(capped.body.tags, TAGS.slice(0, 2));
        assert.equal(capped.link, next(`?n=2&last=${TAGS[1] ?? ''}`));
      });

      test('“When `n` is zero, this endpoint MUST return an empty list, and MUST NOT include a `Link` header”', async () => {
        for (const query of ['?n=0', `?n=0&last=${TAGS[0] ?? ''}`]) {
          const { body, link } = await tags(app, query);
          assert.deepEqual(body, { name: REPO, tags: [] }, query);
          assert.equal(link, undefined, query);
        }
      });

      test('“A request of this sort will return up to `<int>` tags, beginning non-inclusively with `<tagname>`” (suite: GET start of tag is set by `last` query parameter)', async () => {
        const { body, link } = await tags(app, '?n=2&last=tagtest0');
        assert.deepEqual(body.tags, ['test0', 'test1']);
        assert.equal(link, next('?n=2&last=test1'));
      });

      test('“When using the `last` query parameter, the `n` parameter is OPTIONAL”', async () => {
        const { body, link } = await tags(app, '?last=test1');
        assert.deepEqual(body.tags, ['test2', 'test3']);
        assert.equal(link, undefined);
      });

      test('following each `Link` lists every tag once, in order, and the last page has none', async () => {
        const seen: string[] = [];
        let query: string | undefined = '?n=2';
        while (query !== undefined) {
          const page: { body: TagList; link: string | undefined } = await tags(app, query);
          seen.push(...page.body.tags);
          query =
            page.link === undefined ? undefined : /^<[^?>]+(\?[^>]+)>; rel="next"$/.exec(page.link)?.[1];
          if (page.link !== undefined) assert.ok(query, `a Link that is not <url>; rel="next": ${page.link}`);
        }
        assert.deepEqual(seen, TAGS);
      });

      test('a repository that is not found → 404 NAME_UNKNOWN (end-8a’s failure)', async () => {
        assertSpecError(await get('/v2/conformance/nobody/tags/list'), 404, 'NAME_UNKNOWN');
      });
    });

    describe('Listing referrers (end-12a, end-12b)', () => {
      type Index = { schemaVersion: number; mediaType: string; manifests: Record<string, unknown>[] };
      const referrers = (digest: string, query = '') =>
        get(`/v2/conformance/signed/referrers/${digest}${query}`);
      /** conformance/refs' five referrers, each with the artifactType the spec derives for it, and its annotations. */
      const assertSpecReferrers = (manifests: Record<string, unknown>[]): void => {
        const byDigest = new Map(manifests.map((entry) => [entry.digest, entry]));
        const expected = (descriptor: Descriptor, which: string, artifactType?: string) => ({
          mediaType: descriptor.mediaType,
          digest: descriptor.digest,
          size: descriptor.size,
          ...(artifactType === undefined ? {} : { artifactType }),
          annotations: { 'org.opencontainers.conformance.test': which },
        });
        assert.equal(byDigest.size, 5);
        assert.deepEqual(
          byDigest.get(refs.byConfig.digest),
          expected(refs.byConfig, 'by config', SBOM_CONFIG),
        );
        assert.deepEqual(byDigest.get(refs.byField.digest), expected(refs.byField, 'by field', SIGNATURE));
        assert.deepEqual(byDigest.get(refs.index.digest), expected(refs.index, 'index'));
        assert.deepEqual(
          byDigest.get(refs.emptyField.digest),
          expected(refs.emptyField, 'empty field', EMPTY_FIELD_CONFIG),
        );
        assert.deepEqual(byDigest.get(refs.emptyIndex.digest), expected(refs.emptyIndex, 'empty index'));
      };

      test('“If a query results in no matching referrers, an empty manifest list MUST be returned” (suite: GET request to nonexistent blob should result in empty 200 response)', async () => {
        const answer = await referrers(DUMMY_DIGEST);
        assert.equal(answer.statusCode, 200);
        // "The `Content-Type` header MUST be set to `application/vnd.oci.image.index.v1+json`."
        assert.equal(header(answer, 'content-type'), MT.ociIndex);
        assert.deepEqual(answer.json(), { schemaVersion: 2, mediaType: MT.ociIndex, manifests: [] });
      });

      test('“Upon success, the response MUST be a JSON body with an image index containing a list of descriptors”, with their `artifactType` and annotations (suite: GET request to existing blob should yield 200)', async () => {
        const answer = await referrers(fixtures.signed.image.digest);
        assert.equal(answer.statusCode, 200);
        assert.equal(header(answer, 'content-type'), MT.ociIndex);
        assert.deepEqual(answer.json<Index>().manifests, [fixtures.signed.referrer]);
      });

      test('“If filtering is requested and applied, the response MUST include a header `OCI-Filters-Applied: artifactType`” (suite: GET request to existing blob with filter should yield 200)', async () => {
        const matching = await referrers(
          fixtures.signed.image.digest,
          `?artifactType=${encodeURIComponent(fixtures.signed.artifactType)}`,
        );
        assert.equal(header(matching, 'oci-filters-applied'), 'artifactType');
        assert.equal(header(matching, 'content-type'), MT.ociIndex);
        assert.equal(matching.json<Index>().manifests.length, 1);
        const other = await referrers(
          fixtures.signed.image.digest,
          `?artifactType=${encodeURIComponent('application/vnd.example.sbom.v1')}`,
        );
        assert.equal(header(other, 'oci-filters-applied'), 'artifactType');
        assert.deepEqual(other.json<Index>().manifests, []);
      });

      test('“The descriptors MUST include an `artifactType` field that is set to the value of the `artifactType` in the image manifest or index, if present”; “If the `artifactType` is empty or missing in the image manifest, the value of `artifactType` MUST be set to the config descriptor `mediaType` value”; “If the `artifactType` is empty or missing in an index, the `artifactType` MUST be omitted”; “The descriptors MUST include annotations”', async () => {
        const answer = await get(`/v2/conformance/refs/referrers/${refs.subject.digest}`);
        assert.equal(answer.statusCode, 200);
        assertSpecReferrers(answer.json<Index>().manifests);
      });

      test('the same for a record written when derrick kept an empty `artifactType` (`""` in the record): the manifest decides', async () => {
        const answer = await get(`/v2/conformance/legacy/referrers/${refs.subject.digest}`);
        assert.equal(answer.statusCode, 200);
        assertSpecReferrers(answer.json<Index>().manifests);
        const filtered = await get(
          `/v2/conformance/legacy/referrers/${refs.subject.digest}?artifactType=${encodeURIComponent(EMPTY_FIELD_CONFIG)}`,
        );
        assert.deepEqual(
          filtered.json<Index>().manifests.map((entry) => entry.digest),
          [refs.emptyField.digest],
        );
      });

      test('an empty `artifactType` filter names no artifact type: no filter is applied, and no `OCI-Filters-Applied`', async () => {
        const answer = await get(`/v2/conformance/refs/referrers/${refs.subject.digest}?artifactType=`);
        assert.equal(answer.statusCode, 200);
        assert.equal(header(answer, 'oci-filters-applied'), undefined);
        assertSpecReferrers(answer.json<Index>().manifests);
      });

      test('an artifactType filter applies to the derived artifactType too (a config media type)', async () => {
        const answer = await get(
          `/v2/conformance/refs/referrers/${refs.subject.digest}?artifactType=${encodeURIComponent(SBOM_CONFIG)}`,
        );
        assert.equal(header(answer, 'oci-filters-applied'), 'artifactType');
        assert.deepEqual(
          answer.json<Index>().manifests.map((entry) => entry.digest),
          [refs.byConfig.digest],
        );
      });

      test('“If the request is invalid, such as a `<digest>` with an invalid syntax, a `400 Bad Request` MUST be returned”', async () => {
        for (const digest of ['sha256:abc', 'nope', `md5:${'0'.repeat(32)}`]) {
          assertSpecError(await referrers(digest), 400, 'DIGEST_INVALID');
        }
      });

      test('“If the registry supports the referrers API, the registry MUST NOT return a `404 Not Found` to a referrers API requests”: a repository that does not exist → 200 and an empty image index, filtered or not (suite, main branch: TestEmptyReferrers, in a repository nothing was pushed to)', async () => {
        const url = `/v2/conformance/nobody/referrers/${DUMMY_DIGEST}`;
        for (const [query, filter] of [
          ['', undefined],
          [`?artifactType=${encodeURIComponent(SIGNATURE)}`, 'artifactType'],
        ] as const) {
          const answer = await get(url + query);
          assert.equal(answer.statusCode, 200, answer.body);
          // "The `Content-Type` header MUST be set to `application/vnd.oci.image.index.v1+json`."
          assert.equal(header(answer, 'content-type'), MT.ociIndex);
          assert.deepEqual(answer.json(), { schemaVersion: 2, mediaType: MT.ociIndex, manifests: [] });
          assert.equal(header(answer, 'oci-filters-applied'), filter, query);
          assertApiVersion(answer);
          const headOnly = await head(url + query);
          assertHeadOnly(headOnly, 200);
          assert.equal(header(headOnly, 'content-type'), MT.ociIndex);
        }
      });

      test('“Assuming a repository is found, this request MUST return a `200 OK` response code”: found or not, a referrers request is 200; a record that cannot be read is still 500', async () => {
        for (const url of [
          `/v2/${REPO}/referrers/${fixtures.single.digest}`,
          `/v2/conformance/untagged/referrers/${DUMMY_DIGEST}`,
          `/v2/conformance/nobody/referrers/${fixtures.single.digest}`,
        ]) {
          const answer = await get(url);
          assert.equal(answer.statusCode, 200, url);
          assert.deepEqual(answer.json<Index>().manifests, [], url);
        }
        assertOciError(await get(`/v2/conformance/broken/referrers/${DUMMY_DIGEST}`), 500, 'UNKNOWN');
      });
    });

    describe('Error codes', () => {
      const errors = (): [string, string, number, string][] => [
        ['GET', `/v2/${REPO}/manifests/${NONEXISTENT_MANIFEST}`, 404, 'MANIFEST_UNKNOWN'],
        ['GET', `/v2/${REPO}/manifests/nosuchtag`, 404, 'MANIFEST_UNKNOWN'],
        ['GET', `/v2/${REPO}/blobs/${DUMMY_DIGEST}`, 404, 'BLOB_UNKNOWN'],
        ['GET', `/v2/${REPO}/blobs/sha256:abc`, 400, 'DIGEST_INVALID'],
        ['GET', '/v2/conformance/nobody/tags/list', 404, 'NAME_UNKNOWN'],
        ['GET', '/v2/Conformance/manifests/latest', 400, 'NAME_INVALID'],
        ['DELETE', `/v2/${REPO}/manifests/latest`, 405, 'UNSUPPORTED'],
      ];

      test('“If the response body is in JSON format, it MUST have the following format” {errors: [{code, message, detail}]}, and “The `code` field MUST be one of the following”', async () => {
        for (const [method, url, status, code] of errors()) {
          const answer = await app.inject({ method: method as 'GET', url });
          assertSpecError(answer, status, code);
          // "The `code` field MUST be a unique identifier, containing only uppercase alphabetic characters and
          // underscores. The `message` field is OPTIONAL, and if present, it SHOULD be a human readable string"
          const [error] = (JSON.parse(answer.body) as { errors: { code: string; message: string }[] }).errors;
          assert.match(error?.code ?? '', /^[A-Z_]+$/);
          assert.ok((error?.message.length ?? 0) > 0, `${url}: an empty message`);
        }
      });

      test('“A `4XX` response code from the registry MAY return a body in any format”: a 4xx with no code of the spec’s (distribution’s PAGINATION_NUMBER_INVALID and RANGE_INVALID) has no JSON body, but the code and a message as plain text', async () => {
        const page = await get(`/v2/${REPO}/tags/list?n=-1`);
        const range = await get(`/v2/${REPO}/blobs/${config.digest}`, { range: 'bytes=99999999-' });
        assert.equal(page.statusCode, 400);
        assert.equal(range.statusCode, 416);
        for (const answer of [page, range]) {
          assertApiVersion(answer);
          assert.equal(header(answer, 'content-type'), 'text/plain; charset=utf-8');
          assert.match(answer.body, /^(PAGINATION_NUMBER_INVALID|RANGE_INVALID): .+\n$/);
        }
        // RFC 9110 §15.5.17: a 416 to a byte-range request SHOULD carry Content-Range with the current length.
        assert.equal(header(range, 'content-range'), `bytes */${config.size}`);
      });

      test('every 4xx code derrick answers with a JSON body is one the spec lists (or TAG_INVALID, which derrick never sends: “The client MAY encounter error codes targeting Docker schema1 manifests, such as `TAG_INVALID`”)', () => {
        for (const [code, { status }] of Object.entries(ERROR_CODES)) {
          if (status >= 500 || !hasJsonBody(code as ErrorCode) || code === 'TAG_INVALID') continue;
          assert.ok(
            SPEC_CODES.includes(code),
            `${code} is answered as JSON but is not one of the spec's codes`,
          );
        }
      });

      test('a manifest digest that is not a digest → 404 with an OCI error body (suite: 400 response body should contain OCI-conforming JSON message, which takes 400 or 404)', async () => {
        const answer = await app.inject({
          method: 'GET',
          url: `/v2/${REPO}/manifests/sha256:totallywrong`,
          headers: { 'content-type': MT.ociManifest },
          payload: '{"invalid": "manifest"}',
        });
        assertSpecError(answer, 404, 'MANIFEST_UNKNOWN');
      });
    });

    describe('What derrick does not implement: push and content management', () => {
      test('“If tag deletion is disabled, the registry MUST respond with either a `400 Bad Request` or a `405 Method Not Allowed`” — and the same for manifests and blobs → 405 UNSUPPORTED', async () => {
        for (const url of [
          `/v2/${REPO}/manifests/latest`,
          `/v2/${REPO}/manifests/${fixtures.single.digest}`,
          `/v2/${REPO}/blobs/${config.digest}`,
        ]) {
          const answer = await app.inject({ method: 'DELETE', url });
          assertSpecError(answer, 405, 'UNSUPPORTED');
        }
      });

      test('a push (POST of an upload, PUT of a manifest) → 405 UNSUPPORTED, “the operation is unsupported”, with Allow: GET, HEAD', async () => {
        for (const [method, url] of [
          ['POST', `/v2/${REPO}/blobs/uploads/`],
          ['PUT', `/v2/${REPO}/manifests/latest`],
        ] as const) {
          const answer = await app.inject({
            method,
            url,
            payload: '{}',
            headers: { 'content-type': MT.ociManifest },
          });
          assertSpecError(answer, 405, 'UNSUPPORTED');
          assert.equal(header(answer, 'allow'), 'GET, HEAD');
        }
      });
    });
  });
