/**
 * The hot path of serve on S3: a record's conditional GET on every request (If-None-Match on its ETag, a 304 when
 * unchanged). Through the SDK that costs ~1.7 ms of CPU per call here (its middleware stack, signing, and a 304
 * turned into a thrown error with a stack); a plain keep-alive GET of a presigned URL costs ~0.15 ms. So a
 * record's GET goes to a presigned URL of it (signed by the SDK with the client's own endpoint, region and
 * credentials; only `host` is signed, so the If-None-Match header may be added), re-used for half its life.
 *
 * Only the answers whose meaning is certain are taken here: 200 with an ETag, 304, and 404 NoSuchKey. Anything
 * else — another 404 (NoSuchBucket), 403 (credentials rotated under a URL), 5xx, SlowDown, a network error — is
 * left to the SDK (`undefined`), which retries with backoff and reports what went wrong, as before.
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

  private get(url: URL, ifNoneMatch: string | undefined): Promise<ReadResult | undefined> {
    const https_ = url.protocol === 'https:';
    const headers = ifNoneMatch === undefined ? {} : { 'if-none-match': `"${ifNoneMatch}"` };
    return new Promise((resolve, reject) => {
      const request = (https_ ? https : http).get(
        url,
        { agent: https_ ? this.httpsAgent : this.httpAgent, headers, timeout: TIMEOUT_MS },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', reject);
          response.on('end', () => {
            const etag = response.headers.etag;
            const body = Buffer.concat(chunks);
            const length = response.headers['content-length'];
            if (response.statusCode === 304 && ifNoneMatch !== undefined) resolve({ status: 'unchanged' });
            else if (
              response.statusCode === 200 &&
              etag !== undefined &&
              (length === undefined || Number(length) === body.length)
            )
              resolve({ status: 'found', bytes: body, version: unquote(etag) });
            else if (response.statusCode === 404 && body.includes('<Code>NoSuchKey</Code>'))
              resolve({ status: 'absent' });
            else resolve(undefined);
          });
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
