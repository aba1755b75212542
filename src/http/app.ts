/**
 * buildApp(config, tree): the HTTP face of the registry — routes, negotiation, the one error handler. It never
 * listens by itself (src/cli does), so tests inject requests or listen on port 0.
 */
import { readFileSync } from 'node:fs';
import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import { ERROR_CODES, RegistryError } from '../oci/errors.ts';
import type { Tree } from '../store/tree.ts';
import { parseAccept } from './accept.ts';
import type { Answer } from './answers.ts';
import { parsePath } from './paths.ts';
import { Registry } from './registry.ts';
import { etagMatches, sendFile } from './send-file.ts';

const API_VERSION_HEADER = 'docker-distribution-api-version';
const API_VERSION = 'registry/2.0';
const READ_METHODS = ['GET', 'HEAD'] as const;
const WRITE_METHODS = ['PUT', 'POST', 'PATCH', 'DELETE'] as const;

export interface AppOptions {
  /** A pino logger to use instead of one made from the config (tests pass a silent one). */
  logger?: Logger;
}

function sendError(request: FastifyRequest, reply: FastifyReply, error: RegistryError): void {
  void reply.code(error.status).header(API_VERSION_HEADER, API_VERSION);
  if (request.method === 'HEAD') {
    void reply.send();
    return;
  }
  void reply.type('application/json; charset=utf-8').send(JSON.stringify(error.toBody()));
}

async function write(request: FastifyRequest, reply: FastifyReply, answer: Answer): Promise<void> {
  switch (answer.kind) {
    case 'file':
      return sendFile(request, reply, answer);
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

export function buildApp(config: Config, tree: Tree, options: AppOptions = {}): FastifyInstance {
  const https = config.tls
    ? { cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) }
    : null;
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: { level: config.logLevel } }),
    logController: new LogController({ disableRequestLogging: !config.accessLog }),
    exposeHeadRoutes: false,
    requestTimeout: config.timeouts.requestSeconds * 1000,
    keepAliveTimeout: config.timeouts.keepAliveSeconds * 1000,
    connectionTimeout: config.timeouts.headersSeconds * 1000,
    return503OnClosing: true,
    ...(https ? { https } : {}),
    routerOptions: { maxParamLength: 2048, ignoreDuplicateSlashes: false },
    frameworkErrors: (error, request, reply) => {
      request.log.info({ err: error.message }, 'malformed request');
      sendError(request, reply, new RegistryError('NAME_INVALID', 'malformed request URL'));
    },
  }) as unknown as FastifyInstance;
  const registry = new Registry(config, tree, app.log);

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
    request.log.error({ err: error }, 'unexpected error');
    sendError(request, reply, new RegistryError('UNKNOWN', ERROR_CODES.UNKNOWN.message));
  });

  app.setNotFoundHandler((request, reply) => {
    sendError(request, reply, new RegistryError('NAME_UNKNOWN', 'not a registry endpoint'));
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
    switch (route.kind) {
      case 'base':
        return write(request, reply, {
          kind: 'bytes',
          status: 200,
          headers: { 'content-type': 'application/json' },
          body: Buffer.from('{}'),
        });
      case 'catalog':
        return write(request, reply, await registry.catalog({ n: query.n, last: query.last }));
      case 'tags':
        return write(request, reply, await registry.tags(route.name, { n: query.n, last: query.last }));
      case 'manifest':
        return write(
          request,
          reply,
          await registry.manifest(route.name, route.reference, parseAccept(request.headers.accept), head),
        );
      case 'blob':
        return write(request, reply, await registry.blob(route.name, route.digest, head));
      case 'referrers':
        return write(request, reply, await registry.referrers(route.name, route.digest, query.artifactType));
    }
  };

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
