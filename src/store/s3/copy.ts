/**
 * Server-side copies: a web link of content (`v2/content/…` → `v2/web/<name>/blobs/…`) and gc's refresh of an
 * object's LastModified (a copy onto itself). One CopyObject takes objects up to 5 GiB; larger ones are copied
 * part by part (UploadPartCopy), which like any multipart upload appears only at CompleteMultipartUpload.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';

/** S3's limit for one CopyObject. */
export const MAX_COPY_OBJECT_BYTES = 5 * 1024 ** 3;
const COPY_PART_BYTES = 1024 ** 3;
const MIN_PART_BYTES = 5 * 1024 ** 2;

export interface Copy {
  client: S3Client;
  bucket: string;
  /** Full keys in the bucket. */
  from: string;
  to: string;
  size: number;
  /** A copy onto itself to renew LastModified: S3 needs MetadataDirective REPLACE for that. */
  refresh: boolean;
}

/** CopySource is `bucket/key`, URL-encoded (keys of the tree hold `:` and `/`). */
const copySource = (bucket: string, key: string): string =>
  `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;

export async function copyObject(copy: Copy, multipartAbove = MAX_COPY_OBJECT_BYTES): Promise<void> {
  const { client, bucket, from, to } = copy;
  if (copy.size <= multipartAbove) {
    await client.send(
      new CopyObjectCommand({
        Bucket: bucket,
        Key: to,
        CopySource: copySource(bucket, from),
        ...(copy.refresh ? { MetadataDirective: 'REPLACE' } : {}),
      }),
    );
    return;
  }
  const partBytes = Math.min(COPY_PART_BYTES, Math.max(MIN_PART_BYTES, multipartAbove));
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: to }));
  try {
    const parts: CompletedPart[] = [];
    for (let start = 0, number = 1; start < copy.size; start += partBytes, number++) {
      const end = Math.min(start + partBytes, copy.size) - 1;
      const answer = await client.send(
        new UploadPartCopyCommand({
          Bucket: bucket,
          Key: to,
          UploadId,
          PartNumber: number,
          CopySource: copySource(bucket, from),
          CopySourceRange: `bytes=${start}-${end}`,
        }),
      );
      parts.push({ PartNumber: number, ETag: answer.CopyPartResult?.ETag });
    }
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: to,
        UploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
  } catch (error) {
    await client
      .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: to, UploadId }))
      .catch(() => undefined); // debris for sweepDebris
    throw error;
  }
}
