/**
 * One ListObjectsV2 page: from its presigned URL, parsed by lean-read.ts when the answer is plain, else through
 * the SDK (which retries, and whose errors the caller turns into StorageErrors). Either way the same shape.
 */
import { ListObjectsV2Command, type ListObjectsV2CommandInput, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { LeanReader, ListedItem } from './lean-read.ts';

/** How long the presigned URL of one listing is valid: it is used at once, once. */
const LISTING_URL_SECONDS = 60;

export async function listPage(
  client: S3Client,
  lean: LeanReader,
  input: ListObjectsV2CommandInput,
): Promise<{ objects: ListedItem[]; truncated: boolean }> {
  const plain = await lean.list(
    getSignedUrl(client, new ListObjectsV2Command(input), { expiresIn: LISTING_URL_SECONDS }),
  );
  if (plain !== undefined) return plain;
  const answer = await client.send(new ListObjectsV2Command(input));
  const objects = (answer.Contents ?? []).flatMap((object): ListedItem[] =>
    object.Key === undefined
      ? []
      : [
          {
            Key: object.Key,
            ETag: object.ETag ?? '',
            Size: object.Size ?? 0,
            LastModified: object.LastModified ?? new Date(0),
          },
        ],
  );
  return { objects, truncated: answer.IsTruncated === true };
}
