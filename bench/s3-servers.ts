/**
 * The servers of the S3 benchmarks, over the RGW of bench/s3-store.ts (each a BenchServer of bench/servers.ts,
 * so stopAllServers stops them too):
 *
 * - docker-registry (Debian's CNCF distribution 2.8) with its S3 driver: `regionendpoint` the RGW, path-style,
 *   plain HTTP, its blob-descriptor cache in memory (as the file-system one of bench/servers.ts), redirects off.
 *   AWS_CA_BUNDLE is not passed: a Go client refuses to start with it on a plain-HTTP endpoint.
 * - derrick: `derrick serve --data-dir s3://bucket/prefix`, the endpoint and credentials in the standard AWS
 *   variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { childEnv, type S3Endpoint } from './s3-store.ts';
import {
  DERRICK_BIN,
  derrickNodeFlags,
  derrickServeArgs,
  SERVING_LINE,
  startProcess,
  type BenchServer,
} from './servers.ts';

export function dockerRegistryS3Config(
  s3: S3Endpoint,
  options: { bucket: string; rootDirectory: string; port: number },
): string {
  const quoted = (value: string) => JSON.stringify(value);
  return [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  cache:',
    '    blobdescriptor: inmemory',
    '  s3:',
    `    accesskey: ${quoted(s3.accessKeyId)}`,
    `    secretkey: ${quoted(s3.secretAccessKey)}`,
    `    region: ${quoted(s3.region)}`,
    `    regionendpoint: ${quoted(s3.endpoint)}`,
    '    forcepathstyle: true',
    '    secure: false',
    '    v4auth: true',
    `    bucket: ${quoted(options.bucket)}`,
    `    rootdirectory: ${quoted(options.rootDirectory)}`,
    '  redirect:',
    '    disable: true',
    '  delete:',
    '    enabled: false',
    'http:',
    `  addr: 127.0.0.1:${options.port}`,
    '',
  ].join('\n');
}

/** docker-registry over `s3://<bucket><rootDirectory>`, its configuration under `<workDir>/docker-registry-s3`. */
export function startDockerRegistryS3(
  workDir: string,
  s3: S3Endpoint,
  options: { bucket: string; rootDirectory: string; name: string },
): Promise<BenchServer> {
  const dir = path.join(workDir, 'docker-registry-s3');
  mkdirSync(dir, { recursive: true });
  const env = childEnv(s3);
  delete env.AWS_CA_BUNDLE;
  return startProcess({
    name: options.name,
    command: 'docker-registry',
    args: (port) => {
      const config = path.join(dir, `config-${port}.yml`);
      writeFileSync(config, dockerRegistryS3Config(s3, { ...options, port }));
      return ['serve', config];
    },
    env,
    readyPath: '/v2/',
  });
}

export interface DerrickS3Options {
  /** `s3://bucket/prefix` */
  location: string;
  mode: 'serve' | 'redirect';
  name: string;
  workers?: number;
}

/** `derrick serve --data-dir s3://… --mode <mode>` (the compiled CLI), reaching the RGW through AWS_* variables. */
export function startDerrickS3(s3: S3Endpoint, options: DerrickS3Options): Promise<BenchServer> {
  return startProcess({
    name: options.name,
    command: process.execPath,
    args: (port) => [
      ...derrickNodeFlags('serve'),
      DERRICK_BIN,
      ...derrickServeArgs(options.location, `127.0.0.1:${port}`),
      '--log-level',
      'warn',
      '--mode',
      options.mode,
      ...(options.workers === undefined ? [] : ['--workers', String(options.workers)]),
    ],
    env: childEnv(s3),
    readyPath: '/v2/',
    readyLine: SERVING_LINE,
  });
}
