/**
 * `/metrics` of one serving process, through the real app: the text format checked by its grammar
 * (test/helpers/prometheus.ts) and each of derrick's own metrics checked against a known number of requests. On a
 * protected server it needs no credentials and names no repository outside `metrics.repositories`. One suite, two
 * back ends (the storage latency is labelled with the one in use). The cluster's sums: test/e2e/metrics-cluster.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { authTree, basicOf, GROUPS, RULES, SERVICE, type AuthTree } from '../helpers/auth.ts';
import { BACKENDS } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { tokenKey } from '../helpers/pki.ts';
import { observations, parseMetrics, value, type Family } from '../helpers/prometheus.ts';
import { publishInto, serveTree, suiteTree, type Flags } from '../helpers/server.ts';

const scratch = tempDir('derrick-serve-metrics-');
after(() => scratch.cleanup());

async function scrape(app: FastifyInstance): Promise<{ text: string; families: Map<string, Family> }> {
  // No credentials, on a server whose every other answer needs them or names nothing.
  const answer = await app.inject({ method: 'GET', url: '/metrics' });
  assert.equal(answer.statusCode, 200, answer.body);
  assert.match(String(answer.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return { text: answer.body, families: parseMetrics(answer.body) };
}

const get = (app: FastifyInstance, url: string, authorization?: string, remoteAddress?: string) =>
  app.inject({
    method: 'GET',
    url,
    headers: authorization === undefined ? {} : { authorization },
    ...(remoteAddress === undefined ? {} : { remoteAddress }),
  });

for (const backend of BACKENDS)
  describe(backend, () => {
    let tree!: AuthTree;
    let removeTree!: () => Promise<void>;
    const apps: FastifyInstance[] = [];
    let keyFile = '';

    before(async () => {
      const { spot, remove } = await suiteTree(backend);
      removeTree = remove;
      tree = await authTree(path.join(scratch.dir, backend), spot);
      keyFile = tokenKey(path.join(scratch.dir, `${backend}-token.key`));
    });
    after(async () => {
      for (const app of apps) await app.close();
      await removeTree();
    });

    async function app(extra: Flags = {}): Promise<FastifyInstance> {
      const made = await serveTree(tree.dataDir, {
        'auth.htpasswd': tree.htpasswd,
        'auth.groups': JSON.stringify(GROUPS),
        access: JSON.stringify(RULES),
        'auth.token.key': keyFile,
        'auth.token.service': SERVICE,
        ...extra,
      });
      apps.push(made);
      return made;
    }

    test('on a protected server it needs no credentials and names only the allow-listed repositories', async () => {
      const served = await app({ 'metrics.repositories': '["public/*"]' });
      assert.equal((await get(served, '/v2/public/app/manifests/1')).statusCode, 200);
      assert.equal((await get(served, '/v2/public/app/manifests/1')).statusCode, 200);
      assert.equal((await get(served, '/v2/team/app/manifests/1', basicOf('alice'))).statusCode, 200);
      assert.equal((await get(served, '/v2/secret/app/manifests/1', basicOf('bob'))).statusCode, 200);
      assert.equal((await get(served, '/v2/secret/app/manifests/1')).statusCode, 401);
      const { text, families } = await scrape(served);
      assert.equal(value(families, 'derrick_pulls_total', { repository: 'public/app' }), 2);
      assert.equal(value(families, 'derrick_pulls_total', { repository: 'other' }), 2);
      for (const name of ['team/app', 'secret/app', 'open/app', 'norule/app'])
        assert.ok(!text.includes(name), name);
      assert.equal(
        value(families, 'registry_http_requests_total', { handler: 'manifest', code: '401', method: 'get' }),
        1,
      );
    });

    test('without metrics.repositories no repository is named at all', async () => {
      const served = await app();
      assert.equal((await get(served, '/v2/public/app/manifests/1')).statusCode, 200);
      const { text, families } = await scrape(served);
      assert.doesNotMatch(text, /\/app/);
      assert.equal(value(families, 'derrick_pulls_total', { repository: 'other' }), 1);
    });

    test('failed logins, 429s, tokens issued and catalog pages are counted', async () => {
      const served = await app({ 'auth.failedLogins.limit': '2' });
      const wrong = `Basic ${Buffer.from('alice:wrong').toString('base64')}`;
      const url = '/v2/team/app/tags/list';
      assert.equal((await get(served, url, wrong, '127.0.0.9')).statusCode, 401);
      assert.equal((await get(served, url, wrong, '127.0.0.9')).statusCode, 401);
      assert.equal((await get(served, url, basicOf('alice'), '127.0.0.9')).statusCode, 429);
      assert.equal((await get(served, `/auth/token?service=${SERVICE}`, basicOf('alice'))).statusCode, 200);
      for (let page = 0; page < 3; page++)
        assert.equal((await get(served, '/v2/_catalog?n=1', basicOf('alice'))).statusCode, 200);
      const { families } = await scrape(served);
      assert.equal(value(families, 'derrick_failed_logins_total'), 2);
      assert.equal(value(families, 'derrick_login_throttled_total'), 1);
      assert.equal(value(families, 'derrick_tokens_issued_total'), 1);
      assert.equal(value(families, 'derrick_catalog_pages_total'), 3);
      assert.equal(value(families, 'registry_http_requests_total', { handler: 'token', code: '200' }), 1);
      assert.equal(value(families, 'registry_http_requests_total', { handler: 'tags', code: '401' }), 2);
    });

    test('blob GETs: redirected ones and served ones (with their bytes) apart; HEADs in neither', async () => {
      const served = await app();
      const redirected = await app({ mode: 'redirect', 'redirect.url': 'https://cdn.example.com' });
      const blob = `/v2/public/app/blobs/${tree.layer}`;
      const bytes = (await get(served, blob)).rawPayload.length;
      await served.inject({ method: 'HEAD', url: blob });
      assert.equal((await get(redirected, blob)).statusCode, 302);
      assert.equal((await get(redirected, blob)).statusCode, 302);
      const serve = (await scrape(served)).families;
      assert.equal(value(serve, 'derrick_served_total', { handler: 'blob' }), 1);
      assert.equal(value(serve, 'derrick_served_bytes_total', { handler: 'blob' }), bytes);
      assert.equal(value(serve, 'derrick_redirects_total'), 0);
      const redirect = (await scrape(redirected)).families;
      assert.equal(value(redirect, 'derrick_redirects_total', { handler: 'blob' }), 2);
      assert.equal(value(redirect, 'derrick_served_total'), 0);
      assert.equal(observations(redirect, 'registry_http_response_size_bytes', { handler: 'blob' }), 2);
    });

    test('storage operations are timed under the back end in use', async () => {
      const served = await app();
      assert.equal((await get(served, '/v2/public/app/manifests/1')).statusCode, 200);
      const { families } = await scrape(served);
      assert.equal(
        observations(families, 'derrick_storage_operation_duration_seconds', { backend }) > 0,
        true,
      );
      const other = backend === 'fs' ? 's3' : 'fs';
      assert.equal(
        observations(families, 'derrick_storage_operation_duration_seconds', { backend: other }),
        0,
      );
    });

    test('the record cache: a miss, then revalidated, then reread once the record changed; a hit within its TTL', async () => {
      const served = await app();
      const url = '/v2/public/app/manifests/1';
      assert.equal((await get(served, url)).statusCode, 200);
      assert.equal((await get(served, url)).statusCode, 200);
      let { families } = await scrape(served);
      assert.equal(value(families, 'derrick_record_cache_total', { result: 'miss' }), 1);
      assert.equal(value(families, 'derrick_record_cache_total', { result: 'revalidated' }), 1);
      const source = `oci:${path.join(scratch.dir, backend, 'layout')}:latest`;
      await publishInto(tree.dataDir, source, ['public/app:2']);
      assert.equal((await get(served, url)).statusCode, 200);
      ({ families } = await scrape(served));
      assert.equal(value(families, 'derrick_record_cache_total', { result: 'reread' }), 1);
      assert.equal(value(families, 'derrick_record_cache_total', { result: 'hit' }), 0);
      const lasting = await app({ 'cache.recordTtlSeconds': '600' });
      assert.equal((await get(lasting, url)).statusCode, 200);
      assert.equal((await get(lasting, url)).statusCode, 200);
      ({ families } = await scrape(lasting));
      assert.equal(value(families, 'derrick_record_cache_total', { result: 'miss' }), 1);
      assert.equal(value(families, 'derrick_record_cache_total', { result: 'hit' }), 1);
    });

    test('metrics.enabled false, or metrics.listen set: the main listener answers /metrics 404', async () => {
      for (const extra of [{ 'metrics.enabled': 'false' }, { 'metrics.listen': '127.0.0.1:5001' }]) {
        const served = await app(extra);
        assert.equal((await served.inject({ method: 'GET', url: '/metrics' })).statusCode, 404);
      }
    });
  });
