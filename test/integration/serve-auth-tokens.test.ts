/**
 * Bearer tokens through the real app (app.inject): the token endpoint /auth/token (GET with Basic credentials or
 * none, POST with an OAuth2 password grant), what it grants and never grants, the claims of its JWTs; tokens it
 * refuses (expired, for another audience, alg none, HMAC, another key, an unknown issuer); and the tokens of a
 * trusted external token service, which pull exactly what their access claim names. One suite, two back ends (a
 * directory, a bucket of the test S3 server), the tree published once for each; the keys are the same for both.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { SignJWT, type JWTPayload } from 'jose';
import { reloadApp } from '../../src/http/app.ts';
import {
  basic,
  basicOf,
  bearer,
  fetchToken,
  GROUPS,
  jwtClaims,
  jwtHeader,
  METHODS,
  PASSWORDS,
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
import { assertOciError, header, serveConfig, serveTree, type Flags } from '../helpers/server.ts';

const scratch = tempDir('derrick-serve-auth-tokens-');
const ISSUER = 'derrick-test';
const TTL = 120;
const EXTERNAL = 'https://auth.example.test';

let keyFile = '';
/** derrick's own signing key, as the tests forge tokens with it. */
let ownKey!: KeyObject;
/** The external token service's signing key (its public half is trusted). */
let externalKey!: KeyObject;

before(() => {
  keyFile = tokenKey(path.join(scratch.dir, 'token.key'), 'ec');
  ownKey = createPrivateKey(readFileSync(keyFile));
  const external = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  externalKey = external.privateKey;
  writeFileSync(
    path.join(scratch.dir, 'external.pem'),
    external.publicKey.export({ type: 'spki', format: 'pem' }),
  );
});
after(() => scratch.cleanup());

function get(
  target: FastifyInstance,
  url: string,
  authorization?: string,
  method: 'GET' | 'HEAD' = 'GET',
): Promise<LightMyRequestResponse> {
  return request(target, method, url, authorization);
}

function post(target: FastifyInstance, form: Record<string, string>): Promise<LightMyRequestResponse> {
  return target.inject({
    method: 'POST',
    url: '/auth/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams(form).toString(),
  });
}

const pull = (name: string) => ({ type: 'repository', name, actions: ['pull'] });

/** A token signed with `key` (ES256 unless `alg` says) with the given claims; iat now, exp in 5 min unless given. */
async function sign(
  key: KeyObject | Uint8Array,
  claims: JWTPayload & { access?: unknown },
  alg = 'ES256',
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iat: now, exp: now + 300, ...claims })
    .setProtectedHeader({ alg, typ: 'JWT' })
    .sign(key);
}

for (const backend of BACKENDS)
  describe(backend, () => {
    let tree!: AuthTreeOn;
    const apps: FastifyInstance[] = [];
    let app!: FastifyInstance;

    function flags(extra: Flags = {}): Flags {
      return {
        'auth.htpasswd': tree.htpasswd,
        'auth.groups': JSON.stringify(GROUPS),
        access: JSON.stringify(RULES),
        'auth.token.key': keyFile,
        'auth.token.service': SERVICE,
        'auth.token.issuer': ISSUER,
        'auth.token.ttlSeconds': String(TTL),
        'auth.token.trust': JSON.stringify([
          { issuer: EXTERNAL, publicKeys: [path.join(scratch.dir, 'external.pem')] },
        ]),
        'auth.failedLogins.limit': '1000000',
        ...extra,
      };
    }

    async function appWith(extra: Flags): Promise<FastifyInstance> {
      const made = await serveTree(tree.dataDir, extra);
      apps.push(made);
      return made;
    }

    before(async () => {
      tree = await authTreeOn(backend, path.join(scratch.dir, backend));
      app = await appWith(flags());
    });

    after(async () => {
      await Promise.all(apps.map((made) => made.close()));
      await tree.remove();
    });

    describe('the token endpoint', () => {
      test('GET with Basic credentials: a JWT whose claims are aud, iss, sub, iat/nbf/exp (exp − iat = ttl), jti, access', async () => {
        const answer = await get(
          app,
          `/auth/token?service=${SERVICE}&scope=repository:team/app:pull&scope=registry:catalog:*`,
          basicOf('alice'),
        );
        assert.equal(answer.statusCode, 200, answer.body);
        assert.match(header(answer, 'content-type') ?? '', /^application\/json/);
        const body = JSON.parse(answer.body) as Record<string, unknown>;
        assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'issued_at', 'token']);
        assert.equal(body.access_token, body.token);
        assert.equal(body.expires_in, TTL);
        const token = String(body.token);
        assert.deepEqual(jwtHeader(token), { alg: 'ES256', typ: 'JWT' });
        const claims = jwtClaims(token);
        assert.equal(claims.iss, ISSUER);
        assert.equal(claims.aud, SERVICE);
        assert.equal(claims.sub, 'alice');
        assert.equal(typeof claims.iat, 'number');
        assert.equal(Number(claims.exp) - Number(claims.iat), TTL);
        assert.equal(claims.nbf, claims.iat);
        assert.equal(new Date(Number(claims.iat) * 1000).toISOString(), body.issued_at);
        assert.ok(Math.abs(Number(claims.iat) - Date.now() / 1000) < 60);
        assert.match(String(claims.jti), /^[0-9a-f-]{36}$/);
        assert.deepEqual(claims.access, [
          pull('team/app'),
          { type: 'registry', name: 'catalog', actions: ['*'] },
        ]);
        assert.deepEqual(claims.derrick_ids, ['user:alice']);
      });

      test('an anonymous token grants only what the rules give anonymous (decided on names alone)', async () => {
        const scopes = ['public/app', 'team/app', 'secret/app', 'norule/app', 'open/app', 'public/xyz'].map(
          (name) => `repository:${name}:pull`,
        );
        const { token } = await fetchToken(app, scopes);
        const claims = jwtClaims(token);
        assert.deepEqual(claims.access, [pull('public/app'), pull('open/app'), pull('public/xyz')]);
        assert.equal(claims.sub, '');
        assert.deepEqual(claims.derrick_ids, []);
        assert.equal((await get(app, '/v2/public/app/tags/list', bearer(token))).statusCode, 200);
        for (const name of ['team/app', 'secret/app', 'norule/app']) {
          const answer = await get(app, `/v2/${name}/tags/list`, bearer(token));
          assertOciError(answer, 401, 'UNAUTHORIZED');
          assert.match(header(answer, 'www-authenticate') ?? '', /error="insufficient_scope"/);
        }
      });

      test('a protected record does not open to an anonymous token, even under a rule admitting anonymous; it does to a user’s', async () => {
        // The token says nothing of the tree: a protected repository and a missing one are granted alike…
        const anonymous = await fetchToken(app, ['repository:open/app:pull', 'repository:open/xyz:pull']);
        assert.deepEqual(jwtClaims(anonymous.token).access, [pull('open/app'), pull('open/xyz')]);
        // …and the pull is what is refused.
        for (const [what, url] of repositoryUrls('open/app', tree))
          for (const method of METHODS) {
            const answer = await get(app, url, bearer(anonymous.token), method);
            assert.equal(answer.statusCode, 401, `${method} ${what}: ${answer.body}`);
            assert.match(header(answer, 'www-authenticate') ?? '', /error="insufficient_scope"/);
          }
        const carol = await fetchToken(app, ['repository:open/app:pull'], {
          authorization: basicOf('carol'),
        });
        assert.deepEqual(jwtClaims(carol.token).access, [pull('open/app')]);
        assert.equal((await get(app, '/v2/open/app/tags/list', bearer(carol.token))).statusCode, 200);
      });

      test('push (or any action but pull) is never granted', async () => {
        const { token } = await fetchToken(
          app,
          [
            'repository:team/app:pull,push',
            'repository:public/app:push',
            'repository:secret/app:*',
            'repository:open/app:delete',
          ],
          { authorization: basicOf('alice') },
        );
        assert.deepEqual(jwtClaims(token).access, [pull('team/app')]);
        const bob = await fetchToken(app, ['repository:secret/app:*', 'repository:public/app:push,pull'], {
          authorization: basicOf('bob'),
        });
        assert.deepEqual(jwtClaims(bob.token).access, [pull('secret/app'), pull('public/app')]);
      });

      test('a scope the rules do not allow this user is left out, not refused', async () => {
        const { token } = await fetchToken(app, ['repository:secret/app:pull', 'repository:team/app:pull'], {
          authorization: basicOf('carol'),
        });
        assert.deepEqual(jwtClaims(token).access, []);
      });

      test('another service → 403 DENIED', async () => {
        const answer = await get(
          app,
          '/auth/token?service=other.example&scope=repository:team/app:pull',
          basicOf('alice'),
        );
        assertOciError(answer, 403, 'DENIED');
      });

      test('POST password grant (form body) → the token and the scope granted', async () => {
        const answer = await post(app, {
          grant_type: 'password',
          username: 'alice',
          password: PASSWORDS.alice,
          service: SERVICE,
          scope: 'repository:team/app:pull repository:secret/app:pull',
          client_id: 'containerd',
        });
        assert.equal(answer.statusCode, 200, answer.body);
        assert.equal(header(answer, 'cache-control'), 'no-store');
        const body = JSON.parse(answer.body) as { token: string; access_token: string; scope: string };
        assert.equal(body.scope, 'repository:team/app:pull');
        assert.equal(body.access_token, body.token);
        assert.deepEqual(jwtClaims(body.token).access, [pull('team/app')]);
        assert.equal((await get(app, '/v2/team/app/tags/list', bearer(body.token))).statusCode, 200);
      });

      test('POST refresh_token (or no grant) → 400 unsupported_grant_type', async () => {
        for (const form of [
          {
            grant_type: 'refresh_token',
            refresh_token: 'x',
            service: SERVICE,
            scope: 'repository:team/app:pull',
          },
          { username: 'alice', password: PASSWORDS.alice },
        ]) {
          const answer = await post(app, form);
          assert.equal(answer.statusCode, 400, answer.body);
          assert.equal(header(answer, 'cache-control'), 'no-store');
          assert.equal((JSON.parse(answer.body) as { error: string }).error, 'unsupported_grant_type');
        }
      });

      test('POST with a body that is not a form → 400 invalid_request', async () => {
        for (const [type, payload] of [
          ['application/json', JSON.stringify({ grant_type: 'password', username: 'alice', password: 'x' })],
          ['text/plain', 'grant_type=password'],
          ['application/x-www-form-urlencoded', `grant_type=password&username=${'a'.repeat(70 * 1024)}`],
        ] as const) {
          const answer = await app.inject({
            method: 'POST',
            url: '/auth/token',
            headers: { 'content-type': type },
            payload,
          });
          assert.equal(answer.statusCode, 400, `${type}: ${answer.statusCode} ${answer.body}`);
          assert.equal((JSON.parse(answer.body) as { error: string }).error, 'invalid_request', type);
          assert.equal(header(answer, 'cache-control'), 'no-store', type);
        }
      });

      test('bad credentials → 401 with a Basic challenge (GET with Basic, POST password grant)', async () => {
        for (const authorization of [basic('alice', 'wrong'), basic('nobody', 'x'), 'Basic !!!']) {
          const answer = await get(app, '/auth/token?scope=repository:team/app:pull', authorization);
          assertOciError(answer, 401, 'UNAUTHORIZED');
          assert.equal(header(answer, 'www-authenticate'), 'Basic realm="derrick",charset="UTF-8"');
        }
        const answer = await post(app, {
          grant_type: 'password',
          username: 'alice',
          password: 'wrong',
          scope: 'repository:team/app:pull',
        });
        assert.equal(answer.statusCode, 401, answer.body);
        assert.doesNotMatch(answer.body, /"token"/);
      });

      test('a Bearer header at the token endpoint → 401 (a token does not buy another token)', async () => {
        const { token } = await fetchToken(app, ['repository:team/app:pull'], {
          authorization: basicOf('alice'),
        });
        const answer = await get(app, '/auth/token?scope=repository:team/app:pull', bearer(token));
        assertOciError(answer, 401, 'UNAUTHORIZED');
        assert.equal(header(answer, 'www-authenticate'), 'Basic realm="derrick",charset="UTF-8"');
        assert.doesNotMatch(answer.body, /"token"/);
      });

      test('Cache-Control: no-store on tokens', async () => {
        for (const authorization of [undefined, basicOf('bob')]) {
          const answer = await get(app, '/auth/token?scope=repository:public/app:pull', authorization);
          assert.equal(answer.statusCode, 200);
          assert.equal(header(answer, 'cache-control'), 'no-store');
        }
      });

      test('404 when auth.token.key is not set (Basic only, or trusting another token service only)', async () => {
        const basicOnly = await appWith({
          'auth.htpasswd': tree.htpasswd,
          'auth.groups': JSON.stringify(GROUPS),
          access: JSON.stringify(RULES),
        });
        const { 'auth.token.key': _key, ...withoutKey } = flags();
        const trustOnly = await appWith({
          ...withoutKey,
          'auth.token.realm': 'https://auth.example.test/token',
        });
        for (const target of [basicOnly, trustOnly])
          for (const authorization of [undefined, basicOf('alice')]) {
            const answer = await get(target, '/auth/token?scope=repository:team/app:pull', authorization);
            assertOciError(answer, 404, 'NAME_UNKNOWN');
          }
        // …and trustOnly's challenges send clients to the configured realm.
        const challenge = await get(trustOnly, '/v2/team/app/tags/list');
        assert.equal(
          header(challenge, 'www-authenticate'),
          `Bearer realm="https://auth.example.test/token",service="${SERVICE}",scope="repository:team/app:pull"`,
        );
      });

      test('an RSA key signs RS256 tokens that derrick accepts', async () => {
        const rsa = tokenKey(path.join(scratch.dir, `token-rsa-${backend}.key`), 'rsa');
        const rsaApp = await appWith(flags({ 'auth.token.key': rsa }));
        const { token } = await fetchToken(rsaApp, ['repository:team/app:pull'], {
          authorization: basicOf('alice'),
        });
        assert.equal(jwtHeader(token).alg, 'RS256');
        assert.equal((await get(rsaApp, '/v2/team/app/tags/list', bearer(token))).statusCode, 200);
        // …and not the other app, whose key differs.
        assertOciError(await get(app, '/v2/team/app/tags/list', bearer(token)), 401, 'UNAUTHORIZED');
      });
    });

    describe('tokens refused → 401 UNAUTHORIZED with error="invalid_token"', () => {
      const now = () => Math.floor(Date.now() / 1000);
      const base = () => ({
        iss: ISSUER,
        aud: SERVICE,
        sub: 'alice',
        access: [pull('team/app')],
        derrick_ids: ['user:alice'],
      });
      const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const cases: [string, () => Promise<string>, RegExp][] = [
        ['expired', () => sign(ownKey, { ...base(), iat: now() - 3600, exp: now() - 600 }), /expired/],
        [
          'for another audience',
          () => sign(ownKey, { ...base(), aud: 'other.example' }),
          /not for this service/,
        ],
        ['not valid yet', () => sign(ownKey, { ...base(), nbf: now() + 600 }), /not valid yet/],
        [
          'alg none',
          () =>
            Promise.resolve(`${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...base(), exp: now() + 300 })}.`),
          /refused algorithm/,
        ],
        [
          'HS256 (an HMAC algorithm)',
          () => sign(Buffer.from(readFileSync(keyFile)), { ...base() }, 'HS256'),
          /refused algorithm/,
        ],
        [
          'signed with another key',
          () => sign(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, base()),
          /signature does not verify/,
        ],
        [
          'from an issuer not trusted',
          () => sign(externalKey, { ...base(), iss: 'https://elsewhere.example.test' }),
          /not accepted/,
        ],
        [
          'a trusted issuer’s name, signed with another key',
          () => sign(ownKey, { ...base(), iss: EXTERNAL }),
          /signature does not verify/,
        ],
        [
          'without exp',
          () => new SignJWT({ ...base() }).setProtectedHeader({ alg: 'ES256' }).sign(ownKey),
          /exp/,
        ],
        ['not a JWT', () => Promise.resolve('not-a-jwt'), /not a JWT/],
      ];
      for (const [what, make, message] of cases)
        test(what, async () => {
          const token = await make();
          for (const url of ['/v2/team/app/tags/list', '/v2/public/app/tags/list', '/v2/'])
            for (const method of METHODS) {
              const answer = await get(app, url, bearer(token), method);
              assert.equal(answer.statusCode, 401, `${method} ${url}: ${answer.body}`);
              const challenge = header(answer, 'www-authenticate') ?? '';
              assert.match(
                challenge,
                /^Bearer realm="[^"]+",service="registry\.test",error="invalid_token"$/,
              );
              if (method === 'GET')
                assert.match(assertOciError(answer, 401, 'UNAUTHORIZED').message, message);
            }
        });
    });

    describe('tokens of a trusted external token service', () => {
      test('pull exactly the repositories its access claim names (and what anonymous may pull)', async () => {
        const token = await sign(externalKey, {
          iss: EXTERNAL,
          aud: SERVICE,
          sub: 'svc-robot',
          access: [
            pull('team/app'),
            pull('secret/app'),
            { type: 'repository', name: 'norule/app', actions: ['push'] },
          ],
        });
        const expected: Record<string, number> = {
          'team/app': 200,
          'secret/app': 200,
          'public/app': 200,
          'norule/app': 401,
          'open/app': 401,
        };
        for (const [name, status] of Object.entries(expected))
          for (const [what, url] of repositoryUrls(name, tree))
            for (const method of METHODS) {
              const answer = await get(app, url, bearer(token), method);
              assert.equal(answer.statusCode, status, `${method} ${what} of ${name}: ${answer.body}`);
              if (status === 401)
                assert.match(header(answer, 'www-authenticate') ?? '', /error="insufficient_scope"/);
            }
        assert.equal((await get(app, '/v2/', bearer(token))).statusCode, 200);
      });

      test('its token for another audience, or expired, is refused', async () => {
        const now = Math.floor(Date.now() / 1000);
        for (const claims of [{ aud: 'other.example' }, { aud: SERVICE, iat: now - 3600, exp: now - 600 }]) {
          const token = await sign(externalKey, {
            iss: EXTERNAL,
            sub: 'x',
            access: [pull('team/app')],
            ...claims,
          });
          const answer = await get(app, '/v2/team/app/tags/list', bearer(token));
          assertOciError(answer, 401, 'UNAUTHORIZED');
          assert.match(header(answer, 'www-authenticate') ?? '', /error="invalid_token"/);
        }
      });

      test('_catalog with its registry:catalog:* token lists the names in its access claim, not a local user’s of the same name', async () => {
        const token = await sign(externalKey, {
          iss: EXTERNAL,
          aud: SERVICE,
          sub: 'alice',
          access: [pull('secret/app'), { type: 'registry', name: 'catalog', actions: ['*'] }],
        });
        // It cannot pull team/app (alice's by the rules, not in its claim)…
        assertOciError(await get(app, '/v2/team/app/tags/list', bearer(token)), 401, 'UNAUTHORIZED');
        // …so the catalog must not name it.
        const answer = await get(app, '/v2/_catalog', bearer(token));
        assert.equal(answer.statusCode, 200);
        assert.deepEqual(JSON.parse(answer.body), { repositories: ['public/app', 'secret/app'] });
      });
    });

    describe("derrick's own tokens follow the current rules", () => {
      test('a token issued before a reload that takes the repository away no longer pulls it', async () => {
        const live = await appWith(flags());
        const { token } = await fetchToken(live, ['repository:team/app:pull', 'registry:catalog:*'], {
          authorization: basicOf('alice'),
        });
        assert.equal((await get(live, '/v2/team/app/tags/list', bearer(token))).statusCode, 200);
        const rules = [{ match: 'team/*', pull: ['user:bob'] }, ...RULES];
        assert.deepEqual(
          reloadApp(live, serveConfig(tree.dataDir, flags({ access: JSON.stringify(rules) }))),
          [],
        );
        const answer = await get(live, '/v2/team/app/tags/list', bearer(token));
        assertOciError(answer, 401, 'UNAUTHORIZED');
        assert.match(header(answer, 'www-authenticate') ?? '', /error="insufficient_scope"/);
        const listed = await get(live, '/v2/_catalog', bearer(token));
        assert.deepEqual(JSON.parse(listed.body), {
          repositories: PULLABLE.alice.filter((name) => name !== 'team/app'),
        });
      });
    });
  });
