/**
 * The keys of the published tree: its paths relative to the root, `/`-separated, the same on every back end (so a
 * tree copied file by file between a directory and a bucket is the same tree). Every key is built here from a
 * name, tag or digest that has already been validated (src/oci), so no key built here can leave the tree.
 *
 *   v2/app/<name>.json                          repository records (one per repository)
 *   v2/web/<name>/blobs/<digest>                per-repository copies of content, for nginx / a CDN / a bucket URL
 *   v2/web/<name>/manifests/<kind>/<digest>     (kind = oci-manifest | oci-index | docker-v2 | docker-list)
 *   v2/content/<algorithm>/<hex>                every blob and manifest, once for the whole tree
 */
import { parseDigest } from '../oci/digest.ts';
import { MANIFEST_KIND, type ManifestMediaType } from '../oci/media-types.ts';
import { isValidName } from '../oci/names.ts';

export const RECORD_SUFFIX = '.json';
export const APP_PREFIX = 'v2/app/';
export const WEB_PREFIX = 'v2/web/';
export const CONTENT_PREFIX = 'v2/content/';

export function recordKey(name: string): string {
  return `${APP_PREFIX}${checkedName(name)}${RECORD_SUFFIX}`;
}

/** The repository a record key belongs to, or undefined when the key is not a record's. */
export function nameOfRecordKey(key: string): string | undefined {
  if (!key.startsWith(APP_PREFIX) || !key.endsWith(RECORD_SUFFIX)) return undefined;
  const name = key.slice(APP_PREFIX.length, -RECORD_SUFFIX.length);
  return isValidName(name) ? name : undefined;
}

export function webPrefix(name: string): string {
  return `${WEB_PREFIX}${checkedName(name)}/`;
}

export function blobLinkKey(name: string, digest: string): string {
  return webPrefix(name) + blobUrlPath(digest);
}

export function manifestLinkKey(name: string, mediaType: ManifestMediaType, digest: string): string {
  return webPrefix(name) + manifestUrlPath(mediaType, digest);
}

/** The web-relative path of a manifest: what a redirect appends to the repository's base URL. */
export function manifestUrlPath(mediaType: ManifestMediaType, digest: string): string {
  return `manifests/${MANIFEST_KIND[mediaType]}/${checkedDigest(digest)}`;
}

export function blobUrlPath(digest: string): string {
  return `blobs/${checkedDigest(digest)}`;
}

export function contentKey(digest: string): string {
  const parsed = parseDigest(digest);
  if ('error' in parsed) throw new Error(`internal: unchecked digest ${JSON.stringify(digest)}`);
  return `${CONTENT_PREFIX}${parsed.algorithm}/${parsed.hex}`;
}

function checkedName(name: string): string {
  // Callers validate and report; this is the last line of defence against a key leaving the tree.
  if (!isValidName(name)) throw new Error(`internal: unchecked repository name ${JSON.stringify(name)}`);
  return name;
}

function checkedDigest(digest: string): string {
  if ('error' in parseDigest(digest)) throw new Error(`internal: unchecked digest ${JSON.stringify(digest)}`);
  return digest;
}
