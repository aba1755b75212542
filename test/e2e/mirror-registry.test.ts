/**
 * `derrick publish docker://…` from real registries on loopback, started here: Debian's docker-registry (CNCF
 * distribution) with htpasswd users — images pushed into it with `skopeo copy` — and derrick itself serving as
 * a token-authenticated upstream (its own /auth/token). What was mirrored is pulled back through `derrick serve`
 * with skopeo, and must have the upstream's digests (`skopeo inspect --raw` on both sides).
 *
 * The Docker token spec (docs/spec/auth/token.md): "If the registry requires authorization it will return a 401
 * Unauthorized HTTP response with information on how to authenticate … The registry client makes a request to the
 * authorization service for a Bearer token … The client retries the original request with the Bearer token
 * embedded in the request's Authorization header."
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { writeHtpasswd } from '../helpers/auth.ts';
import { runDerrick, tempDir, type RunResult } from '../helpers/cli.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { multiPlatformLayout, singleImageLayout, skopeoCopy, skopeoRawDigest } from '../helpers/images.ts';
import { freePort } from '../helpers/nginx.ts';
import { tokenKey } from '../helpers/pki.ts';
import { derrickOk } from '../helpers/server.ts';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.ts';

const scratch = tempDir('derrick-mirror-registry-');
const dir = (name: string): string => path.join(scratch.dir, name);
const ALICE = 'alice:alice-secret';
let registry: DockerRegistry | undefined;
const servers: DerrickServer[] = [];

before(async () => {
  registry = await startDockerRegistry(scratch.dir, { users: { alice: 'alice-secret' } });
  await singleImageLayout(dir('single'), 'latest', 'mirrored');
  await multiPlatformLayout(dir('multi'));
  const push = ['--dest-tls-verify=false', '--dest-creds', ALICE];
  await skopeoCopy(`oci:${dir('single')}:latest`, `docker://${registry.address}/team/app:1`, push);
  await skopeoCopy(`oci:${dir('multi')}:latest`, `docker://${registry.address}/team/multi:1`, [
    ...push,
    '--all',
  ]);
});

after(async () => {
  for (const server of servers) await server.stop();
  await registry?.stop();
  scratch.cleanup();
});

/** What skopeo reads of `image` from the upstream, with alice's credentials. */
function upstreamRaw(image: string): Promise<{ raw: string; digest: string }> {
  return skopeoRawDigest(`docker://${registry?.address ?? ''}/${image}`, [
    '--tls-verify=false',
    '--creds',
    ALICE,
  ]);
}

async function served(dataDir: string): Promise<DerrickServer> {
  const server = await startDerrickServer(dataDir, { args: ['--workers', '1'] });
  servers.push(server);
  return server;
}

/** `derrick publish docker://<upstream>/<image> <as> --data-dir <dataDir> --tls-verify=false <extra>`. */
function mirror(
  upstream: string,
  image: string,
  as: string,
  dataDir: string,
  extra: string[],
  env?: NodeJS.ProcessEnv,
): Promise<RunResult> {
  const args = [
    'publish',
    `docker://${upstream}/${image}`,
    as,
    '--data-dir',
    dataDir,
    '--tls-verify=false',
    ...extra,
  ];
  return runDerrick(args, env ? { env } : {});
}

describe('derrick publish docker://… from docker-registry with htpasswd', () => {
  test('an image and a multi-platform index come over with the upstream digests, and pull back through derrick serve', async () => {
    const dataDir = dir('data-basic');
    const upstream = registry?.address ?? '';
    const single = await mirror(upstream, 'team/app:1', 'mirror/app:1', dataDir, ['--creds', ALICE]);
    assert.equal(single.code, 0, single.stderr);
    const multi = await mirror(upstream, 'team/multi:1', 'mirror/multi:1', dataDir, ['--creds', ALICE]);
    assert.equal(multi.code, 0, multi.stderr);
    const server = await served(dataDir);
    const local = server.url.replace(/^http:\/\//, '');
    for (const [image, mirrored] of [
      ['team/app:1', 'mirror/app:1'],
      ['team/multi:1', 'mirror/multi:1'],
    ] as const) {
      const theirs = await upstreamRaw(image);
      const ours = await skopeoRawDigest(`docker://${local}/${mirrored}`, ['--tls-verify=false']);
      assert.equal(ours.digest, theirs.digest, image);
      assert.equal(ours.raw, theirs.raw, image);
    }
    // Every child of the index too, by digest.
    const index = JSON.parse((await upstreamRaw('team/multi:1')).raw) as { manifests: { digest: string }[] };
    assert.equal(index.manifests.length >= 2, true);
    for (const { digest } of index.manifests) {
      const ours = await skopeoRawDigest(`docker://${local}/mirror/multi@${digest}`, ['--tls-verify=false']);
      assert.equal(ours.digest, digest);
    }
  });

  test('credentials from the auth file skopeo login writes ($REGISTRY_AUTH_FILE) when --creds is not given', async () => {
    const authFile = dir('auth.json');
    const upstream = registry?.address ?? '';
    writeFileSync(
      authFile,
      JSON.stringify({ auths: { [upstream]: { auth: Buffer.from(ALICE).toString('base64') } } }),
    );
    const result = await runDerrick(
      [
        'publish',
        `docker://${upstream}/team/app:1`,
        'mirror/app:1',
        '--data-dir',
        dir('data-file'),
        '--tls-verify=false',
      ],
      { env: { REGISTRY_AUTH_FILE: authFile } },
    );
    assert.equal(result.code, 0, result.stderr);
  });

  test('wrong credentials, no credentials, a missing tag, an upstream that is down: one line each, nothing published', async () => {
    const upstream = registry?.address ?? '';
    const dataDir = dir('data-bad');
    const cases: [string[], RegExp][] = [
      [['--creds', 'alice:wrong'], /refused the credentials of alice/],
      [[], /asks for credentials: give --creds/],
    ];
    for (const [extra, why] of cases) {
      const result = await runDerrick(
        [
          'publish',
          `docker://${upstream}/team/app:1`,
          'mirror/app:1',
          '--data-dir',
          dataDir,
          '--tls-verify=false',
          ...extra,
        ],
        { env: { REGISTRY_AUTH_FILE: dir('none.json'), HOME: dir('home'), XDG_RUNTIME_DIR: '' } },
      );
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, why);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
      assert.doesNotMatch(result.stderr, /unexpected/);
    }
    const missing = await runDerrick([
      'publish',
      `docker://${upstream}/team/app:nope`,
      'mirror/app:1',
      '--data-dir',
      dataDir,
      '--tls-verify=false',
      '--creds',
      ALICE,
    ]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /has no manifest nope in team\/app/);
    const down = await runDerrick([
      'publish',
      `docker://127.0.0.1:${await freePort()}/team/app:1`,
      'mirror/app:1',
      '--data-dir',
      dataDir,
      '--tls-verify=false',
    ]);
    assert.notEqual(down.code, 0);
    assert.match(down.stderr, /connection refused/);
    const ls = await runDerrick(['ls', '--data-dir', dataDir]);
    assert.doesNotMatch(ls.stdout, /mirror\/app/);
  });
});

describe('derrick publish docker://… from derrick serve with token authentication', () => {
  test('the Bearer token flow: a token from its /auth/token with Basic credentials, then the pull', async () => {
    const upstreamData = dir('upstream-data');
    await derrickOk(upstreamData, ['publish', `oci:${dir('single')}:latest`, 'team/app:1', '--protected']);
    const htpasswd = dir('upstream.htpasswd');
    writeHtpasswd(htpasswd, { alice: 'alice-secret' });
    const config = dir('upstream.yml');
    writeFileSync(
      config,
      stringify({
        dataDir: upstreamData,
        auth: { htpasswd, token: { service: 'upstream.test', key: tokenKey(dir('token.key')) } },
      }),
    );
    const upstream = await startDerrickServer(upstreamData, { args: ['--workers', '1', '--config', config] });
    servers.push(upstream);
    const address = upstream.url.replace(/^http:\/\//, '');
    const challenge = await fetch(`${upstream.url}/v2/team/app/manifests/1`);
    assert.equal(challenge.status, 401);
    assert.match(challenge.headers.get('www-authenticate') ?? '', /^Bearer realm=/);
    const dataDir = dir('data-token');
    const result = await mirror(address, 'team/app:1', 'mirror/app:1', dataDir, ['--creds', ALICE]);
    assert.equal(result.code, 0, result.stderr);
    const server = await served(dataDir);
    const theirs = await skopeoRawDigest(`docker://${address}/team/app:1`, [
      '--tls-verify=false',
      '--creds',
      ALICE,
    ]);
    const ours = await skopeoRawDigest(`docker://${server.url.replace(/^http:\/\//, '')}/mirror/app:1`, [
      '--tls-verify=false',
    ]);
    assert.equal(ours.digest, theirs.digest);
  });
});
