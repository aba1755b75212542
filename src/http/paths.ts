/**
 * Parsing a request path into a registry route, before anything touches the file system. Names, tags and digests
 * are checked against the distribution-spec grammar; anything percent-encoded, `..`, `//` or NUL is refused, since
 * no valid name, tag or digest contains them. A manifest reference that is neither a tag nor a digest names no
 * manifest: it is answered 404 MANIFEST_UNKNOWN here, as the spec's end-3 has no other failure (TAG_INVALID
 * belongs to a manifest PUT, which derrick does not accept).
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
  return { kind: 'manifest', name, reference: checkedReference(name, value) };
}

/** A tag or a digest; anything else is a manifest no repository can hold. */
function checkedReference(name: string, value: string): Reference {
  if (value.includes(':')) {
    const digest = parseDigest(value);
    if (!('error' in digest)) return { digest: value };
    throw new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: ${digest.error}`, {
      name,
      reference: value,
    });
  }
  const tag = validateTag(value);
  if (tag.ok) return { tag: value };
  throw new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: ${tag.reason}`, { name, reference: value });
}

/**
 * Parses `n` (a non-negative integer) of a paginated request; undefined when absent. `n=0` is a valid request for
 * an empty page (the spec: "When `n` is zero, this endpoint MUST return an empty list").
 */
export function parsePageSize(value: string | undefined, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^(?:0|[1-9][0-9]*)$/.test(value)) {
    throw new RegistryError('PAGINATION_NUMBER_INVALID', `n must be a non-negative integer, got "${value}"`);
  }
  return Math.min(Number(value), max);
}
