/**
 * `docker://` sources on registries without the referrers API: a small registry of our own on loopback (started
 * here) that answers the referrers API with 404, as distribution 2.8 does, or with its index when a test wants it.
 *
 * cosign's storage spec (specs/SIGNATURE_SPEC.md, "Tag-based Discovery"): "the digest of the object (of the form
 * `sha256:abcdef...`) is encoded into a tag name using the following rules: Replace the `:` character with a `-`;
 * Append the `.sig` suffix" — and cosign tags attestations `.att` and SBOMs `.sbom` the same way.
 *
 * The distribution spec 1.1, "Listing Referrers": "If the referrers API returns a 404, the client MUST fallback to
 * pulling the referrers tag schema. The response SHOULD be an image index with the same content that would be
 * expected from the referrers API. If the response to the referrers API is a 404, and the tag schema does not
 * return a valid image index, the client SHOULD assume there are no referrers to the manifest." The tag is
 * `<alg>-<ref>`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { openSource } from '../../src/publish/open-source.ts';
import { silentProgress } from '../../src/publish/progress.ts';
import { publish, type Destination } from '../../src/publish/publisher.ts';
import type { Repository } from '../../src/store/record.ts';
import { Tree } from '../../src/store/tree.ts';
import { tempDir } from '../helpers/cli.ts';
import { LayoutBuilder, MT, type Descriptor } from '../helpers/images.ts';

const scratch = tempDir('derrick-mirror-tag-schemes-');
const builder = new LayoutBuilder(path.join(scratch.dir, 'content'));
/** tag → digest, as the registry holds them. */
const tags = new Map<string, string>();
let referrersApi = false;
const asked: string[] = [];
let server: http.Server;
let address = '';

let image: Descriptor;
let index: Descriptor;
let children: Descriptor[];
let signature: Descriptor;
let attestation: Descriptor;
let indexSignature: Descriptor;
/** An OCI 1.1 artifact with the image as subject, listed by the tag schema's index `sha256-<hex>`. */
let sbom: Descriptor;
let schemaIndex: Descriptor;

const tagOf = (digest: string, suffix = ''): string => digest.replace(':', '-') + suffix;
const bytesOf = (digest: string): Buffer | undefined => {
  try {
    return readFileSync(path.join(builder.dir, 'blobs', 'sha256', digest.slice('sha256:'.length)));
  } catch {
    return undefined;
  }
};

/** A cosign-style signature: an image manifest whose one layer is a simple-signing payload, no subject. */
function cosignLike(subject: Descriptor, mediaType: string): Descriptor {
  const payload = builder.json(
    {
      critical: {
        image: { 'docker-manifest-digest': subject.digest },
        type: 'cosign container image signature',
      },
    },
    mediaType,
  );
  const config = builder.json(
    { architecture: '', os: '', rootfs: { type: 'layers', diff_ids: [] } },
    MT.ociConfig,
  );
  return builder.json(
    {
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config,
      layers: [
        { ...payload, annotations: { 'dev.cosignproject.cosign/signature': 'MEUCIQ-not-a-real-one' } },
      ],
    },
    MT.ociManifest,
  );
}

function answer(request: http.IncomingMessage, response: http.ServerResponse): void {
  const url = new URL(request.url ?? '/', 'http://x');
  asked.push(`${request.method ?? ''} ${url.pathname}`);
  const referrers = /^\/v2\/team\/app\/referrers\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
  if (referrers && referrersApi) {
    const listed = referrers[1] === image.digest ? [sbom] : [];
    response.setHeader('content-type', MT.ociIndex);
    response.end(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: listed }));
    return;
  }
  const manifest = /^\/v2\/team\/app\/manifests\/([^/]+)$/.exec(url.pathname);
  if (manifest) {
    const ref = manifest[1] ?? '';
    const digest = ref.startsWith('sha256:') ? ref : tags.get(ref);
    const bytes = digest === undefined ? undefined : bytesOf(digest);
    if (bytes) {
      response.setHeader('content-type', (JSON.parse(bytes.toString()) as { mediaType: string }).mediaType);
      response.setHeader('content-length', bytes.length);
      response.end(request.method === 'HEAD' ? undefined : bytes);
      return;
    }
  }
  const blob = /^\/v2\/team\/app\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
  const bytes = blob ? bytesOf(blob[1] ?? '') : undefined;
  if (bytes) {
    response.setHeader('content-length', bytes.length);
    response.end(bytes);
    return;
  }
  response.statusCode = 404;
  response.setHeader('content-type', 'application/json');
  response.end('{"errors":[{"code":"NOT_FOUND","message":"not found"}]}');
}

before(async () => {
  image = await builder.image({ files: { 'hello.txt': 'signed\n' } });
  children = [
    await builder.image({ platform: { os: 'linux', architecture: 'amd64' }, files: { 'a.txt': 'amd64\n' } }),
    await builder.image({ platform: { os: 'linux', architecture: 'arm64' }, files: { 'a.txt': 'arm64\n' } }),
  ];
  index = builder.index(children);
  signature = cosignLike(image, 'application/vnd.dev.cosign.simplesigning.v1+json');
  attestation = cosignLike(image, 'application/vnd.dsse.envelope.v1+json');
  indexSignature = cosignLike(index, 'application/vnd.dev.cosign.simplesigning.v1+json');
  sbom = builder.artifact(image, 'application/vnd.example.sbom.v1', 'sbom-bytes');
  schemaIndex = builder.index([sbom]);
  tags.set('1', image.digest);
  tags.set('multi', index.digest);
  tags.set(tagOf(image.digest, '.sig'), signature.digest);
  tags.set(tagOf(image.digest, '.att'), attestation.digest);
  tags.set(tagOf(index.digest, '.sig'), indexSignature.digest);
  tags.set(tagOf(image.digest), schemaIndex.digest);
  server = http.createServer(answer);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  scratch.cleanup();
});
beforeEach(() => {
  asked.length = 0;
  referrersApi = false;
});

let counter = 0;
async function mirror(ref: string, destination: Destination, allTags = false): Promise<Repository> {
  const tree = new Tree(path.join(scratch.dir, `data-${++counter}`));
  try {
    await publish({
      tree,
      openSource: () =>
        openSource(`docker://${address}/team/app${ref}`, tree.backend.scratchDir, undefined, undefined, {
          creds: undefined,
          tlsVerify: false,
          certDir: undefined,
        }),
      destinations: [destination],
      allTags,
      baseUrl: undefined,
      protected: undefined,
      lockTimeoutMs: 10_000,
      progress: silentProgress,
    });
    const lookup = await tree.readRecord(destination.name);
    assert.ok(lookup.found);
    return lookup.repository;
  } finally {
    await tree.backend.close();
  }
}

describe('docker:// from a registry without the referrers API', () => {
  test('cosign’s sha256-<hex>.sig and .att of the image come over under those same tags; a missing .sbom is none', async () => {
    const record = await mirror(':1', { name: 'mirror/app', tags: ['v1'] });
    assert.equal(record.tags.get('v1'), image.digest);
    assert.equal(record.tags.get(tagOf(image.digest, '.sig')), signature.digest);
    assert.equal(record.tags.get(tagOf(image.digest, '.att')), attestation.digest);
    assert.equal(record.tags.size, 3, [...record.tags.keys()].join(', '));
    assert.ok(asked.includes(`GET /v2/team/app/manifests/${tagOf(image.digest, '.sbom')}`));
  });

  test('the referrers tag schema: the index under sha256-<hex> lists a referrer, published untagged; the index itself is not', async () => {
    const record = await mirror(':1', { name: 'mirror/app', tags: ['v1'] });
    assert.equal(record.manifests.get(sbom.digest)?.subject, image.digest);
    assert.equal([...record.tags.values()].includes(sbom.digest), false);
    assert.equal(record.manifests.has(schemaIndex.digest), false);
    assert.equal(record.tags.has(tagOf(image.digest)), false);
  });

  test('--all-tags: the source’s tag, and the signatures under theirs', async () => {
    const record = await mirror(':1', { name: 'mirror/app', tags: [] }, true);
    assert.deepEqual(
      [...record.tags].sort(),
      [
        ['1', image.digest],
        [tagOf(image.digest, '.att'), attestation.digest],
        [tagOf(image.digest, '.sig'), signature.digest],
      ].sort(),
    );
  });

  test('an index: the signature of the index digest, and no signature tags asked for its children', async () => {
    const record = await mirror(':multi', { name: 'mirror/multi', tags: ['1'] });
    assert.equal(record.tags.get('1'), index.digest);
    assert.equal(record.tags.get(tagOf(index.digest, '.sig')), indexSignature.digest);
    for (const child of children)
      assert.equal(
        asked.some((line) => line.includes(`/manifests/${tagOf(child.digest, '.')}`)),
        false,
        child.digest,
      );
  });
});

describe('docker:// from a registry with the referrers API', () => {
  test('its referrers come from the API; no cosign tag and no tag schema index is asked for', async () => {
    referrersApi = true;
    const record = await mirror(':1', { name: 'mirror/app', tags: ['v1'] });
    assert.equal(record.manifests.get(sbom.digest)?.subject, image.digest);
    assert.deepEqual([...record.tags.keys()], ['v1']);
    assert.equal(
      asked.some((line) => line.includes(`/manifests/${tagOf(image.digest)}`)),
      false,
      asked.join('\n'),
    );
  });
});
