/** The configuration's scalar keys and their variable and flag names: no zod, so the CLI can list them cheaply. */

/**
 * Every scalar key that an environment variable (DERRICK_<UPPER_SNAKE>) or a flag (--<kebab>) can set, with
 * how a string becomes its value. Structured keys (repositories) come from the YAML file, or DERRICK_REPOSITORIES
 * as JSON.
 */
export const SCALAR_KEYS = {
  dataDir: 'string',
  listen: 'string',
  'tls.cert': 'string',
  'tls.key': 'string',
  'tls.clientCa': 'string',
  'tls.clientCrl': 'string',
  'tls.requireClientCert': 'boolean',
  trustedProxies: 'json',
  'auth.htpasswd': 'string',
  'auth.groups': 'json',
  'auth.denied': 'string',
  'auth.realm': 'string',
  'auth.token.service': 'string',
  'auth.token.realm': 'string',
  'auth.token.key': 'string',
  'auth.token.issuer': 'string',
  'auth.token.ttlSeconds': 'number',
  'auth.token.trust': 'json',
  'auth.failedLogins.limit': 'number',
  'auth.failedLogins.windowSeconds': 'number',
  access: 'json',
  mode: 'string',
  'redirect.status': 'number',
  'redirect.url': 'string',
  'redirect.urlMatch': 'string',
  'redirect.urlReplace': 'string',
  'redirect.token.secret': 'string',
  'redirect.token.ttlSeconds': 'number',
  'redirect.token.param': 'string',
  'redirect.token.algorithm': 'string',
  defaultPlatform: 'string',
  'catalog.defaultPageSize': 'number',
  'catalog.maxPageSize': 'number',
  'tags.maxPageSize': 'number',
  'timeouts.requestSeconds': 'number',
  'timeouts.headersSeconds': 'number',
  'timeouts.keepAliveSeconds': 'number',
  workers: 'number',
  accessLog: 'boolean',
  logLevel: 'string',
  'cache.records': 'number',
  'cache.manifestBytes': 'number',
  'cache.listings': 'number',
  repositories: 'json',
} as const satisfies Record<string, 'string' | 'number' | 'boolean' | 'json'>;

export type ScalarKey = keyof typeof SCALAR_KEYS;

/** `redirect.urlMatch` → `DERRICK_REDIRECT_URL_MATCH` */
export function envName(key: string): string {
  return `DERRICK_${key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/\./g, '_')
    .toUpperCase()}`;
}

/** `redirect.urlMatch` → `redirect-url-match` (the flag, without its dashes) */
export function flagName(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .replace(/\./g, '-')
    .toLowerCase();
}
