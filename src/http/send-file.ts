/**
 * Sending a content-store file: `Range` (one range → 206; unsatisfiable → 416), `If-None-Match` / `If-Range`
 * against the digest ETag (304), `Accept-Ranges`, HEAD without a body. The file is opened without following a
 * final symlink, checked against the size the record gives, and streamed; a client that goes away mid-blob
 * destroys the stream, which closes the file.
 */
import { constants, promises as fs } from 'node:fs';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../oci/errors.ts';
import type { Answer } from './answers.ts';

type FileAnswer = Extract<Answer, { kind: 'file' }>;

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

export async function sendFile(
  request: FastifyRequest,
  reply: FastifyReply,
  answer: FileAnswer,
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
  void reply.headers(answer.headers).header('accept-ranges', 'bytes');
  const start = range?.start ?? 0;
  const end = range?.end ?? size - 1;
  const length = size === 0 ? 0 : end - start + 1;
  if (range) void reply.code(206).header('content-range', `bytes ${start}-${end}/${size}`);
  void reply.header('content-length', String(length));
  if (request.method === 'HEAD') {
    await reply.send();
    return;
  }
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(answer.path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    request.log.error(
      { file: answer.path, err: (error as Error).message },
      'a blob the record names is missing from the tree',
    );
    throw new RegistryError('UNKNOWN', 'the blob content is missing; the operator has been told');
  }
  const stat = await handle.stat();
  if (!stat.isFile() || stat.size !== size) {
    await handle.close();
    request.log.error(
      { file: answer.path, size: stat.size, expected: size },
      'a blob in the tree has the wrong size',
    );
    throw new RegistryError('UNKNOWN', 'the blob content is corrupt; the operator has been told');
  }
  if (length === 0) {
    await handle.close();
    await reply.send('');
    return;
  }
  await reply.send(handle.createReadStream({ start, end, highWaterMark: 256 * 1024 }));
}
