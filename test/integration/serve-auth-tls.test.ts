/**
 * Mutual TLS over real sockets: the real app listening on 127.0.0.1 with the certificates of a throw-away PKI,
 * talked to with node:https. Client certificates as identities in access rules (cert:<CN or SAN>), certificates
 * refused (another CA, expired), requireClientCert, the token endpoint with a certificate, and a renewed server
 * certificate served to new connections without a restart. One suite, two back ends (a directory, a bucket of the
 * test S3 server), the tree published once for each; the PKI is the same for both.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { reloadApp } from '../../src/http/app.ts';
import {
  basicOf,
  bearer,
  GROUPS,
  jwtClaims,
  METHODS,
  repositoryUrls,
  RULES,
  SERVICE,
} from '../helpers/auth.ts';
import { authTreeOn, type AuthTreeOn } from '../helpers/auth-backends.ts';
import { BACKENDS } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { makePki, renewServerCert, tokenKey, type KeyPair, type Pki } from '../helpers/pki.ts';
import { httpsGet, type TlsAnswer } from '../helpers/tls.ts';
import {
  assertOciError,
  header,
  listenLocal,
  serveApp,
  serveConfig,
  serveTree,
  type Flags,
} from '../helpers/server.ts';

const scratch = tempDir('derrick-serve-auth-tls-');
/** The --data-dir of the apps whose start is refused: no tree is needed there, and none is ever read. */
const NEVER_OPENED = path.join(scratch.dir, 'never-opened');

let pki!: Pki;
let keyFile = '';

/** Client certificates: ci.example.com is in group dev, vault.example.com is named by the secret/** rule. */
let ci!: KeyPair;
let vault!: KeyPair;
let nobody!: KeyPair;
let otherCa!: KeyPair;
let expired!: KeyPair;

before(() => {
  pki = makePki(path.join(scratch.dir, 'pki'));
  keyFile = tokenKey(path.join(scratch.dir, 'token.key'), 'ec');
  ci = pki.client('ci.example.com');
  vault = pki.client('vault.example.com');
  nobody = pki.client('nobody.example.com');
  otherCa = pki.client('ci.example.com', { otherCa: true });
  expired = pki.client('ci.example.com', { expired: true });
});
after(() => scratch.cleanup());

function tlsFlags(extra: Flags = {}): Flags {
  return {
    'tls.cert': pki.server.cert,
    'tls.key': pki.server.key,
    'tls.clientCa': pki.ca,
    'auth.groups': JSON.stringify(GROUPS),
    access: JSON.stringify(RULES),
    'auth.failedLogins.limit': '1000000',
    ...extra,
  };
}

/** One HTTPS request on a fresh connection, trusting the test CA, presenting `client` when given. */
const httpsRequest = (
  port: number,
  urlPath: string,
  options: { client?: KeyPair; method?: string; headers?: Record<string, string> } = {},
): Promise<TlsAnswer> => httpsGet(pki.ca, port, urlPath, options);

const fingerprintOf = (certFile: string): string =>
  new X509Certificate(readFileSync(certFile)).fingerprint256;

// On one back end: these configurations are refused before any tree is opened.
describe('TLS files that cannot be used stop the start, naming their key', () => {
  test('a missing or garbage certificate, key or CA bundle, and a key of another certificate', () => {
    const garbage = path.join(scratch.dir, 'garbage.txt');
    writeFileSync(garbage, 'not PEM at all\n');
    const cases: [Flags, string][] = [
      [{ 'tls.cert': path.join(scratch.dir, 'missing.pem') }, 'tls.cert'],
      [{ 'tls.cert': garbage }, 'tls.cert'],
      [{ 'tls.cert': pki.server.key }, 'tls.cert'],
      [{ 'tls.key': garbage }, 'tls.key'],
      [{ 'tls.key': ci.key }, 'tls.key'],
      [{ 'tls.clientCa': garbage }, 'tls.clientCa'],
      [{ 'tls.clientCa': path.join(scratch.dir, 'missing-ca.pem') }, 'tls.clientCa'],
    ];
    for (const [flags, key] of cases)
      assert.throws(
        () => serveApp(NEVER_OPENED, tlsFlags(flags)),
        (error: Error) => error.name === 'AuthConfigError' && error.message.startsWith(`${key}: `),
        JSON.stringify(flags),
      );
  });
});

for (const backend of BACKENDS)
  describe(backend, () => {
    let tree!: AuthTreeOn;
    const apps: FastifyInstance[] = [];

    /** With Basic logins and derrick's tokens besides certificates. */
    function withLogins(extra: Flags = {}): Flags {
      return tlsFlags({
        'auth.htpasswd': tree.htpasswd,
        'auth.token.key': keyFile,
        'auth.token.service': SERVICE,
        ...extra,
      });
    }

    async function started(flags: Flags): Promise<{ app: FastifyInstance; port: number }> {
      const app = await serveTree(tree.dataDir, flags);
      apps.push(app);
      const port = await listenLocal(app);
      return { app, port };
    }

    let mtls!: { app: FastifyInstance; port: number };
    let mtlsOnly!: { app: FastifyInstance; port: number };

    before(async () => {
      tree = await authTreeOn(backend, path.join(scratch.dir, backend));
      mtls = await started(withLogins());
      mtlsOnly = await started(tlsFlags());
    });

    after(async () => {
      await Promise.all(apps.map((app) => app.close()));
      await tree.remove();
    });

    describe('client certificates as identities', () => {
      test('a valid certificate whose CN/SAN a cert: rule names → 200 on every endpoint (directly, and through a group)', async () => {
        for (const { port } of [mtls, mtlsOnly])
          for (const [client, name] of [
            [vault, 'secret/app'],
            [ci, 'team/app'],
          ] as const)
            for (const [what, url] of repositoryUrls(name, tree))
              for (const method of METHODS) {
                const answer = await httpsRequest(port, url, { client, method });
                assert.equal(answer.statusCode, 200, `${method} ${what} of ${name}: ${answer.body}`);
              }
      });

      test('a valid certificate the rule does not name → 403 DENIED (404 NAME_UNKNOWN when there is nothing to log in to); public repositories still served', async () => {
        for (const [{ port }, status, code] of [
          [mtls, 403, 'DENIED'],
          [mtlsOnly, 404, 'NAME_UNKNOWN'],
        ] as const) {
          for (const [client, name] of [
            [nobody, 'team/app'],
            [ci, 'secret/app'],
            [vault, 'team/app'],
          ] as const) {
            const answer = await httpsRequest(port, `/v2/${name}/tags/list`, { client });
            assertOciError(answer, status, code);
          }
          assert.equal(
            (await httpsRequest(port, '/v2/public/app/tags/list', { client: nobody })).statusCode,
            200,
          );
          assert.equal((await httpsRequest(port, '/v2/', { client: nobody })).statusCode, 200);
        }
      });

      test('a certificate and Basic credentials together: either identity may open a repository', async () => {
        const answer = await httpsRequest(mtls.port, '/v2/secret/app/tags/list', {
          client: ci,
          headers: { authorization: basicOf('bob') },
        });
        assert.equal(answer.statusCode, 200, answer.body);
      });

      test('no certificate → anonymous: 401 with an https Bearer challenge when there are logins, 404 when there are none', async () => {
        for (const name of ['team/app', 'secret/app']) {
          const challenged = await httpsRequest(mtls.port, `/v2/${name}/tags/list`);
          assertOciError(challenged, 401, 'UNAUTHORIZED');
          assert.equal(
            header(challenged, 'www-authenticate'),
            `Bearer realm="https://127.0.0.1:${mtls.port}/auth/token",service="${SERVICE}",scope="repository:${name}:pull"`,
          );
          assertOciError(await httpsRequest(mtlsOnly.port, `/v2/${name}/tags/list`), 404, 'NAME_UNKNOWN');
        }
        assert.equal((await httpsRequest(mtlsOnly.port, '/v2/public/app/tags/list')).statusCode, 200);
        assert.equal((await httpsRequest(mtlsOnly.port, '/v2/')).statusCode, 200);
        assert.equal((await httpsRequest(mtls.port, '/v2/')).statusCode, 401);
      });

      test('a certificate from another CA → 401 "the client certificate was not accepted", even on a public repository', async () => {
        for (const { port } of [mtls, mtlsOnly])
          for (const url of ['/v2/team/app/tags/list', '/v2/public/app/tags/list', '/v2/']) {
            const answer = await httpsRequest(port, url, { client: otherCa });
            const error = assertOciError(answer, 401, 'UNAUTHORIZED');
            assert.match(error.message, /^the client certificate was not accepted \(.+\)$/);
          }
      });

      test('an expired certificate → 401 "the client certificate was not accepted"', async () => {
        for (const { port } of [mtls, mtlsOnly]) {
          const answer = await httpsRequest(port, '/v2/team/app/tags/list', { client: expired });
          const error = assertOciError(answer, 401, 'UNAUTHORIZED');
          assert.match(error.message, /^the client certificate was not accepted \(.*expired.*\)$/i);
        }
      });

      test('the token endpoint takes a certificate as the login: its token carries cert:<name>', async () => {
        const answer = await httpsRequest(
          mtls.port,
          '/auth/token?scope=repository:team/app:pull&scope=repository:secret/app:pull',
          {
            client: ci,
          },
        );
        assert.equal(answer.statusCode, 200, answer.body);
        const { token } = JSON.parse(answer.body) as { token: string };
        const claims = jwtClaims(token);
        assert.equal(claims.sub, 'ci.example.com');
        assert.deepEqual(claims.derrick_ids, ['cert:ci.example.com']);
        assert.deepEqual(claims.access, [{ type: 'repository', name: 'team/app', actions: ['pull'] }]);
        // The token alone, on a connection without a certificate.
        const pulled = await httpsRequest(mtls.port, '/v2/team/app/tags/list', {
          headers: { authorization: bearer(token) },
        });
        assert.equal(pulled.statusCode, 200, pulled.body);
      });
    });

    describe('requireClientCert: true', () => {
      test('the handshake fails without a certificate (and with one from another CA); a valid one is served', async () => {
        const { port } = await started(tlsFlags({ 'tls.requireClientCert': 'true' }));
        await assert.rejects(httpsRequest(port, '/v2/'));
        await assert.rejects(httpsRequest(port, '/v2/', { client: otherCa }));
        await assert.rejects(httpsRequest(port, '/v2/', { client: expired }));
        assert.equal((await httpsRequest(port, '/v2/team/app/tags/list', { client: ci })).statusCode, 200);
        assert.equal(
          (await httpsRequest(port, '/v2/public/app/tags/list', { client: nobody })).statusCode,
          200,
        );
      });
    });

    describe('server certificate renewal without a restart', () => {
      function servedCopy(label: string): KeyPair {
        const served = {
          cert: path.join(scratch.dir, backend, `${label}-server.pem`),
          key: path.join(scratch.dir, backend, `${label}-server.key`),
        };
        copyFileSync(pki.server.cert, served.cert);
        copyFileSync(pki.server.key, served.key);
        return served;
      }

      test('overwriting the certificate and key files: a new connection (> 1 s later) gets the new certificate', async () => {
        const served = servedCopy('renewed');
        const { port } = await started(tlsFlags({ 'tls.cert': served.cert, 'tls.key': served.key }));
        const first = await httpsRequest(port, '/v2/public/app/tags/list');
        assert.equal(first.statusCode, 200);
        assert.equal(first.fingerprint, fingerprintOf(pki.server.cert));

        const renewed = renewServerCert(pki);
        assert.notEqual(fingerprintOf(renewed.cert), first.fingerprint);
        copyFileSync(renewed.key, served.key);
        copyFileSync(renewed.cert, served.cert);
        await sleep(1100); // the files are checked at most once a second
        const second = await httpsRequest(port, '/v2/public/app/tags/list', { client: ci });
        assert.equal(second.statusCode, 200);
        assert.equal(second.fingerprint, fingerprintOf(renewed.cert));
        // Client certificates are still verified against the CA bundle after the renewal.
        assert.equal((await httpsRequest(port, '/v2/team/app/tags/list', { client: ci })).statusCode, 200);
        assertOciError(
          await httpsRequest(port, '/v2/team/app/tags/list', { client: otherCa }),
          401,
          'UNAUTHORIZED',
        );
      });

      test('a certificate written before its key: the previous certificate stays until the key follows', async () => {
        const served = servedCopy('mismatched');
        const { port } = await started(tlsFlags({ 'tls.cert': served.cert, 'tls.key': served.key }));
        const first = await httpsRequest(port, '/v2/');
        assert.equal(first.fingerprint, fingerprintOf(pki.server.cert));
        const renewed = renewServerCert(pki);
        copyFileSync(renewed.cert, served.cert); // the key is still the old one
        await sleep(1100);
        const second = await httpsRequest(port, '/v2/');
        assert.equal(second.statusCode, 200);
        assert.equal(second.fingerprint, fingerprintOf(pki.server.cert));
        copyFileSync(renewed.key, served.key);
        await sleep(1100);
        const third = await httpsRequest(port, '/v2/');
        assert.equal(third.statusCode, 200);
        assert.equal(third.fingerprint, fingerprintOf(renewed.cert));
      });

      test('reloadApp naming other certificate files: the next connection gets them; unreadable ones throw and change nothing', async () => {
        const { app, port } = await started(tlsFlags());
        assert.equal((await httpsRequest(port, '/v2/')).fingerprint, fingerprintOf(pki.server.cert));
        const missing = { 'tls.cert': path.join(scratch.dir, 'no-such.pem'), 'tls.key': pki.server.key };
        assert.throws(
          () => reloadApp(app, serveConfig(tree.dataDir, tlsFlags(missing))),
          (error: Error) => error.name === 'AuthConfigError' && /^tls\.cert: /.test(error.message),
        );
        assert.equal((await httpsRequest(port, '/v2/')).fingerprint, fingerprintOf(pki.server.cert));
        const renewed = renewServerCert(pki);
        const restart = reloadApp(
          app,
          serveConfig(tree.dataDir, tlsFlags({ 'tls.cert': renewed.cert, 'tls.key': renewed.key })),
        );
        assert.deepEqual(restart, []);
        const after = await httpsRequest(port, '/v2/team/app/tags/list', { client: ci });
        assert.equal(after.fingerprint, fingerprintOf(renewed.cert));
        assert.equal(after.statusCode, 200);
      });

      test('a reload removing tls.clientCa needs a restart, and until then certificates still count', async () => {
        const { app, port } = await started(withLogins());
        assert.equal(
          (await httpsRequest(port, '/v2/secret/app/tags/list', { client: vault })).statusCode,
          200,
        );
        const { 'tls.clientCa': _ca, ...withoutCa } = withLogins();
        const restart = reloadApp(app, serveConfig(tree.dataDir, withoutCa));
        assert.deepEqual(restart, ['tls']);
        // The listener still asks for and verifies certificates (nothing of tls was applied)…
        assert.equal(
          (await httpsRequest(port, '/v2/secret/app/tags/list', { client: vault })).statusCode,
          200,
        );
        assertOciError(
          await httpsRequest(port, '/v2/public/app/tags/list', { client: otherCa }),
          401,
          'UNAUTHORIZED',
        );
      });
    });
  });
