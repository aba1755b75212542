/** What a registry handler answers, before it is written to the wire (app.ts does that). */
export type Headers = Record<string, string>;

export type Answer =
  | { kind: 'bytes'; status: number; headers: Headers; body: Buffer }
  | { kind: 'redirect'; status: number; location: string; headers: Headers }
  /** A content-store file: Range, If-None-Match and HEAD are handled when it is sent. */
  | { kind: 'file'; path: string; size: number; etag: string; headers: Headers };

export function jsonAnswer(value: unknown, headers: Headers = {}, status = 200): Answer {
  return {
    kind: 'bytes',
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
    body: Buffer.from(JSON.stringify(value)),
  };
}
