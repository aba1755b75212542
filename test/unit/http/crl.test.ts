/**
 * Reading CRLs (issuer, nextUpdate) and checking a CRL file against the client CA bundle, on CRLs and certificates
 * made by the real openssl: what parses, which CA a CRL belongs to, and each way the file is refused.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { checkCrls, crlFacts, subjectOf } from '../../../src/http/crl.ts';
import { tempDir } from '../../helpers/cli.ts';
import { makePki, type KeyPair, type Pki } from '../../helpers/pki.ts';

const scratch = tempDir('derrick-crl-');
after(() => scratch.cleanup());

let pki!: Pki;
let revoked!: KeyPair;
let crl = '';
let otherCrl = '';
let expiredCrl = '';
let otherCa = '';

const derOf = (pem: string): Buffer =>
  Buffer.from(/-----BEGIN X509 CRL-----([\s\S]+?)-----END X509 CRL-----/.exec(pem)?.[1] ?? '', 'base64');

before(() => {
  pki = makePki(path.join(scratch.dir, 'pki'));
  revoked = pki.client('revoked.example.com');
  pki.revoke(revoked);
  crl = readFileSync(pki.crl(path.join(scratch.dir, 'crl.pem')), 'utf8');
  otherCrl = readFileSync(pki.crl(path.join(scratch.dir, 'other.pem'), { otherCa: true }), 'utf8');
  expiredCrl = readFileSync(pki.crl(path.join(scratch.dir, 'expired.pem'), { expired: true }), 'utf8');
  otherCa = readFileSync(path.join(pki.dir, 'other-ca', 'ca.pem'), 'utf8');
});

describe('crlFacts', () => {
  test('the issuer is the CA’s subject, byte for byte, and nextUpdate is what openssl says', () => {
    const facts = crlFacts(derOf(crl));
    const ca = new X509Certificate(readFileSync(pki.ca));
    assert.ok(facts.issuer.equals(subjectOf(ca)));
    const said = execFileSync('openssl', [
      'crl',
      '-noout',
      '-nextupdate',
      '-in',
      path.join(scratch.dir, 'crl.pem'),
    ])
      .toString()
      .trim()
      .replace(/^nextUpdate=/, '');
    assert.equal(facts.nextUpdate?.getTime(), new Date(said).getTime());
    assert.equal(crlFacts(derOf(expiredCrl)).nextUpdate?.toISOString(), '2020-01-02T00:00:00.000Z');
  });

  test('another CA’s CRL names another issuer', () => {
    const ca = new X509Certificate(readFileSync(pki.ca));
    assert.ok(!crlFacts(derOf(otherCrl)).issuer.equals(subjectOf(ca)));
  });

  test('truncated or foreign DER is an error, not a crash', () => {
    const der = derOf(crl);
    for (const bad of [
      der.subarray(0, 20),
      der.subarray(0, der.length - 1),
      Buffer.from([0x30]),
      Buffer.alloc(0),
    ])
      assert.throws(() => crlFacts(bad), /truncated DER|not a CRL/);
    const certificate = new X509Certificate(readFileSync(pki.ca)).raw;
    assert.throws(() => crlFacts(certificate), /not a CRL/);
  });
});

describe('checkCrls against the client CA certificates', () => {
  const now = new Date();
  const ca = (): X509Certificate[] => [new X509Certificate(readFileSync(pki.ca))];

  test('a current CRL from the one CA: accepted, with its expiry', () => {
    const check = checkCrls(crl, ca(), now);
    assert.ok(check.ok);
    assert.equal(check.expires?.getTime(), crlFacts(derOf(crl)).nextUpdate?.getTime());
  });

  test('two CAs: each needs its CRL, and the earliest expiry is reported', () => {
    const bundle = [...ca(), new X509Certificate(otherCa)];
    const missing = checkCrls(crl, bundle, now);
    assert.ok(!missing.ok);
    assert.match(missing.problem, /has no CRL issued by CN=another CA: every CA in tls.clientCa/);
    const both = checkCrls(crl + otherCrl, bundle, now);
    assert.ok(both.ok);
    const expiries = [crl, otherCrl].map((pem) => crlFacts(derOf(pem)).nextUpdate?.getTime() ?? Infinity);
    assert.equal(both.expires?.getTime(), Math.min(...expiries));
  });

  const refused: [string, () => string, RegExp][] = [
    ['no CRL in the file', () => 'not a CRL\n', /^holds no PEM CRL/],
    ['only another CA’s CRL', () => otherCrl, /^has no CRL issued by CN=derrick test CA/],
    ['an expired CRL', () => expiredCrl, /expired at 2020-01-02T00:00:00\.000Z .*put a fresh CRL in place$/],
    [
      'a CRL block that is not DER',
      () => '-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n',
      /^CRL 1 cannot be read: /,
    ],
  ];
  for (const [what, pem, message] of refused)
    test(`${what}: refused, saying why`, () => {
      const check = checkCrls(pem(), ca(), now);
      assert.ok(!check.ok);
      assert.match(check.problem, message);
    });
});
