/**
 * A real S3 server for tests: Ceph RGW started by scripts/s3.sh, once per machine (the script holds a lock per
 * cluster directory, so two test processes starting it at once get one cluster; later runs find it running and
 * reuse it — `scripts/s3.sh stop` stops it). Nothing here is skipped: if Ceph cannot start, the test fails with
 * the script's reason. Each test gets its own bucket (freshBucket), emptied and deleted after it.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { openS3Backend, type S3Backend, type S3Options } from '../../src/store/s3/s3-backend.ts';
import { REPO_ROOT, run } from './cli.ts';

/** What a derrick child process needs in its environment to reach the test S3 server. */
export interface S3Env {
  AWS_ENDPOINT_URL: string;
  AWS_ACCESS_KEY_ID: string;
  AWS_SECRET_ACCESS_KEY: string;
  AWS_REGION: string;
}

export const S3_DIR = process.env.DERRICK_TEST_S3_DIR ?? path.join(os.tmpdir(), 'derrick-test-s3');
const SCRIPT = path.join(REPO_ROOT, 'scripts', 's3.sh');

let started: Promise<S3Env> | undefined;

/**
 * Starts the test cluster (or finds it running) and puts its endpoint and credentials into this process's
 * environment, where the SDK's standard chain finds them. Rejects with the script's output if Ceph cannot start.
 */
export function startS3(): Promise<S3Env> {
  started ??= (async () => {
    let printed: string;
    try {
      printed = (await run(SCRIPT, ['start', S3_DIR])).stdout;
    } catch (error) {
      throw new Error(
        `the test S3 server (Ceph RGW, scripts/s3.sh) could not start: ${(error as Error).message}`,
        { cause: error },
      );
    }
    const exported = new Map<string, string>();
    for (const match of printed.matchAll(/^export (\w+)=(.*)$/gm)) exported.set(match[1]!, match[2]!);
    const value = (name: string): string => {
      const found = exported.get(name);
      if (found === undefined) throw new Error(`scripts/s3.sh start printed no ${name}:\n${printed}`);
      return found;
    };
    const env: S3Env = {
      AWS_ENDPOINT_URL: value('AWS_ENDPOINT_URL'),
      AWS_ACCESS_KEY_ID: value('AWS_ACCESS_KEY_ID'),
      AWS_SECRET_ACCESS_KEY: value('AWS_SECRET_ACCESS_KEY'),
      AWS_REGION: value('AWS_REGION'),
    };
    Object.assign(process.env, env);
    // A profile or session token from the developer's own environment would take precedence or break signing.
    delete process.env.AWS_PROFILE;
    delete process.env.AWS_SESSION_TOKEN;
    delete process.env.AWS_ENDPOINT_URL_S3;
    return env;
  })();
  return started;
}

/** Undefined when the test S3 server runs (starting it if need be), else why it cannot (for the test to fail). */
export async function s3Available(): Promise<string | undefined> {
  try {
    await startS3();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** The environment for a derrick child process on the test S3 server. */
export async function s3Env(): Promise<S3Env> {
  return startS3();
}

export function s3Url(bucket: string, prefix = ''): URL {
  return new URL(prefix === '' ? `s3://${bucket}` : `s3://${bucket}/${prefix}`);
}

/** A plain SDK client on the test server, for what a test does behind the back end's back. */
export async function rawClient(): Promise<S3Client> {
  const env = await startS3();
  // As derrick does (src/store/s3/s3-client.ts): the SDK's Node 20 notice is not for whoever reads this output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return new S3Client({
    endpoint: env.AWS_ENDPOINT_URL,
    region: env.AWS_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** Every object of the bucket (key → ETag) and every unfinished multipart upload (`upload <key>`). */
export async function bucketSnapshot(bucket: string): Promise<Map<string, string>> {
  const client = await rawClient();
  try {
    const out = new Map<string, string>();
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          ...(token === undefined ? {} : { ContinuationToken: token }),
        }),
      );
      for (const object of page.Contents ?? []) out.set(object.Key ?? '', object.ETag ?? '');
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    for (const upload of uploads.Uploads ?? []) out.set(`upload ${upload.Key ?? ''}`, upload.UploadId ?? '');
    return out;
  } finally {
    client.destroy();
  }
}

/** Deletes every object and unfinished upload of `bucket`, then the bucket. */
export async function deleteBucket(client: S3Client, bucket: string): Promise<void> {
  for (;;) {
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    for (const { Key, UploadId } of uploads.Uploads ?? [])
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId }));
    if (uploads.IsTruncated !== true) break;
  }
  for (;;) {
    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
    const objects = (listed.Contents ?? []).map(({ Key }) => ({ Key }));
    if (objects.length === 0) break;
    await client.send(
      new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }),
    );
  }
  await client.send(new DeleteBucketCommand({ Bucket: bucket }));
}

/** A new, empty bucket for this test, deleted with everything in it after the test. */
export async function freshBucket(t: Pick<TestContext, 'after'>): Promise<string> {
  const client = await rawClient();
  const bucket = `derrick-test-${randomUUID().slice(0, 18)}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  t.after(async () => {
    try {
      await deleteBucket(client, bucket);
    } finally {
      client.destroy();
    }
  });
  return bucket;
}

/** The S3 back end over a fresh bucket (under `prefix`), closed after the test. */
export async function freshS3Backend(
  t: Pick<TestContext, 'after'>,
  prefix = 'tree',
  options: S3Options = {},
): Promise<S3Backend> {
  const bucket = await freshBucket(t);
  const backend = await openS3Backend(s3Url(bucket, prefix), options);
  t.after(() => backend.close());
  return backend;
}
