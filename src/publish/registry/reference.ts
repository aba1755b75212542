/**
 * `docker://` references, as skopeo and docker read them (distribution's reference grammar and its
 * normalisation, reference/normalize.go):
 *
 *     docker://[host[:port]/]path[:tag][@digest]
 *
 * The first component is a registry host when it has a `.` or a `:`, is `localhost`, or has an upper-case
 * letter; otherwise the registry is Docker Hub (`docker.io`, served at `registry-1.docker.io`), where a name of
 * one component is under `library/`. Neither tag nor digest: `latest`. Pure: no I/O.
 */
import { parseDigest } from '../../oci/digest.ts';
import { validateName, validateTag } from '../../oci/names.ts';

export const DOCKER_HUB = 'docker.io';
/** Where Docker Hub's registry API answers. */
const DOCKER_HUB_API = 'registry-1.docker.io';

export interface RegistryReference {
  /** The registry as written (`registry.example.com:5000`, `docker.io`): the key of auth files. */
  registry: string;
  /** host[:port] the API answers at. */
  endpoint: string;
  /** The repository in that registry (`library/alpine`). */
  name: string;
  tag: string | undefined;
  digest: string | undefined;
}

/** A host, an IPv4 address or a bracketed IPv6 one, and an optional port. */
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

export type Parsed<T> = { ok: T } | { error: string };

/** Parses what follows `docker://`. */
export function parseRegistryReference(text: string): Parsed<RegistryReference> {
  const form = 'write docker://[host[:port]/]name[:tag][@sha256:…]';
  if (text === '') return { error: `"docker://" names no image; ${form}` };
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const parsed = parseDigest(digest);
    if ('error' in parsed) return { error: `docker://${text}: ${parsed.error}` };
  }
  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  const isHost =
    first !== '' && (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase());
  let registry = isHost ? first : DOCKER_HUB;
  let remainder = isHost ? rest.slice(slash + 1) : rest;
  if (isHost && !HOST.test(registry))
    return { error: `docker://${text}: "${registry}" is not a registry host[:port]` };
  if (registry === 'index.docker.io') registry = DOCKER_HUB;
  let tag: string | undefined;
  // A tag is after the last ':' of the last path component (a ':' before a '/' belongs to the host).
  const colon = remainder.lastIndexOf(':');
  if (colon !== -1 && colon > remainder.lastIndexOf('/')) {
    tag = remainder.slice(colon + 1);
    remainder = remainder.slice(0, colon);
    const valid = validateTag(tag);
    if (!valid.ok) return { error: `docker://${text}: ${valid.reason}` };
  }
  if (registry === DOCKER_HUB && !remainder.includes('/')) remainder = `library/${remainder}`;
  const valid = validateName(remainder);
  if (!valid.ok) return { error: `docker://${text}: ${valid.reason}` };
  const endpoint = registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
  return {
    ok: {
      registry,
      endpoint,
      name: remainder,
      tag: tag ?? (digest === undefined ? 'latest' : undefined),
      digest,
    },
  };
}

/** The reference written back (`registry/name:tag@digest`), for messages. */
export function formatReference(reference: RegistryReference): string {
  const tag = reference.tag === undefined ? '' : `:${reference.tag}`;
  const digest = reference.digest === undefined ? '' : `@${reference.digest}`;
  return `${reference.registry}/${reference.name}${tag}${digest}`;
}
