/**
 * A tree's storage cannot be used as it is: its bucket does not exist, its credentials are refused, its endpoint
 * does not answer. The message is one sentence for the operator — where, what, and the fix — never a stack of the
 * storage library: `s3://bucket/prefix: the bucket does not exist (NoSuchBucket); create it or fix --data-dir`.
 */
export class StorageError extends Error {
  constructor(
    /** The tree as people name it (`s3://bucket/prefix`). */
    readonly location: string,
    /** What went wrong and what to do, without the location. */
    readonly reason: string,
    /** A short code for logs and tests: `NoSuchBucket`, `AccessDenied`, `EndpointDown`, `SlowDown`, … */
    readonly code: string,
    options?: ErrorOptions,
  ) {
    super(`${location}: ${reason}`, options);
    this.name = 'StorageError';
  }

  /** True when waiting may help (endpoint down, throttled, a server error); false when the configuration must change. */
  get transient(): boolean {
    return !PERMANENT.has(this.code);
  }
}

/** Codes that no wait cures: the bucket or the credentials must be fixed. */
const PERMANENT: ReadonlySet<string> = new Set(['NoSuchBucket', 'AccessDenied', 'InvalidBucketName']);
