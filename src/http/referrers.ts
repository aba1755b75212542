/**
 * The referrers API's answer (OCI 1.1): an image index of the manifests whose subject is the digest asked for,
 * optionally filtered on artifactType. A repository that does not exist has none, and gets the same empty index:
 * "If the registry supports the referrers API, the registry MUST NOT return a `404 Not Found` to a referrers API
 * requests" (a 404 tells clients the API is unsupported, and they fall back to the tag schema).
 */
import { isIndexMediaType, OCI_INDEX, parseManifest } from '../oci/media-types.ts';
import type { ManifestEntry } from '../store/record-schema.ts';
import { jsonAnswer, PRIVATE_REVALIDATE, type Answer, type Headers } from './answers.ts';

type ReadManifest = (digest: string, entry: ManifestEntry) => Promise<Buffer>;

/**
 * A referrer's artifactType as the spec derives it: "If the `artifactType` is empty or missing in the image
 * manifest, the value of `artifactType` MUST be set to the config descriptor `mediaType` value. If the
 * `artifactType` is empty or missing in an index, the `artifactType` MUST be omitted." publish records it so;
 * a record written before it read an empty one as missing holds "", and the manifest itself decides then.
 */
async function artifactTypeOf(
  digest: string,
  entry: ManifestEntry,
  readManifest: ReadManifest,
): Promise<string | undefined> {
  if (entry.artifactType !== '') return entry.artifactType;
  if (isIndexMediaType(entry.mediaType)) return undefined;
  const parsed = parseManifest(await readManifest(digest, entry), entry.mediaType);
  return 'error' in parsed ? undefined : parsed.artifactType;
}

/**
 * The index of `referrers` (digest and record entry of each), those of `artifactType` only when it is given.
 * `isPublic`: whether anybody may pull the repository (a missing one is not public).
 */
export async function referrersAnswer(
  referrers: Iterable<readonly [string, ManifestEntry]>,
  artifactType: string | undefined,
  isPublic: boolean,
  readManifest: ReadManifest,
): Promise<Answer> {
  // An empty filter names no artifact type (the spec reads an empty artifactType as a missing one).
  const filter = artifactType === '' ? undefined : artifactType;
  const manifests = [];
  for (const [referrer, entry] of referrers) {
    const type = await artifactTypeOf(referrer, entry, readManifest);
    if (filter !== undefined && type !== filter) continue;
    manifests.push({
      mediaType: entry.mediaType,
      digest: referrer,
      size: entry.size,
      ...(type === undefined ? {} : { artifactType: type }),
      ...(entry.annotations === undefined ? {} : { annotations: entry.annotations }),
    });
  }
  const headers: Headers = { 'content-type': OCI_INDEX };
  // No shared cache may keep an empty list of a repository it cannot tell from a missing one.
  if (!isPublic) headers['cache-control'] = PRIVATE_REVALIDATE;
  if (filter !== undefined) headers['oci-filters-applied'] = 'artifactType';
  return jsonAnswer({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }, headers);
}
