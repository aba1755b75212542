/**
 * End to end: containerd pulls from a protected derrick. A containerd daemon of the test's own (its root, state
 * and socket in a temp directory; the CRI plugin off) and `ctr content fetch`, whose resolver is containerd's
 * docker resolver — the code Kubernetes nodes pull with. Over TLS with the test CA (given in a hosts.toml, as a
 * node is configured), it logs in with a password (containerd's POST password grant to derrick's token
 * endpoint), with a client certificate, and anonymously; every fetched digest is checked against the published one.
 * Over a tree on each back end (BACKENDS: a directory, a bucket of the test S3 server), published by the CLI.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import { BACKENDS, freshTree, type TreeSpot } from '../helpers/backends.ts';
import { runDerrick, tempDir, type RunResult } from '../helpers/cli.ts';
import { startContainerd, type Containerd } from '../helpers/containerd.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { singleImageLayout } from '../helpers/images.ts';
import { htpasswdLine, makePki, tokenKey, type KeyPair, type Pki } from '../helpers/pki.ts';

const temp = tempDir('derrick-e2e-containerd-');
const SERVICE = 'registry.test';

let containerd: Containerd | undefined;
let pki!: Pki;
let robot!: KeyPair;
/** The htpasswd file and the token key every derrick of this file uses. */
let htpasswd = '';
let tokenKeyFile = '';
/** Published digests by repository (the same on every back end: the same layouts are published). */
const published = new Map<string, string>();
/** The layouts, by repository, and whether each is published protected. */
const sources: { repository: string; layout: string; isProtected: boolean }[] = [];

function running(): Containerd {
  assert.ok(containerd, 'containerd is not running');
  return containerd;
}

let hostDirs = 0;
/** A hosts directory for derrick's host:port, trusting the test CA, and presenting `client` if given. */
function hostsDir(server: DerrickServer, client?: KeyPair): string {
  const dir = path.join(temp.dir, `hosts-${++hostDirs}`);
  mkdirSync(path.join(dir, server.host), { recursive: true });
  const lines = [
    `server = "https://${server.host}"`,
    `[host."https://${server.host}"]`,
    '  capabilities = ["pull", "resolve"]',
    `  ca = "${pki.ca}"`,
    ...(client ? [`  client = [["${client.cert}", "${client.key}"]]`] : []),
    '',
  ];
  writeFileSync(path.join(dir, server.host, 'hosts.toml'), lines.join('\n'));
  return dir;
}

/** `ctr content fetch` of `<repo>:<tag>` from derrick. */
function fetchFrom(
  server: DerrickServer | undefined,
  repository: string,
  options: { user?: string; client?: KeyPair } = {},
): Promise<RunResult> {
  assert.ok(server, 'derrick is not running');
  return running().ctr([
    'content',
    'fetch',
    '--hosts-dir',
    hostsDir(server, options.client),
    ...(options.user === undefined ? [] : ['--user', options.user]),
    `${server.host}/${repository}:v1`,
  ]);
}

before(async () => {
  pki = makePki(path.join(temp.dir, 'pki'));
  robot = pki.client('ci.example.com');
  for (const [repository, isProtected] of [
    ['public/app', false],
    ['team/app', false],
    ['secret/app', true],
  ] as const) {
    const layout = path.join(temp.dir, 'layouts', repository);
    const image = await singleImageLayout(layout, 'v1', `content of ${repository}`);
    published.set(repository, image.digest);
    sources.push({ repository, layout, isProtected });
  }
  htpasswd = path.join(temp.dir, 'htpasswd');
  writeFileSync(htpasswd, `${htpasswdLine('alice', 'alice-secret')}\n${htpasswdLine('bob', 'bob-secret')}\n`);
  tokenKeyFile = tokenKey(path.join(temp.dir, 'token.key'));
  containerd = await startContainerd(path.join(temp.dir, 'containerd'));
});

/** What the trees need undone after the file's tests (a bucket deleted). */
const cleanups: (() => unknown)[] = [];
/** freshTree's `after`, for trees made in a suite's hook: their cleanups run at the end of the file. */
const onCleanup: Pick<TestContext, 'after'> = {
  after: (cleanup) => {
    if (cleanup) cleanups.push(() => cleanup(undefined as never, () => undefined));
  },
};

after(async () => {
  await containerd?.stop();
  for (const cleanup of cleanups.reverse()) await cleanup();
  temp.cleanup();
});

/** Publishes the three repositories into `spot` with the CLI and serves it with the file's configuration. */
async function serveTree(spot: TreeSpot): Promise<DerrickServer> {
  for (const { repository, layout, isProtected } of sources) {
    const result = await runDerrick(
      [
        'publish',
        `oci:${layout}:v1`,
        `${repository}:v1`,
        '--data-dir',
        spot.location,
        ...(isProtected ? ['--protected'] : []),
      ],
      { env: spot.env },
    );
    assert.equal(result.code, 0, result.stderr);
  }
  const config = path.join(temp.dir, `derrick-${spot.backend}.yaml`);
  writeFileSync(
    config,
    stringify({
      dataDir: spot.location,
      workers: 1,
      logLevel: 'info', // the "token issued" lines say how containerd asked
      tls: { cert: pki.server.cert, key: pki.server.key, clientCa: pki.ca },
      auth: {
        htpasswd,
        token: { service: SERVICE, key: tokenKeyFile },
        failedLogins: { limit: 1000, windowSeconds: 60 },
      },
      access: [
        { match: 'public/**', pull: ['anonymous'] },
        { match: 'team/**', pull: ['user:alice', 'cert:ci.example.com'] },
        { match: 'secret/**', pull: ['anonymous'] }, // published protected: any authenticated client
      ],
    }),
  );
  const server = await startDerrickServer(spot.location, { args: ['--config', config], env: spot.env });
  assert.match(server.url, /^https:/);
  return server;
}

for (const backend of BACKENDS)
  describe(`containerd (ctr content fetch) from a protected derrick over TLS, ${backend} tree`, () => {
    let derrick: DerrickServer | undefined;
    const fetch = (
      repository: string,
      options: { user?: string; client?: KeyPair } = {},
    ): Promise<RunResult> => fetchFrom(derrick, repository, options);

    before(async () => {
      derrick = await serveTree(await freshTree(backend, onCleanup));
    });

    after(async () => {
      await derrick?.stop();
    });

    test('with a password: the POST password grant gets a token, and the published image is fetched', async () => {
      await running().removeContent();
      const result = await fetch('team/app', { user: 'alice:alice-secret' });
      assert.equal(result.code, 0, result.stderr);
      const digests = await running().storedDigests();
      assert.ok(
        digests.includes(published.get('team/app') ?? '-'),
        `manifest not fetched: ${digests.join(' ')}`,
      );
      assert.ok(digests.length >= 3, 'manifest, config and layer');
      const issued = (derrick?.output() ?? '').split('\n').filter((line) => line.includes('token issued'));
      assert.ok(
        issued.some((line) => line.includes('"method":"POST"') && line.includes('"subject":"user:alice"')),
        `containerd did not use the POST password grant: ${issued.join('\n')}`,
      );
    });

    test('a wrong password, and a user the rule does not name, are refused', async () => {
      await running().removeContent();
      const wrong = await fetch('team/app', { user: 'alice:not-her-password' });
      assert.notEqual(wrong.code, 0);
      assert.match(wrong.stderr, /401|unauthorized/i);
      const bob = await fetch('team/app', { user: 'bob:bob-secret' });
      assert.notEqual(bob.code, 0);
      assert.match(bob.stderr, /insufficient_scope|denied|authorization failed/i);
      assert.deepEqual(await running().storedDigests(), []);
    });

    test('with a client certificate named by a rule, and no password', async () => {
      await running().removeContent();
      const result = await fetch('team/app', { client: robot });
      assert.equal(result.code, 0, result.stderr);
      assert.ok((await running().storedDigests()).includes(published.get('team/app') ?? '-'));
    });

    test('anonymous: a public repository is fetched, a protected one is refused', async () => {
      await running().removeContent();
      const open = await fetch('public/app');
      assert.equal(open.code, 0, open.stderr);
      assert.ok((await running().storedDigests()).includes(published.get('public/app') ?? '-'));
      const secret = await fetch('secret/app');
      assert.notEqual(secret.code, 0);
      assert.ok(!(await running().storedDigests()).includes(published.get('secret/app') ?? '-'));
      const withPassword = await fetch('secret/app', { user: 'bob:bob-secret' });
      assert.equal(withPassword.code, 0, withPassword.stderr);
      assert.ok((await running().storedDigests()).includes(published.get('secret/app') ?? '-'));
    });
  });
