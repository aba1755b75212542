/**
 * The request path and its grammar, generated: every valid name, tag and digest is accepted and comes back out of
 * parsePath; anything else is a RegistryError with a code of the error table; and no name or digest that gets
 * through yields a file outside the tree.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parsePath, type Reference, type Route } from '../../src/http/paths.ts';
import { DIGEST_PATTERN, parseDigest } from '../../src/oci/digest.ts';
import { ERROR_CODES, RegistryError } from '../../src/oci/errors.ts';
import { MANIFEST_MEDIA_TYPES } from '../../src/oci/media-types.ts';
import { MAX_NAME_LENGTH, NAME_PATTERN, validateName, validateTag } from '../../src/oci/names.ts';
import { TreeLayout } from '../../src/store/layout.ts';
import { blobUrlPath } from '../../src/store/keys.ts';
import { fc, holds } from '../helpers/property.ts';
import { anyText, digest, hostileText, repositoryName, tag } from './grammar.ts';

const file = import.meta.filename;
const layout = new TreeLayout('/srv/derrick-data');

/** Whether `inner` is `outer` or below it. */
function inside(outer: string, inner: string): boolean {
  const relative = path.relative(outer, inner);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
}

/** Every file the layout would build for a route's name and digest stays in its own directory of the tree. */
function assertInsideTree(route: Route): void {
  if (route.kind === 'base' || route.kind === 'catalog') return;
  assert.equal(validateName(route.name).ok, true, `route name ${JSON.stringify(route.name)}`);
  assert.ok(inside(layout.appDir, layout.recordPath(route.name)));
  const web = layout.repoWebDir(route.name);
  assert.ok(inside(layout.webDir, web));
  const digests =
    route.kind === 'manifest' ? [route.reference.digest] : route.kind === 'tags' ? [] : [route.digest];
  for (const value of digests) {
    if (value === undefined) continue;
    assert.match(value, DIGEST_PATTERN);
    assert.ok(inside(layout.contentDir, layout.contentPath(value)));
    assert.ok(inside(web, layout.blobLinkPath(route.name, value)));
    for (const mediaType of MANIFEST_MEDIA_TYPES)
      assert.ok(inside(web, layout.manifestLinkPath(route.name, mediaType, value)));
  }
  if (route.kind === 'manifest' && route.reference.tag !== undefined)
    assert.equal(validateTag(route.reference.tag).ok, true);
}

/** parsePath's outcome: a route, or the RegistryError it threw (anything else fails the property). */
function outcome(pathname: string): Route | RegistryError {
  try {
    return parsePath(pathname);
  } catch (error) {
    if (!(error instanceof RegistryError)) throw error;
    assert.ok(error.code in ERROR_CODES, `unknown code ${error.code}`);
    assert.equal(error.status, ERROR_CODES[error.code].status);
    return error;
  }
}

const reference: fc.Arbitrary<Reference> = fc.oneof(
  tag.map((value) => ({ tag: value })),
  digest.map((value) => ({ digest: value })),
);

describe('the repository name, tag and digest grammar (generated)', () => {
  test('every name built by the grammar is valid, and only names the schema pattern accepts are', async () => {
    await holds(
      fc.property(repositoryName, (name) => {
        assert.deepEqual(validateName(name), { ok: true });
      }),
      { file },
    );
    await holds(
      fc.property(fc.oneof(repositoryName, anyText), (text) => {
        const schemaSays = NAME_PATTERN.test(text) && text.length <= MAX_NAME_LENGTH;
        assert.equal(validateName(text).ok, schemaSays);
      }),
      { file },
    );
  });

  test('every tag built by the grammar is valid, and nothing longer than 128 characters is', async () => {
    await holds(
      fc.property(tag, (value) => assert.deepEqual(validateTag(value), { ok: true })),
      { file },
    );
    await holds(
      fc.property(fc.oneof(tag, anyText), (text) => {
        if (validateTag(text).ok) assert.ok(text.length >= 1 && text.length <= 128 && !/[/:@]/.test(text));
      }),
      { file },
    );
  });

  test('a digest parses back into its algorithm and hex, and parseDigest accepts exactly the schema pattern', async () => {
    await holds(
      fc.property(digest, (value) => {
        const parsed = parseDigest(value);
        assert.ok(!('error' in parsed), value);
        assert.equal(`${parsed.algorithm}:${parsed.hex}`, value);
      }),
      { file },
    );
    await holds(
      fc.property(fc.oneof(digest, anyText), (text) => {
        assert.equal(!('error' in parseDigest(text)), DIGEST_PATTERN.test(text));
      }),
      { file },
    );
  });
});

describe('request paths (generated)', () => {
  test('the URL of every endpoint built from a valid name, tag or digest parses back into that name, tag or digest', async () => {
    await holds(
      fc.property(repositoryName, reference, digest, (name, ref, blob) => {
        const value = ref.tag ?? ref.digest;
        assert.deepEqual(parsePath(`/v2/${name}/manifests/${value}`), {
          kind: 'manifest',
          name,
          reference: ref,
        });
        assert.deepEqual(parsePath(`/v2/${name}/blobs/${blob}`), { kind: 'blob', name, digest: blob });
        assert.deepEqual(parsePath(`/v2/${name}/referrers/${blob}`), {
          kind: 'referrers',
          name,
          digest: blob,
        });
        assert.deepEqual(parsePath(`/v2/${name}/tags/list`), { kind: 'tags', name });
      }),
      { file },
    );
  });

  test('any path is a route inside the tree or a RegistryError with a code of the error table', async () => {
    const pathname = fc.oneof(
      anyText,
      hostileText.map((text) => `/v2/${text}`),
      fc
        .tuple(
          fc.oneof(repositoryName, hostileText),
          fc.constantFrom('manifests', 'blobs', 'referrers', 'tags'),
          fc.oneof(tag, digest, hostileText, fc.constant('list')),
        )
        .map(([name, endpoint, value]) => `/v2/${name}/${endpoint}/${value}`),
    );
    await holds(
      fc.property(pathname, (text) => {
        const result = outcome(text);
        if (!(result instanceof RegistryError)) assertInsideTree(result);
      }),
      { file, runs: 3000 },
    );
  });

  test('a path with a dot-dot segment, an encoded character or NUL anywhere after /v2/ is refused', async () => {
    const poison = fc.constantFrom('..', '%2e%2e', '%2E%2e', '%2f', '%00', '\0', '%');
    await holds(
      fc.property(repositoryName, poison, fc.nat(), reference, (name, bad, at, ref) => {
        const parts = name.split('/');
        parts.splice(at % (parts.length + 1), 0, bad);
        const result = outcome(`/v2/${parts.join('/')}/manifests/${ref.tag ?? ref.digest}`);
        assert.ok(result instanceof RegistryError);
      }),
      { file },
    );
  });
});

describe('tree paths built from names (generated)', () => {
  test('a name that passes validation yields a record, web directory and links inside their directories of the tree', async () => {
    await holds(
      fc.property(repositoryName, digest, (name, value) => {
        assertInsideTree({ kind: 'blob', name, digest: value });
        assert.ok(layout.recordPath(name).endsWith('.json'));
      }),
      { file },
    );
  });

  test('any other name or digest is refused by the layout before it becomes a path', async () => {
    await holds(
      fc.property(anyText, (text) => {
        if (!validateName(text).ok) {
          assert.throws(() => layout.recordPath(text));
          assert.throws(() => layout.repoWebDir(text));
        }
        if ('error' in parseDigest(text)) {
          assert.throws(() => layout.contentPath(text));
          assert.throws(() => layout.blobLinkPath('a', text));
          assert.throws(() => blobUrlPath(text));
        }
      }),
      { file },
    );
  });
});
