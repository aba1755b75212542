/**
 * `derrick publish docker://…` (bin/derrick.js, the built CLI) from Debian's docker-registry serving TLS with a
 * certificate of a test CA, and asking for a client certificate of that CA (`http.tls.clientcas`: mutual TLS).
 * The image is pushed with skopeo, mirrored with `--cert-dir` laid out as containers-certs.d(5) says — "*.crt
 * files are treated as CA certificates; *.cert files are treated as client certificates; *.key files are treated
 * as client keys" — and pulled back through `derrick serve` by skopeo and podman, with the upstream's digest.
 * Without the CA, or without the client certificate, the publish fails in one line that says what to give.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, run, runDerrick, tempDir, type RunResult } from '../helpers/cli.ts';
import { containersClientConfig, podmanStateArgs } from '../helpers/containers.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.ts';
import { singleImageLayout, skopeoCopy, skopeoRawDigest } from '../helpers/images.ts';
import { makePki, type Pki } from '../helpers/pki.ts';

const BIN = path.join(REPO_ROOT, 'bin', 'derrick.js');
const scratch = tempDir('derrick-mirror-tls-');
const dir = (name: string): string => path.join(scratch.dir, name);
const { policy: POLICY, env: CLIENT_ENV } = containersClientConfig(dir('client-config'));
let pki: Pki;
/** TLS only, and TLS asking for a client certificate. */
let tls: DockerRegistry | undefined;
let mtls: DockerRegistry | undefined;
let upstreamDigest = '';
const servers: DerrickServer[] = [];

before(async () => {
  pki = makePki(dir('pki'));
  const { cert, key } = pki.server;
  tls = await startDockerRegistry(dir('tls'), { tls: { cert, key } });
  mtls = await startDockerRegistry(dir('mtls'), { tls: { cert, key, clientCa: pki.ca } });
  await singleImageLayout(dir('image'), 'latest', 'over tls');
  const withClient = pki.certDir(pki.client('pusher'));
  for (const registry of [tls, mtls])
    await skopeoCopy(`oci:${dir('image')}:latest`, `docker://${registry.address}/team/app:1`, [
      '--dest-cert-dir',
      withClient,
    ]);
  upstreamDigest = (await skopeoRawDigest(`docker://${mtls.address}/team/app:1`, ['--cert-dir', withClient]))
    .digest;
});
after(async () => {
  for (const server of servers) await server.stop();
  await tls?.stop();
  await mtls?.stop();
  scratch.cleanup();
});

function mirror(registry: DockerRegistry | undefined, dataDir: string, extra: string[]): Promise<RunResult> {
  return runDerrick(
    [
      'publish',
      `docker://${registry?.address ?? ''}/team/app:1`,
      'mirror/app:1',
      '--data-dir',
      dataDir,
      ...extra,
    ],
    { bin: BIN },
  );
}

/** The publish into `dataDir` failed in one line matching `why`, no stack, and published nothing. */
async function assertRefused(result: RunResult, dataDir: string, why: RegExp): Promise<void> {
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, why);
  assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
  assert.doesNotMatch(result.stderr, /\n\s+at |unexpected|SSL routines/);
  const ls = await runDerrick(['ls', '--data-dir', dataDir], { bin: BIN });
  assert.doesNotMatch(ls.stdout, /mirror\/app/);
}

describe('derrick publish docker://… from docker-registry over TLS and mutual TLS', () => {
  test('--cert-dir with the CA and a client certificate: mirrored, and skopeo and podman pull the upstream’s digest back through derrick serve', async () => {
    const dataDir = dir('data-ok');
    const result = await mirror(mtls, dataDir, ['--cert-dir', pki.certDir(pki.client('mirror'))]);
    assert.equal(result.code, 0, result.stderr);
    const server = await startDerrickServer(dataDir, { args: ['--workers', '1'], bin: BIN });
    servers.push(server);
    const reference = `${server.host}/mirror/app:1`;
    const pulled = await skopeoRawDigest(`docker://${reference}`, ['--tls-verify=false']);
    assert.equal(pulled.digest, upstreamDigest);

    const state = dir('podman');
    const podman = (args: string[]): Promise<RunResult> =>
      run('podman', [...podmanStateArgs(state), ...args], { env: CLIENT_ENV });
    await podman([
      'pull',
      '--quiet',
      '--tls-verify=false',
      '--signature-policy',
      POLICY,
      `docker://${reference}`,
    ]);
    const [image] = JSON.parse((await podman(['image', 'inspect', reference])).stdout) as {
      Digest: string;
    }[];
    assert.equal(image?.Digest, upstreamDigest);
  });

  test('no --cert-dir: one line, give its CA in --cert-dir or --tls-verify=false', async () => {
    const dataDir = dir('data-no-ca');
    await assertRefused(
      await mirror(tls, dataDir, []),
      dataDir,
      /certificate is not trusted .*give its CA in --cert-dir, or --tls-verify=false/,
    );
  });

  test('the CA but no client certificate, against the registry that asks for one: one line, give a .cert and its .key', async () => {
    const dataDir = dir('data-no-client');
    await assertRefused(
      await mirror(mtls, dataDir, ['--cert-dir', pki.certDir()]),
      dataDir,
      /refused the connection without a client certificate \(TLS alert: [a-z ]+\): give a \.cert and its \.key in --cert-dir$/m,
    );
  });

  test('a client certificate of another CA: one line, the registry refused our client certificate', async () => {
    const dataDir = dir('data-other-client');
    await assertRefused(
      await mirror(mtls, dataDir, ['--cert-dir', pki.certDir(pki.client('stranger', { otherCa: true }))]),
      dataDir,
      /the registry refused our client certificate \(TLS alert: [a-z ]+\): give one its CA signed/,
    );
  });
});
