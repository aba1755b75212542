/**
 * A registry as a sync upstream, over the distribution API with registry/client.ts (auth, retries, TLS):
 * `GET /v2/_catalog` and `GET /v2/<name>/tags/list`, both followed through their `Link: <…>; rel="next"` pages
 * ("the presence of the Link header indicates that more results are available", distribution-spec), and
 * `HEAD /v2/<name>/manifests/<tag>` for the digest a tag names (`Docker-Content-Digest`; a registry that does not
 * send it is asked with GET and the bytes hashed).
 */
import { digestLike, sha256Digest } from '../../oci/digest.ts';
import { MANIFEST_MEDIA_TYPES } from '../../oci/media-types.ts';
import { openSource } from '../open-source.ts';
import { RegistryClient, readBytes, readText, type Credentials } from '../registry/client.ts';
import { credentialsFromFiles } from '../registry/credentials.ts';
import { parseRegistryReference } from '../registry/reference.ts';
import type { ImageSource } from '../source.ts';
import { UpstreamError, type Upstream } from './upstream.ts';

const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');
const MAX_SMALL = 4 * 1024 * 1024;
/** Pages a listing may have before it is called a loop. */
const MAX_PAGES = 10_000;

export interface RegistryUpstreamOptions {
  registry: string;
  credentials: Credentials | undefined;
  tlsVerify: boolean;
  certDir: string | undefined;
  userAgent: string;
  scratchDir: string;
  signal?: AbortSignal | undefined;
  /** Publisher hooks that the source reports bytes to. */
  onBytes?: (count: number) => void;
}

export function registryUpstream(options: RegistryUpstreamOptions): Upstream {
  const parsed = parseRegistryReference(`${options.registry}/x`);
  if ('error' in parsed) throw new UpstreamError(parsed.error);
  const { endpoint, registry } = parsed.ok;
  /** Credentials for a repository: the file's, else the auth files' most specific entry. */
  const credentialsFor = (name: string): Credentials | undefined =>
    options.credentials ??
    credentialsFromFiles({ registry, endpoint, name, tag: undefined, digest: undefined })?.credentials;
  const clients = new Map<string, RegistryClient>();
  /** One client per set of credentials (usually one for the whole registry): its connections and tokens shared. */
  const clientFor = (name: string): RegistryClient => {
    const credentials = credentialsFor(name);
    const key = credentials ? `${credentials.username}:${credentials.password}` : '';
    let client = clients.get(key);
    if (!client) {
      client = new RegistryClient(endpoint, {
        credentials,
        tlsVerify: options.tlsVerify,
        certDir: options.certDir,
        userAgent: options.userAgent,
      });
      clients.set(key, client);
    }
    return client;
  };
  const scope = (name: string): string => `repository:${name}:pull`;

  /** Every entry of a paginated listing (`key` of each page's JSON), following `Link` rel="next". */
  async function listAll(client: RegistryClient, first: string, scopeText: string, key: string) {
    const items: string[] = [];
    let next: string | undefined = first;
    for (let pages = 0; next !== undefined; pages++) {
      if (pages >= MAX_PAGES)
        throw new UpstreamError(`${registry}: ${first} has more than ${MAX_PAGES} pages`);
      const answer = await client.request('GET', next, scopeText, { accept: 'application/json' });
      const text = await readText(answer, 64 * 1024 * 1024);
      if (answer.status === 404) return undefined;
      if (answer.status !== 200)
        throw new UpstreamError(`${registry}: GET ${next} answered ${answer.status}: ${text.slice(0, 200)}`);
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(text) as Record<string, unknown>;
      } catch {
        throw new UpstreamError(`${registry}: GET ${next} did not answer JSON`);
      }
      const page = body[key];
      if (page !== null && page !== undefined) {
        if (!Array.isArray(page) || page.some((item) => typeof item !== 'string'))
          throw new UpstreamError(`${registry}: GET ${next}: "${key}" is not a list of names`);
        items.push(...(page as string[]));
      }
      const link = answer.headers.link;
      next = nextLink(Array.isArray(link) ? link.join(', ') : link);
    }
    return items;
  }

  return {
    description: registry,
    async repositories() {
      const client = clientFor('');
      const names = await listAll(client, '/v2/_catalog?n=1000', 'registry:catalog:*', 'repositories');
      if (names === undefined)
        throw new UpstreamError(`${registry} has no _catalog (404); name the repositories instead of a glob`);
      return names;
    },
    async tags(name) {
      return listAll(clientFor(name), `/v2/${name}/tags/list?n=1000`, scope(name), 'tags');
    },
    async digestOf(name, tag) {
      const client = clientFor(name);
      const head = await client.request('HEAD', `/v2/${name}/manifests/${tag}`, scope(name), {
        accept: ACCEPT,
      });
      head.body.resume();
      if (head.status === 404) return undefined;
      if (head.status !== 200)
        throw new UpstreamError(`${registry}: HEAD ${name}:${tag} answered ${head.status}`);
      const header = head.headers['docker-content-digest'];
      if (typeof header === 'string' && /^[a-z0-9]+:[a-f0-9]+$/.test(header)) return header;
      const get = await client.request('GET', `/v2/${name}/manifests/${tag}`, scope(name), {
        accept: ACCEPT,
      });
      const bytes = await readBytes(get, MAX_SMALL);
      if (get.status === 404) return undefined;
      if (get.status !== 200)
        throw new UpstreamError(`${registry}: GET ${name}:${tag} answered ${get.status}`);
      return sha256Digest(bytes);
    },
    async manifest(name, digest) {
      const answer = await clientFor(name).request('GET', `/v2/${name}/manifests/${digest}`, scope(name), {
        accept: ACCEPT,
      });
      return verified(await readBytes(answer, MAX_SMALL), answer.status, digest, `${name} manifest`);
    },
    async smallBlob(name, digest) {
      const answer = await clientFor(name).request('GET', `/v2/${name}/blobs/${digest}`, scope(name));
      return verified(await readBytes(answer, MAX_SMALL), answer.status, digest, `${name} blob`);
    },
    open(name, digest): Promise<ImageSource> {
      const credentials = credentialsFor(name);
      return openSource(
        `docker://${registry}/${name}@${digest}`,
        options.scratchDir,
        options.onBytes,
        options.signal,
        {
          creds: credentials ? `${credentials.username}:${credentials.password}` : undefined,
          tlsVerify: options.tlsVerify,
          certDir: options.certDir,
          userAgent: options.userAgent,
        },
      );
    },
    close() {
      for (const client of clients.values()) client.close();
      return Promise.resolve();
    },
  };

  function verified(bytes: Buffer, status: number, digest: string, what: string): Buffer {
    if (status !== 200) throw new UpstreamError(`${registry}: GET ${what} ${digest} answered ${status}`);
    const actual = digestLike(digest, bytes);
    if (actual !== digest)
      throw new UpstreamError(`${registry}: ${what} ${digest} arrived with bytes whose digest is ${actual}`);
    return bytes;
  }
}

/** The path of a `Link: <…>; rel="next"` header, if any (relative to the registry's origin). */
export function nextLink(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(',')) {
    const match = /<([^>]+)>\s*;\s*rel="?next"?/i.exec(part);
    if (!match?.[1]) continue;
    const url = new URL(match[1], 'http://registry.invalid');
    return `${url.pathname}${url.search}`;
  }
  return undefined;
}
