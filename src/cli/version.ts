/**
 * derrick's version, read from its package.json: two levels above this file both in src/cli (run from source)
 * and in dist/cli (built or installed), so `derrick --version` says what `npm version` last set.
 */
import { readFileSync } from 'node:fs';

export function packageVersion(): string {
  try {
    const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: unknown;
    };
    if (typeof manifest.version === 'string') return manifest.version;
  } catch {
    // A package.json that is missing or unreadable is no reason to refuse every other command.
  }
  return 'unknown';
}
