import assert from 'node:assert/strict';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  exportPKCS8,
  exportSPKI,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWTPayload,
} from 'jose';
import { AuthConfigError } from '../../../src/auth/errors.ts';
import { TokenError, Tokens, type TokenSettings } from '../../../src/auth/tokens.ts';
import { tempDir } from '../../helpers/cli.ts';
import { makePki, tokenKey, unsupportedTokenKey } from '../../helpers/pki.ts';

const SERVICE = 'registry.test';
const EXTERNAL = 'https://auth.example.com';

const temp = tempDir('derrick-tokens-');
after(() => temp.cleanup());

let counter = 0;
/** Writes `text` to a fresh file in the temp directory. */
function file(text: string, name = 'file'): string {
  const target = path.join(temp.dir, `${name}-${++counter}`);
  writeFileSync(target, text);
  return target;
}

function settings(overrides: Partial<TokenSettings> = {}): TokenSettings {
  return { service: SERVICE, issuer: 'derrick', ttlSeconds: 300, trust: [], ...overrides };
}

const now = (): number => Math.floor(Date.now() / 1000);

/** A JWT with these claims (iss, aud, exp … given explicitly), signed by `key` with `alg`. */
function sign(
  key: KeyObject | CryptoKey | Uint8Array,
  alg: string,
  claims: JWTPayload,
  kid?: string,
): Promise<string> {
  return new SignJWT(claims).setProtectedHeader(kid === undefined ? { alg } : { alg, kid }).sign(key);
}

/** Claims given as undefined are left out of the token. */
type Extra = Record<string, unknown>;

/** Claims of a token derrick itself could have issued, valid now. */
function ownClaims(extra: Extra = {}): JWTPayload {
  return {
    iss: 'derrick',
    aud: SERVICE,
    sub: 'alice',
    iat: now(),
    exp: now() + 300,
    access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }],
    derrick_ids: ['user:alice'],
    ...extra,
  };
}

/** Claims of an external token service's token, valid now. */
function externalClaims(extra: Extra = {}): JWTPayload {
  return {
    iss: EXTERNAL,
    aud: SERVICE,
    sub: 'bob',
    exp: now() + 300,
    access: [
      { type: 'repository', name: 'vendor/tool', actions: ['pull'] },
      { type: 'repository', name: 'vendor/other', actions: ['push'] },
    ],
    ...extra,
  };
}

const base64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

async function refused(tokens: Tokens, token: string, message: RegExp): Promise<void> {
  await assert.rejects(tokens.verify(token), (error: unknown) => {
    assert.ok(error instanceof TokenError, `expected a TokenError, got ${String(error)}`);
    assert.match(error.message, message);
    return true;
  });
}

function configError(key: string, message: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof AuthConfigError, `expected an AuthConfigError, got ${String(error)}`);
    assert.equal(error.key, key);
    assert.match(error.message, message);
    return true;
  };
}

let ecKeyFile = '';
let rsaKeyFile = '';
let ecKey!: KeyObject;
let external!: { publicKey: CryptoKey; privateKey: CryptoKey };
let externalPem = '';

before(async () => {
  ecKeyFile = tokenKey(path.join(temp.dir, 'ec.key'), 'ec');
  rsaKeyFile = tokenKey(path.join(temp.dir, 'rsa.key'), 'rsa');
  ecKey = createPrivateKey(readFileSync(ecKeyFile));
  external = await generateKeyPair('ES256', { extractable: true });
  externalPem = file(await exportSPKI(external.publicKey), 'external.pem');
});

describe('Tokens: derrick’s own', () => {
  for (const kind of ['ec', 'rsa'] as const) {
    test(`${kind === 'ec' ? 'an EC P-256 key signs ES256' : 'an RSA key signs RS256'}; issue → verify round trip`, async () => {
      const tokens = new Tokens(settings({ key: kind === 'ec' ? ecKeyFile : rsaKeyFile }));
      assert.equal(tokens.issues, true);
      const issued = await tokens.issue(
        'alice',
        ['user:alice', 'cert:ci.example.com'],
        [
          { type: 'repository', name: 'team/app', actions: ['pull'] },
          { type: 'repository', name: 'team/all', actions: ['*'] },
          { type: 'repository', name: 'team/pushed', actions: ['push'] },
          { type: 'registry', name: 'catalog', actions: ['*'] },
        ],
      );
      assert.equal(issued.expiresIn, 300);
      assert.equal(decodeProtectedHeader(issued.token).alg, kind === 'ec' ? 'ES256' : 'RS256');
      const claims = decodeJwt(issued.token);
      assert.equal(claims.iss, 'derrick');
      assert.equal(claims.aud, SERVICE);
      assert.equal(claims.sub, 'alice');
      assert.equal((claims.exp ?? 0) - (claims.iat ?? 0), 300);
      assert.equal(issued.issuedAt.getTime(), (claims.iat ?? 0) * 1000);
      assert.equal(typeof claims.jti, 'string');

      const verified = await tokens.verify(issued.token);
      assert.equal(verified.own, true);
      assert.equal(verified.subject, 'alice');
      assert.deepEqual(verified.ids, ['user:alice', 'cert:ci.example.com']);
      assert.deepEqual([...verified.pull].sort(), ['team/all', 'team/app']);
      assert.equal(verified.catalog, true);
    });
  }

  test('a token without the catalog scope or identities has neither', async () => {
    const tokens = new Tokens(settings({ key: ecKeyFile }));
    const { token } = await tokens.issue('', [], [{ type: 'repository', name: 'a', actions: ['pull'] }]);
    const verified = await tokens.verify(token);
    assert.equal(verified.catalog, false);
    assert.deepEqual(verified.ids, []);
    assert.deepEqual([...verified.pull], ['a']);
  });

  test('ids come from the derrick_ids claim only (not from sub), strings only', async () => {
    const tokens = new Tokens(settings({ key: ecKeyFile }));
    const token = await sign(ecKey, 'ES256', ownClaims({ derrick_ids: ['user:carol', 7, null] }));
    const verified = await tokens.verify(token);
    assert.equal(verified.subject, 'alice');
    assert.deepEqual(verified.ids, ['user:carol']);
    const none = await sign(ecKey, 'ES256', ownClaims({ derrick_ids: undefined }));
    assert.deepEqual((await tokens.verify(none)).ids, []);
  });

  test('without a key derrick does not issue', async () => {
    const tokens = new Tokens(settings({ trust: [{ issuer: EXTERNAL, publicKeys: [externalPem] }] }));
    assert.equal(tokens.issues, false);
    await assert.rejects(tokens.issue('alice', [], []), /does not issue tokens/);
  });

  test('an expired token is refused', async () => {
    const tokens = new Tokens(settings({ key: ecKeyFile }));
    await refused(
      tokens,
      await sign(ecKey, 'ES256', ownClaims({ iat: now() - 7200, exp: now() - 3600 })),
      /^the bearer token has expired$/,
    );
  });

  test('a token not valid until later than the 30 s tolerance is refused; within it, accepted', async () => {
    const tokens = new Tokens(settings({ key: ecKeyFile }));
    await refused(
      tokens,
      await sign(ecKey, 'ES256', ownClaims({ nbf: now() + 3600, exp: now() + 7200 })),
      /^the bearer token is not valid yet$/,
    );
    const soon = await sign(ecKey, 'ES256', ownClaims({ nbf: now() + 5 }));
    assert.equal((await tokens.verify(soon)).own, true);
  });

  test('a token just past its expiry is still within the clock tolerance', async () => {
    const tokens = new Tokens(settings({ key: ecKeyFile }));
    const token = await sign(ecKey, 'ES256', ownClaims({ exp: now() - 5 }));
    assert.equal((await tokens.verify(token)).own, true);
  });

  test('a token for another audience is refused', async () => {
    const tokens = new Tokens(settings({ key: ecKeyFile }));
    await refused(
      tokens,
      await sign(ecKey, 'ES256', ownClaims({ aud: 'other.registry' })),
      /^the bearer token is not for this service \(registry\.test\)$/,
    );
    await refused(tokens, await sign(ecKey, 'ES256', ownClaims({ aud: undefined })), /not for this service/);
  });

  test('a token from an issuer that is neither derrick’s nor trusted is refused', async () => {
    const tokens = new Tokens(settings({ key: ecKeyFile }));
    await refused(
      tokens,
      await sign(ecKey, 'ES256', ownClaims({ iss: 'someone-else' })),
      /^tokens from issuer "someone-else" are not accepted$/,
    );
    await refused(tokens, await sign(ecKey, 'ES256', ownClaims({ iss: undefined })), /are not accepted/);
  });

  test('a token without exp is refused', async () => {
    const tokens = new Tokens(settings({ key: ecKeyFile }));
    await refused(
      tokens,
      await sign(ecKey, 'ES256', ownClaims({ exp: undefined })),
      /^the bearer token's exp claim is not acceptable$/,
    );
  });

  test('a token with derrick’s issuer signed by another key is refused', async () => {
    const tokens = new Tokens(settings({ key: ecKeyFile }));
    const other = createPrivateKey(readFileSync(tokenKey(path.join(temp.dir, 'other-ec.key'), 'ec')));
    await refused(
      tokens,
      await sign(other, 'ES256', ownClaims()),
      /^the bearer token signature does not verify$/,
    );
    await refused(tokens, await sign(external.privateKey, 'ES256', ownClaims()), /does not verify/);
  });

  test('a token whose signature was tampered with, or whose payload was, is refused', async () => {
    const tokens = new Tokens(settings({ key: ecKeyFile }));
    const [header, , signature] = (await sign(ecKey, 'ES256', ownClaims())).split('.');
    const forged = `${header}.${base64url(ownClaims({ access: [{ type: 'repository', name: 'secret', actions: ['pull'] }] }))}.${signature}`;
    await refused(tokens, forged, /does not verify/);
  });

  test('an RSA-keyed derrick refuses an ES256 token with its issuer', async () => {
    const tokens = new Tokens(settings({ key: rsaKeyFile }));
    await assert.rejects(tokens.verify(await sign(ecKey, 'ES256', ownClaims())), TokenError);
  });

  test('`alg: none` is refused', async () => {
    const tokens = new Tokens(settings({ key: ecKeyFile }));
    const unsigned = `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(ownClaims())}.`;
    assert.equal(decodeJwt(unsigned).iss, 'derrick', 'the crafted token decodes');
    await refused(tokens, unsigned, /^the bearer token uses a refused algorithm$/);
  });

  test('HS256 (a shared secret) is refused', async () => {
    const tokens = new Tokens(settings({ key: ecKeyFile }));
    const secret = new TextEncoder().encode('a secret anybody could have guessed');
    await refused(tokens, await sign(secret, 'HS256', ownClaims()), /refused algorithm/);
  });

  for (const garbage of ['garbage', '', 'a.b.c', 'Bearer xyz', `${base64url({ alg: 'ES256' })}.notjson.`]) {
    test(`${JSON.stringify(garbage)} is not a JWT`, async () => {
      const tokens = new Tokens(settings({ key: ecKeyFile }));
      await refused(tokens, garbage, /^the bearer token is not a JWT$/);
    });
  }

  test('an access claim that is not a list is refused', async () => {
    const tokens = new Tokens(settings({ key: ecKeyFile }));
    await refused(
      tokens,
      await sign(ecKey, 'ES256', ownClaims({ access: 'repository:team/app:pull' })),
      /^the access claim is not a list$/,
    );
  });

  test('malformed access entries are skipped', async () => {
    const tokens = new Tokens(settings({ key: ecKeyFile }));
    const token = await sign(
      ecKey,
      'ES256',
      ownClaims({
        access: [
          null,
          'repository:x:pull',
          { type: 'repository', name: 'no-actions' },
          { type: 'repository', name: 7, actions: ['pull'] },
          { type: 'repository', name: 'good', actions: [1, 'pull'] },
        ],
      }),
    );
    assert.deepEqual([...(await tokens.verify(token)).pull], ['good']);
  });
});

describe('Tokens: trusted external issuers', () => {
  test('a token signed by a key from publicKeys verifies: own false, ids user:<sub>, pull from access', async () => {
    const tokens = new Tokens(
      settings({ key: ecKeyFile, trust: [{ issuer: EXTERNAL, publicKeys: [externalPem] }] }),
    );
    const verified = await tokens.verify(await sign(external.privateKey, 'ES256', externalClaims()));
    assert.equal(verified.own, false);
    assert.equal(verified.subject, 'bob');
    assert.deepEqual(verified.ids, ['user:bob']);
    assert.deepEqual([...verified.pull], ['vendor/tool']);
    assert.equal(verified.catalog, false);
  });

  test('an external token without sub has no identities; derrick_ids in it are ignored', async () => {
    const tokens = new Tokens(settings({ trust: [{ issuer: EXTERNAL, publicKeys: [externalPem] }] }));
    const token = await sign(
      external.privateKey,
      'ES256',
      externalClaims({ sub: undefined, derrick_ids: ['user:admin'] }),
    );
    const verified = await tokens.verify(token);
    assert.deepEqual(verified.ids, []);
    assert.equal(verified.own, false);
  });

  test('an external token with registry:catalog grants the catalog', async () => {
    const tokens = new Tokens(settings({ trust: [{ issuer: EXTERNAL, publicKeys: [externalPem] }] }));
    const token = await sign(
      external.privateKey,
      'ES256',
      externalClaims({ access: [{ type: 'registry', name: 'catalog', actions: ['*'] }] }),
    );
    const verified = await tokens.verify(token);
    assert.equal(verified.catalog, true);
    assert.equal(verified.pull.size, 0);
  });

  test('a certificate in publicKeys verifies the tokens of its key', async () => {
    const pki = makePki(path.join(temp.dir, 'pki'));
    const caKey = createPrivateKey(readFileSync(path.join(pki.dir, 'ca', 'ca.key')));
    const tokens = new Tokens(settings({ trust: [{ issuer: EXTERNAL, publicKeys: [pki.ca] }] }));
    assert.equal((await tokens.verify(await sign(caKey, 'ES256', externalClaims()))).own, false);
    await refused(tokens, await sign(external.privateKey, 'ES256', externalClaims()), /does not verify/);
  });

  test('a trusted issuer’s token signed by an untrusted key, or expired, or for another audience, is refused', async () => {
    const tokens = new Tokens(settings({ trust: [{ issuer: EXTERNAL, publicKeys: [externalPem] }] }));
    await refused(
      tokens,
      await sign(ecKey, 'ES256', externalClaims()),
      /^the bearer token signature does not verify$/,
    );
    await refused(
      tokens,
      await sign(external.privateKey, 'ES256', externalClaims({ exp: now() - 3600 })),
      /has expired/,
    );
    await refused(
      tokens,
      await sign(external.privateKey, 'ES256', externalClaims({ aud: 'elsewhere' })),
      /not for this service/,
    );
  });

  test('a token claiming derrick’s own issuer is not checked against trusted keys', async () => {
    const tokens = new Tokens(
      settings({ key: ecKeyFile, trust: [{ issuer: EXTERNAL, publicKeys: [externalPem] }] }),
    );
    await refused(tokens, await sign(external.privateKey, 'ES256', ownClaims()), /does not verify/);
  });

  test('several keys of one issuer: a token signed by any of them verifies', async () => {
    const second = await generateKeyPair('ES256', { extractable: true });
    const secondPem = file(await exportSPKI(second.publicKey), 'second.pem');
    const tokens = new Tokens(
      settings({ trust: [{ issuer: EXTERNAL, publicKeys: [externalPem, secondPem] }] }),
    );
    assert.equal(
      (await tokens.verify(await sign(external.privateKey, 'ES256', externalClaims()))).own,
      false,
    );
    assert.equal((await tokens.verify(await sign(second.privateKey, 'ES256', externalClaims()))).own, false);
  });

  test('an RSA and an EC key of one issuer (an algorithm rotation): an ES256 token verifies whatever their order', async () => {
    const rsa = await generateKeyPair('RS256', { extractable: true });
    const rsaPem = file(await exportSPKI(rsa.publicKey), 'rsa.pem');
    const token = await sign(external.privateKey, 'ES256', externalClaims());
    for (const publicKeys of [
      [externalPem, rsaPem],
      [rsaPem, externalPem],
    ]) {
      const tokens = new Tokens(settings({ trust: [{ issuer: EXTERNAL, publicKeys }] }));
      assert.equal((await tokens.verify(token)).subject, 'bob', publicKeys.join(' '));
    }
  });

  test('a JWKS file: a token with a known kid, or none, verifies; an unknown kid is refused', async () => {
    const jwk = { ...(await exportJWK(external.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const rotated = await generateKeyPair('ES256', { extractable: true });
    const jwk2 = { ...(await exportJWK(rotated.publicKey)), kid: 'k2' };
    const jwks = file(JSON.stringify({ keys: [jwk, jwk2] }), 'jwks.json');
    const tokens = new Tokens(
      settings({ key: ecKeyFile, trust: [{ issuer: EXTERNAL, jwks, publicKeys: [] }] }),
    );

    const verified = await tokens.verify(await sign(external.privateKey, 'ES256', externalClaims(), 'k1'));
    assert.equal(verified.own, false);
    assert.deepEqual(verified.ids, ['user:bob']);
    assert.deepEqual([...verified.pull], ['vendor/tool']);
    assert.equal(
      (await tokens.verify(await sign(rotated.privateKey, 'ES256', externalClaims(), 'k2'))).own,
      false,
    );
    assert.equal((await tokens.verify(await sign(rotated.privateKey, 'ES256', externalClaims()))).own, false);
    await assert.rejects(
      tokens.verify(await sign(external.privateKey, 'ES256', externalClaims(), 'k3')),
      TokenError,
    );
    // The right kid but the other key's signature.
    await refused(tokens, await sign(rotated.privateKey, 'ES256', externalClaims(), 'k1'), /does not verify/);
  });

  test('jwks and publicKeys of one issuer are both used', async () => {
    const other = await generateKeyPair('ES256', { extractable: true });
    const jwks = file(JSON.stringify({ keys: [await exportJWK(other.publicKey)] }), 'jwks.json');
    const tokens = new Tokens(settings({ trust: [{ issuer: EXTERNAL, jwks, publicKeys: [externalPem] }] }));
    assert.equal(
      (await tokens.verify(await sign(external.privateKey, 'ES256', externalClaims()))).own,
      false,
    );
    assert.equal((await tokens.verify(await sign(other.privateKey, 'ES256', externalClaims()))).own, false);
  });
});

describe('Tokens: configuration errors', () => {
  test('a JWKS with a private key (d) is refused for auth.token.trust.0.jwks', async () => {
    const jwks = file(
      JSON.stringify({ keys: [{ ...(await exportJWK(external.privateKey)), kid: 'k1' }] }),
      'private.jwks',
    );
    assert.throws(
      () => new Tokens(settings({ trust: [{ issuer: EXTERNAL, jwks, publicKeys: [] }] })),
      configError('auth.token.trust.0.jwks', /key 0: expected a public key/),
    );
  });

  const badJwks: [string, string, RegExp][] = [
    ['not JSON', '{"keys": [', /is not JSON/],
    ['an empty key list', '{"keys": []}', /is not a JSON Web Key Set/],
    ['no key list', '{}', /is not a JSON Web Key Set/],
    ['null', 'null', /is not a JSON Web Key Set/],
    ['a key that is not a key', '{"keys": [{"kty": "EC", "crv": "P-256"}]}', /key 0: /],
    ['a key that is not an object', '{"keys": ["abc"]}', /key 0: expected a public key/],
  ];
  for (const [what, text, message] of badJwks) {
    test(`a JWKS file holding ${what} is refused for auth.token.trust.0.jwks`, () => {
      const jwks = file(text, 'bad.jwks');
      assert.throws(
        () => new Tokens(settings({ trust: [{ issuer: EXTERNAL, jwks, publicKeys: [] }] })),
        configError('auth.token.trust.0.jwks', message),
      );
    });
  }

  test('a missing JWKS file is refused for its key', () => {
    const jwks = path.join(temp.dir, 'missing.jwks');
    assert.throws(
      () =>
        new Tokens(
          settings({
            trust: [
              { issuer: 'https://first.example.com', publicKeys: [externalPem] },
              { issuer: EXTERNAL, jwks, publicKeys: [] },
            ],
          }),
        ),
      configError('auth.token.trust.1.jwks', /cannot read .*missing\.jwks/),
    );
  });

  test('a publicKeys file without a PEM key, or with a broken one, is refused naming its index', () => {
    const notPem = file('just some text\n', 'not.pem');
    const broken = file('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n', 'broken.pem');
    assert.throws(
      () => new Tokens(settings({ trust: [{ issuer: EXTERNAL, publicKeys: [externalPem, notPem] }] })),
      configError('auth.token.trust.0.publicKeys.1', /holds no PEM public key or certificate/),
    );
    assert.throws(
      () => new Tokens(settings({ trust: [{ issuer: EXTERNAL, publicKeys: [broken] }] })),
      configError('auth.token.trust.0.publicKeys.0', /not a public key or certificate/),
    );
    assert.throws(
      () =>
        new Tokens(
          settings({ trust: [{ issuer: EXTERNAL, publicKeys: [path.join(temp.dir, 'nope.pem')] }] }),
        ),
      configError('auth.token.trust.0.publicKeys.0', /cannot read/),
    );
  });

  test('a trusted issuer without keys is refused', () => {
    assert.throws(
      () => new Tokens(settings({ trust: [{ issuer: EXTERNAL, publicKeys: [] }] })),
      configError('auth.token.trust.0', /give publicKeys or jwks/),
    );
  });

  test('trusting derrick’s own issuer while it has a key is refused', () => {
    assert.throws(
      () =>
        new Tokens(settings({ key: ecKeyFile, trust: [{ issuer: 'derrick', publicKeys: [externalPem] }] })),
      configError('auth.token.trust.0.issuer', /derrick's own issuer/),
    );
  });

  test('a missing key file is refused for auth.token.key', () => {
    assert.throws(
      () => new Tokens(settings({ key: path.join(temp.dir, 'no-such.key') })),
      configError('auth.token.key', /cannot read .*no-such\.key/),
    );
  });

  test('a key file that is not a PEM private key is refused for auth.token.key', async () => {
    assert.throws(
      () => new Tokens(settings({ key: file('not a key\n', 'text.key') })),
      configError('auth.token.key', /is not a PEM private key/),
    );
    // A public key is not a private key.
    assert.throws(
      () => new Tokens(settings({ key: externalPem })),
      configError('auth.token.key', /is not a PEM private key/),
    );
    // A private key PEM that jose wrote is accepted, which shows the check is about the content.
    const pkcs8 = file(await exportPKCS8(external.privateKey), 'pkcs8.key');
    assert.equal(new Tokens(settings({ key: pkcs8 })).issues, true);
  });

  for (const kind of ['ec-p384', 'rsa-1024', 'ed25519'] as const) {
    test(`a ${kind} key is refused for auth.token.key, saying what is expected`, () => {
      const key = unsupportedTokenKey(path.join(temp.dir, `${kind}.key`), kind);
      assert.throws(
        () => new Tokens(settings({ key })),
        configError('auth.token.key', /expected EC P-256 \(ES256\) or RSA of 2048 bits or more \(RS256\)/),
      );
    });
  }
});
