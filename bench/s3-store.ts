/**
 * The object store of the S3 benchmarks (bench/s3-measures.ts): a real Ceph RGW on loopback, and the few bucket
 * operations the harness needs with the official SDK (@aws-sdk/client-s3).
 *
 * Which RGW: `BENCH_S3_ENV=<file>` reuses a running one (a file of `export S3_ENDPOINT=…` lines, as
 * start-s3.sh writes; stopping it is not ours); otherwise `startS3` starts one of its own under the work directory,
 * on ports of its own, and `stopS3` stops it. Starting goes through `S3_START` alone, so moving to the project's
 * own script is a change of one line.
 */
import { createReadStream, existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { runCommand } from './fixtures.ts';
import { log } from './summary.ts';

/** The script that starts an RGW into DIR and prints `export S3_…=…` lines, and the one that stops it. */
const S3_SCRIPT = path.join(import.meta.dirname, '..', 'scripts', 's3.sh');
const S3_START = { start: [S3_SCRIPT, 'start'], stop: [S3_SCRIPT, 'stop'] } as const;

export interface S3Endpoint {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** Where our own RGW lives (undefined when reused: not ours to stop). */
  dir?: string;
  /** The RGW's and its OSD's pids when ours (their CPU is part of what a request costs). */
  pids: number[];
  /** The cluster's ceph.conf when known (start-s3.sh's DIR): radosgw-admin can then reclaim deleted objects. */
  cephConf?: string;
}

function parseEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const match of text.matchAll(/^(?:export\s+)?(S3_[A-Z_]+)=(\S*)$/gm))
    if (match[1] && match[2] !== undefined) out[match[1]] = match[2];
  return out;
}

function endpointOf(vars: Record<string, string>, from: string, dir?: string): S3Endpoint {
  const cephConf = path.join(dir ?? path.dirname(from), 'ceph.conf');
  const { S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION } = vars;
  if (!S3_ENDPOINT || !S3_ACCESS_KEY || !S3_SECRET_KEY)
    throw new Error(`bench: ${from} names no S3_ENDPOINT, S3_ACCESS_KEY and S3_SECRET_KEY`);
  const pids: number[] = [];
  if (dir)
    for (const daemon of ['rgw.a', 'osd.0']) {
      const pid = Number(readFileSync(path.join(dir, 'run', `${daemon}.pid`), 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0) pids.push(pid);
    }
  return {
    endpoint: S3_ENDPOINT,
    accessKeyId: S3_ACCESS_KEY,
    secretAccessKey: S3_SECRET_KEY,
    region: S3_REGION ?? 'us-east-1',
    ...(dir ? { dir } : {}),
    pids,
    ...(existsSync(cephConf) ? { cephConf } : {}),
  };
}

async function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return (await runCommand(command, args, env)).stdout;
}

/** The RGW to use: the one BENCH_S3_ENV names, or a fresh one under `<workDir>/s3` on free ports. */
export async function startS3(workDir: string): Promise<S3Endpoint> {
  const reuse = process.env.BENCH_S3_ENV;
  if (reuse) {
    log(`S3: reusing the RGW of ${reuse}`);
    return endpointOf(parseEnv(readFileSync(reuse, 'utf8')), reuse);
  }
  const dir = path.join(workDir, 's3');
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    // start-s3.sh wants a port for RGW, two for the monitor and 100 for the OSD: a block of 120 of our own.
    const base = 42000 + 120 * Math.floor(Math.random() * 150);
    const env = {
      ...process.env,
      S3_PORT: String(base),
      CEPH_MON_PORT: String(base + 2),
      CEPH_OSD_PORT_MIN: String(base + 10),
    };
    try {
      const started = Date.now();
      const stdout = await run(S3_START.start[0], [S3_START.start[1], dir], env);
      log(`S3: started Ceph RGW (memstore) in ${((Date.now() - started) / 1000).toFixed(1)} s under ${dir}`);
      ours.add(dir);
      return endpointOf(parseEnv(stdout), path.join(dir, 's3.env'), dir);
    } catch (error) {
      lastError = error;
      await stopS3({ dir });
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

/** The RGWs startS3 started and stopS3 has not stopped (its daemons outlive the script: not our children). */
const ours = new Set<string>();

/** Stops the RGW startS3 started (a reused one is left running). */
export async function stopS3(s3: { dir?: string } | undefined): Promise<void> {
  if (!s3?.dir) return;
  ours.delete(s3.dir);
  await run(S3_START.stop[0], [S3_START.stop[1], s3.dir], process.env).catch(() => undefined);
}

/** Stops every RGW startS3 started and stopS3 has not stopped yet (errors, SIGINT). */
export async function stopAllS3(): Promise<void> {
  await Promise.all([...ours].map((dir) => stopS3({ dir })));
}

/**
 * Makes the RGW free the space of deleted objects now: it keeps the parts of a deleted multipart object for its
 * garbage collector, two hours by default, and a memstore OSD of 4 GiB fills after a few GiB-sized rounds.
 * Needs the cluster's ceph.conf (start-s3.sh's DIR); without it, nothing is done.
 */
export async function reclaimSpace(s3: S3Endpoint): Promise<void> {
  if (!s3.cephConf) return;
  await run('radosgw-admin', ['-c', s3.cephConf, 'gc', 'process', '--include-all'], process.env);
}

/**
 * The environment a derrick or the SDK is given to reach the RGW: the standard AWS variables (no profile, no
 * shared files), and no AWS_CA_BUNDLE (a plain-HTTP endpoint; Go programs refuse to start with it).
 */
export function awsEnv(s3: S3Endpoint): Record<string, string> {
  return {
    AWS_ENDPOINT_URL: s3.endpoint,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_REGION: s3.region,
  };
}

/** process.env without what would point a child at another account or store, plus `awsEnv(s3)`. */
export function childEnv(s3: S3Endpoint): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([key]) => !key.startsWith('AWS_') && !key.startsWith('DERRICK_') && !key.startsWith('REGISTRY_'),
    ),
  );
  return { ...env, ...awsEnv(s3), AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' };
}

export function s3Client(s3: S3Endpoint): S3Client {
  // As derrick does (src/store/s3/s3-client.ts): the SDK's Node 20 notice is not for whoever reads this output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 5,
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Bucket operations

export async function ensureBucket(client: S3Client, bucket: string): Promise<void> {
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (error) {
    const name = (error as { name?: string }).name;
    if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw error;
  }
}

/** Runs `work` on every item, `concurrency` at a time. */
export async function pool<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>) {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

export interface PutItem {
  key: string;
  body: Uint8Array | string;
  contentType?: string;
}

/** PUTs every item, 64 at a time. */
export async function putAll(client: S3Client, bucket: string, items: readonly PutItem[]): Promise<void> {
  await pool(items, 64, async (item) => {
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: item.key,
        Body: item.body,
        ...(item.contentType ? { ContentType: item.contentType } : {}),
      }),
    );
  });
}

/** The body of an object, or undefined when it is absent. */
export async function getText(client: S3Client, bucket: string, key: string): Promise<string | undefined> {
  try {
    const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return await answer.Body?.transformToString();
  } catch (error) {
    if ((error as { name?: string }).name === 'NoSuchKey') return undefined;
    throw error;
  }
}

/** Deletes every object below `prefix`. */
export async function deletePrefix(client: S3Client, bucket: string, prefix: string): Promise<number> {
  let deleted = 0;
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    const keys = (page.Contents ?? []).flatMap((object) => (object.Key ? [{ Key: object.Key }] : []));
    if (keys.length > 0) {
      await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
      deleted += keys.length;
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return deleted;
}

/** Every regular file below `dir`, as `/`-separated paths relative to it. */
async function filesBelow(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() && !entry.isSymbolicLink()) continue;
    const full = path.join(entry.parentPath, entry.name);
    if (entry.isSymbolicLink() && !(await fs.stat(full)).isFile()) continue;
    out.push(path.relative(dir, full).split(path.sep).join('/'));
  }
  return out.sort();
}

/**
 * Uploads the published tree at `dir` (its `v2/` files, the same bytes) under `prefix` of the bucket, the way
 * copying a tree onto S3 leaves it: every key is the file's path below `dir`. `skip` leaves some out (the 1 GiB
 * image). Records are written last, as a publish would.
 */
export async function uploadTree(
  client: S3Client,
  bucket: string,
  prefix: string,
  dir: string,
  skip: (relative: string) => boolean = () => false,
): Promise<number> {
  const files = (await filesBelow(dir)).filter((file) => file.startsWith('v2/') && !skip(file));
  const records = files.filter((file) => file.startsWith('v2/app/'));
  const rest = files.filter((file) => !file.startsWith('v2/app/'));
  for (const batch of [rest, records])
    await pool(batch, 64, async (file) => {
      const full = path.join(dir, file);
      const { size } = await fs.stat(full);
      await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: `${prefix}${file}`,
          Body: size > 8 * 1024 * 1024 ? createReadStream(full) : await fs.readFile(full),
          ContentLength: size,
        }),
      );
    });
  return files.length;
}
