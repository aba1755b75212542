/**
 * The access log's pieces that need no server: the combined line, nginx's escaping and $time_local, the JSON line
 * (against pino's own), and the handler and repository read from a path.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import pino from 'pino';
import {
  combinedLine,
  escapeField,
  jsonLine,
  timeLocal,
  type AccessEntry,
} from '../../../src/http/access-log.ts';
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

/** What pino itself writes for `log.info(fields, 'request')`: the fields in the order the access log gives them. */
function pinoLine(log: pino.Logger, lines: string[], entry: AccessEntry): string {
  const fields: Record<string, unknown> = {
    method: entry.method,
    path: entry.path,
    status: entry.status,
    bytes: entry.bytes,
    durationMs: Math.round(entry.durationMs * 1000) / 1000,
    client: entry.client,
    user: entry.user,
    repository: entry.repository,
    redirected: entry.redirected,
    ...(entry.completed ? {} : { completed: false }),
    userAgent: entry.userAgent,
  };
  log.info(fields, 'request');
  return lines.pop() ?? '';
}

function loggers(): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const root = pino(
    { level: 'info', timestamp: () => ',"time":1764653451000' },
    {
      write: (text: string) => lines.push(text),
    },
  );
  return { log: root.child({ reqId: 'req-7' }), lines };
}

const entries = (text: fc.Arbitrary<string>): fc.Arbitrary<AccessEntry> =>
  fc.record({
    method: fc.constantFrom('GET', 'HEAD', 'POST'),
    path: text,
    httpVersion: fc.constant('1.1'),
    status: fc.integer({ min: 100, max: 599 }),
    bytes: fc.nat(),
    durationMs: fc.double({ min: 0, max: 1e6, noNaN: true }),
    client: text,
    user: fc.option(text, { nil: undefined }),
    repository: fc.option(text, { nil: undefined }),
    redirected: fc.boolean(),
    completed: fc.boolean(),
    referer: fc.constant(undefined),
    userAgent: fc.option(text, { nil: undefined }),
    at: fc.constant(0),
  });

test('the JSON line is byte for byte the one pino writes for the same fields', () => {
  const { log, lines } = loggers();
  fc.assert(
    fc.property(entries(fc.string({ maxLength: 80 })), (e) => {
      assert.equal(jsonLine(log, 30, e), pinoLine(log, lines, e));
    }),
  );
});

test('any text (quotes, control characters, lone surrogates) reads back as the same JSON as pino writes', () => {
  const { log, lines } = loggers();
  fc.assert(
    fc.property(entries(fc.string({ unit: 'binary', maxLength: 80 })), (e) => {
      const ours = jsonLine(log, 30, e);
      assert.equal(ours.endsWith('}\n') && !ours.slice(0, -1).includes('\n'), true);
      assert.deepEqual(JSON.parse(ours), JSON.parse(pinoLine(log, lines, e)));
    }),
  );
});
