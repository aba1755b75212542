/**
 * A tiny forwarding HTTP proxy in front of the test S3 server, on 127.0.0.1: what a test puts between derrick and
 * RGW to see each S3 request (method, path, status), to answer some of them itself (503 SlowDown, the store's own
 * throttling answer), or to take the endpoint away and bring it back on the same port. It forwards the Host header
 * as the client sent it, so SigV4 signatures made for the proxy's address check at RGW.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxiedRequest {
  method: string;
  url: string;
  status: number;
}

export interface S3Proxy {
  readonly port: number;
  /** `http://127.0.0.1:<port>`: what AWS_ENDPOINT_URL takes. */
  readonly url: string;
  /** Every request answered so far, in order. */
  readonly requests: ProxiedRequest[];
  /** Answers the next `count` requests with 503 SlowDown instead of forwarding them. */
  throttle(count: number): void;
  /** Stops listening and drops every open connection (the endpoint is down); `start` brings it back. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

const SLOW_DOWN =
  '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';

/** A free port on 127.0.0.1 (listened on and let go: nothing answers there until a proxy starts on it). */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts a proxy to `target` (the S3 endpoint) on `port` (0: any). Stop it in an after hook. */
export async function startS3Proxy(target: string, port = 0): Promise<S3Proxy> {
  const to = new URL(target);
  const requests: ProxiedRequest[] = [];
  let throttled = 0;
  let server: http.Server | undefined;
  let listeningPort = port;

  const handle = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    const method = request.method ?? 'GET';
    const url = request.url ?? '/';
    if (throttled > 0) {
      throttled--;
      requests.push({ method, url, status: 503 });
      request.resume();
      response.writeHead(503, { 'content-type': 'application/xml', 'content-length': SLOW_DOWN.length });
      response.end(SLOW_DOWN);
      return;
    }
    const upstream = http.request(
      { host: to.hostname, port: to.port, method, path: url, headers: request.headers },
      (answer) => {
        requests.push({ method, url, status: answer.statusCode ?? 0 });
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      },
    );
    upstream.on('error', () => response.destroy());
    request.pipe(upstream);
  };

  const proxy: S3Proxy = {
    get port() {
      return listeningPort;
    },
    get url() {
      return `http://127.0.0.1:${listeningPort}`;
    },
    requests,
    throttle(count) {
      throttled = count;
    },
    async stop() {
      const closing = server;
      server = undefined;
      if (!closing) return;
      const closed = new Promise<void>((resolve) => closing.close(() => resolve()));
      closing.closeAllConnections();
      await closed;
    },
    async start() {
      assert.equal(server, undefined, 'the proxy is already listening');
      const made = http.createServer(handle);
      await new Promise<void>((resolve, reject) => {
        made.once('error', reject);
        made.listen(listeningPort, '127.0.0.1', () => resolve());
      });
      listeningPort = (made.address() as AddressInfo).port;
      server = made;
    },
  };
  await proxy.start();
  return proxy;
}
