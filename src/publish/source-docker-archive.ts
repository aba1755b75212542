/**
 * `docker-archive:<file>[:<name:tag>|:@<index>]` — a `docker save` tarball (optionally gzipped), read once as a
 * stream: every file is hashed into staging as it passes (nothing is extracted to a tree), then manifest.json
 * says which staged files are configs and layers. The Docker schema 2 manifest is built exactly as skopeo and
 * containers/image build it, so the digest derrick serves is the one `skopeo inspect --raw` shows.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { z } from 'zod';
import { DOCKER_MANIFEST, type ManifestMediaType } from '../oci/media-types.ts';
import { sha256Digest } from '../oci/digest.ts';
import { stageStream, type StagedFile } from '../store/content.ts';
import { ioReason, SourceError, type BlobBytes, type ImageSource, type SourceManifest } from './source.ts';

const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
/** containers/image labels docker-archive layers this way even though they are uncompressed tars. */
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const MAX_JSON_BYTES = 16 * 1024 * 1024; // 16 MiB: no config or manifest.json is near this

const archiveManifest = z.array(
  z.object({
    Config: z.string(),
    RepoTags: z.array(z.string()).nullable().optional(),
    Layers: z.array(z.string()),
  }),
);
const imageConfig = z.object({ rootfs: z.object({ diff_ids: z.array(z.string()) }) });

/** A Docker reference as Docker writes RepoTags: `busybox` → `docker.io/library/busybox:latest`. */
export function normalizeDockerReference(reference: string): string {
  const slash = reference.indexOf('/');
  const first = slash === -1 ? '' : reference.slice(0, slash);
  const hasHost = first.includes('.') || first.includes(':') || first === 'localhost';
  let full = hasHost ? reference : slash === -1 ? `docker.io/library/${reference}` : `docker.io/${reference}`;
  const lastSlash = full.lastIndexOf('/');
  if (!full.slice(lastSlash + 1).includes(':') && !full.includes('@')) full += ':latest';
  return full;
}

function normalize(entryName: string): string {
  return path.posix
    .normalize(entryName)
    .replace(/^(\.\/)+/, '')
    .replace(/^\/+/, '');
}

async function peekGzip(file: string): Promise<boolean> {
  const handle = await fs.open(file, 'r');
  try {
    const { bytesRead, buffer } = await handle.read(Buffer.alloc(2), 0, 2, 0);
    return bytesRead === 2 && buffer[0] === 0x1f && buffer[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

export async function openDockerArchive(
  scratchDir: string,
  file: string,
  ref: string | undefined,
  onBytes?: (bytes: number) => void,
  signal?: AbortSignal,
): Promise<ImageSource> {
  const stat = await fs.stat(file).catch((error: unknown) => {
    throw new SourceError(`cannot read ${file}: ${ioReason(error)}`);
  });
  if (!stat.isFile())
    throw new SourceError(`${file} is not a file (docker-archive:<file> is a docker save tarball)`);

  const staged = new Map<string, StagedFile>();
  const links = new Map<string, string>();
  const cleanup = async (): Promise<void> => {
    await Promise.all([...staged.values()].map((entry) => fs.rm(entry.path, { force: true })));
  };

  // Open once, up front: a file we cannot read is the source's problem, said as such.
  const handle = await fs.open(file, 'r').catch((error: unknown) => {
    throw new SourceError(`cannot read ${file}: ${ioReason(error)}`);
  });
  const input: Readable = handle.createReadStream();
  try {
    const gzip = await peekGzip(file);
    const extract = tar.extract();
    const piped = gzip ? input.pipe(createGunzip()) : input;
    piped.on('error', (error) => extract.destroy(error));
    input.on('error', (error) => extract.destroy(error));
    piped.pipe(extract);
    for await (const entry of extract) {
      const name = normalize(entry.header.name);
      if (entry.header.type === 'file' || entry.header.type === 'contiguous-file') {
        const earlier = staged.get(name);
        staged.set(
          name,
          await stageStream(scratchDir, entry as AsyncIterable<Uint8Array>, 'sha256:', onBytes, signal),
        );
        // A name seen twice: the later entry wins (as tar extracts it), and the earlier file is nobody's.
        if (earlier) await fs.rm(earlier.path, { force: true });
      } else {
        if (entry.header.type === 'symlink' && entry.header.linkname) {
          links.set(
            name,
            path.posix.normalize(path.posix.join(path.posix.dirname(name), entry.header.linkname)),
          );
        } else if (entry.header.type === 'link' && entry.header.linkname) {
          links.set(name, normalize(entry.header.linkname));
        }
        entry.resume();
      }
    }
  } catch (error) {
    input.destroy();
    await cleanup();
    if (error instanceof SourceError || signal?.aborted) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EROFS' || code === 'EACCES' || code === 'EDQUOT') throw error;
    throw new SourceError(
      `${file} is not a readable docker-archive (truncated or corrupt tar?): ${(error as Error).message}`,
    );
  }

  try {
    return await describeArchive(file, ref, staged, links, cleanup);
  } catch (error) {
    await cleanup();
    throw error;
  }
}

async function describeArchive(
  file: string,
  ref: string | undefined,
  staged: Map<string, StagedFile>,
  links: Map<string, string>,
  cleanup: () => Promise<void>,
): Promise<ImageSource> {
  const resolve = (name: string): StagedFile | undefined => {
    let current = normalize(name);
    for (let hops = 0; hops < 16; hops++) {
      const found = staged.get(current);
      if (found) return found;
      const next = links.get(current);
      if (next === undefined) return undefined;
      current = next;
    }
    return undefined;
  };
  const readJson = async (name: string): Promise<unknown> => {
    const entry = resolve(name);
    if (!entry) throw new SourceError(`${file} has no ${name}; is it a docker save archive?`);
    if (entry.size > MAX_JSON_BYTES)
      throw new SourceError(`${file}: ${name} is ${entry.size} bytes, too large for JSON`);
    try {
      return JSON.parse(await fs.readFile(entry.path, 'utf8'));
    } catch {
      throw new SourceError(`${file}: ${name} is not valid JSON`);
    }
  };

  const parsedManifest = archiveManifest.safeParse(await readJson('manifest.json'));
  if (!parsedManifest.success) throw new SourceError(`${file}: manifest.json is not a docker save manifest`);
  const images = parsedManifest.data;
  if (images.length === 0) throw new SourceError(`${file}: manifest.json lists no images`);

  const manifests = new Map<string, Buffer>();
  const blobs = new Map<string, StagedFile>();
  const roots: SourceManifest[] = [];

  const build = async (image: (typeof images)[number], refName: string | undefined): Promise<void> => {
    const config = resolve(image.Config);
    if (!config)
      throw new SourceError(`${file}: the config ${image.Config} named by manifest.json is missing`);
    const named = /([a-f0-9]{64})(?:\.json)?$/.exec(image.Config)?.[1];
    if (named !== undefined && `sha256:${named}` !== config.digest) {
      throw new SourceError(
        `${file}: ${image.Config} does not match its name (it hashes to ${config.digest}); the archive is corrupt`,
      );
    }
    const parsedConfig = imageConfig.safeParse(await readJson(image.Config));
    if (!parsedConfig.success) throw new SourceError(`${file}: ${image.Config} has no rootfs.diff_ids`);
    const diffIds = parsedConfig.data.rootfs.diff_ids;
    if (diffIds.length !== image.Layers.length) {
      throw new SourceError(
        `${file}: ${image.Config} lists ${diffIds.length} layers but manifest.json ${image.Layers.length}`,
      );
    }
    blobs.set(config.digest, config);
    const layers = [];
    for (const [i, layerName] of image.Layers.entries()) {
      const layer = resolve(layerName);
      if (!layer) throw new SourceError(`${file}: the layer ${layerName} named by manifest.json is missing`);
      const gzipped = await peekGzip(layer.path);
      if (layer.digest !== diffIds[i] && !gzipped) {
        throw new SourceError(
          `${file}: ${layerName} hashes to ${layer.digest}, not its diff_id ${diffIds[i] ?? ''}; the archive is corrupt`,
        );
      }
      blobs.set(layer.digest, layer);
      layers.push({ mediaType: DOCKER_LAYER, size: layer.size, digest: layer.digest });
    }
    // Field order and compact form as Go's json.Marshal writes containers/image's manifest.Schema2.
    const bytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: DOCKER_MANIFEST,
        config: { mediaType: DOCKER_CONFIG, size: config.size, digest: config.digest },
        layers,
      }),
    );
    const digest = sha256Digest(bytes);
    manifests.set(digest, bytes);
    roots.push({
      digest,
      mediaType: DOCKER_MANIFEST satisfies ManifestMediaType,
      size: bytes.length,
      refName,
    });
  };

  const tagOf = (repoTag: string): string | undefined => {
    const colon = repoTag.lastIndexOf(':');
    return colon > repoTag.lastIndexOf('/') ? repoTag.slice(colon + 1) : undefined;
  };

  return {
    description: `docker-archive:${file}${ref === undefined ? '' : `:${ref}`}`,
    async roots(allTags) {
      if (ref !== undefined && ref.startsWith('@')) {
        const index = Number(ref.slice(1));
        const image = Number.isInteger(index) ? images[index] : undefined;
        if (!image)
          throw new SourceError(
            `${file} has ${images.length} image(s); @${ref.slice(1)} is not one of @0…@${images.length - 1}`,
          );
        await build(image, undefined);
      } else if (ref !== undefined) {
        const wanted = normalizeDockerReference(ref);
        const matches = images.filter((image) =>
          (image.RepoTags ?? []).some((repoTag) => normalizeDockerReference(repoTag) === wanted),
        );
        const image = matches[0];
        if (!image) {
          const known = images.flatMap((entry) => entry.RepoTags ?? []).join(', ') || 'none';
          throw new SourceError(`${file} has no image tagged "${ref}" (RepoTags: ${known})`);
        }
        await build(image, tagOf(ref));
      } else if (allTags) {
        for (const image of images) {
          const tags = (image.RepoTags ?? []).map(tagOf).filter((tag): tag is string => tag !== undefined);
          if (tags.length === 0)
            throw new SourceError(`${file}: an image has no RepoTags, so --all-tags cannot name it`);
          for (const tag of tags) await build(image, tag);
        }
      } else if (images.length === 1 && images[0]) {
        await build(images[0], undefined);
      } else {
        const known = images.flatMap((entry) => entry.RepoTags ?? []).join(', ') || 'untagged';
        throw new SourceError(
          `${file} holds ${images.length} images; name one as docker-archive:${file}:<name:tag> or :@<index> (${known}), or use --all-tags`,
        );
      }
      return roots;
    },
    candidateReferrers: () => Promise.resolve([]),
    readManifest(digest) {
      const bytes = manifests.get(digest);
      return Promise.resolve(bytes === undefined ? undefined : { bytes, where: `${file} (manifest.json)` });
    },
    blob(digest): Promise<BlobBytes | undefined> {
      const entry =
        blobs.get(digest) ?? [...staged.values()].find((candidate) => candidate.digest === digest);
      return Promise.resolve(entry === undefined ? undefined : { kind: 'staged', file: entry, where: file });
    },
    close: cleanup,
  };
}
