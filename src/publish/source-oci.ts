/**
 * `oci:<dir>[:<ref>]` — an OCI image layout directory, as written by `skopeo copy … oci:` or umoci.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { parseDigest } from '../oci/digest.ts';
import {
  fileBlob,
  ioReason,
  readManifestFile,
  SourceError,
  type ImageSource,
  type SourceManifest,
} from './source.ts';

const REF_NAME = 'org.opencontainers.image.ref.name';

const indexFile = z.object({
  schemaVersion: z.literal(2),
  manifests: z.array(
    z.object({
      mediaType: z.string().optional(),
      digest: z.string(),
      size: z.number().int().nonnegative().optional(),
      annotations: z.record(z.string(), z.string()).optional(),
    }),
  ),
});

export async function openOciLayout(dir: string, ref: string | undefined): Promise<ImageSource> {
  const where = (file: string): string => path.join(dir, file);
  const stat = await fs.stat(dir).catch((error: unknown) => {
    throw new SourceError(`cannot read the OCI layout ${dir}: ${ioReason(error)}`);
  });
  if (!stat.isDirectory())
    throw new SourceError(`${dir} is not a directory; an OCI layout is a directory (oci:<dir>[:<ref>])`);
  const layoutText = await fs.readFile(where('oci-layout'), 'utf8').catch(() => undefined);
  if (layoutText === undefined) {
    throw new SourceError(
      `${dir} is not an OCI image layout: it has no oci-layout file (make one with skopeo copy … oci:${dir})`,
    );
  }
  let index: z.infer<typeof indexFile>;
  try {
    index = indexFile.parse(JSON.parse(await fs.readFile(where('index.json'), 'utf8')));
  } catch (error) {
    const why =
      error instanceof z.ZodError ? (error.issues[0]?.message ?? 'invalid') : (error as Error).message;
    throw new SourceError(`${where('index.json')} is not a valid OCI index: ${why}`);
  }
  const entries: SourceManifest[] = index.manifests.map((entry) => ({
    digest: entry.digest,
    mediaType: entry.mediaType,
    size: entry.size,
    refName: entry.annotations?.[REF_NAME],
  }));
  for (const entry of entries) {
    const parsed = parseDigest(entry.digest);
    if ('error' in parsed) throw new SourceError(`${where('index.json')}: ${parsed.error}`);
  }

  const blobPath = (digest: string): string | undefined => {
    const parsed = parseDigest(digest);
    return 'error' in parsed ? undefined : path.join(dir, 'blobs', parsed.algorithm, parsed.hex);
  };
  const named = entries.filter((entry) => entry.refName !== undefined);
  const description = `oci:${dir}${ref === undefined ? '' : `:${ref}`}`;
  let selected: SourceManifest[] = [];

  return {
    description,
    roots(allTags) {
      if (ref !== undefined) {
        selected = entries.filter((entry) => entry.refName === ref);
        if (selected.length === 0) {
          const known = named.map((entry) => entry.refName).join(', ') || 'none';
          throw new SourceError(`${dir} has no image named "${ref}" (names in its index.json: ${known})`);
        }
        if (selected.length > 1)
          throw new SourceError(`${dir} names ${selected.length} images "${ref}"; it is ambiguous`);
      } else if (allTags) {
        selected = named;
        if (selected.length === 0)
          throw new SourceError(`${dir} names no images (no ${REF_NAME} annotations) for --all-tags`);
      } else if (entries.length === 1) {
        selected = entries;
      } else if (named.length === 1) {
        selected = named; // the others are unnamed: referrers, or leftovers
      } else {
        const known = named.map((entry) => entry.refName).join(', ') || 'none named';
        throw new SourceError(
          `${dir} holds ${entries.length} images; name one as oci:${dir}:<ref> (${known}) or publish them all with --all-tags`,
        );
      }
      return Promise.resolve(selected);
    },
    candidateReferrers() {
      return Promise.resolve(entries.filter((entry) => !selected.includes(entry)));
    },
    readManifest(digest) {
      const file = blobPath(digest);
      return file === undefined ? Promise.resolve(undefined) : readManifestFile(file);
    },
    blob(digest) {
      const file = blobPath(digest);
      return file === undefined ? Promise.resolve(undefined) : fileBlob(file);
    },
    close: () => Promise.resolve(),
  };
}
