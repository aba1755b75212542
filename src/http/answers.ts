/** What a registry handler answers, before it is written to the wire (app.ts does that). */
export type Headers = Record<string, string>;

/** Content-addressed bytes anybody may pull: any cache may keep them forever. */
export const IMMUTABLE = 'public, max-age=31536000, immutable';
/** Content only some clients may pull: no shared cache (a CDN, a proxy) may keep it for the next client. */
export const PRIVATE_IMMUTABLE = 'private, max-age=31536000, immutable';
/** Answers that change (tag lists, tags, referrers) of such repositories, and the catalog (it differs per client). */
export const PRIVATE_REVALIDATE = 'private, no-cache';

export type Answer =
  | { kind: 'bytes'; status: number; headers: Headers; body: Buffer }
  | { kind: 'redirect'; status: number; location: string; headers: Headers }
  /** A content-store object: Range, If-None-Match and HEAD are handled when it is sent. */
  | { kind: 'content'; key: string; digest: string; size: number; etag: string; headers: Headers };

export function jsonAnswer(value: unknown, headers: Headers = {}, status = 200): Answer {
  return {
    kind: 'bytes',
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
    body: Buffer.from(JSON.stringify(value)),
  };
}
