/**
 * gc on S3 without a lock service: an age rule on LastModified, which the store itself keeps.
 *
 * The rule: gc deletes only objects that no record references AND that were last modified before its cutoff,
 * now − minAgeSeconds. Every object a publisher will reference is young while it publishes: either it uploads it
 * (LastModified = now), or it reuses one already stored and calls keep(), which renews the LastModified of an
 * object older than half the default age (a copy onto itself). So with the default minimum age (an hour) a
 * publisher has half an hour from keep() to writing its record before a concurrent gc could take what it relies
 * on; a gc with a shorter minimum age is not safe while publishes run. Clocks: the cutoff is this machine's time,
 * LastModified the store's, so they must agree to well within that half hour.
 */
import {
  AbortMultipartUploadCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { DEFAULT_GC_MIN_AGE_SECONDS, type GcWindow, type ObjectInfo } from '../backend.ts';

/** keep() renews objects older than this. */
export const KEEP_REFRESH_SECONDS = DEFAULT_GC_MIN_AGE_SECONDS / 2;

export function beginGc(minAgeSeconds: number, now = new Date()): GcWindow {
  const cutoff = new Date(now.getTime() - minAgeSeconds * 1000);
  const safe =
    minAgeSeconds >= DEFAULT_GC_MIN_AGE_SECONDS
      ? ''
      : ` (shorter than the ${DEFAULT_GC_MIN_AGE_SECONDS} s publishers are built for: not safe while publishes run)`;
  return {
    cutoff,
    rule: `on S3, gc deletes only unreferenced objects last modified more than ${minAgeSeconds} s ago${safe}; publishers renew what they reuse, so nothing a running publish relies on is that old`,
    release: () => Promise.resolve(),
  };
}

/** Whether keep() must renew the object: it is old enough that a gc could take it before the publish ends. */
export function needsRefresh(info: ObjectInfo, now = Date.now()): boolean {
  return now - info.modified.getTime() > KEEP_REFRESH_SECONDS * 1000;
}

/** Aborts the multipart uploads under `prefix` begun before `cutoff` (interrupted publishers' parts). */
export async function sweepUploads(
  client: S3Client,
  bucket: string,
  prefix: string,
  cutoff: Date,
  dryRun: boolean,
): Promise<{ count: number; bytes: number }> {
  let count = 0;
  let bytes = 0;
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  do {
    const page = await client.send(
      new ListMultipartUploadsCommand({
        Bucket: bucket,
        Prefix: prefix,
        ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
        ...(uploadIdMarker === undefined ? {} : { UploadIdMarker: uploadIdMarker }),
      }),
    );
    for (const upload of page.Uploads ?? []) {
      const { Key, UploadId, Initiated } = upload;
      if (Key === undefined || UploadId === undefined || Initiated === undefined || Initiated >= cutoff)
        continue;
      count++;
      bytes += await uploadedBytes(client, bucket, Key, UploadId);
      if (!dryRun) await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId }));
    }
    const more = page.IsTruncated === true;
    keyMarker = more ? page.NextKeyMarker : undefined;
    uploadIdMarker = more ? page.NextUploadIdMarker : undefined;
  } while (keyMarker !== undefined);
  return { count, bytes };
}

async function uploadedBytes(
  client: S3Client,
  bucket: string,
  key: string,
  uploadId: string,
): Promise<number> {
  let bytes = 0;
  let marker: string | undefined;
  do {
    const page = await client.send(
      new ListPartsCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        ...(marker === undefined ? {} : { PartNumberMarker: marker }),
      }),
    );
    for (const part of page.Parts ?? []) bytes += part.Size ?? 0;
    marker = page.IsTruncated === true ? page.NextPartNumberMarker : undefined;
  } while (marker !== undefined);
  return bytes;
}
