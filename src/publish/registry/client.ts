/**
 * A client of one registry's distribution API, for reading (`derrick publish docker://…`): keep-alive
 * connections, the auth a 401 asks for, retries, redirects.
 *
 * - Auth (the Docker token spec, docs/spec/auth/token.md): "If the registry requires authorization it will
 *   return a 401 Unauthorized HTTP response with information on how to authenticate", a `WWW-Authenticate`
 *   challenge. `Bearer`: a token from its realm (`?service=…&scope=repository:<name>:pull`, with the credentials
 *   as Basic when there are any), kept per scope and fetched again when the registry refuses it (expired);
 *   `Basic`: the credentials on every request.
 * - Retries: 429 and 5xx (but 501) and connections refused, reset or timed out, up to RETRIES times, waiting what `Retry-After` says
 *   (seconds or an HTTP date, at most 60 s) or 0.5 s doubling to 8 s.
 * - Redirects (a blob served from object storage or a CDN) are followed, without the Authorization header once
 *   they leave the registry's origin.
 * - TLS: verified against Node's CAs plus the `*.crt` of `certDir`; a client certificate from its `*.cert` and
 *   `*.key` (as skopeo's --cert-dir, containers-certs.d). `tlsVerify: false` accepts any certificate and, as
 *   skopeo does, plain HTTP when the registry does not speak TLS.
 */
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { SourceError } from '../source.ts';
import { rootCertificates } from 'node:tls';
import { parseChallenges, type Challenge } from './challenge.ts';

export interface Credentials {
  username: string;
  password: string;
}

export interface ClientOptions {
  credentials: Credentials | undefined;
  tlsVerify: boolean;
  certDir: string | undefined;
  userAgent: string;
  /** Waits between retries (tests shorten them). */
  sleep?: (ms: number) => Promise<void>;
}

/** An answer whose body has not been read yet. */
export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
  url: string;
}

/** What went wrong talking to the registry, in one line (no stack). */
/** A SourceError, so the command line gives its message alone. */
export class RegistryClientError extends SourceError {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'RegistryClientError';
  }
}

/** Retries of a request (and of a broken blob transfer) before giving up. */
export const RETRIES = 5;
const MAX_REDIRECTS = 5;
const MAX_RETRY_AFTER_MS = 60_000;

const realSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The body of an answer, at most `limit` bytes (manifests, kept byte for byte). */
export async function readBytes(answer: Answer, limit = 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of answer.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      answer.body.destroy();
      throw new RegistryClientError(`${answer.url}: the answer is larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The body of an answer as text, at most `limit` bytes (error bodies, tokens). */
export async function readText(answer: Answer, limit = 1024 * 1024): Promise<string> {
  return (await readBytes(answer, limit)).toString('utf8');
}

/** The delay `Retry-After` asks for (RFC 9110 §10.2.3: seconds, or an HTTP date), if any. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Math.min(Number(value) * 1000, MAX_RETRY_AFTER_MS);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.min(Math.max(0, at - now), MAX_RETRY_AFTER_MS);
}

function tlsFiles(certDir: string | undefined): { ca?: Buffer[]; cert?: Buffer; key?: Buffer } {
  if (certDir === undefined) return {};
  let entries: string[];
  try {
    entries = readdirSync(certDir);
  } catch (error) {
    throw new RegistryClientError(`--cert-dir ${certDir}: ${(error as Error).message}`);
  }
  const read = (name: string): Buffer => readFileSync(path.join(certDir, name));
  const cas = entries.filter((name) => name.endsWith('.crt')).map(read);
  const cert = entries.find((name) => name.endsWith('.cert'));
  const key = entries.find((name) => name.endsWith('.key'));
  if ((cert === undefined) !== (key === undefined))
    throw new RegistryClientError(
      `--cert-dir ${certDir}: a client certificate needs both a .cert and a .key file`,
    );
  return {
    ...(cas.length > 0 ? { ca: cas } : {}),
    ...(cert !== undefined && key !== undefined ? { cert: read(cert), key: read(key) } : {}),
  };
}

export class RegistryClient {
  private scheme: 'https' | 'http' = 'https';
  private readonly httpsAgent: https.Agent;
  private readonly httpAgent = new http.Agent({ keepAlive: true });
  /** Bearer tokens by scope. */
  private readonly tokens = new Map<string, string>();
  private basic = false;
  private readonly sleep: (ms: number) => Promise<void>;
  /** Whether --cert-dir gave a client certificate (for what a refused handshake means). */
  private readonly clientCertificate: boolean;

  constructor(
    /** host[:port] */
    readonly endpoint: string,
    private readonly options: ClientOptions,
  ) {
    const files = tlsFiles(options.certDir);
    // The certDir's CAs as well as Node's, not instead of them.
    const ca = files.ca ? [...rootCertificates, ...files.ca] : undefined;
    this.httpsAgent = new https.Agent({
      keepAlive: true,
      rejectUnauthorized: options.tlsVerify,
      ...(ca ? { ca } : {}),
      ...(files.cert ? { cert: files.cert, key: files.key } : {}),
    });
    this.sleep = options.sleep ?? realSleep;
    this.clientCertificate = files.cert !== undefined;
  }

  /** `GET` (or `HEAD`) of a path below the registry's origin, for a repository's `scope`. */
  async request(
    method: 'GET' | 'HEAD',
    pathname: string,
    scope: string,
    headers: Record<string, string> = {},
  ): Promise<Answer> {
    let url = `${this.scheme}://${this.endpoint}${pathname}`;
    let refreshed = false;
    for (let redirects = 0; ;) {
      // Scheme and host: a redirect to plain HTTP on the same host is another origin, and gets no credentials.
      const target = new URL(url);
      const sameOrigin = target.host === this.endpoint && target.protocol === `${this.scheme}:`;
      const auth = sameOrigin ? this.authorization(scope) : undefined;
      let answer: Answer;
      try {
        answer = await this.sendRetrying(method, url, {
          ...headers,
          ...(auth ? { authorization: auth } : {}),
        });
      } catch (error) {
        if (this.speaksHttp(error, url)) {
          this.scheme = 'http';
          url = url.replace(/^https:/, 'http:');
          continue;
        }
        throw new RegistryClientError(`${method} ${url}: ${describeError(error, this.clientCertificate)}`);
      }
      const { status } = answer;
      if (status >= 300 && status < 400 && answer.headers.location !== undefined) {
        answer.body.resume();
        if (redirects++ >= MAX_REDIRECTS)
          throw new RegistryClientError(`${method} ${url}: more than ${MAX_REDIRECTS} redirects`);
        url = new URL(answer.headers.location, url).toString();
        continue;
      }
      if (status === 401 && sameOrigin && !refreshed) {
        refreshed = true;
        const header = answer.headers['www-authenticate'];
        answer.body.resume();
        await this.authenticate(typeof header === 'string' ? header : '', scope, auth !== undefined, url);
        continue;
      }
      if (status === 401) {
        answer.body.resume();
        throw new RegistryClientError(
          `${this.endpoint}: the registry refused ${this.options.credentials ? `the credentials of ${this.options.credentials.username}` : 'an anonymous client'} for ${scope} (401)${this.options.credentials ? '' : '; give --creds, or log in with skopeo, podman or docker'}`,
          401,
        );
      }
      return answer;
    }
  }

  /**
   * `send`, asked again after a transient connection error or a 429/5xx (but 501), up to RETRIES times, waiting
   * what `Retry-After` says or backing off. A TLS client that meets a plain-HTTP registry is not retried: the
   * caller switches to HTTP (speaksHttp).
   */
  private async sendRetrying(method: string, url: string, headers: Record<string, string>): Promise<Answer> {
    for (let attempt = 1; ; attempt++) {
      let answer: Answer;
      try {
        answer = await this.send(method, url, headers);
      } catch (error) {
        if (this.speaksHttp(error, url) || !transient(error) || attempt > RETRIES) throw error;
        await this.sleep(backoff(attempt));
        continue;
      }
      const { status } = answer;
      if ((status === 429 || (status >= 500 && status !== 501)) && attempt <= RETRIES) {
        const after = retryAfterMs(headerText(answer.headers['retry-after']));
        answer.body.resume();
        await this.sleep(after ?? backoff(attempt));
        continue;
      }
      return answer;
    }
  }

  close(): void {
    this.httpsAgent.destroy();
    this.httpAgent.destroy();
  }

  private authorization(scope: string): string | undefined {
    const token = this.tokens.get(scope);
    if (token !== undefined) return `Bearer ${token}`;
    if (this.basic && this.options.credentials) return basicHeader(this.options.credentials);
    return undefined;
  }

  private async authenticate(header: string, scope: string, hadAuth: boolean, url: string): Promise<void> {
    const challenges = parseChallenges(header);
    const bearer = challenges.find((challenge) => challenge.scheme === 'bearer');
    if (bearer) {
      this.tokens.set(scope, await this.fetchToken(bearer, scope));
      return;
    }
    if (challenges.some((challenge) => challenge.scheme === 'basic')) {
      if (!this.options.credentials || (hadAuth && this.basic))
        throw new RegistryClientError(
          `${this.endpoint}: ${this.options.credentials ? `the registry refused the credentials of ${this.options.credentials.username}` : 'the registry asks for credentials: give --creds, or log in with skopeo, podman or docker'} (401)`,
          401,
        );
      this.basic = true;
      return;
    }
    throw new RegistryClientError(
      `${url}: 401 with ${header === '' ? 'no WWW-Authenticate challenge' : `a challenge derrick cannot answer (${header.slice(0, 100)})`}`,
      401,
    );
  }

  /** A Bearer token from the challenge's realm (the Docker token spec's GET, Basic credentials if any). */
  private async fetchToken(challenge: Challenge, scope: string): Promise<string> {
    const { realm, service } = challenge.params;
    if (realm === undefined || !/^https?:\/\//.test(realm))
      throw new RegistryClientError(`${this.endpoint}: a Bearer challenge without an http(s) realm`);
    const tokenUrl = new URL(realm);
    if (service !== undefined) tokenUrl.searchParams.set('service', service);
    tokenUrl.searchParams.set('scope', scope);
    const { credentials } = this.options;
    let answer: Answer;
    try {
      answer = await this.sendRetrying(
        'GET',
        tokenUrl.toString(),
        credentials ? { authorization: basicHeader(credentials) } : {},
      );
    } catch (error) {
      throw new RegistryClientError(
        `token from ${tokenUrl.origin}: ${describeError(error, this.clientCertificate)}`,
      );
    }
    const text = await readText(answer);
    if (answer.status === 401 || answer.status === 403)
      throw new RegistryClientError(
        `${tokenUrl.origin} refused ${credentials ? `the credentials of ${credentials.username}` : 'an anonymous token'} for ${scope} (${answer.status})${credentials ? '' : '; give --creds, or log in with skopeo, podman or docker'}`,
        answer.status,
      );
    if (answer.status !== 200)
      throw new RegistryClientError(`token from ${tokenUrl.origin}: ${answer.status} ${text.slice(0, 200)}`);
    let body: { token?: unknown; access_token?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new RegistryClientError(`token from ${tokenUrl.origin}: the answer is not JSON`);
    }
    // "token" — and "access_token", which the spec gives for OAuth 2.0 compatibility.
    const token = typeof body.token === 'string' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '')
      throw new RegistryClientError(`token from ${tokenUrl.origin}: the answer holds no token`);
    return token;
  }

  private send(method: string, url: string, headers: Record<string, string>): Promise<Answer> {
    const target = new URL(url);
    const secure = target.protocol === 'https:';
    return new Promise((resolve, reject) => {
      const request = (secure ? https : http).request(
        target,
        {
          method,
          agent: secure ? this.httpsAgent : this.httpAgent,
          headers: { 'user-agent': this.options.userAgent, ...headers },
          timeout: 60_000,
        },
        (response) =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: response, url }),
      );
      request.on('timeout', () => request.destroy(new Error('no answer within 60 s')));
      request.on('error', reject);
      request.end();
    });
  } /**
   * With tlsVerify false, whether `error` says the registry answered TLS with plain HTTP (it is then asked over
   * HTTP from then on).
   */
  private speaksHttp(error: unknown, url: string): boolean {
    if (this.options.tlsVerify || this.scheme === 'http' || !url.startsWith('https:')) return false;
    const code = (error as NodeJS.ErrnoException).code;
    const message = (error as Error).message;
    return code === 'EPROTO' || code === 'ECONNRESET' || /wrong version number|packet length/i.test(message);
  }
}

function basicHeader({ username, password }: Credentials): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

/** Connection errors worth another try: not a host that does not exist, nor a certificate that is refused. */
const TRANSIENT = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ECONNABORTED']);

function transient(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return (code !== undefined && TRANSIENT.has(code)) || /socket hang up|no answer within/.test(String(error));
}

function backoff(attempt: number): number {
  return Math.min(500 * 2 ** (attempt - 1), 8000);
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Node's codes for a server certificate it cannot chain to a CA it trusts. */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

/**
 * The TLS alerts a server sends when it wants a client certificate and did not get one it accepts: TLS 1.3's
 * certificate_required (116), or TLS 1.2's bad_certificate (42), unknown_ca (48), certificate_expired (45) and
 * certificate_revoked (44) — Go's crypto/tls, which distribution uses, sends bad_certificate for a missing one.
 */
const CLIENT_CERTIFICATE_REFUSED = new Set([
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED',
]);

/** A connection error in one line of words (never OpenSSL's own text when its code is known). */
function describeError(error: unknown, clientCertificate: boolean): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED') return 'connection refused (is the registry up, and is this its address?)';
  if (code === 'ENOTFOUND') return 'no such host';
  if (code !== undefined && UNTRUSTED.has(code))
    return `its certificate is not trusted (${code}): give its CA in --cert-dir, or --tls-verify=false`;
  if (code === 'CERT_HAS_EXPIRED') return 'its certificate has expired';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return 'its certificate is not for this host name (use the name the certificate is for)';
  if (code !== undefined && CLIENT_CERTIFICATE_REFUSED.has(code)) {
    const alert = code
      .replace(/^ERR_SSL_(SSLV3|TLSV1|TLSV13)_ALERT_/, '')
      .toLowerCase()
      .replaceAll('_', ' ');
    return clientCertificate
      ? `the registry refused our client certificate (TLS alert: ${alert}): give one its CA signed, a .cert and its .key in --cert-dir`
      : `the registry refused the connection without a client certificate (TLS alert: ${alert}): give a .cert and its .key in --cert-dir`;
  }
  return error instanceof Error ? error.message : String(error);
}
