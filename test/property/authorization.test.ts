/**
 * `Authorization` headers and bearer tokens, generated: any header is a principal (anonymous or proved) or a
 * RegistryError; Basic credentials are accepted exactly when they are a user's; a token that is garbled, forged,
 * unsigned or signed with the wrong key is refused with TokenError, and a garbled one that still verifies says
 * exactly what the original said.
 */
import assert from 'node:assert/strict';
import { createHmac, createPublicKey, createSign, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Auth, type AuthLog, type Principal } from '../../src/auth/auth.ts';
import { TokenError, Tokens, type VerifiedToken } from '../../src/auth/tokens.ts';
import { loadConfig } from '../../src/config/load.ts';
import { ERROR_CODES, RegistryError } from '../../src/oci/errors.ts';
import { tempDir } from '../helpers/cli.ts';
import { htpasswdLine, tokenKey } from '../helpers/pki.ts';
import { fc, holds } from '../helpers/property.ts';
import { anyText, repositoryName } from './grammar.ts';

const file = import.meta.filename;
const SERVICE = 'registry.test';
const EXTERNAL = 'https://auth.example.com';
const USERS = { alice: 'alice-pw', bob: 'b:o:b' } as const;

const temp = tempDir('derrick-property-auth-');
after(() => temp.cleanup());

const quiet: AuthLog = { error: () => undefined, info: () => undefined, warn: () => undefined };

let auth!: Auth;
let tokens!: Tokens;
let ownPublic!: KeyObject;
let external!: { privateKey: KeyObject; publicKey: KeyObject };
let aliceToken = '';
let aliceVerified!: VerifiedToken;

before(async () => {
  const htpasswd = path.join(temp.dir, 'htpasswd');
  writeFileSync(
    htpasswd,
    `${Object.entries(USERS)
      .map(([u, p]) => htpasswdLine(u, p))
      .join('\n')}\n`,
  );
  const key = tokenKey(path.join(temp.dir, 'token.key'));
  ownPublic = createPublicKey(readFileSync(key));
  external = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const externalPem = path.join(temp.dir, 'external.pem');
  writeFileSync(externalPem, external.publicKey.export({ type: 'spki', format: 'pem' }));
  const config = loadConfig({
    flags: {
      'auth.htpasswd': htpasswd,
      'auth.token.service': SERVICE,
      'auth.token.key': key,
      'auth.token.trust': JSON.stringify([{ issuer: EXTERNAL, publicKeys: [externalPem] }]),
      // Every case is a new client as far as the limit goes: the property is about parsing, not lock-out.
      'auth.failedLogins.limit': String(2 ** 30),
      access: JSON.stringify([{ match: 'public/**', pull: ['anonymous'] }]),
    },
  });
  auth = new Auth(config, quiet);
  assert.ok(auth.tokens);
  tokens = auth.tokens;
  aliceToken = (
    await tokens.issue(
      'alice',
      ['user:alice'],
      [{ type: 'repository', name: 'public/app', actions: ['pull'] }],
    )
  ).token;
  aliceVerified = await tokens.verify(aliceToken);
});

const facts = (authorization: string) => ({
  authorization,
  client: '192.0.2.1',
  tokenRealm: 'http://h/auth/token',
});

/** authenticate's outcome: a principal, or the RegistryError it threw (anything else fails the property). */
async function outcome(authorization: string): Promise<Principal | RegistryError> {
  try {
    return await auth.authenticate(facts(authorization));
  } catch (error) {
    if (!(error instanceof RegistryError)) throw error;
    assert.ok(error.code in ERROR_CODES);
    return error;
  }
}

const base64 = (text: string | Buffer): string => Buffer.from(text).toString('base64');
const base64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

const schemeWord = fc.constantFrom(
  'Basic',
  'basic',
  'BASIC',
  'Bearer',
  'bearer',
  'Digest',
  'Negotiate',
  'Token',
  '',
);
const credentials = fc.oneof(
  anyText,
  anyText.map(base64),
  fc.tuple(anyText, anyText).map(([user, password]) => base64(`${user}:${password}`)),
  fc.constantFrom('', '=', '==', 'Og==', 'Og', ':', base64('alice:'), base64(':alice-pw'), base64('alice')),
);
const header = fc.oneof(
  anyText,
  fc
    .tuple(schemeWord, fc.constantFrom(' ', '  ', '\t', ''), credentials, fc.constantFrom('', ' ', '\n'))
    .map(([scheme, space, value, tail]) => `${scheme}${space}${value}${tail}`),
);

describe('Authorization headers (generated)', () => {
  test('any header is an anonymous or proved principal, or a RegistryError of the error table', async () => {
    await holds(
      fc.asyncProperty(header, async (text) => {
        const result = await outcome(text);
        if (result instanceof RegistryError) return;
        if (result.via === 'basic') assert.ok(/^basic +/i.test(text), text);
        if (result.via === 'token') assert.ok(/^bearer +/i.test(text), text);
      }),
      { file },
    );
  });

  test('Basic credentials prove a user exactly when they are that user and their password', async () => {
    const user = fc.oneof(fc.constantFrom('alice', 'bob', 'Alice', 'alice ', ''), anyText);
    const password = fc.oneof(fc.constantFrom(...Object.values(USERS), 'alice-pw ', 'ALICE-PW', ''), anyText);
    await holds(
      fc.asyncProperty(user, password, async (name, secret) => {
        const result = await outcome(`Basic ${base64(`${name}:${secret}`)}`);
        const right = Object.entries(USERS).some(([u, p]) => u === name && p === secret);
        if (right) assert.deepEqual(result, { via: 'basic', ids: [`user:${name}`] });
        else assert.ok(result instanceof RegistryError || result.via === 'anonymous', `${name}:${secret}`);
      }),
      { file, runs: 300 },
    );
  });

  test('a bearer token derrick issued proves its identities; the same token garbled proves nothing else', async () => {
    await holds(
      fc.asyncProperty(garbled, async (mutate) => {
        const text = mutate(aliceToken);
        const result = await outcome(`Bearer ${text}`);
        if (result instanceof RegistryError) return;
        assert.equal(result.via, 'token');
        assert.deepEqual(result.token, aliceVerified);
      }),
      { file, runs: 300 },
    );
  });
});

/** Ways to garble a JWT: flip, drop or insert characters, swap or repeat segments, pad, change case. */
const garbled: fc.Arbitrary<(token: string) => string> = fc.oneof(
  fc
    .tuple(fc.nat(), fc.constantFrom(...Array.from('AZaz09-_=.+/ \0é')))
    .map(([at, char]) => (token: string) => {
      const i = at % token.length;
      return token.slice(0, i) + char + token.slice(i + 1);
    }),
  fc.tuple(fc.nat(), fc.nat(40)).map(([at, length]) => (token: string) => {
    const i = at % token.length;
    return token.slice(0, i) + token.slice(i + length + 1);
  }),
  fc.tuple(fc.nat(), anyText).map(([at, text]) => (token: string) => {
    const i = at % (token.length + 1);
    return token.slice(0, i) + text + token.slice(i);
  }),
  fc.array(fc.nat(4), { minLength: 1, maxLength: 5 }).map((order) => (token: string) => {
    const parts = token.split('.');
    return order.map((i) => parts[i] ?? '').join('.');
  }),
  fc.constantFrom(
    (token: string) => token.toUpperCase(),
    (token: string) => `${token}.`,
    (token: string) => `${token}=`,
    (token: string) => token.split('.').slice(0, 2).join('.') + '.',
    (token: string) => token.replace(/-/g, '+').replace(/_/g, '/'),
  ),
);

/** A JWT with this header and payload and these signature bytes (base64url of JSON, as jose writes them). */
function jwt(header: unknown, payload: unknown, signature: Buffer | string): string {
  const signing = `${base64url(header)}.${base64url(payload)}`;
  const sig = typeof signature === 'string' ? signature : signature.toString('base64url');
  return `${signing}.${sig}`;
}

const now = (): number => Math.floor(Date.now() / 1000);

/** Claims a token would need to be accepted: our issuer or the trusted one, our audience, a future expiry. */
const claims = fc.record(
  {
    iss: fc.oneof(fc.constantFrom('derrick', EXTERNAL), anyText),
    aud: fc.oneof(fc.constant(SERVICE), fc.constant([SERVICE]), anyText),
    sub: fc.oneof(fc.constant('alice'), anyText),
    exp: fc.oneof(fc.constant(now() + 3600), fc.integer(), fc.double(), anyText),
    nbf: fc.oneof(fc.constant(now() - 60), fc.integer()),
    access: fc.oneof(
      fc.constant([{ type: 'repository', name: 'secret/app', actions: ['pull'] }]),
      fc.array(
        fc.record({ type: fc.constant('repository'), name: repositoryName, actions: fc.constant(['*']) }),
      ),
      fc.jsonValue(),
    ),
    derrick_ids: fc.oneof(fc.constant(['user:bob']), fc.jsonValue()),
  },
  { requiredKeys: ['iss'] },
);

const forgedHeader = fc.record(
  {
    alg: fc.oneof(
      fc.constantFrom('none', 'None', 'NONE', 'HS256', 'HS512', 'ES256', 'RS256', 'PS256', 'EdDSA', 'ES384'),
      anyText,
      fc.jsonValue(),
    ),
    typ: fc.constantFrom('JWT', 'at+jwt'),
    kid: fc.oneof(anyText, fc.jsonValue()),
    crit: fc.oneof(fc.constant(['exp']), fc.constant(['b64']), fc.jsonValue()),
    b64: fc.boolean(),
    /** Embed derrick's public key as a JWK, hoping the verifier trusts a header's own key. */
    jwk: fc.boolean(),
  },
  { requiredKeys: ['alg'] },
);

type Forgery = 'text' | 'empty' | 'hmac-with-public-key' | 'trusted-key' | Buffer;

/** Signature bytes a forger can make: none, random, an HMAC keyed with a public key, a foreign key's. */
const forgedSignature: fc.Arbitrary<Forgery> = fc.oneof(
  fc.constantFrom<Forgery>('text', 'empty', 'hmac-with-public-key', 'trusted-key'),
  fc.uint8Array({ maxLength: 80 }).map((bytes) => Buffer.from(bytes)),
);

function sign(header: Record<string, unknown>, claimed: Record<string, unknown>, how: Forgery): string {
  const payload = how === 'trusted-key' ? { ...claimed, iss: 'derrick' } : claimed;
  const signing = `${base64url(header)}.${base64url(payload)}`;
  if (how === 'empty') return `${signing}.`;
  if (how === 'text') return `${signing}.${Buffer.from('not a signature').toString('base64url')}`;
  if (how === 'hmac-with-public-key') {
    const secret = ownPublic.export({ type: 'spki', format: 'pem' });
    return `${signing}.${createHmac('sha256', secret).update(signing).digest('base64url')}`;
  }
  if (how === 'trusted-key') {
    // Really signed by the trusted service's key, but claiming derrick as its issuer: the key does not fit.
    const signature = createSign('sha256')
      .update(signing)
      .sign({ key: external.privateKey, dsaEncoding: 'ieee-p1363' });
    return `${signing}.${signature.toString('base64url')}`;
  }
  return jwt(header, payload, how);
}

async function refused(token: string): Promise<void> {
  await assert.rejects(tokens.verify(token), (error: unknown) => {
    assert.ok(error instanceof TokenError, `${String(error)} for ${token}`);
    return true;
  });
}

describe('bearer tokens (generated)', () => {
  test('any text given as a bearer token is refused with TokenError', async () => {
    await holds(
      fc.asyncProperty(
        fc.oneof(
          anyText,
          fc.array(anyText, { maxLength: 4 }).map((parts) => parts.join('.')),
        ),
        refused,
      ),
      { file },
    );
  });

  test('a forged token (alg none, HMAC with the public key, random or foreign signature) is refused with TokenError', async () => {
    await holds(
      fc.asyncProperty(forgedHeader, claims, forgedSignature, async (headerValue, payload, how) => {
        const { jwk, ...rest } = headerValue;
        await refused(
          sign(jwk === true ? { ...rest, jwk: ownPublic.export({ format: 'jwk' }) } : rest, payload, how),
        );
      }),
      { file },
    );
  });

  test("a token signed with the trusted service's key is accepted under that issuer only, never as derrick's own", async () => {
    const issuer = fc.constantFrom('derrick', EXTERNAL, `${EXTERNAL}/`, 'https://other.example.com');
    const names = fc.uniqueArray(repositoryName, { maxLength: 3 });
    await holds(
      fc.asyncProperty(issuer, names, fc.constantFrom('alice', 'bob', ''), async (iss, pull, sub) => {
        const payload = {
          iss,
          aud: SERVICE,
          ...(sub === '' ? {} : { sub }),
          exp: now() + 600,
          access: pull.map((name) => ({ type: 'repository', name, actions: ['pull'] })),
          derrick_ids: ['user:bob'],
        };
        const signing = `${base64url({ alg: 'ES256', typ: 'JWT' })}.${base64url(payload)}`;
        const signature = createSign('sha256')
          .update(signing)
          .sign({ key: external.privateKey, dsaEncoding: 'ieee-p1363' });
        const token = `${signing}.${signature.toString('base64url')}`;
        if (iss !== EXTERNAL) return refused(token);
        const verified = await tokens.verify(token);
        assert.deepEqual(verified, {
          own: false,
          subject: sub,
          ids: sub === '' ? [] : [`user:${sub}`],
          pull: new Set(pull),
          catalog: false,
        });
      }),
      { file, runs: 300 },
    );
  });

  test('a garbled derrick token is refused with TokenError or, if it still verifies, says what the original said', async () => {
    await holds(
      fc.asyncProperty(garbled, async (mutate) => {
        const text = mutate(aliceToken);
        let verified: VerifiedToken;
        try {
          verified = await tokens.verify(text);
        } catch (error) {
          assert.ok(error instanceof TokenError, String(error));
          return;
        }
        assert.deepEqual(verified, aliceVerified, text);
      }),
      { file },
    );
  });
});
