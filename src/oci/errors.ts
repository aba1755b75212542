/**
 * The distribution-spec error table: one place for every code derrick answers with on the wire.
 * docs/errors.md is checked against this table by a test.
 */
export const ERROR_CODES = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  TAG_INVALID: { status: 400, message: 'manifest tag did not match URI' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  RANGE_INVALID: { status: 416, message: 'invalid content range' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  UNKNOWN: { status: 500, message: 'unknown error' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * distribution's codes that the OCI spec does not list. The spec: "A `4XX` response code from the registry MAY
 * return a body in any format. If the response body is in JSON format, it MUST have the following format" and
 * "The `code` field MUST be one of the following" — so these are answered with the code and message as plain text.
 */
const UNLISTED: ReadonlySet<ErrorCode> = new Set(['PAGINATION_NUMBER_INVALID', 'RANGE_INVALID']);

/** Whether an error with this code is answered with the OCI JSON body (toBody), else as plain text (toText). */
export function hasJsonBody(code: ErrorCode): boolean {
  return !UNLISTED.has(code);
}

/** A protocol error: the one error class routes throw and the one handler turns into an OCI error body. */
export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Headers the answer carries (WWW-Authenticate, Retry-After). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, message?: string, detail?: unknown, headers: Record<string, string> = {}) {
    super(message ?? ERROR_CODES[code].message);
    this.name = 'RegistryError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.detail = detail;
    this.headers = headers;
  }

  toBody(): { errors: { code: ErrorCode; message: string; detail: unknown }[] } {
    return { errors: [{ code: this.code, message: this.message, detail: this.detail ?? null }] };
  }

  toText(): string {
    return `${this.code}: ${this.message}\n`;
  }
}
