/**
 * Protected repositories through the real app (app.inject): who is denied what and how (401 with a challenge, 403,
 * or 404 like a missing repository — for referrers, the empty list a missing repository has), on every read
 * endpoint, GET and HEAD; who is allowed (Basic users, group
 * members, tokens from /auth/token, anonymous on public repositories); /v2/; a _catalog filtered per client;
 * failed-login rate limiting; Cache-Control and redirects of content not everybody may pull; htpasswd changes
 * and reloads without a restart. Tokens in detail: serve-auth-tokens.test.ts; mutual TLS: serve-auth-tls.test.ts.
 * One suite, two back ends (a directory, a bucket of the test S3 server), the tree published once for each; they
 * differ in one documented point (docs/storage.md): redirect mode without redirect.token serves what not everybody
 * may pull from a directory, and redirects it to a presigned URL of a bucket.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { FailureRelay } from '../../src/auth/failed-logins.ts';
import { reloadApp } from '../../src/http/app.ts';
import {
  ALL_REPOSITORIES,
  assertNoReferrers,
  basic,
  basicOf,
  bearer,
  comparable,
  fetchToken,
  GROUPS,
  isReferrers,
  METHODS,
  PASSWORDS,
  PULLABLE,
  repositoryUrls,
  request,
  RULES,
  SERVICE,
  writeHtpasswd,
} from '../helpers/auth.ts';
import { appOverTree, authTreeOn, presignedBytes, type AuthTreeOn } from '../helpers/auth-backends.ts';
import { BACKENDS, freshTree } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { imageWithReferrerLayout, singleImageLayout } from '../helpers/images.ts';
import { tokenKey } from '../helpers/pki.ts';
import {
  assertOciError,
  header,
  openTree,
  publishInto,
  serveConfig,
  serveTree,
  type Flags,
  type Where,
} from '../helpers/server.ts';

const scratch = tempDir('derrick-serve-auth-');
after(() => scratch.cleanup());
const CDN = 'http://cdn.example.test/base';
const SECRET = '00112233445566778899aabbccddeeff';
const BASIC_CHALLENGE = 'Basic realm="derrick",charset="UTF-8"';
/** inject() sends Host: localhost:80, so the default token realm is this. */
const REALM = 'http://localhost:80/auth/token';

/** A denied answer: status, OCI error code (GET) or no body (HEAD), and never a Location. */
function assertDenied(
  answer: LightMyRequestResponse,
  method: string,
  status: number,
  code: string,
  what: string,
): void {
  assert.equal(answer.statusCode, status, `${what}: ${answer.statusCode} ${answer.body}`);
  assert.equal(answer.headers.location, undefined, `${what}: a denied answer must not redirect`);
  if (method === 'GET') {
    const error = assertOciError(answer, status, code);
    assert.ok(error.message.length > 0);
  } else assert.equal(answer.body, '', `${what}: HEAD has no body`);
}

const DENIED_NAMES = ['team/app', 'secret/app', 'norule/app'];
/** A missing repository under the same rule as each existing one, and a name of the same length. */
const TWIN: Record<string, string> = {
  'team/app': 'team/xyz',
  'secret/app': 'secret/xyz',
  'norule/app': 'norule/xyz',
  'open/app': 'open/xyz',
};

for (const backend of BACKENDS)
  describe(backend, () => {
    let tree!: AuthTreeOn;
    let keyFile = '';
    const apps: FastifyInstance[] = [];

    /** Flags of the access policy every app here shares (failed logins: effectively unlimited unless a test says). */
    function policy(extra: Flags = {}): Flags {
      return {
        'auth.htpasswd': tree.htpasswd,
        'auth.groups': JSON.stringify(GROUPS),
        access: JSON.stringify(RULES),
        'auth.failedLogins.limit': '1000000',
        ...extra,
      };
    }

    function withToken(extra: Flags = {}): Flags {
      return policy({ 'auth.token.key': keyFile, 'auth.token.service': SERVICE, ...extra });
    }

    async function appWith(flags: Flags, where: Where = tree.dataDir): Promise<FastifyInstance> {
      const app = await serveTree(where, flags);
      apps.push(app);
      return app;
    }

    /** Basic login only, redirect mode without redirect.token (what not everybody may pull: served or presigned). */
    let basicApp!: FastifyInstance;
    /** Basic login and derrick's own tokens, redirect mode with signed URLs. */
    let bearerApp!: FastifyInstance;
    /** As bearerApp, with auth.denied: notFound. */
    let notFoundApp!: FastifyInstance;
    /** The same rules, and nothing to log in to. */
    let noLoginApp!: FastifyInstance;

    /** This back end's own files (layouts, htpasswd copies, keys). */
    const dir = path.join(scratch.dir, backend);

    before(async () => {
      tree = await authTreeOn(backend, dir);
      keyFile = tokenKey(path.join(dir, 'token.key'), 'ec');
      basicApp = await appWith(policy({ mode: 'redirect', 'redirect.url': CDN }));
      bearerApp = await appWith(
        withToken({ mode: 'redirect', 'redirect.url': CDN, 'redirect.token.secret': SECRET }),
      );
      notFoundApp = await appWith(
        withToken({ mode: 'redirect', 'redirect.url': CDN, 'auth.denied': 'notFound' }),
      );
      noLoginApp = await appWith({ access: JSON.stringify(RULES), 'auth.groups': JSON.stringify(GROUPS) });
    });

    after(async () => {
      await Promise.all(apps.map((app) => app.close()));
      await tree.remove();
    });

    /** Calls `check` for every endpoint of every repository in `names`, GET and HEAD. */
    async function everyEndpoint(
      names: readonly string[],
      check: (method: string, url: string, what: string, name: string) => Promise<void>,
    ): Promise<number> {
      let checked = 0;
      for (const name of names)
        for (const [what, url] of repositoryUrls(name, tree))
          for (const method of METHODS) {
            await check(method, url, `${method} ${what} of ${name}`, name);
            checked++;
          }
      return checked;
    }

    /** An allowed answer: the content, served (200) or redirected (302 to the CDN or presigned), never an error. */
    async function assertPulled(
      answer: LightMyRequestResponse,
      method: string,
      url: string,
      what: string,
    ): Promise<void> {
      let bytes = answer.rawPayload;
      if (answer.statusCode === 302) {
        assert.equal(method, 'GET', `${what}: HEAD is answered from the record`);
        assert.ok(
          !url.includes('/tags/list') && !url.includes('/referrers/'),
          `${what}: lists are not redirected`,
        );
        if (header(answer, 'location')?.startsWith(`${CDN}/`)) return;
        // Not to the CDN: only a presigned URL of the tree's bucket, whose bytes are checked like served ones.
        bytes = await presignedBytes(answer, tree.spot, what);
      } else {
        assert.equal(answer.statusCode, 200, `${what}: ${answer.statusCode} ${answer.body}`);
        if (method === 'HEAD') return;
      }
      if (url.includes('/manifests/'))
        assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, tree.image.digest);
      else if (url.includes('/blobs/'))
        assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, tree.layer);
      else if (url.includes('/tags/list'))
        assert.deepEqual((JSON.parse(answer.body) as { tags: string[] }).tags, ['1']);
      else
        assert.deepEqual(
          (JSON.parse(answer.body) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest),
          [tree.artifact.digest],
        );
    }

    describe('denied, on every endpoint (manifest by tag and by digest, blob, tags/list, referrers; GET and HEAD)', () => {
      test('anonymous, Basic login configured → 401 UNAUTHORIZED with a Basic challenge', async () => {
        const count = await everyEndpoint([...DENIED_NAMES, 'open/app'], async (method, url, what) => {
          const answer = await request(basicApp, method, url);
          assertDenied(answer, method, 401, 'UNAUTHORIZED', what);
          assert.equal(header(answer, 'www-authenticate'), BASIC_CHALLENGE, what);
        });
        assert.equal(count, 40);
      });

      test('anonymous, tokens configured → 401 UNAUTHORIZED with a Bearer challenge naming scope repository:<name>:pull', async () => {
        await everyEndpoint([...DENIED_NAMES, 'open/app'], async (method, url, what, name) => {
          const answer = await request(bearerApp, method, url);
          assertDenied(answer, method, 401, 'UNAUTHORIZED', what);
          assert.equal(
            header(answer, 'www-authenticate'),
            `Bearer realm="${REALM}",service="${SERVICE}",scope="repository:${name}:pull"`,
            what,
          );
          if (method === 'GET') {
            const detail = (JSON.parse(answer.body) as { errors: { detail: unknown }[] }).errors[0]?.detail;
            assert.deepEqual(detail, [{ Type: 'repository', Name: name, Action: 'pull' }], what);
          }
        });
      });

      test('a wrong password (or an unknown user) → 401 UNAUTHORIZED, even on a public repository', async () => {
        for (const [app, challenge] of [
          [basicApp, /^Basic realm="derrick"/],
          [bearerApp, /^Bearer realm="[^"]+",service="registry\.test"$/],
        ] as const)
          for (const authorization of [basic('alice', 'wrong'), basic('mallory', PASSWORDS.alice)])
            await everyEndpoint([...DENIED_NAMES, 'public/app'], async (method, url, what) => {
              const answer = await request(app, method, url, authorization);
              assertDenied(answer, method, 401, 'UNAUTHORIZED', what);
              assert.match(header(answer, 'www-authenticate') ?? '', challenge, what);
              if (method === 'GET') assert.match(answer.body, /incorrect username or password/);
            });
      });

      test('an authenticated user the rule does not name → 403 DENIED, without a challenge', async () => {
        const cases: [string, string[]][] = [
          ['carol', DENIED_NAMES],
          ['alice', ['secret/app', 'norule/app']],
          ['bob', ['team/app', 'norule/app']],
        ];
        for (const app of [basicApp, bearerApp])
          for (const [user, names] of cases)
            await everyEndpoint(names, async (method, url, what, name) => {
              const answer = await request(app, method, url, basicOf(user as 'alice'));
              assertDenied(answer, method, 403, 'DENIED', `${user}: ${what}`);
              assert.equal(header(answer, 'www-authenticate'), undefined, what);
              if (method === 'GET') {
                const detail = (JSON.parse(answer.body) as { errors: { detail: unknown }[] }).errors[0]
                  ?.detail;
                assert.deepEqual(detail, { name });
              }
            });
      });

      test('a bearer token for another repository → 401 with error="insufficient_scope"', async () => {
        const { token } = await fetchToken(bearerApp, ['repository:secret/app:pull'], {
          authorization: basicOf('bob'),
        });
        await everyEndpoint(['team/app', 'norule/app', 'open/app'], async (method, url, what, name) => {
          const answer = await request(bearerApp, method, url, bearer(token));
          assertDenied(answer, method, 401, 'UNAUTHORIZED', what);
          assert.equal(
            header(answer, 'www-authenticate'),
            `Bearer realm="${REALM}",service="${SERVICE}",scope="repository:${name}:pull",error="insufficient_scope"`,
            what,
          );
        });
        // The same token pulls what it was issued for.
        const own = await request(bearerApp, 'GET', '/v2/secret/app/tags/list', bearer(token));
        assert.equal(own.statusCode, 200, own.body);
      });

      test('auth.denied: notFound → 404 NAME_UNKNOWN (referrers: 200 and an empty index), byte for byte a missing repository’s answer but for the name', async () => {
        const { token } = await fetchToken(notFoundApp, ['repository:secret/app:pull'], {
          authorization: basicOf('bob'),
        });
        const clients: [string, string | undefined, string[]][] = [
          ['anonymous', undefined, [...DENIED_NAMES, 'open/app']],
          ['carol', basicOf('carol'), DENIED_NAMES],
          ["bob's token for secret/app", bearer(token), ['team/app', 'norule/app', 'open/app']],
        ];
        for (const [who, authorization, names] of clients)
          await everyEndpoint(names, async (method, url, what, name) => {
            const twin = TWIN[name] ?? '';
            const answer = await request(notFoundApp, method, url, authorization);
            if (isReferrers(url)) assertNoReferrers(answer, method, `${who}: ${what}`);
            else assertDenied(answer, method, 404, 'NAME_UNKNOWN', `${who}: ${what}`);
            assert.equal(header(answer, 'www-authenticate'), undefined);
            const missingUrl = url.replace(`/v2/${name}/`, `/v2/${twin}/`);
            // The same client asking for a missing repository, and a client that may pull there asking for it.
            for (const asker of [authorization, basicOf(name.startsWith('secret') ? 'bob' : 'alice')]) {
              const missing = await request(notFoundApp, method, missingUrl, asker);
              assert.equal(missing.statusCode, isReferrers(url) ? 200 : 404);
              assert.deepEqual(
                comparable(answer, name, twin),
                comparable(missing, twin, twin),
                `${who}: ${what}`,
              );
            }
          });
      });

      test('nothing to log in to → every denied answer is 404 NAME_UNKNOWN (referrers: 200 and an empty index), a missing repository’s answer (Authorization headers ignored)', async () => {
        for (const authorization of [undefined, basicOf('alice')])
          await everyEndpoint([...DENIED_NAMES, 'open/app'], async (method, url, what, name) => {
            const answer = await request(noLoginApp, method, url, authorization);
            if (isReferrers(url)) assertNoReferrers(answer, method, what);
            else assertDenied(answer, method, 404, 'NAME_UNKNOWN', what);
            const twin = TWIN[name] ?? '';
            const missing = await request(
              noLoginApp,
              method,
              url.replace(`/v2/${name}/`, `/v2/${twin}/`),
              authorization,
            );
            assert.deepEqual(comparable(answer, name, twin), comparable(missing, twin, twin), what);
          });
      });
    });

    describe('no existence oracle', () => {
      test('a denied client gets the same answer (status, code, headers, body but for the name) for an existing and a missing repository', async () => {
        const { token } = await fetchToken(bearerApp, ['repository:secret/app:pull'], {
          authorization: basicOf('bob'),
        });
        const clients: [FastifyInstance, string, string | undefined, string[]][] = [
          [basicApp, 'anonymous', undefined, DENIED_NAMES],
          [bearerApp, 'anonymous', undefined, DENIED_NAMES],
          [basicApp, 'carol', basicOf('carol'), DENIED_NAMES],
          [bearerApp, 'alice', basicOf('alice'), ['secret/app', 'norule/app']],
          [bearerApp, 'a token for secret/app', bearer(token), ['team/app', 'norule/app']],
          [bearerApp, 'a wrong password', basic('bob', 'nope'), DENIED_NAMES],
        ];
        let compared = 0;
        for (const [app, who, authorization, names] of clients)
          await everyEndpoint(names, async (method, url, what, name) => {
            const twin = TWIN[name] ?? '';
            const existing = await request(app, method, url, authorization);
            const missing = await request(
              app,
              method,
              url.replace(`/v2/${name}/`, `/v2/${twin}/`),
              authorization,
            );
            assert.ok(existing.statusCode >= 400, `${who}: ${what} must be denied`);
            assert.equal(existing.headers.location, undefined);
            assert.deepEqual(
              comparable(existing, name, twin),
              comparable(missing, twin, twin),
              `${who}: ${what}`,
            );
            compared++;
          });
        assert.equal(compared, 160);
      });

      test('a protected repository’s content cannot be fetched through the name of a public one', async (t) => {
        const cross = path.join(dir, 'cross');
        const spot = await freshTree(backend, t);
        await singleImageLayout(path.join(cross, 'open-layout'), 'latest', 'open');
        const { image } = await imageWithReferrerLayout(path.join(cross, 'secret-layout'), 'latest');
        await publishInto(spot, `oci:${path.join(cross, 'open-layout')}:latest`, ['public/app:1']);
        await publishInto(spot, `oci:${path.join(cross, 'secret-layout')}:latest`, ['secret/app:1'], {
          protected: true,
        });
        const crossTree = await openTree(spot);
        const lookup = await crossTree.readRecord('secret/app').finally(() => crossTree.backend.close());
        assert.ok(lookup.found);
        const secretBlobs = [...lookup.repository.blobs.keys()];
        assert.ok(secretBlobs.length >= 2);
        for (const mode of ['serve', 'redirect']) {
          const app = await appWith(policy({ mode, 'redirect.url': CDN }), spot);
          for (const authorization of [undefined, basicOf('alice')]) {
            for (const digest of secretBlobs)
              for (const method of METHODS) {
                const answer = await request(app, method, `/v2/public/app/blobs/${digest}`, authorization);
                assert.equal(answer.statusCode, 404, `${mode}: ${method} blob ${digest}`);
                assert.equal(answer.headers.location, undefined);
                if (method === 'GET') assertOciError(answer, 404, 'BLOB_UNKNOWN');
              }
            const manifest = await request(
              app,
              'GET',
              `/v2/public/app/manifests/${image.digest}`,
              authorization,
            );
            assertOciError(manifest, 404, 'MANIFEST_UNKNOWN');
            const referrers = await request(
              app,
              'GET',
              `/v2/public/app/referrers/${image.digest}`,
              authorization,
            );
            assert.equal(referrers.statusCode, 200);
            assert.deepEqual((JSON.parse(referrers.body) as { manifests: unknown[] }).manifests, []);
          }
          // bob, who may pull it, gets it under its own name.
          const own = await request(app, 'HEAD', `/v2/secret/app/manifests/${image.digest}`, basicOf('bob'));
          assert.equal(own.statusCode, 200);
        }
      });

      test('documented caveat: anonymous on a protected record under a rule admitting anonymous → 401, a missing one → 404 (referrers: 200 and an empty index)', async () => {
        const existing = await request(bearerApp, 'GET', '/v2/open/app/tags/list');
        assertOciError(existing, 401, 'UNAUTHORIZED');
        const missing = await request(bearerApp, 'GET', '/v2/open/xyz/tags/list');
        assertOciError(missing, 404, 'NAME_UNKNOWN');
        const referrers = `/referrers/${tree.image.digest}`;
        assertOciError(await request(bearerApp, 'GET', `/v2/open/app${referrers}`), 401, 'UNAUTHORIZED');
        assertNoReferrers(await request(bearerApp, 'GET', `/v2/open/xyz${referrers}`), 'GET', 'open/xyz');
      });

      test('referrers filtered on artifactType, auth.denied: notFound or nothing to log in to: a denied repository’s answer is a missing one’s, OCI-Filters-Applied included', async () => {
        const query = `?artifactType=${encodeURIComponent('application/vnd.example.signature.v1')}`;
        for (const app of [notFoundApp, noLoginApp])
          for (const name of [...DENIED_NAMES, 'open/app']) {
            const twin = TWIN[name] ?? '';
            const url = (repository: string) => `/v2/${repository}/referrers/${tree.image.digest}${query}`;
            const denied = await request(app, 'GET', url(name));
            assertNoReferrers(denied, 'GET', name);
            assert.equal(header(denied, 'oci-filters-applied'), 'artifactType', name);
            const missing = await request(app, 'GET', url(twin));
            assert.deepEqual(comparable(denied, name, twin), comparable(missing, twin, twin), name);
          }
      });

      test('referrers, auth.denied: challenge: a missing repository is challenged like an existing one under a rule that does not admit the client, and answered 200 and an empty index where the rule does', async () => {
        // "If the registry supports the referrers API, the registry MUST NOT return a `404 Not Found` to a referrers
        // API requests": to a client that may pull there, a missing repository has no referrers.
        const referrers = (name: string) => `/v2/${name}/referrers/${tree.image.digest}`;
        for (const app of [basicApp, bearerApp]) {
          for (const name of ['norule/xyz', 'team/xyz', 'secret/xyz']) {
            const anonymous = await request(app, 'GET', referrers(name));
            assertOciError(anonymous, 401, 'UNAUTHORIZED');
            assert.ok(header(anonymous, 'www-authenticate'), name);
            assertOciError(await request(app, 'GET', referrers(name), basicOf('carol')), 403, 'DENIED');
          }
          for (const [name, authorization] of [
            ['public/xyz', undefined],
            ['team/xyz', basicOf('alice')],
            ['secret/xyz', basicOf('bob')],
          ] as const)
            for (const method of METHODS)
              assertNoReferrers(await request(app, method, referrers(name), authorization), method, name);
        }
      });
    });

    describe('allowed', () => {
      const pulls = async (app: FastifyInstance, names: string[], authorization?: string): Promise<void> => {
        await everyEndpoint(names, async (method, url, what) => {
          await assertPulled(await request(app, method, url, authorization), method, url, what);
        });
      };

      test('a user the rule names (bob: secret/app, a protected record), with Basic credentials', async () => {
        for (const app of [basicApp, bearerApp]) await pulls(app, ['secret/app'], basicOf('bob'));
      });

      test('a member of a group the rule names (alice in dev: team/app)', async () => {
        for (const app of [basicApp, bearerApp]) await pulls(app, ['team/app'], basicOf('alice'));
      });

      test('any authenticated user on a protected record under a rule admitting anonymous (carol: open/app)', async () => {
        for (const app of [basicApp, bearerApp])
          await pulls(app, ['open/app', 'public/app'], basicOf('carol'));
      });

      test('a token from GET /auth/token (Basic credentials, scope=repository:<name>:pull), then Bearer', async () => {
        const alice = await fetchToken(bearerApp, ['repository:team/app:pull'], {
          authorization: basicOf('alice'),
        });
        await pulls(bearerApp, ['team/app', 'public/app'], bearer(alice.token));
        const bob = await fetchToken(bearerApp, ['repository:secret/app:pull'], {
          authorization: basicOf('bob'),
        });
        await pulls(bearerApp, ['secret/app'], bearer(bob.token));
      });

      test('anonymous on a public repository, whatever is configured', async () => {
        for (const app of [basicApp, bearerApp, notFoundApp, noLoginApp]) await pulls(app, ['public/app']);
      });

      test('a missing repository the client may pull → 404 NAME_UNKNOWN; its referrers → 200 and an empty index', async () => {
        const answer = await request(bearerApp, 'GET', '/v2/team/xyz/tags/list', basicOf('alice'));
        assertOciError(answer, 404, 'NAME_UNKNOWN');
        const url = `/v2/team/xyz/referrers/${tree.image.digest}`;
        assertNoReferrers(await request(bearerApp, 'GET', url, basicOf('alice')), 'GET', url);
      });
    });

    describe('/v2/', () => {
      test('anonymous, with something to log in to → 401 with the challenge (no scope)', async () => {
        for (const [app, challenge] of [
          [basicApp, BASIC_CHALLENGE],
          [bearerApp, `Bearer realm="${REALM}",service="${SERVICE}"`],
        ] as const)
          for (const method of METHODS) {
            const answer = await request(app, method, '/v2/');
            assert.equal(answer.statusCode, 401, answer.body);
            assert.equal(header(answer, 'www-authenticate'), challenge);
            if (method === 'GET') assertOciError(answer, 401, 'UNAUTHORIZED');
          }
      });

      test('valid credentials → 200 (Basic on both, a token where tokens are issued)', async () => {
        const { token } = await fetchToken(bearerApp, [], { authorization: basicOf('carol') });
        for (const [app, authorization] of [
          [basicApp, basicOf('carol')],
          [bearerApp, basicOf('alice')],
          [bearerApp, bearer(token)],
        ] as const) {
          const answer = await request(app, 'GET', '/v2/', authorization);
          assert.equal(answer.statusCode, 200, answer.body);
          assert.equal(answer.body, '{}');
        }
      });

      test('wrong credentials → 401', async () => {
        for (const app of [basicApp, bearerApp])
          for (const authorization of [
            basic('carol', 'wrong'),
            basic('nobody', 'x'),
            'Basic !!!',
            'Digest abc',
          ]) {
            const answer = await request(app, 'GET', '/v2/', authorization);
            assertOciError(answer, 401, 'UNAUTHORIZED');
            assert.ok(header(answer, 'www-authenticate'), authorization);
          }
        const answer = await request(bearerApp, 'GET', '/v2/', bearer('not.a.token'));
        assertOciError(answer, 401, 'UNAUTHORIZED');
        assert.match(header(answer, 'www-authenticate') ?? '', /error="invalid_token"/);
        // A bearer token where only Basic credentials are taken, even one this derrick's key signed elsewhere.
        const { token } = await fetchToken(bearerApp, ['repository:team/app:pull'], {
          authorization: basicOf('alice'),
        });
        for (const url of ['/v2/', '/v2/team/app/tags/list', '/v2/public/app/tags/list']) {
          const refused = await request(basicApp, 'GET', url, bearer(token));
          assertOciError(refused, 401, 'UNAUTHORIZED');
          assert.equal(header(refused, 'www-authenticate'), BASIC_CHALLENGE);
        }
      });

      test('nothing to log in to → 200 for anyone, Authorization headers ignored', async () => {
        for (const authorization of [undefined, basic('alice', 'wrong'), 'Bearer garbage']) {
          const answer = await request(noLoginApp, 'GET', '/v2/', authorization);
          assert.equal(answer.statusCode, 200, answer.body);
          assert.equal(header(answer, 'www-authenticate'), undefined);
        }
      });
    });

    describe('_catalog lists only what the client may pull', () => {
      async function catalog(
        app: FastifyInstance,
        authorization?: string,
        query = '',
      ): Promise<LightMyRequestResponse> {
        const answer = await request(app, 'GET', `/v2/_catalog${query}`, authorization);
        assert.equal(answer.statusCode, 200, answer.body);
        return answer;
      }
      const names = (answer: LightMyRequestResponse): string[] =>
        (JSON.parse(answer.body) as { repositories: string[] }).repositories;

      test('anonymous', async () => {
        for (const app of [basicApp, bearerApp, notFoundApp, noLoginApp])
          assert.deepEqual(names(await catalog(app)), PULLABLE.anonymous);
      });

      test('a Basic user, and a group member', async () => {
        for (const app of [basicApp, bearerApp])
          for (const user of ['alice', 'bob', 'carol'] as const)
            assert.deepEqual(names(await catalog(app, basicOf(user))), PULLABLE[user], user);
      });

      test('a token: with registry:catalog:* by the rules over its identities; without, what it may pull', async () => {
        const withCatalog = await fetchToken(bearerApp, ['registry:catalog:*'], {
          authorization: basicOf('alice'),
        });
        assert.deepEqual(names(await catalog(bearerApp, bearer(withCatalog.token))), PULLABLE.alice);
        const bob = await fetchToken(bearerApp, ['registry:catalog:*', 'repository:secret/app:pull'], {
          authorization: basicOf('bob'),
        });
        assert.deepEqual(names(await catalog(bearerApp, bearer(bob.token))), PULLABLE.bob);
        const onlyTeam = await fetchToken(bearerApp, ['repository:team/app:pull'], {
          authorization: basicOf('alice'),
        });
        assert.deepEqual(names(await catalog(bearerApp, bearer(onlyTeam.token))), ['public/app', 'team/app']);
        const anonymous = await fetchToken(bearerApp, ['registry:catalog:*']);
        assert.deepEqual(names(await catalog(bearerApp, bearer(anonymous.token))), PULLABLE.anonymous);
      });

      test('n=1: every page full, every Link naming a visible repository, all of them and only them in the end', async () => {
        const alice = await fetchToken(bearerApp, ['registry:catalog:*'], {
          authorization: basicOf('alice'),
        });
        const clients: [string, string | undefined, string[]][] = [
          ['anonymous', undefined, PULLABLE.anonymous],
          ['alice', basicOf('alice'), PULLABLE.alice],
          ['bob', basicOf('bob'), PULLABLE.bob],
          ["alice's token", bearer(alice.token), PULLABLE.alice],
        ];
        for (const [who, authorization, expected] of clients) {
          const seen: string[] = [];
          let next: string | undefined = '/v2/_catalog?n=1';
          while (next !== undefined) {
            const answer = await request(bearerApp, 'GET', next, authorization);
            assert.equal(answer.statusCode, 200);
            const page = names(answer);
            assert.equal(page.length, 1, `${who}: a page of n=1 holds one name: ${answer.body}`);
            seen.push(...page);
            const link = header(answer, 'link');
            if (link === undefined) next = undefined;
            else {
              const match = /^<(\/v2\/_catalog\?n=1&last=([^>]+))>; rel="next"$/.exec(link);
              assert.ok(match, link);
              const last = decodeURIComponent(match[2] ?? '');
              assert.ok(expected.includes(last), `${who}: the Link names ${last}, which it may not see`);
              next = match[1];
            }
            assert.ok(seen.length <= ALL_REPOSITORIES.length);
          }
          assert.deepEqual(seen, expected, who);
        }
      });
    });

    describe('failed logins are rate limited per client address', () => {
      test('limit 3: the 4th attempt → 429 TOOMANYREQUESTS with Retry-After, even with the right password; other clients unaffected', async () => {
        const app = await appWith(
          policy({
            'auth.failedLogins.limit': '3',
            'auth.failedLogins.windowSeconds': '600',
            'auth.token.key': keyFile,
            'auth.token.service': SERVICE,
          }),
        );
        const limited = '192.0.2.10';
        const url = '/v2/team/app/tags/list';
        for (let attempt = 1; attempt <= 3; attempt++) {
          const answer = await request(app, 'GET', url, basic('alice', `wrong-${attempt}`), limited);
          assertOciError(answer, 401, 'UNAUTHORIZED');
        }
        const fourth = await request(app, 'GET', url, basicOf('alice'), limited);
        assertOciError(fourth, 429, 'TOOMANYREQUESTS');
        const retryAfter = Number(header(fourth, 'retry-after'));
        assert.ok(
          Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 600,
          `Retry-After: ${retryAfter}`,
        );
        // Every way of logging in is limited for that address: /v2/, HEAD, the token endpoint.
        assert.equal((await request(app, 'GET', '/v2/', basicOf('alice'), limited)).statusCode, 429);
        assert.equal((await request(app, 'HEAD', url, basicOf('alice'), limited)).statusCode, 429);
        const token = await request(
          app,
          'GET',
          `/auth/token?scope=repository:team/app:pull`,
          basicOf('alice'),
          limited,
        );
        assertOciError(token, 429, 'TOOMANYREQUESTS');
        // Another address, right password: served.
        const other = await request(app, 'GET', url, basicOf('alice'), '192.0.2.11');
        assert.equal(other.statusCode, 200, other.body);
      });

      test('an IPv6 client is counted by its /64 (and an IPv4-mapped address as the IPv4 one)', async () => {
        const app = await appWith(
          policy({ 'auth.failedLogins.limit': '2', 'auth.failedLogins.windowSeconds': '600' }),
        );
        const url = '/v2/team/app/tags/list';
        assertOciError(
          await request(app, 'GET', url, basic('alice', 'x'), '2001:db8:1:2::1'),
          401,
          'UNAUTHORIZED',
        );
        assertOciError(
          await request(app, 'GET', url, basic('alice', 'y'), '2001:db8:1:2::ffff'),
          401,
          'UNAUTHORIZED',
        );
        const sameNet = await request(
          app,
          'GET',
          url,
          basicOf('alice'),
          '2001:0db8:0001:0002:aaaa:bbbb:cccc:dddd',
        );
        assertOciError(sameNet, 429, 'TOOMANYREQUESTS');
        assert.equal((await request(app, 'GET', url, basicOf('alice'), '2001:db8:1:3::1')).statusCode, 200);

        assertOciError(
          await request(app, 'GET', url, basic('alice', 'x'), '::ffff:192.0.2.20'),
          401,
          'UNAUTHORIZED',
        );
        assertOciError(
          await request(app, 'GET', url, basic('alice', 'y'), '192.0.2.20'),
          401,
          'UNAUTHORIZED',
        );
        assertOciError(
          await request(app, 'GET', url, basicOf('alice'), '192.0.2.20'),
          429,
          'TOOMANYREQUESTS',
        );
      });

      test('the counts survive a reload that keeps the limits (and start afresh under new limits)', async () => {
        const flags = policy({ 'auth.failedLogins.limit': '2', 'auth.failedLogins.windowSeconds': '600' });
        const app = await appWith(flags);
        const url = '/v2/team/app/tags/list';
        const limited = '192.0.2.30';
        for (const password of ['x', 'y'])
          assertOciError(
            await request(app, 'GET', url, basic('alice', password), limited),
            401,
            'UNAUTHORIZED',
          );
        assertOciError(await request(app, 'GET', url, basicOf('alice'), limited), 429, 'TOOMANYREQUESTS');

        const rules = JSON.stringify([{ match: 'team/*', pull: ['user:alice'] }, ...RULES]);
        assert.deepEqual(reloadApp(app, serveConfig(tree.dataDir, { ...flags, access: rules })), []);
        assertOciError(await request(app, 'GET', url, basicOf('alice'), limited), 429, 'TOOMANYREQUESTS');

        reloadApp(
          app,
          serveConfig(tree.dataDir, { ...flags, access: rules, 'auth.failedLogins.limit': '5' }),
        );
        assert.equal((await request(app, 'GET', url, basicOf('alice'), limited)).statusCode, 200);
      });
    });

    describe('failed logins are counted across the processes of a cluster', () => {
      /** Two relays wired to each other, as derrick serve's primary wires its workers. */
      function pairedRelays(): [FailureRelay, FailureRelay] {
        const listeners: ((key: string, at: number) => void)[] = [];
        const relay = (self: number): FailureRelay => ({
          publish: (key, at) => listeners[1 - self]?.(key, at),
          subscribe: (listener) => (listeners[self] = listener),
        });
        return [relay(0), relay(1)];
      }

      test('failures seen by one process limit the client in the other, also after a reload', async () => {
        const flags = policy({ 'auth.failedLogins.limit': '3', 'auth.failedLogins.windowSeconds': '600' });
        const config = serveConfig(tree.dataDir, flags);
        const [one, two] = (await Promise.all(
          pairedRelays().map(async (relay) => {
            const app = await appOverTree(config, { failedLogins: relay });
            apps.push(app);
            return app;
          }),
        )) as [FastifyInstance, FastifyInstance];
        const url = '/v2/team/app/tags/list';
        const client = '192.0.2.40';
        assertOciError(await request(one, 'GET', url, basic('alice', 'x'), client), 401, 'UNAUTHORIZED');
        assertOciError(await request(two, 'GET', url, basic('alice', 'y'), client), 401, 'UNAUTHORIZED');
        // A reload keeps the counts and the relay.
        const rules = JSON.stringify([{ match: 'team/*', pull: ['user:alice'] }, ...RULES]);
        assert.deepEqual(reloadApp(one, serveConfig(tree.dataDir, { ...flags, access: rules })), []);
        assertOciError(await request(one, 'GET', url, basic('alice', 'z'), client), 401, 'UNAUTHORIZED');
        for (const app of [one, two])
          assertOciError(await request(app, 'GET', url, basicOf('alice'), client), 429, 'TOOMANYREQUESTS');
        assert.equal((await request(two, 'GET', url, basicOf('alice'), '192.0.2.41')).statusCode, 200);
      });
    });

    describe('Cache-Control and redirects of content not everybody may pull', () => {
      const PUBLIC = 'public, max-age=31536000, immutable';
      const PRIVATE = 'private, max-age=31536000, immutable';

      test('serve mode: private for the answers about a repository not everybody may pull (immutable for blobs and manifests by digest), public for an open one', async () => {
        const app = await appWith(policy({ mode: 'serve' }));
        const cases: [string, string | undefined, boolean][] = [
          ['public/app', undefined, true],
          ['public/app', basicOf('alice'), true],
          ['team/app', basicOf('alice'), false],
          ['secret/app', basicOf('bob'), false],
          // Under a rule that admits anonymous, but published protected: not everybody may pull it.
          ['open/app', basicOf('carol'), false],
        ];
        for (const [name, authorization, isPublic] of cases) {
          const expected: Record<string, string | undefined> = {
            [`/v2/${name}/blobs/${tree.layer}`]: isPublic ? PUBLIC : PRIVATE,
            [`/v2/${name}/manifests/${tree.image.digest}`]: isPublic ? PUBLIC : PRIVATE,
            [`/v2/${name}/manifests/1`]: isPublic ? 'no-cache' : 'private, no-cache',
            [`/v2/${name}/tags/list`]: isPublic ? undefined : 'private, no-cache',
            [`/v2/${name}/referrers/${tree.image.digest}`]: isPublic ? undefined : 'private, no-cache',
          };
          for (const [url, cacheControl] of Object.entries(expected)) {
            const answer = await request(app, 'GET', url, authorization);
            assert.equal(answer.statusCode, 200, answer.body);
            assert.equal(header(answer, 'cache-control'), cacheControl, url);
          }
        }
        // The catalog differs per client: private to each, whoever asks.
        for (const authorization of [undefined, basicOf('alice')]) {
          const catalog = await request(app, 'GET', '/v2/_catalog', authorization);
          assert.equal(header(catalog, 'cache-control'), 'private, no-cache');
        }
      });

      test('redirect mode with redirect.token: a protected repository’s Location carries the signed token', async () => {
        const now = Math.floor(Date.now() / 1000);
        for (const [url, relative] of [
          [`/v2/secret/app/manifests/${tree.image.digest}`, `manifests/oci-manifest/${tree.image.digest}`],
          [`/v2/secret/app/blobs/${tree.layer}`, `blobs/${tree.layer}`],
          ['/v2/secret/app/manifests/1', `manifests/oci-manifest/${tree.image.digest}`],
        ] as const) {
          const answer = await request(bearerApp, 'GET', url, basicOf('bob'));
          assert.equal(answer.statusCode, 302, answer.body);
          const location = header(answer, 'location') ?? '';
          const match =
            /^(http:\/\/cdn\.example\.test(\/base\/secret\/app\/[^?]+))\?_auth_=exp=(\d+)~hmac=([0-9a-f]{64})$/.exec(
              location,
            );
          assert.ok(match, location);
          assert.equal(match[1], `${CDN}/secret/app/${relative}`);
          const exp = Number(match[3]);
          assert.ok(exp >= now + 300 && exp <= now + 300 + 60, `exp=${exp}`);
          const hmac = createHmac('sha256', Buffer.from(SECRET, 'hex'))
            .update(`exp=${exp}~url=${match[2] ?? ''}`)
            .digest('hex');
          assert.equal(match[4], hmac);
          assert.equal(answer.body, '');
        }
      });

      /**
       * Where redirect mode without redirect.token sends the bytes of a repository not everybody may pull
       * (docs/storage.md): a file system serves them from the tree; a bucket redirects to a presigned URL, which is
       * signed and short-lived.
       */
      const unsigned = {
        fs: 'served from the tree (200 with the bytes), no Location',
        s3: 'redirected to a presigned URL of the bucket, never to the CDN',
      }[backend];
      async function privateBytes(answer: LightMyRequestResponse, what: string): Promise<Buffer> {
        if (tree.spot.bucket === undefined) {
          assert.equal(answer.statusCode, 200, `${what}: ${answer.body}`);
          assert.equal(answer.headers.location, undefined, what);
          assert.equal(header(answer, 'cache-control'), PRIVATE, what);
          return answer.rawPayload;
        }
        assert.equal(answer.statusCode, 302, `${what}: ${answer.body}`);
        // The URL expires (s3.presignTtlSeconds): no cache may keep the redirect for long.
        assert.doesNotMatch(header(answer, 'cache-control') ?? '', /public|immutable|max-age/, what);
        return presignedBytes(answer, tree.spot, what);
      }

      test(`redirect mode without redirect.token: a protected repository is ${unsigned}; an open one is redirected`, async () => {
        for (const [name, authorization] of [
          ['secret/app', basicOf('bob')],
          ['team/app', basicOf('alice')],
          ['open/app', basicOf('carol')],
        ] as const) {
          const blob = await request(basicApp, 'GET', `/v2/${name}/blobs/${tree.layer}`, authorization);
          const blobBytes = await privateBytes(blob, `blob of ${name}`);
          assert.equal(`sha256:${createHash('sha256').update(blobBytes).digest('hex')}`, tree.layer);
          const url = `/v2/${name}/manifests/${tree.image.digest}`;
          const manifest = await request(basicApp, 'GET', url, authorization);
          const manifestBytes = await privateBytes(manifest, `manifest of ${name}`);
          assert.equal(
            `sha256:${createHash('sha256').update(manifestBytes).digest('hex')}`,
            tree.image.digest,
          );
        }
        const open = await request(basicApp, 'GET', `/v2/public/app/blobs/${tree.layer}`);
        assert.equal(open.statusCode, 302);
        assert.equal(header(open, 'location'), `${CDN}/public/app/blobs/${tree.layer}`);
      });
    });

    describe('changes without a restart', () => {
      test('htpasswd: a user added works on the next request, a changed password replaces the old, a removed user is refused', async () => {
        const file = path.join(dir, 'htpasswd-live');
        copyFileSync(tree.htpasswd, file);
        const app = await appWith(policy({ 'auth.htpasswd': file }));
        const dave = (password: string) =>
          request(app, 'GET', '/v2/open/app/tags/list', basic('dave', password));
        assertOciError(await dave('first'), 401, 'UNAUTHORIZED');

        writeHtpasswd(file, { ...PASSWORDS, dave: 'first' });
        assert.equal((await dave('first')).statusCode, 200);

        writeHtpasswd(file, { ...PASSWORDS, dave: 'second' });
        assertOciError(await dave('first'), 401, 'UNAUTHORIZED');
        assert.equal((await dave('second')).statusCode, 200);

        writeHtpasswd(file, PASSWORDS);
        assertOciError(await dave('second'), 401, 'UNAUTHORIZED');
        assert.equal((await request(app, 'GET', '/v2/', basicOf('carol'))).statusCode, 200);
      });

      test('htpasswd: a file that no longer parses leaves the previous users in force', async () => {
        const file = path.join(dir, 'htpasswd-broken');
        copyFileSync(tree.htpasswd, file);
        const app = await appWith(policy({ 'auth.htpasswd': file }));
        assert.equal((await request(app, 'GET', '/v2/', basicOf('carol'))).statusCode, 200);
        writeFileSync(file, 'carol:$apr1$abcdefgh$0123456789abcdefghijkl\n');
        assert.equal((await request(app, 'GET', '/v2/', basicOf('carol'))).statusCode, 200);
        assert.equal((await request(app, 'GET', '/v2/', basicOf('bob'))).statusCode, 200);
      });

      const reloadable = (): Promise<FastifyInstance> => appWith(policy());

      test('reloadApp with new access rules: they decide the next request', async () => {
        const app = await reloadable();
        const teamApp = (user: 'alice' | 'carol') =>
          request(app, 'GET', '/v2/team/app/tags/list', basicOf(user));
        assert.equal((await teamApp('alice')).statusCode, 200);
        assertOciError(await teamApp('carol'), 403, 'DENIED');

        const rules = [{ match: 'team/*', pull: ['user:carol'] }, ...RULES];
        const restart = reloadApp(app, serveConfig(tree.dataDir, policy({ access: JSON.stringify(rules) })));
        assert.deepEqual(restart, []);
        assert.equal((await teamApp('carol')).statusCode, 200);
        assertOciError(await teamApp('alice'), 403, 'DENIED');
        const listed = await request(app, 'GET', '/v2/_catalog', basicOf('carol'));
        assert.deepEqual(JSON.parse(listed.body), { repositories: ['open/app', 'public/app', 'team/app'] });
      });

      test('reloadApp with a config naming a broken htpasswd throws, and the previous rules stay in force', async () => {
        const app = await reloadable();
        const broken = path.join(dir, 'htpasswd-weak');
        writeFileSync(broken, 'carol:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n');
        const open = JSON.stringify([{ match: '**', pull: ['anonymous'] }]);
        for (const htpasswd of [broken, path.join(dir, 'no-such-htpasswd')])
          assert.throws(
            () =>
              reloadApp(app, serveConfig(tree.dataDir, policy({ 'auth.htpasswd': htpasswd, access: open }))),
            (error: Error) => error.name === 'AuthConfigError' && /^auth\.htpasswd: /.test(error.message),
          );
        assertOciError(await request(app, 'GET', '/v2/team/app/tags/list'), 401, 'UNAUTHORIZED');
        assertOciError(await request(app, 'GET', '/v2/team/app/tags/list', basicOf('carol')), 403, 'DENIED');
        assert.equal((await request(app, 'GET', '/v2/team/app/tags/list', basicOf('alice'))).statusCode, 200);
      });
    });
  });
