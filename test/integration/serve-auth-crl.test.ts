/**
 * Revoked client certificates (`tls.clientCrl`) over real sockets: the real app listening on 127.0.0.1 with a
 * throw-away PKI whose CA revokes certificates with the real openssl. A revoked certificate is refused like one
 * that does not verify; a CRL file rewritten with a new revocation applies to the next connection, no restart;
 * CRL files that would lock every client out (another CA's, an expired one, none) are refused at start and on
 * reload, naming tls.clientCrl; a CRL that expires while serving is reported in the log. One suite, two back ends (a
 * directory, a bucket of the test S3 server), the tree published once for each; the PKI is the same for both.
 */
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { reloadApp } from '../../src/http/app.ts';
import { TlsReloader, type SecureServer } from '../../src/http/tls.ts';
import { GROUPS, RULES } from '../helpers/auth.ts';
import { authTreeOn, type AuthTreeOn } from '../helpers/auth-backends.ts';
import { BACKENDS } from '../helpers/backends.ts';
import { tempDir } from '../helpers/cli.ts';
import { makePki, type KeyPair, type Pki } from '../helpers/pki.ts';
import {
  assertOciError,
  listenLocal,
  serveApp,
  serveConfig,
  serveTree,
  type Flags,
} from '../helpers/server.ts';
import { httpsGet } from '../helpers/tls.ts';

const scratch = tempDir('derrick-serve-auth-crl-');
/** The --data-dir of the apps whose start is refused: no tree is needed there, and none is ever read. */
const NEVER_OPENED = path.join(scratch.dir, 'never-opened');
const TEAM = '/v2/team/app/tags/list';

let pki!: Pki;
/** In group dev (team/* may be pulled): ci stays valid, former is revoked before the start. */
let ci!: KeyPair;
let former!: KeyPair;
let counter = 0;

before(() => {
  pki = makePki(path.join(scratch.dir, 'pki'));
  ci = pki.client('ci.example.com');
  former = pki.client('ci.example.com');
  pki.revoke(former);
});
after(() => scratch.cleanup());

/** A CRL file of the test CA as it stands now, at a path of its own (so a test can rewrite it). */
function currentCrl(): string {
  return pki.crl(path.join(scratch.dir, `crl-${++counter}.pem`));
}

function crlFlags(crl: string, extra: Flags = {}): Flags {
  return {
    'tls.cert': pki.server.cert,
    'tls.key': pki.server.key,
    'tls.clientCa': pki.ca,
    'tls.clientCrl': crl,
    'auth.groups': JSON.stringify(GROUPS),
    access: JSON.stringify(RULES),
    'auth.failedLogins.limit': '1000000',
    ...extra,
  };
}

const get = (port: number, client?: KeyPair) => httpsGet(pki.ca, port, TEAM, client ? { client } : {});

async function assertRevoked(port: number, client: KeyPair): Promise<void> {
  const error = assertOciError(await get(port, client), 401, 'UNAUTHORIZED');
  assert.match(error.message, /^the client certificate was not accepted \(.*revoked.*\)$/i);
}

// On one back end: the start is refused before any tree is opened.
describe('CRL files that would lock every client out are refused, naming tls.clientCrl', () => {
  test('at start', () => {
    const garbage = path.join(scratch.dir, 'garbage.pem');
    writeFileSync(garbage, 'not a CRL\n');
    const cases: [string, string, RegExp][] = [
      ['missing', path.join(scratch.dir, 'missing-crl.pem'), /cannot read/],
      ['garbage', garbage, /holds no PEM CRL/],
      [
        'another CA',
        pki.crl(path.join(scratch.dir, 'other-crl.pem'), { otherCa: true }),
        /has no CRL issued by CN=derrick test CA/,
      ],
      [
        'expired',
        pki.crl(path.join(scratch.dir, 'expired-crl.pem'), { expired: true }),
        /expired at 2020-01-02T00:00:00\.000Z/,
      ],
      ['without a CA', currentCrl(), /needs tls\.clientCa/],
    ];
    for (const [what, file, message] of cases) {
      const flags = crlFlags(file);
      if (what === 'without a CA') delete flags['tls.clientCa'];
      assert.throws(
        () => serveApp(NEVER_OPENED, flags),
        (error: Error) =>
          error.name === 'AuthConfigError' &&
          error.message.startsWith('tls.clientCrl: ') &&
          message.test(error.message),
        what,
      );
    }
  });
});

// On one back end: a TlsReloader alone, no app and no tree.
describe('a CRL that expires while serving', () => {
  test('is reported as an error when connections arrive, once an hour, not on every connection', () => {
    let onConnection = (): void => {};
    const server: SecureServer = {
      prependListener: (_event, listener) => (onConnection = listener),
      setSecureContext: () => {},
    };
    const errors: [object, string][] = [];
    const log = {
      info: () => {},
      error: (object: object, message: string) => errors.push([object, message]),
    };
    const config = serveConfig(NEVER_OPENED, crlFlags(currentCrl()));
    assert.ok(config.tls);
    new TlsReloader(server, config.tls, log, new Date(Date.now() - 1000));
    onConnection();
    onConnection();
    assert.equal(errors.length, 1);
    assert.match(errors[0]?.[1] ?? '', /a client CRL has expired: client certificates of its CA are refused/);
    assert.deepEqual(Object.keys(errors[0]?.[0] ?? {}), ['crl', 'expired']);
  });
});

for (const backend of BACKENDS)
  describe(backend, () => {
    let tree!: AuthTreeOn;
    const apps: FastifyInstance[] = [];

    before(async () => {
      tree = await authTreeOn(backend, path.join(scratch.dir, backend));
    });

    after(async () => {
      await Promise.all(apps.map((app) => app.close()));
      await tree.remove();
    });

    async function started(flags: Flags): Promise<{ app: FastifyInstance; port: number }> {
      const app = await serveTree(tree.dataDir, flags);
      apps.push(app);
      return { app, port: await listenLocal(app) };
    }

    /** A server whose CRL file is a copy of the current CRL, at `name`, for the test to rewrite. */
    async function startedOnCopy(name: string): Promise<{ served: string; port: number }> {
      const served = path.join(scratch.dir, backend, name);
      copyFileSync(currentCrl(), served);
      const { port } = await started(crlFlags(served));
      return { served, port };
    }

    describe('a revoked client certificate', () => {
      test('is refused with 401 like one that does not verify; the others are served', async () => {
        const { port } = await started(crlFlags(currentCrl()));
        await assertRevoked(port, former);
        assert.equal((await get(port, ci)).statusCode, 200);
      });

      test('a CRL rewritten with a new revocation applies to the next connection (> 1 s later), no restart', async () => {
        const { served, port } = await startedOnCopy('served-crl.pem');
        const victim = pki.client('ci.example.com');
        assert.equal((await get(port, victim)).statusCode, 200);
        pki.revoke(victim);
        copyFileSync(currentCrl(), served);
        await sleep(1100);
        await assertRevoked(port, victim);
        assert.equal((await get(port, ci)).statusCode, 200);
      });

      test('a CRL added by a reload applies to the next connection (and one taken away, too): no restart', async () => {
        const withoutCrl = crlFlags('');
        delete withoutCrl['tls.clientCrl'];
        const { app, port } = await started(withoutCrl);
        assert.equal(
          (await get(port, former)).statusCode,
          200,
          'no CRL yet: the revoked certificate still verifies',
        );
        assert.deepEqual(reloadApp(app, serveConfig(tree.dataDir, crlFlags(currentCrl()))), []);
        await assertRevoked(port, former);
        assert.deepEqual(reloadApp(app, serveConfig(tree.dataDir, withoutCrl)), []);
        assert.equal((await get(port, former)).statusCode, 200);
      });

      test('requireClientCert: the handshake of a revoked certificate fails', async () => {
        const { port } = await started(crlFlags(currentCrl(), { 'tls.requireClientCert': 'true' }));
        await assert.rejects(get(port, former));
        assert.equal((await get(port, ci)).statusCode, 200);
      });
    });

    describe('CRL files that would lock every client out are refused, naming tls.clientCrl', () => {
      test('on reload, and the CRL in force stays', async () => {
        const { app, port } = await started(crlFlags(currentCrl()));
        const expired = pki.crl(path.join(scratch.dir, 'expired-reload.pem'), { expired: true });
        assert.throws(
          () => reloadApp(app, serveConfig(tree.dataDir, crlFlags(expired))),
          (error: Error) =>
            error.name === 'AuthConfigError' && /^tls\.clientCrl: .*expired/.test(error.message),
        );
        await assertRevoked(port, former);
        assert.equal((await get(port, ci)).statusCode, 200);
      });

      test('rewritten in place while serving: logged, and the CRL in force stays', async () => {
        const { served, port } = await startedOnCopy('served-expired.pem');
        pki.crl(served, { expired: true });
        await sleep(1100);
        await assertRevoked(port, former);
        assert.equal((await get(port, ci)).statusCode, 200);
      });
    });
  });
