/**
 * Empty Basic credentials through the real app: what a client without credentials sends after a Basic challenge.
 * containers/image (skopeo, podman, buildah, CRI-O) answers a "basic" challenge from /v2/ with
 * `req.SetBasicAuth(c.auth.Username, c.auth.Password)` (docker/docker_client.go, setupRequestAuth), so logged out it
 * sends `Authorization: Basic Og==` (base64 of ":") on every request; other clients send the scheme alone. Each
 * form, on every endpoint (/v2/, _catalog, manifests, blobs, tags/list, referrers, GET and HEAD, /auth/token GET
 * and POST), with htpasswd only, tokens only and both, gets exactly the answer of a request without any
 * Authorization header — and none of them is a failed login, so the 429 never comes. One suite, two back ends (a
 * directory, a bucket of the test S3 server), the tree published once for each.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import {
  basic,
  basicOf,
  GROUPS,
  jwtClaims,
  METHODS,
  PULLABLE,
  repositoryUrls,
  request,
  RULES,
  SERVICE,
} from '../helpers/auth.ts';
import { authTreeOn, type AuthTreeOn } from '../helpers/auth-backends.ts';
import { BACKENDS } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { tokenKey } from '../helpers/pki.ts';
import { assertOciError, header, listenLocal, rawRequest, serveTree, type Flags } from '../helpers/server.ts';

const scratch = tempDir('derrick-serve-auth-anonymous-');
after(() => scratch.cleanup());
/** Low, so that counting even a few of the requests below as failed logins would show as 429. */
const LIMIT = '2';

/** Every form of empty Basic credentials, as [what, header value]. */
const EMPTY_BASIC = [
  ['Basic Og== (containers/image logged out)', 'Basic Og=='],
  ['Basic Og', 'Basic Og'],
  ['basic Og== (lower case)', 'basic Og=='],
  ['Basic alone', 'Basic'],
  ['Basic and a space', 'Basic '],
  ['Basic and whitespace', 'Basic \t '],
] as const;

interface Setup {
  what: string;
  app: FastifyInstance;
  /** Whether it issues tokens (its /auth/token answers). */
  tokens: boolean;
  htpasswd: boolean;
}

/** What a client can tell two answers apart by: status, the challenge, the error code, the body. */
function seen(answer: LightMyRequestResponse): Record<string, unknown> {
  return {
    status: answer.statusCode,
    challenge: header(answer, 'www-authenticate'),
    retryAfter: header(answer, 'retry-after'),
    location: header(answer, 'location'),
    body: answer.body,
  };
}

const TOKEN_URL = `/auth/token?service=${SERVICE}&scope=repository:public/app:pull&scope=repository:team/app:pull`;

/** The repositories a token answer grants pull on. */
function grantedBy(answer: LightMyRequestResponse): string[] {
  assert.equal(answer.statusCode, 200, answer.body);
  const { token } = JSON.parse(answer.body) as { token: string };
  const access = jwtClaims(token).access as { name: string; actions: string[] }[];
  return access.filter((entry) => entry.actions.includes('pull')).map((entry) => entry.name);
}

for (const backend of BACKENDS)
  describe(backend, () => {
    let tree!: AuthTreeOn;
    let keyFile = '';
    const apps: FastifyInstance[] = [];

    let setups: Setup[] = [];

    async function appWith(flags: Flags): Promise<FastifyInstance> {
      const app = await serveTree(tree.dataDir, {
        access: JSON.stringify(RULES),
        'auth.groups': JSON.stringify(GROUPS),
        'auth.failedLogins.limit': LIMIT,
        'auth.failedLogins.windowSeconds': '600',
        ...flags,
      });
      apps.push(app);
      return app;
    }

    before(async () => {
      tree = await authTreeOn(backend, path.join(scratch.dir, backend));
      keyFile = tokenKey(path.join(scratch.dir, backend, 'token.key'), 'ec');
      const token: Flags = { 'auth.token.key': keyFile, 'auth.token.service': SERVICE };
      setups = [
        {
          what: 'htpasswd only',
          app: await appWith({ 'auth.htpasswd': tree.htpasswd }),
          tokens: false,
          htpasswd: true,
        },
        { what: 'tokens only', app: await appWith(token), tokens: true, htpasswd: false },
        {
          what: 'htpasswd and tokens',
          app: await appWith({ 'auth.htpasswd': tree.htpasswd, ...token }),
          tokens: true,
          htpasswd: true,
        },
      ];
    });

    after(async () => {
      await Promise.all(apps.map((app) => app.close()));
      await tree.remove();
    });

    /** The registry endpoints, as [method, url]: /v2/, _catalog, and the five of a public and a denied repository. */
    function registryRequests(): [string, string][] {
      const urls = [
        '/v2/',
        '/v2/_catalog',
        ...repositoryUrls('public/app', tree).map(([, url]) => url),
        ...repositoryUrls('team/app', tree).map(([, url]) => url),
      ];
      return urls.flatMap((url) => METHODS.map((method): [string, string] => [method, url]));
    }

    describe('empty Basic credentials are an anonymous client, on every endpoint', () => {
      test('each form gets exactly the answer of a request without Authorization (htpasswd only, tokens only, both)', async () => {
        let compared = 0;
        for (const { what, app } of setups)
          for (const [method, url] of registryRequests()) {
            const anonymous = seen(await request(app, method, url));
            for (const [form, authorization] of EMPTY_BASIC) {
              assert.deepEqual(
                seen(await request(app, method, url, authorization)),
                anonymous,
                `${what}: ${method} ${url} with ${form}`,
              );
              compared++;
            }
          }
        assert.equal(compared, 3 * 24 * EMPTY_BASIC.length);
      });

      test('what they get is what anonymous gets: public/app pulled, team/app challenged, /v2/ challenged', async () => {
        for (const { what, app } of setups) {
          const pulled = await request(app, 'GET', '/v2/public/app/manifests/1', 'Basic Og==');
          assert.equal(pulled.statusCode, 200, `${what}: ${pulled.body}`);
          const denied = await request(app, 'GET', '/v2/team/app/manifests/1', 'Basic Og==');
          assertOciError(denied, 401, 'UNAUTHORIZED');
          assert.ok(header(denied, 'www-authenticate'), `${what}: a denied anonymous client is challenged`);
          // /v2/ never answers 200 to them: `docker login` and `podman login` check credentials there.
          const base = await request(app, 'GET', '/v2/', 'Basic Og==');
          assertOciError(base, 401, 'UNAUTHORIZED');
          const catalog = await request(app, 'GET', '/v2/_catalog', 'Basic Og==');
          assert.deepEqual(
            (JSON.parse(catalog.body) as { repositories: string[] }).repositories,
            PULLABLE.anonymous,
          );
        }
      });

      test('GET /auth/token with each form: an anonymous token, granting what anonymous may pull', async () => {
        for (const { what, app, tokens } of setups) {
          if (!tokens) continue;
          assert.deepEqual(grantedBy(await request(app, 'GET', TOKEN_URL)), ['public/app'], what);
          for (const [form, authorization] of EMPTY_BASIC) {
            const answer = await request(app, 'GET', TOKEN_URL, authorization);
            assert.deepEqual(grantedBy(answer), ['public/app'], `${what}: ${form}`);
            assert.equal(jwtClaims((JSON.parse(answer.body) as { token: string }).token).sub, '', form);
          }
        }
      });

      test('POST /auth/token, password grant with an empty username and password: an anonymous token too', async () => {
        for (const { what, app, tokens } of setups) {
          if (!tokens) continue;
          for (let attempt = 0; attempt < 4; attempt++) {
            const answer = await app.inject({
              method: 'POST',
              url: '/auth/token',
              headers: { 'content-type': 'application/x-www-form-urlencoded' },
              payload: new URLSearchParams({
                grant_type: 'password',
                username: '',
                password: '',
                service: SERVICE,
                scope: 'repository:public/app:pull repository:team/app:pull',
              }).toString(),
            });
            assert.deepEqual(grantedBy(answer), ['public/app'], what);
          }
        }
      });

      test('over real HTTP too (where the parser trims what follows "Basic")', async () => {
        const app = await appWith({ 'auth.htpasswd': tree.htpasswd });
        const port = await listenLocal(app);
        for (const [form, authorization] of EMPTY_BASIC) {
          const answer = await rawRequest(port, 'GET', '/v2/public/app/tags/list', { authorization });
          assert.equal(answer.statusCode, 200, `${form}: ${answer.body}`);
        }
      });
    });

    describe('empty Basic credentials never count as failed logins', () => {
      test('after all of the above, far over the limit of 2, alice still logs in with her password — no 429', async () => {
        for (const { what, app, htpasswd, tokens } of setups) {
          for (let round = 0; round < 3; round++)
            for (const [, authorization] of EMPTY_BASIC)
              assert.equal(
                (await request(app, 'GET', '/v2/public/app/tags/list', authorization)).statusCode,
                200,
              );
          if (htpasswd) {
            const base = await request(app, 'GET', '/v2/', basicOf('alice'));
            assert.equal(base.statusCode, 200, `${what}: ${base.body}`);
            const team = await request(app, 'GET', '/v2/team/app/tags/list', basicOf('alice'));
            assert.equal(team.statusCode, 200, `${what}: ${team.body}`);
          }
          if (tokens && htpasswd)
            assert.deepEqual(
              grantedBy(await request(app, 'GET', TOKEN_URL, basicOf('alice'))),
              ['public/app', 'team/app'],
              what,
            );
        }
      });

      test('while a user with an empty password, or garbage, is still a failed login: the limit then holds', async () => {
        const app = await appWith({ 'auth.htpasswd': tree.htpasswd });
        for (const authorization of [basic('alice', ''), 'Basic Og==Og=='])
          assertOciError(
            await request(app, 'GET', '/v2/team/app/tags/list', authorization),
            401,
            'UNAUTHORIZED',
          );
        assertOciError(await request(app, 'GET', '/v2/', basicOf('alice')), 429, 'TOOMANYREQUESTS');
        // Anonymous pulls from the limited address go on (empty credentials included).
        assert.equal((await request(app, 'GET', '/v2/public/app/tags/list', 'Basic Og==')).statusCode, 200);
      });
    });
  });
