/**
 * buildApp(config, tree): the HTTP face of the registry — routes, negotiation, the one error handler. It never
 * listens by itself (src/cli does), so tests inject requests or listen on port 0.
 */
import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';
import { Auth, type RequestFacts } from '../auth/auth.ts';
import type { FailureRelay } from '../auth/failed-logins.ts';
import type { Config } from '../config/schema.ts';
import { ERROR_CODES, hasJsonBody, RegistryError } from '../oci/errors.ts';
import { StorageError } from '../store/storage-error.ts';
import { isS3Location } from '../store/open-backend.ts';
import { Tree } from '../store/tree.ts';
import { parseAccept } from './accept.ts';
import type { Answer } from './answers.ts';
import { TrustedProxies } from './forwarded.ts';
import { registerHealth } from './health.ts';
import { homePage, notFoundPage } from './home.ts';
import { METRICS_CONTENT_TYPE, Metrics, timedBackend } from './metrics.ts';
import { stdoutLines } from './log-sink.ts';
import { noteUser, observeRequests } from './observe.ts';
import { parsePath } from './paths.ts';
import { Registry } from './registry.ts';
import { contentSender, etagMatches, type ContentSender } from './send-file.ts';
import { clientCertificate, serverOptions, TlsReloader, type SecureServer } from './tls.ts';
import { oauthError, TOKEN_PATH, tokenHandler } from './token-endpoint.ts';

const API_VERSION_HEADER = 'docker-distribution-api-version';
const API_VERSION = 'registry/2.0';
const READ_METHODS = ['GET', 'HEAD'] as const;
const WRITE_METHODS = ['PUT', 'POST', 'PATCH', 'DELETE'] as const;

export interface AppOptions {
  /** A pino logger to use instead of one made from the config (tests pass a silent one). */
  logger?: Logger;
  /** Shares failed logins with the cluster's other processes (a worker of derrick serve). */
  failedLogins?: FailureRelay;
  /** The text of GET /metrics (a cluster worker asks its primary for the whole cluster's); default: this app's. */
  metricsText?: () => Promise<string>;
}

/** What can change while serving (a reload): the access policy, the trusted proxies, and the TLS files. */
interface Live {
  config: Config;
  auth: Auth;
  proxies: TrustedProxies;
  tls: TlsReloader | undefined;
  relay: FailureRelay | undefined;
  metrics: Metrics | undefined;
}

const lives = new WeakMap<FastifyInstance, Live>();

/** The top-level keys a reload applies; the others need a restart. */
const RELOADABLE = new Set(['auth', 'access', 'trustedProxies', 'tls']);

/**
 * Applies a new configuration's access policy and TLS files to a running app. Every file is read and checked
 * first: on any error (AuthConfigError) nothing changes. Returns the keys that differ but need a restart.
 */
export function reloadApp(app: FastifyInstance, config: Config): string[] {
  const live = lives.get(app);
  if (!live) throw new Error('not an app made by buildApp');
  const auth = new Auth(config, app.log, {
    previous: live.auth,
    publishFailure: live.relay?.publish,
    onFailedLogin: live.metrics?.failedLogin.bind(live.metrics),
  });
  const restart = Object.keys(config).filter(
    (key) =>
      !RELOADABLE.has(key) &&
      JSON.stringify(config[key as keyof Config]) !== JSON.stringify(live.config[key as keyof Config]),
  );
  const tlsShape = (c: Config) => [
    c.tls === undefined,
    c.tls?.clientCa === undefined,
    c.tls?.requireClientCert,
  ];
  // Whether TLS is on and asks for client certificates is fixed when listening: only its files can change.
  const sameShape = JSON.stringify(tlsShape(config)) === JSON.stringify(tlsShape(live.config));
  if (!sameShape) restart.push('tls');
  else if (config.tls && live.tls) live.tls.reload(config.tls);
  live.auth = auth;
  live.proxies = new TrustedProxies(config.trustedProxies);
  live.config = {
    ...live.config,
    auth: config.auth,
    access: config.access,
    trustedProxies: config.trustedProxies,
    tls: sameShape ? config.tls : live.config.tls,
  };
  return restart;
}

/** The metrics an app made by buildApp counts into (undefined when metrics are off). */
export function appMetrics(app: FastifyInstance): Metrics | undefined {
  return lives.get(app)?.metrics;
}

const quiet = { info() {}, warn() {}, error() {} };

/** Reads and checks every file the configuration names (TLS, htpasswd, keys): AuthConfigError names the key. */
export function checkConfigFiles(config: Config): void {
  if (config.tls) serverOptions(config.tls);
  new Auth(config, quiet);
}

const HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

const SCHEME = /^https?$/;

function requestFacts(request: FastifyRequest, live: Live): RequestFacts {
  const { config, proxies } = live;
  const socket = request.raw.socket;
  const peer = socket.remoteAddress;
  const encrypted = 'encrypted' in socket && socket.encrypted === true;
  const scheme =
    proxies.forwarded(peer, request.headers['x-forwarded-proto'], SCHEME) ?? (encrypted ? 'https' : 'http');
  const host =
    proxies.forwarded(peer, request.headers['x-forwarded-host'], HOST) ??
    (request.headers.host !== undefined && HOST.test(request.headers.host)
      ? request.headers.host
      : config.listen);
  return {
    authorization: request.headers.authorization,
    certificate: config.tls?.clientCa === undefined ? undefined : clientCertificate(socket),
    client: proxies.client(peer, request.headers['x-forwarded-for']),
    tokenRealm: `${scheme}://${host}${TOKEN_PATH}`,
  };
}

function sendError(request: FastifyRequest, reply: FastifyReply, error: RegistryError): void {
  void reply.code(error.status).header(API_VERSION_HEADER, API_VERSION).headers(error.headers);
  if (request.method === 'HEAD') {
    void reply.send();
    return;
  }
  if (hasJsonBody(error.code)) {
    void reply.type('application/json; charset=utf-8').send(JSON.stringify(error.toBody()));
    return;
  }
  void reply.type('text/plain; charset=utf-8').send(error.toText());
}

async function write(
  request: FastifyRequest,
  reply: FastifyReply,
  answer: Answer,
  send?: ContentSender,
): Promise<void> {
  switch (answer.kind) {
    case 'content':
      if (!send) throw new Error('internal: content answered without a tree');
      return send(request, reply, answer);
    case 'redirect':
      await reply.code(answer.status).headers(answer.headers).header('location', answer.location).send();
      return;
    case 'bytes': {
      const etag = answer.headers.etag;
      if (etag !== undefined && etagMatches(request.headers['if-none-match'], etag)) {
        await reply.code(304).headers(answer.headers).send();
        return;
      }
      void reply.code(answer.status).headers(answer.headers);
      if (request.method === 'HEAD') {
        if (answer.headers['content-length'] === undefined)
          void reply.header('content-length', String(answer.body.length));
        await reply.send();
        return;
      }
      await reply.send(answer.body);
      return;
    }
  }
}

/** The schema compilers of a server whose routes have no schema. */
function noSchemas(): never {
  throw new Error('internal: derrick routes have no JSON schemas; no schema compiler is loaded');
}

export function buildApp(config: Config, tree: Tree, options: AppOptions = {}): FastifyInstance {
  /** The access log's view of a request: Fastify's, with the client behind trusted proxies as its address. */
  const describeRequest = (request: FastifyRequest) => {
    const socket = request.raw.socket;
    return {
      method: request.method,
      url: request.url,
      ...(request.headers.host === undefined ? {} : { host: request.headers.host }),
      remoteAddress: live.proxies.client(socket.remoteAddress, request.headers['x-forwarded-for']),
      ...(socket.remotePort === undefined ? {} : { remotePort: socket.remotePort }),
    };
  };
  const tls = config.tls ? serverOptions(config.tls) : null;
  const app = Fastify({
    ...(options.logger
      ? { loggerInstance: options.logger }
      : {
          logger: {
            level: config.logLevel,
            serializers: { req: describeRequest },
            // stdout is the combined access log's alone, for the tools that read it. Otherwise stdout, written
            // in batches (log-sink.ts).
            stream:
              config.accessLog && config.accessLogFormat === 'combined' ? process.stderr : stdoutLines(),
          },
        }),
    // One line per request, written by observe.ts, instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    // No route has a JSON schema (each handler checks its input against the spec's grammars), so Fastify's default
    // compilers (ajv with its formats, fast-json-stringify) would only be loaded and built: ~1.4 MB of heap at
    // start-up (a heap snapshot at the first answer). Should a route ever get a schema, this says so.
    schemaController: { compilersFactory: { buildValidator: noSchemas, buildSerializer: noSchemas } },
    requestTimeout: config.timeouts.requestSeconds * 1000,
    keepAliveTimeout: config.timeouts.keepAliveSeconds * 1000,
    connectionTimeout: config.timeouts.headersSeconds * 1000,
    return503OnClosing: true,
    ...(tls ? { https: tls.https } : {}),
    routerOptions: { maxParamLength: 2048, ignoreDuplicateSlashes: false },
    frameworkErrors: (error, request, reply) => {
      request.log.info({ err: error.message }, 'malformed request');
      sendError(request, reply, new RegistryError('NAME_INVALID', 'malformed request URL'));
    },
  }) as unknown as FastifyInstance;
  const metrics = config.metrics.enabled ? new Metrics(config) : undefined;
  const live: Live = {
    config,
    auth: new Auth(config, app.log, {
      publishFailure: options.failedLogins?.publish,
      onFailedLogin: metrics?.failedLogin.bind(metrics),
    }),
    proxies: new TrustedProxies(config.trustedProxies),
    tls: undefined,
    relay: options.failedLogins,
    metrics,
  };
  // First, so that it sees the requests the next hook refuses.
  observeRequests(app, {
    metrics,
    accessLog: config.accessLog ? config.accessLogFormat : undefined,
    client: (request) =>
      live.proxies.client(request.raw.socket.remoteAddress, request.headers['x-forwarded-for']),
  });
  if (metrics) {
    const kind = isS3Location(tree.location) ? 's3' : 'fs';
    tree = new Tree(timedBackend(tree.backend, kind, metrics));
  }
  options.failedLogins?.subscribe((key, at) => {
    live.auth.failedElsewhere(key, at);
  });
  if (config.tls)
    live.tls = new TlsReloader(app.server as unknown as SecureServer, config.tls, app.log, tls?.crlExpires);
  lives.set(app, live);
  registerHealth(app, config, tree);
  const sendBlob = contentSender(config.serve, tree.backend);
  const registry = new Registry(config, tree, app.log, metrics?.recordCacheEvent);
  const facts = (request: FastifyRequest): RequestFacts => requestFacts(request, live);

  app.addHook('onRequest', (request, reply, done) => {
    void reply.header(API_VERSION_HEADER, API_VERSION);
    // Refuse writes before any body is read or parsed: derrick is read-only, whatever the body holds.
    if (
      request.method !== 'GET' &&
      request.method !== 'HEAD' &&
      (request.url === '/v2' || request.url.startsWith('/v2/'))
    ) {
      void reply.header('allow', 'GET, HEAD');
      sendError(
        request,
        reply,
        new RegistryError(
          'UNSUPPORTED',
          `${request.method} is not supported: derrick is a read-only registry; publish with derrick publish`,
        ),
      );
      return;
    }
    done();
  });

  app.setErrorHandler((error, request, reply) => {
    if (error instanceof RegistryError) {
      sendError(request, reply, error);
      return;
    }
    const status = (error as { statusCode?: unknown }).statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500 && request.url.startsWith(TOKEN_PATH)) {
      // A token request whose body Fastify refused (type, size): OAuth's error shape, not a 500.
      void oauthError(reply, 'invalid_request', (error as Error).message);
      return;
    }
    if (error instanceof StorageError) {
      request.log.error({ err: error.message }, "the tree's storage is unavailable");
      const unavailable = ERROR_CODES.UNAVAILABLE.message;
      sendError(request, reply, new RegistryError('UNAVAILABLE', unavailable, null, { 'retry-after': '1' }));
      return;
    }
    request.log.error({ err: error }, 'unexpected error');
    sendError(request, reply, new RegistryError('UNKNOWN', ERROR_CODES.UNKNOWN.message));
  });

  // Outside /v2/ there is no registry API, so no OCI error body: a plain 404 (distribution answers the same way).
  app.setNotFoundHandler((request, reply) => write(request, reply, notFoundPage()));
  app.route({
    method: [...READ_METHODS],
    url: '/',
    handler: (request, reply) => write(request, reply, homePage()),
  });

  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const url = request.raw.url ?? '/';
    const queryAt = url.indexOf('?');
    const route = parsePath(queryAt === -1 ? url : url.slice(0, queryAt));
    // A repeated parameter counts by its first value, as distribution reads it.
    const raw = request.query as Record<string, string | string[] | undefined>;
    const query = Object.fromEntries(
      Object.entries(raw).map(([key, value]) => [key, Array.isArray(value) ? value[0] : value]),
    ) as Record<string, string | undefined>;
    const head = request.method === 'HEAD';
    const { auth } = live;
    const requestFacts = facts(request);
    const principal = await auth.authenticate(requestFacts);
    noteUser(request, principal.ids);
    const viewer = auth.viewer(principal, requestFacts);
    switch (route.kind) {
      case 'base':
        auth.requireLogin(principal, requestFacts);
        return write(request, reply, {
          kind: 'bytes',
          status: 200,
          headers: { 'content-type': 'application/json' },
          body: Buffer.from('{}'),
        });
      case 'catalog':
        return write(request, reply, await registry.catalog(viewer, { n: query.n, last: query.last }));
      case 'tags':
        return write(
          request,
          reply,
          await registry.tags(viewer, route.name, { n: query.n, last: query.last }),
        );
      case 'manifest':
        return write(
          request,
          reply,
          await registry.manifest(
            viewer,
            route.name,
            route.reference,
            parseAccept(request.headers.accept),
            head,
          ),
        );
      case 'blob':
        return write(request, reply, await registry.blob(viewer, route.name, route.digest, head), sendBlob);
      case 'referrers':
        return write(
          request,
          reply,
          await registry.referrers(viewer, route.name, route.digest, query.artifactType),
        );
    }
  };

  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: 64 * 1024 },
    (_request, body, done) => {
      done(null, new URLSearchParams(body as string));
    },
  );
  app.route({
    method: ['GET', 'POST'],
    url: TOKEN_PATH,
    handler: tokenHandler({
      auth: () => live.auth,
      facts,
    }),
  });

  if (metrics && config.metrics.listen === undefined) {
    const text = options.metricsText ?? (() => metrics.registry.metrics());
    app.get('/metrics', async (_request, reply) => reply.type(METRICS_CONTENT_TYPE).send(await text()));
  }

  for (const url of ['/v2', '/v2/', '/v2/*']) {
    app.route({ method: [...READ_METHODS], url, handler });
    // Reached only if the onRequest hook let a write through; it never does, but the route keeps 405 explicit.
    app.route({
      method: [...WRITE_METHODS],
      url,
      handler: () => Promise.reject(new RegistryError('UNSUPPORTED')),
    });
  }
  return app;
}
