/**
 * What derrick records about each request once it has ended — completed, or cut short by the client (the
 * response's `close`, which Fastify's onResponse misses for an aborted download): the metrics (metrics.ts) and the
 * access log's one line (access-log.ts). One onRequest hook and one listener per request; the handler is told
 * apart from the path the way distribution's router does, without parsing it again.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AccessLog, type AccessLogFormat } from './access-log.ts';
import type { Handler, Metrics } from './metrics.ts';
import { TOKEN_PATH } from './token-endpoint.ts';

interface Seen {
  handler: Handler;
  repository: string | undefined;
  user: string | undefined;
}

/** Where a request keeps what observe knows of it (a property: a WeakMap's set measured dearer per request). */
const SEEN = Symbol('derrick.seen');
type Observed = FastifyRequest & { [SEEN]?: Seen };

/** The handler of a path (without its query) and the repository it names, as distribution's routes match. */
export function classify(path: string): { handler: Handler; repository?: string } {
  if (!path.startsWith('/v2')) {
    if (path === TOKEN_PATH) return { handler: 'token' };
    if (path === '/metrics') return { handler: 'metrics' };
    return { handler: 'other' };
  }
  if (path === '/v2/' || path === '/v2') return { handler: 'base' };
  if (path === '/v2/_catalog') return { handler: 'catalog' };
  const routes: [Handler, string][] = [
    ['manifest', '/manifests/'],
    ['blob', '/blobs/'],
    ['referrers', '/referrers/'],
  ];
  for (const [handler, marker] of routes) {
    const at = path.lastIndexOf(marker);
    if (at > 4 && path.indexOf('/', at + marker.length) === -1)
      return { handler, repository: path.slice(4, at) };
  }
  if (path.endsWith('/tags/list') && path.length > 14)
    return { handler: 'tags', repository: path.slice(4, -'/tags/list'.length) };
  return { handler: 'other' };
}

/** The first identity the request proved, for the access log (called by the handler once it knows). */
export function noteUser(request: FastifyRequest, ids: readonly string[]): void {
  const entry = (request as Observed)[SEEN];
  if (entry) entry.user = ids[0];
}

export interface ObserveOptions {
  metrics: Metrics | undefined;
  /** Undefined: no access log. */
  accessLog: AccessLogFormat | undefined;
  /** The client's address, as the trusted proxies give it. */
  client: (request: FastifyRequest) => string;
}

function bodyBytes(request: FastifyRequest, reply: FastifyReply, startWritten: number): number {
  const status = reply.raw.statusCode;
  if (request.method === 'HEAD' || status === 304 || status === 204) return 0;
  if (reply.raw.writableEnded) {
    // Fastify hands its headers to writeHead, so the raw response does not know them: ask the reply.
    const length = Number(reply.getHeader('content-length'));
    if (Number.isFinite(length)) return length;
  }
  // Cut short (or no length): what reached the socket for this response, its headers included.
  const written = request.raw.socket.bytesWritten - startWritten; // NaN for app.inject()'s socket
  return Number.isFinite(written) && written > 0 ? written : 0;
}

/** Installs the hook that records every request, when metrics or the access log are on. */
export function observeRequests(app: FastifyInstance, options: ObserveOptions): void {
  const { metrics } = options;
  const accessLog = options.accessLog === undefined ? undefined : new AccessLog(options.accessLog);
  if (!metrics && !accessLog) return;
  app.addHook('onRequest', (request, reply, done) => {
    const start = performance.now();
    const at = Date.now();
    const url = request.url;
    const queryAt = url.indexOf('?');
    const { handler, repository } = classify(queryAt === -1 ? url : url.slice(0, queryAt));
    const entry: Seen = { handler, repository, user: undefined };
    (request as Observed)[SEEN] = entry;
    const startWritten = request.raw.socket.bytesWritten;
    metrics?.started(handler);
    // 'close' comes once per response; `on` spares `once`'s wrapper and its removal, for every request.
    reply.raw.on('close', () => {
      const status = reply.raw.statusCode;
      const bytes = bodyBytes(request, reply, startWritten);
      const durationMs = performance.now() - start;
      const redirected = status >= 300 && status < 400 && reply.hasHeader('location');
      metrics?.finished({
        handler,
        method: request.method,
        status,
        bytes,
        seconds: durationMs / 1000,
        repository,
        redirected,
      });
      accessLog?.write(
        {
          method: request.method,
          path: url,
          httpVersion: request.raw.httpVersion,
          status,
          bytes,
          durationMs,
          client: options.client(request),
          user: entry.user,
          repository,
          redirected,
          completed: reply.raw.writableEnded,
          referer: request.headers.referer,
          userAgent: request.headers['user-agent'],
          at,
        },
        request.log,
      );
    });
    done();
  });
}
