/**
 * TLS for the listener: the certificate and key (and the client CA bundle, for mutual TLS) are read at start,
 * validated together, and read again whenever `stat` says one of the files changed — checked as connections
 * arrive (at most once a second), so a renewed certificate is served without a restart. A file that cannot be
 * used then is logged and the previous context stays in force.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContextOptions } from 'node:tls';
import { pemBlocks, readConfigFile } from '../auth/config-files.ts';
import { AuthConfigError } from '../auth/errors.ts';
import { checkCrls } from './crl.ts';
import type { ClientCertificate } from '../auth/auth.ts';
import type { Config } from '../config/schema.ts';
import { statSignature } from '../store/stat-signature.ts';

type TlsConfig = NonNullable<Config['tls']>;

/** The certificates of a PEM file, each parsed; AuthConfigError naming `key` if there are none or one is bad. */
function readCertificates(key: string, file: string, pem: Buffer): X509Certificate[] {
  const blocks = pemBlocks(pem.toString('utf8'), 'CERTIFICATE');
  if (blocks.length === 0) throw new AuthConfigError(key, `${file} holds no PEM certificate`);
  return blocks.map((block) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new AuthConfigError(
        key,
        `${file} holds a certificate that cannot be read: ${(error as Error).message}`,
      );
    }
  });
}

/**
 * The secure-context options of `tls`, each file checked on its own (so the error names the right key) and then
 * together (the key must match the certificate), and when the first client CRL expires (undefined without CRLs,
 * or when none has a nextUpdate); AuthConfigError if any file is unusable.
 */
function loadTls(tls: TlsConfig): { options: SecureContextOptions; crlExpires: Date | undefined } {
  let crl: Buffer | undefined;
  let crlExpires: Date | undefined;
  const options: SecureContextOptions = {
    cert: readConfigFile('tls.cert', tls.cert),
    key: readConfigFile('tls.key', tls.key),
  };
  readCertificates('tls.cert', tls.cert, options.cert as Buffer);
  try {
    createPrivateKey(options.key as Buffer);
  } catch (error) {
    throw new AuthConfigError('tls.key', `${tls.key} is not a PEM private key: ${(error as Error).message}`);
  }
  let clientCas: X509Certificate[] | undefined;
  if (tls.clientCa !== undefined) {
    options.ca = readConfigFile('tls.clientCa', tls.clientCa);
    clientCas = readCertificates('tls.clientCa', tls.clientCa, options.ca);
  }
  if (tls.clientCrl !== undefined) {
    if (clientCas === undefined)
      throw new AuthConfigError('tls.clientCrl', 'needs tls.clientCa: CRLs revoke client certificates');
    crl = readConfigFile('tls.clientCrl', tls.clientCrl);
    const check = checkCrls(crl.toString('utf8'), clientCas, new Date());
    if (!check.ok) throw new AuthConfigError('tls.clientCrl', `${tls.clientCrl} ${check.problem}`);
    crlExpires = check.expires;
  }
  try {
    createSecureContext(options);
  } catch (error) {
    throw new AuthConfigError(
      'tls.key',
      `${tls.key} cannot be used with the certificate in ${tls.cert}: ${(error as Error).message}`,
    );
  }
  if (crl !== undefined) {
    // Checked apart from the key and certificate, so that an error OpenSSL finds in a CRL names the right key.
    try {
      options.crl = crl;
      createSecureContext(options);
    } catch (error) {
      throw new AuthConfigError('tls.clientCrl', `${tls.clientCrl}: ${(error as Error).message}`);
    }
  }
  return { options, crlExpires };
}

/**
 * Options for https.createServer / Fastify's `https`, and when the first client CRL expires (for the reloader's
 * warning).
 */
export function serverOptions(tls: TlsConfig): {
  https: SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean };
  crlExpires: Date | undefined;
} {
  const { options, crlExpires } = loadTls(tls);
  return {
    https: {
      ...options,
      requestCert: tls.clientCa !== undefined,
      rejectUnauthorized: tls.clientCa !== undefined && tls.requireClientCert,
    },
    crlExpires,
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

/**
 * Every this often (at most) while a client CRL has expired, the reloader says so again: from then on every client
 * certificate of that CA is refused, and the fix (a fresh CRL file) is the operator's.
 */
const CRL_EXPIRED_REMINDER_MS = 60 * 60 * 1000;

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
  private crlRemindedAt = 0;

  constructor(
    private readonly server: SecureServer,
    private tls: TlsConfig,
    private readonly log: TlsLog,
    private crlExpires: Date | undefined,
  ) {
    this.files = TlsReloader.filesOf(tls);
    this.seen = signature(this.files);
    // Before the TLS layer's own listener, so a renewed certificate already serves this connection.
    server.prependListener('connection', () => {
      this.check();
    });
  }

  private static filesOf(tls: TlsConfig): string[] {
    return [tls.cert, tls.key, tls.clientCa, tls.clientCrl].filter((file) => file !== undefined);
  }

  private check(): void {
    const now = Date.now();
    if (now - this.checkedAt < 1000) return;
    this.checkedAt = now;
    const current = signature(this.files);
    if (current !== this.seen) {
      this.seen = current;
      try {
        const { options, crlExpires } = loadTls(this.tls);
        this.server.setSecureContext(options);
        this.crlExpires = crlExpires;
        this.crlRemindedAt = 0;
        this.log.info({ cert: this.tls.cert }, 'TLS certificate reloaded');
      } catch (error) {
        this.log.error(
          { err: (error as Error).message },
          'TLS files not reloaded; the previous certificate stays',
        );
      }
    }
    if (
      this.crlExpires !== undefined &&
      this.crlExpires.getTime() <= now &&
      now - this.crlRemindedAt >= CRL_EXPIRED_REMINDER_MS
    ) {
      this.crlRemindedAt = now;
      this.log.error(
        { crl: this.tls.clientCrl, expired: this.crlExpires.toISOString() },
        'a client CRL has expired: client certificates of its CA are refused until a fresh CRL is in tls.clientCrl',
      );
    }
  }

  /** New TLS settings (a reload): applied now, or AuthConfigError and nothing changes. */
  reload(tls: TlsConfig): void {
    const { options, crlExpires } = loadTls(tls);
    this.server.setSecureContext(options);
    this.crlExpires = crlExpires;
    this.crlRemindedAt = 0;
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
