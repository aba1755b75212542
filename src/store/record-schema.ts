/**
 * The repository record, `v2/app/<name>.json`: the only file `serve` reads to answer a manifest, tag or redirect
 * request. Two formats are read into one in-memory shape (src/store/record.ts):
 *
 * - derrick's own (`"type": "derrick-repository"`), written by `derrick publish`;
 * - Pulp 2's (`"type": "pulp-docker-redirect"`, versions 2–4), written by pulp_docker for Crane.
 *
 * docs/record.schema.json is generated from these schemas (`npm run schema`) and a test keeps it current.
 */
import { z } from 'zod';
import { DIGEST_PATTERN } from '../oci/digest.ts';
import { MAX_NAME_LENGTH, NAME_PATTERN, TAG_PATTERN } from '../oci/names.ts';
import { MANIFEST_MEDIA_TYPES, platformSchema } from '../oci/media-types.ts';

const digest = z
  .string()
  .regex(DIGEST_PATTERN, { error: 'expected a digest: sha256:<64 hex> or sha512:<128 hex>' })
  .meta({ description: 'A content digest, sha256:<64 hex> or sha512:<128 hex>.' });

const platform = platformSchema.meta({
  description: 'An OCI platform, copied from the index that names the child manifest.',
});

const manifestEntry = z
  .strictObject({
    mediaType: z.enum(MANIFEST_MEDIA_TYPES).meta({ description: "The manifest's own media type." }),
    size: z.number().int().nonnegative().meta({ description: 'Length of the manifest in bytes.' }),
    blobs: z
      .array(digest)
      .optional()
      .meta({ description: 'Config and layer digests of an image manifest (none for an index).' }),
    children: z
      .array(z.strictObject({ digest, platform: platform.optional() }))
      .optional()
      .meta({ description: 'The manifests an index lists, in its order, with their platforms.' }),
    artifactType: z
      .string()
      .optional()
      .meta({ description: "artifactType, or an image manifest's config media type (the referrers API)." }),
    subject: digest.optional().meta({ description: 'The manifest this one refers to (OCI 1.1 referrers).' }),
    annotations: z
      .record(z.string(), z.string())
      .optional()
      .meta({ description: "The manifest's annotations, reported by the referrers API." }),
  })
  .meta({ description: 'One manifest of the repository, keyed by its digest.' });

const repositoryName = z
  .string()
  .max(MAX_NAME_LENGTH)
  .regex(NAME_PATTERN, { error: 'not a valid repository name (distribution-spec grammar)' });

export const derrickRecordSchema = z
  .strictObject({
    type: z.literal('derrick-repository'),
    version: z.literal(1).meta({ description: 'Format version of this record.' }),
    name: repositoryName.meta({ description: 'The repository name; must match the file path.' }),
    protected: z.boolean().default(false).meta({ description: 'Never served to anonymous clients.' }),
    baseUrl: z
      .url({ protocol: /^https?$/ })
      .optional()
      .meta({ description: 'Where this repository’s v2/web directory is served from (a CDN or nginx).' }),
    updatedAt: z.iso.datetime().meta({ description: 'When the record was last written.' }),
    tags: z
      .record(z.string().regex(TAG_PATTERN, { error: 'not a valid tag' }), digest)
      .meta({ description: 'Tag → manifest digest; every digest is a key of manifests.' }),
    manifests: z
      .record(digest, manifestEntry)
      .meta({ description: 'Manifest digest → what serve needs of it.' }),
    blobs: z
      .record(digest, z.number().int().nonnegative())
      .meta({ description: 'Blob digest → size in bytes: every config and layer this repository serves.' }),
  })
  .meta({ title: 'derrick repository record', description: 'Written by derrick publish.' });

export type DerrickRecord = z.infer<typeof derrickRecordSchema>;
export type ManifestEntry = z.infer<typeof manifestEntry>;

const pulpTagOrDigest = z.string().min(1);

export const pulpRecordSchema = z
  .object({
    type: z.literal('pulp-docker-redirect'),
    version: z.union([z.literal(2), z.literal(3), z.literal(4)]),
    repository: z.string().min(1).meta({ description: "Pulp's repository id." }),
    'repo-registry-id': repositoryName.meta({ description: 'The name clients pull.' }),
    url: z.url().meta({ description: "Base URL of the repository's published web directory." }),
    protected: z.boolean().default(false),
    schema2_data: z.array(pulpTagOrDigest).optional(),
    manifest_list_data: z.array(pulpTagOrDigest).optional(),
    manifest_list_amd64_tags: z
      .record(z.string(), z.tuple([pulpTagOrDigest, z.number().int()]))
      .optional()
      .meta({ description: 'tag → [digest, schemaVersion] of the linux/amd64 image of a manifest list.' }),
  })
  .meta({ title: 'Pulp 2 redirect record', description: 'Written by pulp_docker 2.x/3.x for Crane.' });

export type PulpRecord = z.infer<typeof pulpRecordSchema>;

export const recordSchema = z.union([derrickRecordSchema, pulpRecordSchema]);

/** The JSON Schema of both record formats, as published in docs/record.schema.json. */
export function recordJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(recordSchema, { io: 'input', unrepresentable: 'any' });
  return {
    $id: 'https://github.com/derrick-registry/derrick/docs/record.schema.json',
    title: 'derrick repository record (v2/app/<name>.json)',
    ...schema,
  };
}
