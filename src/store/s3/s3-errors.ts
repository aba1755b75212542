/**
 * What an S3 answer means for the tree: the few statuses the back end expects (absent, unchanged, conflict) and
 * one clear StorageError for everything else, so no SDK error or stack ever reaches an operator.
 */
import { StorageError } from '../storage-error.ts';

interface SdkError {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  errors?: unknown[];
  $metadata?: { httpStatusCode?: number };
}

function asSdkError(error: unknown): SdkError {
  return typeof error === 'object' && error !== null ? error : {};
}

/** The HTTP status of an S3 answer carried by an SDK error, if the request got an answer at all. */
export function statusOf(error: unknown): number | undefined {
  return asSdkError(error).$metadata?.httpStatusCode;
}

/** The S3 error code (`NoSuchKey`, `PreconditionFailed`, …), or the SDK's name for a body-less answer. */
export function codeOf(error: unknown): string | undefined {
  const e = asSdkError(error);
  return e.Code ?? e.name;
}

export const isNotFound = (error: unknown): boolean =>
  statusOf(error) === 404 && codeOf(error) !== 'NoSuchBucket';
/** 412: a precondition failed; 409 ConditionalRequestConflict: AWS's answer to a concurrent conditional write. */
export const isConflict = (error: unknown): boolean =>
  statusOf(error) === 412 || (statusOf(error) === 409 && codeOf(error) === 'ConditionalRequestConflict');
export const isNotModified = (error: unknown): boolean => statusOf(error) === 304;

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

/** The system error code of a failed connection, looking inside Node's AggregateError (happy eyeballs). */
function networkCode(error: unknown): string | undefined {
  const e = asSdkError(error);
  if (e.code && NETWORK_CODES.has(e.code)) return e.code;
  if (e.name === 'TimeoutError') return 'ETIMEDOUT';
  for (const inner of e.errors ?? []) {
    const code = networkCode(inner);
    if (code) return code;
  }
  return undefined;
}

/**
 * The StorageError for an S3 failure nobody above the back end can act on (it is already a StorageError: as
 * is). `endpoint` names the server for a connection failure.
 */
export function storageError(error: unknown, location: string, endpoint: string): StorageError {
  if (error instanceof StorageError) return error;
  const network = networkCode(error);
  if (network)
    return new StorageError(
      location,
      `the S3 endpoint ${endpoint} does not answer (${network}); start it, or fix AWS_ENDPOINT_URL`,
      'EndpointDown',
      { cause: error },
    );
  const status = statusOf(error);
  const code = codeOf(error) ?? 'Unknown';
  if (code === 'NoSuchBucket')
    return new StorageError(
      location,
      'the bucket does not exist (NoSuchBucket); create it or fix --data-dir',
      code,
      { cause: error },
    );
  if (status === 403 || code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch') {
    const which = code === 'Unknown' || code === '403' ? 'AccessDenied' : code;
    return new StorageError(
      location,
      `the S3 endpoint ${endpoint} refuses the credentials (${which}); check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and the bucket's policy`,
      'AccessDenied',
      { cause: error },
    );
  }
  if (status === 503 || code === 'SlowDown')
    return new StorageError(
      location,
      `the S3 endpoint ${endpoint} is throttling or unavailable (${code}, HTTP 503) and still was after every retry; try again later, or raise the S3 maxAttempts`,
      'SlowDown',
      { cause: error },
    );
  const detail = status === undefined ? code : `${code}, HTTP ${status}`;
  const message = asSdkError(error).message;
  const said = message && message !== 'UnknownError' && message !== code ? `: ${message}` : '';
  return new StorageError(location, `the S3 request failed (${detail})${said}`, code, { cause: error });
}
