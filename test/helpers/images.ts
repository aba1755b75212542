/**
 * Test images, built offline by the suite itself: single images, multi-platform indexes, artifacts with a
 * subject, Docker schema 2 images (through skopeo --format v2s2), docker-archive tarballs (through skopeo).
 */
import path from 'node:path';
import { LayoutBuilder, MT, type Descriptor } from '../../scripts/oci-builder.ts';
import { run } from './cli.ts';

export { LayoutBuilder, MT, type Descriptor };

/** An OCI layout with one single-platform image named `ref`. */
export async function singleImageLayout(dir: string, ref = 'latest', text = 'hello'): Promise<Descriptor> {
  const builder = new LayoutBuilder(dir);
  const image = await builder.image({ files: { 'hello.txt': `${text}\n` } });
  builder.add(image, ref).write();
  return image;
}

/** An OCI layout with a linux/amd64 + linux/arm64/v8 index named `ref`. */
export async function multiPlatformLayout(
  dir: string,
  ref = 'latest',
): Promise<{ index: Descriptor; children: Descriptor[] }> {
  const builder = new LayoutBuilder(dir);
  const children = [
    await builder.image({
      platform: { os: 'linux', architecture: 'amd64' },
      files: { 'arch.txt': 'amd64\n' },
    }),
    await builder.image({
      platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
      files: { 'arch.txt': 'arm64\n' },
    }),
  ];
  const index = builder.index(children);
  builder.add(index, ref).write();
  return { index, children };
}

/** An OCI layout with an image named `ref` and an artifact (a fake signature) whose subject is that image. */
export async function imageWithReferrerLayout(
  dir: string,
  ref = 'latest',
): Promise<{ image: Descriptor; artifact: Descriptor }> {
  const builder = new LayoutBuilder(dir);
  const image = await builder.image({ files: { 'hello.txt': 'signed\n' } });
  const artifact = builder.artifact(image, 'application/vnd.example.signature.v1', 'signature-bytes', {
    'org.example.signer': 'test',
  });
  builder.add(image, ref).add(artifact).write();
  return { image, artifact };
}

/** Copies an OCI layout image into another transport with skopeo (e.g. `dir:`, `docker-archive:`), as v2s2. */
export async function skopeoCopy(from: string, to: string, extra: string[] = []): Promise<void> {
  await run('skopeo', ['copy', '--quiet', ...extra, from, to]);
}

/** The digest of the first manifest an OCI layout's index.json names (what `skopeo copy … oci:<dir>` wrote). */
export async function layoutDigest(dir: string): Promise<string | undefined> {
  const { readFile } = await import('node:fs/promises');
  const index = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  return index.manifests[0]?.digest;
}

/** `skopeo inspect --raw` of a source, and the digest of exactly those bytes. */
export async function skopeoRawDigest(
  source: string,
  extra: string[] = [],
): Promise<{ raw: string; digest: string }> {
  const { stdout } = await run('skopeo', ['inspect', '--raw', ...extra, source]);
  const { digestOf } = await import('./cli.ts');
  return { raw: stdout, digest: digestOf(stdout) };
}

export function joinPath(...parts: string[]): string {
  return path.join(...parts);
}

/**
 * An OCI layout named `ref` whose one layer is `bytes` of random data (an uncompressed layer, written in chunks:
 * no tar, no gzip, nothing held in memory), so that publishing it takes long enough to interrupt mid-copy.
 */
export async function largeImageLayout(dir: string, bytes: number, ref = 'latest'): Promise<Descriptor> {
  const { createHash, randomBytes } = await import('node:crypto');
  const { createWriteStream, promises: fs } = await import('node:fs');
  const builder = new LayoutBuilder(dir);
  const temp = path.join(dir, 'blobs', 'layer.tmp');
  const hash = createHash('sha256');
  const output = createWriteStream(temp);
  const chunk = 4 * 1024 * 1024;
  for (let written = 0; written < bytes; written += chunk) {
    const piece = randomBytes(Math.min(chunk, bytes - written));
    hash.update(piece);
    if (!output.write(piece)) await new Promise<void>((resolve) => output.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) =>
    output.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
  const hex = hash.digest('hex');
  await fs.rename(temp, path.join(dir, 'blobs', 'sha256', hex));
  const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${hex}`, size: bytes };
  const config = builder.json(
    { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] } },
    MT.ociConfig,
  );
  const manifest = builder.json(
    { schemaVersion: 2, mediaType: MT.ociManifest, config, layers: [layer] },
    MT.ociManifest,
  );
  builder.add(manifest, ref).write();
  return manifest;
}
