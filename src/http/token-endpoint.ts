/**
 * The token endpoint of Docker token authentication, at /auth/token (enabled by auth.token.key): Basic
 * credentials or a client certificate in — or nothing, or empty Basic credentials, for an anonymous token — and a
 * short-lived signed JWT granting what the rules allow of the scopes asked for. GET as docker, podman and skopeo
 * use it; POST with an OAuth2 password grant as containerd tries first when it has a password. Other grants
 * (refresh tokens: derrick issues none) are refused with OAuth's 400 unsupported_grant_type.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Auth, Principal, RequestFacts } from '../auth/auth.ts';
import { parseScopes, scopeOf } from '../auth/scopes.ts';
import { RegistryError } from '../oci/errors.ts';

export const TOKEN_PATH = '/auth/token';

export interface TokenEndpointContext {
  auth: () => Auth;
  facts: (request: FastifyRequest) => RequestFacts;
}

/** OAuth 2's error answer (RFC 6749 §5.2): 400 with `error` and `error_description`, never cached. */
export async function oauthError(reply: FastifyReply, error: string, description: string): Promise<void> {
  await reply
    .code(400)
    .header('cache-control', 'no-store')
    .type('application/json; charset=utf-8')
    .send(JSON.stringify({ error, error_description: description }));
}

/** The principal asking for a token; a refusal challenges for Basic credentials (what this endpoint takes). */
async function login(auth: Auth, facts: RequestFacts): Promise<Principal> {
  try {
    return await auth.authenticate(facts, false);
  } catch (error) {
    if (error instanceof RegistryError && error.code === 'UNAUTHORIZED')
      throw new RegistryError('UNAUTHORIZED', error.message, null, {
        'www-authenticate': auth.basicChallenge,
      });
    throw error;
  }
}

export function tokenHandler(context: TokenEndpointContext) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const auth = context.auth();
    if (!auth.tokens?.issues)
      throw new RegistryError('NAME_UNKNOWN', 'this derrick issues no tokens (auth.token.key is not set)');
    const service = auth.tokens.settings.service;
    const facts = context.facts(request);
    let params: URLSearchParams;
    let principal: Principal;
    if (request.method === 'POST') {
      if (!(request.body instanceof URLSearchParams))
        return oauthError(reply, 'invalid_request', 'expected an application/x-www-form-urlencoded body');
      params = request.body;
      const grant = params.get('grant_type');
      if (grant !== 'password')
        return oauthError(
          reply,
          'unsupported_grant_type',
          'only the password grant is supported (or use GET)',
        );
      const user = params.get('username') ?? '';
      const password = params.get('password') ?? '';
      // An empty username and password make `Basic Og==`: no credentials, an anonymous token (as for GET).
      const encoded = Buffer.from(`${user}:${password}`).toString('base64');
      principal = await login(auth, { ...facts, authorization: `Basic ${encoded}` });
    } else {
      const url = request.raw.url ?? '';
      params = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
      if (/^\s*bearer\b/i.test(facts.authorization ?? ''))
        throw new RegistryError(
          'UNAUTHORIZED',
          'the token endpoint takes Basic credentials or a client certificate, not a bearer token',
          null,
          { 'www-authenticate': auth.basicChallenge },
        );
      principal = await login(auth, facts);
    }
    const asked = params.get('service');
    if (asked !== null && asked !== service) {
      if (request.method === 'POST')
        return oauthError(reply, 'invalid_request', `this service is "${service}"`);
      throw new RegistryError(
        'DENIED',
        `this derrick issues tokens for service "${service}", not "${asked}"`,
      );
    }
    const granted = auth.grant(principal, parseScopes(params.getAll('scope')));
    const { token, expiresIn, issuedAt } = await auth.issue(principal, granted);
    request.log.info(
      { subject: principal.ids[0] ?? 'anonymous', granted: granted.map(scopeOf), method: request.method },
      'token issued',
    );
    await reply
      .header('cache-control', 'no-store')
      .type('application/json; charset=utf-8')
      .send(
        JSON.stringify({
          token,
          access_token: token,
          expires_in: expiresIn,
          issued_at: issuedAt.toISOString(),
          ...(request.method === 'POST' ? { scope: granted.map(scopeOf).join(' ') } : {}),
        }),
      );
  };
}
