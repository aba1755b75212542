/**
 * Content digests (`sha256:<64 hex>`, `sha512:<128 hex>`), and hashing streams into them. Pure but for hashing.
 */
import { createHash, type Hash } from 'node:crypto';

export type DigestAlgorithm = 'sha256' | 'sha512';

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
const DIGEST = /^(sha256|sha512):([a-f0-9]+)$/;
/** Exactly the digests parseDigest accepts, for schemas. */
export const DIGEST_PATTERN = /^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

/** Parses a digest, or says why it is not one. Only sha256 and sha512 are accepted (the registered algorithms). */
export function parseDigest(digest: string): ParsedDigest | { error: string } {
  const match = DIGEST.exec(digest);
  if (!match) {
    return { error: `"${digest}" is not a digest (expected sha256:<64 lower-case hex> or sha512:<128 hex>)` };
  }
  const algorithm = match[1] as DigestAlgorithm;
  const hex = match[2] ?? '';
  if (hex.length !== HEX_LENGTH[algorithm]) {
    return { error: `"${digest}" has ${hex.length} hex digits; ${algorithm} has ${HEX_LENGTH[algorithm]}` };
  }
  return { algorithm, hex };
}

export function isDigest(value: string): boolean {
  return !('error' in parseDigest(value));
}

/** A hash that knows which algorithm it is for, so streams can be verified against any accepted digest. */
export function hasherFor(digest: string): { hash: Hash; algorithm: DigestAlgorithm } {
  const parsed = parseDigest(digest);
  const algorithm: DigestAlgorithm = 'error' in parsed ? 'sha256' : parsed.algorithm;
  return { hash: createHash(algorithm), algorithm };
}

/** The sha256 digest of some bytes, in `sha256:<hex>` form. */
export function sha256Digest(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The digest of some bytes with the algorithm of `like` (sha256 when `like` is not a digest). */
export function digestLike(like: string, bytes: Uint8Array): string {
  const { hash, algorithm } = hasherFor(like);
  return `${algorithm}:${hash.update(bytes).digest('hex')}`;
}
