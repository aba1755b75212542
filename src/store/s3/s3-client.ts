/**
 * The SDK client of an S3 tree, from the standard AWS chain: credentials from AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared files; region from AWS_REGION or the config file (us-east-1
 * when none is configured); endpoint from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL or the option.
 */
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';

export interface S3Options {
  /** Path-style URLs (`http://host/bucket/key`). Default: true when an endpoint is set, else false (AWS). */
  pathStyle?: boolean;
  /** The endpoint presigned URLs use (a CDN, a public name of the store); they are signed for that host. */
  presignEndpoint?: string;
  region?: string;
  /** The S3 endpoint; default AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the shared config, else AWS itself. */
  endpoint?: string;
  /** Attempts per request, with the SDK's standard backoff on throttling (SlowDown, 503) and network errors. */
  maxAttempts?: number;
  /** Keys per ListObjectsV2 page (S3's maximum, 1000, by default); smaller only to exercise paging in tests. */
  listPageSize?: number;
  /** Objects larger than this are copied part by part (UploadPartCopy); S3's limit for one CopyObject, 5 GiB, by default; smaller only in tests. */
  multipartCopyAbove?: number;
}

export const DEFAULT_MAX_ATTEMPTS = 5;
export const DEFAULT_REGION = 'us-east-1';

/** The endpoint the SDK will use, as people should read it in a message. */
export function endpointOf(options: S3Options): string | undefined {
  return options.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
}

async function configuredRegion(): Promise<string> {
  // The SDK's own region chain (AWS_REGION, AWS_PROFILE's region in the config file) fails when nothing is set;
  // a bucket on a local store does not care, so fall back to us-east-1 rather than refuse.
  const probe = new S3Client({});
  try {
    const region = await probe.config.region();
    return region === '' ? DEFAULT_REGION : region;
  } catch {
    return DEFAULT_REGION;
  } finally {
    probe.destroy();
  }
}

/** The client for requests and the one presigned URLs are signed with (the same one without presignEndpoint). */
export async function makeClients(options: S3Options): Promise<{ client: S3Client; signer: S3Client }> {
  // The SDK warns on every start under Node 20 (its future releases will need Node 22); derrick supports Node 20,
  // and that warning is not the operator's to act on.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const endpoint = endpointOf(options);
  const config: S3ClientConfig = {
    region: options.region ?? (await configuredRegion()),
    forcePathStyle: options.pathStyle ?? endpoint !== undefined,
    maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    retryMode: 'standard',
    // Stream bodies have no length up front; RGW answers 411 to the SDK's default trailing checksums.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
  };
  const client = new S3Client(config);
  const signer =
    options.presignEndpoint === undefined
      ? client
      : new S3Client({ ...config, endpoint: options.presignEndpoint });
  return { client, signer };
}
