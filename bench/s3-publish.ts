/**
 * The S3 group's publish measures (bench/s3-measures.ts):
 *
 * - publish → visible: three `derrick serve` replicas over one prefix of the bucket; each publish of a new tag is
 *   followed, the moment it returns, by a HEAD of that tag on every replica. Anything but 200 is a miss.
 * - publish throughput: `derrick publish` (the real CLI, start-up included) of an image with one random layer
 *   into a fresh prefix, against the SDK's own multipart upload of the same layer file (`sdkUpload`), both reading
 *   a warm page cache, alternating over 3 rounds, medians.
 */
import { spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { openSource } from '../src/publish/open-source.ts';
import { silentProgress } from '../src/publish/progress.ts';
import { publish } from '../src/publish/publisher.ts';
import { openBackend } from '../src/store/open-backend.ts';
import { Tree } from '../src/store/tree.ts';
import { derrickCli, layoutsOf, randomImageLayout, REPO_ROOT } from './fixtures.ts';
import { median } from './load.ts';
import { DERRICK_BUCKET } from './s3-fixtures.ts';
import { startDerrickS3 } from './s3-servers.ts';
import { awsEnv, childEnv, deletePrefix, pool, reclaimSpace, type S3Endpoint } from './s3-store.ts';
import { MANIFEST_ACCEPT, type BenchServer } from './servers.ts';
import { count, fmt, log } from './summary.ts';
import type { Fixtures, Row } from './types.ts';

const PREFIX = 'S3: ';

function elapsedMs(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e6;
}

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1] ?? Number.NaN;
}

/** `derrick <args>` with the RGW in the AWS variables; resolves with the milliseconds it took. */
function derrick(s3: S3Endpoint, args: string[]): Promise<number> {
  const cli = derrickCli();
  const started = process.hrtime.bigint();
  const child = spawn(cli.command, [...cli.args, ...args], {
    cwd: REPO_ROOT,
    env: childEnv(s3),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) =>
      code === 0
        ? resolve(elapsedMs(started))
        : reject(new Error(`derrick ${args.join(' ')} exited ${signal ?? code}: ${stderr}`)),
    );
  });
}

/**
 * One publish of `oci:<layout>:latest` as `name:tag` into the tree at `location`: the real CLI (`derrick publish`,
 * a process per publish, its start-up included).
 */
function publishTag(s3: S3Endpoint, location: string, layout: string, name: string, tag: string) {
  return derrick(s3, ['publish', `oci:${layout}:latest`, `${name}:${tag}`, '--data-dir', location, '-q']);
}

/**
 * The tree at `location`, opened in this process as the CLI opens it: the back end reads the standard AWS
 * variables, set here to the RGW's.
 */
async function openTree(s3: S3Endpoint, location: string): Promise<Tree> {
  for (const key of Object.keys(process.env))
    if (key.startsWith('AWS_')) Reflect.deleteProperty(process.env, key);
  Object.assign(process.env, awsEnv(s3));
  return new Tree(await openBackend(location));
}

/** One publish in this process, as `derrick publish` runs it (the same publish(), openSource and progress). */
async function publishInProcess(tree: Tree, layout: string, name: string, tag: string): Promise<number> {
  const started = process.hrtime.bigint();
  await publish({
    tree,
    openSource: () => openSource(`oci:${layout}:latest`, tree.backend.scratchDir),
    destinations: [{ name, tags: [tag] }],
    allTags: false,
    baseUrl: undefined,
    protected: undefined,
    lockTimeoutMs: 600_000,
    progress: silentProgress,
  });
  return elapsedMs(started);
}

function head(agent: http.Agent, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'HEAD', agent, headers: { accept: MANIFEST_ACCEPT } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

const VISIBLE = 'bench/visible';

export async function measureS3Visibility(
  fixtures: Fixtures,
  s3: S3Endpoint,
  client: S3Client,
  options: { publishes: number; workers: number | undefined },
): Promise<Row[]> {
  const prefix = 'visible/';
  const location = `s3://${DERRICK_BUCKET}/${prefix.slice(0, -1)}`;
  const layout = layoutsOf(fixtures).small;
  await deletePrefix(client, DERRICK_BUCKET, prefix);
  // The tree exists before the replicas start: one publish first.
  await publishTag(s3, location, layout, VISIBLE, 'initial');
  const replicas: BenchServer[] = [];
  const agents: http.Agent[] = [];
  const missed: string[] = [];
  const delays: number[] = [];
  const publishMs: number[] = [];
  const started = Date.now();
  const tree = await openTree(s3, location);
  try {
    for (let i = 0; i < 3; i++)
      replicas.push(
        await startDerrickS3(s3, {
          location,
          mode: 'serve',
          name: `replica ${i + 1}`,
          ...(options.workers === undefined ? {} : { workers: options.workers }),
        }),
      );
    for (const _ of replicas) agents.push(new http.Agent({ keepAlive: true, maxSockets: 1 }));
    for (let i = 0; i < options.publishes; i++) {
      const tag = `v${i}`;
      publishMs.push(await publishInProcess(tree, layout, VISIBLE, tag));
      const published = process.hrtime.bigint();
      const statuses = await Promise.all(
        replicas.map((replica, r) =>
          head(agents[r] as http.Agent, `${replica.url}/v2/${VISIBLE}/manifests/${tag}`),
        ),
      );
      delays.push(elapsedMs(published));
      statuses.forEach((status, r) => {
        if (status !== 200) missed.push(`${tag} on replica ${r + 1}: ${status}`);
      });
    }
  } finally {
    for (const agent of agents) agent.destroy();
    await Promise.all(replicas.map((replica) => replica.stop()));
    await tree.backend.close();
    await deletePrefix(client, DERRICK_BUCKET, prefix);
  }
  const n = count(options.publishes);
  log(
    `S3 publish → visible: ${n} publishes in ${fmt((Date.now() - started) / 1000)} s, ${missed.length} misses`,
  );
  return [
    {
      measure: `${PREFIX}publish → visible: misses in ${n} publishes × 3 replicas`,
      value: missed.length,
      unit: 'misses',
      target: '0 misses, checked on every replica',
      met: missed.length === 0,
      note: `3 derrick serve (serve mode) over ${location}; the first publish with the real CLI, the others in process (publish(), as the CLI runs it: a process per publish would take ~1 s each), then HEAD /v2/${VISIBLE}/manifests/v<i> on all 3 replicas at once, the moment publish() resolves${missed.length > 0 ? `; missed: ${missed.slice(0, 5).join(', ')}${missed.length > 5 ? ', …' : ''}` : ''}`,
    },
    {
      measure: `${PREFIX}publish → visible delay (slowest of 3 replicas)`,
      value: Math.round(median(delays) * 100) / 100,
      unit: 'ms',
      note: `median ${fmt(median(delays))} ms, p99 ${fmt(percentile(delays, 99))} ms over ${n} publishes, from publish() resolving to the last replica's answer (keep-alive); each publish took ${fmt(median(publishMs))} ms median`,
    },
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Throughput

/** The SDK's multipart upload of `file` as `key`, parts of `partSize`, `queueSize` at a time (lib-storage's way). */
export async function sdkUpload(
  client: S3Client,
  bucket: string,
  key: string,
  file: string,
  options: { partSize: number; queueSize: number },
): Promise<void> {
  const { size } = await fs.stat(file);
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  const parts = Array.from({ length: Math.ceil(size / options.partSize) }, (_, i) => i);
  const etags: string[] = [];
  const handle = await fs.open(file, 'r');
  try {
    await pool(parts, options.queueSize, async (i) => {
      const length = Math.min(options.partSize, size - i * options.partSize);
      const buffer = Buffer.allocUnsafe(length);
      await handle.read(buffer, 0, length, i * options.partSize);
      const answer = await client.send(
        new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: buffer }),
      );
      etags[i] = answer.ETag ?? '';
    });
  } finally {
    await handle.close();
  }
  await client.send(
    new CompleteMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      UploadId,
      MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
    }),
  );
}

function sizeLabel(bytes: number): string {
  const gib = 1024 ** 3;
  const mib = 1024 ** 2;
  if (bytes >= gib && bytes % gib === 0) return `${bytes / gib} GiB`;
  if (bytes >= mib && bytes % mib === 0) return `${bytes / mib} MiB`;
  return `${bytes} B`;
}

/** The SDK's part size and queue: lib-storage's Upload defaults (5 MiB parts, 4 at a time) but 8 MiB parts. */
const SDK_UPLOAD = { partSize: 8 * 1024 * 1024, queueSize: 4 };

export async function measureS3PublishThroughput(
  fixtures: Fixtures,
  s3: S3Endpoint,
  client: S3Client,
  options: { bytes: number },
): Promise<Row[]> {
  const dir = path.join(fixtures.workDir, 's3-throughput');
  await fs.rm(dir, { recursive: true, force: true });
  const reuse = fixtures.blob1GiB?.size === options.bytes ? fixtures.blob1GiB : undefined;
  const layout = reuse ? layoutsOf(fixtures).blob1g : path.join(dir, 'layout');
  const layerFile = reuse
    ? path.join(layout, 'blobs', 'sha256', reuse.digest.slice(7))
    : (await randomImageLayout(layout, options.bytes)).layerFile;
  const publishMs: number[] = [];
  const sdkMs: number[] = [];
  try {
    spawnSync('cat', [layerFile], { stdio: 'ignore' }); // the page cache warm for both
    for (let round = 0; round < 3; round++) {
      const runs = [
        async () => {
          const prefix = `throughput-${round}/`;
          await deletePrefix(client, DERRICK_BUCKET, prefix);
          publishMs.push(
            await derrick(s3, [
              'publish',
              `oci:${layout}:latest`,
              'bench/throughput',
              '--data-dir',
              `s3://${DERRICK_BUCKET}/${prefix.slice(0, -1)}`,
              '-q',
            ]),
          );
          await deletePrefix(client, DERRICK_BUCKET, prefix);
          await reclaimSpace(s3);
        },
        async () => {
          const key = `throughput-sdk/${round}`;
          const started = process.hrtime.bigint();
          await sdkUpload(client, DERRICK_BUCKET, key, layerFile, SDK_UPLOAD);
          sdkMs.push(elapsedMs(started));
          await deletePrefix(client, DERRICK_BUCKET, 'throughput-sdk/');
          await reclaimSpace(s3);
        },
      ];
      if (round % 2 === 1) runs.reverse();
      for (const run of runs) await run();
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  const mbPerSecond = (ms: number) => options.bytes / 1e6 / (ms / 1000);
  const value = mbPerSecond(median(publishMs));
  const reference = mbPerSecond(median(sdkMs));
  const ratio = value / reference;
  return [
    {
      measure: `${PREFIX}publish of a ${sizeLabel(options.bytes)} image`,
      value: Math.round(value * 10) / 10,
      unit: 'MB/s',
      reference: { name: 'SDK multipart upload', value: Math.round(reference * 10) / 10 },
      ratio: Math.round(ratio * 100) / 100,
      target: '≥ 0.8× the SDK uploading the same bytes',
      met: ratio >= 0.8,
      note: `median of 3, alternating: derrick publish ${fmt(median(publishMs))} ms (the real CLI into a fresh prefix, start-up and digest checks included), SDK ${fmt(median(sdkMs))} ms (@aws-sdk/client-s3 multipart, ${SDK_UPLOAD.partSize / 1024 / 1024} MiB parts, ${SDK_UPLOAD.queueSize} at a time, hashing each part once for SigV4 and no digest); the layer file in the page cache`,
    },
  ];
}
