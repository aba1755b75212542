/**
 * End to end: anonymous pulls of a public repository beside a protected one, with real clients, in every way
 * derrick can be set up to let clients log in (issue 9, item 1):
 *
 *   htpasswd only          /v2/ challenges Basic; skopeo and podman then send `Basic Og==` on every request
 *   tokens only            /v2/ challenges Bearer; clients fetch anonymous tokens from derrick's /auth/token
 *   htpasswd and tokens    the same, and users log in at /auth/token
 *   mutual TLS             a client CA and nothing else: a client without a certificate is anonymous
 *
 * The tree: public/app:1 (rule public/** → anonymous) and team/app:1 (rule ** → user:alice, cert:ci.example.com).
 * In each setup skopeo (inspect, copy), podman (pull) and containerd (`ctr content fetch`) pull public/app without
 * credentials and are refused team/app. Anonymous pulls are never failed logins: after more of them than
 * auth.failedLogins.limit, alice still logs in and pulls team/app. Last, the requests docker's own client sends
 * (distribution's registry/client/auth and moby's registry package; no Docker engine runs here) are replayed one
 * by one over real HTTP, for a pull and for `docker login`, in each setup.
 *
 * All of it on a tree on each back end (BACKENDS: a directory, a bucket of the test S3 server): one tree and four
 * servers per back end, the back ends one after the other, one containerd for the whole file.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { BACKENDS, type BackendName, type TreeSpot } from '../helpers/backends.ts';
import { digestOf, execute, tempDir, type RunResult } from '../helpers/cli.ts';
import { startContainerd, type Containerd } from '../helpers/containerd.ts';
import { containersClientConfig, podmanStateArgs } from '../helpers/containers.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { singleImageLayout } from '../helpers/images.ts';
import { htpasswdLine, makePki, tokenKey, type KeyPair, type Pki } from '../helpers/pki.ts';
import { publishInto, readAnswer, suiteTree, type Answered } from '../helpers/server.ts';

// Short: podman refuses a runroot path over 50 characters.
const temp = tempDir('derrick-anon-');
let counter = 0;
const fresh = (label: string): string => {
  const dir = path.join(temp.dir, `${label}-${++counter}`);
  mkdirSync(dir, { recursive: true });
  return dir;
};

const { policy: POLICY, env: CLIENT_ENV } = containersClientConfig(path.join(temp.dir, 'client-config'));
const SERVICE = 'derrick-anonymous';
const PASSWORD = 'alice-pw';
/** Low: counting the anonymous requests below as failed logins would lock 127.0.0.1 out many times over. */
const LIMIT = 3;
const RULES = [
  { match: 'public/**', pull: ['anonymous'] },
  { match: '**', pull: ['user:alice', 'cert:ci.example.com'] },
];
type SetupName = 'htpasswd only' | 'tokens only' | 'htpasswd and tokens' | 'mutual TLS';
const SETUPS: readonly SetupName[] = ['htpasswd only', 'tokens only', 'htpasswd and tokens', 'mutual TLS'];
const WITH_PASSWORDS: readonly SetupName[] = ['htpasswd only', 'htpasswd and tokens'];
const WITH_TOKENS: readonly SetupName[] = ['tokens only', 'htpasswd and tokens'];
/**
 * What skopeo, podman and containerd say when derrick refuses team/app to an anonymous client: 401 to log in
 * (skopeo and podman word it "authentication required", containerd gives the status), a token without the
 * scope, or — with nothing to log in to — 404 like a missing repository.
 */
const REFUSED: Record<SetupName, RegExp> = {
  'htpasswd only': /unauthorized: authentication required|401 Unauthorized/,
  'tokens only': /the bearer token does not grant repository:team\/app:pull|insufficient_scope/,
  'htpasswd and tokens': /the bearer token does not grant repository:team\/app:pull|insufficient_scope/,
  'mutual TLS': /team\/app\\?" is not known to this registry|team\/app:1: not found/,
};

interface Published {
  name: string;
  digest: string;
  /** The manifest's config and layer digests. */
  blobs: string[];
}

let pki!: Pki;
let robot!: KeyPair;
let trust = '';
let robotDir = '';
let containerd: Containerd | undefined;
/** The htpasswd file and the token key every derrick of this file uses. */
let files!: { htpasswd: string; key: string };
/** The layouts of public/app and team/app, built once and published into the tree of each back end. */
const layouts = new Map<Published, string>();
/** The servers of the back end whose suite runs now (the back ends' suites run one after the other). */
const servers = new Map<SetupName, DerrickServer>();
const published: Record<'public' | 'team', Published> = {
  public: { name: 'public/app', digest: '', blobs: [] },
  team: { name: 'team/app', digest: '', blobs: [] },
};

function server(setup: SetupName): DerrickServer {
  const running = servers.get(setup);
  assert.ok(running, `derrick (${setup}) is not running`);
  return running;
}
const isTls = (setup: SetupName): boolean => setup === 'mutual TLS';

/** Builds the layout of `repo` and notes its digest and blobs. */
async function build(repo: Published): Promise<void> {
  const layout = path.join(temp.dir, 'layouts', repo.name);
  const image = await singleImageLayout(layout, '1', `content of ${repo.name}`);
  const manifest = JSON.parse(
    readFileSync(path.join(layout, 'blobs', ...image.digest.split(':')), 'utf8'),
  ) as { config: { digest: string }; layers: { digest: string }[] };
  Object.assign(repo, {
    digest: image.digest,
    blobs: [manifest.config.digest, ...manifest.layers.map((layer) => layer.digest)],
  });
  layouts.set(repo, layout);
}

async function publish(spot: TreeSpot, repo: Published): Promise<void> {
  const result = await publishInto(spot, `oci:${layouts.get(repo) ?? ''}:1`, [`${repo.name}:1`]);
  assert.equal(result.repositories[0]?.tags['1'], repo.digest);
}

function configFor(setup: SetupName, dataDir: string): string {
  const failedLogins = { limit: LIMIT, windowSeconds: 600 };
  const token = { service: SERVICE, key: files.key };
  const auth: Record<SetupName, Record<string, unknown>> = {
    'htpasswd only': { htpasswd: files.htpasswd, failedLogins },
    'tokens only': { token, failedLogins },
    'htpasswd and tokens': { htpasswd: files.htpasswd, token, failedLogins },
    'mutual TLS': { failedLogins },
  };
  const file = path.join(fresh('config'), 'derrick.yaml');
  writeFileSync(
    file,
    stringify({
      dataDir,
      workers: 1,
      logLevel: 'warn', // failed logins are logged at warn: the tests below look for them
      ...(isTls(setup) ? { tls: { cert: pki.server.cert, key: pki.server.key, clientCa: pki.ca } } : {}),
      auth: auth[setup],
      access: RULES,
    }),
  );
  return file;
}

before(async () => {
  pki = makePki(path.join(temp.dir, 'pki'));
  robot = pki.client('ci.example.com');
  trust = pki.certDir();
  robotDir = pki.certDir(robot);
  await build(published.public);
  await build(published.team);
  const htpasswd = path.join(temp.dir, 'htpasswd');
  writeFileSync(htpasswd, `${htpasswdLine('alice', PASSWORD)}\n`);
  files = { htpasswd, key: tokenKey(path.join(temp.dir, 'token.key')) };
  containerd = await startContainerd(path.join(temp.dir, 'containerd'));
});

after(async () => {
  await containerd?.stop();
  temp.cleanup();
});

/** The back end's tree, published, and its four servers: started in its suite's `before`, stopped in its `after`. */
function serveBackend(backend: BackendName): void {
  let tree: { spot: TreeSpot; remove: () => Promise<void> } | undefined;
  before(async () => {
    tree = await suiteTree(backend);
    const { spot } = tree;
    // Side by side into one tree, as concurrent publishers may.
    await Promise.all([publish(spot, published.public), publish(spot, published.team)]);
    const started = await Promise.all(
      SETUPS.map((setup) =>
        startDerrickServer(spot.location, {
          args: ['--config', configFor(setup, spot.location)],
          env: spot.env,
        }),
      ),
    );
    SETUPS.forEach((setup, index) => {
      const running = started[index] as DerrickServer;
      servers.set(setup, running);
      assert.equal(running.url.startsWith('https:'), isTls(setup), `${setup}: ${running.url}`);
    });
  });
  after(async () => {
    const stopping = SETUPS.filter((setup) => servers.has(setup));
    const ended = await Promise.all(stopping.map((setup) => server(setup).stop()));
    const outputs = stopping.map((setup) => server(setup).output());
    servers.clear();
    await tree?.remove();
    for (const [index, setup] of stopping.entries()) {
      assert.deepEqual(ended[index], { code: 0, signal: null, killed: false }, `${setup}: a clean stop`);
      assert.doesNotMatch(outputs[index] ?? '', /"level":[56]0/, `${setup}: derrick logged errors`);
    }
  });
}

/** Runs a command to completion, whatever its exit code, with the clients' own configuration. */
const exec = (command: string, args: string[]): Promise<RunResult> =>
  execute(command, args, { env: CLIENT_ENV });

const skopeo = (args: string[]): Promise<RunResult> => exec('skopeo', ['--policy', POLICY, ...args]);
const podman = (state: string, args: string[]): Promise<RunResult> =>
  exec('podman', [...podmanStateArgs(state), ...args]);

/** How skopeo inspect (`src` false) or skopeo copy's source (`src` true) reaches this setup's server. */
function skopeoTls(setup: SetupName, src = false, certDir = trust): string[] {
  const prefix = src ? '--src-' : '--';
  return isTls(setup) ? [`${prefix}cert-dir`, certDir] : [`${prefix}tls-verify=false`];
}
const reference = (setup: SetupName, repo: Published): string => `${server(setup).host}/${repo.name}:1`;

function ok(result: RunResult, what: string): string {
  assert.equal(result.code, 0, `${what} failed: ${result.stderr}`);
  return result.stdout;
}
function refused(setup: SetupName, result: RunResult, what: string): void {
  assert.notEqual(result.code, 0, `${what} should have been refused; it printed ${result.stdout}`);
  assert.match(result.stderr, REFUSED[setup], what);
}

/** The digest of `repo` as pulled from this setup's server into podman's store in `state`. */
async function podmanDigest(state: string, setup: SetupName, repo: Published): Promise<string | undefined> {
  const inspected = JSON.parse(
    ok(await podman(state, ['image', 'inspect', reference(setup, repo)]), 'podman image inspect'),
  ) as { Digest: string }[];
  return inspected[0]?.Digest;
}

/** `ctr content fetch` of `repo` from this setup's server, without credentials. */
function ctrFetch(setup: SetupName, repo: Published): Promise<RunResult> {
  assert.ok(containerd, 'containerd is not running');
  const running = server(setup);
  let transport = ['--plain-http'];
  if (isTls(setup)) {
    const hosts = fresh('hosts');
    mkdirSync(path.join(hosts, running.host));
    writeFileSync(
      path.join(hosts, running.host, 'hosts.toml'),
      [
        // The CA for the server itself too: containerd falls back to it after a host answers 404.
        `server = "https://${running.host}"`,
        `ca = "${pki.ca}"`,
        `[host."https://${running.host}"]`,
        '  capabilities = ["pull", "resolve"]',
        `  ca = "${pki.ca}"`,
        '',
      ].join('\n'),
    );
    transport = ['--hosts-dir', hosts];
  }
  return containerd.ctr(['content', 'fetch', ...transport, reference(setup, repo)]);
}

/** What anonymous skopeo, podman and containerd may pull in each setup, on the servers of the running back end. */
function clientSuites(backend: BackendName): void {
  for (const setup of SETUPS)
    describe(`${setup}: anonymous clients pull public/app and are refused team/app`, () => {
      test('skopeo inspect and skopeo copy, without credentials', async () => {
        const inspected = JSON.parse(
          ok(
            await skopeo(['inspect', ...skopeoTls(setup), `docker://${reference(setup, published.public)}`]),
            'skopeo inspect public/app',
          ),
        ) as { Digest: string };
        assert.equal(inspected.Digest, published.public.digest);
        const destination = fresh('copy');
        ok(
          await skopeo([
            'copy',
            '--quiet',
            ...skopeoTls(setup, true),
            `docker://${reference(setup, published.public)}`,
            `oci:${destination}:1`,
          ]),
          'skopeo copy public/app',
        );
        const copied = ok(await skopeo(['inspect', '--raw', `oci:${destination}:1`]), 'skopeo inspect --raw');
        assert.equal(digestOf(copied), published.public.digest, 'the copied manifest is the published one');
        refused(
          setup,
          await skopeo(['inspect', ...skopeoTls(setup), `docker://${reference(setup, published.team)}`]),
          'skopeo inspect team/app',
        );
        refused(
          setup,
          await skopeo([
            'copy',
            '--quiet',
            ...skopeoTls(setup, true),
            `docker://${reference(setup, published.team)}`,
            `oci:${fresh('copy')}:1`,
          ]),
          'skopeo copy team/app',
        );
      });

      test('podman pull, without credentials', async () => {
        const state = fresh('pm');
        const tls = isTls(setup) ? ['--cert-dir', trust] : ['--tls-verify=false'];
        const pull = (repo: Published) =>
          podman(state, ['pull', '--quiet', ...tls, '--signature-policy', POLICY, reference(setup, repo)]);
        ok(await pull(published.public), 'podman pull public/app');
        assert.equal(await podmanDigest(state, setup, published.public), published.public.digest);
        refused(setup, await pull(published.team), 'podman pull team/app');
      });

      test('containerd (ctr content fetch), without credentials', async () => {
        assert.ok(containerd);
        await containerd.removeContent();
        ok(await ctrFetch(setup, published.public), 'ctr content fetch public/app');
        const stored = await containerd.storedDigests();
        for (const digest of [published.public.digest, ...published.public.blobs])
          assert.ok(stored.includes(digest), `${digest} was not fetched: ${stored.join(' ')}`);
        refused(setup, await ctrFetch(setup, published.team), 'ctr content fetch team/app');
        assert.ok(!(await containerd.storedDigests()).includes(published.team.digest));
      });

      if (setup === 'mutual TLS')
        test('while a client with a certificate the rule names pulls team/app', async () => {
          const inspected = JSON.parse(
            ok(
              await skopeo([
                'inspect',
                ...skopeoTls(setup, false, robotDir),
                `docker://${reference(setup, published.team)}`,
              ]),
              'skopeo inspect team/app with a client certificate',
            ),
          ) as { Digest: string };
          assert.equal(inspected.Digest, published.team.digest);
        });
    });

  // On the file system only: it checks which requests count as failed logins, which no tree changes; the S3 suite
  // keeps the pulls and refusals above, the certificate's pull of team/app and docker's replayed logins.
  if (backend === 'fs')
    for (const setup of WITH_PASSWORDS)
      describe(`${setup}: anonymous pulls are not failed logins`, () => {
        test(`after more anonymous pulls than auth.failedLogins.limit (${LIMIT}), alice logs in with podman and pulls team/app; a wrong password still fails`, async () => {
          const running = server(setup);
          for (let pull = 0; pull <= LIMIT; pull++)
            ok(
              await skopeo([
                'inspect',
                '--tls-verify=false',
                `docker://${reference(setup, published.public)}`,
              ]),
              `anonymous pull ${pull + 1}`,
            );
          assert.doesNotMatch(
            running.output(),
            /failed login/,
            'an anonymous request was counted as a failed login',
          );

          const state = fresh('pl');
          const authfile = path.join(state, 'auth.json');
          writeFileSync(authfile, '{"auths":{}}\n');
          const login = (password: string) =>
            podman(state, [
              'login',
              '--tls-verify=false',
              '--authfile',
              authfile,
              '-u',
              'alice',
              '-p',
              password,
              running.host,
            ]);
          assert.match(ok(await login(PASSWORD), 'podman login alice'), /Login Succeeded/);
          ok(
            await podman(state, [
              'pull',
              '--quiet',
              '--tls-verify=false',
              '--authfile',
              authfile,
              '--signature-policy',
              POLICY,
              reference(setup, published.team),
            ]),
            'podman pull team/app as alice',
          );
          assert.equal(await podmanDigest(state, setup, published.team), published.team.digest);

          // podman login checks the password: derrick's /v2/ never lets an unchecked login through.
          const wrong = await login('not-her-password');
          assert.notEqual(wrong.code, 0, `podman login with a wrong password succeeded: ${wrong.stdout}`);
          assert.match(running.output(), /failed login/, 'the wrong password is a failed login');
        });
      });
}

// ---------------------------------------------------------------------------------------------------------------
// docker's client, replayed. Sources (read through the search tool):
//   moby/moby distribution/registry.go NewV2Repository: `challengeManager, err := registry.PingV2Registry(...)`,
//     then `auth.NewAuthorizer(challengeManager, tokenHandler, basicHandler)`.
//   moby/moby registry/auth.go PingV2Registry: GET <endpoint>/v2/ with no Authorization; 200 or 401 both give the
//     challenges (`challengeManager.AddResponse(resp)`); `Docker-Distribution-Api-Version: registry/2.0` → foundV2.
//   distribution/distribution registry/client/auth/session.go:
//     endpointAuthorizer.ModifyRequest: for each handler, for each challenge of its scheme, AuthorizeRequest — so
//       every challenge /v2/ gave is answered on every request, and an error from any handler fails the request;
//     basicHandler.AuthorizeRequest: `if username != "" && password != "" { req.SetBasicAuth(...) } return
//       ErrNoBasicAuthCredentials` ("no basic auth credentials") — nothing is sent without credentials;
//     tokenHandler.fetchTokenWithBasicAuth: GET <realm> with `service` and one `scope` per scope, and Basic auth
//       (plus `account`) only `if username != "" && password != ""` — an anonymous token request has no header.
//   moby/moby registry/auth.go loginV2 (`docker login`): PingV2Registry, then GET /v2/ through the same authorizer
//     (tokenHandler with OfflineAccess and ClientID "docker", no scopes); `if resp.StatusCode == http.StatusOK`
//     → "Login Succeeded". So /v2/ answering 200 to an anonymous client would make any password "succeed".
// ---------------------------------------------------------------------------------------------------------------

/** One request on a fresh connection (docker's transport sets DisableKeepAlives), trusting the test CA. */
function send(
  setup: SetupName,
  target: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<Answered & { bytes: Buffer }> {
  const running = server(setup);
  const url = new URL(target, running.url);
  assert.equal(url.host, running.host, `docker would not send this to ${running.host}: ${target}`);
  const options = { method, headers, agent: false as const };
  return new Promise((resolve, reject) => {
    const respond = (response: http.IncomingMessage): void => void readAnswer(response).then(resolve, reject);
    const outgoing =
      url.protocol === 'https:'
        ? https.request(url, { ...options, ca: readFileSync(pki.ca) }, respond)
        : http.request(url, options, respond);
    outgoing.on('error', reject);
    outgoing.end();
  });
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** The challenges of an answer, as distribution's challenge.ResponseChallenges parses them (scheme lower-cased). */
function challenges(answer: Answered): Challenge[] {
  const raw = answer.headers['www-authenticate'];
  const values = raw === undefined ? [] : Array.isArray(raw) ? raw : [String(raw)];
  return values.map((value) => {
    const [, scheme = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(value) ?? [];
    const params: Record<string, string> = {};
    for (const [, key = '', quoted] of rest.matchAll(/(\w+)="([^"]*)"/g)) params[key] = quoted ?? '';
    return { scheme: scheme.toLowerCase(), params };
  });
}

/** Docker's manifest Accept list (distribution's client asks for every manifest type it knows). */
const DOCKER_ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');

/** PingV2Registry: GET /v2/ without Authorization; its challenges decide every later request. */
async function ping(setup: SetupName): Promise<Challenge[]> {
  const answer = await send(setup, '/v2/');
  assert.equal(answer.headers['docker-distribution-api-version'], 'registry/2.0', 'foundV2');
  assert.ok(answer.statusCode === 200 || answer.statusCode === 401, `ping: ${answer.statusCode}`);
  const found = challenges(answer);
  // More than one challenge would have docker's authorizer answer each: a Basic one beside Bearer would fail
  // every anonymous request with "no basic auth credentials".
  assert.ok(found.length <= 1, `${setup}: /v2/ offers ${found.length} challenges`);
  return found;
}

/** tokenHandler.fetchTokenWithBasicAuth's request, as url.Values.Encode() writes the query (keys sorted). */
function tokenUrl(challenge: Challenge, query: Record<string, string | string[]>): string {
  const realm = challenge.params.realm;
  assert.ok(realm, 'a Bearer challenge without a realm');
  const params = new URLSearchParams();
  for (const key of Object.keys(query).sort())
    for (const value of [query[key] ?? []].flat()) params.append(key, value);
  return `${realm}?${params.toString()}`;
}

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** The pull: HEAD the manifest by tag, GET it by digest, GET its blobs — each with what the authorizer adds. */
async function pullAs(
  setup: SetupName,
  repo: Published,
  authorization: Record<string, string>,
): Promise<void> {
  const head = await send(
    setup,
    `/v2/${repo.name}/manifests/1`,
    { ...authorization, accept: DOCKER_ACCEPT },
    'HEAD',
  );
  assert.equal(head.statusCode, 200, `${setup}: HEAD manifest: ${head.statusCode}`);
  assert.equal(head.headers['docker-content-digest'], repo.digest);
  const manifest = await send(setup, `/v2/${repo.name}/manifests/${repo.digest}`, {
    ...authorization,
    accept: DOCKER_ACCEPT,
  });
  assert.equal(manifest.statusCode, 200, manifest.body);
  assert.equal(sha256(manifest.bytes), repo.digest);
  for (const digest of repo.blobs) {
    const blob = await send(setup, `/v2/${repo.name}/blobs/${digest}`, authorization);
    assert.equal(blob.statusCode, 200, `${digest}: ${blob.statusCode}`);
    assert.equal(sha256(blob.bytes), digest);
  }
}

/** docker's requests, replayed against the servers of the running back end. */
function dockerReplay(): void {
  describe("docker's client, replayed request by request over real HTTP (no Docker engine here)", () => {
    for (const setup of WITH_TOKENS)
      test(`${setup}: docker pull without credentials — ping, an anonymous token (no Authorization), then the manifest and blobs with it; team/app gets a token without its scope and 401 insufficient_scope`, async () => {
        const [bearer] = await ping(setup);
        assert.equal(bearer?.scheme, 'bearer');
        assert.equal(bearer.params.service, SERVICE);
        const token = async (repo: Published): Promise<string> => {
          // No credentials: no Authorization header and no `account` (fetchTokenWithBasicAuth).
          const answer = await send(
            setup,
            tokenUrl(bearer, { scope: `repository:${repo.name}:pull`, service: SERVICE }),
          );
          assert.equal(answer.statusCode, 200, answer.body);
          const body = JSON.parse(answer.body) as {
            token?: string;
            access_token?: string;
            expires_in?: number;
          };
          assert.ok(body.token, 'getTokenResponse.Token');
          assert.ok(
            (body.expires_in ?? 0) >= 60,
            'the token spec: "a token should never be returned with less than 60 seconds to live"',
          );
          return body.token;
        };
        await pullAs(setup, published.public, { authorization: `Bearer ${await token(published.public)}` });
        // The token spec: "If the client only has a subset of the requested access it must not be considered an
        // error" — the token comes, without the scope, and the registry refuses it.
        const teamToken = await token(published.team);
        const denied = await send(
          setup,
          `/v2/${published.team.name}/manifests/1`,
          { authorization: `Bearer ${teamToken}`, accept: DOCKER_ACCEPT },
          'HEAD',
        );
        assert.equal(denied.statusCode, 401);
        assert.equal(challenges(denied)[0]?.params.error, 'insufficient_scope');
      });

    test('htpasswd only: /v2/ offers Basic alone — docker’s basicHandler has no credentials to send ("no basic auth credentials") and stops before any request, which is why docs/security.md sets auth.token.key for docker', async () => {
      const found = await ping('htpasswd only');
      assert.deepEqual(found, [{ scheme: 'basic', params: { realm: 'derrick', charset: 'UTF-8' } }]);
      // containers/image, given the same challenge, sends `Basic Og==` — an anonymous client to derrick.
      await pullAs('htpasswd only', published.public, { authorization: 'Basic Og==' });
    });

    test('mutual TLS, nothing to log in to: /v2/ answers 200 without a challenge, docker sends no Authorization and pulls; team/app is 404 to it', async () => {
      assert.deepEqual(await ping('mutual TLS'), []);
      await pullAs('mutual TLS', published.public, {});
      const denied = await send('mutual TLS', `/v2/${published.team.name}/manifests/1`, {
        accept: DOCKER_ACCEPT,
      });
      assert.equal(denied.statusCode, 404);
      assert.equal(
        (JSON.parse(denied.body) as { errors: { code: string }[] }).errors[0]?.code,
        'NAME_UNKNOWN',
      );
    });

    for (const setup of WITH_PASSWORDS)
      test(`${setup}: docker login — the right password succeeds, a wrong one fails, and /v2/ never answers 200 without credentials`, async () => {
        const basic = (password: string): string =>
          `Basic ${Buffer.from(`alice:${password}`).toString('base64')}`;
        /** loginV2: ping, then GET /v2/ with what the authorizer adds for alice:<password>; true for 200. */
        const login = async (password: string): Promise<boolean> => {
          const [challenge] = await ping(setup);
          assert.ok(challenge, `${setup}: /v2/ answered an anonymous ping without a challenge`);
          let authorization: string;
          if (challenge.scheme === 'basic') authorization = basic(password);
          else {
            // tokenHandler with OfflineAccess and ClientID "docker", no scopes: account, client_id, offline_token.
            const url = tokenUrl(challenge, {
              account: 'alice',
              client_id: 'docker',
              offline_token: 'true',
              service: challenge.params.service ?? '',
            });
            const answer = await send(setup, url, { authorization: basic(password) });
            if (answer.statusCode !== 200) return false;
            authorization = `Bearer ${(JSON.parse(answer.body) as { token: string }).token}`;
          }
          return (await send(setup, '/v2/', { authorization })).statusCode === 200;
        };
        assert.equal(await login(PASSWORD), true, 'Login Succeeded');
        assert.equal(await login('not-her-password'), false, 'a wrong password logged in');
        for (const authorization of [undefined, 'Basic Og==', 'Basic'])
          assert.equal(
            (await send(setup, '/v2/', authorization === undefined ? {} : { authorization })).statusCode,
            401,
            `/v2/ with ${authorization ?? 'no Authorization'}`,
          );
      });
  });
}

for (const backend of BACKENDS)
  describe(`${backend} tree`, () => {
    serveBackend(backend);
    clientSuites(backend);
    dockerReplay();
  });
