/**
 * The `<name>[:<tag>]...` arguments of `derrick publish`, as destinations: `app app:v1` means latest and v1, a bare
 * name alone leaves the default to the publisher. The names are checked by the publisher; what is refused here is
 * what only the argument as typed shows (a digest, a registry host in front of the name).
 */
import { splitNameAndTag } from '../oci/names.ts';
import { PublishError, type Destination } from './publisher.ts';

const HOST =
  /^(?:\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)(?::\d+)?$/i;

/**
 * The registry host a reference starts with, as docker reads one (`127.0.0.1:5000/`, `registry.example.com/`,
 * `localhost/`), or undefined: more follows the first component, and it has a `.` or a `:` or is `localhost` —
 * and is a host name at all (`../x` is a bad name, not a host).
 */
export function registryHost(reference: string): string | undefined {
  const slash = reference.indexOf('/');
  if (slash === -1) return undefined;
  const first = reference.slice(0, slash);
  const looksLikeHost = first.includes('.') || first.includes(':') || first === 'localhost';
  return looksLikeHost && HOST.test(first) ? first : undefined;
}

export function parseDestinations(targets: string[], allTags: boolean): Destination[] {
  const byName = new Map<string, string[]>();
  const bare = new Set<string>();
  for (const target of targets) {
    const host = registryHost(target);
    if (host !== undefined) {
      throw new PublishError(
        `"${target}": a registry host is not part of a repository name; publish to ${target.slice(host.length + 1)} and pull it as ${target}`,
      );
    }
    if (target.includes('@'))
      throw new PublishError(`"${target}": publish to <name>[:<tag>], not to a digest`);
    const { name, tag } = splitNameAndTag(target);
    if (tag === undefined) bare.add(name);
    byName.set(name, [...(byName.get(name) ?? []), ...(tag === undefined ? [] : [tag])]);
  }
  return [...byName].map(([name, tags]) => ({
    name,
    tags: bare.has(name) && tags.length > 0 && !allTags ? ['latest', ...tags] : tags,
  }));
}
