/**
 * Every configuration key that a DERRICK_* variable and a `derrick serve` flag can set: how a string becomes its
 * value, its default, what it means and what a valid value looks like. One table: the flags and their --help,
 * the key table of docs/configuration.md (`npm run docs:config`) and the configuration's error messages all come
 * from it (the access keys, TLS to access rules, stand in keys-access.ts). No zod, so the CLI can list the keys
 * cheaply; test/unit/config/keys.test.ts checks every default here against the zod schema's (src/config/schema.ts).
 */
import { SECONDS, whole, type KeyInfo } from './key-info.ts';
import { ACCESS_KEYS } from './keys-access.ts';

export type { KeyInfo, KeyType } from './key-info.ts';

export const KEYS = {
  dataDir: {
    type: 'string',
    default: './data',
    meaning: 'The published tree.',
    expected: 'a directory',
    value: 'dir',
  },
  listen: {
    type: 'string',
    default: '127.0.0.1:5000',
    meaning: '`host:port` (`[::1]:5000` for IPv6; port 0 picks a free one).',
    expected: 'host:port, e.g. 127.0.0.1:5000',
    value: 'host:port',
  },
  ...ACCESS_KEYS,
  mode: {
    type: 'string',
    default: 'serve',
    meaning: '`serve`: stream manifests and blobs from the tree; `redirect`: redirect to the base URL.',
    details:
      "`redirect` answers GETs of manifests and blobs with a redirect to the repository's base URL (a CDN or nginx serving `v2/web`).",
    expected: 'serve or redirect',
    value: 'serve|redirect',
  },
  'serve.sendfile': {
    type: 'string',
    default: 'off',
    meaning:
      'In serve mode, who sends blob bytes: `off` (derrick), `x-accel-redirect` (nginx, from an `internal` location) or `x-sendfile` (Apache mod_xsendfile).',
    details:
      'derrick still authorizes, validates and answers every header (digest, type, ETag, HEAD, 304, 416); only the bytes of a GET are left to the proxy, which must be the only way to derrick. A directory tree only (not `s3://`). See docs/operations.md#nginx-sendfile.',
    expected: 'off, x-accel-redirect or x-sendfile',
    value: 'off|x-accel-redirect|x-sendfile',
  },
  'serve.sendfilePrefix': {
    type: 'string',
    default: '/_derrick_content/',
    meaning:
      "With `serve.sendfile: x-accel-redirect`: the nginx `internal` location aliased to the tree's `v2/content/`.",
    details: '`X-Accel-Redirect: <prefix><algorithm>/<hex>`.',
    expected: 'a path that starts and ends with /, e.g. /_derrick_content/',
    value: 'path',
  },
  repositories: {
    type: 'json',
    default: [],
    meaning: 'Per-repository modes, first match wins: `[{ match: "cdn/**", mode: redirect }]`.',
    details: 'Globs over names (`*` within a path component, `**` across).',
    expected: 'a list of { match: <glob>, mode: serve | redirect }',
    value: 'json',
  },
  'redirect.status': {
    type: 'number',
    default: 302,
    meaning: 'The status of redirects: `302` or `307`.',
    expected: '302 or 307',
    value: '302|307',
  },
  'redirect.url': {
    type: 'string',
    meaning: 'Base URL for repositories published without `--base-url`; the repository name is appended.',
    details:
      '(`<url>/<name>/blobs/<digest>`.) In redirect mode, a repository with neither is served from the tree, and derrick says so at start.',
    expected: 'an http(s) URL',
    value: 'url',
  },
  'redirect.urlMatch': {
    type: 'string',
    meaning: "Crane's `url_match`: every occurrence of it in a redirect URL becomes `redirect.urlReplace`.",
    details: 'Set both or neither.',
    expected: 'some text',
    required: 'the two go together: set both or neither',
    value: 'text',
  },
  'redirect.urlReplace': {
    type: 'string',
    meaning: "Crane's `url_replace`: what every occurrence of `redirect.urlMatch` becomes.",
    details: 'Set both or neither.',
    expected: 'text',
    required: 'the two go together: set both or neither',
    value: 'text',
  },
  'redirect.token.secret': {
    type: 'string',
    meaning: 'Hex HMAC key: sign every redirect URL as Crane did.',
    details: '(Akamai token 2.0 style, see [deploy.md](deploy.md).)',
    expected: 'an even number of hex digits',
    required: 'signed redirect URLs need a key',
    value: 'hex',
  },
  'redirect.token.ttlSeconds': {
    type: 'number',
    default: 300,
    meaning: 'Lifetime of a signed URL.',
    expected: 'a whole number of seconds ≥ 1',
    value: 'seconds',
  },
  'redirect.token.param': {
    type: 'string',
    default: '_auth_',
    meaning: 'Query parameter that carries the token.',
    expected: 'a query parameter name (letters, digits, _ . ~ -)',
    value: 'name',
  },
  'redirect.token.algorithm': {
    type: 'string',
    default: 'sha256',
    meaning: 'The signature hash: `sha256`, `sha1` or `md5`.',
    expected: 'sha256, sha1 or md5',
    value: 'sha256|sha1|md5',
  },
  defaultPlatform: {
    type: 'string',
    default: 'linux/amd64',
    meaning:
      '`os/architecture[/variant]`: the image chosen from an index for a client that does not accept that index type.',
    expected: 'os/architecture[/variant], e.g. linux/amd64',
    value: 'os/arch',
  },
  'catalog.defaultPageSize': {
    type: 'number',
    default: 100,
    meaning: '`_catalog` page size without `n`.',
    expected: whole(1),
    value: 'count',
  },
  'catalog.maxPageSize': {
    type: 'number',
    default: 1000,
    meaning: 'Largest `n` honoured by `_catalog` (larger values are clamped).',
    expected: whole(1),
    value: 'count',
  },
  'tags.maxPageSize': {
    type: 'number',
    default: 10000,
    meaning: 'Largest tag page (and the page size without `n`); a `Link` header leads to the rest.',
    expected: whole(1),
    value: 'count',
  },
  'timeouts.requestSeconds': {
    type: 'number',
    default: 300,
    meaning: 'Longest a whole request may take.',
    expected: SECONDS,
    value: 'seconds',
  },
  'timeouts.headersSeconds': {
    type: 'number',
    default: 60,
    meaning: 'Longest a connection may take to send its request.',
    expected: SECONDS,
    value: 'seconds',
  },
  'timeouts.keepAliveSeconds': {
    type: 'number',
    default: 72,
    meaning: 'How long an idle keep-alive connection is kept.',
    expected: SECONDS,
    value: 'seconds',
  },
  workers: {
    type: 'number',
    default: 0,
    meaning:
      'Serving processes (Node cluster) sharing the listening socket; `0` = one per CPU, `1` = a single process.',
    details: 'Every worker answers from the tree itself, so it does not matter which one a request reaches.',
    expected: 'a whole number from 0 to 256',
    value: 'count',
  },
  'health.drainFile': {
    type: 'string',
    meaning:
      'While this file exists, `/readyz` answers 503 (the replica is taken out of its balancer) and requests are still served.',
    details:
      "Looked for at each `/readyz` (no restart, no reload): create it before maintenance, remove it after. Like distribution's `health.file`.",
    expected: 'the path of a file (it need not exist)',
    value: 'file',
  },
  'shutdown.drainSeconds': {
    type: 'number',
    default: 30,
    meaning:
      'On SIGTERM (and for each old worker of a rolling restart): how long requests in flight may take to finish before their connections are cut.',
    details:
      'Meanwhile `/readyz` answers 503, nothing new is accepted and kept-alive connections are answered with `Connection: close`. The primary kills a worker still there 5 s later.',
    expected: SECONDS,
    value: 'seconds',
  },
  accessLog: {
    type: 'boolean',
    default: true,
    meaning: 'One log line per request on stdout, in `accessLogFormat`.',
    details:
      'Health probes and scrapes (`/livez`, `/readyz`, `/metrics`) are logged at `debug` only. See docs/operations.md.',
    expected: 'true or false',
  },
  accessLogFormat: {
    type: 'string',
    default: 'json',
    meaning:
      "The access log's lines: `json` (pino, with the logger's other lines) or `combined` (nginx's and Apache's combined log format).",
    expected: 'json or combined',
    value: 'json|combined',
  },
  'metrics.enabled': {
    type: 'boolean',
    default: true,
    meaning: 'Prometheus metrics at `/metrics`, for the whole cluster, without credentials.',
    details:
      'On the main listener unless `metrics.listen` is set. Names no repository outside `metrics.repositories`.',
    expected: 'true or false',
  },
  'metrics.listen': {
    type: 'string',
    meaning:
      '`host:port` of a listener of its own for `/metrics` (e.g. `127.0.0.1:5001`); the main listener then answers it 404.',
    details: 'In a cluster the primary process serves it.',
    expected: 'host:port, e.g. 127.0.0.1:5001',
    value: 'host:port',
  },
  'metrics.repositories': {
    type: 'json',
    default: [],
    meaning:
      'Repository-name globs (`library/*`) whose pulls are counted by name in `derrick_pulls_total`; every other one counts as `other`.',
    expected: 'a list of repository-name globs, e.g. ["library/*"]',
    value: 'json',
  },
  's3.addressing': {
    type: 'string',
    default: 'auto',
    meaning:
      'How bucket URLs are formed for an `s3://` data directory: `path` (`<endpoint>/<bucket>/…`), `virtual` (`<bucket>.<endpoint>/…`) or `auto`.',
    details:
      '`auto` is `path` when an endpoint is set (`AWS_ENDPOINT_URL`: Ceph, MinIO, R2…) and `virtual` on AWS. Endpoint, region and credentials come from the standard AWS variables and files.',
    expected: 'auto, path or virtual',
    value: 'auto|path|virtual',
  },
  's3.presignUrl': {
    type: 'string',
    meaning:
      'In redirect mode on an `s3://` tree, the origin presigned blob URLs use (a CDN or public endpoint in front of the bucket).',
    details: 'Default: the endpoint derrick itself uses.',
    expected: 'an http(s) URL, e.g. https://cdn.example.com',
    value: 'url',
  },
  's3.presignTtlSeconds': {
    type: 'number',
    default: 300,
    meaning:
      'How long a presigned blob URL is valid (a download that starts in time may take longer). One URL is handed out for half that time, so a client gets one valid for between half and all of it.',
    expected: 'a whole number of seconds ≥ 1',
    value: 'seconds',
  },
  's3.maxAttempts': {
    type: 'number',
    default: 5,
    meaning:
      'Tries per S3 request, with backoff, before a throttled or failing store is reported (503 on the wire).',
    expected: whole(1),
    value: 'count',
  },
  logLevel: {
    type: 'string',
    default: 'info',
    meaning: 'How much derrick logs: `fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`.',
    expected: 'fatal, error, warn, info, debug, trace or silent',
    value: 'level',
  },
  'cache.records': {
    type: 'number',
    default: 10000,
    meaning: 'Parsed records kept in memory; `0` turns it off.',
    details: 'Each is validated by `stat` on every request, so the cache is never stale.',
    expected: whole(0),
    value: 'count',
  },
  'cache.manifestBytes': {
    type: 'number',
    default: 67108864,
    meaning: 'Bytes of manifest content kept for serve mode (64 MiB; content-addressed, so never stale).',
    expected: whole(0),
    value: 'bytes',
  },
  'cache.recordTtlSeconds': {
    type: 'number',
    default: 0,
    meaning:
      'Seconds a parsed record is used without asking the tree whether it changed; `0`: ask on every request.',
    details:
      'A publish may then take that long to be seen. On a file system the check is a `stat` (microseconds) and this is best left at 0; on S3 it is a conditional GET (a round trip), which a site may trade for latency.',
    expected: SECONDS,
    value: 'seconds',
  },
  'cache.listings': {
    type: 'number',
    default: 1000,
    meaning: 'Directory listings of `v2/app` kept for `_catalog`, each validated by `stat` when used.',
    details: "(A directory's listing changes only when a repository is added or removed.)",
    expected: whole(0),
    value: 'count',
  },
} as const satisfies Record<string, KeyInfo>;

export type ScalarKey = keyof typeof KEYS;

/** Every key, in the order of the doc and of --help. */
export const KEY_NAMES = Object.keys(KEYS) as ScalarKey[];

/** The key's entry, typed as the interface (the table itself is `as const`). */
export function keyInfo(key: ScalarKey): KeyInfo {
  return KEYS[key];
}

/** Each key's type: how a variable's or flag's string becomes its value. */
export const SCALAR_KEYS = Object.fromEntries(KEY_NAMES.map((key) => [key, KEYS[key].type])) as {
  [K in ScalarKey]: (typeof KEYS)[K]['type'];
};

/** DERRICK_* variables that are not configuration keys (and so are no typo). */
export const OTHER_VARIABLES: readonly string[] = ['DERRICK_DEBUG'];

/** The default as --help and the doc show it, or undefined when there is none. */
export function defaultText(key: ScalarKey): string | undefined {
  const info = keyInfo(key);
  if (info.defaultText !== undefined) return info.defaultText;
  if (info.default === undefined) return undefined;
  return typeof info.default === 'string' ? info.default : JSON.stringify(info.default);
}

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
