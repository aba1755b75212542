/**
 * `serve.sendfile`: the bytes of a blob GET are sent by the proxy in front of derrick, with sendfile, from the
 * tree's content store, and derrick answers everything else. nginx (`x-accel-redirect`) gets
 * `X-Accel-Redirect: <serve.sendfilePrefix><algorithm>/<hex>`, a URI in an `internal` location aliased to
 * `v2/content/`; Apache's mod_xsendfile (`x-sendfile`) gets `X-Sendfile: <absolute path of the content file>`.
 * Both are built only from a digest that parsed as one (parseDigest: an algorithm and lowercase hex), so neither
 * can name anything outside the content store, and no request header is ever copied into them.
 *
 * What derrick still does before handing over, exactly as when it streams: authorization, validation, If-None-Match
 * (304), an unsatisfiable Range (416), HEAD (answered here, never handed over), and a check that the content file
 * is there, a regular file (not a symlink: derrick's own reads do not follow one either) and of the record's size —
 * so a broken tree is answered by derrick's error, not by the proxy's 404 page. The proxy sends the bytes and
 * answers Range itself.
 */
import { promises as fs } from 'node:fs';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config/schema.ts';
import { parseDigest } from '../oci/digest.ts';
import { RegistryError } from '../oci/errors.ts';
import type { Backend } from '../store/backend.ts';
import { CONTENT_PREFIX, contentKey } from '../store/keys.ts';
import type { Answer } from './answers.ts';

type ContentAnswer = Extract<Answer, { kind: 'content' }>;

/** The header that hands one content answer to the proxy, and the file it names. */
export interface Handed {
  name: 'x-accel-redirect' | 'x-sendfile';
  value: string;
  file: string;
}

export type SendfileHeader = (answer: ContentAnswer) => Handed;

/** The header maker for `serve.sendfile`, or undefined when derrick sends the bytes itself (`off`). */
export function sendfileHeader(serve: Config['serve'], backend: Backend): SendfileHeader | undefined {
  const mode = serve.sendfile;
  if (mode === 'off') return undefined;
  // loadConfig refuses sendfile on an s3:// tree; a back end without files reaching here is a bug.
  if (backend.localPath(CONTENT_PREFIX.slice(0, -1)) === undefined)
    throw new Error(`internal: serve.sendfile ${mode} on ${backend.location}, which has no local files`);
  return (answer) => {
    const parsed = parseDigest(answer.digest);
    const key = contentKey(answer.digest);
    if ('error' in parsed || key !== answer.key)
      throw new Error(`internal: content answer ${answer.key} for ${JSON.stringify(answer.digest)}`);
    const file = backend.localPath(key);
    if (file === undefined) throw new Error(`internal: no local file for ${key}`);
    return mode === 'x-accel-redirect'
      ? { name: mode, value: `${serve.sendfilePrefix}${parsed.algorithm}/${parsed.hex}`, file }
      : { name: mode, value: file, file };
  };
}

/**
 * Answers a GET of content with the answer's headers and the hand-over header, and no body (the proxy replaces the
 * body, and the status of a ranged one, with the file's). The caller has answered HEAD, 304 and 416 already.
 */
export async function handOver(
  request: FastifyRequest,
  reply: FastifyReply,
  answer: ContentAnswer,
  backend: Backend,
  header: SendfileHeader,
): Promise<void> {
  const handed = header(answer);
  const stat = await fs.lstat(handed.file).catch(() => undefined);
  if (!stat?.isFile()) {
    request.log.error(
      { object: backend.describe(answer.key) },
      'a blob the record names is missing from the tree',
    );
    throw new RegistryError('UNKNOWN', 'the blob content is missing; the operator has been told');
  }
  if (stat.size !== answer.size) {
    request.log.error(
      { object: backend.describe(answer.key), size: stat.size, expected: answer.size },
      'a blob in the tree has the wrong size',
    );
    throw new RegistryError('UNKNOWN', 'the blob content is corrupt; the operator has been told');
  }
  // nginx, which answers Range, adds its own Accept-Ranges; Apache keeps the upstream's.
  if (handed.name === 'x-sendfile') void reply.header('accept-ranges', 'bytes');
  await reply
    .headers(answer.headers)
    .header(handed.name, handed.value)
    .header('content-length', '0')
    .send('');
}
