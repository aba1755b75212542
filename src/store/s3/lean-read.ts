/**
 * The hot path of serve on S3: a record's conditional GET on every request (If-None-Match on its ETag, a 304 when
 * unchanged). Through the SDK that costs ~1.7 ms of CPU per call here (its middleware stack, signing, and a 304
 * turned into a thrown error with a stack); a plain keep-alive GET of a presigned URL costs ~0.15 ms. So a
 * record's GET goes to a presigned URL of it (signed by the SDK with the client's own endpoint, region and
 * credentials; only `host` is signed, so the If-None-Match header may be added), re-used for half its life.
 *
 * Listings (ListObjectsV2, each page of `_catalog` on S3) go the same way, for the same reason: the SDK's XML
 * parser spends ~30 ms on a page of 1,000 keys here, where picking Key, ETag, Size and LastModified out of the
 * <Contents> elements takes well under 1 ms.
 *
 * Only the answers whose meaning is certain are taken here: 200 with an ETag, 304, 404 NoSuchKey, and a 200
 * ListBucketResult. Anything else — another 404 (NoSuchBucket), 403 (credentials rotated under a URL), 5xx,
 * SlowDown, a network error, XML not as expected — is left to the SDK (`undefined`), which retries with backoff
 * and reports what went wrong, as before.
 */
import http from 'node:http';
import https from 'node:https';
import { LRUCache } from 'lru-cache';
import type { ReadResult } from '../backend.ts';

/** How long a presigned URL of a record is valid; it is re-used for half that. */
export const LEAN_URL_SECONDS = 900;
/** Records whose URL is kept (a URL is ~500 bytes). */
const MAX_URLS = 10_000;
/** Connections kept to the store per process (the SDK's own default is 50). */
const MAX_SOCKETS = 64;
/** A read with no answer for this long is left to the SDK (and its retries). */
const TIMEOUT_MS = 30_000;

export type Presign = (fullKey: string, ttlSeconds: number) => Promise<string>;

/**
 * Presigned URLs re-used for half their life, so that signing (~0.3 ms of CPU through the SDK) is paid once per
 * key and period, not once per request; a URL handed out is valid for between half and all of its TTL.
 * Bounded: memory does not grow with the tree. `now` is injectable for tests.
 */
export class UrlCache {
  private readonly urls = new LRUCache<string, { url: string; until: number }>({ max: MAX_URLS });

  constructor(private readonly now: () => number = Date.now) {}

  /** The URL kept for `id` at this TTL while it has half its life left, else a new one from `sign`. */
  async get(id: string, ttlSeconds: number, sign: () => Promise<string>): Promise<string> {
    const slot = `${ttlSeconds} ${id}`;
    const hit = this.urls.get(slot);
    if (hit && hit.until > this.now()) return hit.url;
    const url = await sign();
    this.urls.set(slot, { url, until: this.now() + (ttlSeconds * 1000) / 2 });
    return url;
  }

  forget(id: string, ttlSeconds: number): void {
    this.urls.delete(`${ttlSeconds} ${id}`);
  }

  clear(): void {
    this.urls.clear();
  }
}

const unquote = (etag: string): string => etag.replaceAll('"', '');

/** One object of a listing, as the SDK's ListObjectsV2 gives it. */
export interface ListedItem {
  Key: string;
  ETag: string;
  Size: number;
  LastModified: Date;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** XML character data with its five named entities and numeric references decoded; undefined if malformed. */
function xmlText(text: string): string | undefined {
  const REFERENCE = /&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g;
  // A bare `&` (one that starts no reference) is not XML, nor is a named entity XML does not define.
  if (text.replace(REFERENCE, '').includes('&')) return undefined;
  for (const [, ref = ''] of text.matchAll(REFERENCE))
    if (!ref.startsWith('#') && ENTITIES[ref] === undefined) return undefined;
  return text.replace(REFERENCE, (_, ref: string) => {
    if (ref.startsWith('#x')) return String.fromCodePoint(parseInt(ref.slice(2), 16));
    if (ref.startsWith('#')) return String.fromCodePoint(parseInt(ref.slice(1), 10));
    return ENTITIES[ref] ?? '';
  });
}

const element = (name: string): RegExp => new RegExp(`<${name}>([^<]*)</${name}>`);
const FIELDS = {
  key: element('Key'),
  etag: element('ETag'),
  size: element('Size'),
  modified: element('LastModified'),
};
const CONTENTS = /<Contents>([\s\S]*?)<\/Contents>/g;
const TRUNCATED = /<IsTruncated>(true|false)<\/IsTruncated>/;

/** A ListObjectsV2 answer's objects and IsTruncated; undefined when it is not the XML expected. */
export function parseListing(xml: string): { objects: ListedItem[]; truncated: boolean } | undefined {
  // Whole: a body cut short could still hold whole <Contents> elements, and IsTruncated comes before them.
  if (!xml.includes('<ListBucketResult') || !xml.trimEnd().endsWith('</ListBucketResult>')) return undefined;
  const truncated = TRUNCATED.exec(xml)?.[1];
  if (truncated === undefined) return undefined;
  const objects: ListedItem[] = [];
  for (const [, block = ''] of xml.matchAll(CONTENTS)) {
    const key = xmlText(FIELDS.key.exec(block)?.[1] ?? '');
    const etag = xmlText(FIELDS.etag.exec(block)?.[1] ?? '');
    const size = Number(FIELDS.size.exec(block)?.[1]);
    const modified = new Date(FIELDS.modified.exec(block)?.[1] ?? '');
    if (!key || etag === undefined || !Number.isSafeInteger(size) || Number.isNaN(modified.getTime()))
      return undefined;
    objects.push({ Key: key, ETag: etag, Size: size, LastModified: modified });
  }
  return { objects, truncated: truncated === 'true' };
}

export class LeanReader {
  private readonly urls = new UrlCache();
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS });
  private readonly httpsAgent = new https.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS });

  constructor(private readonly presign: Presign) {}

  /** The record at `fullKey` (If-None-Match `ifNoneMatch`), or undefined: ask the SDK. */
  async read(fullKey: string, ifNoneMatch: string | undefined): Promise<ReadResult | undefined> {
    let url: URL;
    try {
      url = new URL(
        await this.urls.get(fullKey, LEAN_URL_SECONDS, () => this.presign(fullKey, LEAN_URL_SECONDS)),
      );
    } catch {
      return undefined;
    }
    const answer = await this.get(url, ifNoneMatch).catch(() => undefined);
    if (answer === undefined) this.urls.forget(fullKey, LEAN_URL_SECONDS);
    return answer;
  }

  /** A ListObjectsV2 page from its presigned URL, or undefined: ask the SDK. */
  async list(presigned: Promise<string>): Promise<{ objects: ListedItem[]; truncated: boolean } | undefined> {
    try {
      const url = new URL(await presigned);
      const { status, length, body } = await this.fetch(url, {});
      const whole = length === undefined || Number(length) === body.length;
      return status === 200 && whole ? parseListing(body.toString('utf8')) : undefined;
    } catch {
      return undefined;
    }
  }

  private async get(url: URL, ifNoneMatch: string | undefined): Promise<ReadResult | undefined> {
    const headers = ifNoneMatch === undefined ? {} : { 'if-none-match': `"${ifNoneMatch}"` };
    const { status, etag, body, length } = await this.fetch(url, headers);
    if (status === 304 && ifNoneMatch !== undefined) return { status: 'unchanged' };
    if (status === 200 && etag !== undefined && (length === undefined || Number(length) === body.length))
      return { status: 'found', bytes: body, version: unquote(etag) };
    if (status === 404 && body.includes('<Code>NoSuchKey</Code>')) return { status: 'absent' };
    return undefined;
  }

  /** One GET on a kept-alive connection: status, ETag, Content-Length and the whole body. */
  private fetch(
    url: URL,
    headers: Record<string, string>,
  ): Promise<{
    status: number | undefined;
    etag: string | undefined;
    length: string | undefined;
    body: Buffer;
  }> {
    const https_ = url.protocol === 'https:';
    return new Promise((resolve, reject) => {
      const request = (https_ ? https : http).get(
        url,
        { agent: https_ ? this.httpsAgent : this.httpAgent, headers, timeout: TIMEOUT_MS },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', reject);
          response.on('end', () =>
            resolve({
              status: response.statusCode,
              etag: response.headers.etag,
              length: response.headers['content-length'],
              body: Buffer.concat(chunks),
            }),
          );
        },
      );
      request.on('error', reject);
      request.on('timeout', () => request.destroy(new Error('no answer from the store')));
    });
  }

  close(): void {
    this.urls.clear();
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}
