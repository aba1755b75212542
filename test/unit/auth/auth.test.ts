import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import {
  ANONYMOUS,
  anonymousDockerWarning,
  Auth,
  notFound,
  type AuthLog,
  type ClientCertificate,
  type Principal,
  type RequestFacts,
} from '../../../src/auth/auth.ts';
import { AuthConfigError } from '../../../src/auth/errors.ts';
import { parseScopes } from '../../../src/auth/scopes.ts';
import { loadConfig } from '../../../src/config/load.ts';
import type { ScalarKey } from '../../../src/config/schema.ts';
import { RegistryError } from '../../../src/oci/errors.ts';
import { tempDir } from '../../helpers/cli.ts';
import { htpasswdLine, tokenKey } from '../../helpers/pki.ts';

const SERVICE = 'registry.test';
const REALM = 'http://h/auth/token';
const EXTERNAL = 'https://auth.example.com';

const temp = tempDir('derrick-auth-');
after(() => temp.cleanup());

const ACCESS = [
  { match: 'public/**', pull: ['anonymous'] },
  { match: 'team/*', pull: ['group:dev'] },
  { match: 'secret/**', pull: ['user:bob', 'cert:vault.example.com'] },
];
const GROUPS = { dev: ['user:alice', 'cert:ci.example.com'] };

let htpasswd = '';
let key = '';
let externalPem = '';
let external!: { publicKey: CryptoKey; privateKey: CryptoKey };

before(async () => {
  htpasswd = path.join(temp.dir, 'htpasswd');
  writeFileSync(
    htpasswd,
    `${[htpasswdLine('alice', 'alice-pw'), htpasswdLine('bob', 'bob-pw')].join('\n')}\n`,
  );
  key = tokenKey(path.join(temp.dir, 'token.key'), 'ec');
  external = await generateKeyPair('ES256', { extractable: true });
  externalPem = path.join(temp.dir, 'external.pem');
  writeFileSync(externalPem, await exportSPKI(external.publicKey));
});

interface Logged {
  level: 'error' | 'info' | 'warn';
  object: object;
  message: string;
}

function fakeLog(): AuthLog & { calls: Logged[]; failedLogins: () => number } {
  const calls: Logged[] = [];
  return {
    calls,
    failedLogins: () =>
      calls.filter((call) => call.level === 'warn' && call.message === 'failed login').length,
    error: (object, message) => calls.push({ level: 'error', object, message }),
    info: (object, message) => calls.push({ level: 'info', object, message }),
    warn: (object, message) => calls.push({ level: 'warn', object, message }),
  };
}

type Flags = Partial<Record<ScalarKey, string>>;

/** An Auth from flags, through the real configuration loader and its defaults. */
function makeAuth(flags: Flags, log: AuthLog = fakeLog(), previous?: Auth): Auth {
  const config = loadConfig({
    flags: { access: JSON.stringify(ACCESS), 'auth.groups': JSON.stringify(GROUPS), ...flags },
  });
  return new Auth(config, log, { previous });
}

/** htpasswd only: Basic challenges. */
const basicFlags = (): Flags => ({ 'auth.htpasswd': htpasswd, 'auth.failedLogins.limit': '2' });
/** htpasswd and a token key: Bearer challenges. */
const tokenFlags = (): Flags => ({
  ...basicFlags(),
  'auth.token.service': SERVICE,
  'auth.token.key': key,
});
/** Nothing to log in to: access rules only (client certificates may still prove identities). */
const nothingFlags = (): Flags => ({});

function facts(extra: Partial<RequestFacts> = {}): RequestFacts {
  return { client: '1.2.3.4', tokenRealm: REALM, ...extra };
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

const certificate = (ids: string[]): ClientCertificate => ({ authorized: true, ids });
const refusedCertificate: ClientCertificate = {
  authorized: false,
  error: 'certificate has expired',
  ids: ['cert:old.example.com'],
};

/** Asserts a RegistryError with this code (and status), returning it for more checks. */
async function registryError(
  promise: Promise<unknown>,
  code: string,
  status: number,
): Promise<RegistryError> {
  let caught: unknown;
  await assert.rejects(promise, (error: unknown) => {
    caught = error;
    return true;
  });
  assert.ok(caught instanceof RegistryError, `expected a RegistryError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.status, status);
  return caught;
}

const BASIC_CHALLENGE = 'Basic realm="derrick",charset="UTF-8"';
const BEARER_CHALLENGE = `Bearer realm="${REALM}",service="${SERVICE}"`;

/** `authorization` authenticated against htpasswd logins: 401 UNAUTHORIZED, counted as one failed login. */
async function failedLogin(authorization: string): Promise<RegistryError> {
  const log = fakeLog();
  const error = await registryError(
    makeAuth(basicFlags(), log).authenticate(facts({ authorization })),
    'UNAUTHORIZED',
    401,
  );
  assert.equal(log.failedLogins(), 1);
  return error;
}

describe('Auth.authenticate', () => {
  test('no Authorization header: anonymous, whatever is configured', async () => {
    for (const flags of [basicFlags(), tokenFlags(), nothingFlags()]) {
      const principal = await makeAuth(flags).authenticate(facts());
      assert.equal(principal.via, 'anonymous');
      assert.deepEqual(principal.ids, []);
    }
  });

  test('Basic with the right password: user:<name>', async () => {
    for (const flags of [basicFlags(), tokenFlags()]) {
      const principal = await makeAuth(flags).authenticate(
        facts({ authorization: basic('alice', 'alice-pw') }),
      );
      assert.equal(principal.via, 'basic');
      assert.deepEqual(principal.ids, ['user:alice']);
    }
  });

  test('the scheme name is case-insensitive', async () => {
    const auth = makeAuth(basicFlags());
    const value = basic('bob', 'bob-pw').slice('Basic '.length);
    assert.deepEqual((await auth.authenticate(facts({ authorization: `basic ${value}` }))).ids, ['user:bob']);
    assert.deepEqual((await auth.authenticate(facts({ authorization: `BASIC ${value}` }))).ids, ['user:bob']);
  });

  test('Basic and a verified client certificate: both identities', async () => {
    const principal = await makeAuth(basicFlags()).authenticate(
      facts({ authorization: basic('alice', 'alice-pw'), certificate: certificate(['cert:ci.example.com']) }),
    );
    assert.equal(principal.via, 'basic');
    assert.deepEqual(principal.ids, ['user:alice', 'cert:ci.example.com']);
  });

  test('a verified client certificate alone: cert:<identity>', async () => {
    for (const flags of [basicFlags(), nothingFlags()]) {
      const principal = await makeAuth(flags).authenticate(
        facts({ certificate: certificate(['cert:ci.example.com', 'cert:ci']) }),
      );
      assert.equal(principal.via, 'certificate');
      assert.deepEqual(principal.ids, ['cert:ci.example.com', 'cert:ci']);
    }
  });

  test('Basic with a wrong password or an unknown user: 401 with the Basic challenge, and a failed login', async () => {
    const log = fakeLog();
    const auth = makeAuth({ ...basicFlags(), 'auth.failedLogins.limit': '10' }, log);
    for (const [user, password] of [
      ['alice', 'bob-pw'],
      ['mallory', 'alice-pw'],
    ] as const) {
      const error = await registryError(
        auth.authenticate(facts({ authorization: basic(user, password) })),
        'UNAUTHORIZED',
        401,
      );
      assert.equal(error.message, 'incorrect username or password');
      assert.equal(error.headers['www-authenticate'], BASIC_CHALLENGE);
    }
    assert.equal(log.failedLogins(), 2);
    const warned = log.calls.find((call) => call.level === 'warn');
    assert.deepEqual(warned?.object, {
      client: '1.2.3.4',
      user: 'alice',
      reason: 'wrong username or password',
    });
  });

  test('with a token key, a wrong password gets the Bearer challenge', async () => {
    const error = await registryError(
      makeAuth(tokenFlags()).authenticate(facts({ authorization: basic('alice', 'nope') })),
      'UNAUTHORIZED',
      401,
    );
    assert.equal(error.headers['www-authenticate'], BEARER_CHALLENGE);
  });

  for (const [what, authorization, message] of [
    ['not base64', 'Basic !!!notbase64!!!', /^malformed Basic credentials/],
    [
      'base64 without a colon',
      `Basic ${Buffer.from('alice').toString('base64')}`,
      /^malformed Basic credentials/,
    ],
    [
      'base64 with an empty user',
      `Basic ${Buffer.from(':alice-pw').toString('base64')}`,
      /^malformed Basic credentials/,
    ],
    ['a value with a space in it', 'Basic abc def', /^malformed Authorization header/],
    ['nothing but spaces', '   ', /^malformed Authorization header/],
  ] as const) {
    test(`malformed Basic credentials (${what}): 401, and a failed login`, async () => {
      const error = await failedLogin(authorization);
      assert.match(error.message, message);
      assert.equal(error.headers['www-authenticate'], BASIC_CHALLENGE);
    });
  }

  test('after `limit` failures: 429 TOOMANYREQUESTS with Retry-After, even for the right password', async () => {
    const auth = makeAuth(basicFlags()); // limit 2, window 60 s
    for (let attempt = 0; attempt < 2; attempt++)
      await registryError(
        auth.authenticate(facts({ authorization: basic('alice', 'wrong') })),
        'UNAUTHORIZED',
        401,
      );
    const limited = await registryError(
      auth.authenticate(facts({ authorization: basic('alice', 'alice-pw') })),
      'TOOMANYREQUESTS',
      429,
    );
    const retryAfter = Number(limited.headers['retry-after']);
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, String(retryAfter));
    assert.match(limited.message, /too many failed logins from 1\.2\.3\.4/);
    // Another client is not limited; an anonymous request of the limited one is not either.
    const other = await auth.authenticate(
      facts({ client: '5.6.7.8', authorization: basic('alice', 'alice-pw') }),
    );
    assert.deepEqual(other.ids, ['user:alice']);
    assert.equal((await auth.authenticate(facts())).via, 'anonymous');
  });

  test('malformed headers and refused certificates count towards the limit too', async () => {
    const auth = makeAuth(basicFlags());
    await registryError(auth.authenticate(facts({ authorization: 'Basic abc def' })), 'UNAUTHORIZED', 401);
    await registryError(auth.authenticate(facts({ certificate: refusedCertificate })), 'UNAUTHORIZED', 401);
    await registryError(
      auth.authenticate(facts({ authorization: basic('alice', 'alice-pw') })),
      'TOOMANYREQUESTS',
      429,
    );
    await registryError(
      auth.authenticate(facts({ certificate: refusedCertificate })),
      'TOOMANYREQUESTS',
      429,
    );
  });

  test('a reloaded Auth keeps the failed-login counts when the limits are the same', async () => {
    const first = makeAuth(basicFlags());
    for (let attempt = 0; attempt < 2; attempt++)
      await registryError(
        first.authenticate(facts({ authorization: basic('bob', 'x') })),
        'UNAUTHORIZED',
        401,
      );
    const reloaded = makeAuth(basicFlags(), fakeLog(), first);
    await registryError(
      reloaded.authenticate(facts({ authorization: basic('bob', 'bob-pw') })),
      'TOOMANYREQUESTS',
      429,
    );
    const changed = makeAuth({ ...basicFlags(), 'auth.failedLogins.limit': '3' }, fakeLog(), first);
    assert.deepEqual((await changed.authenticate(facts({ authorization: basic('bob', 'bob-pw') }))).ids, [
      'user:bob',
    ]);
    const fresh = makeAuth(basicFlags());
    assert.equal((await fresh.authenticate(facts({ authorization: basic('bob', 'bob-pw') }))).via, 'basic');
  });

  test('Bearer with a token derrick issued: the token’s identities', async () => {
    const auth = makeAuth(tokenFlags());
    const alice = await auth.authenticate(facts({ authorization: basic('alice', 'alice-pw') }));
    const { token } = await auth.issue(alice, auth.grant(alice, parseScopes(['repository:team/app:pull'])));
    const principal = await auth.authenticate(facts({ authorization: `Bearer ${token}` }));
    assert.equal(principal.via, 'token');
    assert.deepEqual(principal.ids, ['user:alice']);
    assert.ok(principal.token);
    assert.equal(principal.token.own, true);
    assert.deepEqual([...principal.token.pull], ['team/app']);
  });

  test('Bearer with a bad token: 401 with error="invalid_token" and the reason, not a failed login', async () => {
    const log = fakeLog();
    const auth = makeAuth(tokenFlags(), log);
    const forged = await new SignJWT({ access: [] })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer('derrick')
      .setAudience(SERVICE)
      .setExpirationTime('5m')
      .sign(external.privateKey);
    for (const [token, message] of [
      ['not-a-jwt', 'the bearer token is not a JWT'],
      [forged, 'the bearer token signature does not verify'],
    ]) {
      const error = await registryError(
        auth.authenticate(facts({ authorization: `Bearer ${token}` })),
        'UNAUTHORIZED',
        401,
      );
      assert.equal(error.message, message);
      assert.equal(error.headers['www-authenticate'], `${BEARER_CHALLENGE},error="invalid_token"`);
    }
    assert.equal(log.failedLogins(), 0);
    assert.ok(log.calls.some((call) => call.level === 'info' && call.message === 'bearer token refused'));
  });

  test('the challenge names auth.token.realm when it is set, else the realm of the request', async () => {
    const auth = makeAuth({ ...tokenFlags(), 'auth.token.realm': 'https://tokens.example.com/token' });
    const error = await registryError(
      auth.authenticate(facts({ authorization: 'Bearer nonsense' })),
      'UNAUTHORIZED',
      401,
    );
    assert.equal(
      error.headers['www-authenticate'],
      `Bearer realm="https://tokens.example.com/token",service="${SERVICE}",error="invalid_token"`,
    );
  });

  test('Bearer where only htpasswd is configured: 401 with the Basic challenge', async () => {
    const error = await registryError(
      makeAuth(basicFlags()).authenticate(facts({ authorization: 'Bearer abc' })),
      'UNAUTHORIZED',
      401,
    );
    assert.match(error.message, /bearer tokens are not accepted here/);
    assert.equal(error.headers['www-authenticate'], BASIC_CHALLENGE);
  });

  test('Basic where only tokens are configured: 401 pointing at the token realm', async () => {
    const auth = makeAuth({
      'auth.token.service': SERVICE,
      'auth.token.key': key,
    });
    const error = await registryError(
      auth.authenticate(facts({ authorization: basic('alice', 'alice-pw') })),
      'UNAUTHORIZED',
      401,
    );
    assert.match(error.message, /Basic credentials are not accepted here/);
    assert.equal(error.headers['www-authenticate'], BEARER_CHALLENGE);
  });

  test('Bearer where bearer is not allowed (the token endpoint): an unsupported scheme', async () => {
    const auth = makeAuth(tokenFlags());
    const error = await registryError(
      auth.authenticate(facts({ authorization: 'Bearer abc' }), false),
      'UNAUTHORIZED',
      401,
    );
    assert.match(error.message, /the Bearer authorization scheme is not supported here/);
  });

  test('another scheme: 401', async () => {
    for (const flags of [basicFlags(), tokenFlags()]) {
      const error = await registryError(
        makeAuth(flags).authenticate(facts({ authorization: 'Digest username="alice"' })),
        'UNAUTHORIZED',
        401,
      );
      assert.match(error.message, /the Digest authorization scheme is not supported here/);
      assert.ok(error.headers['www-authenticate'] !== undefined);
    }
  });

  test('a client certificate that was not accepted: 401 UNAUTHORIZED with OpenSSL’s reason', async () => {
    for (const flags of [basicFlags(), nothingFlags()]) {
      const log = fakeLog();
      const error = await registryError(
        makeAuth(flags, log).authenticate(
          facts({ certificate: refusedCertificate, authorization: basic('alice', 'alice-pw') }),
        ),
        'UNAUTHORIZED',
        401,
      );
      assert.equal(error.message, 'the client certificate was not accepted (certificate has expired)');
      assert.equal(log.failedLogins(), 1);
    }
    const withoutReason = await registryError(
      makeAuth(nothingFlags()).authenticate(facts({ certificate: { authorized: false, ids: [] } })),
      'UNAUTHORIZED',
      401,
    );
    assert.match(withoutReason.message, /not issued by a trusted CA/);
    assert.equal(withoutReason.headers['www-authenticate'], undefined, 'nothing to log in to: no challenge');
  });

  test('with nothing to log in to, Authorization headers are ignored', async () => {
    const auth = makeAuth(nothingFlags());
    assert.equal(auth.challenges, false);
    for (const authorization of [
      basic('alice', 'alice-pw'),
      basic('alice', 'wrong'),
      'Bearer x',
      'garbage',
    ]) {
      assert.equal(await auth.authenticate(facts({ authorization })), ANONYMOUS);
      const withCert = await auth.authenticate(
        facts({ authorization, certificate: certificate(['cert:ci.example.com']) }),
      );
      assert.deepEqual(withCert, { via: 'certificate', ids: ['cert:ci.example.com'] });
    }
  });
});

/**
 * What a client without credentials sends after a Basic challenge. containers/image (skopeo, podman, buildah,
 * CRI-O) answers every challenge of scheme "basic" with `req.SetBasicAuth(c.auth.Username, c.auth.Password)`
 * (docker/docker_client.go, setupRequestAuth), whatever the two hold: logged out, that is `Basic Og==`, the
 * base64 of ":". Other clients send the scheme with nothing after it.
 */
const EMPTY_BASIC = [
  ['Basic Og== (base64 of ":", as containers/image sends it)', 'Basic Og=='],
  ['Og without its padding', 'Basic Og'],
  ['the scheme in lower case', 'basic Og=='],
  ['the scheme alone', 'Basic'],
  ['the scheme and a space', 'Basic '],
  ['the scheme and only whitespace', 'Basic \t  '],
] as const;

describe('Auth.authenticate: empty Basic credentials are an anonymous client', () => {
  for (const [what, authorization] of EMPTY_BASIC)
    test(`${what}: anonymous, with htpasswd, with tokens, or both — never a failed login`, async () => {
      const tokenOnly: Flags = { 'auth.token.service': SERVICE, 'auth.token.key': key };
      for (const flags of [basicFlags(), tokenFlags(), tokenOnly]) {
        const log = fakeLog();
        const auth = makeAuth(flags, log);
        // limit is 2 in basicFlags: three times over it, and still anonymous.
        for (let attempt = 0; attempt < 6; attempt++)
          assert.equal(await auth.authenticate(facts({ authorization })), ANONYMOUS);
        assert.equal(log.failedLogins(), 0);
        // … and the right password still works from that address (nothing was counted).
        if (flags['auth.htpasswd'] !== undefined)
          assert.deepEqual(
            (await auth.authenticate(facts({ authorization: basic('alice', 'alice-pw') }))).ids,
            ['user:alice'],
          );
      }
    });

  test('empty Basic credentials from a rate-limited address: still anonymous, not 429', async () => {
    const auth = makeAuth(basicFlags()); // limit 2
    for (let attempt = 0; attempt < 2; attempt++)
      await registryError(
        auth.authenticate(facts({ authorization: basic('alice', 'wrong') })),
        'UNAUTHORIZED',
        401,
      );
    await registryError(
      auth.authenticate(facts({ authorization: basic('alice', 'alice-pw') })),
      'TOOMANYREQUESTS',
      429,
    );
    for (const [, authorization] of EMPTY_BASIC)
      assert.equal(await auth.authenticate(facts({ authorization })), ANONYMOUS);
  });

  test('empty Basic credentials and a verified client certificate: the certificate’s identities', async () => {
    const principal = await makeAuth(basicFlags()).authenticate(
      facts({ authorization: 'Basic Og==', certificate: certificate(['cert:ci.example.com']) }),
    );
    assert.deepEqual(principal, { via: 'certificate', ids: ['cert:ci.example.com'] });
  });

  test('empty Basic credentials do not get past /v2/: 401 with the challenge, as for no header', async () => {
    for (const flags of [basicFlags(), tokenFlags()]) {
      const auth = makeAuth(flags);
      const principal = await auth.authenticate(facts({ authorization: 'Basic Og==' }));
      assert.throws(
        () => auth.requireLogin(principal, facts()),
        (error: unknown) => error instanceof RegistryError && error.code === 'UNAUTHORIZED',
      );
    }
  });

  for (const [what, authorization, message] of [
    ['a user and an empty password', basic('alice', ''), /^incorrect username or password$/],
    ['an empty user and a password', basic('', 'alice-pw'), /^malformed Basic credentials/],
    ['base64 of something else', `Basic ${Buffer.from('::').toString('base64')}`, /^malformed Basic/],
    ['garbage', 'Basic Og==Og==', /^malformed Basic credentials/],
  ] as const)
    test(`${what} is still a real login that fails, and counts`, async () => {
      assert.match((await failedLogin(authorization)).message, message);
    });
});

describe('anonymousDockerWarning', () => {
  const config = (flags: Flags, access: unknown[] = ACCESS) =>
    loadConfig({
      flags: { access: JSON.stringify(access), 'auth.groups': JSON.stringify(GROUPS), ...flags },
    });

  test('htpasswd, no tokens, and a rule admitting anonymous (or no rules at all): docker cannot pull anonymously', () => {
    for (const access of [ACCESS, []]) {
      const warning = anonymousDockerWarning(config(basicFlags(), access));
      assert.match(warning ?? '', /docker cannot pull without logging in/);
      assert.match(warning ?? '', /auth\.token\.key/);
    }
  });

  test('no warning with tokens, without htpasswd, or when no rule admits anonymous', () => {
    assert.equal(anonymousDockerWarning(config(tokenFlags())), undefined);
    assert.equal(anonymousDockerWarning(config(nothingFlags())), undefined);
    const closed = [{ match: '**', pull: ['user:alice'] }];
    assert.equal(anonymousDockerWarning(config(basicFlags(), closed)), undefined);
  });
});

describe('Auth.requireLogin', () => {
  test('anonymous, with something to log in to: 401 and the challenge', () => {
    assert.throws(
      () => makeAuth(tokenFlags()).requireLogin(ANONYMOUS, facts()),
      (error: unknown) =>
        error instanceof RegistryError &&
        error.code === 'UNAUTHORIZED' &&
        error.headers['www-authenticate'] === BEARER_CHALLENGE,
    );
    assert.throws(
      () => makeAuth(basicFlags()).requireLogin(ANONYMOUS, facts()),
      (error: unknown) =>
        error instanceof RegistryError && error.headers['www-authenticate'] === BASIC_CHALLENGE,
    );
  });

  test('a logged-in client, or nothing to log in to: no objection', () => {
    makeAuth(basicFlags()).requireLogin({ via: 'basic', ids: ['user:alice'] }, facts());
    makeAuth(basicFlags()).requireLogin({ via: 'certificate', ids: ['cert:x'] }, facts());
    makeAuth(nothingFlags()).requireLogin(ANONYMOUS, facts());
  });
});

describe('Auth.viewer', () => {
  const alice: Principal = { via: 'basic', ids: ['user:alice'] };
  const ci: Principal = { via: 'certificate', ids: ['cert:ci.example.com'] };

  test('anonymous is denied with 401 and a challenge for the repository’s pull scope', () => {
    const error = makeAuth(tokenFlags()).viewer(ANONYMOUS, facts()).denied('team/app');
    assert.equal(error.code, 'UNAUTHORIZED');
    assert.equal(error.status, 401);
    assert.equal(error.headers['www-authenticate'], `${BEARER_CHALLENGE},scope="repository:team/app:pull"`);
    assert.deepEqual(error.detail, [{ Type: 'repository', Name: 'team/app', Action: 'pull' }]);
  });

  test('anonymous with htpasswd only: 401 and the Basic challenge', () => {
    const error = makeAuth(basicFlags()).viewer(ANONYMOUS, facts()).denied('team/app');
    assert.equal(error.status, 401);
    assert.equal(error.headers['www-authenticate'], BASIC_CHALLENGE);
  });

  test('an authenticated user or certificate that is not allowed: 403 DENIED', () => {
    for (const principal of [alice, ci]) {
      const error = makeAuth(basicFlags()).viewer(principal, facts()).denied('secret/app');
      assert.equal(error.code, 'DENIED');
      assert.equal(error.status, 403);
      assert.deepEqual(error.detail, { name: 'secret/app' });
      assert.equal(error.headers['www-authenticate'], undefined);
    }
  });

  test('a bearer token without the scope: 401 with error="insufficient_scope"', async () => {
    const auth = makeAuth(tokenFlags());
    const { token } = await auth.issue(alice, auth.grant(alice, parseScopes(['repository:team/app:pull'])));
    const principal = await auth.authenticate(facts({ authorization: `Bearer ${token}` }));
    const error = auth.viewer(principal, facts()).denied('secret/app');
    assert.equal(error.code, 'UNAUTHORIZED');
    assert.equal(
      error.headers['www-authenticate'],
      `${BEARER_CHALLENGE},scope="repository:secret/app:pull",error="insufficient_scope"`,
    );
    assert.match(error.message, /does not grant repository:secret\/app:pull/);
  });

  test('denied: notFound answers 404 NAME_UNKNOWN to everybody, exactly like a missing repository', () => {
    const auth = makeAuth({ ...tokenFlags(), 'auth.denied': 'notFound' });
    for (const principal of [ANONYMOUS, alice, ci]) {
      const error = auth.viewer(principal, facts()).denied('secret/app');
      const missing = notFound('secret/app');
      assert.deepEqual(
        {
          code: error.code,
          status: error.status,
          message: error.message,
          detail: error.detail,
          headers: error.headers,
        },
        { code: missing.code, status: 404, message: missing.message, detail: missing.detail, headers: {} },
      );
    }
  });

  test('nothing to log in to: 404 NAME_UNKNOWN', () => {
    const auth = makeAuth(nothingFlags());
    for (const principal of [ANONYMOUS, ci]) {
      const error = auth.viewer(principal, facts()).denied('secret/app');
      assert.equal(error.code, 'NAME_UNKNOWN');
      assert.equal(error.status, 404);
    }
  });

  test('mayPull follows the rules; a protected record is not for anonymous', () => {
    const auth = makeAuth(basicFlags());
    const anonymous = auth.viewer(ANONYMOUS, facts());
    assert.equal(anonymous.mayPull('public/app', false), true);
    assert.equal(anonymous.mayPull('public/app', true), false);
    assert.equal(anonymous.mayPull('team/app', false), false);
    assert.equal(anonymous.mayPull('norule/app', false), false);
    const viewer = auth.viewer(alice, facts());
    assert.equal(viewer.mayPull('team/app', false), true);
    assert.equal(viewer.mayPull('public/app', true), true);
    assert.equal(viewer.mayPull('secret/app', false), false);
    assert.equal(auth.viewer(ci, facts()).mayPull('team/app', true), true);
    assert.equal(anonymous.isPublic('public/app', false), true);
    assert.equal(anonymous.isPublic('public/app', true), false);
    assert.equal(viewer.isPublic('team/app', false), false);
  });

  test('derrick’s own token needs the scope and the current rules to allow its identities', async () => {
    const before = makeAuth(tokenFlags());
    const { token } = await before.issue(
      alice,
      before.grant(alice, parseScopes(['repository:team/app:pull'])),
    );
    const principal = await before.authenticate(facts({ authorization: `Bearer ${token}` }));
    assert.equal(before.viewer(principal, facts()).mayPull('team/app', false), true);
    assert.equal(before.viewer(principal, facts()).mayPull('team/other', false), false, 'not in the token');
    assert.equal(before.viewer(principal, facts()).mayPull('public/x', false), true, 'public: any token');
    // The same key, but alice has left the dev group: the token no longer opens team/app.
    const after = makeAuth({ ...tokenFlags(), 'auth.groups': JSON.stringify({ dev: ['user:bob'] }) });
    const again = await after.authenticate(facts({ authorization: `Bearer ${token}` }));
    assert.equal(after.viewer(again, facts()).mayPull('team/app', false), false);
  });

  test('an anonymous token naming a protected record does not open it', async () => {
    const auth = makeAuth(tokenFlags());
    const granted = auth.grant(ANONYMOUS, parseScopes(['repository:public/app:pull']));
    assert.deepEqual(granted, [{ type: 'repository', name: 'public/app', actions: ['pull'] }]);
    const { token } = await auth.issue(ANONYMOUS, granted);
    const principal = await auth.authenticate(facts({ authorization: `Bearer ${token}` }));
    assert.equal(auth.viewer(principal, facts()).mayPull('public/app', false), true);
    assert.equal(auth.viewer(principal, facts()).mayPull('public/app', true), false);
  });

  test('an external token: its access claim decides, and the catalog lists only what it names', async () => {
    const auth = makeAuth({
      ...basicFlags(),
      'auth.token.service': SERVICE,
      'auth.token.realm': 'https://auth.example.com/token',
      'auth.token.trust': JSON.stringify([{ issuer: EXTERNAL, publicKeys: [externalPem] }]),
    });
    const token = await new SignJWT({
      access: [
        { type: 'repository', name: 'secret/app', actions: ['pull'] },
        { type: 'registry', name: 'catalog', actions: ['*'] },
      ],
    })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer(EXTERNAL)
      .setSubject('bob')
      .setAudience(SERVICE)
      .setExpirationTime('5m')
      .sign(external.privateKey);
    const principal = await auth.authenticate(facts({ authorization: `Bearer ${token}` }));
    assert.deepEqual(principal.ids, ['user:bob']);
    const viewer = auth.viewer(principal, facts());
    assert.equal(viewer.mayPull('secret/app', false), true);
    assert.equal(viewer.mayPull('secret/other', false), false, 'bob by the rules, but not in the token');
    assert.equal(viewer.mayList('secret/app', false), true);
    assert.equal(viewer.mayList('secret/other', false), false);
    assert.equal(viewer.mayList('public/app', false), true);
  });

  test('derrick’s own token with the catalog scope lists what its identities may pull', async () => {
    const auth = makeAuth(tokenFlags());
    const bob: Principal = { via: 'basic', ids: ['user:bob'] };
    const { token } = await auth.issue(bob, auth.grant(bob, parseScopes(['registry:catalog:*'])));
    const principal = await auth.authenticate(facts({ authorization: `Bearer ${token}` }));
    const viewer = auth.viewer(principal, facts());
    assert.equal(viewer.mayPull('secret/app', false), false, 'no repository scope');
    assert.equal(viewer.mayList('secret/app', false), true);
    assert.equal(viewer.mayList('team/app', false), false);
  });
});

describe('Auth.grant', () => {
  const alice: Principal = { via: 'basic', ids: ['user:alice'] };

  test('only pull, only on repositories the rules allow, and the catalog; in the order asked', () => {
    const auth = makeAuth(tokenFlags());
    const granted = auth.grant(
      alice,
      parseScopes([
        'repository:team/app:pull,push',
        'repository:secret/app:pull',
        'registry:catalog:*',
        'repository:public/x:*',
        'repository:team/app:push,delete',
        'repository:norule/app:pull',
        'something:team/app:pull',
      ]),
    );
    assert.deepEqual(granted, [
      { type: 'repository', name: 'team/app', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
      { type: 'repository', name: 'public/x', actions: ['pull'] },
    ]);
  });

  test('never push, to anybody', () => {
    const auth = makeAuth(tokenFlags());
    for (const principal of [ANONYMOUS, alice, { via: 'basic', ids: ['user:bob'] } as Principal])
      assert.deepEqual(
        auth.grant(principal, parseScopes(['repository:public/app:push', 'repository:team/app:push'])),
        [],
      );
  });

  test('anonymous gets only what anonymous may pull', () => {
    const auth = makeAuth(tokenFlags());
    assert.deepEqual(
      auth.grant(
        ANONYMOUS,
        parseScopes(['repository:public/app:pull repository:team/app:pull repository:secret/app:pull']),
      ),
      [{ type: 'repository', name: 'public/app', actions: ['pull'] }],
    );
  });

  test('a certificate identity gets what its rules and groups allow', () => {
    const auth = makeAuth(tokenFlags());
    const vault: Principal = { via: 'certificate', ids: ['cert:vault.example.com'] };
    assert.deepEqual(
      auth
        .grant(vault, parseScopes(['repository:secret/app:pull', 'repository:team/app:pull']))
        .map((a) => a.name),
      ['secret/app'],
    );
  });

  test('invalid repository names are skipped', () => {
    const auth = makeAuth(tokenFlags());
    assert.deepEqual(
      auth.grant(
        alice,
        parseScopes(['repository:Team/App:pull', 'repository:team/../x:pull', 'repository:public/a:b:pull']),
      ),
      [],
    );
  });
});

describe('Auth: issuing', () => {
  test('the token subject is the first identity without its prefix, and carries all identities', async () => {
    const auth = makeAuth(tokenFlags());
    const principal: Principal = { via: 'basic', ids: ['user:alice', 'cert:ci.example.com'] };
    const { token } = await auth.issue(principal, []);
    const verified = await auth.tokens!.verify(token);
    assert.equal(verified.subject, 'alice');
    assert.deepEqual(verified.ids, ['user:alice', 'cert:ci.example.com']);
    assert.equal((await auth.tokens!.verify((await auth.issue(ANONYMOUS, [])).token)).subject, '');
  });

  test('without auth.token.key derrick does not issue: UNSUPPORTED', () => {
    const auth = makeAuth({
      'auth.token.service': SERVICE,
      'auth.token.realm': 'https://auth.example.com/token',
      'auth.token.trust': JSON.stringify([{ issuer: EXTERNAL, publicKeys: [externalPem] }]),
    });
    assert.equal(auth.tokens?.issues, false);
    assert.throws(
      () => auth.issue(ANONYMOUS, []),
      (error: unknown) => error instanceof RegistryError && error.code === 'UNSUPPORTED',
    );
  });
});

describe('Auth: configuration errors', () => {
  function configError(flags: Flags, key: string, message: RegExp): void {
    assert.throws(
      () => makeAuth(flags),
      (error: unknown) => {
        assert.ok(error instanceof AuthConfigError, `expected an AuthConfigError, got ${String(error)}`);
        assert.equal(error.key, key);
        assert.match(error.message, message);
        return true;
      },
    );
  }

  test('auth.token without key and without trust', () => {
    configError({ 'auth.token.service': SERVICE }, 'auth.token', /give key .* or trust/);
  });

  test('auth.token with trust but without key needs a realm', () => {
    configError(
      {
        'auth.token.service': SERVICE,
        'auth.token.trust': JSON.stringify([{ issuer: EXTERNAL, publicKeys: [externalPem] }]),
      },
      'auth.token.realm',
      /required when derrick does not issue tokens itself/,
    );
  });

  test('a key file that does not exist', () => {
    configError(
      { 'auth.token.service': SERVICE, 'auth.token.key': path.join(temp.dir, 'missing.key') },
      'auth.token.key',
      /cannot read/,
    );
  });

  test('an htpasswd file that does not exist, or holds a weak hash', () => {
    configError({ 'auth.htpasswd': path.join(temp.dir, 'missing') }, 'auth.htpasswd', /missing/);
    const weak = path.join(temp.dir, 'weak.htpasswd');
    writeFileSync(weak, 'alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n');
    configError({ 'auth.htpasswd': weak }, 'auth.htpasswd', /line 1: user "alice".*htpasswd -B/);
  });

  test('a group the rules name but auth.groups does not define', () => {
    configError(
      { access: JSON.stringify([...ACCESS, { match: 'ops/**', pull: ['group:ops'] }]) },
      'access.3.pull',
      /group:ops is not defined under auth\.groups/,
    );
  });
});
