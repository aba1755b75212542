/**
 * Reads the manifest graph a publish covers from a source — roots, index children, and OCI 1.1 referrers of any
 * of them — verifying every manifest against its digest and parsing it. No writes. With `platforms`, an index
 * root becomes the index platforms.ts makes of it (its own bytes when every child is kept), and only the kept
 * children are read: the roots returned are the ones to tag.
 */
import { digestLike } from '../oci/digest.ts';
import {
  isIndexMediaType,
  isNonDistributable,
  parseManifest,
  type ParsedManifest,
} from '../oci/media-types.ts';
import { filterIndex, formatPlatform, type PlatformSpec } from './platforms.ts';
import { SourceError, type ImageSource, type SourceManifest } from './source.ts';

export interface CollectedManifest {
  digest: string;
  bytes: Buffer;
  parsed: ParsedManifest;
  where: string;
}

export interface CollectedBlob {
  digest: string;
  size: number;
  mediaType: string;
  /** A manifest that references it, for messages. */
  usedBy: string;
}

export interface Collected {
  /** The roots to tag: the source's, an index root replaced by its filtered index under `platforms`. */
  roots: SourceManifest[];
  manifests: Map<string, CollectedManifest>;
  blobs: Map<string, CollectedBlob>;
}

async function readVerified(
  source: ImageSource,
  wanted: { digest: string; mediaType: string | undefined; size: number | undefined },
  referencedBy: string,
): Promise<CollectedManifest> {
  const found = await source.readManifest(wanted.digest);
  if (!found) {
    throw new SourceError(
      `${source.description}: ${referencedBy} names manifest ${wanted.digest}, which the source does not have`,
    );
  }
  const actual = digestLike(wanted.digest, found.bytes);
  if (actual !== wanted.digest) {
    throw new SourceError(
      `${found.where} does not match ${wanted.digest} (it hashes to ${actual}); the source is corrupt or was modified`,
    );
  }
  if (wanted.size !== undefined && wanted.size !== found.bytes.length) {
    throw new SourceError(
      `${found.where} is ${found.bytes.length} bytes but ${referencedBy} declares ${wanted.size}`,
    );
  }
  const parsed = parseManifest(found.bytes, wanted.mediaType);
  if ('error' in parsed) throw new SourceError(`${found.where}: ${parsed.error}`);
  return { digest: wanted.digest, bytes: found.bytes, parsed, where: found.where };
}

export interface CollectOptions {
  /** Keep only these platforms of an index root (platforms.ts). */
  platforms?: readonly PlatformSpec[];
  /** A line for the person publishing (what a filter kept, or that it did not apply). */
  note?: (message: string) => void;
}

/** A root under `platforms`: itself, or the index platforms.ts makes of it. */
function filtered(
  root: CollectedManifest,
  platforms: readonly PlatformSpec[],
  note: (message: string) => void,
): CollectedManifest {
  if (!isIndexMediaType(root.parsed.mediaType)) {
    note(`${root.where} is a single image, not an index: --platform does not apply; published as it is`);
    return root;
  }
  const result = filterIndex(root.bytes, platforms);
  if ('error' in result) throw new SourceError(`${root.where}: ${result.error}`);
  if (!result.changed) return root;
  const parsed = parseManifest(result.bytes, root.parsed.mediaType);
  if ('error' in parsed) throw new SourceError(`${root.where}, filtered by --platform: ${parsed.error}`);
  const kept = result.kept.map((child) => child.platform ?? child.digest).join(', ');
  const dropped = result.dropped.map((child) => child.platform ?? child.digest).join(', ');
  note(`--platform: index ${root.digest} keeps ${kept} and drops ${dropped}; published as ${result.digest}`);
  return {
    digest: result.digest,
    bytes: result.bytes,
    parsed,
    where: `${root.where} (${platforms.map(formatPlatform).join(',')} only)`,
  };
}

export async function collect(
  source: ImageSource,
  sourceRoots: SourceManifest[],
  options: CollectOptions = {},
): Promise<Collected> {
  const manifests = new Map<string, CollectedManifest>();
  const blobs = new Map<string, CollectedBlob>();

  const walk = async (start: CollectedManifest): Promise<void> => {
    const pending: CollectedManifest[] = [start];
    for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
      if (manifests.has(item.digest)) continue;
      manifests.set(item.digest, item);
      for (const blob of item.parsed.blobs) {
        const known = blobs.get(blob.digest);
        if (known && known.size !== blob.size) {
          throw new SourceError(
            `${item.where}: blob ${blob.digest} is declared with two sizes (${known.size} and ${blob.size})`,
          );
        }
        blobs.set(blob.digest, {
          digest: blob.digest,
          size: blob.size,
          mediaType: blob.mediaType,
          usedBy: item.digest,
        });
      }
      for (const child of item.parsed.children) {
        if (manifests.has(child.digest)) continue;
        pending.push(await readVerified(source, child, `index ${item.digest}`));
      }
    }
  };

  const roots: SourceManifest[] = [];
  for (const root of sourceRoots) {
    const read = await readVerified(source, root, source.description);
    const chosen = options.platforms
      ? filtered(read, options.platforms, options.note ?? (() => undefined))
      : read;
    roots.push(chosen === read ? root : { ...root, digest: chosen.digest, size: chosen.bytes.length });
    await walk(chosen);
  }

  // Referrers: manifests in the source whose subject is published, to a fixed point (referrers of referrers).
  const candidates = await source.candidateReferrers();
  const parsedCandidates = new Map<string, CollectedManifest>();
  for (const candidate of candidates) {
    if (manifests.has(candidate.digest)) continue;
    parsedCandidates.set(candidate.digest, await readVerified(source, candidate, 'the source index'));
  }
  for (let grew = true; grew;) {
    grew = false;
    for (const [digest, candidate] of parsedCandidates) {
      const subject = candidate.parsed.subject?.digest;
      if (subject !== undefined && manifests.has(subject)) {
        parsedCandidates.delete(digest);
        await walk(candidate);
        grew = true;
      }
    }
  }
  return { roots, manifests, blobs };
}

export function mayBeAbsent(blob: CollectedBlob): boolean {
  return isNonDistributable(blob.mediaType);
}
