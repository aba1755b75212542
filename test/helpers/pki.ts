/**
 * A throw-away PKI for TLS and authentication tests, made with the real `openssl` in a temp directory: a test CA,
 * a server certificate for 127.0.0.1/localhost, client certificates (valid, expired, or from another CA),
 * revocations and CRLs, token-signing keys, and htpasswd lines (bcrypt at the lowest cost, so tests stay fast).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import bcrypt from 'bcryptjs';

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export interface KeyPair {
  cert: string;
  key: string;
}

export interface Pki {
  dir: string;
  /** The CA certificate (PEM): trust it in clients (`--cacert`, a cert dir's ca.crt) and as tls.clientCa. */
  ca: string;
  server: KeyPair;
  /** A client certificate with subject CN `name` (and SAN DNS:`name` when it looks like a host name). */
  client(name: string, options?: { expired?: boolean; otherCa?: boolean }): KeyPair;
  /** A directory as skopeo/podman `--cert-dir` wants it: ca.crt, plus client.cert/client.key when given. */
  certDir(client?: KeyPair): string;
  /** Revokes a certificate the test CA issued (it appears in the CRLs made after). */
  revoke(pair: KeyPair): void;
  /**
   * Writes the test CA's current CRL (PEM) to `file` — or another CA's (`otherCa`), or one that expired
   * (`expired`: its nextUpdate is in the past) — and returns `file`.
   */
  crl(file: string, options?: { otherCa?: boolean; expired?: boolean }): string;
}

const CA_CONFIG = `[ca]
default_ca = test
[test]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
crlnumber = crlnumber
default_crl_days = 2
[any]
commonName = supplied
`;

/** `openssl req` arguments for a new, unencrypted EC P-256 key. */
const NEW_EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function makeCa(dir: string, name: string): void {
  mkdirSync(dir, { recursive: true });
  openssl(
    [
      'req',
      '-x509',
      ...NEW_EC_KEY,
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '3',
      '-subj',
      `/CN=${name}`,
    ],
    dir,
  );
  writeFileSync(path.join(dir, 'ca.cnf'), CA_CONFIG);
  writeFileSync(path.join(dir, 'index.txt'), '');
  writeFileSync(path.join(dir, 'serial'), '1000\n');
  writeFileSync(path.join(dir, 'crlnumber'), '1000\n');
}

/** `openssl ca` with a CA directory's own configuration, certificate and key (run in that directory). */
const CA_ARGS = ['-config', 'ca.cnf', '-cert', 'ca.pem', '-keyfile', 'ca.key'];

let counter = 0;

function issue(caDir: string, name: string, san: string | undefined, dates: string[]): KeyPair {
  const base = `cert-${++counter}`;
  const extFile = path.join(caDir, `${base}.ext`);
  writeFileSync(extFile, san === undefined ? '' : `subjectAltName=${san}\n`);
  openssl(
    ['req', ...NEW_EC_KEY, '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${name}`],
    caDir,
  );
  openssl(
    [
      'ca',
      '-batch',
      ...CA_ARGS,
      '-in',
      `${base}.csr`,
      '-out',
      `${base}.pem`,
      '-notext',
      '-extfile',
      extFile,
      ...dates,
    ],
    caDir,
  );
  return { cert: path.join(caDir, `${base}.pem`), key: path.join(caDir, `${base}.key`) };
}

const VALID = ['-days', '2'];
const EXPIRED = ['-startdate', '20200101000000Z', '-enddate', '20200102000000Z'];

/** A fresh PKI under `dir` (created). */
export function makePki(dir: string): Pki {
  const caDir = path.join(dir, 'ca');
  const otherDir = path.join(dir, 'other-ca');
  makeCa(caDir, 'derrick test CA');
  let otherMade = false;
  const otherCa = (): string => {
    if (!otherMade) makeCa(otherDir, 'another CA');
    otherMade = true;
    return otherDir;
  };
  const server = issue(caDir, '127.0.0.1', 'IP:127.0.0.1,DNS:localhost', VALID);
  let dirs = 0;
  return {
    dir,
    ca: path.join(caDir, 'ca.pem'),
    server,
    client(name, options = {}) {
      const ca = options.otherCa ? otherCa() : caDir;
      const san = /^[a-z0-9.-]+$/.test(name) && name.includes('.') ? `DNS:${name}` : undefined;
      return issue(ca, name, san, options.expired ? EXPIRED : VALID);
    },
    certDir(client) {
      const target = path.join(dir, `certs-${++dirs}`);
      mkdirSync(target, { recursive: true });
      copyFileSync(path.join(caDir, 'ca.pem'), path.join(target, 'ca.crt'));
      if (client) {
        copyFileSync(client.cert, path.join(target, 'client.cert'));
        copyFileSync(client.key, path.join(target, 'client.key'));
      }
      return target;
    },
    revoke(pair) {
      openssl(['ca', ...CA_ARGS, '-revoke', pair.cert], caDir);
    },
    crl(file, options = {}) {
      const ca = options.otherCa ? otherCa() : caDir;
      const period = options.expired
        ? ['-crl_lastupdate', '20200101000000Z', '-crl_nextupdate', '20200102000000Z']
        : [];
      openssl(['ca', ...CA_ARGS, '-gencrl', '-out', file, ...period], ca);
      return file;
    },
  };
}

/** A PEM private key for signing tokens: EC P-256 (ES256) or RSA 2048 (RS256), written to `file`. */
export function tokenKey(file: string, kind: 'ec' | 'rsa' = 'ec'): string {
  const args =
    kind === 'ec'
      ? ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]
      : ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', file];
  openssl(args, path.dirname(file));
  return file;
}

/** An htpasswd line `user:<bcrypt hash>` ($2y$, cost 4: fast for tests, real bcrypt all the same). */
export function htpasswdLine(user: string, password: string): string {
  return `${user}:${bcrypt.hashSync(password, 4).replace(/^\$2[ab]\$/, '$2y$')}`;
}

/**
 * A PEM private key derrick must refuse for signing tokens (it takes EC P-256 and RSA ≥ 2048 only): Ed25519,
 * EC P-384 or RSA 1024, written to `file`.
 */
export function unsupportedTokenKey(file: string, kind: 'ed25519' | 'ec-p384' | 'rsa-1024'): string {
  const args = {
    ed25519: ['genpkey', '-algorithm', 'ED25519', '-out', file],
    'ec-p384': ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384', '-out', file],
    'rsa-1024': ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', file],
  }[kind];
  openssl(args, path.dirname(file));
  return file;
}

/** Another server certificate for 127.0.0.1/localhost from `pki`'s CA: a renewal, for certificate-reload tests. */
export function renewServerCert(pki: Pki): KeyPair {
  return issue(path.join(pki.dir, 'ca'), '127.0.0.1', 'IP:127.0.0.1,DNS:localhost', VALID);
}
