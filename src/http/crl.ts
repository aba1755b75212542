/**
 * Certificate revocation lists for mutual TLS (`tls.clientCrl`). OpenSSL, as Node sets it up, checks the CRL of
 * every certificate authority in a client's chain: a CA without a CRL, or a CRL past its nextUpdate, makes every
 * certificate that CA vouches for fail. So the file is checked when read — each CRL parses, each CA in
 * `tls.clientCa` has one, none has expired — and refused with the reason rather than locking every client out.
 * Node parses certificates but not CRLs, hence the few lines of DER reading below (issuer and nextUpdate only).
 */
import type { X509Certificate } from 'node:crypto';
import { pemBlocks, pemDer } from '../auth/config-files.ts';

/** One DER element: its tag, where it begins (its tag byte), and where its contents start and end. */
interface Element {
  tag: number;
  at: number;
  start: number;
  end: number;
}

function element(der: Buffer, at: number, limit: number): Element {
  const tag = der[at];
  let lengthByte = der[at + 1];
  if (tag === undefined || lengthByte === undefined) throw new Error('truncated DER');
  let start = at + 2;
  let length = lengthByte;
  if (lengthByte & 0x80) {
    const count = lengthByte & 0x7f;
    if (count === 0 || count > 4) throw new Error('unsupported DER length');
    length = 0;
    for (let i = 0; i < count; i++) {
      lengthByte = der[start + i];
      if (lengthByte === undefined) throw new Error('truncated DER');
      length = length * 256 + lengthByte;
    }
    start += count;
  }
  const end = start + length;
  if (end > limit) throw new Error('truncated DER');
  return { tag, at, start, end };
}

/** The elements directly inside a constructed element. */
function children(der: Buffer, parent: Element): Element[] {
  const list: Element[] = [];
  for (let at = parent.start; at < parent.end;) {
    const child = element(der, at, parent.end);
    list.push(child);
    at = child.end;
  }
  return list;
}

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const UTC_TIME = 0x17;
const GENERALIZED_TIME = 0x18;

function time(der: Buffer, item: Element): Date {
  const text = der.subarray(item.start, item.end).toString('latin1');
  const match =
    item.tag === UTC_TIME
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
      : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!match) throw new Error(`unreadable time ${JSON.stringify(text)}`);
  const [, y, mo, d, h, mi, s] = match.map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const year = item.tag === UTC_TIME ? (y >= 50 ? 1900 + y : 2000 + y) : y;
  return new Date(Date.UTC(year, mo - 1, d, h, mi, s));
}

export interface CrlFacts {
  /** The issuer Name, DER, as it must appear as the subject of the CA that signed it. */
  issuer: Buffer;
  nextUpdate: Date | undefined;
}

/** The issuer and nextUpdate of a DER CRL (RFC 5280 §5.1). */
export function crlFacts(der: Buffer): CrlFacts {
  const outer = element(der, 0, der.length);
  if (outer.tag !== SEQUENCE) throw new Error('not a CRL');
  const tbs = children(der, outer)[0];
  if (tbs?.tag !== SEQUENCE) throw new Error('not a CRL');
  const fields = children(der, tbs);
  let i = fields[0]?.tag === INTEGER ? 1 : 0; // version (v2 CRLs only)
  i++; // signature algorithm
  const issuer = fields[i++];
  const thisUpdate = fields[i++];
  if (issuer?.tag !== SEQUENCE || (thisUpdate?.tag !== UTC_TIME && thisUpdate?.tag !== GENERALIZED_TIME))
    throw new Error('not a CRL');
  const next = fields[i];
  const nextUpdate =
    next !== undefined && (next.tag === UTC_TIME || next.tag === GENERALIZED_TIME)
      ? time(der, next)
      : undefined;
  return { issuer: der.subarray(issuer.at, issuer.end), nextUpdate };
}

/** The subject Name of a certificate, DER (RFC 5280 §4.1). */
export function subjectOf(certificate: X509Certificate): Buffer {
  const der = certificate.raw;
  const tbs = children(der, element(der, 0, der.length))[0];
  if (tbs?.tag !== SEQUENCE) throw new Error('not a certificate');
  const fields = children(der, tbs);
  const first = fields[0]?.tag === 0xa0 ? 1 : 0; // [0] version
  const subject = fields[first + 4]; // serial, signature, issuer, validity, subject
  if (subject?.tag !== SEQUENCE) throw new Error('not a certificate');
  return der.subarray(subject.at, subject.end);
}

export type CrlCheck = { ok: false; problem: string } | { ok: true; expires: Date | undefined };

/**
 * Checks a PEM CRL file against the client CA certificates at `now`: what is wrong with it and how to fix it, or when
 * the first of the CAs' CRLs expires (its nextUpdate; from then on, that CA's certificates are refused).
 */
export function checkCrls(crlPem: string, cas: readonly X509Certificate[], now: Date): CrlCheck {
  const crls: CrlFacts[] = [];
  for (const [n, block] of pemBlocks(crlPem, 'X509 CRL').entries()) {
    try {
      crls.push(crlFacts(pemDer(block)));
    } catch (error) {
      return { ok: false, problem: `CRL ${n + 1} cannot be read: ${(error as Error).message}` };
    }
  }
  if (crls.length === 0) return { ok: false, problem: 'holds no PEM CRL (-----BEGIN X509 CRL-----)' };
  let expires: Date | undefined;
  for (const ca of cas) {
    const name = ca.subject.replace(/\n/g, ', ');
    const subject = subjectOf(ca);
    const crl = crls.find((candidate) => candidate.issuer.equals(subject));
    if (!crl)
      return {
        ok: false,
        problem: `has no CRL issued by ${name}: every CA in tls.clientCa needs a current CRL, or no client certificate it issued verifies`,
      };
    const next = crl.nextUpdate;
    if (next !== undefined && next.getTime() <= now.getTime())
      return {
        ok: false,
        problem: `holds the CRL of ${name} that expired at ${next.toISOString()} (its nextUpdate): no client certificate that CA issued would verify; put a fresh CRL in place`,
      };
    if (next !== undefined && (expires === undefined || next < expires)) expires = next;
  }
  return { ok: true, expires };
}
