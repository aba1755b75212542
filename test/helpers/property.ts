/**
 * Running fast-check properties the same way in every test/property file: a fixed seed by default (so a failure
 * in CI is the same failure on a laptop), FUZZ_SEED and FUZZ_RUNS to change it (`npm run fuzz` runs 100,000 cases
 * per property with a random seed), and a failure message that says exactly how to run it again.
 */
import path from 'node:path';
import fc from 'fast-check';
import { REPO_ROOT } from './cli.ts';

export { fc };

/** The seed every property of a run starts from (fast-check takes a 32-bit integer). */
export const FUZZ_SEED = process.env.FUZZ_SEED === undefined ? 20261201 : Number(process.env.FUZZ_SEED) | 0;

const FUZZ_RUNS = process.env.FUZZ_RUNS === undefined ? undefined : Number(process.env.FUZZ_RUNS);
if (FUZZ_RUNS !== undefined && !(Number.isInteger(FUZZ_RUNS) && FUZZ_RUNS > 0))
  throw new Error(`FUZZ_RUNS must be a positive integer, got "${process.env.FUZZ_RUNS ?? ''}"`);

/** Cases per property: FUZZ_RUNS when set, else the property's own default (small for the normal suite). */
export function runsFor(defaultRuns: number): number {
  return FUZZ_RUNS ?? defaultRuns;
}

export interface HoldsOptions {
  /** `import.meta.filename` of the test file, for the reproduction command. */
  file: string;
  /** Cases in the normal suite (FUZZ_RUNS overrides it); 1,000 unless the property is slow. */
  runs?: number;
  /** A case still running after this long fails as hung (generous: this detects hangs, it times nothing). */
  timeoutMs?: number;
}

/**
 * Checks `property` for runsFor(runs) cases from FUZZ_SEED. On failure, throws fast-check's report (the shrunk
 * counterexample, seed and path) followed by the command that replays it.
 */
export async function holds<T>(
  property: fc.IProperty<T> | fc.IAsyncProperty<T>,
  { file, runs = 1000, timeoutMs }: HoldsOptions,
): Promise<void> {
  const numRuns = runsFor(runs);
  try {
    await fc.assert(property, {
      seed: FUZZ_SEED,
      numRuns,
      endOnFailure: false,
      ...(timeoutMs === undefined ? {} : { plugins: [fc.timeout(timeoutMs)] }),
    });
  } catch (error) {
    const relative = path.relative(REPO_ROOT, file);
    const replay = `FUZZ_SEED=${FUZZ_SEED} FUZZ_RUNS=${numRuns} node --import tsx --test ${relative}`;
    const cause = (error as Error).cause;
    const why = cause instanceof Error ? `\n\nThe property failed with: ${cause.message}` : '';
    throw new Error(`${(error as Error).message}${why}\n\nReproduce with: ${replay}`, { cause: error });
  }
}
