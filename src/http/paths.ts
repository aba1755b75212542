/**
 * Parsing a request path into a registry route, before anything touches the file system. Names, tags and digests
 * are checked against the distribution-spec grammar; anything percent-encoded, `..`, `//` or NUL is refused, since
 * no valid name, tag or digest contains them.
 */
import { RegistryError } from '../oci/errors.ts';
import { parseDigest } from '../oci/digest.ts';
import { validateName, validateTag } from '../oci/names.ts';

export type Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'manifest'; name: string; reference: Reference }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'tags'; name: string }
  | { kind: 'referrers'; name: string; digest: string };

export type Reference = { tag: string; digest?: undefined } | { digest: string; tag?: undefined };

const ENDPOINT = /^(.+)\/(manifests|blobs|referrers)\/([^/]+)$/;
const TAGS = /^(.+)\/tags\/list$/;

function checkedName(name: string): string {
  const check = validateName(name);
  if (!check.ok) throw new RegistryError('NAME_INVALID', `invalid repository name: ${check.reason}`);
  return name;
}

function checkedDigest(value: string): string {
  const parsed = parseDigest(value);
  if ('error' in parsed) throw new RegistryError('DIGEST_INVALID', parsed.error);
  return value;
}

/** Parses the path part of a request URL (no query). Throws RegistryError for anything invalid. */
export function parsePath(pathname: string): Route {
  if (pathname === '/v2/' || pathname === '/v2') return { kind: 'base' };
  if (!pathname.startsWith('/v2/')) throw new RegistryError('NAME_UNKNOWN', 'not a registry endpoint');
  const rest = pathname.slice(4);
  if (rest.includes('%') || rest.includes('\0')) {
    throw new RegistryError('NAME_INVALID', 'encoded characters are not allowed in registry paths');
  }
  if (rest === '_catalog') return { kind: 'catalog' };
  const tags = TAGS.exec(rest);
  if (tags) return { kind: 'tags', name: checkedName(tags[1] ?? '') };
  const match = ENDPOINT.exec(rest);
  if (!match) {
    const manifests = rest.lastIndexOf('/manifests/');
    if (manifests > 0) {
      throw new RegistryError('MANIFEST_UNKNOWN', 'a manifest reference is a tag or a digest and has no "/"');
    }
    throw new RegistryError('NAME_UNKNOWN', 'not a registry endpoint');
  }
  const name = checkedName(match[1] ?? '');
  const endpoint = match[2];
  const value = match[3] ?? '';
  if (endpoint === 'blobs') return { kind: 'blob', name, digest: checkedDigest(value) };
  if (endpoint === 'referrers') return { kind: 'referrers', name, digest: checkedDigest(value) };
  if (value.includes(':')) return { kind: 'manifest', name, reference: { digest: checkedDigest(value) } };
  const tag = validateTag(value);
  if (!tag.ok) throw new RegistryError('TAG_INVALID', `invalid tag: ${tag.reason}`);
  return { kind: 'manifest', name, reference: { tag: value } };
}

/** Parses `n` (a positive integer) of a paginated request; undefined when absent. */
export function parsePageSize(value: string | undefined, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9][0-9]*$/.test(value)) {
    throw new RegistryError('PAGINATION_NUMBER_INVALID', `n must be a positive integer, got "${value}"`);
  }
  return Math.min(Number(value), max);
}
