/**
 * HTTPS requests for TLS tests: one request on a fresh connection (no agent, so every request makes a handshake and
 * sees the server's current certificate and CRLs), trusting a given CA and presenting a client certificate if asked.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { TLSSocket } from 'node:tls';
import type { KeyPair } from './pki.ts';
import { readAnswer, type Answered } from './server.ts';

export interface TlsAnswer extends Answered {
  /** SHA-256 fingerprint of the certificate the server presented. */
  fingerprint: string;
}

/** One HTTPS request on a fresh connection, trusting `ca` (a PEM file), presenting `client` when given. */
export function httpsGet(
  ca: string,
  port: number,
  urlPath: string,
  options: { client?: KeyPair; method?: string; headers?: Record<string, string> } = {},
): Promise<TlsAnswer> {
  return new Promise((resolve, reject) => {
    const request = https.request(
      {
        host: '127.0.0.1',
        port,
        path: urlPath,
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        ca: readFileSync(ca),
        ...(options.client
          ? { cert: readFileSync(options.client.cert), key: readFileSync(options.client.key) }
          : {}),
        agent: false,
      },
      (response) => {
        const socket = response.socket;
        assert.ok(socket instanceof TLSSocket);
        const fingerprint = socket.getPeerCertificate().fingerprint256;
        void readAnswer(response).then(
          ({ statusCode, headers, body }) => resolve({ statusCode, headers, body, fingerprint }),
          reject,
        );
      },
    );
    request.on('error', reject);
    request.end();
  });
}
