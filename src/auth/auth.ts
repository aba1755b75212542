/**
 * Who a request comes from, and what it may pull: the one object the HTTP layer asks. Built from the `auth` and
 * `access` configuration at start and again on reload (a bad file then leaves the previous Auth in force).
 * Identities come from a verified client certificate (`cert:<CN or SAN>`), Basic credentials checked against
 * htpasswd (`user:<name>`), or a bearer token; empty Basic credentials (what a client without any sends after a
 * Basic challenge) are no credentials at all. Decisions that can be made from the name alone are made before
 * any record is read, so a denied client learns nothing from the tree.
 */
import type { Config } from '../config/schema.ts';
import { RegistryError } from '../oci/errors.ts';
import { isValidName } from '../oci/names.ts';
import { AuthConfigError } from './errors.ts';
import { FailedLogins, type PublishFailure } from './failed-logins.ts';
import { Htpasswd, type HtpasswdLog } from './htpasswd.ts';
import { AccessRules } from './rules.ts';
import type { Access } from './scopes.ts';
import { TokenError, Tokens, type VerifiedToken } from './tokens.ts';

export interface AuthLog extends HtpasswdLog {
  warn(object: object, message: string): void;
}

/** A client certificate as the TLS layer saw it. */
export interface ClientCertificate {
  authorized: boolean;
  /** Why it was not accepted (OpenSSL's words), when it was not. */
  error?: string | undefined;
  /** `cert:<CN>`, `cert:<SAN>` … */
  ids: readonly string[];
}

/** What the HTTP layer knows about a request. */
export interface RequestFacts {
  authorization?: string | undefined;
  certificate?: ClientCertificate | undefined;
  /** The client's address: the key for failed-login counting. */
  client: string;
  /** The token endpoint's URL as this client reaches derrick (used when auth.token.realm is not set). */
  tokenRealm: string;
}

export interface Principal {
  via: 'anonymous' | 'certificate' | 'basic' | 'token';
  /** Identities proved (`user:…`, `cert:…`); empty for anonymous. */
  ids: readonly string[];
  token?: VerifiedToken;
}

export const ANONYMOUS: Principal = Object.freeze({ via: 'anonymous', ids: Object.freeze([]) });

/** What the registry may ask about one request's principal. */
export interface Viewer {
  /** May it pull `name`? (`protectedRecord` false when the record is not read yet: the rules alone.) */
  mayPull(name: string, protectedRecord: boolean): boolean;
  /** May `_catalog` name it to this client? */
  mayList(name: string, protectedRecord: boolean): boolean;
  /** May anybody pull it (so its bytes may sit in shared caches and behind unsigned URLs)? */
  isPublic(name: string, protectedRecord: boolean): boolean;
  /** The answer to a client that may not pull `name`: exactly the same whether or not it exists. */
  denied(name: string): RegistryError;
}

/**
 * Whether an Authorization header carries empty Basic credentials: `Basic Og==` (base64 of ":", an empty user and
 * password) or the scheme with nothing (or only whitespace) after it. That is what a client with no credentials
 * sends after a Basic challenge — containers/image (skopeo, podman, buildah, CRI-O) sets Basic auth from whatever
 * it holds, empty or not — so it is an anonymous client, not a login: never refused, never counted.
 */
export function isEmptyBasic(header: string): boolean {
  const match = /^basic(?:[ \t]+(\S*))?[ \t]*$/i.exec(header);
  if (!match) return false;
  const value = match[1] ?? '';
  return value === '' || value === 'Og==' || value === 'Og';
}

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '')}"`;
}

export class Auth {
  readonly htpasswd: Htpasswd | undefined;
  readonly tokens: Tokens | undefined;
  private readonly rules: AccessRules;
  private readonly failedLogins: FailedLogins;
  private readonly scheme: 'bearer' | 'basic' | undefined;
  private readonly onFailedLogin: (() => void) | undefined;

  /** Reads every file the settings name; an unusable one is an AuthConfigError naming its key. */
  constructor(
    private readonly config: Pick<Config, 'auth' | 'access'>,
    private readonly log: AuthLog,
    options: {
      /** The Auth this one replaces (a reload): its failed-login counts carry over when the limits are the same. */
      previous?: Auth | undefined;
      /** Tells the cluster's other processes of each failed login (so that the limit holds across them). */
      publishFailure?: PublishFailure | undefined;
      /** Called at each failed login (metrics). */
      onFailedLogin?: (() => void) | undefined;
    } = {},
  ) {
    const { previous, publishFailure } = options;
    this.onFailedLogin = options.onFailedLogin;
    const { auth } = config;
    this.htpasswd = auth.htpasswd === undefined ? undefined : new Htpasswd(auth.htpasswd, log);
    if (auth.token && auth.token.key === undefined && auth.token.trust.length === 0)
      throw new AuthConfigError(
        'auth.token',
        'give key (derrick issues tokens) or trust (derrick accepts another token service), or both',
      );
    if (auth.token && auth.token.key === undefined && auth.token.realm === undefined)
      throw new AuthConfigError(
        'auth.token.realm',
        'required when derrick does not issue tokens itself: the URL of the token service clients go to',
      );
    this.tokens = auth.token ? new Tokens(auth.token) : undefined;
    this.rules = new AccessRules(config.access, auth.groups);
    const { limit, windowSeconds } = auth.failedLogins;
    this.failedLogins =
      previous &&
      previous.config.auth.failedLogins.limit === limit &&
      previous.config.auth.failedLogins.windowSeconds === windowSeconds
        ? previous.failedLogins
        : new FailedLogins(limit, windowSeconds * 1000, Date.now, publishFailure);
    this.scheme = this.tokens ? 'bearer' : this.htpasswd ? 'basic' : undefined;
  }

  /** The challenge for Basic credentials (what the token endpoint takes, and /v2/ without auth.token). */
  get basicChallenge(): string {
    return `Basic realm=${quote(this.config.auth.realm)},charset="UTF-8"`;
  }

  /** Whether a client can authenticate with a header at all (else Authorization headers are ignored). */
  get challenges(): boolean {
    return this.scheme !== undefined;
  }

  /** The WWW-Authenticate value for this client, or undefined when there is nothing to log in to. */
  challenge(
    facts: RequestFacts,
    scope?: string,
    error?: 'invalid_token' | 'insufficient_scope',
  ): string | undefined {
    if (this.scheme === 'basic') return this.basicChallenge;
    const token = this.config.auth.token;
    if (this.scheme !== 'bearer' || !token) return undefined;
    const realm = token.realm ?? facts.tokenRealm;
    let value = `Bearer realm=${quote(realm)},service=${quote(token.service)}`;
    if (scope !== undefined) value += `,scope=${quote(scope)}`;
    if (error !== undefined) value += `,error=${quote(error)}`;
    return value;
  }

  private unauthorized(facts: RequestFacts, message: string, error?: 'invalid_token'): RegistryError {
    const challenge = this.challenge(facts, undefined, error);
    return new RegistryError(
      'UNAUTHORIZED',
      message,
      null,
      challenge ? { 'www-authenticate': challenge } : {},
    );
  }

  /** A failed login another process of the cluster saw: it counts here too. */
  failedElsewhere(key: string, at: number): void {
    this.failedLogins.failedElsewhere(key, at);
  }

  private failed(facts: RequestFacts, reason: string, user?: string): void {
    this.failedLogins.fail(facts.client);
    this.onFailedLogin?.();
    this.log.warn({ client: facts.client, user, reason }, 'failed login');
  }

  private checkRate(facts: RequestFacts): void {
    const retryAfter = this.failedLogins.retryAfter(facts.client);
    if (retryAfter > 0)
      throw new RegistryError(
        'TOOMANYREQUESTS',
        `too many failed logins from ${facts.client}; try again in ${retryAfter} s`,
        null,
        { 'retry-after': String(retryAfter) },
      );
  }

  /** Username and password from a Basic header value, checked against htpasswd. */
  async basic(facts: RequestFacts, encoded: string): Promise<string> {
    if (!this.htpasswd)
      throw this.unauthorized(
        facts,
        'Basic credentials are not accepted here; get a bearer token from the realm',
      );
    this.checkRate(facts);
    const decoded = /^[A-Za-z0-9+/]+={0,2}$/.test(encoded)
      ? Buffer.from(encoded, 'base64').toString('utf8')
      : '';
    const colon = decoded.indexOf(':');
    if (colon <= 0) {
      this.failed(facts, 'malformed Basic credentials');
      throw this.unauthorized(facts, 'malformed Basic credentials: expected base64 of user:password');
    }
    const user = decoded.slice(0, colon);
    if (!(await this.htpasswd.verify(user, decoded.slice(colon + 1)))) {
      this.failed(facts, 'wrong username or password', user);
      throw this.unauthorized(facts, 'incorrect username or password');
    }
    return user;
  }

  /** The principal behind a request; UNAUTHORIZED for credentials that do not hold, TOOMANYREQUESTS when limited. */
  async authenticate(facts: RequestFacts, allowBearer = true): Promise<Principal> {
    let certIds: readonly string[] = [];
    if (facts.certificate) {
      if (!facts.certificate.authorized) {
        this.checkRate(facts);
        this.failed(facts, `client certificate refused: ${facts.certificate.error ?? 'unknown reason'}`);
        throw this.unauthorized(
          facts,
          `the client certificate was not accepted (${facts.certificate.error ?? 'not issued by a trusted CA'})`,
        );
      }
      certIds = facts.certificate.ids;
    }
    const header = facts.authorization;
    if (header === undefined || !this.challenges || isEmptyBasic(header))
      return certIds.length > 0 ? { via: 'certificate', ids: certIds } : ANONYMOUS;
    const match = /^([A-Za-z]+) +(\S+) *$/.exec(header);
    if (!match) {
      this.checkRate(facts);
      this.failed(facts, 'malformed Authorization header');
      throw this.unauthorized(
        facts,
        'malformed Authorization header: expected "Basic <credentials>" or "Bearer <token>"',
      );
    }
    const scheme = (match[1] ?? '').toLowerCase();
    const value = match[2] ?? '';
    if (scheme === 'basic') {
      const user = await this.basic(facts, value);
      return { via: 'basic', ids: [`user:${user}`, ...certIds] };
    }
    if (scheme === 'bearer' && allowBearer) {
      if (!this.tokens)
        throw this.unauthorized(facts, 'bearer tokens are not accepted here; use Basic credentials');
      try {
        const token = await this.tokens.verify(value);
        return { via: 'token', ids: token.ids, token };
      } catch (error) {
        if (!(error instanceof TokenError)) throw error;
        this.log.info({ client: facts.client, reason: error.message }, 'bearer token refused');
        throw this.unauthorized(facts, error.message, 'invalid_token');
      }
    }
    throw this.unauthorized(facts, `the ${match[1] ?? ''} authorization scheme is not supported here`);
  }

  /** /v2/: clients find out here whether to log in, and `docker login` checks credentials here. */
  requireLogin(principal: Principal, facts: RequestFacts): void {
    if (principal.via !== 'anonymous' || !this.challenges) return;
    throw this.unauthorized(
      facts,
      'authentication required (anonymous clients may still pull public repositories)',
    );
  }

  viewer(principal: Principal, facts: RequestFacts): Viewer {
    const { rules } = this;
    const token = principal.token;
    const mayPull = (name: string, protectedRecord: boolean): boolean => {
      if (!token) return rules.allows(principal.ids, name, protectedRecord);
      if (rules.allows([], name, protectedRecord)) return true;
      if (!token.pull.has(name)) return false;
      return !token.own || rules.allows(principal.ids, name, protectedRecord);
    };
    return {
      mayPull,
      mayList: (name, protectedRecord) =>
        mayPull(name, protectedRecord) ||
        (token !== undefined &&
          token.own &&
          token.catalog &&
          rules.allows(principal.ids, name, protectedRecord)),
      isPublic: (name, protectedRecord) => rules.allows([], name, protectedRecord),
      denied: (name) => {
        if (this.config.auth.denied === 'notFound' || !this.challenges) return notFound(name);
        const scope = `repository:${name}:pull`;
        if (principal.via === 'basic' || principal.via === 'certificate')
          return new RegistryError('DENIED', `access to repository "${name}" is denied`, { name });
        const challenge = this.challenge(facts, scope, token ? 'insufficient_scope' : undefined) ?? '';
        return new RegistryError(
          'UNAUTHORIZED',
          token ? `the bearer token does not grant ${scope}` : 'authentication required',
          [{ Type: 'repository', Name: name, Action: 'pull' }],
          { 'www-authenticate': challenge },
        );
      },
    };
  }

  /**
   * The token endpoint's decision: of the accesses asked for, those this principal gets — pull on repositories
   * the rules let it pull, and the catalog (which is filtered per client anyway). Nothing else is ever granted:
   * derrick is read-only. Decided on names alone, without reading the tree, so a token says nothing about which
   * repositories exist or are protected; a protected record is refused to anonymous tokens when it is pulled
   * (derrick's own tokens are checked against the rules again on every request).
   */
  grant(principal: Principal, requested: readonly Access[]): Access[] {
    const granted: Access[] = [];
    for (const access of requested) {
      if (access.type === 'registry' && access.name === 'catalog') {
        granted.push({ type: 'registry', name: 'catalog', actions: ['*'] });
        continue;
      }
      if (access.type !== 'repository' || !isValidName(access.name)) continue;
      if (!access.actions.some((action) => action === 'pull' || action === '*')) continue;
      if (!this.rules.allows(principal.ids, access.name, false)) continue;
      granted.push({ type: 'repository', name: access.name, actions: ['pull'] });
    }
    return granted;
  }

  /** A token for `principal` granting `access` (the token endpoint must be enabled: auth.token.key). */
  issue(principal: Principal, access: readonly Access[]) {
    if (!this.tokens?.issues) throw new RegistryError('UNSUPPORTED', 'this derrick does not issue tokens');
    const subject = principal.ids[0]?.replace(/^(?:user|cert):/, '') ?? '';
    return this.tokens.issue(subject, principal.ids, access);
  }
}

/**
 * The operator's warning, when there is one, that docker cannot pull anonymously although the rules let anonymous
 * clients pull: with auth.htpasswd and no auth.token, /v2/ challenges Basic, and docker's client answers a Basic
 * challenge only with credentials ("no basic auth credentials"). skopeo, podman and containerd are not affected.
 */
export function anonymousDockerWarning(config: Pick<Config, 'auth' | 'access'>): string | undefined {
  const { auth, access } = config;
  if (auth.htpasswd === undefined || auth.token !== undefined) return undefined;
  // No rules at all: everything but protected records is anonymous.
  if (access.length > 0 && !access.some((rule) => rule.pull.includes('anonymous'))) return undefined;
  return (
    'anonymous clients may pull, but with auth.htpasswd and no auth.token docker cannot pull without logging in ' +
    '("no basic auth credentials"); set auth.token.service and auth.token.key to let it (docs/security.md)'
  );
}

export function notFound(name: string): RegistryError {
  return new RegistryError('NAME_UNKNOWN', `repository "${name}" is not known to this registry`, { name });
}
