/**
 * The access keys of the configuration's table (keys.ts, which places them after `listen`): TLS and client
 * certificates, the proxies trusted to name the client, users, tokens, failed-login limits and the access rules.
 * docs/security.md explains them together.
 */
import { whole, type KeyInfo } from './key-info.ts';

const CERT_AND_KEY = 'HTTPS needs both a certificate and its key';

export const ACCESS_KEYS = {
  'tls.cert': {
    type: 'string',
    meaning: 'PEM certificate; with it and `tls.key`, derrick speaks HTTPS.',
    details: 'Re-read when the file changes (no restart).',
    expected: 'the path of a PEM certificate file',
    required: CERT_AND_KEY,
    value: 'file',
  },
  'tls.key': {
    type: 'string',
    meaning: 'PEM private key of `tls.cert`; with both, derrick speaks HTTPS.',
    details: 'Re-read when the file changes (no restart).',
    expected: 'the path of a PEM private key file',
    required: CERT_AND_KEY,
    value: 'file',
  },
  'tls.clientCa': {
    type: 'string',
    meaning: 'PEM CA bundle: mutual TLS.',
    details: 'A client certificate issued by it gives `cert:<CN or SAN>` identities.',
    expected: 'the path of a PEM CA bundle',
    value: 'file',
  },
  'tls.clientCrl': {
    type: 'string',
    meaning: 'PEM CRLs, one from each CA in `tls.clientCa`: revoked client certificates are refused.',
    details: "A file missing a CA's CRL, or with an expired one, is refused. Re-read when it changes.",
    expected: 'the path of a PEM file of CRLs',
    value: 'file',
  },
  'tls.requireClientCert': {
    type: 'boolean',
    default: false,
    meaning:
      'With `tls.clientCa`: refuse the TLS handshake of a client without a valid certificate (else it is anonymous).',
    expected: 'true or false',
  },
  trustedProxies: {
    type: 'json',
    default: [],
    meaning: 'Addresses or CIDR ranges (`10.0.0.0/8`, `fd00::/8`) of the proxies in front of derrick.',
    details:
      'From them `X-Forwarded-For` gives the client address (failed-login limit, access log) and `X-Forwarded-Proto`/`-Host` the default token realm. Applied by a reload.',
    expected: 'a list of IP addresses or CIDR ranges, e.g. ["10.0.0.0/8"]',
    value: 'json',
  },
  'auth.htpasswd': {
    type: 'string',
    meaning:
      'htpasswd file of bcrypt hashes (`htpasswd -B`): users for Basic credentials and the token endpoint.',
    details: 'Re-read when it changes.',
    expected: 'the path of an htpasswd file',
    value: 'file',
  },
  'auth.groups': {
    type: 'json',
    default: {},
    meaning: '`{ <group>: [user:<name>, cert:<identity>…] }`, for `group:<name>` in `access`.',
    expected: 'a mapping of group names to lists of user:<name> or cert:<identity>',
    value: 'json',
  },
  'auth.denied': {
    type: 'string',
    default: 'challenge',
    meaning:
      'What a client that may not pull a repository gets: `challenge` (401 + challenge, or 403 for a logged-in user) or `notFound` (404 like a missing repository).',
    expected: 'challenge or notFound',
    value: 'challenge|notFound',
  },
  'auth.realm': {
    type: 'string',
    default: 'derrick',
    meaning: 'The realm of Basic challenges.',
    expected: 'text without quotes or backslashes',
    value: 'text',
  },
  'auth.token.service': {
    type: 'string',
    meaning: 'Docker token auth: the `service` of challenges and the `aud` of tokens.',
    details: '(Required when `auth.token` is set.)',
    expected: 'a name without spaces or quotes',
    required: 'token authentication needs the service name its tokens are for',
    value: 'name',
  },
  'auth.token.realm': {
    type: 'string',
    defaultText: '<scheme>://<Host>/auth/token',
    meaning: 'Where clients get tokens.',
    details: 'Required without `auth.token.key`. Behind a proxy: list it in `trustedProxies`, or set this.',
    expected: 'an http(s) URL',
    value: 'url',
  },
  'auth.token.key': {
    type: 'string',
    meaning:
      'PEM private key (EC P-256 → ES256, RSA ≥ 2048 → RS256): derrick issues tokens at `/auth/token`.',
    expected: 'the path of a PEM private key file',
    value: 'file',
  },
  'auth.token.issuer': {
    type: 'string',
    default: 'derrick',
    meaning: "`iss` of derrick's tokens.",
    expected: 'a name',
    value: 'name',
  },
  'auth.token.ttlSeconds': {
    type: 'number',
    default: 300,
    meaning: "Lifetime of derrick's tokens (at most 86400).",
    expected: 'a whole number of seconds from 1 to 86400',
    value: 'seconds',
  },
  'auth.token.trust': {
    type: 'json',
    default: [],
    meaning: 'External token services whose tokens are accepted: `[{ issuer, jwks?, publicKeys? }]`.',
    details: '(Files, read at start and on reload.)',
    expected: 'a list of { issuer, jwks?, publicKeys? }',
    value: 'json',
  },
  'auth.failedLogins.limit': {
    type: 'number',
    default: 10,
    meaning:
      'Failed logins per client address (shared by the workers of one server) before 429 `TOOMANYREQUESTS`.',
    expected: whole(1),
    value: 'count',
  },
  'auth.failedLogins.windowSeconds': {
    type: 'number',
    default: 60,
    meaning: 'The window those failures are counted in (and the 429 lasts until it ends).',
    expected: 'a number of seconds > 0',
    value: 'seconds',
  },
  access: {
    type: 'json',
    default: [],
    meaning:
      'Ordered rules `[{ match: <glob>, pull: [anonymous | authenticated | user:<n> | cert:<id> | group:<n>] }]`; the first match decides, no match = denied.',
    details: '`[]` = everybody may pull everything (records published `protected`: logged-in clients only).',
    expected: 'a list of { match: <glob>, pull: [<who>…] } rules',
    value: 'json',
  },
} as const satisfies Record<string, KeyInfo>;
