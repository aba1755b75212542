/**
 * `/livez` and `/readyz`, the probes of a supervisor or balancer, and the drain that SIGTERM and a rolling restart
 * start. Neither probe is behind auth (they say nothing about repositories) nor logged at info level (a probe every
 * second would drown the access log).
 *
 * - `/livez`: the process answers. Always 200 while it does.
 * - `/readyz`: 200 when the tree answers (the back end's cheapest look at it: a `stat` of `v2/`, one listing of one
 *   key in a bucket, bounded by a short timeout and remembered for a second so that a storm of probes costs the
 *   store one call a second), the drain file (`health.drainFile`) is absent and the server is not draining; else
 *   503. The JSON body names every check and what failed, as Kubernetes' `/readyz?verbose` and distribution's
 *   health package do.
 *
 * Draining (drain()): `/readyz` fails, and every answer not yet started carries `Connection: close`, so that a
 * kept-alive client finishes its request and opens its next connection elsewhere, instead of being cut.
 */
import { access } from 'node:fs/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config/schema.ts';
import type { Tree } from '../store/tree.ts';

/** How long a readiness look at the tree may take before it counts as failed. */
const TREE_TIMEOUT_MS = 2000;
/** How long one look at the tree is reused. */
const TREE_CACHE_MS = 1000;

export const HEALTH_PATHS = ['/livez', '/readyz'] as const;

/** `ok`, or `failed: <why>`. */
type Check = string;

interface HealthState {
  draining: boolean;
}

const states = new WeakMap<FastifyInstance, HealthState>();

/** Starts the app's drain: `/readyz` fails from now on, and answers not yet sent close their connection. */
export function drain(app: FastifyInstance): void {
  const state = states.get(app);
  if (state) state.draining = true;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The tree check, one call at a time and reused for TREE_CACHE_MS. */
function treeCheck(tree: Tree): () => Promise<Check> {
  let last: { at: number; result: Promise<Check> } | undefined;
  return () => {
    const now = Date.now();
    if (last && now - last.at < TREE_CACHE_MS) return last.result;
    // Async, so that a back end that throws at once counts as a failed check too.
    const look = (async () => tree.backend.checkTree('existing'))();
    const result = withTimeout(look, TREE_TIMEOUT_MS, tree.location).then(
      (): Check => 'ok',
      (error: unknown) => `failed: ${error instanceof Error ? error.message : String(error)}`,
    );
    last = { at: now, result };
    return result;
  };
}

async function fileCheck(file: string | undefined): Promise<Check> {
  if (file === undefined) return 'ok';
  try {
    await access(file);
    return `failed: the drain file ${file} exists`;
  } catch {
    return 'ok';
  }
}

function answer(request: FastifyRequest, reply: FastifyReply, status: number, body: object): void {
  const text = `${JSON.stringify(body)}\n`;
  void reply.code(status).header('cache-control', 'no-store').type('application/json; charset=utf-8');
  if (request.method === 'HEAD') void reply.header('content-length', String(Buffer.byteLength(text)));
  void reply.send(request.method === 'HEAD' ? undefined : text);
}

/** Adds the probes and the drain's `Connection: close` to an app (before it listens). */
export function registerHealth(app: FastifyInstance, config: Config, tree: Tree): void {
  const state: HealthState = { draining: false };
  states.set(app, state);
  const treeOk = treeCheck(tree);
  app.addHook('onRequest', (_request, reply, done) => {
    if (state.draining) void reply.header('connection', 'close');
    done();
  });
  // Probes are logged at warn and above only: their requests and answers are not in the access log.
  app.route({
    method: ['GET', 'HEAD'],
    url: '/livez',
    logLevel: 'warn',
    handler: (request, reply) => answer(request, reply, 200, { status: 'ok' }),
  });
  app.route({
    method: ['GET', 'HEAD'],
    url: '/readyz',
    logLevel: 'warn',
    handler: async (request, reply) => {
      const [storage, drainFile] = await Promise.all([treeOk(), fileCheck(config.health.drainFile)]);
      const checks = { storage, drainFile, shutdown: state.draining ? 'failed: draining' : 'ok' };
      const ready = Object.values(checks).every((check) => check === 'ok');
      answer(request, reply, ready ? 200 : 503, { status: ready ? 'ok' : 'unavailable', checks });
    },
  });
}
