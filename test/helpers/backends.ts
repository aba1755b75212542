/**
 * Where a test's tree lives: one suite, two back ends. `freshTree('fs', t)` is a new temp directory,
 * `freshTree('s3', t)` a prefix in a new bucket of the test S3 server (Ceph RGW, started by scripts/s3.sh); both are
 * removed after the test. `env` is what a derrick child process needs to reach the tree.
 */
import type { TestContext } from 'node:test';
import { tempDir } from './cli.ts';
import { freshBucket, s3Env } from './s3.ts';

export type BackendName = 'fs' | 's3';
export const BACKENDS: readonly BackendName[] = ['fs', 's3'];

export interface TreeSpot {
  backend: BackendName;
  /** What `--data-dir` takes: a directory, or s3://<bucket>/<prefix>. */
  location: string;
  env: NodeJS.ProcessEnv;
  /** The bucket, for tests that reach behind the back end (S3 only). */
  bucket?: string;
}

export async function freshTree(backend: BackendName, t: Pick<TestContext, 'after'>): Promise<TreeSpot> {
  if (backend === 'fs') {
    const temp = tempDir('derrick-tree-');
    t.after(() => temp.cleanup());
    return { backend, location: `${temp.dir}/data`, env: {} };
  }
  const env = await s3Env();
  const bucket = await freshBucket(t);
  return { backend, location: `s3://${bucket}/tree`, env: { ...env }, bucket };
}
