/**
 * A serving process's graceful end: stop accepting, let what is in flight finish, and close kept-alive connections
 * without cutting a request.
 *
 * Node's own `server.close()` closes every idle kept-alive connection at once, which races a client that is just
 * sending its next request on one (it sees a reset). Instead the listener alone is closed (in a cluster worker, the
 * primary then hands new connections to the other workers only), every answer not yet sent says
 * `Connection: close` (health.ts), and a connection is closed by derrick only once it has been idle for
 * IDLE_LINGER_MS — a client under load sends its next request long before, gets its answer with
 * `Connection: close`, and reconnects elsewhere. After `drainSeconds`, whatever is left is cut.
 */
import cluster from 'node:cluster';
import net from 'node:net';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { drain as drainHealth } from '../http/health.ts';
import { leaveCluster } from './cluster.ts';

/** How long a connection must have been idle during a drain before derrick closes it. */
const IDLE_LINGER_MS = 1000;
const SWEEP_MS = 100;

interface Tracked {
  busy: number;
  idleSince: number;
}

export interface Drainer {
  /** Resolves once every connection is gone: `drained`, or `cut` when the drain timeout closed some. */
  drain(drainSeconds: number): Promise<'drained' | 'cut'>;
}

/** Tracks the app's connections from now on (call it before listening). */
export function trackConnections(app: FastifyInstance): Drainer {
  const server = app.server;
  const sockets = new Map<Socket, Tracked>();
  // Over TLS a request's socket is the TLS one, known once its handshake is done.
  const tls = 'setSecureContext' in server;
  server.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => {
    sockets.set(socket, { busy: 0, idleSince: Date.now() });
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('request', (request: { socket: Socket }, response: NodeJS.EventEmitter) => {
    const tracked = sockets.get(request.socket);
    if (!tracked) return;
    tracked.busy++;
    response.once('close', () => {
      tracked.busy--;
      tracked.idleSince = Date.now();
    });
  });
  let draining: Promise<'drained' | 'cut'> | undefined;
  const drain = (drainSeconds: number): Promise<'drained' | 'cut'> => {
    draining ??= new Promise((resolve) => {
      drainHealth(app);
      // net.Server's close, not http.Server's: stop accepting without closing idle connections at once.
      if (server.listening) net.Server.prototype.close.call(server);
      const start = Date.now();
      const deadline = start + drainSeconds * 1000;
      // An idle connection gets its linger from now: its client may be sending its next request right now.
      for (const tracked of sockets.values()) tracked.idleSince = Math.max(tracked.idleSince, start);
      const sweep = (): void => {
        const now = Date.now();
        for (const [socket, tracked] of sockets)
          if (tracked.busy === 0 && now - tracked.idleSince >= IDLE_LINGER_MS) socket.destroy();
        if (sockets.size === 0) return resolve('drained');
        if (now >= deadline) {
          for (const socket of sockets.keys()) socket.destroy();
          return resolve('cut');
        }
        setTimeout(sweep, SWEEP_MS);
      };
      sweep();
    });
    return draining;
  };
  return { drain };
}

/**
 * SIGTERM and SIGINT: drain (a line on stderr says so), close the app, exit 0 — in a worker, by leaving the
 * cluster. Call it before listening: a supervisor may signal as soon as it reads the ready line.
 */
export function stopOnSignals(app: FastifyInstance, drainSeconds: number): void {
  const drainer = trackConnections(app);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    const who = cluster.isWorker ? `worker ${process.pid}` : 'server';
    // A worker that could not listen (its primary says why) has nothing to drain, and nothing to say.
    if (app.server.listening)
      process.stderr.write(
        `derrick: ${who} draining: /readyz answers 503, requests in flight have up to ${drainSeconds} s\n`,
      );
    void drainer.drain(drainSeconds).then(async (how) => {
      if (how === 'cut')
        process.stderr.write(
          `derrick: connections still busy after shutdown.drainSeconds (${drainSeconds} s) were cut\n`,
        );
      await leaveCluster();
      await app.close().catch(() => {});
      process.exitCode = 0;
      if (cluster.isWorker && process.connected) process.disconnect();
      // Nothing derrick still holds (a TLS handshake under way, the store's idle sockets) delays the exit.
      setTimeout(() => process.exit(), 1000).unref();
    });
  };
  // Not once: a signal to the whole process group (systemd, Ctrl-C) reaches a worker twice, from the sender and
  // from its primary, and the second must not end the drain.
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
