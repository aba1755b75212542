/**
 * A back end that cannot do what was asked for a reason outside the tree: the bucket does not exist, the
 * credentials are refused, the endpoint is down or throttling past its retries. The message is one line naming
 * the location and the fix; serve answers 503 with it in the log and recovers by itself when the store does.
 */
export class StorageError extends Error {
  /** True when waiting may help (endpoint down, throttled); false when the configuration must change. */
  readonly transient: boolean;

  constructor(message: string, options: { transient: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StorageError';
    this.transient = options.transient;
  }
}
