/**
 * derrick behind proxies it trusts (`trustedProxies`), through the real app: failed logins are counted per client
 * as X-Forwarded-For names it, so one client's wrong passwords do not lock out every client of the proxy; a client
 * cannot pick its own address by sending the header; the token realm follows X-Forwarded-Proto and -Host; and
 * the list is applied by a reload. The same through a real nginx: test/e2e/proxy.test.ts.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { reloadApp } from '../../src/http/app.ts';
import { authTree, basic, basicOf, GROUPS, RULES, SERVICE, type AuthTree } from '../helpers/auth.ts';
import { BACKENDS } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { tokenKey } from '../helpers/pki.ts';
import { assertOciError, header, serveConfig, serveTree, suiteTree, type Flags } from '../helpers/server.ts';

const scratch = tempDir('derrick-serve-proxies-');
const URL = '/v2/team/app/tags/list';
const PROXY = '10.1.2.3';
let keyFile = '';

before(() => {
  keyFile = tokenKey(path.join(scratch.dir, 'token.key'), 'ec');
});
after(() => scratch.cleanup());

for (const backend of BACKENDS)
  describe(backend, () => {
    let tree!: AuthTree;
    let removeTree!: () => Promise<void>;
    const apps: FastifyInstance[] = [];

    before(async () => {
      const { spot, remove } = await suiteTree(backend);
      removeTree = remove;
      tree = await authTree(path.join(scratch.dir, backend), spot);
    });

    after(async () => {
      await Promise.all(apps.map((app) => app.close()));
      await removeTree();
    });

    /** Basic logins limited to 2 failures per client in 10 minutes, and the given trusted proxies. */
    function flagsWith(trustedProxies: string[], extra: Flags = {}): Flags {
      return {
        'auth.htpasswd': tree.htpasswd,
        'auth.groups': JSON.stringify(GROUPS),
        access: JSON.stringify(RULES),
        'auth.failedLogins.limit': '2',
        'auth.failedLogins.windowSeconds': '600',
        trustedProxies: JSON.stringify(trustedProxies),
        ...extra,
      };
    }

    async function appWith(flags: Flags): Promise<FastifyInstance> {
      const app = await serveTree(tree.dataDir, flags);
      apps.push(app);
      return app;
    }

    function get(
      app: FastifyInstance,
      peer: string,
      headers: Record<string, string | string[]>,
      url = URL,
    ): Promise<LightMyRequestResponse> {
      return app.inject({ method: 'GET', url, remoteAddress: peer, headers });
    }

    /** Two wrong passwords from the client that `headers` make it: that client is then limited. */
    async function lockOut(
      app: FastifyInstance,
      peer: string,
      headers: Record<string, string>,
    ): Promise<void> {
      for (const password of ['wrong-1', 'wrong-2'])
        assertOciError(
          await get(app, peer, { ...headers, authorization: basic('alice', password) }),
          401,
          'UNAUTHORIZED',
        );
      assertOciError(
        await get(app, peer, { ...headers, authorization: basicOf('alice') }),
        429,
        'TOOMANYREQUESTS',
      );
    }

    describe('failed logins behind a trusted proxy', () => {
      test('are counted per forwarded client: another client of the same proxy still logs in', async () => {
        const app = await appWith(flagsWith(['10.0.0.0/8']));
        await lockOut(app, PROXY, { 'x-forwarded-for': '192.0.2.50' });
        const other = await get(app, PROXY, {
          'x-forwarded-for': '192.0.2.51',
          authorization: basicOf('alice'),
        });
        assert.equal(other.statusCode, 200, other.body);
        // The proxy's own requests (no header) are another client again.
        assert.equal((await get(app, PROXY, { authorization: basicOf('alice') })).statusCode, 200);
      });

      test('a client cannot escape the limit by writing X-Forwarded-For itself: the proxy appends the real address', async () => {
        const app = await appWith(flagsWith(['10.0.0.0/8']));
        for (const [i, password] of ['wrong-1', 'wrong-2'].entries())
          assertOciError(
            await get(app, PROXY, {
              'x-forwarded-for': `198.51.100.${i}, 192.0.2.60`,
              authorization: basic('alice', password),
            }),
            401,
            'UNAUTHORIZED',
          );
        const forged = await get(app, PROXY, {
          'x-forwarded-for': '198.51.100.99, 192.0.2.60',
          authorization: basicOf('alice'),
        });
        assertOciError(forged, 429, 'TOOMANYREQUESTS');
      });

      test('from a peer that is not trusted, X-Forwarded-For is ignored: the peer is the client', async () => {
        const app = await appWith(flagsWith(['10.0.0.0/8']));
        for (const [i, password] of ['wrong-1', 'wrong-2'].entries())
          assertOciError(
            await get(app, '192.0.2.70', {
              'x-forwarded-for': `198.51.100.${i}`,
              authorization: basic('alice', password),
            }),
            401,
            'UNAUTHORIZED',
          );
        assertOciError(
          await get(app, '192.0.2.70', {
            'x-forwarded-for': '198.51.100.9',
            authorization: basicOf('alice'),
          }),
          429,
          'TOOMANYREQUESTS',
        );
      });

      test('with no trusted proxies (the default) every client of a proxy shares its address', async () => {
        const app = await appWith(flagsWith([]));
        await lockOut(app, PROXY, { 'x-forwarded-for': '192.0.2.50' });
        assertOciError(
          await get(app, PROXY, { 'x-forwarded-for': '192.0.2.51', authorization: basicOf('alice') }),
          429,
          'TOOMANYREQUESTS',
        );
      });

      test('IPv6 clients behind an IPv6 proxy are counted by their /64', async () => {
        const app = await appWith(flagsWith(['fd00::/8']));
        await lockOut(app, 'fd00::1', { 'x-forwarded-for': '2001:db8:5:6::1' });
        assertOciError(
          await get(app, 'fd00::1', {
            'x-forwarded-for': '2001:db8:5:6::2',
            authorization: basicOf('alice'),
          }),
          429,
          'TOOMANYREQUESTS',
        );
        const otherNet = await get(app, 'fd00::1', {
          'x-forwarded-for': '2001:db8:5:7::1',
          authorization: basicOf('alice'),
        });
        assert.equal(otherNet.statusCode, 200, otherNet.body);
      });
    });

    describe('the token realm behind a trusted proxy', () => {
      const tokenFlags = (proxies: string[]): Flags =>
        flagsWith(proxies, { 'auth.token.key': keyFile, 'auth.token.service': SERVICE });
      const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'registry.example.com' };

      test('follows X-Forwarded-Proto and -Host from a trusted proxy (a TLS-terminating one: https)', async () => {
        const app = await appWith(tokenFlags(['10.0.0.0/8']));
        const answer = await get(app, PROXY, forwarded);
        assert.equal(answer.statusCode, 401);
        assert.match(
          header(answer, 'www-authenticate') ?? '',
          /^Bearer realm="https:\/\/registry\.example\.com\/auth\/token"/,
        );
      });

      test('ignores them from anybody else, and ignores malformed ones', async () => {
        const app = await appWith(tokenFlags(['10.0.0.0/8']));
        const untrusted = await get(app, '192.0.2.80', forwarded);
        assert.match(
          header(untrusted, 'www-authenticate') ?? '',
          /^Bearer realm="http:\/\/localhost:80\/auth\/token"/,
        );
        const malformed = await get(app, PROXY, {
          'x-forwarded-proto': 'javascript',
          'x-forwarded-host': 'evil.example.com/path"',
        });
        assert.match(
          header(malformed, 'www-authenticate') ?? '',
          /^Bearer realm="http:\/\/localhost:80\/auth\/token"/,
        );
      });
    });

    describe('reloading the trusted proxies', () => {
      test('applies without a restart', async () => {
        const flags = flagsWith([]);
        const app = await appWith(flags);
        await lockOut(app, PROXY, { 'x-forwarded-for': '192.0.2.90' });
        const next = serveConfig(tree.dataDir, { ...flags, trustedProxies: JSON.stringify([PROXY]) });
        assert.deepEqual(reloadApp(app, next), []);
        const other = await get(app, PROXY, {
          'x-forwarded-for': '192.0.2.91',
          authorization: basicOf('alice'),
        });
        assert.equal(other.statusCode, 200, other.body);
      });
    });
  });
