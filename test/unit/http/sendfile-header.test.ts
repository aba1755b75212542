/**
 * The hand-over header (src/http/sendfile-header.ts) is built only from a digest that parses as one, and only for
 * the content key of that digest: nothing else (a dot segment, a slash, a key of another area) can reach nginx's
 * X-Accel-Redirect or Apache's X-Sendfile. And a back end without local files (a bucket) has none to hand over.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import type { Answer } from '../../../src/http/answers.ts';
import { sendfileHeader } from '../../../src/http/sendfile-header.ts';
import type { Backend } from '../../../src/store/backend.ts';
import { FsBackend } from '../../../src/store/fs-backend.ts';
import { contentKey } from '../../../src/store/keys.ts';

type ContentAnswer = Extract<Answer, { kind: 'content' }>;

const root = path.resolve('/srv/registry');
const backend = new FsBackend(root);
const HEX = 'ab'.repeat(32);

const answer = (digest: string, key = `v2/content/${digest.replace(':', '/')}`): ContentAnswer => ({
  kind: 'content',
  key,
  digest,
  size: 1,
  etag: `"${digest}"`,
  headers: {},
});

test('x-accel-redirect: <prefix><algorithm>/<hex>; x-sendfile: the content file; off: none', () => {
  const accel = sendfileHeader({ sendfile: 'x-accel-redirect', sendfilePrefix: '/_c/' }, backend);
  const file = path.join(root, 'v2', 'content', 'sha256', HEX);
  assert.deepEqual(accel?.(answer(`sha256:${HEX}`)), {
    name: 'x-accel-redirect',
    value: `/_c/sha256/${HEX}`,
    file,
  });
  const xsendfile = sendfileHeader({ sendfile: 'x-sendfile', sendfilePrefix: '/_c/' }, backend);
  assert.deepEqual(xsendfile?.(answer(`sha256:${HEX}`)), { name: 'x-sendfile', value: file, file });
  assert.equal(sendfileHeader({ sendfile: 'off', sendfilePrefix: '/_c/' }, backend), undefined);
});

test('a digest that does not parse, or a key that is not its content key, is refused, never emitted', () => {
  const accel = sendfileHeader({ sendfile: 'x-accel-redirect', sendfilePrefix: '/_c/' }, backend);
  assert.ok(accel);
  for (const digest of [
    'sha256:../../etc/passwd',
    `sha256:${HEX}/..`,
    `SHA256:${HEX}`,
    `sha256:${HEX.slice(1)}`,
  ])
    assert.throws(() => accel(answer(digest, `v2/content/${digest}`)), /internal/, digest);
  assert.throws(() => accel(answer(`sha256:${HEX}`, 'v2/app/team/app.json')), /internal/);
  assert.equal(contentKey(`sha256:${HEX}`), `v2/content/sha256/${HEX}`);
});

test('a back end without local files cannot hand over (loadConfig refuses sendfile on s3:// before this)', () => {
  const bucket = { location: 's3://b/p', localPath: () => undefined } as unknown as Backend;
  assert.throws(
    () => sendfileHeader({ sendfile: 'x-sendfile', sendfilePrefix: '/_c/' }, bucket),
    /no local files/,
  );
});
