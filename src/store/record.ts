/**
 * Parsing records of either format into the one in-memory shape `serve` and the tools use, and writing
 * derrick's format back. One validator; every error names the file and the key.
 */
import type { z } from 'zod';
import {
  derrickRecordSchema,
  pulpRecordSchema,
  type DerrickRecord,
  type ManifestEntry,
  type PulpRecord,
} from './record-schema.ts';

/** Crane's view of a Pulp 2 record (DESIGN.md, "Pulp 2 records"). */
export interface PulpCompat {
  version: 2 | 3 | 4;
  /** Pulp's repository id (the file name Pulp wrote the record under). */
  repositoryId: string;
  /** Base URL of the published web directory: `blobs/`, `manifests/1|2|list/`, `tags/list` below it. */
  url: string;
  /** Tags and digests that have a schema 2 manifest. */
  schema2: ReadonlySet<string>;
  /** Tags and digests of manifest lists. */
  manifestLists: ReadonlySet<string>;
  /** tag → the linux/amd64 image of its manifest list, for clients that do not accept lists. */
  amd64Tags: ReadonlyMap<string, { digest: string; schemaVersion: number }>;
}

export interface Repository {
  name: string;
  format: 'derrick' | 'pulp2';
  protected: boolean;
  /** Where the repository's web directory is served from; undefined: the server's --redirect-url decides. */
  baseUrl: string | undefined;
  /** tag → digest, for derrick records (Pulp records keep their tags behind `url`). */
  tags: ReadonlyMap<string, string>;
  manifests: ReadonlyMap<string, ManifestEntry>;
  blobs: ReadonlyMap<string, number>;
  updatedAt: string | undefined;
  pulp: PulpCompat | undefined;
}

export class RecordError extends Error {
  readonly file: string;
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'RecordError';
    this.file = file;
  }
}

function describeIssues(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  const where = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more problems)` : '';
  return `${where}: ${issue.message}${more}`;
}

/**
 * Parses the bytes of a record. `file` is used in messages; `expectedName` (derived from the path) must match
 * the name inside a derrick record, so a record copied to the wrong place is refused, not served as another repo.
 */
export function parseRecord(bytes: Uint8Array, file: string, expectedName?: string): Repository {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new RecordError(file, `not valid JSON (${why}); a half-written or hand-edited file? Re-publish it`);
  }
  const type = typeof json === 'object' && json !== null ? (json as Record<string, unknown>).type : undefined;
  if (type === 'derrick-repository') {
    const parsed = derrickRecordSchema.safeParse(json);
    if (!parsed.success) throw new RecordError(file, describeIssues(parsed.error));
    const tags = [
      ...Object.entries(parsed.data.tags),
      ...protoEntry(
        (json as { tags?: unknown }).tags,
        derrickRecordSchema.shape.tags.valueType,
        file,
        'tags',
      ),
    ];
    const repository = fromDerrick(parsed.data, tags, file);
    if (expectedName !== undefined && repository.name !== expectedName) {
      throw new RecordError(
        file,
        `name: the record says "${repository.name}" but its path says "${expectedName}"`,
      );
    }
    return repository;
  }
  if (type === 'pulp-docker-redirect') {
    const version = (json as Record<string, unknown>).version;
    if (version === 1) {
      throw new RecordError(file, 'version: 1 is the retired Docker v1 API, which derrick does not serve');
    }
    const parsed = pulpRecordSchema.safeParse(json);
    if (!parsed.success) throw new RecordError(file, describeIssues(parsed.error));
    const amd64 = [
      ...Object.entries(parsed.data.manifest_list_amd64_tags ?? {}),
      ...protoEntry(
        (json as { manifest_list_amd64_tags?: unknown }).manifest_list_amd64_tags,
        pulpRecordSchema.shape.manifest_list_amd64_tags.unwrap().valueType,
        file,
        'manifest_list_amd64_tags',
      ),
    ];
    return fromPulp(parsed.data, amd64);
  }
  throw new RecordError(file, 'type: expected "derrick-repository" or "pulp-docker-redirect"');
}

/**
 * zod leaves a `__proto__` key out of a record it parses (so that it cannot replace a prototype), but `__proto__`
 * is a valid tag: its value is checked with the record's value schema and given back here, so that a tag published
 * under that name is not silently lost.
 */
function protoEntry<T>(raw: unknown, value: z.ZodType<T>, file: string, key: string): [string, T][] {
  if (typeof raw !== 'object' || raw === null || !Object.hasOwn(raw, '__proto__')) return [];
  const result = value.safeParse((raw as Record<string, unknown>)['__proto__']);
  if (!result.success) throw new RecordError(file, `${key}.__proto__: ${describeIssues(result.error)}`);
  return [['__proto__', result.data]];
}

function fromDerrick(record: DerrickRecord, tags: [string, string][], file: string): Repository {
  const manifests = new Map(Object.entries(record.manifests));
  const blobs = new Map(Object.entries(record.blobs));
  for (const [tag, digest] of tags) {
    if (!manifests.has(digest)) throw new RecordError(file, `tags.${tag}: ${digest} is not in manifests`);
  }
  for (const [digest, entry] of manifests) {
    for (const blob of entry.blobs ?? []) {
      if (!blobs.has(blob)) throw new RecordError(file, `manifests.${digest}.blobs: ${blob} is not in blobs`);
    }
    for (const child of entry.children ?? []) {
      if (!manifests.has(child.digest)) {
        throw new RecordError(file, `manifests.${digest}.children: ${child.digest} is not in manifests`);
      }
    }
  }
  return {
    name: record.name,
    format: 'derrick',
    protected: record.protected,
    baseUrl: record.baseUrl,
    tags: new Map(tags.sort(([a], [b]) => compareStrings(a, b))),
    manifests,
    blobs,
    updatedAt: record.updatedAt,
    pulp: undefined,
  };
}

function fromPulp(record: PulpRecord, amd64Tags: [string, [string, number]][]): Repository {
  const amd64 = new Map<string, { digest: string; schemaVersion: number }>();
  for (const [tag, [digest, schemaVersion]] of amd64Tags) {
    amd64.set(tag, { digest, schemaVersion });
  }
  return {
    name: record['repo-registry-id'],
    format: 'pulp2',
    protected: record.protected,
    baseUrl: record.url,
    tags: new Map(),
    manifests: new Map(),
    blobs: new Map(),
    updatedAt: undefined,
    pulp: {
      version: record.version,
      repositoryId: record.repository,
      url: record.url,
      schema2: new Set(record.version >= 3 ? (record.schema2_data ?? []) : []),
      manifestLists: new Set(record.version >= 4 ? (record.manifest_list_data ?? []) : []),
      amd64Tags: record.version >= 4 ? amd64 : new Map(),
    },
  };
}

/** Byte-order comparison (what the distribution spec means by lexical order). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The index of the first item of `items` (sorted by compareStrings on `keyOf`) whose key sorts after `value`. */
export function upperBound<T>(items: readonly T[], value: string, keyOf: (item: T) => string): number {
  let low = 0;
  let high = items.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    const item = items[mid];
    if (item !== undefined && compareStrings(keyOf(item), value) <= 0) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** Serialises a derrick repository to its record bytes: keys sorted, so equal content gives equal files. */
export function serializeRecord(repository: Repository): Buffer {
  if (repository.format !== 'derrick') throw new Error('internal: only derrick records are written');
  const sortedObject = <T>(map: ReadonlyMap<string, T>): Record<string, T> =>
    Object.fromEntries([...map.entries()].sort(([a], [b]) => compareStrings(a, b)));
  const record: DerrickRecord = {
    type: 'derrick-repository',
    version: 1,
    name: repository.name,
    protected: repository.protected,
    ...(repository.baseUrl === undefined ? {} : { baseUrl: repository.baseUrl }),
    updatedAt: repository.updatedAt ?? new Date().toISOString(),
    tags: sortedObject(repository.tags),
    manifests: sortedObject(repository.manifests),
    blobs: sortedObject(repository.blobs),
  };
  return Buffer.from(JSON.stringify(record, null, 1) + '\n');
}

/** A new, empty derrick repository. */
export function emptyRepository(name: string): Repository {
  return {
    name,
    format: 'derrick',
    protected: false,
    baseUrl: undefined,
    tags: new Map(),
    manifests: new Map(),
    blobs: new Map(),
    updatedAt: undefined,
    pulp: undefined,
  };
}
