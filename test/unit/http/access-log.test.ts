/**
 * The access log's pieces that need no server: the combined line, nginx's escaping and $time_local, and the
 * handler and repository read from a path.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { combinedLine, escapeField, timeLocal, type AccessEntry } from '../../../src/http/access-log.ts';
import { classify } from '../../../src/http/observe.ts';

const entry: AccessEntry = {
  method: 'GET',
  path: '/v2/a/b/manifests/1',
  httpVersion: '1.1',
  status: 200,
  bytes: 491,
  durationMs: 0.5,
  client: '192.0.2.1',
  user: undefined,
  repository: 'a/b',
  redirected: false,
  completed: true,
  referer: undefined,
  userAgent: 'curl/8.0',
  at: Date.UTC(2026, 11, 2, 5, 40, 51),
};

test('a combined line is what nginx writes, dashes for what is missing', () => {
  const line = combinedLine(entry);
  assert.match(
    line,
    /^192\.0\.2\.1 - - \[02\/Dec\/2026:\d\d:\d\d:51 [+-]\d{4}\] "GET \/v2\/a\/b\/manifests\/1 HTTP\/1\.1" 200 491 "-" "curl\/8\.0"$/,
  );
});

test('quotes, backslashes, control and non-ASCII bytes are written \\xHH, as nginx escapes them', () => {
  assert.equal(escapeField('a"b\\c\nd é'), 'a\\x22b\\x5Cc\\x0Ad \\xC3\\xA9');
  assert.equal(combinedLine({ ...entry, user: 'user:al ice', userAgent: '' }).includes('"-"'), true);
});

test('$time_local has the day, the English month, the time and the offset', () => {
  assert.match(timeLocal(entry.at), /^02\/Dec\/2026:\d{2}:\d{2}:51 [+-]\d{4}$/);
});

test('the handler and the repository come from the path as distribution routes it', () => {
  assert.deepEqual(classify('/v2/'), { handler: 'base' });
  assert.deepEqual(classify('/v2'), { handler: 'base' });
  assert.deepEqual(classify('/v2/_catalog'), { handler: 'catalog' });
  assert.deepEqual(classify('/v2/a/b/manifests/latest'), { handler: 'manifest', repository: 'a/b' });
  assert.deepEqual(classify('/v2/a/manifests/b/manifests/1'), {
    handler: 'manifest',
    repository: 'a/manifests/b',
  });
  assert.deepEqual(classify('/v2/a/blobs/sha256:00'), { handler: 'blob', repository: 'a' });
  assert.deepEqual(classify('/v2/a/referrers/sha256:00'), { handler: 'referrers', repository: 'a' });
  assert.deepEqual(classify('/v2/a/b/tags/list'), { handler: 'tags', repository: 'a/b' });
  assert.deepEqual(classify('/auth/token'), { handler: 'token' });
  assert.deepEqual(classify('/metrics'), { handler: 'metrics' });
  assert.deepEqual(classify('/'), { handler: 'other' });
  assert.deepEqual(classify('/v2/a/blobs/uploads/'), { handler: 'other' });
});
