/**
 * Serving real published trees in integration tests: publish into a temp tree (in-process, or through the real
 * CLI), build the real app over it with a config from loadConfig, and talk to it with app.inject() or — when the
 * raw bytes of the request line matter (dot segments, which inject normalises) or a real socket is needed — with
 * node:http against app.listen() on 127.0.0.1, port 0.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { loadConfig } from '../../src/config/load.ts';
import type { Config, ScalarKey } from '../../src/config/schema.ts';
import { buildApp } from '../../src/http/app.ts';
import { splitNameAndTag } from '../../src/oci/names.ts';
import { openSource } from '../../src/publish/open-source.ts';
import { silentProgress } from '../../src/publish/progress.ts';
import { publish, type Destination, type PublishResult } from '../../src/publish/publisher.ts';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { isS3Location, openBackend } from '../../src/store/open-backend.ts';
import { parseS3Url } from '../../src/store/s3/s3-backend.ts';
import { Tree } from '../../src/store/tree.ts';
import { freshTree, type BackendName, type TreeSpot } from './backends.ts';
import { runDerrick } from './cli.ts';
import { LayoutBuilder, MT, type Descriptor } from './images.ts';
import { rawClient } from './s3.ts';

export const API_VERSION_HEADER = 'docker-distribution-api-version';
export const API_VERSION = 'registry/2.0';

export type Flags = Partial<Record<ScalarKey, string>>;

/** The serve configuration for `dataDir`, through the real loader (flags as `derrick serve --<key>` gives them). */
export function serveConfig(dataDir: string, flags: Flags = {}): Config {
  return loadConfig({ flags: { dataDir, accessLog: 'false', logLevel: 'silent', ...flags } });
}

/** Where a test's tree is: a directory or s3:// location as `--data-dir` takes it, or a TreeSpot (backends.ts). */
export type Where = string | TreeSpot;

export const locationOf = (where: Where): string => (typeof where === 'string' ? where : where.location);

/**
 * The real app over the tree at `dataDir` (a directory), logging nothing, with the Tree made as `derrick serve`
 * makes it (its directory-listing cache sized by the config). Close it in an after hook. For a tree on any back
 * end, serveTree.
 */
export function serveApp(dataDir: string, flags: Flags = {}): FastifyInstance {
  const config = serveConfig(dataDir, flags);
  const tree = new Tree(config.dataDir, { listingCache: config.cache.listings });
  return buildApp(config, tree, { logger: pino({ level: 'silent' }) });
}

/**
 * The real app over a tree on either back end, its back end opened as `derrick serve` opens it (openBackend with
 * the config's listing cache and S3 settings) and closed with the app. `logger`: to read what it logs.
 */
export async function serveTree(
  where: Where,
  flags: Flags = {},
  logger: Logger = pino({ level: 'silent' }),
): Promise<FastifyInstance> {
  const config = serveConfig(locationOf(where), flags);
  const backend = await openBackend(config.dataDir, {
    listingCache: config.cache.listings,
    s3: config.s3,
  });
  const app = buildApp(config, new Tree(backend), { logger });
  app.addHook('onClose', () => backend.close());
  return app;
}

/** The tree at `where` on its back end (close `tree.backend` when done). */
export async function openTree(where: Where): Promise<Tree> {
  return new Tree(await openBackend(locationOf(where)));
}

/** The largest blob of a published repository that is no manifest: its layer (not the image config). */
export async function largestLayer(where: Where, name: string): Promise<{ digest: string; size: number }> {
  const tree = await openTree(where);
  const lookup = await tree.readRecord(name);
  await tree.backend.close();
  assert.ok(lookup.found, `${name} is published`);
  const { blobs, manifests } = lookup.repository;
  const [digest = '', size = -1] =
    [...blobs].filter(([d]) => !manifests.has(d)).sort((a, b) => b[1] - a[1])[0] ?? [];
  return { digest, size };
}

/**
 * A fresh tree for a whole describe block (freshTree is per test): made in its `before`, removed by `remove()`
 * in its `after`.
 */
export async function suiteTree(
  backend: BackendName,
): Promise<{ spot: TreeSpot; remove: () => Promise<void> }> {
  const cleanups: (() => unknown)[] = [];
  const spot = await freshTree(backend, { after: (fn: () => unknown) => void cleanups.push(fn) });
  return {
    spot,
    remove: async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    },
  };
}

/**
 * Publishes `source` (`oci:<dir>[:<ref>]`) as `targets` (`name[:tag]`), in-process (no CLI spawn), into a tree on
 * either back end.
 */
export async function publishInto(
  where: Where,
  source: string,
  targets: string[],
  options: { baseUrl?: string; protected?: boolean } = {},
): Promise<PublishResult> {
  const tree = await openTree(where);
  const byName = new Map<string, string[]>();
  for (const target of targets) {
    const { name, tag } = splitNameAndTag(target);
    byName.set(name, [...(byName.get(name) ?? []), ...(tag === undefined ? [] : [tag])]);
  }
  const destinations: Destination[] = [...byName].map(([name, tags]) => ({ name, tags }));
  try {
    return await publish({
      tree,
      openSource: () => openSource(source, tree.backend.scratchDir),
      destinations,
      allTags: false,
      baseUrl: options.baseUrl,
      protected: options.protected,
      lockTimeoutMs: 30_000,
      progress: silentProgress,
    });
  } finally {
    await tree.backend.close();
  }
}

/** Runs the real `derrick <command> … --data-dir <dataDir>` and fails the test when it does not exit 0. */
export async function derrickOk(dataDir: string, args: string[]): Promise<string> {
  const result = await runDerrick([...args, '--data-dir', dataDir], { env: { DERRICK_DEBUG: '' } });
  assert.equal(result.code, 0, `derrick ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

/**
 * Writes a record as is (any JSON value, or raw text) at v2/app/<name>.json, behind derrick's back: a file, or a
 * raw PutObject into the bucket. Returns the file, or the object's key in its bucket.
 */
export async function writeRecordFile(where: Where, name: string, content: unknown): Promise<string> {
  const text = typeof content === 'string' ? content : JSON.stringify(content, null, 1);
  return writeTreeObject(where, `v2/app/${name}.json`, text);
}

/**
 * Writes `bytes` at `key` (a tree key such as v2/content/sha256/<hex>) behind derrick's back: a file below the
 * directory, or a raw PutObject under the bucket's prefix. Returns the file, or the object's key in its bucket.
 */
export async function writeTreeObject(
  where: Where,
  key: string,
  bytes: string | Uint8Array,
): Promise<string> {
  const location = locationOf(where);
  if (isS3Location(location)) {
    const objectKey = bucketKey(location, key);
    const client = await rawClient();
    try {
      await client.send(
        new PutObjectCommand({ Bucket: parseS3Url(new URL(location)).bucket, Key: objectKey, Body: bytes }),
      );
    } finally {
      client.destroy();
    }
    return objectKey;
  }
  const file = path.join(location, ...key.split('/'));
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, bytes);
  return file;
}

/** Removes what writeTreeObject wrote at `key`, behind derrick's back. */
export async function removeTreeObject(where: Where, key: string): Promise<void> {
  const location = locationOf(where);
  if (isS3Location(location)) {
    const client = await rawClient();
    try {
      await client.send(
        new DeleteObjectCommand({
          Bucket: parseS3Url(new URL(location)).bucket,
          Key: bucketKey(location, key),
        }),
      );
    } finally {
      client.destroy();
    }
    return;
  }
  await fs.rm(path.join(location, ...key.split('/')));
}

/** The object key in its bucket of the tree key `key` of the tree at the s3:// `location`. */
function bucketKey(location: string, key: string): string {
  const { prefix } = parseS3Url(new URL(location));
  return `${prefix === '' ? '' : `${prefix}/`}${key}`;
}

export function sha256Of(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** What both inject() and rawRequest() answer with, for the shared assertions below. */
export interface Answered {
  statusCode: number;
  headers: http.IncomingHttpHeaders | Record<string, string | string[] | number | undefined>;
  body: string;
}

export function header(answer: Answered, name: string): string | undefined {
  const value = answer.headers[name.toLowerCase()];
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(', ') : String(value);
}

export function assertApiVersion(answer: Answered): void {
  assert.equal(header(answer, API_VERSION_HEADER), API_VERSION, `no ${API_VERSION_HEADER} header`);
}

/**
 * An OCI error answer: `status`, the API version header, and a body that is exactly
 * `{"errors":[{"code","message","detail"}]}` with `code`. Returns the error for further checks.
 */
export function assertOciError(
  answer: Answered,
  status: number,
  code: string,
): { code: string; message: string; detail: unknown } {
  assert.equal(
    answer.statusCode,
    status,
    `expected ${status} ${code}, got ${answer.statusCode}: ${answer.body}`,
  );
  assertApiVersion(answer);
  assert.match(header(answer, 'content-type') ?? '', /^application\/json/);
  const body = JSON.parse(answer.body) as { errors?: unknown };
  assert.deepEqual(Object.keys(body), ['errors']);
  assert.ok(Array.isArray(body.errors) && body.errors.length === 1, `one error expected: ${answer.body}`);
  const error = body.errors[0] as Record<string, unknown>;
  assert.deepEqual(Object.keys(error).sort(), ['code', 'detail', 'message']);
  assert.equal(error.code, code, `expected code ${code}: ${answer.body}`);
  assert.equal(typeof error.message, 'string');
  return error as { code: string; message: string; detail: unknown };
}

/** Listens on 127.0.0.1, port 0; returns the port. */
export async function listenLocal(app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

/**
 * One request with the path sent byte for byte as given (no URL normalisation), on a fresh connection. A header
 * given as an array is sent as one line per value.
 */
export function rawRequest(
  port: number,
  method: string,
  rawPath: string,
  headers: Record<string, string | string[]> = {},
): Promise<Answered & { bytes: Buffer }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: '127.0.0.1', port, method, path: rawPath, headers, agent: false },
      (response) => void readAnswer(response).then(resolve, reject),
    );
    request.on('error', reject);
    request.end();
  });
}

/** All of a node:http(s) response: its status, its headers, and its body as bytes and as UTF-8 text. */
export function readAnswer(response: http.IncomingMessage): Promise<Answered & { bytes: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    response.on('data', (chunk: Buffer) => chunks.push(chunk));
    response.on('error', reject);
    response.on('end', () => {
      const bytes = Buffer.concat(chunks);
      resolve({
        statusCode: response.statusCode ?? 0,
        headers: response.headers,
        body: bytes.toString('utf8'),
        bytes,
      });
    });
  });
}

/** The images most serve tests publish, all in one OCI layout, each under its own ref name. */
export interface Fixtures {
  /** The layout directory: publish `oci:<dir>:<ref>`. */
  dir: string;
  /** ref `single`: one linux/amd64 OCI image. */
  single: Descriptor;
  /** ref `other`: another OCI image (different layer). */
  other: Descriptor;
  /** ref `multi`: an OCI index of linux/amd64 and linux/arm64/v8. */
  multi: { index: Descriptor; amd64: Descriptor; arm64: Descriptor };
  /** ref `dockerlist`: a Docker manifest list of Docker schema 2 images, linux/amd64 and linux/arm64/v8. */
  dockerList: { list: Descriptor; amd64: Descriptor; arm64: Descriptor };
  /** ref `noamd64`: an OCI index of linux/arm64/v8 and linux/s390x only. */
  noAmd64: { index: Descriptor; children: Descriptor[] };
  /**
   * ref `signed`: an image, and an unnamed artifact (a signature) whose subject it is; `referrer` is the descriptor
   * the referrers API lists for the artifact (with its artifactType and annotations).
   */
  signed: {
    image: Descriptor;
    artifact: Descriptor;
    artifactType: string;
    referrer: Record<string, unknown>;
  };
}

export const SIGNATURE_TYPE = 'application/vnd.example.signature.v1';
const SIGNATURE_ANNOTATIONS = { 'org.example.signer': 'test' };

export async function buildFixtures(dir: string): Promise<Fixtures> {
  const builder = new LayoutBuilder(dir);
  const amd64 = { os: 'linux', architecture: 'amd64' };
  const arm64 = { os: 'linux', architecture: 'arm64', variant: 'v8' };
  const single = await builder.image({ files: { 'hello.txt': 'single\n' } });
  const other = await builder.image({ files: { 'hello.txt': 'other\n' } });
  const multi = {
    amd64: await builder.image({ platform: amd64, files: { 'arch.txt': 'amd64\n' } }),
    arm64: await builder.image({ platform: arm64, files: { 'arch.txt': 'arm64\n' } }),
  };
  const multiIndex = builder.index([multi.amd64, multi.arm64]);
  const docker = {
    amd64: await builder.image({ platform: amd64, docker: true, files: { 'arch.txt': 'docker amd64\n' } }),
    arm64: await builder.image({ platform: arm64, docker: true, files: { 'arch.txt': 'docker arm64\n' } }),
  };
  const dockerList = builder.index([docker.amd64, docker.arm64], true);
  const noAmd64Children = [
    await builder.image({ platform: arm64, files: { 'arch.txt': 'only arm64\n' } }),
    await builder.image({
      platform: { os: 'linux', architecture: 's390x' },
      files: { 'arch.txt': 's390x\n' },
    }),
  ];
  const noAmd64 = builder.index(noAmd64Children);
  const signedImage = await builder.image({ files: { 'hello.txt': 'signed\n' } });
  const artifact = builder.artifact(signedImage, SIGNATURE_TYPE, 'signature-bytes', SIGNATURE_ANNOTATIONS);
  builder
    .add(single, 'single')
    .add(other, 'other')
    .add(multiIndex, 'multi')
    .add(dockerList, 'dockerlist')
    .add(noAmd64, 'noamd64')
    .add(signedImage, 'signed')
    .add(artifact)
    .write();
  return {
    dir,
    single,
    other,
    multi: { index: multiIndex, ...multi },
    dockerList: { list: dockerList, ...docker },
    noAmd64: { index: noAmd64, children: noAmd64Children },
    signed: {
      image: signedImage,
      artifact,
      artifactType: SIGNATURE_TYPE,
      referrer: {
        mediaType: MT.ociManifest,
        digest: artifact.digest,
        size: artifact.size,
        artifactType: SIGNATURE_TYPE,
        annotations: SIGNATURE_ANNOTATIONS,
      },
    },
  };
}
