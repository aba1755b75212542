/**
 * The registry's read API over the published tree, independent of the HTTP framework: each method takes a parsed
 * route and request facts and returns an Answer, or throws RegistryError (the route picks the code; the store
 * only says "absent").
 */
import { LRUCache } from 'lru-cache';
import type { FastifyBaseLogger } from 'fastify';
import { notFound, type Viewer } from '../auth/auth.ts';
import { compileGlobs } from '../config/globs.ts';
import type { Config } from '../config/schema.ts';
import { digestLike } from '../oci/digest.ts';
import { RegistryError } from '../oci/errors.ts';
import { isIndexMediaType, type ManifestMediaType } from '../oci/media-types.ts';
import type { ListedRecord } from '../store/backend.ts';
import { blobUrlPath, contentKey, manifestUrlPath } from '../store/keys.ts';
import { RecordCache, type CachedRepository, type RecordCacheEvent } from '../store/record-cache.ts';
import type { ManifestEntry } from '../store/record-schema.ts';
import { upperBound } from '../store/record.ts';
import { StorageError } from '../store/storage-error.ts';
import type { Tree } from '../store/tree.ts';
import { accepts, type Accepted } from './accept.ts';
import {
  IMMUTABLE,
  jsonAnswer,
  PRIVATE_IMMUTABLE,
  PRIVATE_REVALIDATE,
  type Answer,
  type Headers,
} from './answers.ts';
import { catalogAnswer } from './catalog.ts';
import { craneManifestPath } from './crane.ts';
import { parsePageSize, type Reference } from './paths.ts';
import { redirectUrl } from './redirect.ts';
import { referrersAnswer } from './referrers.ts';

/** Where a redirect goes: below a base URL (a CDN, nginx), or to a presigned URL of the tree's bucket. */
type Target = { base: string } | { presign: true };

/** A repository as one client may see it. */
interface Visible {
  cached: CachedRepository;
  /** Whether anybody may pull it (else: private caching, signed redirect URLs only). */
  isPublic: boolean;
}

export class Registry {
  private readonly records: RecordCache;
  private readonly manifestBytes: LRUCache<string, Buffer> | undefined;
  private readonly modeRules: { test: (name: string) => boolean; mode: 'redirect' | 'serve' }[];
  private readonly platform: { os: string; architecture: string; variant: string | undefined };
  private warnedUnsigned = false;
  /** Whether the tree's back end can presign URLs (a bucket), asked once. */
  private presigns = false;

  constructor(
    private readonly config: Config,
    private readonly tree: Tree,
    private readonly log: FastifyBaseLogger,
    recordCacheEvent?: (event: RecordCacheEvent) => void,
  ) {
    this.presigns = tree.backend.presigns;
    this.records = new RecordCache(
      tree.backend,
      config.cache.records,
      config.cache.recordTtlSeconds * 1000,
      recordCacheEvent,
    );
    this.manifestBytes =
      config.cache.manifestBytes > 0
        ? new LRUCache<string, Buffer>({
            maxSize: config.cache.manifestBytes,
            sizeCalculation: (value) => value.length || 1,
          })
        : undefined;
    const tests = compileGlobs(config.repositories.map((rule) => rule.match));
    this.modeRules = config.repositories.map((rule, i) => ({
      test: tests[i] ?? (() => false),
      mode: rule.mode,
    }));
    const [os = 'linux', architecture = 'amd64', variant] = config.defaultPlatform.split('/');
    this.platform = { os, architecture, variant };
  }

  /**
   * The repository, if this client may pull it. The rules are asked before the record is read, and a client
   * that may not pull a repository gets the same answer whether or not it exists (viewer.denied). A broken
   * record is logged with its path and answered as a generic 500.
   */
  async repository(viewer: Viewer, name: string): Promise<Visible> {
    if (!viewer.mayPull(name, false)) throw viewer.denied(name);
    const result = await this.records.get(name);
    if (result.found) {
      const isProtected = result.cached.repository.protected;
      if (!viewer.mayPull(name, isProtected)) throw viewer.denied(name);
      return { cached: result.cached, isPublic: viewer.isPublic(name, isProtected) };
    }
    if ('error' in result) {
      this.log.error({ file: result.error.file, err: result.error.message }, 'unreadable repository record');
      throw new RegistryError('UNKNOWN', 'the repository record cannot be read; the operator has been told');
    }
    throw notFound(name);
  }

  /** Whether the repository's record is protected (an unreadable one counts as protected); undefined: none. */
  private async protectedOf(name: string, listed?: string): Promise<boolean | undefined> {
    const result = await this.records.get(name, listed);
    if (result.found) return result.cached.repository.protected;
    return 'error' in result ? true : undefined;
  }

  /** Whether the catalog may name this repository to this client (an unreadable record counts as protected). */
  private async visible(viewer: Viewer, { name, version }: ListedRecord): Promise<boolean> {
    if (!viewer.mayList(name, false)) return false;
    const isProtected = await this.protectedOf(name, version);
    return viewer.mayList(name, isProtected ?? true);
  }

  private modeFor(name: string): 'redirect' | 'serve' {
    for (const rule of this.modeRules) if (rule.test(name)) return rule.mode;
    return this.config.mode;
  }

  /**
   * Where GETs of this repository's manifests and blobs go: its base URL, a presigned URL of the bucket the tree is
   * in, or undefined when the bytes are served from the tree. A repository that not everybody may pull is
   * redirected only with signed URLs (the CDN refuses unsigned ones; a presigned URL is signed and short-lived);
   * without redirect.token and a bucket to presign in, its bytes are served from the tree instead.
   */
  private redirectTarget({ cached, isPublic }: Visible): Target | undefined {
    const { repository } = cached;
    if (repository.format === 'pulp2')
      return repository.baseUrl === undefined ? undefined : { base: repository.baseUrl };
    if (this.modeFor(repository.name) === 'serve') return undefined;
    const base =
      repository.baseUrl ??
      (this.config.redirect.url === undefined
        ? undefined
        : `${this.config.redirect.url.replace(/\/+$/, '')}/${repository.name}`);
    if (base !== undefined && (isPublic || this.config.redirect.token !== undefined)) return { base };
    if (this.presigns) return { presign: true };
    if (base !== undefined && !this.warnedUnsigned) {
      this.warnedUnsigned = true;
      this.log.warn(
        { repository: repository.name },
        'a repository not everybody may pull is served from the tree, not redirected: set redirect.token to sign its URLs',
      );
    }
    return undefined; // redirect mode, but nowhere to redirect to: serve the bytes ourselves
  }

  private async redirect(
    target: Target,
    relative: string,
    digest: string,
    headers: Headers,
    /** What the presigned URL is answered with (a manifest's media type), when not the answer's own. */
    contentType?: string,
  ): Promise<Answer> {
    const type = contentType ?? headers['content-type'] ?? 'application/octet-stream';
    const ttl = this.config.s3.presignTtlSeconds;
    const location =
      'base' in target
        ? redirectUrl(this.config.redirect, target.base, relative)
        : await this.tree.backend.presign(contentKey(digest), ttl, type);
    if (location === undefined) throw new Error('internal: a back end that presigns gave no URL');
    return { kind: 'redirect', status: this.config.redirect.status, location, headers };
  }

  private choosePlatform(index: ManifestEntry, digest: string): string {
    const children = index.children ?? [];
    const { os, architecture, variant } = this.platform;
    const exact = children.find(
      (child) =>
        child.platform?.os === os &&
        child.platform.architecture === architecture &&
        (variant === undefined || child.platform.variant === variant),
    );
    if (exact) return exact.digest;
    throw new RegistryError(
      'MANIFEST_UNKNOWN',
      `${digest} is an index without a ${this.config.defaultPlatform} image, and the client does not accept indexes`,
    );
  }

  /** A Pulp repository's redirect: signed when not everybody may pull it, refused when it cannot be signed. */
  private pulpRedirect(visible: Visible, relative: string): Answer {
    const pulp = visible.cached.repository.pulp;
    if (!pulp) throw new Error('not a Pulp repository');
    if (!visible.isPublic && this.config.redirect.token === undefined) {
      this.log.error(
        { repository: visible.cached.repository.name },
        'a protected Pulp repository can only be redirected with signed URLs: set redirect.token',
      );
      throw new RegistryError('UNKNOWN', 'this repository cannot be served yet; the operator has been told');
    }
    return {
      kind: 'redirect',
      status: this.config.redirect.status,
      location: redirectUrl(this.config.redirect, pulp.url, relative),
      headers: {},
    };
  }

  async manifest(
    viewer: Viewer,
    name: string,
    reference: Reference,
    accepted: Accepted,
    head: boolean,
  ): Promise<Answer> {
    const visible = await this.repository(viewer, name);
    const { repository } = visible.cached;
    if (repository.pulp) {
      const ref = reference.tag ?? reference.digest;
      return this.pulpRedirect(visible, craneManifestPath(repository.pulp, ref, accepted));
    }
    let digest = reference.digest ?? repository.tags.get(reference.tag);
    let entry = digest === undefined ? undefined : repository.manifests.get(digest);
    if (digest === undefined || entry === undefined) {
      const what = reference.tag === undefined ? `manifest ${reference.digest}` : `tag "${reference.tag}"`;
      throw new RegistryError('MANIFEST_UNKNOWN', `${name} has no ${what}`, {
        name,
        reference: reference.tag ?? reference.digest,
      });
    }
    // Negotiation: an index to a client that does not take this kind of index → the configured platform's image.
    if (
      isIndexMediaType(entry.mediaType) &&
      !accepts(accepted, entry.mediaType) &&
      reference.tag !== undefined
    ) {
      digest = this.choosePlatform(entry, digest);
      entry = repository.manifests.get(digest);
      if (!entry)
        throw new RegistryError('MANIFEST_UNKNOWN', `${name} lacks the platform manifest ${digest}`);
    }
    const headers: Headers = {
      'content-type': entry.mediaType,
      'docker-content-digest': digest,
      etag: `"${digest}"`,
    };
    if (head)
      return {
        kind: 'bytes',
        status: 200,
        headers: { ...headers, 'content-length': String(entry.size) },
        body: Buffer.alloc(0),
      };
    const target = this.redirectTarget(visible);
    if (target !== undefined)
      return this.redirect(
        target,
        manifestUrlPath(entry.mediaType, digest),
        digest,
        headers,
        entry.mediaType,
      );
    const body = await this.readManifest(digest, entry.mediaType, entry.size);
    const immutable = visible.isPublic ? IMMUTABLE : PRIVATE_IMMUTABLE;
    return {
      kind: 'bytes',
      status: 200,
      headers: {
        ...headers,
        'cache-control': reference.digest ? immutable : visible.isPublic ? 'no-cache' : PRIVATE_REVALIDATE,
      },
      body,
    };
  }

  /** Manifest bytes from the content store, verified against their digest the first time they are read. */
  private async readManifest(digest: string, mediaType: ManifestMediaType, size: number): Promise<Buffer> {
    const hit = this.manifestBytes?.get(digest);
    if (hit) return hit;
    let bytes: Buffer;
    try {
      const read = await this.tree.backend.read(contentKey(digest));
      if (read.status !== 'found') throw new Error(read.status === 'refused' ? read.why : 'no such object');
      bytes = read.bytes;
    } catch (error) {
      if (error instanceof StorageError) throw error;
      this.log.error(
        { digest, err: (error as Error).message },
        'a manifest the record names is missing from the tree',
      );
      throw new RegistryError('UNKNOWN', 'the manifest content is missing; the operator has been told');
    }
    if (bytes.length !== size || digestLike(digest, bytes) !== digest) {
      this.log.error({ digest, mediaType }, 'a manifest in the tree does not match its digest');
      throw new RegistryError('UNKNOWN', 'the manifest content is corrupt; the operator has been told');
    }
    this.manifestBytes?.set(digest, bytes);
    return bytes;
  }

  async blob(viewer: Viewer, name: string, digest: string, head: boolean): Promise<Answer> {
    const visible = await this.repository(viewer, name);
    const { repository } = visible.cached;
    if (repository.pulp) return this.pulpRedirect(visible, `blobs/${digest}`);
    const size = repository.blobs.get(digest) ?? repository.manifests.get(digest)?.size;
    if (size === undefined)
      throw new RegistryError('BLOB_UNKNOWN', `${name} has no blob ${digest}`, { name, digest });
    const headers: Headers = { 'docker-content-digest': digest, etag: `"${digest}"` };
    const target = this.redirectTarget(visible);
    if (head && target !== undefined) {
      // Existence checks are answered from the record, without a round trip to the CDN.
      const type = { 'content-type': 'application/octet-stream', 'content-length': String(size) };
      return { kind: 'bytes', status: 200, headers: { ...headers, ...type }, body: Buffer.alloc(0) };
    }
    if (target !== undefined) {
      const manifest = repository.manifests.get(digest);
      const relative = manifest ? manifestUrlPath(manifest.mediaType, digest) : blobUrlPath(digest);
      return this.redirect(target, relative, digest, headers, manifest?.mediaType);
    }
    return {
      kind: 'content',
      key: contentKey(digest),
      digest,
      size,
      etag: `"${digest}"`,
      headers: {
        ...headers,
        'content-type': 'application/octet-stream',
        'cache-control': visible.isPublic ? IMMUTABLE : PRIVATE_IMMUTABLE,
      },
    };
  }

  async tags(
    viewer: Viewer,
    name: string,
    query: { n?: string | undefined; last?: string | undefined },
  ): Promise<Answer> {
    const visible = await this.repository(viewer, name);
    const { cached } = visible;
    if (cached.repository.pulp) return this.pulpRedirect(visible, 'tags/list');
    const headers: Headers = visible.isPublic ? {} : { 'cache-control': PRIVATE_REVALIDATE };
    const max = this.config.tags.maxPageSize;
    const n = parsePageSize(query.n, max) ?? max;
    const list = cached.tagList;
    const start = query.last === undefined ? 0 : upperBound(list, query.last, (tag) => tag);
    const page = list.slice(start, start + n);
    const last = page[page.length - 1];
    // n=0 asks for an empty page, which has no next page (last is undefined).
    if (start + n < list.length && last !== undefined) {
      headers.link = `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(last)}>; rel="next"`;
    }
    return jsonAnswer({ name, tags: page }, headers);
  }

  async catalog(
    viewer: Viewer,
    query: { n?: string | undefined; last?: string | undefined },
  ): Promise<Answer> {
    const { defaultPageSize, maxPageSize } = this.config.catalog;
    const n = parsePageSize(query.n, maxPageSize) ?? defaultPageSize;
    const expect = n + 1; // a page, and one more to know whether a next page exists
    const walk =
      n === 0
        ? []
        : this.tree.walkListed(query.last === undefined ? { expect } : { after: query.last, expect });
    return catalogAnswer(walk, n, (listed) => this.visible(viewer, listed));
  }

  /**
   * The referrers of `digest` (referrers.ts). A repository that does not exist has none, and neither, to this
   * client, has one it may not pull where denials look like missing repositories (`auth.denied: notFound`, or
   * nothing to log in to): both get the same empty index. Other denials are answered as on every endpoint.
   */
  async referrers(
    viewer: Viewer,
    name: string,
    digest: string,
    artifactType: string | undefined,
  ): Promise<Answer> {
    const visible = await this.repositoryOrNone(viewer, name);
    return referrersAnswer(
      visible?.cached.referrers().get(digest) ?? [],
      artifactType,
      visible?.isPublic === true,
      (referrer, entry) => this.readManifest(referrer, entry.mediaType, entry.size),
    );
  }

  /** As repository(), but undefined where that answers 404 NAME_UNKNOWN (missing, or denied as if missing). */
  private async repositoryOrNone(viewer: Viewer, name: string): Promise<Visible | undefined> {
    try {
      return await this.repository(viewer, name);
    } catch (error) {
      if (error instanceof RegistryError && error.code === 'NAME_UNKNOWN') return undefined;
      throw error;
    }
  }
}
