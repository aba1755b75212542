/**
 * Bearer tokens (the Docker token authentication spec): JWTs whose `access` claim lists what they grant. derrick
 * signs its own with a key from a file (EC P-256 → ES256, RSA → RS256) and verifies its own and those of
 * trusted token services (public keys from PEM files or a JWKS file). `alg: none`, HMAC algorithms, a wrong
 * issuer or audience, and expired or not-yet-valid tokens are all refused. Keys are read synchronously at start
 * (and on reload), so a bad key file stops start-up with its key named; `jose` itself loads on first use.
 */
import { createPrivateKey, createPublicKey, randomUUID, type KeyObject } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { pemBlocks, readConfigFile } from './config-files.ts';
import { AuthConfigError } from './errors.ts';
import type { Access } from './scopes.ts';

const ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA'];
const CLOCK_TOLERANCE_SECONDS = 30;
/** The private claim carrying the identities a derrick token was issued to (rules are checked again). */
const IDS_CLAIM = 'derrick_ids';

type Jose = typeof import('jose');
let jose: Promise<Jose> | undefined;
const loadJose = (): Promise<Jose> => (jose ??= import('jose'));

export interface TokenSettings {
  service: string;
  issuer: string;
  ttlSeconds: number;
  key?: string | undefined;
  trust: readonly { issuer: string; jwks?: string | undefined; publicKeys: readonly string[] }[];
}

interface PublicKey {
  key: KeyObject;
  kid?: string | undefined;
}

/** What a verified token says. */
export interface VerifiedToken {
  /** Issued by this derrick (so its identities are checked against the rules again). */
  own: boolean;
  subject: string;
  /** The identities a derrick token carries; for another service's token, `user:<sub>` when it has one. */
  ids: string[];
  /** Repository names it may pull. */
  pull: ReadonlySet<string>;
  /** Whether it grants `registry:catalog:*`. */
  catalog: boolean;
}

export class TokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenError';
  }
}

function signingKey(file: string): { key: KeyObject; alg: 'ES256' | 'RS256'; publicKey: KeyObject } {
  const where = 'auth.token.key';
  let key: KeyObject;
  try {
    key = createPrivateKey(readConfigFile(where, file));
  } catch (error) {
    if (error instanceof AuthConfigError) throw error;
    throw new AuthConfigError(where, `${file} is not a PEM private key: ${(error as Error).message}`);
  }
  const details = key.asymmetricKeyDetails;
  let alg: 'ES256' | 'RS256';
  if (key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1') alg = 'ES256';
  else if (key.asymmetricKeyType === 'rsa' && (details?.modulusLength ?? 0) >= 2048) alg = 'RS256';
  else
    throw new AuthConfigError(
      where,
      `${file} holds a ${key.asymmetricKeyType ?? 'symmetric'} key; expected EC P-256 (ES256) or RSA of 2048 bits or more (RS256), e.g. openssl ecparam -name prime256v1 -genkey -noout -out token.key`,
    );
  return { key, alg, publicKey: createPublicKey(key) };
}

function trustedKeys(trust: TokenSettings['trust'][number], index: number): PublicKey[] {
  const keys: PublicKey[] = [];
  trust.publicKeys.forEach((file, fileIndex) => {
    const where = `auth.token.trust.${index}.publicKeys.${fileIndex}`;
    const blocks = pemBlocks(readConfigFile(where, file).toString('utf8'));
    if (blocks.length === 0)
      throw new AuthConfigError(where, `${file} holds no PEM public key or certificate`);
    for (const block of blocks) {
      try {
        keys.push({ key: createPublicKey(block) });
      } catch (error) {
        throw new AuthConfigError(
          where,
          `${file}: not a public key or certificate: ${(error as Error).message}`,
        );
      }
    }
  });
  if (trust.jwks !== undefined) {
    const where = `auth.token.trust.${index}.jwks`;
    let set: unknown;
    try {
      set = JSON.parse(readConfigFile(where, trust.jwks).toString('utf8'));
    } catch (error) {
      if (error instanceof AuthConfigError) throw error;
      throw new AuthConfigError(where, `${trust.jwks} is not JSON: ${(error as Error).message}`);
    }
    const list = (set as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(list) || list.length === 0)
      throw new AuthConfigError(where, `${trust.jwks} is not a JSON Web Key Set ({"keys": [...]})`);
    list.forEach((jwk: unknown, keyIndex) => {
      try {
        if (typeof jwk !== 'object' || jwk === null || 'd' in jwk) throw new Error('expected a public key');
        const kid = (jwk as { kid?: unknown }).kid;
        keys.push({
          key: createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' }),
          kid: typeof kid === 'string' ? kid : undefined,
        });
      } catch (error) {
        throw new AuthConfigError(where, `${trust.jwks} key ${keyIndex}: ${(error as Error).message}`);
      }
    });
  }
  if (keys.length === 0)
    throw new AuthConfigError(
      `auth.token.trust.${index}`,
      'give publicKeys or jwks: the keys its tokens are signed with',
    );
  return keys;
}

/** Whether `key` can verify signatures of algorithm `alg` (so a key set may mix RSA and EC keys). */
function fitsAlgorithm(key: KeyObject, alg: unknown): boolean {
  if (typeof alg !== 'string') return false;
  const type = key.asymmetricKeyType;
  if (alg.startsWith('RS') || alg.startsWith('PS')) return type === 'rsa' || type === 'rsa-pss';
  if (alg === 'EdDSA') return type === 'ed25519' || type === 'ed448';
  const curve = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' }[alg];
  return curve !== undefined && type === 'ec' && key.asymmetricKeyDetails?.namedCurve === curve;
}

function claimAccess(payload: Record<string, unknown>): Access[] {
  const access = payload.access;
  if (access === undefined) return [];
  if (!Array.isArray(access)) throw new TokenError('the access claim is not a list');
  return access.flatMap((entry: unknown) => {
    if (typeof entry !== 'object' || entry === null) return [];
    const { type, name, actions } = entry as Record<string, unknown>;
    if (typeof type !== 'string' || typeof name !== 'string' || !Array.isArray(actions)) return [];
    return [
      { type, name, actions: actions.filter((action): action is string => typeof action === 'string') },
    ];
  });
}

export class Tokens {
  private readonly signing: ReturnType<typeof signingKey> | undefined;
  private readonly trusted: Map<string, PublicKey[]>;
  /** Tokens verified already, until they expire: a client sends the same one with every request. */
  private readonly verified = new LRUCache<string, { token: VerifiedToken; expiresAt: number }>({
    max: 10_000,
  });

  constructor(readonly settings: TokenSettings) {
    this.signing = settings.key === undefined ? undefined : signingKey(settings.key);
    this.trusted = new Map();
    settings.trust.forEach((trust, index) => {
      if (trust.issuer === settings.issuer && this.signing)
        throw new AuthConfigError(
          `auth.token.trust.${index}.issuer`,
          `"${trust.issuer}" is derrick's own issuer (auth.token.issuer); give the other service's`,
        );
      this.trusted.set(trust.issuer, [
        ...(this.trusted.get(trust.issuer) ?? []),
        ...trustedKeys(trust, index),
      ]);
    });
  }

  /** Whether derrick issues tokens itself (serves /auth/token). */
  get issues(): boolean {
    return this.signing !== undefined;
  }

  /** A signed token for `subject` granting `access`, valid for ttlSeconds. */
  async issue(
    subject: string,
    ids: readonly string[],
    access: readonly Access[],
  ): Promise<{ token: string; expiresIn: number; issuedAt: Date }> {
    if (!this.signing) throw new Error('derrick does not issue tokens (no auth.token.key)');
    const { SignJWT } = await loadJose();
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ access, [IDS_CLAIM]: ids })
      .setProtectedHeader({ alg: this.signing.alg, typ: 'JWT' })
      .setIssuer(this.settings.issuer)
      .setSubject(subject)
      .setAudience(this.settings.service)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + this.settings.ttlSeconds)
      .setJti(randomUUID())
      .sign(this.signing.key);
    return { token, expiresIn: this.settings.ttlSeconds, issuedAt: new Date(now * 1000) };
  }

  /** Verifies a bearer token; TokenError says why it is refused (in words fit for the client). */
  async verify(token: string): Promise<VerifiedToken> {
    const hit = this.verified.get(token);
    if (hit && Date.now() / 1000 < hit.expiresAt) return hit.token;
    const verified = await this.verifyUncached(token);
    this.verified.set(token, verified);
    return verified.token;
  }

  private async verifyUncached(token: string): Promise<{ token: VerifiedToken; expiresAt: number }> {
    const { decodeJwt, decodeProtectedHeader, jwtVerify, errors } = await loadJose();
    let issuer: unknown;
    let kid: unknown;
    let alg: unknown;
    try {
      ({ kid, alg } = decodeProtectedHeader(token));
      issuer = decodeJwt(token).iss;
    } catch {
      throw new TokenError('the bearer token is not a JWT');
    }
    const own = this.signing !== undefined && issuer === this.settings.issuer;
    const known = own ? undefined : typeof issuer === 'string' ? this.trusted.get(issuer) : undefined;
    if (!own && known === undefined)
      throw new TokenError(`tokens from issuer ${JSON.stringify(issuer)} are not accepted`);
    const candidates: PublicKey[] = own
      ? [{ key: this.signing.publicKey }]
      : (known ?? []).filter(
          (key) =>
            (key.kid === undefined || kid === undefined || key.kid === kid) && fitsAlgorithm(key.key, alg),
        );
    if (candidates.length === 0)
      throw new TokenError(
        `no key of issuer ${JSON.stringify(issuer)} fits this token (alg ${JSON.stringify(alg)}${kid === undefined ? '' : `, kid ${JSON.stringify(kid)}`})`,
      );
    let lastError: unknown;
    for (const candidate of candidates) {
      try {
        const { payload } = await jwtVerify(token, candidate.key, {
          issuer: issuer as string,
          audience: this.settings.service,
          algorithms: ALGORITHMS,
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          requiredClaims: ['exp'],
        });
        const access = claimAccess(payload);
        const subject = typeof payload.sub === 'string' ? payload.sub : '';
        const claimed = payload[IDS_CLAIM];
        const ids = own
          ? Array.isArray(claimed)
            ? claimed.filter((id): id is string => typeof id === 'string')
            : []
          : subject === ''
            ? []
            : [`user:${subject}`];
        const verified: VerifiedToken = {
          own,
          subject,
          ids,
          pull: new Set(
            access
              .filter(
                (entry) =>
                  entry.type === 'repository' && entry.actions.some((a) => a === 'pull' || a === '*'),
              )
              .map((entry) => entry.name),
          ),
          catalog: access.some((entry) => entry.type === 'registry' && entry.name === 'catalog'),
        };
        // exp is required: jwtVerify has checked it is there and a number.
        return { token: verified, expiresAt: (payload.exp ?? 0) + CLOCK_TOLERANCE_SECONDS };
      } catch (error) {
        lastError = error;
        // Another key of the same issuer may still verify it (rotation); any other failure is the token's.
        if (!(error instanceof errors.JWSSignatureVerificationFailed)) break;
      }
    }
    if (lastError instanceof errors.JWTExpired) throw new TokenError('the bearer token has expired');
    if (lastError instanceof errors.JWTClaimValidationFailed) {
      if (lastError.claim === 'nbf') throw new TokenError('the bearer token is not valid yet');
      if (lastError.claim === 'aud')
        throw new TokenError(`the bearer token is not for this service (${this.settings.service})`);
      throw new TokenError(`the bearer token's ${lastError.claim} claim is not acceptable`);
    }
    if (lastError instanceof errors.JOSEAlgNotAllowed)
      throw new TokenError('the bearer token uses a refused algorithm');
    if (lastError instanceof errors.JWSSignatureVerificationFailed)
      throw new TokenError('the bearer token signature does not verify');
    if (lastError instanceof TokenError) throw lastError;
    throw new TokenError('the bearer token is not valid');
  }
}
