/**
 * Repository-name globs as the configuration writes them (`team/*`, `cdn/**`), compiled with picomatch. picomatch
 * is loaded only when there is a glob to compile: start-up time is module loading.
 */
import { createRequire } from 'node:module';

export type NameTest = (name: string) => boolean;

/** One test per glob, in order. */
export function compileGlobs(globs: readonly string[], options: { dot?: boolean } = {}): NameTest[] {
  if (globs.length === 0) return [];
  const picomatch = createRequire(import.meta.url)('picomatch') as typeof import('picomatch');
  return globs.map((glob) => picomatch(glob, options));
}
