/**
 * The ordering trap on the wire (issue 10; distribution #4891, #4903, on S3 only): the byte order of record keys
 * is not the order of repository names — `a.json` sorts after `a-b.json`, but the name `a` sorts before `a-b`, and
 * `a/b` (a key below `a/`) sorts after `a.b` but before `a0`. Every page of `_catalog`, for every `n` and every
 * `last` (names and the strings between them), is checked on both back ends against ONE reference order: the
 * names sorted by compareStrings.
 *
 * Docker Registry HTTP API V2 (distribution docs/spec/api.md, "Listing Repositories"; the OCI distribution-spec
 * defines no `_catalog`, and orders tags/list the same way, "ordered lexically"): "The catalog result set is
 * represented abstractly as a lexically sorted list, where the position in that list can be specified by the query
 * term `last`. The entries in the response start _after_ the term specified by `last`, up to `n` entries."
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { compareStrings, emptyRepository } from '../../src/store/record.ts';
import { BACKENDS } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import {
  assertApiVersion,
  buildFixtures,
  header,
  openTree,
  publishInto,
  serveTree,
  suiteTree,
} from '../helpers/server.ts';

/**
 * Names built to hit the trap: every separator the grammar allows right after `a` (`-`, `--`, `.`, `_`, `__`,
 * `/`), names that end in `.json` beside the name without it (`a` is the key `a.json`, `a.json` the key
 * `a.json.json`), namespaces with and without a record of their own, nested three deep, and what sorts just after
 * (`a0`, `ab`, `b`).
 */
const NAMES = [
  'a',
  'a-b',
  'a--b',
  'a-b/c',
  'a.b',
  'a.b/c',
  'a.json',
  'a.jsonx',
  'a/b',
  'a/b-c',
  'a/b.c',
  'a/b/c',
  'a/b0',
  'a/json',
  'a0',
  'a0/a',
  'a_b',
  'a__b',
  'ab',
  'b',
  'j.json',
  'n/m/o',
  'n/m-o',
  'n0',
];
const REFERENCE = [...NAMES].sort(compareStrings);

/** `last` values: every name, and strings that are no name but sort between them (`a-`, `a.`, `a/`, `a0`…). */
const LASTS = [...NAMES, '', 'a-', 'a.', 'a/', 'a.j', 'a.json/', 'a/b/', 'a/z', 'n', 'n/', 'n/m', 'z', '0'];

/** What the reference order says a page after `last` of size `n` holds, and whether more remain. */
function expectedPage(last: string | undefined, n: number): { names: string[]; more: boolean } {
  const after = last === undefined ? REFERENCE : REFERENCE.filter((name) => compareStrings(name, last) > 0);
  return { names: after.slice(0, n), more: after.length > n };
}

const scratch = tempDir('derrick-catalog-order-');
after(() => scratch.cleanup());

for (const backend of BACKENDS)
  describe(`_catalog order (${backend})`, () => {
    let app!: FastifyInstance;
    let removeTree!: () => Promise<void>;

    before(async () => {
      const fixtures = await buildFixtures(path.join(scratch.dir, `layout-${backend}`));
      const { spot, remove } = await suiteTree(backend);
      removeTree = remove;
      await publishInto(spot, `oci:${fixtures.dir}:single`, ['template:latest']);
      const tree = await openTree(spot);
      const lookup = await tree.readRecord('template');
      assert.ok(lookup.found);
      const { tags, manifests, blobs } = lookup.repository;
      for (const name of NAMES) await tree.writeRecord({ ...emptyRepository(name), tags, manifests, blobs });
      await tree.backend.delete('v2/app/template.json');
      await tree.backend.close();
      app = await serveTree(spot);
    });

    after(async () => {
      await app.close();
      await removeTree();
    });

    async function page(url: string): Promise<{ names: string[]; link: string | undefined }> {
      const response = await app.inject({ method: 'GET', url });
      assert.equal(response.statusCode, 200, `${url}: ${response.body}`);
      assertApiVersion(response);
      const body = response.json<{ repositories: string[] }>();
      return { names: body.repositories, link: header(response, 'link') };
    }

    test('_catalog without n → every name once, in the reference order', async () => {
      assert.deepEqual((await page('/v2/_catalog')).names, REFERENCE);
    });

    test('_catalog?n=<every n>, following the Links → each page is the next n of the reference order, a Link exactly when more remain', async () => {
      for (let n = 1; n <= REFERENCE.length + 1; n++) {
        let url: string | undefined = `/v2/_catalog?n=${n}`;
        let last: string | undefined;
        const seen: string[] = [];
        while (url !== undefined) {
          const got = await page(url);
          const want = expectedPage(last, n);
          assert.deepEqual(got.names, want.names, url);
          assert.equal(got.link !== undefined, want.more, `${url}: Link ${got.link}`);
          seen.push(...got.names);
          last = got.names.at(-1);
          url = got.link === undefined ? undefined : /^<([^>]+)>; rel="next"$/.exec(got.link)?.[1];
          if (got.link !== undefined) assert.ok(url, `malformed Link ${got.link}`);
        }
        assert.deepEqual(seen, REFERENCE, `n=${n}`);
      }
    });

    test('_catalog?n=<n>&last=<every name and every string between them> → the n names after last in the reference order', async () => {
      for (const last of LASTS)
        for (const n of [1, 2, 3, REFERENCE.length]) {
          const url = `/v2/_catalog?n=${n}&last=${encodeURIComponent(last)}`;
          const got = await page(url);
          const want = expectedPage(last, n);
          assert.deepEqual(got.names, want.names, url);
          assert.equal(got.link !== undefined, want.more, `${url}: Link ${got.link}`);
        }
    });
  });
