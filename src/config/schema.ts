/**
 * The serve configuration: one zod schema, with every default and its unit. Validated once at start, then frozen.
 */
import { z } from 'zod';
import { parseAddressRange } from './address-range.ts';

const hostPort = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

const mode = z.enum(['redirect', 'serve']);

/** An identity in access rules and groups: `user:<name>`, `cert:<CN or SAN>`, `group:<name>`. */
const member = z.string().regex(/^(?:user|cert):\S.*$/, { error: 'expected user:<name> or cert:<identity>' });
const who = z.string().regex(/^(?:anonymous|authenticated|(?:user|cert|group):\S.*)$/, {
  error: 'expected anonymous, authenticated, user:<name>, group:<name> or cert:<identity>',
});

/** `10.0.0.5`, `10.0.0.0/8`, `fd00::/8`. */
const addressRange = z.string().superRefine((text, context) => {
  const range = parseAddressRange(text);
  if (typeof range === 'string') context.addIssue({ code: 'custom', message: range });
});

const trustedIssuer = z.strictObject({
  /** The `iss` claim of the tokens it issues. */
  issuer: z.string().min(1),
  /** A JSON Web Key Set file with its public keys. */
  jwks: z.string().min(1).optional(),
  /** PEM files with its public keys or certificates. */
  publicKeys: z.array(z.string().min(1)).default([]),
});

const failedLoginsDefaults = { limit: 10, windowSeconds: 60 };
const authDefaults = {
  groups: {},
  denied: 'challenge' as const,
  realm: 'derrick',
  failedLogins: failedLoginsDefaults,
};

const authSchema = z.strictObject({
  /** An htpasswd file of bcrypt hashes: Basic credentials, and the token endpoint's logins. */
  htpasswd: z.string().min(1).optional(),
  /** Named sets of users and certificate identities, for `group:<name>` in access rules. */
  groups: z.record(z.string().regex(/^[A-Za-z0-9._-]+$/), z.array(member)).default({}),
  /** What a client without access to a repository gets: 401 with a challenge, or 404 like a missing one. */
  denied: z.enum(['challenge', 'notFound']).default('challenge'),
  /** The realm named in Basic challenges. */
  realm: z
    .string()
    .regex(/^[^"\\\r\n]+$/, { error: 'expected text without quotes or backslashes' })
    .default('derrick'),
  /** Docker token authentication: bearer tokens derrick issues (key) and/or accepts from others (trust). */
  token: z
    .strictObject({
      /** The `service` of challenges and the `aud` of tokens. */
      service: z.string().regex(/^[^"\\\s]+$/, { error: 'expected a name without spaces or quotes' }),
      /** Where clients get tokens; default: this server's /auth/token (required without `key`). */
      realm: z.url({ protocol: /^https?$/ }).optional(),
      /** PEM private key (EC P-256 → ES256, RSA → RS256): derrick issues tokens at /auth/token. */
      key: z.string().min(1).optional(),
      /** The `iss` of the tokens derrick issues. */
      issuer: z.string().min(1).default('derrick'),
      ttlSeconds: z.number().int().positive().max(86400).default(300), // 5 minutes
      /** Token services whose tokens derrick accepts (their `access` claim decides). */
      trust: z.array(trustedIssuer).default([]),
    })
    .optional(),
  /** Failed logins per client address before it gets 429 TOOMANYREQUESTS for the rest of the window. */
  failedLogins: z
    .strictObject({
      limit: z.number().int().positive().default(10),
      windowSeconds: z.number().positive().default(60),
    })
    .default(failedLoginsDefaults),
});

export const configSchema = z.strictObject({
  /** The published tree. Created when missing. */
  dataDir: z.string().min(1).default('./data'),
  /** host:port to listen on ([::1]:5000 for IPv6). */
  listen: z
    .string()
    .regex(hostPort, { error: 'expected host:port, e.g. 127.0.0.1:5000' })
    .default('127.0.0.1:5000'),
  /** TLS certificate and key (PEM files, re-read when they change); without them, plain HTTP. */
  tls: z
    .strictObject({
      cert: z.string().min(1),
      key: z.string().min(1),
      /** CA bundle (PEM) that client certificates are verified against; enables mutual TLS. */
      clientCa: z.string().min(1).optional(),
      /** PEM CRLs, one from each CA in clientCa: revoked client certificates are refused. Re-read on change. */
      clientCrl: z.string().min(1).optional(),
      /** Refuse the TLS handshake of a client without a valid certificate (else it is just anonymous). */
      requireClientCert: z.boolean().default(false),
    })
    .optional(),
  /**
   * Proxies and load balancers in front of derrick (addresses or CIDR ranges): from these peers X-Forwarded-For,
   * -Proto and -Host are believed, for the client address (failed-login limit, access log) and the token realm.
   */
  trustedProxies: z.array(addressRange).default([]),
  auth: authSchema.default(authDefaults),
  /** Who may pull what, first matching rule wins; no matching rule = denied. Empty = `** → anonymous`. */
  access: z.array(z.strictObject({ match: z.string().min(1), pull: z.array(who).min(1) })).default([]),
  /** redirect: send clients to the repository's base URL; serve: stream the bytes from the tree. */
  mode: mode.default('serve'),
  /** Serve mode: whether a proxy in front (nginx, Apache) sends blob bytes from the tree (sendfile). */
  serve: z
    .strictObject({
      sendfile: z.enum(['off', 'x-accel-redirect', 'x-sendfile']).default('off'),
      /** The nginx internal location aliased to v2/content/: no dot segment, nothing nginx would decode. */
      sendfilePrefix: z
        .string()
        .regex(/^\/(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*\/)+$/, {
          error: 'expected a path that starts and ends with /, e.g. /_derrick_content/',
        })
        .default('/_derrick_content/'),
    })
    .default({ sendfile: 'off', sendfilePrefix: '/_derrick_content/' }),
  /** Per-repository modes, first match wins: `{ match: "cdn/**", mode: redirect }` (globs over names). */
  repositories: z.array(z.strictObject({ match: z.string().min(1), mode })).default([]),
  redirect: z
    .strictObject({
      /** 302 Found or 307 Temporary Redirect. */
      status: z.union([z.literal(302), z.literal(307)]).default(302),
      /** Base for repositories published without a base URL of their own; the name is appended. */
      url: z.url({ protocol: /^https?$/ }).optional(),
      /** Crane's url_match / url_replace: a substring rewrite of every redirect URL. */
      urlMatch: z.string().min(1).optional(),
      urlReplace: z.string().optional(),
      /** Crane's signed URLs (Akamai token 2.0 style). */
      token: z
        .strictObject({
          /** Hex-encoded HMAC key. */
          secret: z
            .string()
            .regex(/^(?:[0-9a-fA-F]{2})+$/, { error: 'expected an even number of hex digits' }),
          ttlSeconds: z.number().int().positive().default(300), // 5 minutes
          param: z
            .string()
            .regex(/^[A-Za-z0-9_.~-]+$/)
            .default('_auth_'),
          algorithm: z.enum(['sha256', 'sha1', 'md5']).default('sha256'),
        })
        .optional(),
    })
    .default({ status: 302 }),
  /** The image chosen from an index for a client that does not accept indexes: os/arch[/variant]. */
  defaultPlatform: z
    .string()
    .regex(/^[a-z0-9]+\/[a-z0-9_]+(?:\/[a-z0-9]+)?$/, {
      error: 'expected os/architecture[/variant], e.g. linux/amd64',
    })
    .default('linux/amd64'),
  catalog: z
    .strictObject({
      defaultPageSize: z.number().int().positive().default(100),
      maxPageSize: z.number().int().positive().default(1000),
    })
    .default({ defaultPageSize: 100, maxPageSize: 1000 }),
  tags: z
    .strictObject({
      /** A tag list without `n` returns up to this many (then a Link to the rest). */
      maxPageSize: z.number().int().positive().default(10000),
    })
    .default({ maxPageSize: 10000 }),
  timeouts: z
    .strictObject({
      requestSeconds: z.number().nonnegative().default(300), // a whole request, body included
      headersSeconds: z.number().nonnegative().default(60),
      keepAliveSeconds: z.number().nonnegative().default(72),
    })
    .default({ requestSeconds: 300, headersSeconds: 60, keepAliveSeconds: 72 }),
  /** Processes serving (Node cluster), all answering from the same tree; 0 = one per CPU. */
  workers: z.number().int().min(0).max(256).default(0),
  health: z
    .strictObject({
      /** While this file exists, /readyz answers 503 (requests are still served). */
      drainFile: z.string().min(1).optional(),
    })
    .default({}),
  shutdown: z
    .strictObject({
      /** How long requests in flight may take to finish after SIGTERM before their connections are cut. */
      drainSeconds: z.number().nonnegative().default(30),
    })
    .default({ drainSeconds: 30 }),
  accessLog: z.boolean().default(true),
  accessLogFormat: z.enum(['json', 'combined']).default('json'),
  metrics: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** A listener of its own for /metrics (the main one then answers it 404). */
      listen: z.string().regex(hostPort, { error: 'expected host:port, e.g. 127.0.0.1:5001' }).optional(),
      /** Globs of the repositories counted by name in derrick_pulls_total (the others: `other`). */
      repositories: z.array(z.string().min(1)).default([]),
    })
    .default({ enabled: true, repositories: [] }),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  cache: z
    .strictObject({
      /** Parsed records kept (each validated by stat on every request). */
      records: z.number().int().nonnegative().default(10000),
      /** Manifest bytes kept for serve mode (content-addressed, so never stale). */
      manifestBytes: z
        .number()
        .int()
        .nonnegative()
        .default(64 * 1024 * 1024), // 64 MiB
      /** Directory listings of v2/app kept for _catalog (each validated by stat on use). */
      listings: z.number().int().nonnegative().default(1000),
      /** Seconds a record is used without asking whether it changed (0: ask on every request). */
      recordTtlSeconds: z.number().nonnegative().default(0),
    })
    .default({ records: 10000, manifestBytes: 64 * 1024 * 1024, listings: 1000, recordTtlSeconds: 0 }),
  /** For an s3:// data directory (endpoint, region and credentials: the standard AWS variables and files). */
  s3: z
    .strictObject({
      addressing: z.enum(['auto', 'path', 'virtual']).default('auto'),
      presignUrl: z.url({ protocol: /^https?$/ }).optional(),
      presignTtlSeconds: z.number().int().positive().default(300),
      maxAttempts: z.number().int().positive().default(5),
    })
    .default({ addressing: 'auto', presignTtlSeconds: 300, maxAttempts: 5 }),
});

export type Config = Readonly<z.infer<typeof configSchema>>;

export { envName, flagName, SCALAR_KEYS, type ScalarKey } from './keys.ts';
