/**
 * Reading the files the configuration names (keys, certificates, CRLs, JWKS): one error shape for an unreadable
 * file, and one way to split PEM text into its blocks.
 */
import { readFileSync } from 'node:fs';
import { AuthConfigError } from './errors.ts';

/** The bytes of `file`, or an AuthConfigError naming `key` and why the file cannot be read. */
export function readConfigFile(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new AuthConfigError(key, `cannot read ${file}: ${(error as Error).message}`);
  }
}

/** The PEM blocks of `text` with the given label (`CERTIFICATE`, `X509 CRL`), or of any label. */
export function pemBlocks(text: string, label = '[A-Z0-9 ]+'): string[] {
  return text.match(new RegExp(`-----BEGIN ${label}-----[\\s\\S]+?-----END ${label}-----`, 'g')) ?? [];
}

/** The DER bytes of one PEM block. */
export function pemDer(block: string): Buffer {
  return Buffer.from(block.replace(/-----(?:BEGIN|END) [A-Z0-9 ]+-----/g, ''), 'base64');
}
