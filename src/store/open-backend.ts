/**
 * The back end a `--data-dir` names: `s3://bucket/prefix` is a bucket (its SDK loaded only then, so that a tree on
 * a file system does not pay for it at start), anything else a directory.
 */
import type { Backend } from './backend.ts';
import { FsBackend } from './fs-backend.ts';
import { StorageError } from './storage-error.ts';

export interface S3Settings {
  addressing: 'auto' | 'path' | 'virtual';
  presignUrl?: string | undefined;
  maxAttempts: number;
}

export const DEFAULT_S3_SETTINGS: S3Settings = { addressing: 'auto', maxAttempts: 5 };

export interface BackendOptions {
  /** Directory listings of v2/app kept (file system; 0 for tools). */
  listingCache?: number;
  s3?: S3Settings;
}

export function isS3Location(location: string): boolean {
  return location.startsWith('s3://');
}

export async function openBackend(location: string, options: BackendOptions = {}): Promise<Backend> {
  if (!isS3Location(location)) return new FsBackend(location, { listingCache: options.listingCache ?? 0 });
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    throw new StorageError(
      location,
      'not a valid s3://<bucket>/<prefix> URL; fix --data-dir',
      'InvalidBucketName',
    );
  }
  const settings = options.s3 ?? DEFAULT_S3_SETTINGS;
  const { openS3Backend } = await import('./s3/s3-backend.ts');
  return openS3Backend(url, {
    ...(settings.addressing === 'auto' ? {} : { pathStyle: settings.addressing === 'path' }),
    ...(settings.presignUrl === undefined ? {} : { presignEndpoint: settings.presignUrl }),
    maxAttempts: settings.maxAttempts,
  });
}
