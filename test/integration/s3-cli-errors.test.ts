/**
 * The tools on an S3 location they cannot use: each refusal is one `derrick: …` line on stderr naming the location
 * and the fix, exit 1, no stack — whatever is wrong (the bucket, the credentials, the endpoint, the location
 * itself, or what the prefix already holds). Against the tests' real Ceph RGW.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { runDerrick, tempDir, type RunResult } from '../helpers/cli.ts';
import { singleImageLayout } from '../helpers/images.ts';
import { freshBucket, rawClient, s3Env, type S3Env } from '../helpers/s3.ts';

let env: S3Env;
const layouts = tempDir('derrick-s3-errors-');
const layout = path.join(layouts.dir, 'layout');
after(() => layouts.cleanup());

before(async () => {
  env = await s3Env();
  await singleImageLayout(layout);
});

/** DERRICK_DEBUG would add a stack to every error; these tests check what users see. */
function derrick(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return runDerrick(args, { env: { ...env, DERRICK_DEBUG: '', ...extraEnv } });
}

function assertOneLine(result: RunResult, pattern: RegExp): void {
  assert.equal(result.code, 1, `exit ${String(result.code)}: ${result.stderr}`);
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'stderr holds a stack trace');
  assert.match(result.stderr, /^derrick: [^\n]+\n$/, `not one derrick: line: ${result.stderr}`);
  assert.match(result.stderr, pattern);
}

/** A port on 127.0.0.1 that nothing listens on (taken from the kernel, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  await new Promise((resolve) => server.close(resolve));
  return address.port;
}

const publishArgs = (location: string): string[] => [
  'publish',
  '-q',
  `oci:${layout}`,
  'app:1',
  '--data-dir',
  location,
];

describe('the tools on an S3 location they cannot use', { concurrency: 4 }, () => {
  test('a bucket that does not exist: publish, ls, gc and verify say so in one line and exit 1', async () => {
    const location = 's3://derrick-test-no-such-bucket-s3tools/tree';
    for (const args of [
      publishArgs(location),
      ['ls', '--data-dir', location],
      ['gc', '--data-dir', location],
      ['verify', '--data-dir', location],
    ]) {
      assertOneLine(
        await derrick(args),
        /^derrick: s3:\/\/derrick-test-no-such-bucket-s3tools\/tree: the bucket does not exist \(NoSuchBucket\); create it or fix --data-dir$/m,
      );
    }
  });

  test('wrong credentials: publish and ls name the endpoint and the variables to check, exit 1', async (t) => {
    const bucket = await freshBucket(t);
    for (const args of [publishArgs(`s3://${bucket}/tree`), ['ls', '--data-dir', `s3://${bucket}/tree`]]) {
      assertOneLine(
        await derrick(args, { AWS_SECRET_ACCESS_KEY: 'not-the-secret-key-at-all' }),
        /refuses the credentials \(SignatureDoesNotMatch\); check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY/,
      );
    }
    const listed = await (await rawClient()).send(new ListObjectsV2Command({ Bucket: bucket }));
    assert.equal(listed.KeyCount ?? 0, 0, 'a refused publish wrote into the bucket');
  });

  test('an endpoint that does not answer (a closed port): publish and ls say it does not answer, exit 1', async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    for (const args of [publishArgs('s3://anything/tree'), ['ls', '--data-dir', 's3://anything/tree']]) {
      const result = await derrick(args, { AWS_ENDPOINT_URL: endpoint });
      assertOneLine(
        result,
        new RegExp(
          `the S3 endpoint ${endpoint} does not answer \\(ECONNREFUSED\\); start it, or fix AWS_ENDPOINT_URL`,
        ),
      );
    }
  });

  test('--data-dir s3:// with no bucket is refused before any request, exit 1', async () => {
    for (const location of ['s3://', 's3:///prefix']) {
      assertOneLine(
        await derrick(publishArgs(location)),
        /is not an S3 location: write s3:\/\/bucket or s3:\/\/bucket\/prefix/,
      );
      assertOneLine(await derrick(['ls', '--data-dir', location]), /is not an S3 location/);
    }
  });

  test('publish into a prefix that holds other objects and no tree is refused, and writes nothing', async (t) => {
    const bucket = await freshBucket(t);
    const client = await rawClient();
    t.after(() => client.destroy());
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'tree/notes.txt', Body: 'mine' }));
    assertOneLine(
      await derrick(publishArgs(`s3://${bucket}/tree`)),
      new RegExp(`^derrick: s3://${bucket}/tree holds objects and no published tree \\(nothing under v2/\\)`),
    );
    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
    assert.deepEqual(
      listed.Contents?.map((object) => object.Key),
      ['tree/notes.txt'],
    );
  });

  test('ls, verify and gc on an empty prefix say there is no published tree there, exit 1', async (t) => {
    const bucket = await freshBucket(t);
    for (const command of ['ls', 'verify', 'gc'])
      assertOneLine(
        await derrick([command, '--data-dir', `s3://${bucket}/empty`]),
        new RegExp(`^derrick: no published tree at s3://${bucket}/empty \\(no object under v2/\\)`),
      );
  });
});
