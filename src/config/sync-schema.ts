/**
 * The schema of `derrick sync`'s file (sync.yaml): upstreams (registries or derrick trees) and the repositories to
 * mirror from them, with tag filters, platforms, destination names and pruning. One zod schema gives the
 * validation, the types and the JSON Schema published in docs/sync.schema.json (`npm run docs:config`).
 */
import semver from 'semver';
import { z } from 'zod';

/** A regular expression (JavaScript syntax, unanchored: it matches anywhere in the tag unless it says ^…$). */
const regex = z.string().superRefine((text, context) => {
  try {
    new RegExp(text, 'u');
  } catch (error) {
    context.addIssue({
      code: 'custom',
      message: `not a valid regular expression: ${(error as Error).message.replace(/^Invalid regular expression: /, '')}`,
    });
  }
});

const oneOrMany = <T extends z.ZodType>(item: T) =>
  z
    .union([item, z.array(item)])
    .transform((value) => (Array.isArray(value) ? value : [value]) as z.output<T>[]);

const credentials = z
  .strictObject({
    username: z.string().min(1).describe('the user name'),
    password: z
      .string()
      .optional()
      .describe('the password, written here (prefer passwordFile or passwordEnv)'),
    passwordFile: z
      .string()
      .optional()
      .describe('a file holding the password (its trailing newline ignored)'),
    passwordEnv: z.string().optional().describe('an environment variable holding the password'),
  })
  .refine(
    (value) =>
      [value.password, value.passwordFile, value.passwordEnv].filter((item) => item !== undefined).length ===
      1,
    { error: 'give exactly one of password, passwordFile or passwordEnv' },
  )
  .describe('Basic credentials; without them, the auth files of skopeo, podman or docker login are read');

const upstream = z
  .strictObject({
    registry: z
      .string()
      .regex(/^[A-Za-z0-9.[\]:-]+$/, 'expected a registry host[:port], without a scheme or a path')
      .optional()
      .describe('a registry: host[:port] (docker.io for Docker Hub)'),
    tree: z.string().min(1).optional().describe('a derrick tree: a directory, or s3://<bucket>/<prefix>'),
    tlsVerify: z
      .boolean()
      .default(true)
      .describe('verify the registry’s certificate; false also allows plain HTTP, as skopeo’s --tls-verify'),
    certDir: z
      .string()
      .optional()
      .describe('*.crt CAs, and a client *.cert with its *.key (containers-certs.d)'),
    credentials: credentials.optional(),
  })
  .refine((value) => (value.registry === undefined) !== (value.tree === undefined), {
    error: 'give exactly one of registry or tree',
  });

const tagFilter = z
  .strictObject({
    names: z
      .array(z.string().min(1))
      .optional()
      .describe('exactly these tags (the others below still apply)'),
    include: oneOrMany(regex)
      .optional()
      .describe('keep tags matching any of these regular expressions (unanchored)'),
    exclude: oneOrMany(regex).optional().describe('drop tags matching any of these regular expressions'),
    semver: z
      .string()
      .refine((range) => semver.validRange(range) !== null, 'not a semver range (e.g. ">=1.2 <2", "^3")')
      .optional()
      .describe(
        'keep tags that are versions in this range (npm semver syntax: ">=1.2 <2", "^3"); others dropped',
      ),
    newest: z.number().int().min(1).optional().describe('then keep only the newest N'),
    by: z
      .enum(['semver', 'created'])
      .default('semver')
      .describe('what newest means: the highest version, or the image’s created time (its config)'),
  })
  .default({ by: 'semver' });

const repository = z
  .strictObject({
    from: z.string().min(1).describe('the upstream (a key of upstreams)'),
    name: z.string().min(1).optional().describe('a repository of the upstream'),
    glob: z
      .string()
      .min(1)
      .optional()
      .describe('or every repository matching this glob (team/*, team/**), listed through _catalog'),
    tags: tagFilter,
    prefix: z.string().default('').describe('prepended to the upstream name to make the destination name'),
    rename: z.string().min(1).optional().describe('the destination name instead (with name only, not glob)'),
    prune: z
      .boolean()
      .default(false)
      .describe('unpublish destination tags the upstream no longer has (or the filters no longer select)'),
  })
  .refine((value) => (value.name === undefined) !== (value.glob === undefined), {
    error: 'give exactly one of name or glob',
  })
  .refine((value) => value.rename === undefined || value.name !== undefined, {
    error: 'rename needs name (a glob names many repositories; use prefix)',
    path: ['rename'],
  });

export const syncSchema = z
  .strictObject({
    upstreams: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/), upstream).describe('upstreams by name'),
    repositories: z.array(repository).min(1).describe('what to mirror, in order'),
  })
  .superRefine((value, context) => {
    value.repositories.forEach((entry, index) => {
      if (!(entry.from in value.upstreams))
        context.addIssue({
          code: 'custom',
          path: ['repositories', index, 'from'],
          message: `no upstream "${entry.from}"; upstreams are ${Object.keys(value.upstreams).join(', ') || '(none)'}`,
        });
    });
  });

export type SyncConfig = z.output<typeof syncSchema>;
export type SyncUpstream = SyncConfig['upstreams'][string];
export type SyncRepository = SyncConfig['repositories'][number];
export type TagFilter = SyncRepository['tags'];

/** The keys a mapping at `path` of the file may have, for "did you mean". */
export function syncKeysAt(path: readonly (string | number)[]): string[] {
  const [first, , third] = path;
  if (path.length === 0) return Object.keys(syncSchema.shape);
  if (first === 'upstreams' && path.length === 2) return Object.keys(upstream.shape);
  if (first === 'upstreams' && third === 'credentials') return Object.keys(credentials.shape);
  if (first === 'repositories' && path.length === 2) return Object.keys(repository.shape);
  if (first === 'repositories' && third === 'tags') return Object.keys(tagFilter.unwrap().shape);
  return [];
}

/** The JSON Schema of sync.yaml (what a file may contain: input side, defaults included). */
export function syncJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'derrick sync file',
    ...z.toJSONSchema(syncSchema, { io: 'input', unrepresentable: 'any' }),
  };
}
