/**
 * Signatures and other referrers, mirrored with `derrick publish docker://…` (bin/derrick.js, the built CLI) from
 * real registries on loopback, started here, and pulled back through `derrick serve` with skopeo:
 *
 * - Debian's docker-registry (distribution 2.8), which has no referrers API: a signature pushed with skopeo under
 *   cosign's tag. cosign's storage spec (specs/SIGNATURE_SPEC.md, "Tag-based Discovery"): "the digest of the
 *   object (of the form `sha256:abcdef...`) is encoded into a tag name using the following rules: Replace the `:`
 *   character with a `-`; Append the `.sig` suffix." The mirror must answer that tag with the same manifest.
 * - derrick serving a tree, which has the referrers API: an OCI 1.1 artifact with a `subject`. The distribution
 *   spec 1.1, "Listing Referrers": "To fetch the list of referrers, perform a `GET` request to a path in the
 *   following format: `/v2/<name>/referrers/<digest>`" … "Upon success, the response MUST be a JSON body with an
 *   image index containing a list of descriptors. Each descriptor is of an image manifest or index in the same
 *   `<name>` namespace with a `subject` field that specifies the value of `<digest>`." The mirror's list must
 *   hold the upstream's referrer, same digest.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, runDerrick, tempDir } from '../helpers/cli.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.ts';
import {
  imageWithReferrerLayout,
  LayoutBuilder,
  MT,
  singleImageLayout,
  skopeoCopy,
  skopeoRawDigest,
} from '../helpers/images.ts';
import { derrickOk } from '../helpers/server.ts';

const BIN = path.join(REPO_ROOT, 'bin', 'derrick.js');
const scratch = tempDir('derrick-mirror-signatures-');
const dir = (name: string): string => path.join(scratch.dir, name);
const PLAIN = ['--tls-verify=false'];
let registry: DockerRegistry | undefined;
const servers: DerrickServer[] = [];

before(async () => {
  registry = await startDockerRegistry(scratch.dir);
});
after(async () => {
  for (const server of servers) await server.stop();
  await registry?.stop();
  scratch.cleanup();
});

async function serve(dataDir: string): Promise<DerrickServer> {
  const server = await startDerrickServer(dataDir, { args: ['--workers', '1'], bin: BIN });
  servers.push(server);
  return server;
}

/** A signature as cosign stores one: an image manifest whose one layer is a simple-signing JSON payload. */
function signatureLayout(layout: string, signed: string): void {
  const builder = new LayoutBuilder(layout);
  const payload = builder.json(
    {
      critical: {
        identity: { 'docker-reference': 'team/app' },
        image: { 'docker-manifest-digest': signed },
        type: 'cosign container image signature',
      },
      optional: null,
    },
    'application/vnd.dev.cosign.simplesigning.v1+json',
  );
  const config = builder.json(
    { architecture: '', os: '', config: {}, rootfs: { type: 'layers', diff_ids: [] } },
    MT.ociConfig,
  );
  const manifest = builder.json(
    {
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config,
      layers: [{ ...payload, annotations: { 'dev.cosignproject.cosign/signature': 'MEUCIQ-test' } }],
    },
    MT.ociManifest,
  );
  builder.add(manifest, 'sig').write();
}

describe('derrick publish docker://… from docker-registry 2.8 (no referrers API): cosign’s tag scheme', () => {
  test('the image and its sha256-<hex>.sig come over; through derrick serve, both answer with the upstream’s digests', async () => {
    const upstream = registry?.address ?? '';
    await singleImageLayout(dir('single'), 'latest', 'signed');
    await skopeoCopy(`oci:${dir('single')}:latest`, `docker://${upstream}/team/app:1`, [
      '--dest-tls-verify=false',
    ]);
    const image = await skopeoRawDigest(`docker://${upstream}/team/app:1`, PLAIN);
    const sigTag = `${image.digest.replace(':', '-')}.sig`;
    signatureLayout(dir('signature'), image.digest);
    await skopeoCopy(`oci:${dir('signature')}:sig`, `docker://${upstream}/team/app:${sigTag}`, [
      '--dest-tls-verify=false',
      '--preserve-digests',
    ]);
    const signature = await skopeoRawDigest(`docker://${upstream}/team/app:${sigTag}`, PLAIN);
    const referrersApi = await fetch(`http://${upstream}/v2/team/app/referrers/${image.digest}`);
    assert.equal(referrersApi.status, 404, 'docker-registry 2.8 has no referrers API');

    const dataDir = dir('data-cosign');
    const result = await runDerrick(
      ['publish', `docker://${upstream}/team/app:1`, 'mirror/app:1', '--data-dir', dataDir, ...PLAIN],
      { bin: BIN },
    );
    assert.equal(result.code, 0, result.stderr);
    const server = await serve(dataDir);
    const ours = await skopeoRawDigest(`docker://${server.host}/mirror/app:1`, PLAIN);
    assert.equal(ours.digest, image.digest);
    const ourSignature = await skopeoRawDigest(`docker://${server.host}/mirror/app:${sigTag}`, PLAIN);
    assert.equal(ourSignature.digest, signature.digest);
    assert.equal(ourSignature.raw, signature.raw);
  });
});

describe('derrick publish docker://… from derrick serve (referrers API): an OCI 1.1 referrer', () => {
  test('the mirror’s GET /v2/<name>/referrers/<digest> lists the upstream’s referrer, with its digest', async () => {
    const upstreamData = dir('upstream-data');
    const { image, artifact } = await imageWithReferrerLayout(dir('referred'));
    await derrickOk(upstreamData, ['publish', `oci:${dir('referred')}:latest`, 'team/app:1']);
    const upstream = await serve(upstreamData);
    const theirs = (await (await fetch(`${upstream.url}/v2/team/app/referrers/${image.digest}`)).json()) as {
      manifests: { digest: string }[];
    };
    assert.deepEqual(
      theirs.manifests.map((entry) => entry.digest),
      [artifact.digest],
    );

    const dataDir = dir('data-referrers');
    const result = await runDerrick(
      ['publish', `docker://${upstream.host}/team/app:1`, 'mirror/app:1', '--data-dir', dataDir, ...PLAIN],
      { bin: BIN },
    );
    assert.equal(result.code, 0, result.stderr);
    const server = await serve(dataDir);
    const answer = await fetch(`${server.url}/v2/mirror/app/referrers/${image.digest}`);
    assert.equal(answer.status, 200);
    const ours = (await answer.json()) as { manifests: { digest: string; artifactType?: string }[] };
    assert.deepEqual(
      ours.manifests.map((entry) => entry.digest),
      [artifact.digest],
    );
    assert.equal(ours.manifests[0]?.artifactType, 'application/vnd.example.signature.v1');
    const pulled = await skopeoRawDigest(`docker://${server.host}/mirror/app@${artifact.digest}`, PLAIN);
    assert.equal(pulled.digest, artifact.digest);
  });
});
