/**
 * Crane's manifest decision for Pulp 2 records (DESIGN.md), exactly: A = the media types the client accepts,
 * ML = Docker manifest list, S2 = Docker schema 2.
 *
 * 1. ML in A and ref in manifest_list_data → manifests/list/<ref>
 * 2. else ref in manifest_list_amd64_tags as [d, v]: S2 in A → manifests/<v>/<d>; else v = 1 → manifests/1/<d>;
 *    else manifests/1/<ref>
 * 3. else S2 in A and ref in schema2_data → manifests/2/<ref>
 * 4. else → manifests/1/<ref>
 *
 * Version 2 records have no data, so every manifest is `manifests/<ref>` as pulp_docker 2.0–2.3 laid it out.
 */
import { DOCKER_LIST, DOCKER_MANIFEST } from '../oci/media-types.ts';
import type { PulpCompat } from '../store/record.ts';
import type { Accepted } from './accept.ts';

export function craneManifestPath(pulp: PulpCompat, ref: string, accepted: Accepted): string {
  if (pulp.version === 2) return `manifests/${ref}`;
  // Crane compared the literal media types the client listed.
  const acceptsList = accepted.types.has(DOCKER_LIST);
  const acceptsSchema2 = accepted.types.has(DOCKER_MANIFEST);
  if (acceptsList && pulp.version >= 4 && pulp.manifestLists.has(ref)) return `manifests/list/${ref}`;
  const amd64 = pulp.version >= 4 ? pulp.amd64Tags.get(ref) : undefined;
  if (amd64) {
    if (acceptsSchema2) return `manifests/${amd64.schemaVersion}/${amd64.digest}`;
    if (amd64.schemaVersion === 1) return `manifests/1/${amd64.digest}`;
    return `manifests/1/${ref}`;
  }
  if (acceptsSchema2 && pulp.schema2.has(ref)) return `manifests/2/${ref}`;
  return `manifests/1/${ref}`;
}
