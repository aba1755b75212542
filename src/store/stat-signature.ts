/**
 * What tells, without reading a file, that it is no longer the one read last time: device, inode (a file renamed
 * into place), size, and modification and change times (a rewrite in place). One definition for every cache that
 * re-reads a file when it changes: records, the htpasswd file, the TLS files.
 */
import type { Stats } from 'node:fs';

export function statSignature(stat: Stats): string {
  return `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`;
}
