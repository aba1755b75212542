/**
 * Manifest media types, and parsing manifest bytes into what the publisher and server need of them.
 * Pure: no I/O. Manifests are kept byte for byte elsewhere; this only reads them.
 */
import { z } from 'zod';
import { isDigest } from './digest.ts';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_SCHEMA1 = 'application/vnd.docker.distribution.manifest.v1+json';
export const DOCKER_SCHEMA1_SIGNED = 'application/vnd.docker.distribution.manifest.v1+prettyjws';
export const OCI_EMPTY_CONFIG = 'application/vnd.oci.empty.v1+json';

export const MANIFEST_MEDIA_TYPES = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST] as const;
export type ManifestMediaType = (typeof MANIFEST_MEDIA_TYPES)[number];

export function isManifestMediaType(value: string): value is ManifestMediaType {
  return (MANIFEST_MEDIA_TYPES as readonly string[]).includes(value);
}

export function isIndexMediaType(value: string): boolean {
  return value === OCI_INDEX || value === DOCKER_LIST;
}

/**
 * The short, URL-safe name of a manifest media type. Manifests are laid out in the web tree under it
 * (`manifests/<kind>/<digest>`) so that a plain nginx or CDN can give each the right `Content-Type`
 * by location, as Pulp's `manifests/2/` and `manifests/list/` did.
 */
export const MANIFEST_KIND: Record<ManifestMediaType, string> = {
  [OCI_MANIFEST]: 'oci-manifest',
  [OCI_INDEX]: 'oci-index',
  [DOCKER_MANIFEST]: 'docker-v2',
  [DOCKER_LIST]: 'docker-list',
};

/** Layers that registries may not redistribute: their bytes may legitimately be absent (fetched from `urls`). */
export function isNonDistributable(mediaType: string): boolean {
  return mediaType.includes('.nondistributable.') || mediaType.includes('.foreign.');
}

const digestString = z.string().refine(isDigest, { error: 'not a sha256/sha512 digest' });
export const platformSchema = z.object({
  architecture: z.string(),
  os: z.string(),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
  variant: z.string().optional(),
  features: z.array(z.string()).optional(),
});
export type Platform = z.infer<typeof platformSchema>;

const descriptorSchema = z.object({
  mediaType: z.string().min(1),
  digest: digestString,
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  artifactType: z.string().optional(),
  platform: platformSchema.optional(),
});
export type Descriptor = z.infer<typeof descriptorSchema>;

const imageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
const indexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  manifests: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

/** What derrick needs of a manifest: its type, what it references, and what the referrers API reports. */
export interface ParsedManifest {
  mediaType: ManifestMediaType;
  /** The artifact type the referrers API reports: `artifactType` unless empty, else an image's config media type. */
  artifactType: string | undefined;
  /** Blobs: config and layers of an image manifest; none for an index. */
  blobs: Descriptor[];
  /** Child manifests of an index, with their platforms. */
  children: Descriptor[];
  subject: Descriptor | undefined;
  annotations: Record<string, string> | undefined;
}

/**
 * An artifactType as the referrers API reads it: "If the `artifactType` is empty or missing in the image manifest,
 * the value of `artifactType` MUST be set to the config descriptor `mediaType` value. If the `artifactType` is
 * empty or missing in an index, the `artifactType` MUST be omitted." (distribution-spec, Listing Referrers)
 */
function present(artifactType: string | undefined): string | undefined {
  return artifactType === '' ? undefined : artifactType;
}

function formatIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(top)'}: ${issue.message}`)
    .join('; ');
}

/**
 * Reads manifest bytes. `declaredType` is the media type of the descriptor that pointed here (if any): OCI
 * manifests may omit `mediaType`, and then the descriptor, or failing it the shape, decides.
 * Returns an error string for anything that is not a manifest derrick can publish.
 */
export function parseManifest(bytes: Uint8Array, declaredType?: string): ParsedManifest | { error: string } {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return { error: 'the manifest is not JSON' };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { error: 'the manifest is not a JSON object' };
  }
  const record = json as Record<string, unknown>;
  if (record.schemaVersion === 1) {
    return {
      error: 'Docker schema 1 manifests are retired and not published; convert with skopeo --format v2s2',
    };
  }
  const own = typeof record.mediaType === 'string' ? record.mediaType : undefined;
  const mediaType =
    own ??
    (declaredType && isManifestMediaType(declaredType) ? declaredType : undefined) ??
    ('manifests' in record ? OCI_INDEX : OCI_MANIFEST);
  if (!isManifestMediaType(mediaType))
    return { error: `"${mediaType}" is not a manifest media type derrick serves` };
  if (
    declaredType !== undefined &&
    own !== undefined &&
    declaredType !== own &&
    isManifestMediaType(declaredType)
  ) {
    return { error: `the descriptor says ${declaredType} but the manifest says ${own}` };
  }
  if (isIndexMediaType(mediaType)) {
    const parsed = indexSchema.safeParse(json);
    if (!parsed.success) return { error: `not a valid ${mediaType}: ${formatIssues(parsed.error)}` };
    return {
      mediaType,
      artifactType: present(parsed.data.artifactType),
      blobs: [],
      children: parsed.data.manifests,
      subject: parsed.data.subject,
      annotations: parsed.data.annotations,
    };
  }
  const parsed = imageManifestSchema.safeParse(json);
  if (!parsed.success) return { error: `not a valid ${mediaType}: ${formatIssues(parsed.error)}` };
  const { config, layers } = parsed.data;
  return {
    mediaType,
    artifactType: present(parsed.data.artifactType) ?? config.mediaType,
    blobs: [config, ...layers],
    children: [],
    subject: parsed.data.subject,
    annotations: parsed.data.annotations,
  };
}
