/**
 * Sending a content-store object: `Range` (one range → 206; unsatisfiable → 416), `If-None-Match` / `If-Range`
 * against the digest ETag (304), `Accept-Ranges`, HEAD without a body. The object is opened through the tree's
 * back end (a file without following a final symlink, a GET with the range passed on), checked against the size
 * the record gives, and streamed; a client that goes away mid-blob destroys the stream, which closes the file or
 * the connection to the bucket. A whole read is opened with its digest, so a back end that cannot trust its store
 * fails the answer before its last byte rather than serve other bytes as that digest.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config/schema.ts';
import { RegistryError } from '../oci/errors.ts';
import type { Backend } from '../store/backend.ts';
import { StorageError } from '../store/storage-error.ts';
import type { Answer } from './answers.ts';
import { handOver, sendfileHeader } from './sendfile-header.ts';

type ContentAnswer = Extract<Answer, { kind: 'content' }>;

/** If-None-Match against an ETag: weak comparison, `*` matches (RFC 9110 §13.1.2). */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((candidate) => {
    const value = candidate.trim().replace(/^W\//, '');
    return value === '*' || value === etag;
  });
}

/** A single satisfiable range, 'unsatisfiable', or undefined (no range, or one we ignore as RFC 9110 allows). */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined; // invalid or multiple ranges: the whole representation
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0) return 'unsatisfiable';
    // An empty blob has no byte a 206 could name (`bytes 0--1/0`): RFC 9110 then uses the entire representation.
    if (size === 0) return undefined;
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

/** Sends a content answer: `(request, reply, answer)`, bound to the tree's back end and the sendfile setting. */
export type ContentSender = (
  request: FastifyRequest,
  reply: FastifyReply,
  answer: ContentAnswer,
) => Promise<void>;

/** The sender for this tree and `serve.sendfile` (x-accel-redirect, x-sendfile: see sendfile-header.ts). */
export function contentSender(serve: Config['serve'], backend: Backend): ContentSender {
  const header = sendfileHeader(serve, backend);
  return (request, reply, answer) => sendContent(request, reply, answer, backend, header);
}

export async function sendContent(
  request: FastifyRequest,
  reply: FastifyReply,
  answer: ContentAnswer,
  backend: Backend,
  /** Hands the bytes of a GET to the proxy in front (serve.sendfile), instead of sending them. */
  sendfile?: ReturnType<typeof sendfileHeader>,
): Promise<void> {
  const { size, etag } = answer;
  if (etagMatches(request.headers['if-none-match'], etag)) {
    await reply.code(304).headers(answer.headers).send();
    return;
  }
  const ifRange = request.headers['if-range'];
  const range =
    ifRange === undefined || ifRange === etag ? parseRange(request.headers.range, size) : undefined;
  if (range === 'unsatisfiable') {
    // An error, not the content: none of the content's (year-long cacheable) headers.
    void reply.header('content-range', `bytes */${size}`).header('accept-ranges', 'bytes');
    throw new RegistryError('RANGE_INVALID', `the range is outside the ${size} bytes of this blob`);
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? size - 1;
  const length = size === 0 ? 0 : end - start + 1;
  if (request.method === 'HEAD') {
    void reply.headers(answer.headers).header('accept-ranges', 'bytes');
    if (range) void reply.code(206).header('content-range', `bytes ${start}-${end}/${size}`);
    await reply.header('content-length', String(length)).send();
    return;
  }
  if (sendfile) {
    await handOver(request, reply, answer, backend, sendfile);
    return;
  }
  let opened;
  try {
    // A whole read is asked for as one (no range), so that a back end that cannot trust its store verifies it.
    opened = range
      ? await backend.open(answer.key, { start, end })
      : await backend.open(answer.key, undefined, answer.digest);
  } catch (error) {
    if (error instanceof StorageError) throw error;
    opened = undefined;
    request.log.error(
      { object: backend.describe(answer.key), err: (error as Error).message },
      'cannot open a blob',
    );
  }
  if (!opened) {
    request.log.error(
      { object: backend.describe(answer.key) },
      'a blob the record names is missing from the tree',
    );
    throw new RegistryError('UNKNOWN', 'the blob content is missing; the operator has been told');
  }
  if (opened.size !== size) {
    opened.stream.destroy();
    request.log.error(
      { object: backend.describe(answer.key), size: opened.size, expected: size },
      'a blob in the tree has the wrong size',
    );
    throw new RegistryError('UNKNOWN', 'the blob content is corrupt; the operator has been told');
  }
  void reply.headers(answer.headers).header('accept-ranges', 'bytes');
  if (range) void reply.code(206).header('content-range', `bytes ${start}-${end}/${size}`);
  void reply.header('content-length', String(length));
  if (length === 0) {
    opened.stream.destroy();
    await reply.send('');
    return;
  }
  opened.stream.once('error', (error) => {
    // Failed before its first byte left (a tampered object held back whole): the error answer that follows must
    // not carry the content's digest, validator or year-long caching.
    if (!reply.raw.headersSent)
      for (const name of Object.keys(answer.headers).concat(
        'accept-ranges',
        'content-range',
        'content-length',
      ))
        reply.removeHeader(name);
    request.log.error(
      { object: backend.describe(answer.key), err: error.message },
      'a blob failed while it was sent',
    );
  });
  await reply.send(opened.stream);
}
