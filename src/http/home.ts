/**
 * What derrick answers outside the registry API: a short page at `/` (until a web page exists, which will replace
 * homePage) and a plain 404 for every other path. The registry API itself lives under /v2/ (registry.ts).
 */
import type { Answer } from './answers.ts';

const TEXT = { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' };

const HOME = `derrick: a container registry

This server answers the OCI distribution API under /v2/ (docker, podman, skopeo, containerd):
  podman pull <this host>/<repository>:<tag>
  curl <this host>/v2/_catalog

Documentation: the README and docs/ of derrick; \`derrick --help\` for the command line.
`;

/** GET / and HEAD /: says what this server is, and where the API and the docs are. */
export function homePage(): Answer {
  return {
    kind: 'bytes',
    status: 200,
    headers: { ...TEXT, 'cache-control': 'no-cache' },
    body: Buffer.from(HOME),
  };
}

/** Any path outside /v2/ but `/` (and the token endpoint): a plain 404, as distribution answers such paths. */
export function notFoundPage(): Answer {
  return {
    kind: 'bytes',
    status: 404,
    headers: TEXT,
    body: Buffer.from('404 not found: derrick answers the registry API under /v2/\n'),
  };
}
