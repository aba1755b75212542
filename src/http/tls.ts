/**
 * TLS for the listener: the certificate and key (and the client CA bundle, for mutual TLS) are read at start,
 * validated together, and read again whenever `stat` says one of the files changed — checked as connections
 * arrive (at most once a second), so a renewed certificate is served without a restart. A file that cannot be
 * used then is logged and the previous context stays in force.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContextOptions } from 'node:tls';
import { AuthConfigError } from '../auth/errors.ts';
import type { ClientCertificate } from '../auth/auth.ts';
import type { Config } from '../config/schema.ts';
import { statSignature } from '../store/stat-signature.ts';

type TlsConfig = NonNullable<Config['tls']>;

function read(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new AuthConfigError(key, `cannot read ${file}: ${(error as Error).message}`);
  }
}

function checkCertificates(key: string, file: string, pem: Buffer): void {
  const blocks =
    pem.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new AuthConfigError(key, `${file} holds no PEM certificate`);
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (error) {
      throw new AuthConfigError(
        key,
        `${file} holds a certificate that cannot be read: ${(error as Error).message}`,
      );
    }
  }
}

/**
 * The secure-context options of `tls`, each file checked on its own (so the error names the right key) and then
 * together (the key must match the certificate); AuthConfigError if any is unusable.
 */
export function secureContextOptions(tls: TlsConfig): SecureContextOptions {
  const options: SecureContextOptions = { cert: read('tls.cert', tls.cert), key: read('tls.key', tls.key) };
  checkCertificates('tls.cert', tls.cert, options.cert as Buffer);
  try {
    createPrivateKey(options.key as Buffer);
  } catch (error) {
    throw new AuthConfigError('tls.key', `${tls.key} is not a PEM private key: ${(error as Error).message}`);
  }
  if (tls.clientCa !== undefined) {
    options.ca = read('tls.clientCa', tls.clientCa);
    checkCertificates('tls.clientCa', tls.clientCa, options.ca);
  }
  try {
    createSecureContext(options);
  } catch (error) {
    throw new AuthConfigError(
      'tls.key',
      `${tls.key} cannot be used with the certificate in ${tls.cert}: ${(error as Error).message}`,
    );
  }
  return options;
}

/** Options for https.createServer / Fastify's `https`. */
export function serverOptions(
  tls: TlsConfig,
): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
  return {
    ...secureContextOptions(tls),
    requestCert: tls.clientCa !== undefined,
    rejectUnauthorized: tls.clientCa !== undefined && tls.requireClientCert,
  };
}

function signature(files: readonly string[]): string {
  return files
    .map((file) => {
      try {
        return statSignature(statSync(file));
      } catch {
        return 'missing';
      }
    })
    .join('|');
}

export interface TlsLog {
  info(object: object, message: string): void;
  error(object: object, message: string): void;
}

/** What the reloader needs of an HTTPS server. */
export interface SecureServer {
  prependListener(event: 'connection', listener: () => void): unknown;
  setSecureContext(options: SecureContextOptions): void;
}

/** Keeps an HTTPS server's certificate in step with its files; `reload(tls)` applies new settings at once. */
export class TlsReloader {
  private files: string[];
  private seen: string;
  private checkedAt = 0;

  constructor(
    private readonly server: SecureServer,
    private tls: TlsConfig,
    private readonly log: TlsLog,
  ) {
    this.files = TlsReloader.filesOf(tls);
    this.seen = signature(this.files);
    // Before the TLS layer's own listener, so a renewed certificate already serves this connection.
    server.prependListener('connection', () => {
      this.check();
    });
  }

  private static filesOf(tls: TlsConfig): string[] {
    return [tls.cert, tls.key, ...(tls.clientCa === undefined ? [] : [tls.clientCa])];
  }

  private check(): void {
    const now = Date.now();
    if (now - this.checkedAt < 1000) return;
    this.checkedAt = now;
    const current = signature(this.files);
    if (current === this.seen) return;
    this.seen = current;
    try {
      this.server.setSecureContext(secureContextOptions(this.tls));
      this.log.info({ cert: this.tls.cert }, 'TLS certificate reloaded');
    } catch (error) {
      this.log.error(
        { err: (error as Error).message },
        'TLS files not reloaded; the previous certificate stays',
      );
    }
  }

  /** New TLS settings (a reload): applied now, or AuthConfigError and nothing changes. */
  reload(tls: TlsConfig): void {
    this.server.setSecureContext(secureContextOptions(tls));
    this.tls = tls;
    this.files = TlsReloader.filesOf(tls);
    this.seen = signature(this.files);
  }
}

const certificates = new WeakMap<Socket, ClientCertificate | undefined>();

/** The client certificate of a mutual-TLS connection (undefined when none was presented), once per connection. */
export function clientCertificate(socket: Socket): ClientCertificate | undefined {
  if (!(socket instanceof TLSSocket)) return undefined;
  if (certificates.has(socket)) return certificates.get(socket);
  const peer = socket.getPeerCertificate(false);
  let result: ClientCertificate | undefined;
  if (Object.keys(peer).length > 0) {
    const ids = new Set<string>();
    const cn: unknown = peer.subject.CN;
    for (const name of Array.isArray(cn) ? cn : [cn])
      if (typeof name === 'string' && name !== '') ids.add(`cert:${name}`);
    for (const entry of (peer.subjectaltname ?? '').split(', ')) {
      const match = /^(?:DNS|email|URI):(.+)$/.exec(entry);
      if (match?.[1]) ids.add(`cert:${match[1]}`);
    }
    result = socket.authorized
      ? { authorized: true, ids: [...ids] }
      : { authorized: false, error: String(socket.authorizationError), ids: [] };
  }
  certificates.set(socket, result);
  return result;
}
